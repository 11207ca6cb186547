//! Gaussian log-densities and negative log-likelihoods.

use candle_core::{Result, Tensor};

use super::{same_shape, sum_per_example, Reduction};
use crate::latent::LN_2PI;

/// Negative log-likelihood of `target` under `N(mean, σ²)` with a fixed `sigma`:
/// `½((x − μ)/σ)² + ln σ + ½ ln 2π`, element-wise, reduced.
///
/// This is the digit-conditioned VAE tutorial's reconstruction term, with
/// `σ = 0.5` (its decoder standard deviation).
pub fn gaussian_nll(
    mean: &Tensor,
    target: &Tensor,
    sigma: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    same_shape("gaussian_nll", mean, target)?;
    if !(sigma.is_finite() && sigma > 0.0) {
        candle_core::bail!("gaussian_nll: sigma {sigma} must be positive");
    }
    let c = sigma.ln() + 0.5 * LN_2PI;
    let loss = mean.sub(target)?.sqr()?.affine(0.5 / (sigma * sigma), c)?;
    reduction.apply(&loss)
}

/// Log-density of `x` under `N(mean, diag(exp(logvar)))`, summed over every
/// dimension but the first: `Σ −½ ((x − μ)² e^{−logvar} + logvar + ln 2π)`, as
/// `[batch]` (the TensorFlow CVAE tutorial's `log_normal_pdf`).
pub fn log_normal_pdf(x: &Tensor, mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    same_shape("log_normal_pdf", x, mean)?;
    same_shape("log_normal_pdf", x, logvar)?;
    let quad = x.sub(mean)?.sqr()?.mul(&logvar.neg()?.exp()?)?;
    let inner = (quad + logvar)?.affine(-0.5, -0.5 * LN_2PI)?;
    sum_per_example(&inner)
}
