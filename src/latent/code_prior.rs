//! Priors over grids of discrete codes, from which a VQ-VAE samples: the
//! [`CodePrior`] trait, and the [`IndependentCodePrior`], one categorical
//! distribution per grid position, fitted to the codes of the training set
//! after training (the baseline the paper's autoregressive prior improves on).

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rand::RngCore;
use rand_distr::{Distribution, Uniform};

/// A distribution over grids `[h, w]` of code indices in `0..codes`.
///
/// Object-safe: a model may take a `&dyn CodePrior`.
pub trait CodePrior: std::fmt::Debug {
    /// The grid `(h, w)`.
    fn grid(&self) -> (usize, usize);

    /// The number of codes `K`.
    fn codes(&self) -> usize;

    /// `n` grids `[n, h, w]` (`u32`) drawn from the caller's generator, on
    /// `device`.
    fn sample_codes(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor>;

    /// `log p(grid)` of each grid `[n, h, w]` (`u32`), `[n]`.
    fn log_prob(&self, indices: &Tensor) -> Result<Tensor>;
}

/// One categorical distribution over the `K` codes per position of an
/// `h × w` grid, independent across positions: `log p(c) = Σ_{i,j} log
/// π_{ij}(c_{ij})`.
///
/// Its log-probabilities are a buffer, `fixed_log_probs` `[h·w, K]` under the
/// prior's path (`prior.` in a VQ-VAE), so a saved model keeps them; they
/// start uniform, and [`fit`](Self::fit) sets them from codes.
#[derive(Debug, Clone)]
pub struct IndependentCodePrior {
    grid: (usize, usize),
    codes: usize,
    log_probs: Tensor,
}

/// An independent categorical prior over `grid` grids of `codes` codes,
/// uniform until fitted, its buffer created in `vb`.
///
/// # Errors
///
/// A candle error if the buffer cannot be created.
pub fn independent_code_prior(
    grid: (usize, usize),
    codes: usize,
    vb: VarBuilder,
) -> Result<IndependentCodePrior> {
    let uniform = -(codes.max(1) as f64).ln();
    let log_probs = vb.get_with_hints(
        (grid.0 * grid.1, codes),
        "fixed_log_probs",
        Init::Const(uniform),
    )?;
    Ok(IndependentCodePrior {
        grid,
        codes,
        log_probs,
    })
}

impl IndependentCodePrior {
    /// The log-probabilities `[h·w, K]`, untracked.
    pub fn log_probs(&self) -> Tensor {
        self.log_probs.detach()
    }

    /// Sets the distributions to the code frequencies of `indices` `[n, h,
    /// w]` (`u32`) per position, with `smoothing` added to every count (1:
    /// Laplace's rule, so that no code has probability zero):
    /// `π_{ij}(k) = (count_{ij}(k) + smoothing) / (n + K·smoothing)`.
    ///
    /// # Errors
    ///
    /// When `indices` is not `[n, h, w]` of this grid, an index is out of
    /// range, or `smoothing` is negative or not finite (or zero with a code
    /// never seen).
    pub fn fit(&self, indices: &Tensor, smoothing: f64) -> Result<()> {
        let counts = self.count(indices)?;
        self.set_from_counts(&counts, smoothing)
    }

    /// The count of each code at each position of `indices` `[n, h, w]`,
    /// `[h·w, K]` in `f64`: the statistics of [`fit`](Self::fit), which can
    /// be added up over batches and passed to
    /// [`set_from_counts`](Self::set_from_counts).
    ///
    /// # Errors
    ///
    /// When `indices` is not `[n, h, w]` of this grid, or an index is out of
    /// range.
    pub fn count(&self, indices: &Tensor) -> Result<Tensor> {
        let (h, w) = self.grid;
        match indices.dims() {
            [_, a, b] if (*a, *b) == (h, w) => {}
            dims => candle_core::bail!("code prior: expected codes [n, {h}, {w}], got {dims:?}"),
        }
        let k = self.codes;
        let flat = indices
            .to_dtype(DType::U32)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        let mut counts = vec![0f64; h * w * k];
        for (i, &c) in flat.iter().enumerate() {
            let c = c as usize;
            if c >= k {
                candle_core::bail!("code prior: code index {c} out of range 0..{k}");
            }
            counts[(i % (h * w)) * k + c] += 1.0;
        }
        Tensor::from_vec(counts, (h * w, k), indices.device())
    }

