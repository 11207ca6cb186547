//! An autoregressive prior over grids of VQ-VAE codes: a small PixelCNN (van
//! den Oord et al. 2016) with masked convolutions, as the VQ-VAE paper fits
//! after training, trained with the [`Trainer`](crate::train::Trainer) on the
//! code grids of the training set.
//!
//! The trainer trains on images, so code grids travel as grey images
//! ([`code_grid_dataset`]): code `k` of `K` is the pixel `(k + ½) / K`, which
//! the prior reads back as `⌊v · K⌋`.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Init, Module, VarBuilder};
use rand::RngCore;
use rand_distr::{Distribution, Uniform};
use serde::{Deserialize, Serialize};

use super::trainable::{LossTerms, Per, StepContext, Term, Trainable};
use crate::data::{Batch, Dataset};
use crate::latent::CodePrior;
use crate::losses::{cross_entropy, Reduction};
use crate::nets::{conv2d, Conv2d, Conv2dConfig, ImageShape, MAX_SIDE};
use crate::params::{InitScheme, ParamStore};
use crate::{Error, Result as VResult};

/// The layout of a [`PixelCnnPrior`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PixelCnnConfig {
    /// The number of codes `K`.
    pub codes: usize,
    /// The grid, `[h, w]`.
    pub grid: [usize; 2],
    /// Channels of every hidden layer (and of the code embedding).
    pub channels: usize,
    /// Residual blocks of masked 3×3 convolutions after the first masked 7×7.
    pub blocks: usize,
    /// How the weights start.
    pub init: InitScheme,
}

impl PixelCnnConfig {
    /// A prior over `h × w` grids of `codes` codes: 64 channels, 4 residual
    /// blocks, PyTorch's initialisation.
    pub fn new(codes: usize, grid: (usize, usize)) -> Self {
        Self {
            codes,
            grid: [grid.0, grid.1],
            channels: 64,
            blocks: 4,
            init: InitScheme::PyTorch,
        }
    }

    /// Checks the values; errors name fields under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn validate(&self, field: &str) -> VResult<()> {
        for (v, name) in [
            (self.codes, "codes"),
            (self.grid[0], "grid[0]"),
            (self.grid[1], "grid[1]"),
            (self.channels, "channels"),
        ] {
            if v == 0 {
                return Err(Error::config(format!("{field}.{name}"), "must be positive"));
            }
            if v > MAX_SIDE {
                return Err(Error::config(
                    format!("{field}.{name}"),
                    format!("{v} is more than vaekit accepts here, {MAX_SIDE}"),
                ));
            }
        }
        if self.blocks > 1 << 10 {
            return Err(Error::config(
                format!("{field}.blocks"),
                format!("{} is more than vaekit accepts here, 1024", self.blocks),
            ));
        }
        Ok(())
    }
}

crate::setters::with_setters!(PixelCnnConfig {
    with_codes(codes: usize),
    with_grid(grid: [usize; 2]),
    with_channels(channels: usize),
    with_blocks(blocks: usize),
    with_init(init: InitScheme),
});

/// Which positions a masked convolution sees: those before the centre in
/// raster order (`A`, the first layer), or the centre too (`B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaskKind {
    A,
    B,
}

/// A convolution whose kernel is multiplied by a causal mask.
#[derive(Debug, Clone)]
struct MaskedConv {
    conv: Conv2d,
    mask: Tensor,
    padding: usize,
}

