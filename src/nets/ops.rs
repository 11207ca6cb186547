//! The CPU-heavy ops of vaekit's convolutional networks, fast on the CPU and
//! exact.
//!
//! candle 0.11's CPU back end computes the input gradient of a convolution, and
//! the forward pass of a transposed convolution, with one dot product per output
//! pixel, and weight gradients with a convolution whose kernel is the whole
//! feature map. [`conv2d`] and [`conv_transpose2d`] compute the same functions
//! with im2col / col2im and matrix products (the `gemm` crate, which candle uses
//! for `matmul`) in all three directions:
//!
//! | | convolution | transposed convolution |
//! |---|---|---|
//! | forward | `W · im2col(x)` | `col2im(Wᵀ · x)` |
//! | input gradient | `col2im(Wᵀ · g)` | `W · im2col(g)` |
//! | weight gradient | `Σ_b g_b · im2col(x_b)ᵀ` | `Σ_b x_b · im2col(g_b)ᵀ` |
//!
//! with `W` the weight seen as a `[rows, cols·k·k]` matrix. A transposed
//! convolution is the adjoint of the convolution that maps its output grid back
//! to its input grid, so both share one geometry. The input gradient is skipped
//! for an input that carries none (the images fed to the first layer), which
//! [`Tensor::track_op`] tells.
//!
//! The other ops of a conv block cost more in candle than their arithmetic:
//! [`upsample_nearest2d`] (whose gradient candle takes with a grouped
//! convolution, one small convolution per channel), [`leaky_relu`] (over a dozen
//! passes for the gradient of `maximum(x, 0.2·x)`), the bias (reduced over the
//! non-contiguous dimensions 0, 2, 3) and training-mode batch norm (about a
//! dozen ops, each with a backward pass and a gradient buffer; used by
//! [`BatchNorm2d`](super::BatchNorm2d)). Here each is one custom op with a
//! direct backward pass.
//!
//! Work is spread over the images of a batch (or blocks of values) on candle's
//! own CPU worker pool, the one its element-wise kernels use, so the two never
//! compete for the cores. Sums across images (weight gradients, per-channel
//! statistics) are taken in an order fixed by the shapes alone, so results do
//! not depend on thread scheduling and the same seed gives the same run.
//!
//! On other devices (CUDA), and for dtypes other than `f32` and `f64`, every
//! function here calls candle's own op.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use candle_core::backend::BackendStorage;
use candle_core::utils::barrier_pool;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
    WithDType,
};
use gemm::Parallelism;

/// A 2-D convolution with a square kernel, stride `stride` and zero padding
/// `padding` on every side (dilation 1, one group), as PyTorch's `conv2d`.
///
/// # Shapes
///
/// - `x`: `[batch, in_channels, height, width]`
/// - `w`: `[out_channels, in_channels, k, k]`
/// - `bias`: `[out_channels]`
/// - result: `[batch, out_channels, (height + 2·padding − k) / stride + 1, …]`
///
/// # Errors
///
/// When the shapes do not fit together (naming them), `stride` is 0, the kernel
/// is larger than the padded input, or the dtypes differ.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let geom = Geometry::conv(x, w, stride, padding)?;
    let ys = if uses_own_kernels(x, w)? {
        let op = ConvOp {
            geom,
            pass: Pass::Forward,
        };
        x.contiguous()?.apply_op2(&w.contiguous()?, op)? // [b, out, oh, ow]
    } else {
        x.conv2d(w, padding, stride, 1, 1)?
    };
    add_bias(ys, bias, "conv2d")
}

/// A 2-D transposed convolution with a square kernel, as PyTorch's
/// `conv_transpose2d` (dilation 1, one group): the adjoint of
/// [`conv2d`] with the same stride and padding, with `output_padding` extra rows
/// and columns at the bottom and right of the output.
///
/// # Shapes
///
/// - `x`: `[batch, in_channels, height, width]`
/// - `w`: `[in_channels, out_channels, k, k]`
/// - `bias`: `[out_channels]`
/// - result: `[batch, out_channels, (height − 1)·stride − 2·padding + k + output_padding, …]`
///
/// # Errors
///
/// When the shapes do not fit together (naming them), `stride` is 0,
/// `output_padding` is not smaller than `stride`, the output would be empty, or
/// the dtypes differ.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let geom = Geometry::transposed(x, w, stride, padding, output_padding)?;
    let ys = if uses_own_kernels(x, w)? {
        let op = ConvOp {
            geom,
            pass: Pass::InputGrad,
        };
        x.contiguous()?.apply_op2(&w.contiguous()?, op)? // [b, out, oh, ow]
    } else {
        x.conv_transpose2d(w, padding, output_padding, stride, 1)?
    };
    add_bias(ys, bias, "conv_transpose2d")
}

/// Nearest-neighbour up-sampling by an integer `scale`: every pixel becomes a
/// `scale × scale` block, as PyTorch's `interpolate(mode="nearest")` and candle's
/// `upsample_nearest2d` with an integer factor.
///
/// On the CPU its gradient sums each block directly; candle's own
/// `upsample_nearest2d` takes it with a grouped convolution, which its CPU back
/// end runs as one small convolution per channel and image. Elsewhere it is
/// candle's.
///
/// # Shapes
///
/// `[batch, c, h, w]` → `[batch, c, scale·h, scale·w]`.
///
/// # Errors
///
/// When `x` is not 4-D or `scale` is 0.
pub fn upsample_nearest2d(x: &Tensor, scale: usize) -> Result<Tensor> {
    let (_, _, h, w) = images(x, "upsample_nearest2d")?;
    if scale == 0 {
        bail!("upsample_nearest2d: scale must be positive");
    }
    if scale == 1 {
        return Ok(x.clone());
    }
    if on_cpu_float(x) {
        x.contiguous()?.apply_op1(Upsample { scale }) // [b, c, s·h, s·w]
    } else {
        x.upsample_nearest2d(h * scale, w * scale)
    }
}

/// PyTorch's `leaky_relu`: `x` where `x > 0`, `slope·x` elsewhere (a ReLU
/// for `slope = 0`), with PyTorch's gradient, 1 where `x > 0` and `slope`
/// elsewhere.
///
/// On the CPU it is one pass forward and one backward; candle's
/// `maximum(x, slope·x)` takes over a dozen to get its gradient (which is
/// `(1 + slope)/2` where `x = 0`).
/// Elsewhere it is `maximum(x, slope·x)` (`minimum` for `slope > 1`), or
/// `relu` for `slope = 0`.
///
/// # Errors
///
/// Only those of candle's own ops.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if on_cpu_float(x) {
        x.contiguous()?.apply_op1(LeakyRelu { slope })
    } else if slope == 0.0 {
        x.relu()
    } else {
        let scaled = x.affine(slope, 0.0)?;
        if slope <= 1.0 {
            x.maximum(&scaled)
        } else {
            x.minimum(&scaled)
        }
    }
}

