//! Convolutional encoder and decoder, configurable block by block.
//!
//! The encoder is a stack of conv blocks (conv, optional batch norm, activation),
//! flattened in NCHW order into a linear output layer. The decoder is a linear
//! layer reshaped to a small feature map, then up blocks that grow it either by
//! transposed convolution or by nearest-neighbour up-sampling followed by a
//! convolution (which avoids checkerboard artefacts).

use candle_core::{Result, Tensor};
use candle_nn::{Module, ModuleT, VarBuilder};
use serde::{Deserialize, Serialize};

use super::checks::{at_most, check_shape};
use super::layers::{
    batch_norm2d, conv2d, conv_transpose2d, linear, BatchNorm2d, Conv2d, Conv2dConfig,
    ConvTranspose2d, ConvTranspose2dConfig, Linear,
};
use super::ops;
use super::{
    Activation, Decoder, DecoderConfig, DecoderExport, Encoder, ImageShape, OutputKind, MAX_KERNEL,
    MAX_SIDE, MAX_WIDTH,
};
use crate::params::InitScheme;
use crate::{Error, Result as VResult};

/// Normalisation after a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Norm {
    /// None.
    #[default]
    None,
    /// Batch normalisation (parameters `bn.*`), with running statistics for
    /// evaluation.
    Batch,
}

/// One encoder block: `conv(kernel, stride, padding)`, optional norm, activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConvBlockConfig {
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Normalisation after the convolution.
    pub norm: Norm,
    /// Activation at the end of the block.
    pub activation: Activation,
}

impl ConvBlockConfig {
    /// A block of `out_channels` with a `kernel × kernel` convolution of
    /// `stride` and `padding`, no norm, ReLU.
    pub fn new(out_channels: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            out_channels,
            kernel,
            stride,
            padding,
            norm: Norm::None,
            activation: Activation::Relu,
        }
    }
}

crate::setters::with_setters!(ConvBlockConfig {
    with_out_channels(out_channels: usize),
    with_kernel(kernel: usize),
    with_stride(stride: usize),
    with_padding(padding: usize),
    with_norm(norm: Norm),
    with_activation(activation: Activation),
});

/// Layout of a [`ConvEncoder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConvEncoderConfig {
    /// Shape of one input image.
    pub input: ImageShape,
    /// The conv blocks, in order.
    pub blocks: Vec<ConvBlockConfig>,
    /// Width of the linear output (`2 · latent` for a VAE).
    pub output_dim: usize,
    /// How the weights start.
    pub init: InitScheme,
}

crate::setters::with_setters!(ConvEncoderConfig {
    with_input(input: ImageShape),
    with_blocks(blocks: Vec<ConvBlockConfig>),
    with_output_dim(output_dim: usize),
    with_init(init: InitScheme),
});

impl ConvEncoderConfig {
    /// An encoder of `input` images through `blocks` to a linear output of
    /// `output_dim` values, with PyTorch's initialisation.
    pub fn new(input: ImageShape, blocks: Vec<ConvBlockConfig>, output_dim: usize) -> Self {
        Self {
            input,
            blocks,
            output_dim,
            init: InitScheme::PyTorch,
        }
    }

    /// The feature-map shape after each block, checking every block fits.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the block whose kernel does not fit its input, or a
    /// zero size.
    pub fn shapes(&self, field: &str) -> VResult<Vec<ImageShape>> {
        down_shapes(self.input, &self.blocks, field)
    }

    /// Checks the layout; errors name the field under `field`.
    pub fn validate(&self, field: &str) -> VResult<()> {
        self.shapes(field)?;
        if self.output_dim == 0 {
            return Err(Error::config(
                format!("{field}.output_dim"),
                "must be positive",
            ));
        }
        at_most(self.output_dim, MAX_WIDTH, &format!("{field}.output_dim"))?;
        Ok(())
    }
}

