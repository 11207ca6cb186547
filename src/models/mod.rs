//! Models: the plain autoencoder, the VAE (dense or convolutional, generic over its
//! encoder, decoder and prior), the digit-conditioned VAE, their configs and
//! presets, and [`Model`], which builds any of them from a [`ModelConfig`] and
//! saves and loads it.

mod autoencoder;
mod config;
mod digit;
mod model;
pub mod presets;
mod vae;

pub use autoencoder::{AeLoss, Autoencoder, AutoencoderOutput};
pub use config::{
    AutoencoderConfig, DecoderConfig, DigitCvaeConfig, EncoderConfig, ModelConfig, VaeConfig,
};
pub use digit::{Conditioning, DigitConditionedVae, DigitCvaeLoss, DigitCvaeOutput};
pub(crate) use model::CONFIG_KEY;
pub use model::{LossTerms, Model, Network};
pub use presets::Preset;
pub use vae::{KlEstimator, Likelihood, PosteriorParam, Vae, VaeLossConfig, VaeOutput};

use crate::latent::StandardNormal;
use crate::nets::{ConvDecoder, ConvEncoder, DenseDecoder, DenseEncoder, Mlp};

/// A VAE with dense encoder and decoder (the TF1 dense VAE's family).
pub type DenseVae = Vae<DenseEncoder, DenseDecoder, StandardNormal>;
/// A VAE with convolutional encoder and decoder (both CVAE tutorials' family).
pub type ConvVae = Vae<ConvEncoder, ConvDecoder, StandardNormal>;
/// A convolutional autoencoder (the Keras tutorial's family).
pub type ConvAutoencoder = Autoencoder<ConvEncoder, ConvDecoder>;
/// The digit-conditioned VAE with dense networks.
pub type DigitCvae = DigitConditionedVae<DenseEncoder, DenseDecoder, Mlp>;