/// A fully connected layer, `x · wᵀ + bias`, as PyTorch's `linear`.
///
/// On the CPU a 2-D input runs as one op: the product is accumulated onto the
/// broadcast bias by one GEMM, and the backward pass computes the weight
/// gradient directly in `[out, in]` layout and skips the input gradient when the
/// input needs none (a batch of images). Built from candle's ops, a linear layer
/// is a transpose, a product and a broadcast add, whose backward also multiplies
/// out the input gradient and adds a transposed weight gradient element by
/// element. Other inputs go through candle's `broadcast_matmul`.
///
/// # Shapes
///
/// - `x`: `[batch, in]` (or `[…, in]`)
/// - `w`: `[out, in]`
/// - `bias`: `[out]`
/// - result: `[batch, out]` (`[…, out]`)
///
/// # Errors
///
/// When the shapes do not fit together (naming them) or the dtypes differ.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (out_dim, in_dim) = w.dims2()?;
    if x.dims().last() != Some(&in_dim) {
        bail!(
            "linear: input {:?} does not end in the weight's {in_dim} inputs (weight {:?})",
            x.dims(),
            w.dims()
        );
    }
    if let Some(b) = bias {
        if b.dims() != [out_dim] {
            bail!(
                "linear: expected a bias of shape [{out_dim}], got {:?}",
                b.dims()
            );
        }
    }
    let same_dtype = x.dtype() == w.dtype() && bias.is_none_or(|b| b.dtype() == w.dtype());
    match bias {
        Some(b) if on_cpu_float(x) && same_dtype && x.rank() == 2 => {
            x.contiguous()?
                .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear) // [batch, out]
        }
        _ => {
            let ys = x.broadcast_matmul(&w.t()?)?;
            match bias {
                Some(b) => ys.broadcast_add(b),
                None => Ok(ys),
            }
        }
    }
}

/// `x · wᵀ + bias` for contiguous `[batch, in]`, `[out, in]`, `[out]`.
#[derive(Debug, Clone, Copy)]
struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "vaekit-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (n, k) = xl.shape().dims2()?;
        let (m, wk) = wl.shape().dims2()?;
        if wk != k || bl.dims() != [m] {
            bail!(
                "{name}: input {:?}, weight {:?}, bias {:?}",
                xl.dims(),
                wl.dims(),
                bl.dims()
            );
        }
        let out = match (xs, ws, bs) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                CpuStorage::F32(linear_forward(
                    slice(x, xl, name)?,
                    slice(w, wl, name)?,
                    slice(b, bl, name)?,
                    n,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(linear_forward(
                    slice(x, xl, name)?,
                    slice(w, wl, name)?,
                    slice(b, bl, name)?,
                    n,
                ))
            }
            (x, w, b) => bail!(
                "{name}: unsupported dtypes {:?}, {:?}, {:?}",
                x.dtype(),
                w.dtype(),
                b.dtype()
            ),
        };
        Ok((out, Shape::from((n, m))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // An input that records no graph (a batch of data) needs no gradient.
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &LinearGrad::Input)?) // [batch, in]
        } else {
            None
        };
        let dw = grad.apply_op2_no_bwd(x, &LinearGrad::Weight)?; // [out, in]
                                                                 // The bias gradient is a per-channel sum, as for the convolutions.
        let (n, m) = grad.dims2()?;
        let db = grad.reshape((n, m, 1, 1))?.apply_op1_no_bwd(&ChannelSum)?; // [out]
        Ok((dx, Some(dw), Some(db)))
    }
}

/// The gradients of [`Linear`] from the output gradient `g` `[n, m]` and the
/// second argument: `g · w` with `w` `[m, k]` (input) or `gᵀ · x` with `x`
/// `[n, k]` (weight), one GEMM straight from the contiguous buffers.
#[derive(Debug, Clone, Copy)]
enum LinearGrad {
    Input,
    Weight,
}

impl CustomOp2 for LinearGrad {
    fn name(&self) -> &'static str {
        "vaekit-linear-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        os: &CpuStorage,
        ol: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (n, m) = gl.shape().dims2()?;
        let (rows, k) = ol.shape().dims2()?;
        let expected_rows = match self {
            LinearGrad::Input => m,
            LinearGrad::Weight => n,
        };
        if rows != expected_rows {
            bail!("{name}: gradient {:?} with {:?}", gl.dims(), ol.dims());
        }
        let out = match (gs, os) {
            (CpuStorage::F32(g), CpuStorage::F32(o)) => {
                CpuStorage::F32(self.compute(slice(g, gl, name)?, slice(o, ol, name)?, (n, m, k)))
            }
            (CpuStorage::F64(g), CpuStorage::F64(o)) => {
                CpuStorage::F64(self.compute(slice(g, gl, name)?, slice(o, ol, name)?, (n, m, k)))
            }
            (g, o) => bail!(
                "{name}: unsupported dtypes {:?}, {:?}",
                g.dtype(),
                o.dtype()
            ),
        };
        let shape = match self {
            LinearGrad::Input => Shape::from((n, k)),
            LinearGrad::Weight => Shape::from((m, k)),
        };
        Ok((out, shape))
    }
}

impl LinearGrad {
    fn compute<T: Elem>(self, g: &[T], other: &[T], (n, m, k): (usize, usize, usize)) -> Vec<T> {
        let (_, parallelism) = plan(1);
        match self {
            LinearGrad::Input => {
                let mut dx = vec![T::from_f64(0.0); n * k];
                let (lhs, rhs) = (Mat::rows(g, m), Mat::rows(other, k));
                matmul((n, k, m), (&mut dx, k), lhs, rhs, false, parallelism);
                dx
            }
            LinearGrad::Weight => {
                let mut dw = vec![T::from_f64(0.0); m * k];
                let (lhs, rhs) = (Mat::transposed(g, m), Mat::rows(other, k));
                matmul((m, k, n), (&mut dw, k), lhs, rhs, false, parallelism);
                dw
            }
        }
    }
}

/// `x · wᵀ + b` for row-major `x` `[n, k]`, `w` `[m, k]`, `b` `[m]`.
fn linear_forward<T: Elem>(x: &[T], w: &[T], b: &[T], n: usize) -> Vec<T> {
    let (m, k) = (b.len(), x.len().checked_div(n).unwrap_or(0));
    let mut y = Vec::with_capacity(n * m);
    for _ in 0..n {
        y.extend_from_slice(b);
    }
    let (_, parallelism) = plan(1);
    matmul(
        (n, m, k),
        (&mut y, m),
        Mat::rows(x, k),
        Mat::transposed(w, k),
        true,
        parallelism,
    );
    y
}

