//! KL divergence of a diagonal Gaussian from the standard normal.

use candle_core::{Result, Tensor};

use super::{same_shape, Reduction};

/// Analytic `KL(N(μ, e^{logvar}) ‖ N(0, 1))` per element:
/// `−½ (1 + logvar − μ² − e^{logvar})`, reduced (sum it over the latent
/// dimensions for the KL of the whole vector: [`Reduction::BatchMean`] gives the
/// batch mean of per-example KLs).
pub fn kl_standard_normal(mean: &Tensor, logvar: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("kl_standard_normal", mean, logvar)?;
    let inner = ((logvar.affine(1.0, 1.0)? - mean.sqr()?)? - logvar.exp()?)?;
    reduction.apply(&inner.affine(-0.5, 0.0)?)
}
