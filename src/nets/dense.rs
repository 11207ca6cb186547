//! Dense (fully connected) encoder and decoder over flattened images.

use candle_core::{Result, Tensor};
use candle_nn::{Module, ModuleT, VarBuilder};
use serde::{Deserialize, Serialize};

use super::checks::check_shape;
use super::mlp::{mlp, Mlp, MlpConfig};
use super::{Activation, Decoder, DecoderConfig, DecoderExport, Encoder, ImageShape, OutputKind};
use crate::params::InitScheme;
use crate::{Error, Result as VResult};

/// Layout of a [`DenseEncoder`]: flatten, hidden layers, linear output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DenseEncoderConfig {
    /// Shape of one input image.
    pub input: ImageShape,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Activation after each hidden layer.
    pub activation: Activation,
    /// Width of the output (`2 · latent` for a VAE's posterior parameters).
    pub output_dim: usize,
    /// How the weights start.
    pub init: InitScheme,
}

crate::setters::with_setters!(DenseEncoderConfig {
    with_input(input: ImageShape),
    with_hidden(hidden: Vec<usize>),
    with_activation(activation: Activation),
    with_output_dim(output_dim: usize),
    with_init(init: InitScheme),
});

impl DenseEncoderConfig {
    /// An encoder of `input` images through ReLU hidden layers of widths
    /// `hidden` to `output_dim` values, with PyTorch's initialisation.
    pub fn new(input: ImageShape, hidden: &[usize], output_dim: usize) -> Self {
        Self {
            input,
            hidden: hidden.to_vec(),
            activation: Activation::Relu,
            output_dim,
            init: InitScheme::PyTorch,
        }
    }

    fn mlp(&self) -> MlpConfig {
        MlpConfig {
            in_dim: self.input.numel(),
            hidden: self.hidden.clone(),
            out_dim: self.output_dim,
            activation: self.activation,
            out_activation: Activation::Identity,
            init: self.init,
        }
    }

    /// Checks the layout; errors name the field under `field`.
    pub fn validate(&self, field: &str) -> VResult<()> {
        check_shape(&self.input, &format!("{field}.input"))?;
        if self.output_dim == 0 {
            return Err(Error::config(
                format!("{field}.output_dim"),
                "must be positive",
            ));
        }
        self.mlp().validate(field)
    }
}

/// A dense encoder: `[b, c, h, w] → flatten → MLP → [b, output_dim]`.
///
/// Parameters: `hidden.{i}.weight|bias`, `out.weight|bias`.
#[derive(Debug, Clone)]
pub struct DenseEncoder {
    input: ImageShape,
    mlp: Mlp,
}

impl DenseEncoder {
    /// Builds the encoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero size.
    pub fn new(config: &DenseEncoderConfig, vb: VarBuilder) -> VResult<Self> {
        config.validate("encoder")?;
        Ok(Self {
            input: config.input,
            mlp: mlp(&config.mlp(), vb)?,
        })
    }
}

impl ModuleT for DenseEncoder {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        self.input.check_batch(xs, "dense encoder")?;
        let flat = xs.flatten_from(1)?; // [b, c·h·w]
        self.mlp.forward(&flat) // [b, output_dim]
    }
}

impl Encoder for DenseEncoder {
    fn input_shape(&self) -> ImageShape {
        self.input
    }
    fn output_dim(&self) -> usize {
        self.mlp.out_dim()
    }
}

/// Layout of a [`DenseDecoder`]: hidden layers, linear output, reshape to images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DenseDecoderConfig {
    /// Width of the latent input.
    pub input_dim: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Activation after each hidden layer.
    pub activation: Activation,
    /// Shape of one output image.
    pub output: ImageShape,
    /// What the outputs are: a sigmoid is applied for
    /// [`OutputKind::Probabilities`], nothing otherwise.
    pub output_kind: OutputKind,
    /// How the weights start.
    pub init: InitScheme,
}

crate::setters::with_setters!(DenseDecoderConfig {
    with_input_dim(input_dim: usize),
    with_hidden(hidden: Vec<usize>),
    with_activation(activation: Activation),
    with_output(output: ImageShape),
    with_output_kind(output_kind: OutputKind),
    with_init(init: InitScheme),
});

impl DenseDecoderConfig {
    /// A decoder of `input_dim`-wide codes through ReLU hidden layers of widths
    /// `hidden` to `output` images as Bernoulli logits, with PyTorch's
    /// initialisation.
    pub fn new(input_dim: usize, hidden: &[usize], output: ImageShape) -> Self {
        Self {
            input_dim,
            hidden: hidden.to_vec(),
            activation: Activation::Relu,
            output,
            output_kind: OutputKind::Logits,
            init: InitScheme::PyTorch,
        }
    }

    fn mlp(&self) -> MlpConfig {
        MlpConfig {
            in_dim: self.input_dim,
            hidden: self.hidden.clone(),
            out_dim: self.output.numel(),
            activation: self.activation,
            out_activation: match self.output_kind {
                OutputKind::Probabilities => Activation::Sigmoid,
                OutputKind::Logits | OutputKind::Linear => Activation::Identity,
            },
            init: self.init,
        }
    }

    /// Checks the layout; errors name the field under `field`.
    pub fn validate(&self, field: &str) -> VResult<()> {
        if self.input_dim == 0 {
            return Err(Error::config(
                format!("{field}.input_dim"),
                "must be positive",
            ));
        }
        check_shape(&self.output, &format!("{field}.output"))?;
        self.mlp().validate(field)
    }
}

/// A dense decoder: `[b, input_dim] → MLP → [b, c, h, w]`.
///
/// Parameters: `hidden.{i}.weight|bias`, `out.weight|bias`.
#[derive(Debug, Clone)]
pub struct DenseDecoder {
    config: DenseDecoderConfig,
    mlp: Mlp,
}

impl DenseDecoder {
    /// Builds the decoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero size.
    pub fn new(config: &DenseDecoderConfig, vb: VarBuilder) -> VResult<Self> {
        config.validate("decoder")?;
        Ok(Self {
            config: config.clone(),
            mlp: mlp(&config.mlp(), vb)?,
        })
    }
}

impl ModuleT for DenseDecoder {
    fn forward_t(&self, z: &Tensor, _train: bool) -> Result<Tensor> {
        let b = z.dim(0)?;
        let out = self.mlp.forward(z)?; // [b, c·h·w]
        let s = self.config.output;
        out.reshape((b, s.channels, s.height, s.width)) // [b, c, h, w]
    }
}

impl Decoder for DenseDecoder {
    fn input_dim(&self) -> usize {
        self.mlp.in_dim()
    }
    fn output_shape(&self) -> ImageShape {
        self.config.output
    }
    fn output_kind(&self) -> OutputKind {
        self.config.output_kind
    }
    fn export(&self) -> std::result::Result<DecoderExport, String> {
        Ok(DecoderExport {
            config: DecoderConfig::Dense(self.config.clone()),
            tensors: self.mlp.named_tensors(),
        })
    }
}