/// Whether `x` is a CPU tensor of a dtype the kernels of this module take.
fn on_cpu_float(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Whether the CPU kernels of this module handle `x` and `w`.
fn uses_own_kernels(x: &Tensor, w: &Tensor) -> Result<bool> {
    if x.dtype() != w.dtype() {
        bail!(
            "convolution: input dtype {:?} differs from weight dtype {:?}",
            x.dtype(),
            w.dtype()
        );
    }
    Ok(on_cpu_float(x))
}

/// `ys + bias` with the bias broadcast over batch, height and width.
///
/// On the CPU the bias gradient is summed per channel directly, rather than by
/// candle's generic reduction over the non-contiguous dimensions 0, 2 and 3.
fn add_bias(ys: Tensor, bias: Option<&Tensor>, what: &str) -> Result<Tensor> {
    let Some(bias) = bias else {
        return Ok(ys);
    };
    let channels = ys.dim(1)?;
    if bias.dims() != [channels] {
        bail!(
            "{what}: expected a bias of shape [{channels}], got {:?}",
            bias.dims()
        );
    }
    if on_cpu_float(&ys) && ys.dtype() == bias.dtype() {
        ys.contiguous()?.apply_op2(&bias.contiguous()?, BiasAdd) // [b, c, h, w]
    } else {
        ys.broadcast_add(&bias.reshape((1, channels, 1, 1))?) // [b, c, h, w]
    }
}

/// The sizes of one convolution, from its large grid (the input of a
/// convolution, the output of a transposed one) to its small grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    batch: usize,
    /// Channels of the large grid.
    big_c: usize,
    big_h: usize,
    big_w: usize,
    /// Channels of the small grid.
    small_c: usize,
    small_h: usize,
    small_w: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    /// The geometry of `conv2d(x, w)`, checking that the shapes fit.
    fn conv(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Self> {
        let (b, c, h, wd) = images(x, "conv2d")?;
        let (out_c, in_c, k) = kernel(w, "conv2d")?;
        if in_c != c {
            bail!(
                "conv2d: input {:?} has {c} channels but weight {:?} expects {in_c}",
                x.dims(),
                w.dims()
            );
        }
        if stride == 0 {
            bail!("conv2d: stride must be positive");
        }
        if h + 2 * padding < k || wd + 2 * padding < k {
            bail!(
                "conv2d: kernel {k}×{k} does not fit input {:?} with padding {padding}",
                x.dims()
            );
        }
        Ok(Self {
            batch: b,
            big_c: c,
            big_h: h,
            big_w: wd,
            small_c: out_c,
            small_h: (h + 2 * padding - k) / stride + 1,
            small_w: (wd + 2 * padding - k) / stride + 1,
            kernel: k,
            stride,
            padding,
        })
    }

    /// The geometry of `conv_transpose2d(x, w)`, checking that the shapes fit.
    fn transposed(
        x: &Tensor,
        w: &Tensor,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> Result<Self> {
        let (b, c, h, wd) = images(x, "conv_transpose2d")?;
        let (in_c, out_c, k) = kernel(w, "conv_transpose2d")?;
        if in_c != c {
            bail!(
                "conv_transpose2d: input {:?} has {c} channels but weight {:?} expects {in_c}",
                x.dims(),
                w.dims()
            );
        }
        if stride == 0 {
            bail!("conv_transpose2d: stride must be positive");
        }
        if output_padding >= stride {
            bail!(
                "conv_transpose2d: output padding {output_padding} must be smaller than the stride {stride}"
            );
        }
        if h == 0 || wd == 0 {
            bail!("conv_transpose2d: empty input {:?}", x.dims());
        }
        let size = |n: usize| {
            ((n - 1) * stride + k + output_padding)
                .checked_sub(2 * padding)
                .filter(|&o| o > 0)
        };
        let (Some(out_h), Some(out_w)) = (size(h), size(wd)) else {
            bail!(
                "conv_transpose2d: padding {padding} leaves no output for input {:?} and kernel {k}",
                x.dims()
            );
        };
        // The convolution from [out_h, out_w] with this kernel, stride and padding
        // lands exactly on [h, wd], since output_padding < stride.
        Ok(Self {
            batch: b,
            big_c: out_c,
            big_h: out_h,
            big_w: out_w,
            small_c: c,
            small_h: h,
            small_w: wd,
            kernel: k,
            stride,
            padding,
        })
    }

    /// Values in one image of the large grid.
    fn big_len(&self) -> usize {
        self.big_c * self.big_h * self.big_w
    }

    /// Pixels in one channel of the small grid: the columns of im2col.
    fn small_pixels(&self) -> usize {
        self.small_h * self.small_w
    }

    /// Values in one image of the small grid.
    fn small_len(&self) -> usize {
        self.small_c * self.small_pixels()
    }

    /// Rows of im2col: one per large-grid channel and kernel tap.
    fn patch_len(&self) -> usize {
        self.big_c * self.kernel * self.kernel
    }

    /// Values in the weight, `[small_c, big_c, k, k]`.
    fn weight_len(&self) -> usize {
        self.small_c * self.patch_len()
    }

    fn big_shape(&self) -> Shape {
        Shape::from((self.batch, self.big_c, self.big_h, self.big_w))
    }

    fn small_shape(&self) -> Shape {
        Shape::from((self.batch, self.small_c, self.small_h, self.small_w))
    }

    fn weight_shape(&self) -> Shape {
        Shape::from((self.small_c, self.big_c, self.kernel, self.kernel))
    }

    /// The small-grid positions `lo..hi` along one axis whose tap `tap` reads a
    /// large-grid position inside `0..big` (the others read padding).
    fn valid(&self, tap: usize, big: usize, small: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        // o·s + tap − p ≥ 0  ⇔  o ≥ ⌈(p − tap) / s⌉
        let lo = if tap >= p { 0 } else { (p - tap).div_ceil(s) };
        // o·s + tap − p < big  ⇔  o < ⌈(big + p − tap) / s⌉
        let hi = if big + p <= tap {
            0
        } else {
            (big + p - tap).div_ceil(s)
        };
        let hi = hi.min(small);
        (lo.min(hi), hi)
    }
}

/// The dimensions of a batch of images, or an error naming `what`.
fn images(x: &Tensor, what: &str) -> Result<(usize, usize, usize, usize)> {
    match *x.dims() {
        [b, c, h, w] => Ok((b, c, h, w)),
        ref dims => bail!("{what}: expected input [batch, channels, height, width], got {dims:?}"),
    }
}

/// The two channel counts and the size of a square kernel.
fn kernel(w: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    match *w.dims() {
        [a, b, k, k2] if k == k2 && k > 0 => Ok((a, b, k)),
        ref dims => {
            bail!("{what}: expected a weight with a square kernel [_, _, k, k], got {dims:?}")
        }
    }
}

/// Which of the three products a [`ConvOp`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// `(x large, w) → small`: the convolution.
    Forward,
    /// `(g small, w) → large`: the convolution's input gradient, which is the
    /// transposed convolution.
    InputGrad,
    /// `(x large, g small) → w`: the weight gradient of both.
    WeightGrad,
}

/// One of the three convolution products as a candle custom op.
#[derive(Debug, Clone, Copy)]
struct ConvOp {
    geom: Geometry,
    pass: Pass,
}

impl ConvOp {
    fn with(self, pass: Pass) -> Self {
        Self { pass, ..self }
    }

    /// The shapes of the two arguments and of the result.
    fn shapes(&self) -> (Shape, Shape, Shape) {
        let g = &self.geom;
        match self.pass {
            Pass::Forward => (g.big_shape(), g.weight_shape(), g.small_shape()),
            Pass::InputGrad => (g.small_shape(), g.weight_shape(), g.big_shape()),
            Pass::WeightGrad => (g.big_shape(), g.small_shape(), g.weight_shape()),
        }
    }

    fn run<T: Elem>(&self, a: &[T], b: &[T]) -> Vec<T> {
        match self.pass {
            Pass::Forward => forward(&self.geom, a, b),
            Pass::InputGrad => input_grad(&self.geom, a, b),
            Pass::WeightGrad => weight_grad(&self.geom, a, b),
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::Forward => "vaekit-conv2d",
            Pass::InputGrad => "vaekit-conv2d-input-grad",
            Pass::WeightGrad => "vaekit-conv2d-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (shape1, shape2, out) = self.shapes();
        for (l, shape) in [(l1, &shape1), (l2, &shape2)] {
            if l.shape() != shape {
                bail!(
                    "{}: expected an argument of shape {shape:?}, got {:?}",
                    self.name(),
                    l.shape()
                );
            }
        }
        let storage = match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                CpuStorage::F32(self.run(slice(a, l1, self.name())?, slice(b, l2, self.name())?))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                CpuStorage::F64(self.run(slice(a, l1, self.name())?, slice(b, l2, self.name())?))
            }
            (a, b) => bail!(
                "{}: unsupported dtypes {:?} and {:?}",
                self.name(),
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((storage, out))
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        match self.pass {
            // Convolution: arg1 = x (large), arg2 = w, grad on the small grid.
            Pass::Forward => {
                let dx = if arg1.track_op() {
                    Some(grad.apply_op2_no_bwd(arg2, &self.with(Pass::InputGrad))?)
                } else {
                    None
                };
                let dw = if arg2.track_op() {
                    Some(arg1.apply_op2_no_bwd(&grad, &self.with(Pass::WeightGrad))?)
                } else {
                    None
                };
                Ok((dx, dw))
            }
            // Transposed convolution: arg1 = x (small), arg2 = w, grad on the large grid.
            Pass::InputGrad => {
                let dx = if arg1.track_op() {
                    Some(grad.apply_op2_no_bwd(arg2, &self.with(Pass::Forward))?)
                } else {
                    None
                };
                let dw = if arg2.track_op() {
                    Some(grad.apply_op2_no_bwd(arg1, &self.with(Pass::WeightGrad))?)
                } else {
                    None
                };
                Ok((dx, dw))
            }
            Pass::WeightGrad => bail!("{}: no second derivative", self.name()),
        }
    }
}

/// The values of a contiguous CPU tensor.
fn slice<'a, T>(data: &'a [T], l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{what}: arguments must be contiguous"),
    }
}

