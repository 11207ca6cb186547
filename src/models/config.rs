//! Serialisable model configs: every part of every model, as plain data.
//!
//! A config is stored in each checkpoint, so a saved model loads back into the
//! right architecture with one call ([`Model::load`](super::Model::load)).

use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::losses::Reduction;
use crate::nets::{
    ConvDecoder, ConvDecoderConfig, ConvEncoder, ConvEncoderConfig, Decoder, DenseDecoder,
    DenseDecoderConfig, DenseEncoder, DenseEncoderConfig, Encoder, ImageShape, MlpConfig,
    OutputKind,
};
use crate::{Error, Result};

use super::autoencoder::AeLoss;
use super::digit::Conditioning;
use super::vae::{PosteriorParam, VaeLossConfig};

/// An encoder of either family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EncoderConfig {
    /// A [`DenseEncoder`].
    Dense(DenseEncoderConfig),
    /// A [`ConvEncoder`].
    Conv(ConvEncoderConfig),
}

impl EncoderConfig {
    /// Builds the encoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a layout that cannot work.
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Encoder>> {
        Ok(match self {
            EncoderConfig::Dense(c) => Box::new(DenseEncoder::new(c, vb)?),
            EncoderConfig::Conv(c) => Box::new(ConvEncoder::new(c, vb)?),
        })
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ImageShape {
        match self {
            EncoderConfig::Dense(c) => c.input,
            EncoderConfig::Conv(c) => c.input,
        }
    }

    /// Width of the output.
    pub fn output_dim(&self) -> usize {
        match self {
            EncoderConfig::Dense(c) => c.output_dim,
            EncoderConfig::Conv(c) => c.output_dim,
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            EncoderConfig::Dense(c) => c.validate("encoder"),
            EncoderConfig::Conv(c) => c.validate("encoder"),
        }
    }
}

/// A decoder of either family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DecoderConfig {
    /// A [`DenseDecoder`].
    Dense(DenseDecoderConfig),
    /// A [`ConvDecoder`].
    Conv(ConvDecoderConfig),
}

impl DecoderConfig {
    /// Builds the decoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a layout that cannot work.
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Decoder>> {
        Ok(match self {
            DecoderConfig::Dense(c) => Box::new(DenseDecoder::new(c, vb)?),
            DecoderConfig::Conv(c) => Box::new(ConvDecoder::new(c, vb)?),
        })
    }

    /// Width of the latent input.
    pub fn input_dim(&self) -> usize {
        match self {
            DecoderConfig::Dense(c) => c.input_dim,
            DecoderConfig::Conv(c) => c.input_dim,
        }
    }

    /// What the outputs are.
    pub fn output_kind(&self) -> OutputKind {
        match self {
            DecoderConfig::Dense(c) => c.output_kind,
            DecoderConfig::Conv(c) => c.output_kind,
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            DecoderConfig::Dense(c) => c.validate("decoder"),
            DecoderConfig::Conv(c) => c.validate("decoder"),
        }
    }
}

/// A plain autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderConfig {
    /// Width of the code.
    pub latent_dim: usize,
    /// The encoder (its output width is `latent_dim`).
    pub encoder: EncoderConfig,
    /// The decoder (its input width is `latent_dim`).
    pub decoder: DecoderConfig,
    /// The reconstruction loss.
    pub loss: AeLoss,
    /// Its reduction ([`Reduction::Mean`] is Keras's `mse`).
    pub reduction: Reduction,
}

/// A VAE with a standard-normal prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Width of the latent space.
    pub latent_dim: usize,
    /// The encoder (its output width is `2 · latent_dim`).
    pub encoder: EncoderConfig,
    /// The decoder (its input width is `latent_dim`).
    pub decoder: DecoderConfig,
    /// How the encoder's outputs parameterise the variance.
    pub posterior: PosteriorParam,
    /// The loss.
    pub loss: VaeLossConfig,
}

