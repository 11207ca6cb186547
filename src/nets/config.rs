//! Serialisable configs of the encoders and decoders vaekit builds, by family.

use candle_nn::VarBuilder;
use serde::Serialize;

use super::{
    ConvDecoder, ConvDecoderConfig, ConvEncoder, ConvEncoderConfig, Decoder, DenseDecoder,
    DenseDecoderConfig, DenseEncoder, DenseEncoderConfig, Encoder, ImageShape, OutputKind,
    ResidualDecoder, ResidualDecoderConfig, ResidualEncoder, ResidualEncoderConfig,
};
use crate::Result;

/// An encoder of any family, tagged by `type` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EncoderConfig {
    /// A [`DenseEncoder`].
    Dense(DenseEncoderConfig),
    /// A [`ConvEncoder`].
    Conv(ConvEncoderConfig),
    /// A [`ResidualEncoder`], whose output is a map of code vectors.
    Residual(ResidualEncoderConfig),
}

crate::tagged::tagged_deserialize!(EncoderConfig, "type", {
    "dense" => Dense(DenseEncoderConfig),
    "conv" => Conv(ConvEncoderConfig),
    "residual" => Residual(ResidualEncoderConfig),
});

crate::tagged::tagged_deserialize!(DecoderConfig, "type", {
    "dense" => Dense(DenseDecoderConfig),
    "conv" => Conv(ConvDecoderConfig),
    "residual" => Residual(ResidualDecoderConfig),
});

impl EncoderConfig {
    /// Builds the encoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a layout that cannot work.
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Encoder>> {
        Ok(match self {
            EncoderConfig::Dense(c) => Box::new(DenseEncoder::new(c, vb)?),
            EncoderConfig::Conv(c) => Box::new(ConvEncoder::new(c, vb)?),
            EncoderConfig::Residual(c) => Box::new(ResidualEncoder::new(c, vb)?),
        })
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ImageShape {
        match self {
            EncoderConfig::Dense(c) => c.input,
            EncoderConfig::Conv(c) => c.input,
            EncoderConfig::Residual(c) => c.input,
        }
    }

    /// Width of the output (0 for a residual encoder whose layout cannot
    /// work).
    pub fn output_dim(&self) -> usize {
        match self {
            EncoderConfig::Dense(c) => c.output_dim,
            EncoderConfig::Conv(c) => c.output_dim,
            EncoderConfig::Residual(c) => c.output_dim(),
        }
    }

    /// The values one image's forward pass produces, every layer's output
    /// counted once (its input not included), for memory estimates; saturates
    /// at `u64::MAX`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a layout that cannot work.
    pub fn activation_values(&self) -> Result<u64> {
        Ok(match self {
            EncoderConfig::Dense(c) => widths(&c.hidden).saturating_add(c.output_dim as u64),
            EncoderConfig::Conv(c) => {
                maps(&c.shapes("encoder")?).saturating_add(c.output_dim as u64)
            }
            EncoderConfig::Residual(c) => c.activation_values("encoder")?,
        })
    }

    /// Checks the layout; errors name fields under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) naming the first field that cannot work.
    pub fn validate(&self, field: &str) -> Result<()> {
        match self {
            EncoderConfig::Dense(c) => c.validate(field),
            EncoderConfig::Conv(c) => c.validate(field),
            EncoderConfig::Residual(c) => c.validate(field),
        }
    }
}

/// A decoder of any family, tagged by `type` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecoderConfig {
    /// A [`DenseDecoder`].
    Dense(DenseDecoderConfig),
    /// A [`ConvDecoder`].
    Conv(ConvDecoderConfig),
    /// A [`ResidualDecoder`], which takes a map of code vectors.
    Residual(ResidualDecoderConfig),
}

impl DecoderConfig {
    /// Builds the decoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a layout that cannot work.
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Decoder>> {
        Ok(match self {
            DecoderConfig::Dense(c) => Box::new(DenseDecoder::new(c, vb)?),
            DecoderConfig::Conv(c) => Box::new(ConvDecoder::new(c, vb)?),
            DecoderConfig::Residual(c) => Box::new(ResidualDecoder::new(c, vb)?),
        })
    }

    /// Width of the latent input.
    pub fn input_dim(&self) -> usize {
        match self {
            DecoderConfig::Dense(c) => c.input_dim,
            DecoderConfig::Conv(c) => c.input_dim,
            DecoderConfig::Residual(c) => c.input_dim(),
        }
    }

    /// Shape of one output image.
    pub fn output_shape(&self) -> ImageShape {
        match self {
            DecoderConfig::Dense(c) => c.output,
            DecoderConfig::Conv(c) => c.output,
            DecoderConfig::Residual(c) => c.output,
        }
    }

    /// What the outputs are.
    pub fn output_kind(&self) -> OutputKind {
        match self {
            DecoderConfig::Dense(c) => c.output_kind,
            DecoderConfig::Conv(c) => c.output_kind,
            DecoderConfig::Residual(c) => c.output_kind,
        }
    }

    /// The values one latent vector's forward pass produces, every layer's
    /// output counted once; see [`EncoderConfig::activation_values`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a layout that cannot work.
    pub fn activation_values(&self) -> Result<u64> {
        Ok(match self {
            DecoderConfig::Dense(c) => widths(&c.hidden).saturating_add(c.output.numel() as u64),
            DecoderConfig::Conv(c) => (c.start.numel() as u64)
                .saturating_add(maps(&c.shapes("decoder")?))
                .saturating_add(c.output.numel() as u64),
            DecoderConfig::Residual(c) => c.activation_values("decoder")?,
        })
    }

    /// Checks the layout; errors name fields under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) naming the first field that cannot work.
    pub fn validate(&self, field: &str) -> Result<()> {
        match self {
            DecoderConfig::Dense(c) => c.validate(field),
            DecoderConfig::Conv(c) => c.validate(field),
            DecoderConfig::Residual(c) => c.validate(field),
        }
    }
}

/// The sum of `widths`, saturating.
pub(crate) fn widths(widths: &[usize]) -> u64 {
    widths
        .iter()
        .fold(0u64, |acc, &w| acc.saturating_add(w as u64))
}

/// The values of the feature maps `shapes`, saturating.
fn maps(shapes: &[ImageShape]) -> u64 {
    shapes.iter().fold(0u64, |acc, s| {
        let n = (s.channels as u64)
            .saturating_mul(s.height as u64)
            .saturating_mul(s.width as u64);
        acc.saturating_add(n)
    })
}