/// The element types the kernels run on: those `gemm` multiplies.
trait Elem: WithDType {
    /// Runs `f` on this thread's scratch buffer, at least `len` long, whose
    /// contents are unspecified. Reusing it spares a large allocation, and the
    /// page faults of touching fresh memory, in every call.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

macro_rules! elem {
    ($t:ty, $scratch:ident) => {
        thread_local! {
            static $scratch: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
        }

        impl Elem for $t {
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
                $scratch.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut v) => {
                        if v.len() < len {
                            v.resize(len, 0.0);
                        }
                        f(&mut v[..len])
                    }
                    Err(_) => f(&mut vec![0.0; len]),
                })
            }
        }
    };
}

elem!(f32, SCRATCH_F32);
elem!(f64, SCRATCH_F64);

/// A read-only matrix: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major matrix whose rows start `rs` apart.
    fn rows(data: &'a [T], rs: usize) -> Self {
        Self { data, rs, cs: 1 }
    }

    /// The transpose of a row-major matrix whose rows start `rs` apart.
    fn transposed(data: &'a [T], rs: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: rs,
        }
    }

    /// Whether a `rows × cols` matrix with these strides lies inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]`, plus the old `dst` when `accumulate`;
/// `dst` is row-major with rows `dst_rs` apart.
///
/// # Panics
///
/// When a matrix does not lie inside its slice (a bug in this module).
fn matmul<T: Elem>(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (&mut [T], usize),
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let dst_fits = m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len();
    assert!(
        dst_fits && dst_rs >= n && lhs.fits(m, k) && rhs.fits(k, n),
        "vaekit conv matmul: operands out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(T::from_f64(0.0));
            }
        }
        return;
    }
    let one = T::from_f64(1.0);
    // SAFETY: the assertion above keeps every element gemm reads or writes —
    // (i, j) ↦ i·rs + j·cs for i < rows and j < cols — inside its slice, and the
    // rows of `dst` apart (dst_rs ≥ n); `dst` is borrowed mutably and so does not
    // overlap `lhs` or `rhs`; `Elem` is only implemented for f32 and f64, which
    // gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            one,
            one,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Threads that share the work of one op: the calling thread and the workers
/// of candle's CPU pool, the one its own element-wise kernels run on (using
/// it rather than a second pool keeps the two from competing for the cores).
fn pool_threads() -> usize {
    barrier_pool().n_workers() + 1
}

/// How to run `tasks` independent pieces of work: spread over the pool with
/// single-threaded matrix products (`true`), or one after the other with
/// multithreaded ones when there are fewer pieces than threads (`false`).
fn plan(tasks: usize) -> (bool, Parallelism) {
    let threads = pool_threads();
    if threads <= 1 {
        (false, Parallelism::None)
    } else if tasks >= threads {
        (true, Parallelism::None)
    } else {
        (false, Parallelism::Rayon(threads))
    }
}

