//! The one home of the Gaussian log-density and of the KL terms built on it:
//! the diagonal Gaussian's log-density, its closed-form KL to `N(0, I)` per
//! element, and the single-sample KL `log q(z) − log p(z)`; with them the
//! numerically stable log-sum-exp that mixtures and importance weights use.
//!
//! [`losses`](crate::losses) builds on these (it re-exports
//! [`log_normal_pdf`] and wraps the KL with a [`Reduction`](crate::losses::Reduction));
//! nothing here depends on `losses`.

use candle_core::{Result, Tensor};

use super::{DiagonalGaussian, LatentPrior};

/// `ln(2π)`, the constant of every Gaussian log-density.
pub const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// `log Σ_i exp(x_i)` along dimension `dim`, which is removed from the shape,
/// computed around the largest value so that no term overflows or underflows
/// to `ln 0` (`[1000, 1000]` gives `1000 + ln 2`, not infinity).
///
/// The largest value is detached: the gradient is exactly the softmax along
/// `dim`, as the identity `lse(x) = m + lse(x − m)` holds for any `m`.
///
/// # Errors
///
/// If `dim` is not a dimension of `xs`.
pub fn log_sum_exp(xs: &Tensor, dim: usize) -> Result<Tensor> {
    let m = xs.max_keepdim(dim)?.detach();
    xs.broadcast_sub(&m)?
        .exp()?
        .sum_keepdim(dim)?
        .log()?
        .add(&m)?
        .squeeze(dim)
}

fn same_shape(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        candle_core::bail!("{what}: shapes differ, {:?} vs {:?}", a.dims(), b.dims());
    }
    Ok(())
}

/// Log-density of `x` under `N(mean, diag(exp(logvar)))`, summed over every
/// dimension but the first: `Σ −½ ((x − μ)² e^{−logvar} + logvar + ln 2π)`, as
/// `[batch]` (the TensorFlow CVAE tutorial's `log_normal_pdf`).
///
/// # Shapes
///
/// `x`, `mean`, `logvar`: `[batch, …]`, all the same; returns `[batch]`.
pub fn log_normal_pdf(x: &Tensor, mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let inner = log_normal_pdf_elementwise(x, mean, logvar)?;
    if inner.rank() <= 1 {
        return Ok(inner);
    }
    inner.flatten_from(1)?.sum(1)
}

/// Log-density of each element of `x` under `N(mean, exp(logvar))`:
/// `−½ ((x − μ)² e^{−logvar} + logvar + ln 2π)`, same shape as the inputs
/// (the terms [`log_normal_pdf`] sums).
pub(crate) fn log_normal_pdf_elementwise(
    x: &Tensor,
    mean: &Tensor,
    logvar: &Tensor,
) -> Result<Tensor> {
    same_shape("log_normal_pdf", x, mean)?;
    same_shape("log_normal_pdf", x, logvar)?;
    let quad = x.sub(mean)?.sqr()?.mul(&logvar.neg()?.exp()?)?;
    (quad + logvar)?.affine(-0.5, -0.5 * LN_2PI)
}

/// Closed-form `KL(N(μ, e^{logvar}) ‖ N(0, 1))` per element:
/// `−½ (1 + logvar − μ² − e^{logvar})`, same shape as the inputs.
pub fn kl_standard_normal_elementwise(mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    same_shape("kl_standard_normal", mean, logvar)?;
    ((logvar.affine(1.0, 1.0)? - mean.sqr()?)? - logvar.exp()?)?.affine(-0.5, 0.0)
}

/// The single-sample KL estimate `log q(z) − log p(z)` per row, `[batch]`, at
/// a `z` `[batch, latent]` drawn from `q` (the Monte Carlo ELBO's KL part).
///
/// Every single-sample KL in vaekit goes through this function:
/// [`monte_carlo_kl`](super::monte_carlo_kl), the VAE's
/// `KlEstimator::SingleSample` and [`monte_carlo_elbo`](crate::losses::monte_carlo_elbo).
pub fn single_sample_kl<P: LatentPrior + ?Sized>(
    q: &DiagonalGaussian,
    prior: &P,
    z: &Tensor,
) -> Result<Tensor> {
    q.log_prob(z)?.sub(&prior.log_prob(z)?)
}

/// The single-sample KL estimate per row and latent dimension,
/// `log q(z_d) − log p(z_d)`, `[batch, latent]`, for a prior that factorises
/// over the dimensions ([`LatentPrior::log_prob_per_dim`]); `None` for one
/// that does not. Its rows sum to [`single_sample_kl`].
pub fn single_sample_kl_per_dim<P: LatentPrior + ?Sized>(
    q: &DiagonalGaussian,
    prior: &P,
    z: &Tensor,
) -> Result<Option<Tensor>> {
    match prior.log_prob_per_dim(z)? {
        Some(lp) => Ok(Some(q.log_prob_per_dim(z)?.sub(&lp)?)),
        None => Ok(None),
    }
}
