//! Models: the plain autoencoder, the VAE (dense or convolutional, generic
//! over its encoder, decoder, prior and conditioning — the digit-conditioned
//! VAE is a VAE with a [`ClassConditioning`]), the VQ-VAE and the
//! Gumbel-softmax VAE, their configs and presets,
//! [`Trainable`] — what the trainer needs from any of them, or from a model of
//! your own — [`AnyModel`], a family as one type, and [`Model`], which builds
//! any of them from a [`ModelConfig`] and saves and loads it.

mod any;
mod autoencoder;
mod build;
mod chunks;
mod conditioning;
mod config;
mod gumbel_vae;
mod json;
mod latent_model;
mod model;
mod parts;
mod persist;
mod pixel_cnn;
pub mod presets;
mod step_memory;
mod trainable;
mod vae;
mod vq_vae;

pub use any::AnyModel;
pub use autoencoder::{AeLoss, AeLossConfig, Autoencoder, AutoencoderOutput};
pub use conditioning::{
    class_vector, one_hot, ClassConditioning, Condition, ConditionVectors, Conditioner,
    Conditioning, Unconditioned,
};
pub use config::{
    AutoencoderConfig, CheckedModelConfig, ClassifierConditioningConfig, ConditioningConfig,
    DecoderConfig, EncoderConfig, GumbelVaeConfig, LabelConditioningConfig, ModelConfig, VaeConfig,
    VqVaeConfig,
};
pub use gumbel_vae::{CategoricalLatentConfig, GumbelLossConfig, GumbelVae, GumbelVaeOutput};
pub(crate) use json::{architecture_difference, parse_json, LossSettings};
pub use latent_model::LatentModel;
pub use model::{
    ConfigAutoencoder, ConfigGumbelVae, ConfigVae, ConfigVqVae, Model, ModelLimits, MAX_PARAMETERS,
};
pub use persist::TrainableExt;
pub(crate) use persist::{checkpoint_metadata, CONFIG_KEY};
pub use pixel_cnn::{code_grid_dataset, PixelCnnConfig, PixelCnnPrior};
pub use presets::Preset;
pub(crate) use step_memory::step_bytes_within;
pub use step_memory::{
    check_training_step, default_step_memory_limit, training_step_bytes, STEP_COPIES,
    STEP_MEMORY_PERCENT,
};
pub use trainable::{LossTerms, Mode, Per, StepContext, Term, Trainable};
pub use vae::{Vae, VaeOutput};
pub use vq_vae::{VqLossConfig, VqVae, VqVaeOutput};

pub use crate::latent::{PosteriorParam, PriorConfig};
pub use crate::losses::{KlEstimator, Likelihood, Objective, VaeLossConfig};

use crate::latent::StandardNormal;
use crate::nets::{ConvDecoder, ConvEncoder, DenseDecoder, DenseEncoder};

/// A VAE with dense encoder and decoder and a standard-normal prior.
pub type DenseVae = Vae<DenseEncoder, DenseDecoder, StandardNormal>;
/// A VAE with convolutional encoder and decoder and a standard-normal prior.
pub type ConvVae = Vae<ConvEncoder, ConvDecoder, StandardNormal>;
/// A convolutional autoencoder (the Keras tutorial's family).
pub type ConvAutoencoder = Autoencoder<ConvEncoder, ConvDecoder>;