/// Runs `f(i, task)` for every task, spread over candle's CPU pool when
/// `parallel`, in order on this thread otherwise.
fn run_tasks<I: Send>(tasks: Vec<I>, parallel: bool, f: impl Fn(usize, I) + Sync) {
    if !parallel || tasks.len() <= 1 {
        for (i, t) in tasks.into_iter().enumerate() {
            f(i, t);
        }
        return;
    }
    let slots: Vec<Mutex<Option<I>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    barrier_pool().execute_chunked(slots.len(), |range| {
        for i in range {
            let task = slots[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(t) = task {
                f(i, t);
            }
        }
    });
}

/// At most this many values in one im2col tile: output rows are processed in
/// bands that keep the patch matrix near this size (and at least one row).
const TILE_VALUES: usize = 1 << 20;

/// The bands of output rows `oy0..oy1` that im2col is built for at a time.
fn bands(g: &Geometry) -> impl Iterator<Item = Range<usize>> {
    let per_row = (g.patch_len() * g.small_w).max(1);
    let rows = (TILE_VALUES / per_row).clamp(1, g.small_h.max(1));
    let h = g.small_h;
    (0..h).step_by(rows).map(move |r| r..(r + rows).min(h))
}

/// Convolution: `y_b = W · im2col(x_b)`, `[small_c, patch] · [patch, pixels]`.
fn forward<T: Elem>(g: &Geometry, x: &[T], w: &[T]) -> Vec<T> {
    let (patch, pixels, ow) = (g.patch_len(), g.small_pixels(), g.small_w);
    let mut y = vec![T::from_f64(0.0); g.batch * g.small_len()];
    let (parallel, par) = plan(g.batch);
    let tasks: Vec<&mut [T]> = y.chunks_mut(g.small_len().max(1)).collect();
    run_tasks(tasks, parallel, |b, y_b| {
        let x_b = &x[b * g.big_len()..][..g.big_len()];
        for band in bands(g) {
            let n = band.len() * ow;
            T::with_scratch(patch * n, |col| {
                im2col(g, x_b, band.clone(), col);
                matmul(
                    (g.small_c, n, patch),
                    (&mut y_b[band.start * ow..], pixels),
                    Mat::rows(w, patch),
                    Mat::rows(col, n),
                    false,
                    par,
                );
            });
        }
    });
    y
}

/// Input gradient of the convolution (the transposed convolution):
/// `dx_b = col2im(Wᵀ · g_b)`, `[patch, small_c] · [small_c, pixels]`.
fn input_grad<T: Elem>(g: &Geometry, dy: &[T], w: &[T]) -> Vec<T> {
    let (patch, pixels, ow) = (g.patch_len(), g.small_pixels(), g.small_w);
    let mut dx = vec![T::from_f64(0.0); g.batch * g.big_len()];
    let (parallel, par) = plan(g.batch);
    let tasks: Vec<&mut [T]> = dx.chunks_mut(g.big_len().max(1)).collect();
    run_tasks(tasks, parallel, |b, dx_b| {
        let dy_b = &dy[b * g.small_len()..][..g.small_len()];
        for band in bands(g) {
            let n = band.len() * ow;
            T::with_scratch(patch * n, |col| {
                matmul(
                    (patch, n, g.small_c),
                    (col, n),
                    Mat::transposed(w, patch),
                    Mat::rows(&dy_b[band.start * ow..], pixels),
                    false,
                    par,
                );
                col2im(g, col, band.clone(), dx_b);
            });
        }
    });
    dx
}

/// At most this many partial weight gradients are summed; the images are split
/// into that many groups whatever the number of threads, so the result does not
/// depend on it.
const WEIGHT_GRAD_GROUPS: usize = 8;

/// Weight gradient: `dW = Σ_b g_b · im2col(x_b)ᵀ`, `[small_c, pixels] · [pixels, patch]`,
/// summed per group of images in parallel, then over groups in order.
fn weight_grad<T: Elem>(g: &Geometry, x: &[T], dy: &[T]) -> Vec<T> {
    let (patch, pixels, ow) = (g.patch_len(), g.small_pixels(), g.small_w);
    let zero = T::from_f64(0.0);
    let groups = g.batch.clamp(1, WEIGHT_GRAD_GROUPS);
    let per_group = g.batch.div_ceil(groups);
    let (parallel, par) = plan(groups);
    let mut partials = vec![vec![zero; g.weight_len()]; groups];
    let tasks: Vec<&mut Vec<T>> = partials.iter_mut().collect();
    run_tasks(tasks, parallel, |i, dw| {
        let images = (i * per_group).min(g.batch)..((i + 1) * per_group).min(g.batch);
        let mut first = true;
        for b in images {
            let x_b = &x[b * g.big_len()..][..g.big_len()];
            let dy_b = &dy[b * g.small_len()..][..g.small_len()];
            for band in bands(g) {
                let n = band.len() * ow;
                T::with_scratch(patch * n, |col| {
                    im2col(g, x_b, band.clone(), col);
                    matmul(
                        (g.small_c, patch, n),
                        (dw, patch),
                        Mat::rows(&dy_b[band.start * ow..], pixels),
                        Mat::transposed(col, n),
                        !first,
                        par,
                    );
                });
                first = false;
            }
        }
    });
    let mut parts = partials.into_iter();
    let mut dw = parts.next().unwrap_or_default();
    for p in parts {
        for (a, b) in dw.iter_mut().zip(p) {
            *a += b;
        }
    }
    dw
}

/// Lays the patches of one large-grid image `x` `[big_c, big_h, big_w]` for
/// the output rows `band` out as the columns of `col`
/// `[big_c·k·k, band.len()·small_w]`; taps that fall on the padding read zero.
fn im2col<T: Elem>(g: &Geometry, x: &[T], band: Range<usize>, col: &mut [T]) {
    let zero = T::from_f64(0.0);
    let (k, s, p) = (g.kernel, g.stride, g.padding);
    let ow = g.small_w;
    let n = band.len() * ow;
    let plane = g.big_h * g.big_w;
    for c in 0..g.big_c {
        let x_c = &x[c * plane..][..plane];
        for ki in 0..k {
            let (oy_lo, oy_hi) = g.valid(ki, g.big_h, g.small_h);
            let (oy_lo, oy_hi) = (
                oy_lo.clamp(band.start, band.end),
                oy_hi.clamp(band.start, band.end),
            );
            let (oy_lo, oy_hi) = (oy_lo, oy_hi.max(oy_lo));
            for kj in 0..k {
                let (ox_lo, ox_hi) = g.valid(kj, g.big_w, g.small_w);
                let row = &mut col[((c * k + ki) * k + kj) * n..][..n];
                row[..(oy_lo - band.start) * ow].fill(zero);
                row[(oy_hi - band.start) * ow..].fill(zero);
                for oy in oy_lo..oy_hi {
                    let src = &x_c[(oy * s + ki - p) * g.big_w..][..g.big_w];
                    let dst = &mut row[(oy - band.start) * ow..][..ow];
                    dst[..ox_lo].fill(zero);
                    dst[ox_hi..].fill(zero);
                    if ox_lo == ox_hi {
                        continue;
                    }
                    // ix = ox·s + kj − p, inside 0..big_w for ox in ox_lo..ox_hi.
                    let dst = &mut dst[ox_lo..ox_hi];
                    let start = ox_lo * s + kj - p;
                    if s == 1 {
                        dst.copy_from_slice(&src[start..start + dst.len()]);
                    } else {
                        for (d, &v) in dst.iter_mut().zip(src[start..].iter().step_by(s)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `col`
/// `[big_c·k·k, band.len()·small_w]` back onto the large-grid position of `x`
/// `[big_c, big_h, big_w]` it was read from; entries over the padding are
/// dropped.
fn col2im<T: Elem>(g: &Geometry, col: &[T], band: Range<usize>, x: &mut [T]) {
    let (k, s, p) = (g.kernel, g.stride, g.padding);
    let ow = g.small_w;
    let n = band.len() * ow;
    let plane = g.big_h * g.big_w;
    for c in 0..g.big_c {
        let x_c = &mut x[c * plane..][..plane];
        for ki in 0..k {
            let (oy_lo, oy_hi) = g.valid(ki, g.big_h, g.small_h);
            let (oy_lo, oy_hi) = (
                oy_lo.clamp(band.start, band.end),
                oy_hi.clamp(band.start, band.end),
            );
            for kj in 0..k {
                let (ox_lo, ox_hi) = g.valid(kj, g.big_w, g.small_w);
                if ox_lo == ox_hi {
                    continue;
                }
                let row = &col[((c * k + ki) * k + kj) * n..][..n];
                for oy in oy_lo..oy_hi {
                    let dst = &mut x_c[(oy * s + ki - p) * g.big_w..][..g.big_w];
                    let r = (oy - band.start) * ow;
                    let src = &row[r + ox_lo..r + ox_hi];
                    let start = ox_lo * s + kj - p;
                    if s == 1 {
                        for (d, &v) in dst[start..start + src.len()].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, &v) in dst[start..].iter_mut().step_by(s).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// The `(planes, height, width)` of a contiguous `[batch, c, h, w]` layout.
fn planes(l: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    match *l.dims() {
        [b, c, h, w] => Ok((b * c, h, w)),
        ref dims => bail!("{what}: expected [batch, channels, height, width], got {dims:?}"),
    }
}

/// Values per parallel task in the element-wise kernels below.
const VALUES_PER_TASK: usize = 1 << 15;

/// Runs `f(i, task)` over the tasks of an element-wise kernel that touches
/// `values` values in all, in parallel when there are enough of them.
fn run_elementwise<I: Send>(tasks: Vec<I>, values: usize, f: impl Fn(usize, I) + Sync) {
    let parallel = values >= 2 * VALUES_PER_TASK && pool_threads() > 1;
    run_tasks(tasks, parallel, f);
}

/// How many `plane`-sized planes make one task of an element-wise kernel.
fn planes_per_task(plane: usize) -> usize {
    (VALUES_PER_TASK / plane.max(1)).max(1)
}

/// Applies `f32_fn` or `f64_fn` to the values of a contiguous CPU tensor.
fn map_float(
    s: &CpuStorage,
    l: &Layout,
    what: &'static str,
    f32_fn: impl FnOnce(&[f32]) -> Vec<f32>,
    f64_fn: impl FnOnce(&[f64]) -> Vec<f64>,
) -> Result<CpuStorage> {
    Ok(match s {
        CpuStorage::F32(v) => CpuStorage::F32(f32_fn(slice(v, l, what)?)),
        CpuStorage::F64(v) => CpuStorage::F64(f64_fn(slice(v, l, what)?)),
        other => bail!("{what}: unsupported dtype {:?}", other.dtype()),
    })
}

/// Nearest-neighbour up-sampling by `scale` of a contiguous `[b, c, h, w]`.
#[derive(Debug, Clone, Copy)]
struct Upsample {
    scale: usize,
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        "vaekit-upsample-nearest2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, h, w) = planes(l, self.name())?;
        let sc = self.scale;
        let out = map_float(
            s,
            l,
            self.name(),
            |x| upsample(x, (n, h, w), sc),
            |x| upsample(x, (n, h, w), sc),
        )?;
        let (b, c) = (l.dims()[0], l.dims()[1]);
        Ok((out, Shape::from((b, c, h * sc, w * sc))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = grad.contiguous()?.apply_op1_no_bwd(&BlockSum {
            scale: self.scale,
            out: arg.shape().clone(),
        })?;
        Ok(Some(dx))
    }
}

/// Every pixel of each `[h, w]` plane of `x` as an `s × s` block.
fn upsample<T: WithDType>(x: &[T], (n, h, w): (usize, usize, usize), s: usize) -> Vec<T> {
    let (oh, ow) = (h * s, w * s);
    let mut y = vec![T::from_f64(0.0); n * oh * ow];
    if y.is_empty() {
        return y;
    }
    let per = planes_per_task(oh * ow);
    let len = y.len();
    let tasks: Vec<_> = y
        .chunks_mut(per * oh * ow)
        .zip(x.chunks(per * h * w))
        .collect();
    run_elementwise(tasks, len, |_, (yp, xp)| {
        for (rows, xr) in yp.chunks_mut(s * ow).zip(xp.chunks(w)) {
            let (first, rest) = rows.split_at_mut(ow);
            for (block, &v) in first.chunks_mut(s).zip(xr) {
                block.fill(v);
            }
            for r in rest.chunks_mut(ow) {
                r.copy_from_slice(first);
            }
        }
    });
    y
}

/// The gradient of [`Upsample`]: the sum of each `s × s` block, back to `out`.
#[derive(Debug, Clone)]
struct BlockSum {
    scale: usize,
    out: Shape,
}

impl CustomOp1 for BlockSum {
    fn name(&self) -> &'static str {
        "vaekit-upsample-nearest2d-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, oh, ow) = planes(l, self.name())?;
        let sc = self.scale;
        let (h, w) = (oh / sc, ow / sc);
        if self.out.dims() != [l.dims()[0], l.dims()[1], h, w] || h * sc != oh || w * sc != ow {
            bail!(
                "{}: gradient {:?} does not come from {:?}",
                self.name(),
                l.dims(),
                self.out.dims()
            );
        }
        let out = map_float(
            s,
            l,
            self.name(),
            |g| block_sum(g, (n, h, w), sc),
            |g| block_sum(g, (n, h, w), sc),
        )?;
        Ok((out, self.out.clone()))
    }
}

/// The sum of each `s × s` block of `g`, `[n, s·h, s·w]` → `[n, h, w]`.
fn block_sum<T: WithDType>(g: &[T], (n, h, w): (usize, usize, usize), s: usize) -> Vec<T> {
    let ow = w * s;
    let mut dx = vec![T::from_f64(0.0); n * h * w];
    if dx.is_empty() {
        return dx;
    }
    let per = planes_per_task(h * s * ow);
    let tasks: Vec<_> = dx
        .chunks_mut(per * h * w)
        .zip(g.chunks(per * h * s * ow))
        .collect();
    run_elementwise(tasks, g.len(), |_, (dp, gp)| {
        // One output row per s input rows; rows of g, then blocks of s values.
        for (dr, rows) in dp.chunks_mut(w).zip(gp.chunks(s * ow)) {
            for gr in rows.chunks(ow) {
                for (d, block) in dr.iter_mut().zip(gr.chunks(s)) {
                    for &v in block {
                        *d += v;
                    }
                }
            }
        }
    });
    dx
}

/// `y + bias` for a contiguous `y` `[b, c, h, w]` and `bias` `[c]`.
#[derive(Debug, Clone, Copy)]
struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "vaekit-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, h, w) = planes(l1, self.name())?;
        let c = l1.dims()[1];
        if l2.dims() != [c] {
            bail!(
                "{}: expected a bias of shape [{c}], got {:?}",
                self.name(),
                l2.dims()
            );
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(b)) => CpuStorage::F32(channel_affine(
                slice(y, l1, self.name())?,
                None,
                slice(b, l2, self.name())?,
                h * w,
            )),
            (CpuStorage::F64(y), CpuStorage::F64(b)) => CpuStorage::F64(channel_affine(
                slice(y, l1, self.name())?,
                None,
                slice(b, l2, self.name())?,
                h * w,
            )),
            (a, b) => bail!(
                "{}: unsupported dtypes {:?} and {:?}",
                self.name(),
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = arg1.track_op().then(|| grad.clone());
        let db = if arg2.track_op() {
            Some(grad.contiguous()?.apply_op1_no_bwd(&ChannelSum)?)
        } else {
            None
        };
        Ok((dy, db))
    }
}

/// `x·scale[c] + shift[c]` for every value of channel `c` (just `x + shift[c]`
/// without a scale), over planes of `plane` values.
fn channel_affine<T: WithDType>(x: &[T], scale: Option<&[T]>, shift: &[T], plane: usize) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); x.len()];
    if plane == 0 || shift.is_empty() {
        out.copy_from_slice(x);
        return out;
    }
    let c = shift.len();
    let per = planes_per_task(plane);
    let len = out.len();
    let tasks: Vec<_> = out
        .chunks_mut(per * plane)
        .zip(x.chunks(per * plane))
        .collect();
    run_elementwise(tasks, len, |t, (out, x)| {
        for (i, (o, x)) in out.chunks_mut(plane).zip(x.chunks(plane)).enumerate() {
            let ch = (t * per + i) % c;
            let b = shift[ch];
            match scale {
                Some(a) => {
                    let a = a[ch];
                    for (o, &x) in o.iter_mut().zip(x) {
                        *o = x * a + b;
                    }
                }
                None => {
                    for (o, &x) in o.iter_mut().zip(x) {
                        *o = x + b;
                    }
                }
            }
        }
    });
    out
}

/// The gradient of a per-channel bias: `[b, c, h, w]` summed to `[c]`, in
/// `f64` and in a fixed order.
#[derive(Debug, Clone, Copy)]
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "vaekit-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, h, w) = planes(l, self.name())?;
        let c = l.dims()[1];
        let out = map_float(
            s,
            l,
            self.name(),
            |g| channel_sum(g, n, c, h * w),
            |g| channel_sum(g, n, c, h * w),
        )?;
        Ok((out, Shape::from(c)))
    }
}

/// Per-channel sums of `n` planes of `plane` values, channel `i % c` for plane `i`.
fn channel_sum<T: WithDType>(g: &[T], n: usize, c: usize, plane: usize) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); c];
    let tasks: Vec<&mut T> = out.iter_mut().collect();
    run_elementwise(tasks, g.len(), |ch, sum| {
        let total: f64 = (ch..n)
            .step_by(c)
            .map(|i| {
                g[i * plane..][..plane]
                    .iter()
                    .map(|v| v.to_f64())
                    .sum::<f64>()
            })
            .sum();
        *sum = T::from_f64(total);
    });
    out
}

/// [`leaky_relu`] on a contiguous tensor.
#[derive(Debug, Clone, Copy)]
struct LeakyRelu {
    slope: f64,
}

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "vaekit-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let slope = self.slope;
        let out = map_float(
            s,
            l,
            self.name(),
            |x| leaky(x, slope as f32),
            |x| leaky(x, slope),
        )?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = grad
            .contiguous()?
            .apply_op2_no_bwd(arg, &LeakyReluGrad { slope: self.slope })?;
        Ok(Some(dx))
    }
}

/// `x > 0 ? x : slope·x`, elementwise.
fn leaky<T: WithDType>(x: &[T], slope: T) -> Vec<T> {
    let zero = T::from_f64(0.0);
    let mut y = vec![zero; x.len()];
    let len = y.len();
    let tasks: Vec<_> = y
        .chunks_mut(VALUES_PER_TASK)
        .zip(x.chunks(VALUES_PER_TASK))
        .collect();
    run_elementwise(tasks, len, |_, (y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = if x > zero { x } else { x * slope };
        }
    });
    y
}

/// The gradient of [`LeakyRelu`]: `(grad, x) ↦ x > 0 ? grad : slope·grad`.
#[derive(Debug, Clone, Copy)]
struct LeakyReluGrad {
    slope: f64,
}

impl CustomOp2 for LeakyReluGrad {
    fn name(&self) -> &'static str {
        "vaekit-leaky-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            bail!(
                "{}: gradient {:?} and input {:?} differ",
                self.name(),
                l1.dims(),
                l2.dims()
            );
        }
        let name = self.name();
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(x)) => CpuStorage::F32(leaky_grad(
                slice(g, l1, name)?,
                slice(x, l2, name)?,
                self.slope as f32,
            )),
            (CpuStorage::F64(g), CpuStorage::F64(x)) => CpuStorage::F64(leaky_grad(
                slice(g, l1, name)?,
                slice(x, l2, name)?,
                self.slope,
            )),
            (a, b) => bail!(
                "{name}: unsupported dtypes {:?} and {:?}",
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// `x > 0 ? g : slope·g`, elementwise.
fn leaky_grad<T: WithDType>(g: &[T], x: &[T], slope: T) -> Vec<T> {
    let zero = T::from_f64(0.0);
    let mut dx = vec![zero; g.len()];
    let len = dx.len();
    let tasks: Vec<_> = dx
        .chunks_mut(VALUES_PER_TASK)
        .zip(g.chunks(VALUES_PER_TASK).zip(x.chunks(VALUES_PER_TASK)))
        .collect();
    run_elementwise(tasks, len, |_, (d, (g, x))| {
        for ((d, &g), &x) in d.iter_mut().zip(g).zip(x) {
            *d = if x > zero { g } else { g * slope };
        }
    });
    dx
}

/// The per-channel statistics of a batch `[b, c, h, w]`: means and biased
/// variances (divided by `b·h·w`), in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchStats {
    /// Mean of each channel.
    pub mean: Vec<f64>,
    /// Biased variance of each channel.
    pub var: Vec<f64>,
}

