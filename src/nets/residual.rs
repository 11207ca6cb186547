//! Convolutional networks with residual blocks whose code is a feature map:
//! the encoder and decoder of the VQ-VAE (van den Oord et al. 2017), which
//! down-sample with strided convolutions, refine with residual blocks, and
//! give (or take) a map of `latent_channels` values per position.
//!
//! The map travels flattened in NCHW order, `[batch, channels · height ·
//! width]`, so these networks are ordinary [`Encoder`]s and [`Decoder`]s;
//! [`Encoder::output_map`] tells a model the map's shape.

use candle_core::{Result, Tensor};
use candle_nn::{Module, ModuleT, VarBuilder};
use serde::{Deserialize, Serialize};

use super::checks::{at_most, check_shape};
use super::conv::{block_tensors, down_blocks, down_shapes, up_blocks, up_shapes, Block};
use super::layers::{conv2d, Conv2d, Conv2dConfig};
use super::{
    ops, ConvBlockConfig, Decoder, DecoderConfig, DecoderExport, Encoder, ImageShape, OutputKind,
    UpBlockConfig, MAX_SIDE,
};
use crate::params::InitScheme;
use crate::{Error, Result as VResult};

/// The most residual blocks a stack may have.
const MAX_RESIDUAL_BLOCKS: usize = 1 << 10;

/// A stack of residual blocks at a constant number of channels: each block
/// adds `conv1×1(ReLU(conv3×3(ReLU(x))))` to its input `x`, the 3×3
/// convolution going to `hidden` channels and the 1×1 back; a ReLU follows the
/// stack (also when it has no block), as in the VQ-VAE paper's reference
/// implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResidualStackConfig {
    /// Number of residual blocks.
    pub blocks: usize,
    /// Channels inside each block (between its two convolutions).
    pub hidden: usize,
}

impl ResidualStackConfig {
    /// `blocks` residual blocks of `hidden` inner channels.
    pub fn new(blocks: usize, hidden: usize) -> Self {
        Self { blocks, hidden }
    }

    fn validate(&self, field: &str) -> VResult<()> {
        at_most(self.blocks, MAX_RESIDUAL_BLOCKS, &format!("{field}.blocks"))?;
        at_most(self.hidden, MAX_SIDE, &format!("{field}.hidden"))?;
        if self.blocks > 0 && self.hidden == 0 {
            return Err(Error::config(format!("{field}.hidden"), "must be positive"));
        }
        Ok(())
    }

    /// The values per position of the stack's outputs for `channels`
    /// channels: each block's two convolutions, its sum, and the last ReLU.
    fn values_per_position(&self, channels: usize) -> u64 {
        let per_block = (self.hidden as u64).saturating_add(2 * channels as u64);
        (self.blocks as u64)
            .saturating_mul(per_block)
            .saturating_add(channels as u64)
    }
}

crate::setters::with_setters!(ResidualStackConfig {
    with_blocks(blocks: usize),
    with_hidden(hidden: usize),
});

/// One residual block: `x + conv2(ReLU(conv1(ReLU(x))))`.
#[derive(Debug, Clone)]
struct ResidualBlock {
    conv1: Conv2d,
    conv2: Conv2d,
}

/// The residual blocks of a stack, under `residual.{j}.conv1` and
/// `residual.{j}.conv2`.
#[derive(Debug, Clone)]
struct ResidualStack {
    blocks: Vec<ResidualBlock>,
}

impl ResidualStack {
    fn new(
        channels: usize,
        config: &ResidualStackConfig,
        init: InitScheme,
        vb: &VarBuilder,
    ) -> VResult<Self> {
        let mut blocks = Vec::with_capacity(config.blocks);
        for j in 0..config.blocks {
            let vb = vb.pp("residual").pp(j);
            let same = Conv2dConfig::default().with_padding(1);
            let conv1 = conv2d(channels, config.hidden, 3, same, init, vb.pp("conv1"))?;
            let conv2 = conv2d(
                config.hidden,
                channels,
                1,
                Conv2dConfig::default(),
                init,
                vb.pp("conv2"),
            )?;
            blocks.push(ResidualBlock { conv1, conv2 });
        }
        Ok(Self { blocks })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut h = xs.clone(); // [b, c, h, w]
        for block in &self.blocks {
            let r = block.conv1.forward(&ops::leaky_relu(&h, 0.0)?)?; // [b, hidden, h, w]
            let r = block.conv2.forward(&ops::leaky_relu(&r, 0.0)?)?; // [b, c, h, w]
            h = (h + r)?;
        }
        ops::leaky_relu(&h, 0.0)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (j, b) in self.blocks.iter().enumerate() {
            out.extend(b.conv1.named_tensors(&format!("residual.{j}.conv1")));
            out.extend(b.conv2.named_tensors(&format!("residual.{j}.conv2")));
        }
        out
    }
}

