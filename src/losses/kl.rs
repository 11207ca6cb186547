//! KL divergence of a diagonal Gaussian from the standard normal, reduced
//! (the element-wise formula lives in [`latent`](crate::latent)).

use candle_core::{Result, Tensor};

use super::Reduction;
use crate::latent::kl_standard_normal_elementwise;

/// Analytic `KL(N(μ, e^{logvar}) ‖ N(0, 1))` per element:
/// `−½ (1 + logvar − μ² − e^{logvar})`, reduced (sum it over the latent
/// dimensions for the KL of the whole vector: [`Reduction::BatchMean`] gives the
/// batch mean of per-example KLs).
pub fn kl_standard_normal(mean: &Tensor, logvar: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reduction.apply(&kl_standard_normal_elementwise(mean, logvar)?)
}
