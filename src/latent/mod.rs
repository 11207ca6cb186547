//! Latent distributions: the diagonal-Gaussian posterior, how an encoder
//! parameterises it, and the priors a VAE regularises it towards (standard
//! normal, Gaussian mixture, VampPrior); and the discrete latents: the vector
//! quantiser of the VQ-VAE and the priors over its code grids, and the
//! Gumbel-softmax relaxation of categorical variables.
//!
//! Every random draw takes the caller's generator (`&mut dyn RngCore`), so a
//! seeded [`rand`] generator makes a run reproducible bit for bit on the CPU,
//! whatever the device.

mod categorical;
mod code_prior;
mod config;
mod density;
mod gaussian;
mod mixture;
mod noise;
mod posterior;
mod standard_normal;
mod vamp;
mod vq;

pub use categorical::{
    categorical_log_prob, gumbel_noise, gumbel_softmax, kl_uniform_categorical, one_hot_argmax,
    uniform_one_hot, Relaxation, TemperatureSchedule,
};
pub use code_prior::{independent_code_prior, CodePrior, IndependentCodePrior};
pub use config::PriorConfig;
pub use density::{
    kl_standard_normal_elementwise, log_normal_pdf, log_sum_exp, single_sample_kl,
    single_sample_kl_per_dim, LN_2PI,
};
pub use gaussian::DiagonalGaussian;
pub use mixture::{gaussian_mixture_prior, mixture_log_prob, GaussianMixturePrior, MixtureConfig};
pub use noise::standard_normal;
pub use posterior::PosteriorParam;
pub use standard_normal::StandardNormal;
pub use vamp::{vamp_prior, VampConfig, VampPrior};
pub use vq::{
    vector_quantizer, CodebookUpdate, EmaConfig, Quantized, QuantizerConfig, RestartConfig,
    VectorQuantizer,
};

use candle_core::{Device, Result, Tensor};
use rand::RngCore;

/// A prior `p(z)` over latent vectors of width [`latent_dim`](LatentPrior::latent_dim).
///
/// Object-safe: a model may hold a `Box<dyn LatentPrior>`.
pub trait LatentPrior: Send + Sync + std::fmt::Debug {
    /// Width of the latent vectors.
    fn latent_dim(&self) -> usize;

    /// `log p(z)` for each row of `z` `[batch, latent_dim]`, as `[batch]`.
    fn log_prob(&self, z: &Tensor) -> Result<Tensor>;

    /// `n` draws `[n, latent_dim]` on `device`, from the caller's generator.
    fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor>;

    /// `KL(q ‖ p)` for each row of the posterior `q`, as `[batch]`.
    ///
    /// The default is a single-sample Monte Carlo estimate
    /// `log q(z) − log p(z)` with `z ~ q` (see [`monte_carlo_kl`]); priors with a
    /// closed form override it and report so through [`has_closed_form_kl`].
    ///
    /// [`has_closed_form_kl`]: LatentPrior::has_closed_form_kl
    fn kl(&self, q: &DiagonalGaussian, rng: &mut dyn RngCore) -> Result<Tensor> {
        monte_carlo_kl(self, q, 1, rng)
    }

    /// Whether [`kl`](LatentPrior::kl) is exact rather than an estimate.
    fn has_closed_form_kl(&self) -> bool {
        false
    }

    /// Whether `p(z)` factorises over the latent dimensions, so that
    /// [`kl_per_dim`](LatentPrior::kl_per_dim) and
    /// [`log_prob_per_dim`](LatentPrior::log_prob_per_dim) give values (the
    /// standard normal); `false` by default. Free bits need it.
    fn factorises(&self) -> bool {
        false
    }

    /// `KL(q_d ‖ p_d)` per row and latent dimension, `[batch, latent]`, for a
    /// prior that factorises over the dimensions (the standard normal);
    /// `None` for one that does not (a mixture), the default. Free bits and
    /// the per-dimension KL of the diagnostics need it.
    fn kl_per_dim(&self, q: &DiagonalGaussian) -> Result<Option<Tensor>> {
        let _ = q;
        Ok(None)
    }

    /// `log p(z_d)` per row and latent dimension, `[batch, latent]`, for a
    /// prior that factorises over the dimensions (the standard normal); `None`
    /// for one that does not, the default. Free bits with the single-sample
    /// KL need it.
    fn log_prob_per_dim(&self, z: &Tensor) -> Result<Option<Tensor>> {
        let _ = z;
        Ok(None)
    }
}

impl<P: LatentPrior + ?Sized> LatentPrior for Box<P> {
    fn factorises(&self) -> bool {
        (**self).factorises()
    }
    fn latent_dim(&self) -> usize {
        (**self).latent_dim()
    }
    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        (**self).log_prob(z)
    }
    fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        (**self).sample(n, rng, device)
    }
    fn kl(&self, q: &DiagonalGaussian, rng: &mut dyn RngCore) -> Result<Tensor> {
        (**self).kl(q, rng)
    }
    fn has_closed_form_kl(&self) -> bool {
        (**self).has_closed_form_kl()
    }
    fn kl_per_dim(&self, q: &DiagonalGaussian) -> Result<Option<Tensor>> {
        (**self).kl_per_dim(q)
    }
    fn log_prob_per_dim(&self, z: &Tensor) -> Result<Option<Tensor>> {
        (**self).log_prob_per_dim(z)
    }
}

/// Monte Carlo estimate of `KL(q ‖ p)` per row: the mean over `samples`
/// reparameterised draws `z ~ q` of `log q(z) − log p(z)`, as `[batch]`.
///
/// Unbiased; its spread shrinks as `1/√samples`. Gradients flow to `q`'s
/// parameters through the reparameterisation.
pub fn monte_carlo_kl<P: LatentPrior + ?Sized>(
    prior: &P,
    q: &DiagonalGaussian,
    samples: usize,
    rng: &mut dyn RngCore,
) -> Result<Tensor> {
    if samples == 0 {
        candle_core::bail!("monte_carlo_kl: samples must be positive");
    }
    let mut total: Option<Tensor> = None;
    for _ in 0..samples {
        let z = q.rsample(rng)?; // [b, d]
        let term = single_sample_kl(q, prior, &z)?; // [b]
        total = Some(match total {
            None => term,
            Some(t) => (t + term)?,
        });
    }
    match total {
        Some(t) => t.affine(1.0 / samples as f64, 0.0),
        None => candle_core::bail!("monte_carlo_kl: no sample drawn"),
    }
}