/// The feature-map shape after each of the down-sampling `blocks` over
/// `input` images, checking every block fits; errors name fields under `field`.
pub(super) fn down_shapes(
    input: ImageShape,
    blocks: &[ConvBlockConfig],
    field: &str,
) -> VResult<Vec<ImageShape>> {
    check_shape(&input, &format!("{field}.input"))?;
    let mut s = input;
    let mut out = Vec::with_capacity(blocks.len());
    for (i, b) in blocks.iter().enumerate() {
        let f = format!("{field}.blocks[{i}]");
        check_block(b.out_channels, b.kernel, b.stride, b.padding, &f)?;
        let conv = |x: usize| -> VResult<usize> {
            let padded = x + 2 * b.padding;
            if padded < b.kernel {
                return Err(Error::config(
                    &f,
                    format!(
                        "kernel {} does not fit a {}×{} input with padding {}",
                        b.kernel, s.height, s.width, b.padding
                    ),
                ));
            }
            Ok((padded - b.kernel) / b.stride + 1)
        };
        s = ImageShape::new(b.out_channels, conv(s.height)?, conv(s.width)?);
        check_shape(&s, &f)?;
        out.push(s);
    }
    Ok(out)
}

fn check_block(
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    field: &str,
) -> VResult<()> {
    at_most(channels, MAX_SIDE, &format!("{field}.out_channels"))?;
    at_most(kernel, MAX_KERNEL, &format!("{field}.kernel"))?;
    at_most(stride, MAX_KERNEL, &format!("{field}.stride"))?;
    at_most(padding, MAX_KERNEL, &format!("{field}.padding"))?;
    if channels == 0 {
        return Err(Error::config(
            format!("{field}.out_channels"),
            "must be positive",
        ));
    }
    if kernel == 0 {
        return Err(Error::config(format!("{field}.kernel"), "must be positive"));
    }
    if stride == 0 {
        return Err(Error::config(format!("{field}.stride"), "must be positive"));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub(super) enum Layer {
    Conv(Conv2d),
    Transposed(ConvTranspose2d),
}

/// One block of a conv network: up-sampling, convolution, norm, activation.
#[derive(Debug, Clone)]
pub(super) struct Block {
    upsample: usize,
    layer: Layer,
    bn: Option<BatchNorm2d>,
    activation: Activation,
}

impl Block {
    pub(super) fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let xs = if self.upsample > 1 {
            ops::upsample_nearest2d(xs, self.upsample)? // [b, c, s·h, s·w]
        } else {
            xs.clone()
        };
        let ys = match &self.layer {
            Layer::Conv(c) => c.forward(&xs)?,
            Layer::Transposed(c) => c.forward(&xs)?,
        }; // [b, out, h', w']
        let ys = match &self.bn {
            Some(bn) => bn.forward_t(&ys, train)?,
            None => ys,
        };
        self.activation.apply(&ys)
    }
}

/// The down-sampling blocks of `configs` over `in_channels`, their tensors
/// under `blocks.{i}.conv` and `blocks.{i}.bn`.
pub(super) fn down_blocks(
    in_channels: usize,
    configs: &[ConvBlockConfig],
    init: InitScheme,
    vb: &VarBuilder,
) -> VResult<Vec<Block>> {
    let mut blocks = Vec::with_capacity(configs.len());
    let mut in_c = in_channels;
    for (i, b) in configs.iter().enumerate() {
        let vb = vb.pp("blocks").pp(i);
        let cfg = Conv2dConfig {
            padding: b.padding,
            stride: b.stride,
        };
        let conv = conv2d(in_c, b.out_channels, b.kernel, cfg, init, vb.pp("conv"))?;
        let bn = match b.norm {
            Norm::Batch => Some(batch_norm2d(b.out_channels, vb.pp("bn"))?),
            Norm::None => None,
        };
        blocks.push(Block {
            upsample: 1,
            layer: Layer::Conv(conv),
            bn,
            activation: b.activation,
        });
        in_c = b.out_channels;
    }
    Ok(blocks)
}

/// The up blocks of `configs` over `in_channels`, their tensors under
/// `blocks.{i}.conv` and `blocks.{i}.bn`.
pub(super) fn up_blocks(
    in_channels: usize,
    configs: &[UpBlockConfig],
    init: InitScheme,
    vb: &VarBuilder,
) -> VResult<Vec<Block>> {
    let mut blocks = Vec::with_capacity(configs.len());
    let mut in_c = in_channels;
    for (i, b) in configs.iter().enumerate() {
        let vb = vb.pp("blocks").pp(i);
        let (upsample, layer) = match b.upsampling {
            Upsampling::Transposed { output_padding } => {
                let cfg = ConvTranspose2dConfig {
                    padding: b.padding,
                    output_padding,
                    stride: b.stride,
                };
                let c = conv_transpose2d(in_c, b.out_channels, b.kernel, cfg, init, vb.pp("conv"))?;
                (1, Layer::Transposed(c))
            }
            Upsampling::Conv | Upsampling::NearestConv { .. } => {
                let scale = match b.upsampling {
                    Upsampling::NearestConv { scale } => scale,
                    _ => 1,
                };
                let cfg = Conv2dConfig {
                    padding: b.padding,
                    stride: b.stride,
                };
                let c = conv2d(in_c, b.out_channels, b.kernel, cfg, init, vb.pp("conv"))?;
                (scale, Layer::Conv(c))
            }
        };
        let bn = match b.norm {
            Norm::Batch => Some(batch_norm2d(b.out_channels, vb.pp("bn"))?),
            Norm::None => None,
        };
        blocks.push(Block {
            upsample,
            layer,
            bn,
            activation: b.activation,
        });
        in_c = b.out_channels;
    }
    Ok(blocks)
}

/// The tensors of `blocks`, named `blocks.{i}.conv.*` and `blocks.{i}.bn.*`.
pub(super) fn block_tensors(blocks: &[Block]) -> Vec<(String, Tensor)> {
    let mut tensors = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let prefix = format!("blocks.{i}");
        tensors.extend(match &block.layer {
            Layer::Conv(c) => c.named_tensors(&format!("{prefix}.conv")),
            Layer::Transposed(c) => c.named_tensors(&format!("{prefix}.conv")),
        });
        if let Some(bn) = &block.bn {
            tensors.extend(bn.named_tensors(&format!("{prefix}.bn")));
        }
    }
    tensors
}

