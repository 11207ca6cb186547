//! Categorical latents relaxed by the Gumbel-softmax (Jang et al. 2017;
//! Maddison et al. 2017's Concrete distribution): Gumbel noise from the
//! caller's generator, the relaxed and straight-through samples, the analytic
//! KL to the uniform categorical, and the temperature schedule.
//!
//! A latent of `N` variables with `K` classes each is a tensor `[b, N, K]`
//! (flattened to `[b, N·K]` between encoder and decoder): logits from the
//! encoder, one-hot or relaxed vectors into the decoder.

use candle_core::{Device, Result, Shape, Tensor, D};
use rand::RngCore;
use rand_distr::{Distribution, Uniform};
use serde::{Deserialize, Serialize};

use crate::{Error, Result as VResult};

/// Standard Gumbel noise `g = −ln(−ln u)`, `u ~ U(0, 1)`, of `shape` on
/// `device`, drawn on the host from `rng` in row-major order (so the CPU and
/// CUDA see the same noise). `u` is kept in `[2^−53, 1 − 2^−53]`, so `g` is
/// finite.
///
/// # Errors
///
/// A candle error if the tensor cannot be made.
pub fn gumbel_noise(
    shape: impl Into<Shape>,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let tiny = f64::EPSILON / 2.0;
    let unit = Uniform::new_inclusive(tiny, 1.0 - tiny)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| -(-unit.sample(&mut *rng).ln()).ln() as f32)
        .collect();
    Tensor::from_vec(data, shape, device)
}

/// Whether a training sample is the relaxed one or its straight-through
/// one-hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Relaxation {
    /// `y = softmax((logits + g) / τ)`: the decoder sees the relaxed vector
    /// (PyTorch's `F.gumbel_softmax(..., hard=False)`).
    #[default]
    Soft,
    /// The one-hot of `argmax y` in the forward pass, the gradient of `y` in
    /// the backward pass, `one_hot − sg(y) + y` (`hard=True`).
    StraightThrough,
}

/// The Gumbel-softmax sample of `logits` `[…, K]` with Gumbel `noise` of
/// the same shape at temperature `tau`, over the last dimension: the relaxed
/// `softmax((logits + noise) / τ)`, or with [`Relaxation::StraightThrough`]
/// its one-hot with the relaxed gradient. As PyTorch's `F.gumbel_softmax`
/// with that noise.
///
/// # Errors
///
/// When the shapes differ, or `tau` is not positive and finite.
pub fn gumbel_softmax(
    logits: &Tensor,
    noise: &Tensor,
    tau: f64,
    relaxation: Relaxation,
) -> Result<Tensor> {
    if logits.dims() != noise.dims() {
        candle_core::bail!(
            "gumbel_softmax: logits {:?} and noise {:?} differ",
            logits.dims(),
            noise.dims()
        );
    }
    if !(tau > 0.0 && tau.is_finite()) {
        candle_core::bail!("gumbel_softmax: the temperature {tau} must be positive and finite");
    }
    let noise = noise.to_dtype(logits.dtype())?;
    // `softmax`, not `softmax_last_dim`, whose fused kernel has no backward pass.
    let soft = candle_nn::ops::softmax(&(logits + noise)?.affine(1.0 / tau, 0.0)?, D::Minus1)?;
    match relaxation {
        Relaxation::Soft => Ok(soft),
        Relaxation::StraightThrough => {
            let hard = one_hot_argmax(&soft.detach())?;
            // one_hot − sg(y) + y: the value of one_hot, the gradient of y.
            (hard - soft.detach())? + soft
        }
    }
}

/// The one-hot of the argmax over the last dimension of `xs` `[…, K]`, in
/// its dtype (the first index of a tie), untracked.
///
/// # Errors
///
/// A candle error from the tensor ops.
pub fn one_hot_argmax(xs: &Tensor) -> Result<Tensor> {
    let k = xs.dim(D::Minus1)?;
    let idx = xs.detach().argmax_keepdim(D::Minus1)?; // [..., 1]
    let classes = Tensor::arange(0u32, k as u32, xs.device())?;
    idx.broadcast_eq(&classes)?.to_dtype(xs.dtype())
}

