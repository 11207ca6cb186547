//! Layer constructors that initialise by an [`InitScheme`].
//!
//! They build candle's own layer types with PyTorch's parameter names (`weight`,
//! `bias`, `running_mean`, `running_var`), so a PyTorch `state_dict` loads into them.

use candle_core::Result;
use candle_nn::{
    BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    Linear, VarBuilder,
};

use crate::params::InitScheme;

/// A fully connected layer `in_dim → out_dim` (weight `[out_dim, in_dim]`).
pub fn linear(in_dim: usize, out_dim: usize, init: InitScheme, vb: VarBuilder) -> Result<Linear> {
    let (w_init, b_init) = init.hints(in_dim, out_dim, in_dim);
    let w = vb.get_with_hints((out_dim, in_dim), "weight", w_init)?;
    let b = vb.get_with_hints(out_dim, "bias", b_init)?;
    Ok(Linear::new(w, Some(b)))
}

/// A 2-D convolution with a square `kernel` (weight `[out, in, k, k]`).
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    init: InitScheme,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let rf = kernel * kernel;
    let (w_init, b_init) = init.hints(in_channels * rf, out_channels * rf, in_channels * rf);
    let w = vb.get_with_hints(
        (out_channels, in_channels, kernel, kernel),
        "weight",
        w_init,
    )?;
    let b = vb.get_with_hints(out_channels, "bias", b_init)?;
    Ok(Conv2d::new(w, Some(b), cfg))
}

/// A 2-D transposed convolution with a square `kernel` (weight `[in, out, k, k]`).
pub fn conv_transpose2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: ConvTranspose2dConfig,
    init: InitScheme,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let rf = kernel * kernel;
    // PyTorch takes the fan-in of a transposed conv from weight.size(1) = out.
    let (w_init, b_init) = init.hints(in_channels * rf, out_channels * rf, out_channels * rf);
    let w = vb.get_with_hints(
        (in_channels, out_channels, kernel, kernel),
        "weight",
        w_init,
    )?;
    let b = vb.get_with_hints(out_channels, "bias", b_init)?;
    Ok(ConvTranspose2d::new(w, Some(b), cfg))
}

/// Batch normalisation over the channels of `[batch, channels, h, w]`, with
/// PyTorch's defaults (ε = 1e-5, momentum 0.1, affine). Running statistics are
/// buffers in the parameter store, updated by training-mode forwards.
pub fn batch_norm2d(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    candle_nn::batch_norm(channels, BatchNormConfig::default(), vb)
}