/// A convolutional encoder: conv blocks, flatten, linear output.
///
/// Parameters: `blocks.{i}.conv.weight|bias`, `blocks.{i}.bn.weight|bias|running_mean|running_var`
/// (for blocks with batch norm), `out.weight|bias`.
#[derive(Debug, Clone)]
pub struct ConvEncoder {
    input: ImageShape,
    blocks: Vec<Block>,
    out: Linear,
    output_dim: usize,
}

impl ConvEncoder {
    /// Builds the encoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a block does not fit its input or a size is zero.
    pub fn new(config: &ConvEncoderConfig, vb: VarBuilder) -> VResult<Self> {
        config.validate("encoder")?;
        let shapes = config.shapes("encoder")?;
        let blocks = down_blocks(config.input.channels, &config.blocks, config.init, &vb)?;
        let flat = shapes.last().unwrap_or(&config.input).numel();
        let out = linear(flat, config.output_dim, config.init, vb.pp("out"))?;
        Ok(Self {
            input: config.input,
            blocks,
            out,
            output_dim: config.output_dim,
        })
    }
}

impl ModuleT for ConvEncoder {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.input.check_batch(xs, "conv encoder")?;
        let mut h = xs.clone(); // [b, c, h, w]
        for block in &self.blocks {
            h = block.forward_t(&h, train)?; // [b, c_i, h_i, w_i]
        }
        self.out.forward(&h.flatten_from(1)?) // [b, output_dim]
    }
}

impl Encoder for ConvEncoder {
    fn input_shape(&self) -> ImageShape {
        self.input
    }
    fn output_dim(&self) -> usize {
        self.output_dim
    }
}

/// How an up block changes the size of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Upsampling {
    /// A plain convolution (no up-sampling).
    Conv,
    /// Nearest-neighbour up-sampling by `scale`, then a convolution.
    NearestConv {
        /// Integer up-sampling factor.
        scale: usize,
    },
    /// A transposed convolution with this extra output padding (PyTorch's
    /// `output_padding`, smaller than the stride).
    Transposed {
        /// Extra rows and columns added on one side of the output.
        output_padding: usize,
    },
}

/// One decoder block: up-sampling and convolution, optional norm, activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpBlockConfig {
    /// How the block grows its input.
    pub upsampling: Upsampling,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride of the (transposed) convolution.
    pub stride: usize,
    /// Padding of the (transposed) convolution.
    pub padding: usize,
    /// Normalisation after the convolution.
    pub norm: Norm,
    /// Activation at the end of the block.
    pub activation: Activation,
}

