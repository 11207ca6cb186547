//! The fully connected layer on the CPU: one op forward, and a backward
//! pass of GEMMs that skips the input gradient of a batch of data.

use super::*;

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
pub(super) struct Linear;

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
pub(super) enum LinearGrad {
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
        match self {
            LinearGrad::Input => {
                let mut dx = vec![T::from_f64(0.0); n * k];
                let (lhs, rhs) = (Mat::rows(g, m), Mat::rows(other, k));
                matmul_pooled((n, k, m), (&mut dx, k), lhs, rhs, false);
                dx
            }
            LinearGrad::Weight => {
                let mut dw = vec![T::from_f64(0.0); m * k];
                let (lhs, rhs) = (Mat::transposed(g, m), Mat::rows(other, k));
                matmul_pooled((m, k, n), (&mut dw, k), lhs, rhs, false);
                dw
            }
        }
    }
}

/// `x · wᵀ + b` for row-major `x` `[n, k]`, `w` `[m, k]`, `b` `[m]`.
pub(super) fn linear_forward<T: Elem>(x: &[T], w: &[T], b: &[T], n: usize) -> Vec<T> {
    let (m, k) = (b.len(), x.len().checked_div(n).unwrap_or(0));
    let mut y = Vec::with_capacity(n * m);
    for _ in 0..n {
        y.extend_from_slice(b);
    }
    matmul_pooled(
        (n, m, k),
        (&mut y, m),
        Mat::rows(x, k),
        Mat::transposed(w, k),
        true,
    );
    y
}
