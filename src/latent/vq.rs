//! The vector quantiser of the VQ-VAE (van den Oord et al. 2017): a codebook
//! of `K` vectors of width `D`, the nearest code for each encoder output, the
//! straight-through gradient, and the codebook's learning — by gradient, or
//! by exponential moving averages with restarts of dead codes.
//!
//! Nearest codes are found for a whole batch with one matrix product,
//! `‖z‖² − 2 z·Eᵀ + ‖E‖²`. The EMA statistics and the usage counts are
//! buffers in the model's [`ParamStore`](crate::params::ParamStore)
//! (their names start with [`EMA_PREFIX`](crate::params::EMA_PREFIX)), so
//! checkpoints keep them and a resumed run continues bit for bit; they change
//! only in training mode.

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::nets::MAX_WIDTH;
use crate::{Error, Result as VResult};

/// How the codebook learns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CodebookUpdate {
    /// By gradient, through the codebook loss `‖sg(z) − e‖²`: the codebook is
    /// a trainable weight, `quantizer.codebook`.
    Gradient,
    /// By exponential moving averages of the encoder outputs assigned to each
    /// code (the paper's appendix): the codebook is a buffer,
    /// `quantizer.ema_codebook`, and the codebook loss is not used.
    Ema(EmaConfig),
}

crate::tagged::tagged_deserialize!(CodebookUpdate, "type", {
    "gradient" => Gradient,
    "ema" => Ema(EmaConfig),
});

/// The moving averages of an EMA codebook.
///
/// Each training step, with `n_k` the number of the batch's vectors assigned
/// to code `k` and `s_k` their sum:
///
/// ```text
/// N_k ← γ·N_k + (1 − γ)·n_k            quantizer.ema_cluster_size  [K]
/// m_k ← γ·m_k + (1 − γ)·s_k            quantizer.ema_embed_sum     [K, D]
/// Ñ_k = (N_k + ε) / (Σ_j N_j + K·ε) · Σ_j N_j    (Laplace smoothing)
/// e_k = m_k / Ñ_k                      quantizer.ema_codebook      [K, D]
/// ```
///
/// `N` and `m` start at zero, so a code that no vector has chosen becomes the
/// zero vector after the first step (restarts, [`RestartConfig`], give such
/// codes encoder outputs instead).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EmaConfig {
    /// The decay γ, in `(0, 1)`.
    pub decay: f64,
    /// The Laplace smoothing ε of the counts, positive.
    pub epsilon: f64,
}

impl Default for EmaConfig {
    /// γ = 0.99, ε = 1e-5, as in the paper's reference implementation.
    fn default() -> Self {
        Self {
            decay: 0.99,
            epsilon: 1e-5,
        }
    }
}

crate::setters::with_setters!(EmaConfig {
    with_decay(decay: f64),
    with_epsilon(epsilon: f64),
});

/// Restarts of dead codes: each training step, a code whose usage — a moving
/// average of how many of the batch's vectors chose it,
/// `u_k ← γ·u_k + (1 − γ)·n_k` (`quantizer.ema_usage`, starting at zero) —
/// is below `threshold` gets an encoder output of the batch, drawn uniformly
/// from the generator the training step is given, and its usage is set to
/// `threshold`.
///
/// Usage starts at zero, so the first training step gives every code an
/// encoder output of the batch (a data-dependent initialisation); a code that
/// no vector chooses afterwards is restarted again at each step until one
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RestartConfig {
    /// The usage below which a code is dead, positive (1: chosen less than
    /// about once per batch lately).
    pub threshold: f64,
    /// The decay γ of the usage average, in `(0, 1)`.
    pub decay: f64,
}

impl Default for RestartConfig {
    /// Threshold 1, decay 0.99.
    fn default() -> Self {
        Self {
            threshold: 1.0,
            decay: 0.99,
        }
    }
}

crate::setters::with_setters!(RestartConfig {
    with_threshold(threshold: f64),
    with_decay(decay: f64),
});

/// A vector quantiser's layout: `codes` vectors of `code_dim` values, how they
/// learn, and whether dead codes restart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuantizerConfig {
    /// The number of codes `K`.
    pub codes: usize,
    /// The width `D` of each code, which is the encoder's output channels.
    pub code_dim: usize,
    /// How the codebook learns.
    pub update: CodebookUpdate,
    /// Restarts of dead codes (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartConfig>,
}

impl QuantizerConfig {
    /// `codes` codes of width `code_dim`, learned by gradient, without
    /// restarts.
    pub fn new(codes: usize, code_dim: usize) -> Self {
        Self {
            codes,
            code_dim,
            update: CodebookUpdate::Gradient,
            restart: None,
        }
    }

