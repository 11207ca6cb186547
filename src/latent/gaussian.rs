//! The diagonal-Gaussian posterior `q(z | x) = N(mean, diag(exp(logvar)))`.

use candle_core::{Result, Tensor, D};
use rand::RngCore;

use super::density::{kl_standard_normal_elementwise, log_normal_pdf, log_normal_pdf_elementwise};
use super::noise::standard_normal;

/// A batch of diagonal Gaussians, one per row: `mean` and `logvar` are both
/// `[batch, latent]`.
#[derive(Debug, Clone)]
pub struct DiagonalGaussian {
    mean: Tensor,
    logvar: Tensor,
}

impl DiagonalGaussian {
    /// A Gaussian with the given mean and log-variance, both `[batch, latent]`.
    ///
    /// # Errors
    ///
    /// If the two shapes differ or are not rank 2.
    pub fn new(mean: Tensor, logvar: Tensor) -> Result<Self> {
        if mean.dims() != logvar.dims() || mean.rank() != 2 {
            candle_core::bail!(
                "diagonal Gaussian: mean {:?} and logvar {:?} must both be [batch, latent]",
                mean.dims(),
                logvar.dims()
            );
        }
        Ok(Self { mean, logvar })
    }

    /// Splits encoder output `[batch, 2·latent]` into `[mean | logvar]`.
    ///
    /// # Errors
    ///
    /// If `params` is not rank 2 with an even width.
    pub fn from_params(params: &Tensor) -> Result<Self> {
        let (_, w) = params.dims2()?;
        if w == 0 || w % 2 != 0 {
            candle_core::bail!(
                "posterior parameters must be [batch, 2·latent], got {:?}",
                params.dims()
            );
        }
        let d = w / 2;
        Self::new(params.narrow(1, 0, d)?, params.narrow(1, d, d)?)
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.mean.dims().get(1).copied().unwrap_or(0)
    }

    /// The means `[batch, latent]`.
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// The log-variances `[batch, latent]`.
    pub fn logvar(&self) -> &Tensor {
        &self.logvar
    }

    /// The standard deviations `exp(logvar / 2)`.
    pub fn std(&self) -> Result<Tensor> {
        self.logvar.affine(0.5, 0.0)?.exp()
    }

    /// The variances `exp(logvar)`.
    pub fn variance(&self) -> Result<Tensor> {
        self.logvar.exp()
    }

    /// The reparameterised sample `mean + eps · std` for given noise `eps`.
    pub fn sample_with(&self, eps: &Tensor) -> Result<Tensor> {
        if eps.dims() != self.mean.dims() {
            candle_core::bail!(
                "noise {:?} does not match the posterior {:?}",
                eps.dims(),
                self.mean.dims()
            );
        }
        self.mean.add(&eps.mul(&self.std()?)?)
    }

    /// A reparameterised sample, drawing `eps ~ N(0, I)` from `rng`.
    pub fn rsample(&self, rng: &mut dyn RngCore) -> Result<Tensor> {
        let eps = standard_normal(self.mean.shape(), rng, self.mean.device())?;
        self.sample_with(&eps)
    }

    /// `log q(z)` per row, `[batch]`:
    /// `Σ_d −½ ((z − mean)² · e^{−logvar} + logvar + ln 2π)`.
    pub fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        log_normal_pdf(z, &self.mean, &self.logvar)
    }

    /// `log q(z_d)` per row and latent dimension, `[batch, latent]`: the
    /// terms [`log_prob`](Self::log_prob) sums.
    pub fn log_prob_per_dim(&self, z: &Tensor) -> Result<Tensor> {
        log_normal_pdf_elementwise(z, &self.mean, &self.logvar)
    }

    /// `KL(q ‖ N(0, I))` per row, `[batch]`:
    /// `−½ Σ_d (1 + logvar − mean² − e^{logvar})`.
    pub fn kl_standard_normal(&self) -> Result<Tensor> {
        self.kl_standard_normal_per_dim()?.sum(D::Minus1)
    }

    /// `KL(q_d ‖ N(0, 1))` per row and latent dimension, `[batch, latent]`:
    /// `−½ (1 + logvar − mean² − e^{logvar})`.
    pub fn kl_standard_normal_per_dim(&self) -> Result<Tensor> {
        kl_standard_normal_elementwise(&self.mean, &self.logvar)
    }
}
