//! Batch normalisation on the CPU: one op forward, with the batch's
//! statistics (training) or the running ones (evaluation); three passes
//! backward.

use super::*;

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
        batch_statistics: true,
    };
    let y = x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?; // [b, c, h, w]
    Ok((y, stats))
}

/// Evaluation-mode batch normalisation on the CPU, with given (running)
/// statistics: `y = (x − mean_c) / √(var_c + eps) · weight_c + bias_c`, each
/// value computed in `f64` and rounded once, with gradients for `x`, `weight`
/// and `bias` (per-channel sums in `f64`); the statistics get none.
///
/// `x` must be an `f32`/`f64` CPU tensor `[b, c, h, w]`, `weight` and `bias`
/// `[c]` of its dtype, `mean` and `var` `c` values.
pub(crate) fn batch_norm_eval_cpu(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    (mean, var): (Vec<f64>, Vec<f64>),
    eps: f64,
) -> Result<Tensor> {
    let (_, c, _, _) = images(x, "batch_norm")?;
    if weight.dims() != [c] || bias.dims() != [c] || mean.len() != c || var.len() != c {
        bail!(
            "batch_norm: input {:?} with weight {:?}, bias {:?} and {} running statistics",
            x.dims(),
            weight.dims(),
            bias.dims(),
            mean.len()
        );
    }
    let op = BatchNormTrain {
        mean,
        invstd: var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect(),
        batch_statistics: false,
    };
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op) // [b, c, h, w]
}

/// Per-channel means and biased variances of a contiguous `[b, c, h, w]`, as
/// an `f64` tensor `[2, c]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChannelStats;

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
pub(super) fn channel_planes<T>(
    x: &[T],
    n: usize,
    c: usize,
    plane: usize,
    ch: usize,
) -> impl Iterator<Item = &[T]> {
    (ch..n).step_by(c).map(move |i| &x[i * plane..][..plane])
}

/// Mean and biased variance of each channel, two passes in `f64`.
pub(super) fn channel_stats<T: WithDType>(
    x: &[T],
    n: usize,
    c: usize,
    plane: usize,
) -> Vec<(f64, f64)> {
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
/// contiguous `x` `[b, c, h, w]`, each value computed in `f64` and rounded
/// once. PyTorch computes `x·α_c + β_c` with `α = invstd·weight` and
/// `β = bias − mean·α` in the input's precision; in `f32`, for a channel whose
/// mean is large next to its spread, `x·α` and `β` then nearly cancel and `y`
/// lands on a grid as coarse as the rounding of `x·α`, so values near zero
/// become exactly zero and take the other branch of the activation after it.
/// Subtracting the mean first keeps `y` accurate to its own precision.
#[derive(Debug, Clone)]
pub(super) struct BatchNormTrain {
    mean: Vec<f64>,
    invstd: Vec<f64>,
    /// Whether `mean` and `invstd` are the batch's own (training), so that
    /// the input gradient has their terms too, or fixed (evaluation).
    batch_statistics: bool,
}

impl BatchNormTrain {
    fn normalize<T: WithDType>(&self, x: &[T], weight: &[T], bias: &[T], plane: usize) -> Vec<T> {
        let scale: Vec<f64> = self
            .invstd
            .iter()
            .zip(weight)
            .map(|(i, w)| i * w.to_f64())
            .collect();
        channel_map(x, self.mean.len(), plane, |ch, out, x| {
            let (mean, scale, shift) = (self.mean[ch], scale[ch], bias[ch].to_f64());
            for (o, &x) in out.iter_mut().zip(x) {
                *o = T::from_f64((x.to_f64() - mean) * scale + shift);
            }
        })
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
                CpuStorage::F32(self.normalize(
                    slice(x, l1, name)?,
                    slice(wt, l2, name)?,
                    slice(b, l3, name)?,
                    h * w,
                ))
            }
            (CpuStorage::F64(x), CpuStorage::F64(wt), CpuStorage::F64(b)) => {
                CpuStorage::F64(self.normalize(
                    slice(x, l1, name)?,
                    slice(wt, l2, name)?,
                    slice(b, l3, name)?,
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
            // With fixed statistics the input gradient is scale·g alone.
            let mean_of = |sums: &[f64]| -> Vec<f64> {
                if self.batch_statistics {
                    sums.iter().map(|s| s / count).collect()
                } else {
                    vec![0.0; sums.len()]
                }
            };
            let weight = weight.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let op = BatchNormInputGrad {
                mean: self.mean.clone(),
                invstd: self.invstd.clone(),
                scale: (0..c).map(|i| weight[i] * self.invstd[i]).collect(),
                mean_dy: mean_of(sum_dy),
                mean_dy_xhat: mean_of(sum_dy_xhat),
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
pub(super) struct BatchNormSums(BatchNormTrain);

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
pub(super) struct BatchNormInputGrad {
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
