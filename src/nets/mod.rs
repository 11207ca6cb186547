//! Networks: the [`Encoder`] and [`Decoder`] traits and the dense and
//! convolutional networks that implement them.
//!
//! An encoder maps a batch of images `[batch, channels, height, width]` to one
//! feature vector per image `[batch, output_dim]`: a code for a plain
//! autoencoder, the posterior parameters `[mean | log-variance]` for a VAE,
//! or a flattened map of code vectors for a VQ-VAE (the residual networks).
//! A decoder maps latent vectors `[batch, input_dim]` back to images, as logits,
//! probabilities or unbounded values (see [`OutputKind`]).

mod checks;
mod config;
mod conv;
mod dense;
mod layers;
mod mlp;
mod residual;
/// The kernels the networks call (`crate::kernels`, by the name they had here).
pub use crate::kernels as ops;

pub(crate) use config::widths;
pub use config::{DecoderConfig, EncoderConfig};
pub use conv::{
    ConvBlockConfig, ConvDecoder, ConvDecoderConfig, ConvEncoder, ConvEncoderConfig, Norm,
    UpBlockConfig, Upsampling,
};
pub use dense::{DenseDecoder, DenseDecoderConfig, DenseEncoder, DenseEncoderConfig};
pub use layers::{
    batch_norm2d, conv2d, conv_transpose2d, linear, BatchNorm2d, Conv2d, Conv2dConfig,
    ConvTranspose2d, ConvTranspose2dConfig, Linear,
};
pub use mlp::{Mlp, MlpConfig};
pub use residual::{
    ResidualDecoder, ResidualDecoderConfig, ResidualEncoder, ResidualEncoderConfig,
    ResidualStackConfig,
};

use candle_core::{Result, Tensor};
use candle_nn::ModuleT;
use serde::{Deserialize, Serialize};

/// Maps a batch of images to one feature vector per image.
///
/// `forward_t(images, train)` takes `[batch, c, h, w]` (the [`input_shape`]) and
/// returns `[batch, output_dim]`. `train` selects training behaviour (batch
/// statistics in batch norm); `false` is evaluation.
///
/// [`input_shape`]: Encoder::input_shape
pub trait Encoder: ModuleT + Send + Sync {
    /// Shape of one input image.
    fn input_shape(&self) -> ImageShape;
    /// Width of the feature vector returned per image.
    fn output_dim(&self) -> usize;

    /// The feature map `[channels, h, w]` the output flattens (in NCHW
    /// order), for an encoder whose output is a map of vectors (the
    /// [`ResidualEncoder`]); `None`, the default, for one whose output is a
    /// single vector.
    fn output_map(&self) -> Option<ImageShape> {
        None
    }
}

/// Maps latent vectors `[batch, input_dim]` to images `[batch, c, h, w]`.
pub trait Decoder: ModuleT + Send + Sync {
    /// Width of the latent vector it takes.
    fn input_dim(&self) -> usize;
    /// Shape of one output image.
    fn output_shape(&self) -> ImageShape;
    /// What its outputs mean: logits, probabilities, or unbounded values.
    fn output_kind(&self) -> OutputKind;

    /// The decoder as plain data — its config and its tensors — for programs
    /// that run it outside candle (the latent explorer runs it in JavaScript).
    ///
    /// vaekit's [`DenseDecoder`], [`ConvDecoder`] and [`ResidualDecoder`]
    /// export themselves; the default says that this decoder type cannot be
    /// exported.
    ///
    /// # Errors
    ///
    /// A sentence naming what cannot be exported.
    fn export(&self) -> std::result::Result<DecoderExport, String> {
        Err(format!(
            "decoder `{}` cannot be exported: only vaekit's DenseDecoder, ConvDecoder and ResidualDecoder (built from its Linear, Conv2d, ConvTranspose2d and BatchNorm2d layers) can",
            std::any::type_name::<Self>()
        ))
    }
}