/// Training-mode batch normalisation on the CPU, as PyTorch's:
/// `y = (x − μ_c) / √(σ²_c + eps) · weight_c + bias_c` with the batch mean `μ_c`
/// and biased variance `σ²_c` of each channel over batch, height and width.
/// Returns `y` and the statistics (for the running averages). One custom op
/// forward and three passes backward, against about a dozen candle ops (each
/// with its backward pass and gradient buffer) for candle's `BatchNorm`.
///
/// `x` must be an `f32`/`f64` CPU tensor `[b, c, h, w]`, `weight` and `bias`
/// `[c]` of its dtype.
pub(crate) fn batch_norm_train_cpu(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, BatchStats)> {
    let (b, c, h, w) = images(x, "batch_norm")?;
    for (t, what) in [(weight, "weight"), (bias, "bias")] {
        if t.dims() != [c] {
            bail!(
                "batch_norm: expected a {what} of shape [{c}] for input {:?}, got {:?}",
                x.dims(),
                t.dims()
            );
        }
    }
    if b * h * w <= 1 {
        bail!(
            "batch_norm: expected more than one value per channel when training, got input {:?}",
            x.dims()
        );
    }
    let x = x.contiguous()?;
    let stats = x.apply_op1_no_bwd(&ChannelStats)?.to_vec2::<f64>()?; // [2, c]
    let stats = BatchStats {
        mean: stats[0].clone(),
        var: stats[1].clone(),
    };
    let invstd = stats.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let op = BatchNormTrain {
        mean: stats.mean.clone(),
        invstd,
    };
    let y = x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?; // [b, c, h, w]
    Ok((y, stats))
}