/// Layout of a [`ResidualEncoder`]: down-sampling conv blocks, a residual
/// stack, and a 1×1 convolution to `latent_channels`.
///
/// The VQ-VAE paper's encoder for 28×28 or 32×32 images is two blocks of a
/// 4×4 convolution of stride 2 (ReLU), a 3×3 convolution (no activation),
/// two residual blocks, and the 1×1 convolution to the code width `D`
/// (`models::presets::vq_vae`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResidualEncoderConfig {
    /// Shape of one input image.
    pub input: ImageShape,
    /// The conv blocks before the residual stack, in order.
    pub blocks: Vec<ConvBlockConfig>,
    /// The residual stack, at the last block's channels.
    pub residual: ResidualStackConfig,
    /// Channels of the output map (the code width `D` of a VQ-VAE).
    pub latent_channels: usize,
    /// How the weights start.
    pub init: InitScheme,
}

crate::setters::with_setters!(ResidualEncoderConfig {
    with_input(input: ImageShape),
    with_blocks(blocks: Vec<ConvBlockConfig>),
    with_residual(residual: ResidualStackConfig),
    with_latent_channels(latent_channels: usize),
    with_init(init: InitScheme),
});

impl ResidualEncoderConfig {
    /// An encoder of `input` images through `blocks` and `residual` to a map
    /// of `latent_channels`, with PyTorch's initialisation.
    pub fn new(
        input: ImageShape,
        blocks: Vec<ConvBlockConfig>,
        residual: ResidualStackConfig,
        latent_channels: usize,
    ) -> Self {
        Self {
            input,
            blocks,
            residual,
            latent_channels,
            init: InitScheme::PyTorch,
        }
    }

    /// The feature-map shape after each conv block, checking every block fits.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the block that does not fit, or a zero size.
    pub fn shapes(&self, field: &str) -> VResult<Vec<ImageShape>> {
        down_shapes(self.input, &self.blocks, field)
    }

    /// The shape of the output map, `latent_channels × h × w`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field that cannot work.
    pub fn output_map(&self, field: &str) -> VResult<ImageShape> {
        self.validate(field)?;
        let last = self.last_map(field)?;
        Ok(ImageShape::new(
            self.latent_channels,
            last.height,
            last.width,
        ))
    }

    /// Width of the flattened output map, or 0 for a layout that cannot work.
    pub fn output_dim(&self) -> usize {
        self.output_map("encoder").map_or(0, |m| m.numel())
    }

    /// The map the conv blocks give (the input itself without a block).
    fn last_map(&self, field: &str) -> VResult<ImageShape> {
        Ok(self.shapes(field)?.last().copied().unwrap_or(self.input))
    }

    /// The values one image's forward pass produces (see
    /// [`EncoderConfig::activation_values`](super::EncoderConfig::activation_values)).
    pub(crate) fn activation_values(&self, field: &str) -> VResult<u64> {
        let shapes = self.shapes(field)?;
        let last = shapes.last().copied().unwrap_or(self.input);
        let positions = (last.height as u64).saturating_mul(last.width as u64);
        let maps = shapes
            .iter()
            .fold(0u64, |acc, s| acc.saturating_add(s.numel() as u64));
        Ok(maps
            .saturating_add(
                positions.saturating_mul(self.residual.values_per_position(last.channels)),
            )
            .saturating_add(positions.saturating_mul(self.latent_channels as u64)))
    }

    /// Checks the layout; errors name fields under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn validate(&self, field: &str) -> VResult<()> {
        let last = self.last_map(field)?;
        self.residual.validate(&format!("{field}.residual"))?;
        if self.latent_channels == 0 {
            return Err(Error::config(
                format!("{field}.latent_channels"),
                "must be positive",
            ));
        }
        at_most(
            self.latent_channels,
            MAX_SIDE,
            &format!("{field}.latent_channels"),
        )?;
        check_shape(
            &ImageShape::new(self.latent_channels, last.height, last.width),
            &format!("{field}.latent_channels"),
        )
    }
}

/// A convolutional encoder with residual blocks whose output is a feature
/// map, flattened: conv blocks, residual stack, 1×1 convolution.
///
/// Parameters: `blocks.{i}.conv.*`, `blocks.{i}.bn.*` (for blocks with batch
/// norm), `residual.{j}.conv1.*`, `residual.{j}.conv2.*`, `out.weight|bias`
/// (the 1×1 convolution).
///
/// # Shapes
///
/// `[batch, c, h, w]` → `[batch, latent_channels · h' · w']`, the map
/// `[batch, latent_channels, h', w']` ([`Encoder::output_map`]) flattened in
/// NCHW order.
#[derive(Debug, Clone)]
pub struct ResidualEncoder {
    input: ImageShape,
    blocks: Vec<Block>,
    residual: ResidualStack,
    out: Conv2d,
    map: ImageShape,
}