/// A decoder as plain data: what [`Decoder::export`] returns.
#[derive(Debug, Clone)]
pub struct DecoderExport {
    /// The layout.
    pub config: DecoderConfig,
    /// Every tensor, named as under the decoder's own path (`hidden.0.weight`,
    /// `fc.bias`, `blocks.1.bn.running_var`, …).
    pub tensors: Vec<(String, Tensor)>,
}

impl std::fmt::Debug for dyn Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoder({} → {})", self.input_shape(), self.output_dim())
    }
}

impl std::fmt::Debug for dyn Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decoder({} → {})", self.input_dim(), self.output_shape())
    }
}

impl ModuleT for Box<dyn Encoder> {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        (**self).forward_t(xs, train)
    }
}

impl Encoder for Box<dyn Encoder> {
    fn input_shape(&self) -> ImageShape {
        (**self).input_shape()
    }
    fn output_dim(&self) -> usize {
        (**self).output_dim()
    }
    fn output_map(&self) -> Option<ImageShape> {
        (**self).output_map()
    }
}

impl ModuleT for Box<dyn Decoder> {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        (**self).forward_t(xs, train)
    }
}

impl Decoder for Box<dyn Decoder> {
    fn input_dim(&self) -> usize {
        (**self).input_dim()
    }
    fn output_shape(&self) -> ImageShape {
        (**self).output_shape()
    }
    fn output_kind(&self) -> OutputKind {
        (**self).output_kind()
    }
    fn export(&self) -> std::result::Result<DecoderExport, String> {
        (**self).export()
    }
}

/// The largest image side or channel count a config may give (2^16).
pub const MAX_SIDE: usize = 1 << 16;
/// The most values one image may hold, `channels × height × width` (2^26).
pub const MAX_IMAGE_VALUES: usize = 1 << 26;
/// The widest layer a config may give: hidden widths, code and output widths
/// (2^24).
pub const MAX_WIDTH: usize = 1 << 24;
/// The largest kernel, stride, padding or up-sampling factor a config may give
/// (2^10).
pub const MAX_KERNEL: usize = 1 << 10;

/// The shape of one image: channels, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageShape {
    /// Number of channels (1 for grey digits).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl ImageShape {
    /// MNIST's shape: 1×28×28.
    pub const MNIST: ImageShape = ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    /// A shape of `channels × height × width`.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// Number of values in one image.
    pub const fn numel(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Checks that `xs` is a batch `[batch, c, h, w]` of this shape.
    pub fn check_batch(&self, xs: &Tensor, what: &str) -> Result<usize> {
        match xs.dims() {
            [b, c, h, w] if (*c, *h, *w) == (self.channels, self.height, self.width) => Ok(*b),
            dims => candle_core::bail!(
                "{what}: expected images [batch, {}, {}, {}], got {dims:?}",
                self.channels,
                self.height,
                self.width
            ),
        }
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.channels, self.height, self.width)
    }
}

/// What a decoder's outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OutputKind {
    /// Bernoulli logits: pixel probabilities are `sigmoid(output)`.
    Logits,
    /// Probabilities in `[0, 1]` (a sigmoid is the last layer).
    Probabilities,
    /// Unbounded values (a linear last layer), e.g. a Gaussian mean.
    Linear,
}

impl OutputKind {
    /// Turns decoder outputs into displayable pixel values in `[0, 1]`.
    pub fn to_pixels(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            OutputKind::Logits => crate::kernels::sigmoid(xs),
            OutputKind::Probabilities => Ok(xs.clone()),
            OutputKind::Linear => xs.clamp(0f32, 1f32),
        }
    }
}

/// An element-wise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Activation {
    /// No activation.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x ≥ 0`, `slope · x` otherwise.
    LeakyRelu(f64),
    /// `1 / (1 + e^{−x})`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(xs.clone()),
            // One pass each way on the CPU, with PyTorch's gradient (0 at x = 0 for
            // a ReLU, `slope` for a leaky one).
            Activation::Relu => ops::leaky_relu(xs, 0.0),
            Activation::LeakyRelu(slope) => ops::leaky_relu(xs, slope),
            Activation::Sigmoid => crate::kernels::sigmoid(xs),
            Activation::Tanh => xs.tanh(),
        }
    }
}
