//! The evidence lower bound, with its terms kept apart.

use candle_core::{Result, Tensor};

use crate::latent::{single_sample_kl, DiagonalGaussian, LatentPrior};

/// A VAE loss (the negative ELBO) and its terms, each a scalar tensor:
/// `total = reconstruction + β · kl`.
#[derive(Debug, Clone)]
pub struct Elbo {
    /// The loss to minimise.
    pub total: Tensor,
    /// Reconstruction term `−log p(x | z)`.
    pub reconstruction: Tensor,
    /// KL term (analytic or estimated).
    pub kl: Tensor,
    /// Weight of the KL term.
    pub beta: f64,
}

impl Elbo {
    /// Combines the two terms: `total = reconstruction + β · kl`.
    pub fn new(reconstruction: Tensor, kl: Tensor, beta: f64) -> Result<Self> {
        let total = if beta == 1.0 {
            reconstruction.add(&kl)?
        } else {
            reconstruction.add(&kl.affine(beta, 0.0)?)?
        };
        Ok(Self {
            total,
            reconstruction,
            kl,
            beta,
        })
    }
}

/// The single-sample Monte Carlo ELBO of the TensorFlow CVAE tutorial, per
/// example: `log p(x|z) + log p(z) − log q(z|x)` with `z` the sample the decoder
/// saw. Takes `log_px_z` `[batch]` and returns the ELBO `[batch]` (maximise it;
/// its negated batch mean is the tutorial's loss).
pub fn monte_carlo_elbo(
    log_px_z: &Tensor,
    z: &Tensor,
    posterior: &DiagonalGaussian,
    prior: &dyn LatentPrior,
) -> Result<Tensor> {
    log_px_z.sub(&single_sample_kl(posterior, prior, z)?) // [b]
}