    /// Checks the values; errors name fields under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn validate(&self, field: &str) -> VResult<()> {
        for (v, name) in [(self.codes, "codes"), (self.code_dim, "code_dim")] {
            if v == 0 {
                return Err(Error::config(format!("{field}.{name}"), "must be positive"));
            }
            if v > MAX_WIDTH {
                return Err(Error::config(
                    format!("{field}.{name}"),
                    format!("{v} is more than the largest width vaekit accepts, {MAX_WIDTH}"),
                ));
            }
        }
        if self.codes > u32::MAX as usize {
            return Err(Error::config(
                format!("{field}.codes"),
                "must fit a 32-bit index",
            ));
        }
        let decay = |v: f64, f: &str| {
            if v > 0.0 && v < 1.0 {
                Ok(())
            } else {
                Err(Error::config(
                    format!("{field}.{f}"),
                    format!("{v} must be in (0, 1)"),
                ))
            }
        };
        let positive = |v: f64, f: &str| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::config(
                    format!("{field}.{f}"),
                    format!("{v} must be positive and finite"),
                ))
            }
        };
        if let CodebookUpdate::Ema(e) = self.update {
            decay(e.decay, "update.decay")?;
            positive(e.epsilon, "update.epsilon")?;
        }
        if let Some(r) = self.restart {
            decay(r.decay, "restart.decay")?;
            positive(r.threshold, "restart.threshold")?;
        }
        Ok(())
    }
}

crate::setters::with_setters!(QuantizerConfig {
    with_codes(codes: usize),
    with_code_dim(code_dim: usize),
    with_update(update: CodebookUpdate),
    with_restart(restart: Option<RestartConfig>),
});

/// What [`VectorQuantizer::quantize`] gives for `n` vectors.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// The nearest code of each vector, `[n]` (`u32`).
    pub indices: Tensor,
    /// The codes with the straight-through gradient, `[n, D]`: the value of
    /// `e_k`, the gradient of `z` (`z + sg(e_k − z)`).
    pub quantized: Tensor,
    /// `(e_k − sg(z))²` element by element, `[n, D]`: the codebook loss
    /// before its reduction (its gradient reaches the codebook only; zero
    /// gradient for an EMA codebook, which is not a weight).
    pub codebook_error: Tensor,
    /// `(z − sg(e_k))²` element by element, `[n, D]`: the commitment loss
    /// before its weight and reduction (its gradient reaches the encoder).
    pub commitment_error: Tensor,
    /// How many of the vectors chose each code, `[K]`, untracked, in the
    /// codebook's dtype.
    pub counts: Tensor,
}

impl Quantized {
    /// The perplexity of the code frequencies `p_k = n_k / n`,
    /// `exp(−Σ_k p_k · ln p_k)`: `K` when every code is equally used, 1 when
    /// one code takes everything. A scalar, untracked.
    ///
    /// # Errors
    ///
    /// A candle error from the tensor ops.
    pub fn perplexity(&self) -> Result<Tensor> {
        // On the device, so that a training step waits for no transfer.
        let n = self.counts.sum_all()?.maximum(1.0)?;
        let p = self.counts.broadcast_div(&n)?;
        // p · ln(p + 1e-10): 0 for an unused code.
        let plogp = (&p * p.affine(1.0, 1e-10)?.log()?)?;
        plogp.sum_all()?.neg()?.exp()
    }

    /// The share of the codes chosen by at least one vector, in `[0, 1]`. A
    /// scalar, untracked.
    ///
    /// # Errors
    ///
    /// A candle error from the tensor ops.
    pub fn codes_used(&self) -> Result<Tensor> {
        let k = self.counts.dim(0)?;
        self.counts
            .gt(0.0)?
            .to_dtype(self.counts.dtype())?
            .sum_all()?
            .affine(1.0 / k as f64, 0.0)
    }
}

/// The EMA statistics of an EMA codebook.
#[derive(Debug, Clone)]
struct EmaState {
    config: EmaConfig,
    cluster_size: Tensor,
    embed_sum: Tensor,
}

/// The usage average of the restarts.
#[derive(Debug, Clone)]
struct RestartState {
    config: RestartConfig,
    usage: Tensor,
}

/// A vector quantiser: a `K × D` codebook, nearest-code lookup, the
/// straight-through gradient, and the codebook's updates in training mode.
///
/// Tensors (under the quantiser's path): `codebook` `[K, D]`, a weight, when
/// it learns by gradient; `ema_codebook` `[K, D]`, `ema_cluster_size` `[K]`
/// and `ema_embed_sum` `[K, D]`, buffers, when it learns by moving averages;
/// `ema_usage` `[K]`, a buffer, with restarts.
///
/// # Shapes
///
/// `[n, D]` vectors → `[n]` indices and `[n, D]` codes.
#[derive(Debug, Clone)]
pub struct VectorQuantizer {
    config: QuantizerConfig,
    codebook: Tensor,
    ema: Option<EmaState>,
    restart: Option<RestartState>,
}

