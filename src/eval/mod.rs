//! Numbers to report about a trained VAE: the importance-sampled
//! log-likelihood (Burda et al. 2016) in nats per image and bits per
//! dimension, and latent diagnostics — the KL per dimension, active units and
//! traversals.
//!
//! Everything takes a [`LatentModel`]: any [`Vae`]
//! (whatever its encoder, decoder and prior), a [`Model`]
//! holding one, or a model of your own that gives a posterior, log importance
//! weights and a decoder.

mod diagnostics;
mod likelihood;

pub use diagnostics::{
    latent_statistics, latent_traversal, LatentStatistics, ACTIVE_UNIT_THRESHOLD,
};
pub use likelihood::{
    dataset_log_likelihood, importance_noise, importance_sampled_log_likelihood, log_mean_exp,
    ImportanceSampling, LikelihoodEstimate, MAX_IMPORTANCE_SAMPLES, MAX_PASS_VALUES, MAX_PER_PASS,
};

use candle_core::{Result, Tensor};

use crate::latent::{DiagonalGaussian, LatentPrior};
use crate::models::{Model, Vae};
use crate::nets::{Decoder, Encoder};

/// A latent-variable model `p(x, z) = p(x | z) p(z)` with an amortised
/// Gaussian posterior `q(z | x)`: what importance sampling and the latent
/// diagnostics need. Everything runs in evaluation mode.
pub trait LatentModel {
    /// Width of the latent space.
    fn latent_width(&self) -> usize;

    /// `q(z | x)` for images `[b, c, h, w]` (evaluation mode).
    fn posterior_of(&self, images: &Tensor) -> Result<DiagonalGaussian>;

    /// The log importance weights `log p(x|z_j) + log p(z_j) − log q(z_j|x)`,
    /// `[k, b]`, at `z_j = mean + eps_j · std` of `q` for noise `eps`
    /// `[k, b, latent]` (the likelihood normalised, as
    /// [`VaeLossConfig::log_likelihood`](crate::models::VaeLossConfig::log_likelihood)).
    fn log_weights(&self, q: &DiagonalGaussian, images: &Tensor, eps: &Tensor) -> Result<Tensor>;

    /// `KL(q_d ‖ p_d)` per image and dimension `[b, latent]`, for a prior that
    /// factorises (the standard normal); `None` otherwise.
    fn kl_per_dim(&self, q: &DiagonalGaussian) -> Result<Option<Tensor>>;

    /// Codes `[n, latent]` decoded to pixels `[n, c, h, w]` in `[0, 1]`.
    fn decode_pixels(&self, z: &Tensor) -> Result<Tensor>;
}

impl<E: Encoder, D: Decoder, P: LatentPrior> LatentModel for Vae<E, D, P> {
    fn latent_width(&self) -> usize {
        self.latent_dim()
    }
    fn posterior_of(&self, images: &Tensor) -> Result<DiagonalGaussian> {
        self.posterior(images, false)
    }
    fn log_weights(&self, q: &DiagonalGaussian, images: &Tensor, eps: &Tensor) -> Result<Tensor> {
        let (lpx, lpz, lqz) = self.log_weight_parts(q, images, eps, false)?;
        lpx.add(&lpz)?.sub(&lqz)
    }
    fn kl_per_dim(&self, q: &DiagonalGaussian) -> Result<Option<Tensor>> {
        self.prior().kl_per_dim(q)
    }
    fn decode_pixels(&self, z: &Tensor) -> Result<Tensor> {
        Vae::decode_pixels(self, z)
    }
}

/// A [`Model`] that holds a VAE, through its untracked copy
/// ([`Model::as_vae_untracked`]); any other model is an error naming it.
impl LatentModel for Model {
    fn latent_width(&self) -> usize {
        self.latent_dim()
    }
    fn posterior_of(&self, images: &Tensor) -> Result<DiagonalGaussian> {
        vae_of(self)?.posterior_of(images)
    }
    fn log_weights(&self, q: &DiagonalGaussian, images: &Tensor, eps: &Tensor) -> Result<Tensor> {
        vae_of(self)?.log_weights(q, images, eps)
    }
    fn kl_per_dim(&self, q: &DiagonalGaussian) -> Result<Option<Tensor>> {
        LatentModel::kl_per_dim(vae_of(self)?, q)
    }
    fn decode_pixels(&self, z: &Tensor) -> Result<Tensor> {
        LatentModel::decode_pixels(vae_of(self)?, z)
    }
}

fn vae_of(model: &Model) -> Result<&crate::models::ConfigVae> {
    model.as_vae_untracked().ok_or_else(|| {
        let kind = match model.config() {
            crate::models::ModelConfig::Autoencoder(_) => "plain autoencoder",
            crate::models::ModelConfig::DigitCvae(_) => "digit-conditioned VAE",
            _ => "model of another kind",
        };
        candle_core::Error::Msg(format!(
            "importance sampling and latent diagnostics need a VAE; this model is a {kind}"
        ))
    })
}
