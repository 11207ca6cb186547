//! Layer constructors that initialise by an [`InitScheme`].
//!
//! They build layers with PyTorch's parameter names (`weight`, `bias`,
//! `running_mean`, `running_var`), so a PyTorch `state_dict` loads into them:
//! candle's `Linear`, and vaekit's own [`Conv2d`], [`ConvTranspose2d`] and
//! [`BatchNorm2d`], whose CPU kernels are in [`ops`](super::ops) (candle's
//! are slow there in training) and which use candle's on other devices.

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{BatchNorm, Init, Module, ModuleT, VarBuilder};

use super::ops;
use crate::params::InitScheme;

/// A fully connected layer, computed by [`ops::linear`](super::ops::linear):
/// one op with its own backward on the CPU, candle's matmul elsewhere.
///
/// Parameters: `weight` `[out, in]`, `bias` `[out]`, as in PyTorch's `Linear`.
///
/// # Shapes
///
/// `[batch, in]` → `[batch, out]` (any leading dimensions off the CPU path).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `prefix.weight` and, if present, `prefix.bias`.
    pub(crate) fn named_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        named(prefix, &self.weight, self.bias.as_ref())
    }

    /// A layer with these weights (`weight` `[out, in]`, `bias` `[out]`).
    /// Shapes are checked by the forward pass.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The weights, `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::linear(xs, &self.weight, self.bias.as_ref()) // [batch, out]
    }
}

/// A fully connected layer `in_dim → out_dim` (weight `[out_dim, in_dim]`).
pub fn linear(in_dim: usize, out_dim: usize, init: InitScheme, vb: VarBuilder) -> Result<Linear> {
    let (w_init, b_init) = init.hints(in_dim, out_dim, in_dim);
    let w = vb.get_with_hints((out_dim, in_dim), "weight", w_init)?;
    let b = vb.get_with_hints(out_dim, "bias", b_init)?;
    Ok(Linear::new(w, Some(b)))
}

/// Stride and zero padding of a [`Conv2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Conv2dConfig {
    /// Step between neighbouring kernel positions (1 by default).
    pub stride: usize,
    /// Zero padding on every side (0 by default).
    pub padding: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
        }
    }
}

crate::setters::with_setters!(Conv2dConfig {
    with_stride(stride: usize),
    with_padding(padding: usize),
});

/// A 2-D convolution with a square kernel (dilation 1, one group), computed by
/// [`ops::conv2d`](super::ops::conv2d): fast on the CPU, candle's kernels elsewhere.
///
/// Parameters: `weight` `[out, in, k, k]`, `bias` `[out]`, as in PyTorch's `Conv2d`.
///
/// # Shapes
///
/// `[batch, in, h, w]` → `[batch, out, (h + 2·padding − k) / stride + 1, …]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv2dConfig,
}

impl Conv2d {
    /// `prefix.weight` and, if present, `prefix.bias`.
    pub(crate) fn named_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        named(prefix, &self.weight, self.bias.as_ref())
    }

    /// A convolution with these weights (`weight` `[out, in, k, k]`, `bias` `[out]`).
    /// Shapes are checked by the forward pass.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: Conv2dConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }

    /// The kernels, `[out, in, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Stride and padding.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let Conv2dConfig { stride, padding } = self.config;
        ops::conv2d(xs, &self.weight, self.bias.as_ref(), stride, padding) // [b, out, h', w']
    }
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

/// Stride, zero padding and output padding of a [`ConvTranspose2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConvTranspose2dConfig {
    /// Stride of the convolution it is the transpose of (1 by default).
    pub stride: usize,
    /// Padding of the convolution it is the transpose of (0 by default).
    pub padding: usize,
    /// Extra rows and columns at the bottom and right of the output, smaller than
    /// the stride (0 by default).
    pub output_padding: usize,
}

impl Default for ConvTranspose2dConfig {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            output_padding: 0,
        }
    }
}

crate::setters::with_setters!(ConvTranspose2dConfig {
    with_stride(stride: usize),
    with_padding(padding: usize),
    with_output_padding(output_padding: usize),
});

/// A 2-D transposed convolution with a square kernel (dilation 1, one group),
/// computed by [`ops::conv_transpose2d`](super::ops::conv_transpose2d).
///
/// Parameters: `weight` `[in, out, k, k]`, `bias` `[out]`, as in PyTorch's
/// `ConvTranspose2d`.
///
/// # Shapes
///
/// `[batch, in, h, w]` → `[batch, out, (h − 1)·stride − 2·padding + k + output_padding, …]`.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: ConvTranspose2dConfig,
}

impl ConvTranspose2d {
    /// `prefix.weight` and, if present, `prefix.bias`.
    pub(crate) fn named_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        named(prefix, &self.weight, self.bias.as_ref())
    }

    /// A transposed convolution with these weights (`weight` `[in, out, k, k]`,
    /// `bias` `[out]`). Shapes are checked by the forward pass.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: ConvTranspose2dConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }

    /// The kernels, `[in, out, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Stride, padding and output padding.
    pub fn config(&self) -> &ConvTranspose2dConfig {
        &self.config
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ConvTranspose2dConfig {
            stride,
            padding,
            output_padding,
        } = self.config;
        ops::conv_transpose2d(
            xs,
            &self.weight,
            self.bias.as_ref(),
            stride,
            padding,
            output_padding,
        ) // [b, out, h', w']
    }
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

