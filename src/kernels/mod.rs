//! vaekit's CPU kernels: the ops of its networks that are slow in candle's CPU
//! back end, as custom ops with direct backward passes, exact, one file per
//! job (`conv`, `linear`, `channel`, `elementwise`, `batch_norm`, the
//! optimizer's in-place update in `adam`, and the GEMM, scratch buffers and
//! threading they share in `matrix`), over one float trait (`Elem`). The networks
//! in [`nets`](crate::nets) call them as `nets::ops`.
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
//! [`BatchNorm2d`](crate::nets::BatchNorm2d)). Here each is one custom op with a
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

pub(crate) mod adam;
mod batch_norm;
mod channel;
mod conv;
mod elementwise;
mod linear;
mod math;
mod matrix;

pub(crate) use batch_norm::{batch_norm_eval_cpu, batch_norm_train_cpu};
pub use conv::{conv2d, conv_transpose2d};
pub use elementwise::{leaky_relu, sigmoid, upsample_nearest2d};
pub use linear::linear;

use channel::*;
use conv::*;
use elementwise::*;
use matrix::*;

use std::cell::RefCell;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use ::gemm::Parallelism;
use candle_core::backend::BackendStorage;
use candle_core::utils::barrier_pool;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
    WithDType,
};

/// Whether `x` is a CPU tensor of a dtype the kernels of this module take.
fn on_cpu_float(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
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

    /// The square root.
    fn sqrt(self) -> Self;

    /// The logistic sigmoid `1 / (1 + e^(−self))`: for `f32` with
    /// [`math::exp_f32`], which the compiler vectorises; for `f64` with the
    /// standard library's `exp`, as candle computes it.
    fn sigmoid(self) -> Self;
}

macro_rules! elem {
    ($t:ty, $scratch:ident, $sigmoid:expr) => {
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

            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }

            fn sigmoid(self) -> Self {
                $sigmoid(self)
            }
        }
    };
}

elem!(f32, SCRATCH_F32, |x: f32| 1.0 / (math::exp_f32(-x) + 1.0));
elem!(f64, SCRATCH_F64, |x: f64| 1.0 / ((-x).exp() + 1.0));

/// The `(planes, height, width)` of a contiguous `[batch, c, h, w]` layout.
fn planes(l: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    match *l.dims() {
        [b, c, h, w] => Ok((b * c, h, w)),
        ref dims => bail!("{what}: expected [batch, channels, height, width], got {dims:?}"),
    }
}

/// Applies `f32_fn` or `f64_fn` to the values of two contiguous CPU tensors
/// of one shape and dtype (a gradient and the op's input or output).
fn map_float2(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    what: &'static str,
    f32_fn: impl FnOnce(&[f32], &[f32]) -> Vec<f32>,
    f64_fn: impl FnOnce(&[f64], &[f64]) -> Vec<f64>,
) -> Result<CpuStorage> {
    if l1.shape() != l2.shape() {
        bail!(
            "{what}: arguments {:?} and {:?} differ",
            l1.dims(),
            l2.dims()
        );
    }
    Ok(match (s1, s2) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => {
            CpuStorage::F32(f32_fn(slice(a, l1, what)?, slice(b, l2, what)?))
        }
        (CpuStorage::F64(a), CpuStorage::F64(b)) => {
            CpuStorage::F64(f64_fn(slice(a, l1, what)?, slice(b, l2, what)?))
        }
        (a, b) => bail!(
            "{what}: unsupported dtypes {:?} and {:?}",
            a.dtype(),
            b.dtype()
        ),
    })
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