impl ResidualEncoder {
    /// Builds the encoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a block does not fit its input or a size is zero.
    pub fn new(config: &ResidualEncoderConfig, vb: VarBuilder) -> VResult<Self> {
        let map = config.output_map("encoder")?;
        let last = config.last_map("encoder")?;
        let blocks = down_blocks(config.input.channels, &config.blocks, config.init, &vb)?;
        let residual = ResidualStack::new(last.channels, &config.residual, config.init, &vb)?;
        let out = conv2d(
            last.channels,
            config.latent_channels,
            1,
            Conv2dConfig::default(),
            config.init,
            vb.pp("out"),
        )?;
        Ok(Self {
            input: config.input,
            blocks,
            residual,
            out,
            map,
        })
    }

    /// Every tensor, named as under the encoder's own path.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = block_tensors(&self.blocks);
        out.extend(self.residual.tensors());
        out.extend(self.out.named_tensors("out"));
        out
    }
}

impl ModuleT for ResidualEncoder {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.input.check_batch(xs, "residual encoder")?;
        let mut h = xs.clone(); // [b, c, h, w]
        for block in &self.blocks {
            h = block.forward_t(&h, train)?; // [b, c_i, h_i, w_i]
        }
        let h = self.residual.forward(&h)?; // [b, c_last, h', w']
        self.out.forward(&h)?.flatten_from(1) // [b, latent_channels · h' · w']
    }
}

impl Encoder for ResidualEncoder {
    fn input_shape(&self) -> ImageShape {
        self.input
    }
    fn output_dim(&self) -> usize {
        self.map.numel()
    }
    fn output_map(&self) -> Option<ImageShape> {
        Some(self.map)
    }
}

/// Layout of a [`ResidualDecoder`]: a 3×3 convolution from the code map to
/// `channels`, a residual stack, and up blocks to the image.
///
/// The VQ-VAE paper's decoder mirrors its encoder: the 3×3 convolution, two
/// residual blocks, and two 4×4 transposed convolutions of stride 2, the
/// first with a ReLU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResidualDecoderConfig {
    /// Shape of the code map it takes, `D × h × w`; its input width is
    /// `start.numel()`.
    pub start: ImageShape,
    /// Channels of the 3×3 convolution and the residual stack.
    pub channels: usize,
    /// The residual stack.
    pub residual: ResidualStackConfig,
    /// The up blocks after the stack, in order.
    pub blocks: Vec<UpBlockConfig>,
    /// Shape the last block must produce.
    pub output: ImageShape,
    /// What the outputs are: a sigmoid is applied for
    /// [`OutputKind::Probabilities`], nothing otherwise.
    pub output_kind: OutputKind,
    /// How the weights start.
    pub init: InitScheme,
}

crate::setters::with_setters!(ResidualDecoderConfig {
    with_start(start: ImageShape),
    with_channels(channels: usize),
    with_residual(residual: ResidualStackConfig),
    with_blocks(blocks: Vec<UpBlockConfig>),
    with_output(output: ImageShape),
    with_output_kind(output_kind: OutputKind),
    with_init(init: InitScheme),
});

impl ResidualDecoderConfig {
    /// A decoder of `start` code maps through a 3×3 convolution to
    /// `channels`, `residual` and `blocks` to `output` images as Bernoulli
    /// logits, with PyTorch's initialisation.
    pub fn new(
        start: ImageShape,
        channels: usize,
        residual: ResidualStackConfig,
        blocks: Vec<UpBlockConfig>,
        output: ImageShape,
    ) -> Self {
        Self {
            start,
            channels,
            residual,
            blocks,
            output,
            output_kind: OutputKind::Logits,
            init: InitScheme::PyTorch,
        }
    }

    /// Width of the flattened code map it takes.
    pub fn input_dim(&self) -> usize {
        self.start.numel()
    }

    /// The feature-map shape after each up block.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming a block that cannot work or a zero size.
    pub fn shapes(&self, field: &str) -> VResult<Vec<ImageShape>> {
        check_shape(&self.start, &format!("{field}.start"))?;
        if self.channels == 0 {
            return Err(Error::config(
                format!("{field}.channels"),
                "must be positive",
            ));
        }
        at_most(self.channels, MAX_SIDE, &format!("{field}.channels"))?;
        let inner = ImageShape::new(self.channels, self.start.height, self.start.width);
        check_shape(&inner, &format!("{field}.channels"))?;
        up_shapes(inner, &self.blocks, field)
    }

