//! A mixture of isotropic Gaussians as a prior; its KL to a Gaussian posterior has
//! no closed form, so it is estimated by Monte Carlo.

use candle_core::{Device, Result, Tensor, D};
use rand::{Rng, RngCore};

use super::gaussian::LN_2PI;
use super::{noise::standard_normal, LatentPrior};

/// An equal-weight mixture of `N(centre_k, σ² I)` components.
#[derive(Debug, Clone)]
pub struct GaussianMixturePrior {
    centres: Tensor,
    sigma: f64,
    k: usize,
    latent_dim: usize,
}

impl GaussianMixturePrior {
    /// A mixture with component means `centres` `[k, latent]` and a shared
    /// standard deviation `sigma`.
    ///
    /// # Errors
    ///
    /// If `centres` is not `[k, latent]` with `k ≥ 1`, or `sigma` is not positive.
    pub fn new(centres: Tensor, sigma: f64) -> Result<Self> {
        let (k, latent_dim) = centres.dims2()?;
        if k == 0 || latent_dim == 0 {
            candle_core::bail!(
                "mixture prior: centres {:?} must be [k ≥ 1, latent ≥ 1]",
                centres.dims()
            );
        }
        if !(sigma.is_finite() && sigma > 0.0) {
            candle_core::bail!("mixture prior: sigma {sigma} must be positive");
        }
        Ok(Self {
            centres,
            sigma,
            k,
            latent_dim,
        })
    }
}

impl LatentPrior for GaussianMixturePrior {
    fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// `log (1/K) Σ_k N(z; centre_k, σ² I)`, by log-sum-exp.
    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let (b, d) = z.dims2()?;
        if d != self.latent_dim {
            candle_core::bail!(
                "mixture prior: z {:?} is not [batch, {}]",
                z.dims(),
                self.latent_dim
            );
        }
        let diff = z
            .unsqueeze(1)? // [b, 1, d]
            .broadcast_sub(&self.centres.unsqueeze(0)?)?; // [b, k, d]
        let sq = diff.sqr()?.sum(D::Minus1)?; // [b, k]
        let log_norm = -0.5 * d as f64 * (LN_2PI + 2.0 * self.sigma.ln());
        let comp = sq.affine(-0.5 / (self.sigma * self.sigma), log_norm)?; // [b, k]
        let m = comp.max_keepdim(1)?.detach(); // [b, 1]
        let lse = comp
            .broadcast_sub(&m)?
            .exp()?
            .sum_keepdim(1)?
            .log()?
            .add(&m)?; // [b, 1]
        lse.reshape(b)?.affine(1.0, -(self.k as f64).ln())
    }

    fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        let idx: Vec<u32> = (0..n).map(|_| rng.random_range(0..self.k as u32)).collect();
        let idx = Tensor::from_vec(idx, n, device)?;
        let centres = self.centres.to_device(device)?.index_select(&idx, 0)?; // [n, d]
        let eps = standard_normal((n, self.latent_dim), rng, device)?;
        centres.add(&eps.affine(self.sigma, 0.0)?)
    }
}
