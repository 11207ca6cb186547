//! The Gaussian negative log-likelihood of pixels (the log-density itself
//! lives in [`latent`](crate::latent), with the KL terms).

use candle_core::{Result, Tensor};

use super::{same_shape, Reduction};
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
