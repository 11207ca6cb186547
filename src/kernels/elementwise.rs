//! Element-wise kernels: nearest up-sampling, (leaky) ReLU and the sigmoid,
//! each with its direct backward pass, split into tasks over blocks of values.

use super::*;

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

/// The logistic sigmoid `1 / (1 + e^(−x))`.
///
/// On the CPU it runs over candle's worker pool, forward and backward (`g ·
/// (1 − y) · y` in one pass); candle's runs forward on one thread, one libm
/// `exp` at a time, and takes four allocating passes for the gradient. In
/// `f32` the exponential is vaekit's vectorised one, within 2 units in the
/// last place of the correctly rounded value; in `f64` the results are
/// candle's, bit for bit. Elsewhere it is candle's.
///
/// # Errors
///
/// Only those of candle's own ops.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    if on_cpu_float(x) {
        x.contiguous()?.apply_op1(Sigmoid)
    } else {
        candle_nn::ops::sigmoid(x)
    }
}

/// [`sigmoid`] on a contiguous tensor.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sigmoid;

impl CustomOp1 for Sigmoid {
    fn name(&self) -> &'static str {
        "vaekit-sigmoid"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = map_float(s, l, self.name(), logistic, logistic)?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = grad
            .contiguous()?
            .apply_op2_no_bwd(&res.contiguous()?, &SigmoidGrad)?;
        Ok(Some(dx))
    }
}

/// `1 / (e^(−x) + 1)`, elementwise.
pub(super) fn logistic<T: Elem>(x: &[T]) -> Vec<T> {
    map_values(x, T::sigmoid)
}

/// The gradient of [`Sigmoid`]: `(grad, y) ↦ grad · ((1 − y) · y)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct SigmoidGrad;

impl CustomOp2 for SigmoidGrad {
    fn name(&self) -> &'static str {
        "vaekit-sigmoid-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = map_float2(
            (s1, l1),
            (s2, l2),
            self.name(),
            logistic_grad,
            logistic_grad,
        )?;
        Ok((out, l1.shape().clone()))
    }
}

/// `g · ((1 − y) · y)`, elementwise.
pub(super) fn logistic_grad<T: Elem>(g: &[T], y: &[T]) -> Vec<T> {
    let one = T::from_f64(1.0);
    zip_values(g, y, |g, y| g * ((one - y) * y))
}

/// Values per parallel task in the element-wise kernels below.
pub(super) const VALUES_PER_TASK: usize = 1 << 15;

/// Runs `f(i, task)` over the tasks of an element-wise kernel that touches
/// `values` values in all, in parallel when there are enough of them.
pub(super) fn run_elementwise<I: Send>(tasks: Vec<I>, values: usize, f: impl Fn(usize, I) + Sync) {
    let parallel = values >= 2 * VALUES_PER_TASK && pool_threads() > 1;
    run_tasks(tasks, parallel, f);
}

/// `f` of every value of `x`, over candle's pool in blocks of
/// [`VALUES_PER_TASK`] when there are enough of them.
pub(super) fn map_values<T: WithDType>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut y = vec![T::from_f64(0.0); x.len()];
    let len = y.len();
    let tasks: Vec<_> = y
        .chunks_mut(VALUES_PER_TASK)
        .zip(x.chunks(VALUES_PER_TASK))
        .collect();
    run_elementwise(tasks, len, |_, (y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = f(x);
        }
    });
    y
}

/// `f(a, b)` of every pair of values of `a` and `b` (of one length), as
/// [`map_values`].
pub(super) fn zip_values<T: WithDType>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut y = vec![T::from_f64(0.0); a.len()];
    let len = y.len();
    let tasks: Vec<_> = y
        .chunks_mut(VALUES_PER_TASK)
        .zip(a.chunks(VALUES_PER_TASK).zip(b.chunks(VALUES_PER_TASK)))
        .collect();
    run_elementwise(tasks, len, |_, (y, (a, b))| {
        for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
            *y = f(a, b);
        }
    });
    y
}

/// How many `plane`-sized planes make one task of an element-wise kernel.
pub(super) fn planes_per_task(plane: usize) -> usize {
    (VALUES_PER_TASK / plane.max(1)).max(1)
}

/// Nearest-neighbour up-sampling by `scale` of a contiguous `[b, c, h, w]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Upsample {
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
pub(super) fn upsample<T: WithDType>(
    x: &[T],
    (n, h, w): (usize, usize, usize),
    s: usize,
) -> Vec<T> {
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
pub(super) struct BlockSum {
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
pub(super) fn block_sum<T: WithDType>(
    g: &[T],
    (n, h, w): (usize, usize, usize),
    s: usize,
) -> Vec<T> {
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

/// [`leaky_relu`] on a contiguous tensor.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeakyRelu {
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
pub(super) fn leaky<T: WithDType>(x: &[T], slope: T) -> Vec<T> {
    let zero = T::from_f64(0.0);
    map_values(x, |x| if x > zero { x } else { x * slope })
}

/// The gradient of [`LeakyRelu`]: `(grad, x) ↦ x > 0 ? grad : slope·grad`.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeakyReluGrad {
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
        let slope = self.slope;
        let out = map_float2(
            (s1, l1),
            (s2, l2),
            self.name(),
            |g, x| leaky_grad(g, x, slope as f32),
            |g, x| leaky_grad(g, x, slope),
        )?;
        Ok((out, l1.shape().clone()))
    }
}

/// `x > 0 ? g : slope·g`, elementwise.
pub(super) fn leaky_grad<T: WithDType>(g: &[T], x: &[T], slope: T) -> Vec<T> {
    let zero = T::from_f64(0.0);
    zip_values(g, x, |g, x| if x > zero { g } else { g * slope })
}
