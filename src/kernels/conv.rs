//! Convolutions and transposed convolutions on the CPU: im2col / col2im
//! around a GEMM in all three directions (see the module above).

use super::*;

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

/// Whether the CPU kernels of this module handle `x` and `w`.
pub(super) fn uses_own_kernels(x: &Tensor, w: &Tensor) -> Result<bool> {
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
pub(super) fn add_bias(ys: Tensor, bias: Option<&Tensor>, what: &str) -> Result<Tensor> {
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
pub(super) struct Geometry {
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
pub(super) fn images(x: &Tensor, what: &str) -> Result<(usize, usize, usize, usize)> {
    match *x.dims() {
        [b, c, h, w] => Ok((b, c, h, w)),
        ref dims => bail!("{what}: expected input [batch, channels, height, width], got {dims:?}"),
    }
}

/// The two channel counts and the size of a square kernel.
pub(super) fn kernel(w: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    match *w.dims() {
        [a, b, k, k2] if k == k2 && k > 0 => Ok((a, b, k)),
        ref dims => {
            bail!("{what}: expected a weight with a square kernel [_, _, k, k], got {dims:?}")
        }
    }
}

/// Which of the three products a [`ConvOp`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
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
pub(super) struct ConvOp {
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

/// bands that keep the patch matrix near this size (and at least one row).
/// At most this many values in one im2col tile: output rows are processed in
pub(super) const TILE_VALUES: usize = 1 << 20;

/// The bands of output rows `oy0..oy1` that im2col is built for at a time.
pub(super) fn bands(g: &Geometry) -> impl Iterator<Item = Range<usize>> {
    let per_row = (g.patch_len() * g.small_w).max(1);
    let rows = (TILE_VALUES / per_row).clamp(1, g.small_h.max(1));
    let h = g.small_h;
    (0..h).step_by(rows).map(move |r| r..(r + rows).min(h))
}

/// At most this many images' patches go into one matrix product. Several
/// images per product give the GEMM wider operands (a 7×7 grid is 49 columns
/// per image, which leaves most of a microkernel tile idle at the edge) and
/// pack the weights once for all of them. The number depends only on the
/// geometry, never on the threads, so results do not either.
pub(super) const MAX_GROUP: usize = 8;

/// Small grids narrower than this many pixels are grouped: wider ones fill
/// the GEMM's tiles on their own, and the copies that grouping costs then
/// measured slower (the conv autoencoder's 14×14 and 28×28 layers).
pub(super) const GROUP_BELOW_PIXELS: usize = 128;

/// Images per product for `g`: as many whole images as fit in
/// [`TILE_VALUES`], up to [`MAX_GROUP`]; 1 when one image takes several bands
/// or its grid is [`GROUP_BELOW_PIXELS`] wide or more.
fn group_len(g: &Geometry) -> usize {
    let per_image = g.patch_len() * g.small_pixels();
    if per_image == 0 || per_image > TILE_VALUES || g.small_pixels() >= GROUP_BELOW_PIXELS {
        1
    } else {
        (TILE_VALUES / per_image).clamp(1, MAX_GROUP)
    }
}

/// The `gi` small-grid images `[gi, small_c, pixels]` as the matrix
/// `[small_c, gi·pixels]`: image `i` in columns `i·pixels..(i + 1)·pixels`.
fn gather<T: Elem>(g: &Geometry, gi: usize, images: &[T], matrix: &mut [T]) {
    let pixels = g.small_pixels();
    for (i, img) in images.chunks(g.small_len()).take(gi).enumerate() {
        for (c, plane) in img.chunks(pixels).enumerate() {
            matrix[(c * gi + i) * pixels..][..pixels].copy_from_slice(plane);
        }
    }
}

/// The inverse of [`gather`]: the matrix `[small_c, gi·pixels]` back as `gi`
/// images `[gi, small_c, pixels]`.
fn scatter<T: Elem>(g: &Geometry, gi: usize, matrix: &[T], images: &mut [T]) {
    let pixels = g.small_pixels();
    for (i, img) in images.chunks_mut(g.small_len()).take(gi).enumerate() {
        for (c, plane) in img.chunks_mut(pixels).enumerate() {
            plane.copy_from_slice(&matrix[(c * gi + i) * pixels..][..pixels]);
        }
    }
}

/// Convolution: `y_b = W · im2col(x_b)`, `[small_c, patch] · [patch, pixels]`,
/// for groups of [`group_len`] images at a time (`[patch, group·pixels]`).
pub(super) fn forward<T: Elem>(g: &Geometry, x: &[T], w: &[T]) -> Vec<T> {
    let (patch, pixels, ow) = (g.patch_len(), g.small_pixels(), g.small_w);
    let group = group_len(g);
    let mut y = vec![T::from_f64(0.0); g.batch * g.small_len()];
    let (parallel, par) = plan(g.batch.div_ceil(group));
    let tasks: Vec<&mut [T]> = y.chunks_mut((group * g.small_len()).max(1)).collect();
    run_tasks(tasks, parallel, |t, y_t| {
        let b0 = t * group;
        if group == 1 {
            let x_b = &x[b0 * g.big_len()..][..g.big_len()];
            for band in bands(g) {
                let n = band.len() * ow;
                T::with_scratch(patch * n, |col| {
                    im2col(g, x_b, band.clone(), (col, n, 0));
                    matmul(
                        (g.small_c, n, patch),
                        (&mut y_t[band.start * ow..], pixels),
                        Mat::rows(w, patch),
                        Mat::rows(col, n),
                        false,
                        par,
                    );
                });
            }
            return;
        }
        let gi = y_t.len() / g.small_len();
        let n = gi * pixels;
        T::with_scratch(patch * n + g.small_c * n, |scratch| {
            let (col, out) = scratch.split_at_mut(patch * n);
            for i in 0..gi {
                let x_b = &x[(b0 + i) * g.big_len()..][..g.big_len()];
                im2col(g, x_b, 0..g.small_h, (col, n, i * pixels));
            }
            let (m, rhs) = (Mat::rows(w, patch), Mat::rows(col, n));
            matmul((g.small_c, n, patch), (out, n), m, rhs, false, par);
            scatter(g, gi, out, y_t);
        });
    });
    y
}

/// Input gradient of the convolution (the transposed convolution):
/// `dx_b = col2im(Wᵀ · g_b)`, `[patch, small_c] · [small_c, pixels]`, for
/// groups of [`group_len`] images at a time.
pub(super) fn input_grad<T: Elem>(g: &Geometry, dy: &[T], w: &[T]) -> Vec<T> {
    let (patch, pixels, ow) = (g.patch_len(), g.small_pixels(), g.small_w);
    let group = group_len(g);
    let mut dx = vec![T::from_f64(0.0); g.batch * g.big_len()];
    let (parallel, par) = plan(g.batch.div_ceil(group));
    let tasks: Vec<&mut [T]> = dx.chunks_mut((group * g.big_len()).max(1)).collect();
    run_tasks(tasks, parallel, |t, dx_t| {
        let b0 = t * group;
        if group == 1 {
            let dy_b = &dy[b0 * g.small_len()..][..g.small_len()];
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
                    col2im(g, (col, n, 0), band.clone(), dx_t);
                });
            }
            return;
        }
        let gi = dx_t.len() / g.big_len();
        let n = gi * pixels;
        T::with_scratch(patch * n + g.small_c * n, |scratch| {
            let (col, grads) = scratch.split_at_mut(patch * n);
            gather(g, gi, &dy[b0 * g.small_len()..], grads);
            let (m, rhs) = (Mat::transposed(w, patch), Mat::rows(grads, n));
            matmul((patch, n, g.small_c), (col, n), m, rhs, false, par);
            for (i, dx_b) in dx_t.chunks_mut(g.big_len()).enumerate() {
                col2im(g, (col, n, i * pixels), 0..g.small_h, dx_b);
            }
        });
    });
    dx
}

/// At most this many partial weight gradients are summed; the images are split
/// into that many groups whatever the number of threads, so the result does not
/// depend on it.
pub(super) const WEIGHT_GRAD_GROUPS: usize = 8;

/// Weight gradient: `dW = Σ_b g_b · im2col(x_b)ᵀ`, `[small_c, pixels] · [pixels, patch]`,
/// summed per group of images in parallel (within a group, [`group_len`]
/// images per product), then over groups in order.
pub(super) fn weight_grad<T: Elem>(g: &Geometry, x: &[T], dy: &[T]) -> Vec<T> {
    let (patch, pixels, ow) = (g.patch_len(), g.small_pixels(), g.small_w);
    let zero = T::from_f64(0.0);
    let groups = g.batch.clamp(1, WEIGHT_GRAD_GROUPS);
    let per_group = g.batch.div_ceil(groups);
    let product = group_len(g);
    let (parallel, par) = plan(groups);
    let mut partials = vec![vec![zero; g.weight_len()]; groups];
    let tasks: Vec<&mut Vec<T>> = partials.iter_mut().collect();
    run_tasks(tasks, parallel, |i, dw| {
        let images = (i * per_group).min(g.batch)..((i + 1) * per_group).min(g.batch);
        let mut first = true;
        if product == 1 {
            for b in images {
                let x_b = &x[b * g.big_len()..][..g.big_len()];
                let dy_b = &dy[b * g.small_len()..][..g.small_len()];
                for band in bands(g) {
                    let n = band.len() * ow;
                    T::with_scratch(patch * n, |col| {
                        im2col(g, x_b, band.clone(), (col, n, 0));
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
            return;
        }
        for b0 in images.clone().step_by(product) {
            let gi = product.min(images.end - b0);
            let n = gi * pixels;
            T::with_scratch(patch * n + g.small_c * n, |scratch| {
                let (col, grads) = scratch.split_at_mut(patch * n);
                for j in 0..gi {
                    let x_b = &x[(b0 + j) * g.big_len()..][..g.big_len()];
                    im2col(g, x_b, 0..g.small_h, (col, n, j * pixels));
                }
                gather(g, gi, &dy[b0 * g.small_len()..], grads);
                let (lhs, rhs) = (Mat::rows(grads, n), Mat::transposed(col, n));
                matmul((g.small_c, patch, n), (dw, patch), lhs, rhs, !first, par);
            });
            first = false;
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
/// the output rows `band` out as `band.len()·small_w` columns of the matrix
/// `col` `[big_c·k·k, ld]`, starting at column `offset`; taps that fall on the
/// padding read zero.
pub(super) fn im2col<T: Elem>(
    g: &Geometry,
    x: &[T],
    band: Range<usize>,
    (col, ld, offset): (&mut [T], usize, usize),
) {
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
                let row = &mut col[((c * k + ki) * k + kj) * ld + offset..][..n];
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

/// The adjoint of [`im2col`]: adds every entry of the `band.len()·small_w`
/// columns of `col` `[big_c·k·k, ld]` from column `offset` back onto the
/// large-grid position of `x` `[big_c, big_h, big_w]` it was read from;
/// entries over the padding are dropped.
pub(super) fn col2im<T: Elem>(
    g: &Geometry,
    (col, ld, offset): (&[T], usize, usize),
    band: Range<usize>,
    x: &mut [T],
) {
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
                let row = &col[((c * k + ki) * k + kj) * ld + offset..][..n];
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
