//! The importance-sampled log-likelihood
//! `log p(x) ≈ log (1/k) Σ_j p(x, z_j) / q(z_j | x)`, `z_j ~ q(z | x)`
//! (Burda et al. 2016), batched over images and samples, with a stable
//! log-sum-exp accumulated in `f64`.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::LatentModel;
use crate::data::{Dataset, LastBatch, Shuffle};
use crate::models::Condition;
use crate::{Error, Result};

/// The most importance samples per image [`ImportanceSampling::validate`]
/// accepts (Burda et al. use 5,000; a million takes minutes per image).
pub const MAX_IMPORTANCE_SAMPLES: usize = 1_000_000;
/// The most images, and (image, sample) pairs, one pass may take.
pub const MAX_PER_PASS: usize = 1 << 20;
/// The most decoded values one pass may hold (pairs × values per image): 2^28,
/// 1 GiB of `f32`.
pub const MAX_PASS_VALUES: u64 = 1 << 28;

/// Settings of an importance-sampled likelihood estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportanceSampling {
    /// Samples `k` per image (Burda et al. report `k = 5000`).
    pub samples: usize,
    /// Seed of the noise. Image `i` of a dataset draws its `k · latent`
    /// values from `ChaCha8Rng::seed_from_u64(seed)` on stream `i`, sample
    /// after sample, so the estimate does not depend on how the work is
    /// batched ([`importance_noise`]).
    pub seed: u64,
    /// Images encoded per pass.
    pub images_per_pass: usize,
    /// The memory budget: (image, sample) pairs decoded per pass. Peak memory
    /// is about this many times the decoder's activations for one code.
    pub pairs_per_pass: usize,
}

impl Default for ImportanceSampling {
    /// 5,000 samples, seed 0, 100 images and 8,192 pairs per pass.
    fn default() -> Self {
        Self {
            samples: 5000,
            seed: 0,
            images_per_pass: 100,
            pairs_per_pass: 8192,
        }
    }
}

crate::setters::with_setters!(ImportanceSampling {
    with_samples(samples: usize),
    with_seed(seed: u64),
    with_images_per_pass(images_per_pass: usize),
    with_pairs_per_pass(pairs_per_pass: usize),
});

impl ImportanceSampling {
    /// Checks the values.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming a count that is zero, samples above
    /// [`MAX_IMPORTANCE_SAMPLES`], or a pass size above [`MAX_PER_PASS`].
    pub fn validate(&self) -> Result<()> {
        for (name, v, max) in [
            ("samples", self.samples, MAX_IMPORTANCE_SAMPLES),
            ("images_per_pass", self.images_per_pass, MAX_PER_PASS),
            ("pairs_per_pass", self.pairs_per_pass, MAX_PER_PASS),
        ] {
            if v == 0 {
                return Err(Error::config(name, "must be positive"));
            }
            if v > max {
                return Err(Error::config(
                    name,
                    format!("{v} is more than the most accepted, {max}"),
                ));
            }
        }
        Ok(())
    }
}

/// Per-image results of an importance-sampled estimate.
///
/// Two uncertainties describe the mean NLL, and they answer different
/// questions: [`nll_standard_error_over_images`](Self::nll_standard_error_over_images)
/// is the spread of the images' `log p(x)` (how the figure would move on
/// another test set of the same size), and
/// [`nll_monte_carlo_standard_error`](Self::nll_monte_carlo_standard_error)
/// is the spread of the importance-sampling estimate itself on these images
/// (how it would move with other noise), from the weights' variance.
#[derive(Debug, Clone, PartialEq)]
pub struct LikelihoodEstimate {
    /// `log p(x)` estimates per image: `log (1/k) Σ_j w_j`, in nats.
    pub log_px: Vec<f64>,
    /// The Monte Carlo ELBO per image: `(1/k) Σ_j log w_j`, from the same
    /// samples (never above [`log_px`](Self::log_px), by Jensen).
    pub elbo: Vec<f64>,
    /// The effective sample size of each image's importance weights,
    /// `k_eff = (Σ_j w_j)² / Σ_j w_j² = 1 / Σ_j w̃_j²` with the normalised
    /// weights `w̃_j = w_j / Σ_i w_i`: between 1 (one weight dominates) and
    /// `k` (all weights equal).
    pub effective_sample_size: Vec<f64>,
    /// Samples per image.
    pub samples: usize,
    /// Values per image (`c · h · w`), for bits per dimension.
    pub dims: usize,
}

