//! [`AnyModel`]: a model family as one type. What [`Model`](super::Model)
//! holds, boxed, whatever the config built: the training step
//! ([`Trainable`]) and the generative surface — encode, decode, reconstruct,
//! sample, the decoder, and the latent model evaluation uses.

use std::any::Any;

use candle_core::{Result, Tensor};
use rand::RngCore;

use super::autoencoder::Autoencoder;
use super::conditioning::{Condition, Conditioner, Conditioning};
use super::gumbel_vae::GumbelVae;
use super::latent_model::LatentModel;
use super::trainable::Trainable;
use super::vae::Vae;
use super::vq_vae::VqVae;
use crate::latent::{LatentPrior, StandardNormal};
use crate::nets::{Decoder, Encoder, ImageShape};

/// A model of any family, as [`Model`](super::Model) holds it: trainable, and
/// able to encode, decode, reconstruct and sample. Everything but the
/// training step runs in evaluation mode.
///
/// A new family implements it (with [`Trainable`]) for its one type; see
/// "Adding a model family" in `docs/architecture.md`.
pub trait AnyModel: Trainable + Send + Sync + std::fmt::Debug {
    /// The family's name in messages (`"VAE"`, `"plain autoencoder"`).
    fn family(&self) -> &'static str;

    /// Width of the latent space (the code, for an autoencoder).
    fn latent_dim(&self) -> usize;

    /// Shape of one input image.
    fn input_shape(&self) -> ImageShape;

    /// The number of classes, for a class-conditioned model.
    fn classes(&self) -> Option<usize> {
        None
    }

    /// Where a class-conditioned model's class vector comes from.
    fn conditioning(&self) -> Option<Conditioning> {
        None
    }

    /// Codes `[b, latent]` for `images`: the code of an autoencoder, the
    /// posterior mean of a VAE.
    fn encode(&self, images: &Tensor) -> Result<Tensor>;

