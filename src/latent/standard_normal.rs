//! The standard-normal prior `N(0, I)`.

use candle_core::{Device, Result, Tensor, D};
use rand::RngCore;

use super::density::LN_2PI;
use super::{noise::standard_normal, DiagonalGaussian, LatentPrior};

/// The standard-normal prior `p(z) = N(0, I)` of width `latent_dim`; its KL has a
/// closed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardNormal {
    latent_dim: usize,
}

impl StandardNormal {
    /// The prior over `latent_dim`-wide vectors.
    pub fn new(latent_dim: usize) -> Self {
        Self { latent_dim }
    }
}

impl StandardNormal {
    /// The width of `z` `[batch, latent_dim]`, or an error naming its shape.
    fn check_width(&self, z: &Tensor) -> Result<usize> {
        let d = z.dim(D::Minus1)?;
        if d != self.latent_dim {
            candle_core::bail!(
                "standard normal: z {:?} is not [batch, {}]",
                z.dims(),
                self.latent_dim
            );
        }
        Ok(d)
    }
}

impl LatentPrior for StandardNormal {
    fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// `Σ_d −½ (z² + ln 2π)`.
    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let d = self.check_width(z)?;
        z.sqr()?
            .sum(D::Minus1)?
            .affine(-0.5, -0.5 * LN_2PI * d as f64) // [batch]
    }

    /// `−½ (z_d² + ln 2π)`, `[batch, latent]`.
    fn log_prob_per_dim(&self, z: &Tensor) -> Result<Option<Tensor>> {
        self.check_width(z)?;
        z.sqr()?.affine(-0.5, -0.5 * LN_2PI).map(Some) // [batch, latent]
    }

    fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        standard_normal((n, self.latent_dim), rng, device)
    }

    /// Closed form: `−½ Σ_d (1 + logvar − mean² − e^{logvar})`.
    fn kl(&self, q: &DiagonalGaussian, _rng: &mut dyn RngCore) -> Result<Tensor> {
        q.kl_standard_normal()
    }

    fn has_closed_form_kl(&self) -> bool {
        true
    }

    /// Closed form per dimension, `[batch, latent]`.
    fn factorises(&self) -> bool {
        true
    }

    fn kl_per_dim(&self, q: &DiagonalGaussian) -> Result<Option<Tensor>> {
        q.kl_standard_normal_per_dim().map(Some)
    }
}
