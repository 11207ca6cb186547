//! One-pass, in-place CPU kernels for Adam's element-wise update.
//!
//! Written as candle tensor ops, one Adam step of a variable is a dozen passes
//! over its values, each allocating a fresh tensor. These kernels do the same
//! arithmetic, in the same order and precision, in three passes that write the
//! moment buffers and the variable in place, so their results are bit-identical
//! to the tensor-op path that other devices keep using.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor};

use super::{slice, Elem};

/// Whether the fused kernels can update `theta` with `grad` and moment buffers
/// `moments`: all on the CPU, contiguous, of one float dtype and shape.
pub(crate) fn applies(theta: &Tensor, grad: &Tensor, moments: &[Tensor]) -> bool {
    let all = || std::iter::once(theta).chain(Some(grad)).chain(moments);
    theta.device().is_cpu()
        && matches!(theta.dtype(), DType::F32 | DType::F64)
        && all().all(|t| {
            t.dtype() == theta.dtype()
                && t.shape() == theta.shape()
                && t.layout().is_contiguous()
                && t.device().is_cpu()
        })
}

/// The contiguous values of `l` in `v`, writable.
fn values_mut<'a, T>(v: &'a mut [T], l: &Layout, what: &str) -> Result<&'a mut [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&mut v[start..end]),
        None => candle_core::bail!("{what}: expected a contiguous tensor"),
    }
}

/// `dst[i] ← f(dst[i], src[i])` over two CPU storages of one float dtype.
fn zip2(
    what: &'static str,
    dst: &mut CpuStorage,
    dl: &Layout,
    src: &CpuStorage,
    sl: &Layout,
    f32_fn: impl Fn(f32, f32) -> f32,
    f64_fn: impl Fn(f64, f64) -> f64,
) -> Result<()> {
    fn run<T: Copy>(d: &mut [T], s: &[T], f: impl Fn(T, T) -> T) {
        for (d, &s) in d.iter_mut().zip(s) {
            *d = f(*d, s);
        }
    }
    match (dst, src) {
        (CpuStorage::F32(d), CpuStorage::F32(s)) => {
            run(values_mut(d, dl, what)?, slice(s, sl, what)?, f32_fn)
        }
        (CpuStorage::F64(d), CpuStorage::F64(s)) => {
            run(values_mut(d, dl, what)?, slice(s, sl, what)?, f64_fn)
        }
        (d, s) => candle_core::bail!(
            "{what}: unsupported dtypes {:?}, {:?}",
            d.dtype(),
            s.dtype()
        ),
    }
    Ok(())
}

/// First moment, `m ← m + w·(g − m)` as `g.sub(m).affine(w, 0).add(m)`
/// (PyTorch's `m.lerp_(g, w)`).
struct Lerp {
    w: f64,
}

impl Lerp {
    fn apply<T: Elem>(&self, m: T, g: T) -> T {
        (g - m) * T::from_f64(self.w) + T::from_f64(0.0) + m
    }
}

impl InplaceOp2 for Lerp {
    fn name(&self) -> &'static str {
        "vaekit-adam-first-moment"
    }

    fn cpu_fwd(&self, m: &mut CpuStorage, ml: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        zip2(
            self.name(),
            m,
            ml,
            g,
            gl,
            |m, g| self.apply(m, g),
            |m, g| self.apply(m, g),
        )
    }
}

/// Second moment, `v ← β·v + (1 − β)·g²` as
/// `v.affine(β, 0).add(g.sqr().affine(1 − β, 0))`.
struct EmaSq {
    decay: f64,
}

impl EmaSq {
    fn apply<T: Elem>(&self, v: T, g: T) -> T {
        let zero = T::from_f64(0.0);
        (v * T::from_f64(self.decay) + zero) + (g * g * T::from_f64(1.0 - self.decay) + zero)
    }
}

impl InplaceOp2 for EmaSq {
    fn name(&self) -> &'static str {
        "vaekit-adam-second-moment"
    }

    fn cpu_fwd(&self, v: &mut CpuStorage, vl: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        zip2(
            self.name(),
            v,
            vl,
            g,
            gl,
            |v, g| self.apply(v, g),
            |v, g| self.apply(v, g),
        )
    }
}

/// The parameter update, `θ ← θ·keep − m / (√v·mul + add)`, or with the step
/// size outside, `θ·keep − (m / (√v·mul + add))·step`, as the tensor-op path
/// writes it (`keep` only when there is decoupled weight decay).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Update {
    /// `1 − lr·weight_decay` (AdamW), or `None`.
    pub keep: Option<f64>,
    pub mul: f64,
    pub add: f64,
    /// Applied after the division, or `None` when folded into `mul` and `add`.
    pub step: Option<f64>,
}

impl Update {
    fn apply<T: Elem>(&self, theta: T, m: T, v: T) -> T {
        let zero = T::from_f64(0.0);
        let theta = match self.keep {
            Some(k) => theta * T::from_f64(k) + zero,
            None => theta,
        };
        let ratio = m / (v.sqrt() * T::from_f64(self.mul) + T::from_f64(self.add));
        match self.step {
            Some(s) => theta - (ratio * T::from_f64(s) + zero),
            None => theta - ratio,
        }
    }
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "vaekit-adam-update"
    }

    fn cpu_fwd(
        &self,
        theta: &mut CpuStorage,
        tl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let what = self.name();
        fn run<T: Elem>(u: &Update, theta: &mut [T], m: &[T], v: &[T]) {
            for ((t, &m), &v) in theta.iter_mut().zip(m).zip(v) {
                *t = u.apply(*t, m, v);
            }
        }
        match (theta, m, v) {
            (CpuStorage::F32(t), CpuStorage::F32(m), CpuStorage::F32(v)) => run(
                self,
                values_mut(t, tl, what)?,
                slice(m, ml, what)?,
                slice(v, vl, what)?,
            ),
            (CpuStorage::F64(t), CpuStorage::F64(m), CpuStorage::F64(v)) => run(
                self,
                values_mut(t, tl, what)?,
                slice(m, ml, what)?,
                slice(v, vl, what)?,
            ),
            (t, _, _) => candle_core::bail!("{what}: unsupported dtype {:?}", t.dtype()),
        }
        Ok(())
    }
}

/// One Adam step in place: `m` and `v` (the moment buffers) from `grad`, then
/// `theta` from them. Callers check [`applies`] first.
pub(crate) fn adam(
    theta: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    beta1: f64,
    beta2: f64,
    update: Update,
) -> Result<()> {
    m.inplace_op2(grad, &Lerp { w: 1.0 - beta1 })?;
    v.inplace_op2(grad, &EmaSq { decay: beta2 })?;
    theta.inplace_op3(m, v, &update)
}