    /// The values one code map's forward pass produces (see
    /// [`DecoderConfig::activation_values`](super::DecoderConfig::activation_values)).
    pub(crate) fn activation_values(&self, field: &str) -> VResult<u64> {
        let shapes = self.shapes(field)?;
        let positions = (self.start.height as u64).saturating_mul(self.start.width as u64);
        let maps = shapes
            .iter()
            .fold(0u64, |acc, s| acc.saturating_add(s.numel() as u64));
        Ok(positions
            .saturating_mul(
                (self.channels as u64)
                    .saturating_add(self.residual.values_per_position(self.channels)),
            )
            .saturating_add(maps))
    }

    /// Checks the layout, including that the blocks produce
    /// [`output`](Self::output).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn validate(&self, field: &str) -> VResult<()> {
        check_shape(&self.output, &format!("{field}.output"))?;
        let shapes = self.shapes(field)?;
        self.residual.validate(&format!("{field}.residual"))?;
        let last = shapes.last().copied().unwrap_or(ImageShape::new(
            self.channels,
            self.start.height,
            self.start.width,
        ));
        if last != self.output {
            return Err(Error::config(
                format!("{field}.blocks"),
                format!("produce {last} images, expected {}", self.output),
            ));
        }
        Ok(())
    }
}

/// A convolutional decoder with residual blocks over a code map: 3×3
/// convolution, residual stack, up blocks.
///
/// Parameters: `input.weight|bias` (the 3×3 convolution),
/// `residual.{j}.conv1.*`, `residual.{j}.conv2.*`, `blocks.{i}.conv.*` and
/// `blocks.{i}.bn.*` for blocks with batch norm.
///
/// # Shapes
///
/// `[batch, D · h · w]` (a `[batch, D, h, w]` code map flattened in NCHW
/// order) → `[batch, c, H, W]`.
#[derive(Debug, Clone)]
pub struct ResidualDecoder {
    config: ResidualDecoderConfig,
    start: ImageShape,
    input: Conv2d,
    residual: ResidualStack,
    blocks: Vec<Block>,
    output: ImageShape,
    output_kind: OutputKind,
}

impl ResidualDecoder {
    /// Builds the decoder, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the blocks cannot produce the output shape.
    pub fn new(config: &ResidualDecoderConfig, vb: VarBuilder) -> VResult<Self> {
        config.validate("decoder")?;
        let same = Conv2dConfig::default().with_padding(1);
        let input = conv2d(
            config.start.channels,
            config.channels,
            3,
            same,
            config.init,
            vb.pp("input"),
        )?;
        let residual = ResidualStack::new(config.channels, &config.residual, config.init, &vb)?;
        let blocks = up_blocks(config.channels, &config.blocks, config.init, &vb)?;
        Ok(Self {
            config: config.clone(),
            start: config.start,
            input,
            residual,
            blocks,
            output: config.output,
            output_kind: config.output_kind,
        })
    }

    /// Every tensor, named as under the decoder's own path.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = self.input.named_tensors("input");
        out.extend(self.residual.tensors());
        out.extend(block_tensors(&self.blocks));
        out
    }
}

impl ModuleT for ResidualDecoder {
    fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let s = self.start;
        let b = match z.dims() {
            [b, d] if *d == s.numel() => *b,
            dims => candle_core::bail!(
                "residual decoder: expected [batch, {}] (a {s} code map, flattened), got {dims:?}",
                s.numel()
            ),
        };
        let h = z.reshape((b, s.channels, s.height, s.width))?; // [b, D, h, w]
        let h = self.input.forward(&h)?; // [b, channels, h, w]
        let mut h = self.residual.forward(&h)?; // [b, channels, h, w]
        for block in &self.blocks {
            h = block.forward_t(&h, train)?; // [b, c_i, h_i, w_i]
        }
        match self.output_kind {
            OutputKind::Probabilities => crate::kernels::sigmoid(&h), // [b, c, H, W]
            OutputKind::Logits | OutputKind::Linear => Ok(h),
        }
    }
}

impl Decoder for ResidualDecoder {
    fn input_dim(&self) -> usize {
        self.start.numel()
    }
    fn output_shape(&self) -> ImageShape {
        self.output
    }
    fn output_kind(&self) -> OutputKind {
        self.output_kind
    }
    fn export(&self) -> std::result::Result<DecoderExport, String> {
        Ok(DecoderExport {
            config: DecoderConfig::Residual(self.config.clone()),
            tensors: self.named_tensors(),
        })
    }
}