/// Per-channel means and biased variances of a contiguous `[b, c, h, w]`, as
/// an `f64` tensor `[2, c]`.
#[derive(Debug, Clone, Copy)]
struct ChannelStats;

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "vaekit-batch-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, h, w) = planes(l, self.name())?;
        let c = l.dims()[1];
        let stats = match s {
            CpuStorage::F32(v) => channel_stats(slice(v, l, self.name())?, n, c, h * w),
            CpuStorage::F64(v) => channel_stats(slice(v, l, self.name())?, n, c, h * w),
            other => bail!("{}: unsupported dtype {:?}", self.name(), other.dtype()),
        };
        let (mean, var): (Vec<f64>, Vec<f64>) = stats.into_iter().unzip();
        Ok((CpuStorage::F64([mean, var].concat()), Shape::from((2, c))))
    }
}

/// The planes of channel `ch` among `n` planes of `plane` values.
fn channel_planes<T>(
    x: &[T],
    n: usize,
    c: usize,
    plane: usize,
    ch: usize,
) -> impl Iterator<Item = &[T]> {
    (ch..n).step_by(c).map(move |i| &x[i * plane..][..plane])
}

/// Mean and biased variance of each channel, two passes in `f64`.
fn channel_stats<T: WithDType>(x: &[T], n: usize, c: usize, plane: usize) -> Vec<(f64, f64)> {
    let count = (n / c.max(1) * plane) as f64;
    let mut out = vec![(0.0, 0.0); c];
    let tasks: Vec<&mut (f64, f64)> = out.iter_mut().collect();
    run_elementwise(tasks, x.len(), |ch, stat| {
        let planes = || channel_planes(x, n, c, plane, ch);
        let mean = planes()
            .map(|p| p.iter().map(|v| v.to_f64()).sum::<f64>())
            .sum::<f64>()
            / count;
        let var = planes()
            .map(|p| p.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>())
            .sum::<f64>()
            / count;
        *stat = (mean, var);
    });
    out
}

/// `(x, weight, bias) ↦ (x − mean_c)·invstd_c·weight_c + bias_c` for a
/// contiguous `x` `[b, c, h, w]`, computed as PyTorch does: `x·α_c + β_c` with
/// `α = invstd·weight` and `β = bias − mean·α`.
#[derive(Debug, Clone)]
struct BatchNormTrain {
    mean: Vec<f64>,
    invstd: Vec<f64>,
}