/// `KL(q ‖ uniform)` of the categoricals `q = softmax(logits)` over the last
/// dimension `K`, `Σ_k q_k · (ln q_k + ln K)`, summed over every variable
/// of a row: `[b, N, K]` → `[b]`. Exact, and finite for any finite logits
/// (through the log-softmax).
///
/// # Errors
///
/// When `logits` is not `[b, N, K]`.
pub fn kl_uniform_categorical(logits: &Tensor) -> Result<Tensor> {
    let k = match logits.dims() {
        [_, _, k] => *k,
        dims => candle_core::bail!("kl_uniform_categorical: expected [b, N, K], got {dims:?}"),
    };
    let log_q = candle_nn::ops::log_softmax(logits, D::Minus1)?; // [b, N, K]
    let q = log_q.exp()?;
    (q * log_q.affine(1.0, (k as f64).ln())?)?
        .sum(D::Minus1)?
        .sum(D::Minus1) // [b]
}

/// `log q(y)` of one-hot (or any) vectors `y` `[b, N, K]` under the
/// categoricals `softmax(logits)`, `Σ_n Σ_k y_nk · ln q_nk`: `[b]`.
///
/// # Errors
///
/// When the shapes differ.
pub fn categorical_log_prob(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    if logits.dims() != y.dims() || logits.rank() != 3 {
        candle_core::bail!(
            "categorical_log_prob: expected logits and vectors of one [b, N, K] shape, got {:?} and {:?}",
            logits.dims(),
            y.dims()
        );
    }
    let log_q = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    (log_q * y.to_dtype(logits.dtype())?)?
        .sum(D::Minus1)?
        .sum(D::Minus1)
}

/// One-hot vectors `[n, N, K]` of `N` classes drawn uniformly from `K` each,
/// from `rng`, on `device`, in `f32`.
///
/// # Errors
///
/// A candle error if the tensor cannot be made.
pub fn uniform_one_hot(
    n: usize,
    variables: usize,
    classes: usize,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    let pick =
        Uniform::new(0, classes.max(1)).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let mut data = vec![0f32; n * variables * classes];
    for row in data.chunks_mut(classes.max(1)).take(n * variables) {
        row[pick.sample(&mut *rng)] = 1.0;
    }
    Tensor::from_vec(data, (n, variables, classes), device)
}

/// The temperature of the Gumbel-softmax over a run: exponential decay from
/// `initial` to a `floor`, `τ(t) = max(floor, initial · exp(−rate · t))` at
/// the 1-based global training step `t` (`t = 0`, outside a run: `initial`),
/// as in Jang et al. (2017), whose MNIST model anneals from 1 to 0.5.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TemperatureSchedule {
    /// τ at step 0, positive.
    pub initial: f64,
    /// The decay rate per step, at least 0 (0: a constant τ).
    pub rate: f64,
    /// The lowest τ, positive.
    pub floor: f64,
}

impl Default for TemperatureSchedule {
    /// From 1 to 0.5 at a rate of 1e-4 per step, the faster of the paper's
    /// two rates (τ = 0.5 after 6,932 steps).
    fn default() -> Self {
        Self {
            initial: 1.0,
            rate: 1e-4,
            floor: 0.5,
        }
    }
}

crate::setters::with_setters!(TemperatureSchedule {
    with_initial(initial: f64),
    with_rate(rate: f64),
    with_floor(floor: f64),
});

impl TemperatureSchedule {
    /// A constant temperature `tau`.
    pub fn constant(tau: f64) -> Self {
        Self {
            initial: tau,
            rate: 0.0,
            floor: tau,
        }
    }

    /// τ at the 1-based global step `step`.
    pub fn at(&self, step: usize) -> f64 {
        (self.initial * (-self.rate * step as f64).exp()).max(self.floor)
    }

    /// Checks the values; errors name fields under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a temperature that is not positive and finite,
    /// or a negative or non-finite rate.
    pub fn validate(&self, field: &str) -> VResult<()> {
        for (v, name) in [(self.initial, "initial"), (self.floor, "floor")] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::config(
                    format!("{field}.{name}"),
                    format!("{v}: a temperature must be positive and finite"),
                ));
            }
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(Error::config(
                format!("{field}.rate"),
                format!("{} must be finite and at least 0", self.rate),
            ));
        }
        Ok(())
    }
}