impl UpBlockConfig {
    /// A block that grows its input by `upsampling`, with a `kernel × kernel`
    /// (transposed) convolution of `stride` and `padding` to `out_channels`,
    /// no norm, ReLU.
    pub fn new(
        upsampling: Upsampling,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        Self {
            upsampling,
            out_channels,
            kernel,
            stride,
            padding,
            norm: Norm::None,
            activation: Activation::Relu,
        }
    }
}

crate::setters::with_setters!(UpBlockConfig {
    with_upsampling(upsampling: Upsampling),
    with_out_channels(out_channels: usize),
    with_kernel(kernel: usize),
    with_stride(stride: usize),
    with_padding(padding: usize),
    with_norm(norm: Norm),
    with_activation(activation: Activation),
});

/// Layout of a [`ConvDecoder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConvDecoderConfig {
    /// Width of the latent input.
    pub input_dim: usize,
    /// Feature-map shape the first linear layer is reshaped to.
    pub start: ImageShape,
    /// Activation after the first linear layer.
    pub fc_activation: Activation,
    /// The up blocks, in order.
    pub blocks: Vec<UpBlockConfig>,
    /// Shape the last block must produce.
    pub output: ImageShape,
    /// What the outputs are: a sigmoid is applied for
    /// [`OutputKind::Probabilities`], nothing otherwise.
    pub output_kind: OutputKind,
    /// How the weights start.
    pub init: InitScheme,
}

crate::setters::with_setters!(ConvDecoderConfig {
    with_input_dim(input_dim: usize),
    with_start(start: ImageShape),
    with_fc_activation(fc_activation: Activation),
    with_blocks(blocks: Vec<UpBlockConfig>),
    with_output(output: ImageShape),
    with_output_kind(output_kind: OutputKind),
    with_init(init: InitScheme),
});

impl ConvDecoderConfig {
    /// A decoder of `input_dim`-wide codes through a linear layer with ReLU,
    /// reshaped to `start`, and `blocks` to `output` images as Bernoulli
    /// logits, with PyTorch's initialisation.
    pub fn new(
        input_dim: usize,
        start: ImageShape,
        blocks: Vec<UpBlockConfig>,
        output: ImageShape,
    ) -> Self {
        Self {
            input_dim,
            start,
            fc_activation: Activation::Relu,
            blocks,
            output,
            output_kind: OutputKind::Logits,
            init: InitScheme::PyTorch,
        }
    }

    /// The feature-map shape after each block.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming a block that cannot work or a zero size.
    pub fn shapes(&self, field: &str) -> VResult<Vec<ImageShape>> {
        check_shape(&self.start, &format!("{field}.start"))?;
        up_shapes(self.start, &self.blocks, field)
    }

    /// Checks the layout, including that the blocks produce [`output`](Self::output).
    pub fn validate(&self, field: &str) -> VResult<()> {
        if self.input_dim == 0 {
            return Err(Error::config(
                format!("{field}.input_dim"),
                "must be positive",
            ));
        }
        at_most(self.input_dim, MAX_WIDTH, &format!("{field}.input_dim"))?;
        check_shape(&self.output, &format!("{field}.output"))?;
        let shapes = self.shapes(field)?;
        let last = shapes.last().copied().unwrap_or(self.start);
        if last != self.output {
            return Err(Error::config(
                format!("{field}.blocks"),
                format!("produce {last} images, expected {}", self.output),
            ));
        }
        Ok(())
    }
}