impl BatchNormTrain {
    fn affine<T: WithDType>(&self, weight: &[T], bias: &[T]) -> (Vec<T>, Vec<T>) {
        let alpha: Vec<f64> = self
            .invstd
            .iter()
            .zip(weight)
            .map(|(i, w)| i * w.to_f64())
            .collect();
        let beta = bias
            .iter()
            .zip(&self.mean)
            .zip(&alpha)
            .map(|((b, m), a)| T::from_f64(b.to_f64() - m * a))
            .collect();
        (alpha.into_iter().map(T::from_f64).collect(), beta)
    }
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "vaekit-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, h, w) = planes(l1, self.name())?;
        let c = l1.dims()[1];
        if l2.dims() != [c] || l3.dims() != [c] || self.mean.len() != c {
            bail!(
                "{}: input {:?} with weight {:?} and bias {:?}",
                self.name(),
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let name = self.name();
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(wt), CpuStorage::F32(b)) => {
                let (alpha, beta) = self.affine(slice(wt, l2, name)?, slice(b, l3, name)?);
                CpuStorage::F32(channel_affine(
                    slice(x, l1, name)?,
                    Some(&alpha),
                    &beta,
                    h * w,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(wt), CpuStorage::F64(b)) => {
                let (alpha, beta) = self.affine(slice(wt, l2, name)?, slice(b, l3, name)?);
                CpuStorage::F64(channel_affine(
                    slice(x, l1, name)?,
                    Some(&alpha),
                    &beta,
                    h * w,
                ))
            }
            (a, _, _) => bail!("{name}: unsupported dtype {:?}", a.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let sums = grad
            .apply_op2_no_bwd(x, &BatchNormSums(self.clone()))?
            .to_vec2::<f64>()?; // [2, c]: Σ g, Σ g·x̂
        let (sum_dy, sum_dy_xhat) = (&sums[0], &sums[1]);
        let (dtype, dev) = (x.dtype(), x.device());
        let to_tensor = |v: &[f64]| Tensor::new(v, dev).and_then(|t| t.to_dtype(dtype));
        let dx = if x.track_op() {
            let (b, c, h, w) = x.dims4()?;
            let count = (b * h * w) as f64;
            let weight = weight.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let op = BatchNormInputGrad {
                mean: self.mean.clone(),
                invstd: self.invstd.clone(),
                scale: (0..c).map(|i| weight[i] * self.invstd[i]).collect(),
                mean_dy: sum_dy.iter().map(|s| s / count).collect(),
                mean_dy_xhat: sum_dy_xhat.iter().map(|s| s / count).collect(),
            };
            Some(grad.apply_op2_no_bwd(x, &op)?)
        } else {
            None
        };
        let dw = if weight.track_op() {
            Some(to_tensor(sum_dy_xhat)?)
        } else {
            None
        };
        let db = if bias.track_op() {
            Some(to_tensor(sum_dy)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// `(g, x) ↦ [Σ g, Σ g·x̂]` per channel, `f64` `[2, c]`, with
/// `x̂ = (x − mean)·invstd`.
#[derive(Debug, Clone)]
struct BatchNormSums(BatchNormTrain);

impl CustomOp2 for BatchNormSums {
    fn name(&self) -> &'static str {
        "vaekit-batch-norm-grad-sums"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, h, w) = planes(l1, self.name())?;
        let c = l1.dims()[1];
        if l1.shape() != l2.shape() || self.0.mean.len() != c {
            bail!(
                "{}: gradient {:?}, input {:?}",
                self.name(),
                l1.dims(),
                l2.dims()
            );
        }
        let name = self.name();
        let sums = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(x)) => {
                self.sums(slice(g, l1, name)?, slice(x, l2, name)?, n, h * w)
            }
            (CpuStorage::F64(g), CpuStorage::F64(x)) => {
                self.sums(slice(g, l1, name)?, slice(x, l2, name)?, n, h * w)
            }
            (a, _) => bail!("{name}: unsupported dtype {:?}", a.dtype()),
        };
        let (dy, dy_xhat): (Vec<f64>, Vec<f64>) = sums.into_iter().unzip();
        Ok((CpuStorage::F64([dy, dy_xhat].concat()), Shape::from((2, c))))
    }
}

impl BatchNormSums {
    fn sums<T: WithDType>(&self, g: &[T], x: &[T], n: usize, plane: usize) -> Vec<(f64, f64)> {
        let c = self.0.mean.len();
        let mut out = vec![(0.0, 0.0); c];
        let tasks: Vec<&mut (f64, f64)> = out.iter_mut().collect();
        run_elementwise(tasks, x.len(), |ch, sum| {
            let (mean, invstd) = (self.0.mean[ch], self.0.invstd[ch]);
            let (mut dy, mut dy_xhat) = (0.0, 0.0);
            for (gp, xp) in
                channel_planes(g, n, c, plane, ch).zip(channel_planes(x, n, c, plane, ch))
            {
                for (&g, &x) in gp.iter().zip(xp) {
                    let g = g.to_f64();
                    dy += g;
                    dy_xhat += g * (x.to_f64() - mean) * invstd;
                }
            }
            *sum = (dy, dy_xhat);
        });
        out
    }
}

/// `(g, x) ↦ scale_c·(g − mean_dy_c − x̂·mean_dy_xhat_c)`, the input gradient
/// of training-mode batch norm, with `x̂ = (x − mean)·invstd` and
/// `scale = weight·invstd`.
#[derive(Debug, Clone)]
struct BatchNormInputGrad {
    mean: Vec<f64>,
    invstd: Vec<f64>,
    scale: Vec<f64>,
    mean_dy: Vec<f64>,
    mean_dy_xhat: Vec<f64>,
}

impl CustomOp2 for BatchNormInputGrad {
    fn name(&self) -> &'static str {
        "vaekit-batch-norm-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, h, w) = planes(l1, self.name())?;
        let c = l1.dims()[1];
        if l1.shape() != l2.shape() || self.mean.len() != c {
            bail!(
                "{}: gradient {:?}, input {:?}",
                self.name(),
                l1.dims(),
                l2.dims()
            );
        }
        let name = self.name();
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(x)) => {
                CpuStorage::F32(self.grad(slice(g, l1, name)?, slice(x, l2, name)?, h * w))
            }
            (CpuStorage::F64(g), CpuStorage::F64(x)) => {
                CpuStorage::F64(self.grad(slice(g, l1, name)?, slice(x, l2, name)?, h * w))
            }
            (a, _) => bail!("{name}: unsupported dtype {:?}", a.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }
}

impl BatchNormInputGrad {
    fn grad<T: WithDType>(&self, g: &[T], x: &[T], plane: usize) -> Vec<T> {
        let c = self.mean.len();
        let mut dx = vec![T::from_f64(0.0); g.len()];
        if plane == 0 || c == 0 {
            return dx;
        }
        let per = planes_per_task(plane);
        let len = dx.len();
        let tasks: Vec<_> = dx
            .chunks_mut(per * plane)
            .zip(g.chunks(per * plane).zip(x.chunks(per * plane)))
            .collect();
        run_elementwise(tasks, len, |t, (d, (g, x))| {
            for (i, ((d, g), x)) in d
                .chunks_mut(plane)
                .zip(g.chunks(plane))
                .zip(x.chunks(plane))
                .enumerate()
            {
                let ch = (t * per + i) % c;
                let (mean, invstd, scale) = (self.mean[ch], self.invstd[ch], self.scale[ch]);
                let (mdy, mdx) = (self.mean_dy[ch], self.mean_dy_xhat[ch]);
                for ((d, &g), &x) in d.iter_mut().zip(g).zip(x) {
                    let xhat = (x.to_f64() - mean) * invstd;
                    *d = T::from_f64(scale * (g.to_f64() - mdy - xhat * mdx));
                }
            }
        });
        dx
    }
}