impl LikelihoodEstimate {
    /// Mean negative log-likelihood, nats per image.
    pub fn nll(&self) -> f64 {
        -mean(&self.log_px)
    }

    /// Mean `−ELBO`, nats per image, from the same samples.
    pub fn negative_elbo(&self) -> f64 {
        -mean(&self.elbo)
    }

    /// [`nll`](Self::nll) in bits per dimension: `nll / (dims · ln 2)`.
    pub fn bits_per_dim(&self) -> f64 {
        self.nll() / (self.dims.max(1) as f64 * std::f64::consts::LN_2)
    }

    /// Standard error of [`nll`](Self::nll) over the images: the sample
    /// standard deviation of the images' `log p(x)` over `√n`. It measures
    /// how the mean varies from image to image, not the Monte Carlo error of
    /// the estimate ([`nll_monte_carlo_standard_error`](Self::nll_monte_carlo_standard_error)).
    /// NaN for fewer than 2 images.
    pub fn nll_standard_error_over_images(&self) -> f64 {
        let n = self.log_px.len();
        if n < 2 {
            return f64::NAN;
        }
        let m = mean(&self.log_px);
        let var = self.log_px.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    }

    /// The standard error over images; renamed
    /// [`nll_standard_error_over_images`](Self::nll_standard_error_over_images),
    /// which says what it is.
    #[deprecated(
        since = "0.1.0",
        note = "use nll_standard_error_over_images, or nll_monte_carlo_standard_error for the estimate's own error"
    )]
    pub fn nll_standard_error(&self) -> f64 {
        self.nll_standard_error_over_images()
    }

    /// The Monte Carlo variance of each image's `log p̂(x)`, by the delta
    /// method: `Var[p̂] / p̂² ≈ (1/k) · (k · Σ_j w̃_j² − 1) = 1/k_eff − 1/k`,
    /// with the weights' sample variance (normalised by `k`) for `Var[w]`.
    /// 0 when all weights are equal; up to `1 − 1/k` when one dominates.
    pub fn log_px_monte_carlo_variance(&self) -> Vec<f64> {
        let k = self.samples.max(1) as f64;
        self.effective_sample_size
            .iter()
            .map(|ess| (1.0 / ess - 1.0 / k).max(0.0))
            .collect()
    }

    /// The Monte Carlo standard error of [`nll`](Self::nll):
    /// `√(Σ_i Var[log p̂(x_i)]) / n`, each image's noise being drawn
    /// independently ([`log_px_monte_carlo_variance`](Self::log_px_monte_carlo_variance)).
    /// It says how far the estimate on these images would move with other
    /// noise, at first order; the delta method leaves out the estimate's
    /// bias (`log p̂` is low by about half its variance).
    pub fn nll_monte_carlo_standard_error(&self) -> f64 {
        let n = self.effective_sample_size.len();
        let total: f64 = self.log_px_monte_carlo_variance().iter().sum();
        total.sqrt() / n.max(1) as f64
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// `log (1/n) Σ exp(v)`, stably (max-shifted, in `f64`); `−∞` for no value
/// or all `−∞`.
pub fn log_mean_exp(values: &[f64]) -> f64 {
    let m = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    let s: f64 = values.iter().map(|v| (v - m).exp()).sum();
    m + s.ln() - (values.len() as f64).ln()
}

/// The noise of image `index`: `samples · latent` standard-normal draws from
/// `ChaCha8Rng::seed_from_u64(seed)` on stream `index`, sample after sample,
/// as `[samples, latent]` values, row-major.
pub fn importance_noise(seed: u64, index: usize, samples: usize, latent: usize) -> Vec<f32> {
    let mut rng = image_rng(seed, index);
    (0..samples * latent)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect()
}

fn image_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// A running `log Σ exp(v)`, in `f64`: a running maximum `m` and
/// `Σ exp(v − m)`, rescaled when the maximum grows.
#[derive(Debug, Clone, Copy)]
struct LogSumExp {
    max: f64,
    scaled: f64,
}

impl LogSumExp {
    const EMPTY: Self = Self {
        max: f64::NEG_INFINITY,
        scaled: 0.0,
    };

    fn add(&mut self, v: f64) {
        if v > self.max {
            self.scaled = self.scaled * (self.max - v).exp() + 1.0;
            self.max = v;
        } else {
            self.scaled += (v - self.max).exp();
        }
    }

    /// `log Σ exp(v)` over the values added.
    fn value(&self) -> f64 {
        self.max + self.scaled.ln()
    }
}

/// Per image, the running sums of its log weights `log w_j`: `log Σ w_j`,
/// `log Σ w_j²` and `Σ log w_j`, in `f64`, sample after sample, so they do
/// not depend on how the work is batched.
struct Accumulator {
    weights: Vec<LogSumExp>,
    squares: Vec<LogSumExp>,
    sum: Vec<f64>,
}

impl Accumulator {
    fn new(n: usize) -> Self {
        Self {
            weights: vec![LogSumExp::EMPTY; n],
            squares: vec![LogSumExp::EMPTY; n],
            sum: vec![0.0; n],
        }
    }

    fn add(&mut self, i: usize, v: f64) {
        self.sum[i] += v;
        self.weights[i].add(v);
        self.squares[i].add(2.0 * v);
    }

    /// `k_eff = (Σ w)² / Σ w² = exp(2 log Σ w − log Σ w²)` of image `i`.
    fn effective_sample_size(&self, i: usize) -> f64 {
        (2.0 * self.weights[i].value() - self.squares[i].value()).exp()
    }
}

/// The importance-sampled `log p(x)` of each of `images` `[n, c, h, w]`, with
/// `settings.samples` draws per image; image `j` is numbered `indices[j]` for
/// its noise ([`importance_noise`]). A conditioned model scores
/// `log p(x | c)` with the condition `condition` gives (the images' labels,
/// `[n]`); others ignore it.
///
/// Work goes in passes of at most `images_per_pass` images and
/// `pairs_per_pass` decoded (image, sample) pairs; the log-sum-exp is
/// accumulated per image in `f64`, so `k` may be in the thousands.
///
/// # Errors
///
/// [`Error::Config`] for bad settings or `indices` of the wrong length;
/// [`Error::Candle`] from the model, or for a weight that is NaN.
pub fn importance_sampled_log_likelihood<M: LatentModel + ?Sized>(
    model: &M,
    images: &Tensor,
    condition: Condition<'_>,
    indices: &[usize],
    settings: &ImportanceSampling,
) -> Result<LikelihoodEstimate> {
    estimate(
        model,
        images,
        condition,
        indices,
        settings,
        &indicatif::ProgressBar::hidden(),
    )
}

/// [`importance_sampled_log_likelihood`], advancing `bar` by the pairs done.
fn estimate<M: LatentModel + ?Sized>(
    model: &M,
    images: &Tensor,
    condition: Condition<'_>,
    indices: &[usize],
    settings: &ImportanceSampling,
    bar: &indicatif::ProgressBar,
) -> Result<LikelihoodEstimate> {
    settings.validate()?;
    let n = images.dim(0)?;
    if indices.len() != n {
        return Err(Error::config(
            "indices",
            format!("{} indices for {n} images", indices.len()),
        ));
    }
    let dims = images.elem_count() / n.max(1);
    let d = model.latent_dim();
    let k = settings.samples;
    let per_pass = settings.images_per_pass.min(settings.pairs_per_pass).max(1);
    // A pass decodes up to this many (image, sample) pairs, each with `dims`
    // pixel values and `d` noise values: checked before anything is drawn.
    let pairs = settings.pairs_per_pass.min(n.saturating_mul(k)) as u64;
    let widest = dims.max(d) as u64;
    if pairs.saturating_mul(widest) > MAX_PASS_VALUES {
        return Err(Error::config(
            "pairs_per_pass",
            format!(
                "{pairs} (image, sample) pairs of {widest} values each are more than \
                 {MAX_PASS_VALUES} values in one pass; use fewer pairs per pass"
            ),
        ));
    }
    let mut log_px = Vec::with_capacity(n);
    let mut elbo = Vec::with_capacity(n);
    let mut effective_sample_size = Vec::with_capacity(n);
    for start in (0..n).step_by(per_pass) {
        let b = per_pass.min(n - start);
        let xs = images.narrow(0, start, b)?; // [b, c, h, w]
        let labels = match condition {
            Condition::Labels(l) => Some(l.narrow(0, start, b)?),
            _ => None,
        };
        let pass_condition = labels.as_ref().map_or(condition, Condition::Labels);
        let q = model.posterior_of(&xs)?; // [b, d]
        let mut rngs: Vec<ChaCha8Rng> = indices[start..start + b]
            .iter()
            .map(|&i| image_rng(settings.seed, i))
            .collect();
        let mut acc = Accumulator::new(b);
        let s_max = (settings.pairs_per_pass / b).clamp(1, k);
        let mut done = 0;
        while done < k {
            let s = s_max.min(k - done);
            let mut noise = vec![0f32; s * b * d];
            for (i, rng) in rngs.iter_mut().enumerate() {
                for j in 0..s {
                    let row = (j * b + i) * d;
                    for v in &mut noise[row..row + d] {
                        *v = StandardNormal.sample(&mut *rng);
                    }
                }
            }
            let eps = Tensor::from_vec(noise, (s, b, d), xs.device())?; // [s, b, d]
            let lw = model.log_weights(&q, &xs, pass_condition, &eps)?; // [s, b]
            let lw = lw.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
            for row in &lw {
                for (i, &v) in row.iter().enumerate() {
                    if v.is_nan() {
                        return Err(Error::Candle(candle_core::Error::Msg(format!(
                            "importance sampling: a log weight of image {} is NaN",
                            indices[start + i]
                        ))));
                    }
                    acc.add(i, v);
                }
            }
            done += s;
            bar.inc((s * b) as u64);
        }
        for i in 0..b {
            log_px.push(acc.weights[i].value() - (k as f64).ln());
            elbo.push(acc.sum[i] / k as f64);
            effective_sample_size.push(acc.effective_sample_size(i));
        }
    }
    Ok(LikelihoodEstimate {
        log_px,
        elbo,
        effective_sample_size,
        samples: k,
        dims,
    })
}

/// [`importance_sampled_log_likelihood`] over a dataset, in dataset order,
/// with each image's dataset index as its noise stream. On a terminal a
/// progress bar on standard error counts the (image, sample) pairs done and
/// the time left.
///
/// # Errors
///
/// [`Error::Data`] for an empty dataset; otherwise as
/// [`importance_sampled_log_likelihood`].
pub fn dataset_log_likelihood<M: LatentModel + ?Sized>(
    model: &M,
    data: &Dataset,
    settings: &ImportanceSampling,
    device: &Device,
) -> Result<LikelihoodEstimate> {
    settings.validate()?;
    if data.is_empty() {
        return Err(Error::Data {
            path: "evaluation set".into(),
            reason: "holds no image".into(),
        });
    }
    // Long estimates show a bar with the time left on a terminal's stderr.
    let bar = crate::train::progress_bar(
        crate::train::Progress::Auto,
        data.len().saturating_mul(settings.samples),
    );
    let mut total: Option<LikelihoodEstimate> = None;
    for batch in data.batches(
        settings.images_per_pass,
        Shuffle::None,
        LastBatch::Keep,
        device,
    )? {
        let batch = batch?;
        let est = estimate(
            model,
            &batch.images,
            Condition::of(&batch),
            &batch.indices,
            settings,
            &bar,
        )?;
        match &mut total {
            None => total = Some(est),
            Some(t) => {
                t.log_px.extend(est.log_px);
                t.elbo.extend(est.elbo);
                t.effective_sample_size.extend(est.effective_sample_size);
            }
        }
    }
    bar.finish_and_clear();
    total.ok_or_else(|| Error::Data {
        path: "evaluation set".into(),
        reason: "holds no image".into(),
    })
}