/// A vector quantiser of `config`, creating its tensors in `vb`; a
/// gradient-learned codebook starts `U(−1/K, 1/K)`, as in the reference
/// implementations, and so does an EMA one (whose statistics start at zero).
///
/// # Errors
///
/// [`Error::Config`] naming the field of `config` (under `quantizer`) that
/// cannot work.
pub fn vector_quantizer(config: &QuantizerConfig, vb: VarBuilder) -> VResult<VectorQuantizer> {
    config.validate("quantizer")?;
    let (k, d) = (config.codes, config.code_dim);
    let bound = 1.0 / k as f64;
    let uniform = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let zero = Init::Const(0.0);
    let (codebook, ema) = match config.update {
        CodebookUpdate::Gradient => (vb.get_with_hints((k, d), "codebook", uniform)?, None),
        CodebookUpdate::Ema(e) => (
            vb.get_with_hints((k, d), "ema_codebook", uniform)?,
            Some(EmaState {
                config: e,
                cluster_size: vb.get_with_hints(k, "ema_cluster_size", zero)?,
                embed_sum: vb.get_with_hints((k, d), "ema_embed_sum", zero)?,
            }),
        ),
    };
    let restart = match config.restart {
        Some(r) => Some(RestartState {
            config: r,
            usage: vb.get_with_hints(k, "ema_usage", zero)?,
        }),
        None => None,
    };
    Ok(VectorQuantizer {
        config: *config,
        codebook,
        ema,
        restart,
    })
}

impl VectorQuantizer {
    /// The layout.
    pub fn config(&self) -> &QuantizerConfig {
        &self.config
    }

    /// The number of codes `K`.
    pub fn codes(&self) -> usize {
        self.config.codes
    }

    /// The width `D` of each code.
    pub fn code_dim(&self) -> usize {
        self.config.code_dim
    }

    /// The codebook `[K, D]`, untracked.
    pub fn codebook(&self) -> Tensor {
        self.codebook.detach()
    }

    /// The codebook as the loss sees it: the weight (tracked) when it learns
    /// by gradient, the buffer (untracked) otherwise.
    fn codebook_for_loss(&self) -> Tensor {
        match self.ema {
            None => self.codebook.clone(),
            Some(_) => self.codebook.detach(),
        }
    }

    /// The index of the nearest code of each row of `z` `[n, D]`, `[n]`
    /// (`u32`), by one matrix product: `argmin_k ‖z‖² − 2 z·e_k + ‖e_k‖²`
    /// (the first code of a tie).
    ///
    /// # Errors
    ///
    /// When `z` is not `[n, D]`.
    pub fn nearest(&self, z: &Tensor) -> Result<Tensor> {
        let d = self.config.code_dim;
        match z.dims() {
            [_, w] if *w == d => {}
            dims => candle_core::bail!("vector quantiser: expected [n, {d}] vectors, got {dims:?}"),
        }
        let z = z.detach();
        let e = self.codebook();
        let ze = crate::kernels::linear(&z, &e, None)?; // [n, K] = z·Eᵀ
        let z2 = z.sqr()?.sum_keepdim(1)?; // [n, 1]
        let e2 = e.sqr()?.sum(1)?.unsqueeze(0)?; // [1, K]
        let dist = ze
            .affine(-2.0, 0.0)?
            .broadcast_add(&z2)?
            .broadcast_add(&e2)?; // [n, K]
        dist.argmin(1) // [n]
    }

    /// The codes of `indices` (`u32`, any shape `[…]`), `[…, D]`, untracked.
    ///
    /// # Errors
    ///
    /// When an index is out of range.
    pub fn lookup(&self, indices: &Tensor) -> Result<Tensor> {
        let dims = indices.dims().to_vec();
        let flat = indices.flatten_all()?;
        let k = self.config.codes as u32;
        if let Some(max) = flat
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?
            .into_iter()
            .max()
        {
            if max >= k {
                candle_core::bail!("vector quantiser: code index {max} out of range 0..{k}");
            }
        }
        let codes = self.codebook().index_select(&flat, 0)?; // [n, D]
        let mut out = dims;
        out.push(self.config.code_dim);
        codes.reshape(out)
    }

