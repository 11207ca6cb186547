//! Models: the plain autoencoder, the VAE (dense or convolutional, generic over its
//! encoder, decoder and prior), the digit-conditioned VAE, their configs and
//! presets, [`Trainable`] — what the trainer needs from any of them, or from a
//! model of your own — and [`Model`], which builds any of them from a
//! [`ModelConfig`] and saves and loads it.

mod autoencoder;
mod beta;
mod chunks;
mod config;
mod digit;
mod model;
pub mod presets;
mod trainable;
mod vae;

pub use autoencoder::{AeLoss, AeLossConfig, Autoencoder, AutoencoderOutput};
pub(crate) use config::{architecture_difference, parse_json, LossSettings};
pub use config::{
    AutoencoderConfig, CheckedModelConfig, DecoderConfig, DigitCvaeConfig, EncoderConfig,
    ModelConfig, VaeConfig,
};
pub use digit::{
    ClassConditioning, Conditioning, DigitConditionedVae, DigitCvaeLoss, DigitCvaeOutput,
};
pub(crate) use model::step_bytes_within;
pub use model::{
    check_training_step, default_step_memory_limit, training_step_bytes, ConfigAutoencoder,
    ConfigDigitCvae, ConfigVae, Model, ModelLimits, MAX_PARAMETERS, STEP_COPIES,
    STEP_MEMORY_PERCENT,
};
pub use presets::Preset;
pub(crate) use trainable::{checkpoint_metadata, CONFIG_KEY};
pub use trainable::{LossTerms, Mode, Per, Term, Trainable};
pub use vae::{KlEstimator, Likelihood, Objective, Vae, VaeLossConfig, VaeOutput};

pub use crate::latent::{PosteriorParam, PriorConfig};

use crate::latent::StandardNormal;
use crate::nets::{ConvDecoder, ConvEncoder, DenseDecoder, DenseEncoder, Mlp};

/// A VAE with dense encoder and decoder and a standard-normal prior.
pub type DenseVae = Vae<DenseEncoder, DenseDecoder, StandardNormal>;
/// A VAE with convolutional encoder and decoder and a standard-normal prior.
pub type ConvVae = Vae<ConvEncoder, ConvDecoder, StandardNormal>;
/// A convolutional autoencoder (the Keras tutorial's family).
pub type ConvAutoencoder = Autoencoder<ConvEncoder, ConvDecoder>;
/// The digit-conditioned VAE with dense networks.
pub type DigitCvae = DigitConditionedVae<DenseEncoder, DenseDecoder, Mlp>;