    /// Codes `[n, latent]` decoded to pixels in `[0, 1]`; a conditioned
    /// model's decoder sees `condition`.
    fn decode(&self, z: &Tensor, condition: Condition<'_>) -> Result<Tensor>;

    /// Reconstructions of `images` as pixels in `[0, 1]` (through the
    /// posterior mean); a conditioned model's decoder sees `condition` where
    /// it does not predict it from the images.
    fn reconstruct(&self, images: &Tensor, condition: Condition<'_>) -> Result<Tensor>;

    /// `n` draws from the prior (`N(0, I)` codes for a model without one),
    /// decoded to pixels; a class-conditioned model cycles through its
    /// classes.
    fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Result<Tensor>;

    /// The decoder.
    fn decoder(&self) -> &dyn Decoder;

    /// Classifier logits `[b, classes]` for `images`, for a model whose
    /// conditioning predicts the class; `None` for every other model.
    fn classify(&self, images: &Tensor) -> Result<Option<Tensor>> {
        let _ = images;
        Ok(None)
    }

    /// The latent model importance sampling and the latent diagnostics use,
    /// for a family that defines a likelihood; `None` otherwise.
    fn latent_model(&self) -> Option<&dyn LatentModel> {
        None
    }

    /// The model as [`Any`], to get its concrete type back
    /// ([`Model::as_vae`](super::Model::as_vae)).
    fn as_any(&self) -> &dyn Any;
}

impl<E, D, P, C> AnyModel for Vae<E, D, P, C>
where
    E: Encoder + std::fmt::Debug + 'static,
    D: Decoder + std::fmt::Debug + 'static,
    P: LatentPrior + 'static,
    C: Conditioner + 'static,
{
    fn family(&self) -> &'static str {
        match self.classes() {
            Some(_) => "class-conditioned VAE",
            None => "VAE",
        }
    }
    fn latent_dim(&self) -> usize {
        Vae::latent_dim(self)
    }
    fn input_shape(&self) -> ImageShape {
        self.encoder().input_shape()
    }
    fn classes(&self) -> Option<usize> {
        Vae::classes(self)
    }
    fn conditioning(&self) -> Option<Conditioning> {
        Vae::conditioning(self)
    }
    fn encode(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.posterior(images, false)?.mean().clone())
    }
    fn decode(&self, z: &Tensor, condition: Condition<'_>) -> Result<Tensor> {
        self.decode_pixels(z, condition)
    }
    fn reconstruct(&self, images: &Tensor, condition: Condition<'_>) -> Result<Tensor> {
        Vae::reconstruct(self, images, condition)
    }
    fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Result<Tensor> {
        Vae::sample(self, n, rng, self.params().device())
    }
    fn decoder(&self) -> &dyn Decoder {
        Vae::<E, D, P, C>::decoder(self)
    }
    fn classify(&self, images: &Tensor) -> Result<Option<Tensor>> {
        Vae::classify(self, images)
    }
    fn latent_model(&self) -> Option<&dyn LatentModel> {
        Some(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<E, D> AnyModel for Autoencoder<E, D>
where
    E: Encoder + std::fmt::Debug + 'static,
    D: Decoder + std::fmt::Debug + 'static,
{
    fn family(&self) -> &'static str {
        "plain autoencoder"
    }
    fn latent_dim(&self) -> usize {
        Autoencoder::latent_dim(self)
    }
    fn input_shape(&self) -> ImageShape {
        self.encoder().input_shape()
    }
    fn encode(&self, images: &Tensor) -> Result<Tensor> {
        Autoencoder::encode(self, images, false)
    }
    /// An autoencoder has no condition: `condition` is ignored.
    fn decode(&self, z: &Tensor, _condition: Condition<'_>) -> Result<Tensor> {
        self.decode_pixels(z)
    }
    fn reconstruct(&self, images: &Tensor, _condition: Condition<'_>) -> Result<Tensor> {
        Autoencoder::reconstruct(self, images)
    }
    /// An autoencoder has no prior: it decodes `N(0, I)` codes, which is what
    /// its tutorial's latent grid does.
    fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Result<Tensor> {
        let z = StandardNormal::new(Autoencoder::latent_dim(self)).sample(
            n,
            rng,
            self.params().device(),
        )?;
        self.decode_pixels(&z)
    }
    fn decoder(&self) -> &dyn Decoder {
        Autoencoder::<E, D>::decoder(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The VQ-VAE's latent is its code map flattened, `[b, D·h·w]`: `encode`
/// gives the nearest codes, `decode` takes code maps, `sample` draws grids
/// from the model's [`IndependentCodePrior`](crate::latent::IndependentCodePrior)
/// (uniform until [`VqVae::fit_prior`]). It has no likelihood, so no
/// [`LatentModel`].
impl<E, D> AnyModel for VqVae<E, D>
where
    E: Encoder + std::fmt::Debug + 'static,
    D: Decoder + std::fmt::Debug + 'static,
{
    fn family(&self) -> &'static str {
        "VQ-VAE"
    }
    fn latent_dim(&self) -> usize {
        VqVae::latent_dim(self)
    }
    fn input_shape(&self) -> ImageShape {
        self.encoder().input_shape()
    }
    fn encode(&self, images: &Tensor) -> Result<Tensor> {
        VqVae::encode(self, images)
    }
    /// A VQ-VAE has no condition: `condition` is ignored.
    fn decode(&self, z: &Tensor, _condition: Condition<'_>) -> Result<Tensor> {
        self.decode_pixels(z)
    }
    fn reconstruct(&self, images: &Tensor, _condition: Condition<'_>) -> Result<Tensor> {
        VqVae::reconstruct(self, images)
    }
    fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Result<Tensor> {
        VqVae::sample(self, n, rng)
    }
    fn decoder(&self) -> &dyn Decoder {
        VqVae::<E, D>::decoder(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The Gumbel-softmax VAE's latent is its `N` one-hot vectors flattened,
/// `[b, N·K]`: `encode` gives the most probable classes, `decode` takes
/// one-hot or relaxed vectors, `sample` draws classes from the uniform prior.
/// Its posterior is categorical, so it has no [`LatentModel`]; see
/// [`GumbelVae::log_weights`].
impl<E, D> AnyModel for GumbelVae<E, D>
where
    E: Encoder + std::fmt::Debug + 'static,
    D: Decoder + std::fmt::Debug + 'static,
{
    fn family(&self) -> &'static str {
        "Gumbel-softmax VAE"
    }
    fn latent_dim(&self) -> usize {
        GumbelVae::latent_dim(self)
    }
    fn input_shape(&self) -> ImageShape {
        self.encoder().input_shape()
    }
    fn encode(&self, images: &Tensor) -> Result<Tensor> {
        GumbelVae::encode(self, images)
    }
    /// A Gumbel-softmax VAE has no condition: `condition` is ignored.
    fn decode(&self, z: &Tensor, _condition: Condition<'_>) -> Result<Tensor> {
        self.decode_pixels(z)
    }
    fn reconstruct(&self, images: &Tensor, _condition: Condition<'_>) -> Result<Tensor> {
        GumbelVae::reconstruct(self, images)
    }
    fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Result<Tensor> {
        GumbelVae::sample(self, n, rng)
    }
    fn decoder(&self) -> &dyn Decoder {
        GumbelVae::<E, D>::decoder(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