impl MaskedConv {
    fn new(
        cin: usize,
        cout: usize,
        kernel: usize,
        kind: MaskKind,
        init: InitScheme,
        vb: VarBuilder,
    ) -> Result<Self> {
        let conv = conv2d(cin, cout, kernel, Conv2dConfig::default(), init, vb)?;
        let c = kernel / 2;
        let mask: Vec<f32> = (0..kernel * kernel)
            .map(|i| {
                let (r, col) = (i / kernel, i % kernel);
                let seen = r < c || (r == c && (col < c || (col == c && kind == MaskKind::B)));
                if seen {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (1, 1, kernel, kernel), conv.weight().device())?
            .to_dtype(conv.weight().dtype())?;
        Ok(Self {
            conv,
            mask,
            padding: c,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let w = self.conv.weight().broadcast_mul(&self.mask)?; // [out, in, k, k]
        crate::kernels::conv2d(xs, &w, self.conv.bias(), 1, self.padding) // [b, out, h, w]
    }
}

/// A PixelCNN over code grids: a code embedding, a masked 7×7 convolution
/// (mask A), residual blocks of ReLU and a masked 3×3 convolution (mask B),
/// then ReLU, a 1×1 convolution, ReLU and a 1×1 convolution to the `K`
/// logits of every position. Each position's logits see only the codes
/// before it in raster order, so `log p(grid) = Σ log p(c_ij | c_<ij)`.
/// Plain masked convolutions have a blind spot (part of the rows above the
/// receptive field misses); a gated PixelCNN removes it, this small prior
/// does not.
///
/// Tensors (under the prior's path): `embedding` `[K, channels]`,
/// `input.*` (7×7), `blocks.{i}.*` (3×3), `hidden.*`, `out.*` (1×1).
///
/// It is a [`Trainable`] on [`code_grid_dataset`]s, its loss the negative
/// log-likelihood of a grid in nats (`nll`, averaged over the batch), and a
/// [`CodePrior`], from which [`sample_codes`](CodePrior::sample_codes) draws
/// position after position.
#[derive(Debug, Clone)]
pub struct PixelCnnPrior {
    config: PixelCnnConfig,
    params: ParamStore,
    embedding: Tensor,
    input: MaskedConv,
    blocks: Vec<MaskedConv>,
    hidden: Conv2d,
    out: Conv2d,
}

impl PixelCnnPrior {
    /// Builds the prior of `config`, its tensors created in `vb`, which
    /// belongs to `params` (`params.var_builder(seed)`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field of `config` that cannot work.
    pub fn new(config: &PixelCnnConfig, params: &ParamStore, vb: VarBuilder) -> VResult<Self> {
        config.validate("prior")?;
        let (k, c, init) = (config.codes, config.channels, config.init);
        let embedding = vb.get_with_hints(
            (k, c),
            "embedding",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let input = MaskedConv::new(c, c, 7, MaskKind::A, init, vb.pp("input"))?;
        let blocks = (0..config.blocks)
            .map(|i| MaskedConv::new(c, c, 3, MaskKind::B, init, vb.pp("blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let one = Conv2dConfig::default();
        let hidden = conv2d(c, c, 1, one, init, vb.pp("hidden"))?;
        let out = conv2d(c, k, 1, one, init, vb.pp("out"))?;
        Ok(Self {
            config: *config,
            params: params.clone(),
            embedding,
            input,
            blocks,
            hidden,
            out,
        })
    }

    /// The layout.
    pub fn config(&self) -> &PixelCnnConfig {
        &self.config
    }

    /// The logits `[b, K, h, w]` of every position given the codes before
    /// it, for code grids `[b, h, w]` (`u32`).
    ///
    /// # Errors
    ///
    /// When `indices` is not `[b, h, w]` of the prior's grid, or a code is
    /// out of range.
    pub fn logits(&self, indices: &Tensor) -> Result<Tensor> {
        let [h, w] = self.config.grid;
        let b = match indices.dims() {
            [b, a, c] if (*a, *c) == (h, w) => *b,
            dims => {
                candle_core::bail!("PixelCNN prior: expected codes [b, {h}, {w}], got {dims:?}")
            }
        };
        let k = self.config.codes;
        let flat = indices.to_dtype(DType::U32)?.flatten_all()?;
        if let Some(&max) = flat.to_vec1::<u32>()?.iter().max() {
            if max as usize >= k {
                candle_core::bail!("PixelCNN prior: code {max} out of range 0..{k}");
            }
        }
        let relu = |t: &Tensor| crate::kernels::leaky_relu(t, 0.0);
        let x = self
            .embedding
            .index_select(&flat, 0)? // [b·h·w, C]
            .reshape((b, h, w, self.config.channels))?
            .permute((0, 3, 1, 2))?
            .contiguous()?; // [b, C, h, w]
        let mut x = self.input.forward(&x)?; // [b, C, h, w]
        for block in &self.blocks {
            x = (&x + block.forward(&relu(&x)?)?)?; // [b, C, h, w]
        }
        let x = self.hidden.forward(&relu(&x)?)?; // [b, C, h, w]
        self.out.forward(&relu(&x)?) // [b, K, h, w]
    }

    /// `−log p(grid)` of each grid `[b, h, w]`, `[b]`, in nats.
    ///
    /// # Errors
    ///
    /// As [`logits`](Self::logits).
    pub fn nll(&self, indices: &Tensor) -> Result<Tensor> {
        let logits = self.logits(indices)?; // [b, K, h, w]
        let (b, k, h, w) = logits.dims4()?;
        let flat = logits.permute((0, 2, 3, 1))?.reshape((b * h * w, k))?; // [b·h·w, K]
        let labels = indices.to_dtype(DType::U32)?.flatten_all()?;
        cross_entropy(&flat, &labels, Reduction::None)?
            .reshape((b, h * w))?
            .sum(1) // [b]
    }

    /// The code grids `[b, h, w]` of images made by [`code_grid_dataset`].
    fn codes_of_images(&self, images: &Tensor) -> Result<Tensor> {
        let [h, w] = self.config.grid;
        let k = self.config.codes as f64;
        let b = match images.dims() {
            [b, 1, a, c] if (*a, *c) == (h, w) => *b,
            dims => candle_core::bail!(
                "PixelCNN prior: expected code grids as images [b, 1, {h}, {w}], got {dims:?}"
            ),
        };
        images
            .to_dtype(DType::F64)?
            .affine(k, 0.0)?
            .floor()?
            .clamp(0.0, k - 1.0)?
            .to_dtype(DType::U32)?
            .reshape((b, h, w))
    }
}

impl Trainable for PixelCnnPrior {
    fn params(&self) -> &ParamStore {
        &self.params
    }

    /// One term, `nll`: the negative log-likelihood of a grid in nats,
    /// averaged over the batch.
    fn batch_loss(
        &self,
        batch: &Batch,
        _rng: &mut dyn RngCore,
        _ctx: &StepContext,
    ) -> Result<LossTerms> {
        let codes = self.codes_of_images(&batch.images)?;
        let nll = self.nll(&codes)?.mean_all()?;
        Ok(LossTerms {
            total: nll.clone(),
            per: Per::Image,
            terms: vec![Term::new("nll", nll, Per::Image)],
        })
    }

    /// The layout as JSON, compared when weights are loaded.
    fn architecture(&self) -> Option<String> {
        serde_json::to_string(&self.config).ok()
    }
}

impl CodePrior for PixelCnnPrior {
    fn grid(&self) -> (usize, usize) {
        (self.config.grid[0], self.config.grid[1])
    }

    fn codes(&self) -> usize {
        self.config.codes
    }

    /// Draws position after position in raster order, each from the
    /// softmax of its logits given the codes drawn before it (one network
    /// pass per position), by inverting the cumulative distribution at one
    /// uniform draw per grid on the host.
    fn sample_codes(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        let [h, w] = self.config.grid;
        let k = self.config.codes;
        let unit = Uniform::new(0.0f64, 1.0).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut codes = vec![0u32; n * h * w];
        for pos in 0..h * w {
            let grid = Tensor::from_vec(codes.clone(), (n, h, w), device)?;
            let logits = self.logits(&grid)?; // [n, K, h, w]
            let (r, c) = (pos / w, pos % w);
            let probs = candle_nn::ops::softmax(
                &logits.narrow(2, r, 1)?.narrow(3, c, 1)?.reshape((n, k))?,
                D::Minus1,
            )?
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?;
            for (i, p) in probs.iter().enumerate() {
                let u = unit.sample(&mut *rng);
                let mut acc = 0.0;
                let mut code = k - 1;
                for (j, v) in p.iter().enumerate() {
                    acc += v;
                    if u < acc {
                        code = j;
                        break;
                    }
                }
                codes[i * h * w + pos] = code as u32;
            }
        }
        Tensor::from_vec(codes, (n, h, w), device)
    }

    fn log_prob(&self, indices: &Tensor) -> Result<Tensor> {
        self.nll(indices)?.neg()
    }
}

/// Code grids `[n, h, w]` (`u32`) of `codes` codes as a dataset of grey
/// `h × w` images the [`Trainer`](crate::train::Trainer) can train a
/// [`PixelCnnPrior`] on: code `k` is the pixel `(k + ½) / K`.
///
/// # Errors
///
/// [`Error::Config`] when `indices` is not `[n, h, w]` or a code is out of
/// range; candle errors.
pub fn code_grid_dataset(indices: &Tensor, codes: usize) -> VResult<Dataset> {
    let (n, h, w) = match indices.dims() {
        [n, h, w] => (*n, *h, *w),
        dims => {
            return Err(Error::config(
                "indices",
                format!("expected code grids [n, h, w], got {dims:?}"),
            ))
        }
    };
    let k = codes.max(1) as f64;
    let values = indices
        .to_dtype(DType::U32)?
        .flatten_all()?
        .to_vec1::<u32>()?;
    if let Some(&bad) = values.iter().find(|&&c| c as usize >= codes) {
        return Err(Error::config(
            "indices",
            format!("code {bad} out of range 0..{codes}"),
        ));
    }
    let pixels = values
        .into_iter()
        .map(|c| ((c as f64 + 0.5) / k) as f32)
        .collect();
    Dataset::from_pixels(pixels, n, ImageShape::new(1, h, w), None)
}