/// The feature-map shape after each of the up `blocks` over a `start` map
/// (checked by the caller), checking every block fits; errors name fields
/// under `field`.
pub(super) fn up_shapes(
    start: ImageShape,
    blocks: &[UpBlockConfig],
    field: &str,
) -> VResult<Vec<ImageShape>> {
    let mut s = start;
    let mut out = Vec::with_capacity(blocks.len());
    for (i, b) in blocks.iter().enumerate() {
        let f = format!("{field}.blocks[{i}]");
        check_block(b.out_channels, b.kernel, b.stride, b.padding, &f)?;
        match b.upsampling {
            Upsampling::Transposed { output_padding } => at_most(
                output_padding,
                MAX_KERNEL,
                &format!("{f}.upsampling.output_padding"),
            )?,
            Upsampling::NearestConv { scale } => {
                at_most(scale, MAX_KERNEL, &format!("{f}.upsampling.scale"))?
            }
            Upsampling::Conv => {}
        }
        let size = |x: usize| -> VResult<usize> {
            match b.upsampling {
                Upsampling::Transposed { output_padding } => {
                    if output_padding >= b.stride {
                        return Err(Error::config(
                            format!("{f}.upsampling.output_padding"),
                            format!(
                                "{output_padding} must be smaller than the stride {}",
                                b.stride
                            ),
                        ));
                    }
                    let full = (x - 1) * b.stride + b.kernel + output_padding;
                    full.checked_sub(2 * b.padding)
                        .filter(|&v| v > 0)
                        .ok_or_else(|| {
                            Error::config(&f, format!("padding {} leaves no output", b.padding))
                        })
                }
                Upsampling::Conv | Upsampling::NearestConv { .. } => {
                    let scale = match b.upsampling {
                        Upsampling::NearestConv { scale } => scale,
                        _ => 1,
                    };
                    if scale == 0 {
                        return Err(Error::config(
                            format!("{f}.upsampling.scale"),
                            "must be positive",
                        ));
                    }
                    let padded = x * scale + 2 * b.padding;
                    if padded < b.kernel {
                        return Err(Error::config(
                            &f,
                            format!(
                                "kernel {} does not fit its {}-pixel input",
                                b.kernel,
                                x * scale
                            ),
                        ));
                    }
                    Ok((padded - b.kernel) / b.stride + 1)
                }
            }
        };
        // Each side of `s` is at most 2^16 and each factor at most 2^10, so
        // `size` cannot overflow; the result is checked before the next block.
        s = ImageShape::new(b.out_channels, size(s.height)?, size(s.width)?);
        check_shape(&s, &f)?;
        out.push(s);
    }
    Ok(out)
}

/// A convolutional decoder: linear, reshape, up blocks.
///
/// Parameters: `fc.weight|bias`, `blocks.{i}.conv.weight|bias`, and
/// `blocks.{i}.bn.*` for blocks with batch norm.
#[derive(Debug, Clone)]
pub struct ConvDecoder {
    config: ConvDecoderConfig,
    fc: Linear,
    fc_activation: Activation,
    start: ImageShape,
    blocks: Vec<Block>,
    input_dim: usize,
    output: ImageShape,
    output_kind: OutputKind,
}

impl ConvDecoder {
    /// Builds the decoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the blocks cannot produce the output shape.
    pub fn new(config: &ConvDecoderConfig, vb: VarBuilder) -> VResult<Self> {
        config.validate("decoder")?;
        let fc = linear(
            config.input_dim,
            config.start.numel(),
            config.init,
            vb.pp("fc"),
        )?;
        let blocks = up_blocks(config.start.channels, &config.blocks, config.init, &vb)?;
        Ok(Self {
            config: config.clone(),
            fc,
            fc_activation: config.fc_activation,
            start: config.start,
            blocks,
            input_dim: config.input_dim,
            output: config.output,
            output_kind: config.output_kind,
        })
    }
}

impl ModuleT for ConvDecoder {
    fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let b = match z.dims() {
            [b, d] if *d == self.input_dim => *b,
            dims => candle_core::bail!(
                "conv decoder: expected [batch, {}], got {dims:?}",
                self.input_dim
            ),
        };
        let s = self.start;
        let h = self.fc_activation.apply(&self.fc.forward(z)?)?; // [b, c0·h0·w0]
        let mut h = h.reshape((b, s.channels, s.height, s.width))?; // [b, c0, h0, w0]
        for block in &self.blocks {
            h = block.forward_t(&h, train)?; // [b, c_i, h_i, w_i]
        }
        match self.output_kind {
            OutputKind::Probabilities => crate::kernels::sigmoid(&h), // [b, c, h, w]
            OutputKind::Logits | OutputKind::Linear => Ok(h),
        }
    }
}

impl Decoder for ConvDecoder {
    fn input_dim(&self) -> usize {
        self.input_dim
    }
    fn output_shape(&self) -> ImageShape {
        self.output
    }
    fn output_kind(&self) -> OutputKind {
        self.output_kind
    }
    fn export(&self) -> std::result::Result<DecoderExport, String> {
        let mut tensors = self.fc.named_tensors("fc");
        tensors.extend(block_tensors(&self.blocks));
        Ok(DecoderExport {
            config: DecoderConfig::Conv(self.config.clone()),
            tensors,
        })
    }
}
