//! Per-channel kernels: a bias added over batch, height and width, and the
//! per-channel sums that are its gradient (also the linear layer's).

use super::*;

/// `y + bias` for a contiguous `y` `[b, c, h, w]` and `bias` `[c]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct BiasAdd;

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
pub(super) fn channel_affine<T: WithDType>(
    x: &[T],
    scale: Option<&[T]>,
    shift: &[T],
    plane: usize,
) -> Vec<T> {
    channel_map(x, shift.len(), plane, |ch, out, x| {
        let b = shift[ch];
        match scale {
            Some(a) => {
                let a = a[ch];
                for (o, &x) in out.iter_mut().zip(x) {
                    *o = x * a + b;
                }
            }
            None => {
                for (o, &x) in out.iter_mut().zip(x) {
                    *o = x + b;
                }
            }
        }
    })
}

/// `f(c, out, x)` for every plane `x` of `plane` values of a contiguous
/// `[b, c, h, w]` with `c` channels, `out` being the same plane of the result;
/// split into tasks over candle's pool. A copy of `x` when `plane` or `c` is 0.
pub(super) fn channel_map<T: WithDType>(
    x: &[T],
    c: usize,
    plane: usize,
    f: impl Fn(usize, &mut [T], &[T]) + Sync,
) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); x.len()];
    if plane == 0 || c == 0 {
        out.copy_from_slice(x);
        return out;
    }
    let per = planes_per_task(plane);
    let len = out.len();
    let tasks: Vec<_> = out
        .chunks_mut(per * plane)
        .zip(x.chunks(per * plane))
        .collect();
    run_elementwise(tasks, len, |t, (out, x)| {
        for (i, (o, x)) in out.chunks_mut(plane).zip(x.chunks(plane)).enumerate() {
            f((t * per + i) % c, o, x);
        }
    });
    out
}

/// The gradient of a per-channel bias: `[b, c, h, w]` summed to `[c]`, in
/// `f64` and in a fixed order.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChannelSum;

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
pub(super) fn channel_sum<T: WithDType>(g: &[T], n: usize, c: usize, plane: usize) -> Vec<T> {
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