    /// Quantises `z` `[n, D]` (the encoder's vectors, one per row): the
    /// nearest codes with the straight-through gradient, the two losses
    /// before reduction, and the counts per code.
    ///
    /// In training mode (`train`) it then updates what learns outside the
    /// optimizer: an EMA codebook's moving averages ([`EmaConfig`]), and the
    /// usage and restarts of dead codes ([`RestartConfig`]), which draw from
    /// `rng`. The returned codes are those before the update. Evaluation
    /// changes nothing and draws nothing.
    ///
    /// # Errors
    ///
    /// When `z` is not `[n, D]` with `n > 0`.
    pub fn quantize(&self, z: &Tensor, train: bool, rng: &mut dyn RngCore) -> Result<Quantized> {
        let n = z.dim(0)?;
        if n == 0 {
            candle_core::bail!("vector quantiser: no vector to quantise");
        }
        let indices = self.nearest(z)?; // [n]
        let e = self.codebook_for_loss().index_select(&indices, 0)?; // [n, D]
        let z_free = z.detach();
        let e_free = e.detach();
        let codebook_error = (&e - &z_free)?.sqr()?; // [n, D]
        let commitment_error = (z - &e_free)?.sqr()?; // [n, D]
        let quantized = z.add(&(&e_free - &z_free)?)?; // [n, D], value e, gradient of z
        let k = self.config.codes;
        let dtype = self.codebook.dtype();
        let ones = Tensor::ones(n, dtype, z.device())?;
        let counts = Tensor::zeros(k, dtype, z.device())?.index_add(&indices, &ones, 0)?; // [K]
        if train {
            self.update(&z_free, &indices, &counts, rng)?;
        }
        Ok(Quantized {
            indices,
            quantized,
            codebook_error,
            commitment_error,
            counts,
        })
    }

    /// The training-mode updates: the EMA codebook, then the usage and the
    /// restarts.
    fn update(
        &self,
        z: &Tensor,
        indices: &Tensor,
        counts: &Tensor,
        rng: &mut dyn RngCore,
    ) -> Result<()> {
        let (k, d) = (self.config.codes, self.config.code_dim);
        let z = z.to_dtype(self.codebook.dtype())?;
        if let Some(ema) = &self.ema {
            let g = ema.config.decay;
            let eps = ema.config.epsilon;
            let sums = Tensor::zeros((k, d), z.dtype(), z.device())?.index_add(indices, &z, 0)?; // [K, D]
            let size = ema.cluster_size.detach();
            let size = (size.affine(g, 0.0)? + counts.affine(1.0 - g, 0.0)?)?; // [K]
            let embed = ema.embed_sum.detach();
            let embed = (embed.affine(g, 0.0)? + sums.affine(1.0 - g, 0.0)?)?; // [K, D]
            let total = size.sum_all()?; // []
            let smoothed = size
                .affine(1.0, eps)?
                .broadcast_div(&total.affine(1.0, k as f64 * eps)?)?
                .broadcast_mul(&total)?; // [K]
            let codebook = embed.broadcast_div(&smoothed.unsqueeze(1)?)?; // [K, D]
            Var::from_tensor(&ema.cluster_size)?.set(&size)?;
            Var::from_tensor(&ema.embed_sum)?.set(&embed)?;
            Var::from_tensor(&self.codebook)?.set(&codebook)?;
        }
        if let Some(restart) = &self.restart {
            let RestartConfig { threshold, decay } = restart.config;
            let usage = restart.usage.detach();
            let usage = (usage.affine(decay, 0.0)? + counts.affine(1.0 - decay, 0.0)?)?; // [K]
            let values = usage.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let dead: Vec<usize> = (0..k).filter(|&i| values[i] < threshold).collect();
            let usage_var = Var::from_tensor(&restart.usage)?;
            if dead.is_empty() {
                return usage_var.set(&usage);
            }
            let n = z.dim(0)?;
            // One draw per dead code, in the order of the codes.
            let mut source = vec![0u32; k];
            let mut mask = vec![0u8; k];
            for &i in &dead {
                source[i] = rng.random_range(0..n) as u32;
                mask[i] = 1;
            }
            let device = z.device();
            let source = Tensor::from_vec(source, k, device)?;
            let mask = Tensor::from_vec(mask, k, device)?;
            let drawn = z.index_select(&source, 0)?; // [K, D]
            let rows = mask.unsqueeze(1)?.broadcast_as((k, d))?;
            let replace = |t: &Tensor, with: &Tensor| -> Result<()> {
                let new = rows.where_cond(with, &t.detach())?;
                Var::from_tensor(t)?.set(&new)
            };
            replace(&self.codebook, &drawn)?;
            if let Some(ema) = &self.ema {
                // The restarted code is the average of one vector, itself.
                replace(&ema.embed_sum, &drawn)?;
                let one = Tensor::ones(k, z.dtype(), device)?;
                let size = mask.where_cond(&one, &ema.cluster_size.detach())?;
                Var::from_tensor(&ema.cluster_size)?.set(&size)?;
            }
            let reset = Tensor::full(threshold, k, device)?.to_dtype(z.dtype())?;
            usage_var.set(&mask.where_cond(&reset, &usage)?)?;
        }
        Ok(())
    }
}