/// Batch normalisation over the channels of `[batch, channels, h, w]`, as
/// PyTorch's `BatchNorm2d` with its defaults (ε = 1e-5, momentum 0.1, affine).
///
/// Training-mode forwards normalise by the batch's mean and biased variance and
/// update the running statistics (`running_var` from the unbiased variance);
/// evaluation normalises by the running statistics. On the CPU training runs
/// as one fused op ([`ops`](super::ops)); elsewhere it is candle's `BatchNorm`.
///
/// Parameters: `weight`, `bias`, and the buffers `running_mean`, `running_var`
/// (all `[channels]`), shared with the parameter store they came from.
///
/// # Shapes
///
/// `[batch, channels, h, w]` → the same.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
    /// candle's layer on the same tensors, for devices other than the CPU.
    candle: BatchNorm,
}

impl BatchNorm2d {
    /// `prefix.weight|bias|running_mean|running_var`.
    pub(crate) fn named_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        [
            ("weight", self.weight()),
            ("bias", self.bias()),
            ("running_mean", self.running_mean()),
            ("running_var", self.running_var()),
        ]
        .into_iter()
        .map(|(n, t)| (format!("{prefix}.{n}"), t.clone()))
        .collect()
    }

    /// PyTorch's ε.
    pub const EPS: f64 = 1e-5;
    /// PyTorch's momentum: the weight of the batch statistics in the running ones.
    pub const MOMENTUM: f64 = 0.1;

    /// A batch norm over `weight.dim(0)` channels with these tensors (all
    /// `[channels]`). The running statistics are updated in place, so tensors
    /// that are variables of a parameter store stay shared with it.
    ///
    /// # Errors
    ///
    /// When the four tensors are not all of one `[channels]` shape.
    pub fn new(
        weight: Tensor,
        bias: Tensor,
        running_mean: Tensor,
        running_var: Tensor,
    ) -> Result<Self> {
        let channels = weight.dim(0)?;
        let candle = BatchNorm::new(
            channels,
            running_mean.clone(),
            running_var.clone(),
            weight.clone(),
            bias.clone(),
            Self::EPS,
        )?;
        Ok(Self {
            weight,
            bias,
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            eps: Self::EPS,
            momentum: Self::MOMENTUM,
            candle,
        })
    }

    /// The scale, `[channels]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The shift, `[channels]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The running mean, `[channels]`.
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    /// The running (unbiased) variance, `[channels]`.
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    fn forward_train(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = xs.dims4()?;
        let (ys, stats) = ops::batch_norm_train_cpu(xs, &self.weight, &self.bias, self.eps)?;
        // running ← (1 − m)·running + m·batch, with the unbiased batch variance.
        let m = self.momentum;
        let n = (b * h * w) as f64;
        let as_tensor = |v: Vec<f64>| {
            Tensor::new(v, xs.device()).and_then(|t| t.to_dtype(self.running_mean.dtype()))
        };
        let mean = as_tensor(stats.mean)?;
        let var = as_tensor(stats.var)?;
        let rm = self.running_mean.as_tensor();
        let rv = self.running_var.as_tensor();
        self.running_mean.set(&((rm * (1.0 - m))? + (mean * m)?)?)?;
        self.running_var
            .set(&((rv * (1.0 - m))? + (var * (m * n / (n - 1.0)))?)?)?;
        Ok(ys)
    }

    fn forward_eval(&self, xs: &Tensor, fused: bool) -> Result<Tensor> {
        // The running statistics are buffers: no gradient flows into them.
        let running_var = self.running_var.as_detached_tensor();
        let running_mean = self.running_mean.as_detached_tensor();
        if fused {
            let stats = (
                running_mean.to_dtype(DType::F64)?.to_vec1::<f64>()?,
                running_var.to_dtype(DType::F64)?.to_vec1::<f64>()?,
            );
            return ops::batch_norm_eval_cpu(xs, &self.weight, &self.bias, stats, self.eps);
        }
        // As PyTorch: y = x·α + β, α = weight / √(running_var + ε), β = bias − running_mean·α.
        let c = self.weight.dim(0)?;
        let alpha = (&self.weight / (running_var + self.eps)?.sqrt()?)?;
        let beta = (&self.bias - (running_mean * &alpha)?)?;
        xs.broadcast_mul(&alpha.reshape((1, c, 1, 1))?)? // [b, c, h, w]
            .broadcast_add(&beta.reshape((1, c, 1, 1))?)
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let c = self.weight.dim(0)?;
        match xs.dims() {
            [_, ch, _, _] if *ch == c => {}
            dims => {
                candle_core::bail!("batch norm: expected [batch, {c}, height, width], got {dims:?}")
            }
        }
        let fused = xs.device().is_cpu()
            && matches!(xs.dtype(), DType::F32 | DType::F64)
            && xs.dtype() == self.weight.dtype();
        match (train, fused) {
            (true, true) => self.forward_train(xs),
            (true, false) => self.candle.forward_t(xs, true),
            (false, fused) => self.forward_eval(xs, fused),
        }
    }
}

/// Batch normalisation over the channels of `[batch, channels, h, w]`, with
/// PyTorch's defaults (ε = 1e-5, momentum 0.1, affine). Running statistics are
/// buffers in the parameter store, updated by training-mode forwards.
pub fn batch_norm2d(channels: usize, vb: VarBuilder) -> Result<BatchNorm2d> {
    let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.))?;
    let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.))?;
    let weight = vb.get_with_hints(channels, "weight", Init::Const(1.))?;
    let bias = vb.get_with_hints(channels, "bias", Init::Const(0.))?;
    BatchNorm2d::new(weight, bias, running_mean, running_var)
}

/// `prefix.weight` and, if present, `prefix.bias`.
fn named(prefix: &str, weight: &Tensor, bias: Option<&Tensor>) -> Vec<(String, Tensor)> {
    let mut out = vec![(format!("{prefix}.weight"), weight.clone())];
    if let Some(b) = bias {
        out.push((format!("{prefix}.bias"), b.clone()));
    }
    out
}