/// A digit-conditioned VAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigitCvaeConfig {
    /// Width of `z`.
    pub latent_dim: usize,
    /// Number of classes (10 digits).
    pub classes: usize,
    /// The encoder (output width `2 · latent_dim`).
    pub encoder: EncoderConfig,
    /// The decoder (input width `latent_dim + classes`).
    pub decoder: DecoderConfig,
    /// Where the decoder's class vector comes from.
    pub conditioning: Conditioning,
    /// The classifier, over flattened images (used with
    /// [`Conditioning::Predicted`]; its `in_dim` is the image size, `out_dim` the
    /// class count).
    pub classifier: MlpConfig,
    /// Weight of the classifier's cross-entropy in the loss.
    pub class_weight: f64,
    /// How the encoder's outputs parameterise the variance.
    pub posterior: PosteriorParam,
    /// The VAE part of the loss.
    pub loss: VaeLossConfig,
}

/// Any model vaekit builds, tagged by `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// A plain autoencoder.
    Autoencoder(AutoencoderConfig),
    /// A VAE.
    Vae(VaeConfig),
    /// A digit-conditioned VAE.
    DigitCvae(DigitCvaeConfig),
}

fn positive(v: usize, field: &str) -> Result<()> {
    if v == 0 {
        return Err(Error::config(field, "must be positive"));
    }
    Ok(())
}

fn equal(v: usize, expected: usize, field: &str, what: &str) -> Result<()> {
    if v != expected {
        return Err(Error::config(
            field,
            format!("{v} must equal {what} = {expected}"),
        ));
    }
    Ok(())
}

impl ModelConfig {
    /// Checks every field and that the parts fit together.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Autoencoder(c) => {
                positive(c.latent_dim, "latent_dim")?;
                c.encoder.validate()?;
                c.decoder.validate()?;
                equal(
                    c.encoder.output_dim(),
                    c.latent_dim,
                    "encoder.output_dim",
                    "latent_dim",
                )?;
                equal(
                    c.decoder.input_dim(),
                    c.latent_dim,
                    "decoder.input_dim",
                    "latent_dim",
                )?;
            }
            ModelConfig::Vae(c) => {
                positive(c.latent_dim, "latent_dim")?;
                c.encoder.validate()?;
                c.decoder.validate()?;
                equal(
                    c.encoder.output_dim(),
                    2 * c.latent_dim,
                    "encoder.output_dim",
                    "2 × latent_dim",
                )?;
                equal(
                    c.decoder.input_dim(),
                    c.latent_dim,
                    "decoder.input_dim",
                    "latent_dim",
                )?;
                c.loss.validate("loss", c.decoder.output_kind())?;
            }
            ModelConfig::DigitCvae(c) => {
                positive(c.latent_dim, "latent_dim")?;
                positive(c.classes, "classes")?;
                c.encoder.validate()?;
                c.decoder.validate()?;
                equal(
                    c.encoder.output_dim(),
                    2 * c.latent_dim,
                    "encoder.output_dim",
                    "2 × latent_dim",
                )?;
                equal(
                    c.decoder.input_dim(),
                    c.latent_dim + c.classes,
                    "decoder.input_dim",
                    "latent_dim + classes",
                )?;
                if c.conditioning == Conditioning::Predicted {
                    c.classifier.validate("classifier")?;
                    equal(
                        c.classifier.in_dim,
                        c.encoder.input_shape().numel(),
                        "classifier.in_dim",
                        "the image size",
                    )?;
                    equal(
                        c.classifier.out_dim,
                        c.classes,
                        "classifier.out_dim",
                        "classes",
                    )?;
                }
                c.loss.validate("loss", c.decoder.output_kind())?;
            }
        }
        Ok(())
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        match self {
            ModelConfig::Autoencoder(c) => c.latent_dim,
            ModelConfig::Vae(c) => c.latent_dim,
            ModelConfig::DigitCvae(c) => c.latent_dim,
        }
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ImageShape {
        match self {
            ModelConfig::Autoencoder(c) => c.encoder.input_shape(),
            ModelConfig::Vae(c) => c.encoder.input_shape(),
            ModelConfig::DigitCvae(c) => c.encoder.input_shape(),
        }
    }

    /// The config as JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a config from JSON and validates it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field that does not parse or cannot work.
    pub fn from_json(json: &str) -> Result<Self> {
        let config: ModelConfig = serde_json::from_str(json)
            .map_err(|e| Error::config("config", format!("does not parse: {e}")))?;
        config.validate()?;
        Ok(config)
    }
}
