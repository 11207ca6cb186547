//! [`LatentModel`]: what importance sampling and the latent diagnostics
//! ([`eval`](crate::eval)) need from a model, and its implementation for
//! every [`Vae`].

use candle_core::{Result, Tensor};

use super::conditioning::{Condition, Conditioner};
use super::vae::Vae;
use crate::latent::{DiagonalGaussian, LatentPrior};
use crate::nets::{Decoder, Encoder};

/// A latent-variable model `p(x, z | c) = p(x | z, c) p(z)` with an amortised
/// Gaussian posterior `q(z | x)`: what importance sampling and the latent
/// diagnostics need. Everything runs in evaluation mode. `c` is the
/// condition of a conditioned model ([`Condition::None`] otherwise).
pub trait LatentModel {
    /// Width of the latent space.
    fn latent_dim(&self) -> usize;

    /// `q(z | x)` for images `[b, c, h, w]` (evaluation mode).
    fn posterior_of(&self, images: &Tensor) -> Result<DiagonalGaussian>;

    /// The log importance weights `log p(x|z_j, c) + log p(z_j) − log q(z_j|x)`,
    /// `[k, b]`, at `z_j = mean + eps_j · std` of `q` for noise `eps`
    /// `[k, b, latent]` (the likelihood normalised, as
    /// [`VaeLossConfig::log_likelihood`](crate::losses::VaeLossConfig::log_likelihood)).
    fn log_weights(
        &self,
        q: &DiagonalGaussian,
        images: &Tensor,
        condition: Condition<'_>,
        eps: &Tensor,
    ) -> Result<Tensor>;

    /// `KL(q_d ‖ p_d)` per image and dimension `[b, latent]`, for a prior that
    /// factorises (the standard normal); `None` otherwise.
    fn kl_per_dim(&self, q: &DiagonalGaussian) -> Result<Option<Tensor>>;

    /// Codes `[n, latent]` decoded to pixels `[n, c, h, w]` in `[0, 1]`.
    fn decode_pixels(&self, z: &Tensor, condition: Condition<'_>) -> Result<Tensor>;
}

impl<E: Encoder, D: Decoder, P: LatentPrior, C: Conditioner> LatentModel for Vae<E, D, P, C> {
    fn latent_dim(&self) -> usize {
        Vae::latent_dim(self)
    }
    fn posterior_of(&self, images: &Tensor) -> Result<DiagonalGaussian> {
        self.posterior(images, false)
    }
    fn log_weights(
        &self,
        q: &DiagonalGaussian,
        images: &Tensor,
        condition: Condition<'_>,
        eps: &Tensor,
    ) -> Result<Tensor> {
        let vectors = self.condition_vectors(Some(images), condition, images.dim(0)?)?;
        let (lpx, lpz, lqz) =
            self.log_weight_parts(q, images, vectors.as_ref().map(|c| &c.vectors), eps, false)?;
        lpx.add(&lpz)?.sub(&lqz)
    }
    fn kl_per_dim(&self, q: &DiagonalGaussian) -> Result<Option<Tensor>> {
        self.prior().kl_per_dim(q)
    }
    fn decode_pixels(&self, z: &Tensor, condition: Condition<'_>) -> Result<Tensor> {
        Vae::decode_pixels(self, z, condition)
    }
}