    /// Sets the distributions from counts `[h·w, K]` (see
    /// [`count`](Self::count)), with `smoothing` added to every count.
    ///
    /// # Errors
    ///
    /// When `counts` is not `[h·w, K]`, or `smoothing` is negative or not
    /// finite, or a position would get a code of probability zero.
    pub fn set_from_counts(&self, counts: &Tensor, smoothing: f64) -> Result<()> {
        let (h, w) = self.grid;
        if counts.dims() != [h * w, self.codes] {
            candle_core::bail!(
                "code prior: expected counts [{}, {}], got {:?}",
                h * w,
                self.codes,
                counts.dims()
            );
        }
        if !(smoothing >= 0.0 && smoothing.is_finite()) {
            candle_core::bail!("code prior: smoothing {smoothing} must be finite and at least 0");
        }
        let counts = counts.to_dtype(DType::F64)?.affine(1.0, smoothing)?; // [hw, K]
        let totals = counts.sum_keepdim(1)?; // [hw, 1]
        let log_probs = counts.broadcast_div(&totals)?.log()?; // [hw, K]
        let min = log_probs.min_all()?.to_scalar::<f64>()?;
        if min == f64::NEG_INFINITY || min.is_nan() {
            candle_core::bail!(
                "code prior: a code was never seen and smoothing is 0, which gives it probability zero"
            );
        }
        Var::from_tensor(&self.log_probs)?.set(&log_probs.to_dtype(self.log_probs.dtype())?)
    }
}

impl CodePrior for IndependentCodePrior {
    fn grid(&self) -> (usize, usize) {
        self.grid
    }

    fn codes(&self) -> usize {
        self.codes
    }

    /// Draws on the host, position after position, grid after grid, by
    /// inverting the cumulative distribution at one uniform draw each.
    fn sample_codes(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        let (h, w) = self.grid;
        let k = self.codes;
        let probs = self
            .log_probs()
            .to_dtype(DType::F64)?
            .exp()?
            .to_vec2::<f64>()?;
        let cumulative: Vec<Vec<f64>> = probs
            .iter()
            .map(|p| {
                p.iter()
                    .scan(0.0, |acc, v| {
                        *acc += v;
                        Some(*acc)
                    })
                    .collect()
            })
            .collect();
        let unit = Uniform::new(0.0f64, 1.0).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut out = Vec::with_capacity(n * h * w);
        for _ in 0..n {
            for c in &cumulative {
                let total = c.last().copied().unwrap_or(1.0);
                let u = unit.sample(&mut *rng) * total;
                let code = c.iter().position(|&v| u < v).unwrap_or(k - 1);
                out.push(code as u32);
            }
        }
        Tensor::from_vec(out, (n, h, w), device)
    }

    fn log_prob(&self, indices: &Tensor) -> Result<Tensor> {
        let (h, w) = self.grid;
        let n = match indices.dims() {
            [n, a, b] if (*a, *b) == (h, w) => *n,
            dims => candle_core::bail!("code prior: expected codes [n, {h}, {w}], got {dims:?}"),
        };
        let k = self.codes;
        // Index of (position, code) in the flattened [h·w·K] table.
        let offsets: Vec<u32> = (0..h * w).map(|i| (i * k) as u32).collect();
        let offsets = Tensor::from_vec(offsets, (1, h * w), indices.device())?; // [1, hw]
        let flat = indices
            .to_dtype(DType::U32)?
            .reshape((n, h * w))?
            .broadcast_add(&offsets)?
            .flatten_all()?; // [n·hw]
        let table = self.log_probs().flatten_all()?; // [hw·K]
        table.index_select(&flat, 0)?.reshape((n, h * w))?.sum(1) // [n]
    }
}
