//! vaekit's CPU kernels (`nets::ops`) against candle's own ops. The
//! convolutions against candle's `conv2d` and `conv_transpose2d`: forward values and the gradients of input, weight and
//! bias, through the backward pass of a random weighted sum `Σ y·r`, over every
//! geometry the layers can use (kernel 1, 3, 4; stride 1, 2; padding 0, 1, 2;
//! output padding below the stride; odd and even sizes; batch 1 and 3). Where
//! candle's own backward pass has no answer (height and width that leave
//! different remainders under the stride), a direct-loop reference in `f64`
//! stands in. Then the fully connected layer against candle's matmul and
//! broadcast add, nearest up-sampling, (leaky) ReLU, the sigmoid and batch norm.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{assert_close, values};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use vaekit::nets::ops;

const REL: f64 = 1e-4;

/// A tensor of standard normal draws from `rng`.
fn randn(rng: &mut ChaCha8Rng, dims: &[usize], dtype: DType) -> Tensor {
    let n: usize = dims.iter().product();
    let normal = Normal::new(0.0f64, 1.0).expect("unit normal");
    let v: Vec<f64> = (0..n).map(|_| normal.sample(rng)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("random tensor")
}

/// One convolution case; `transposed` selects `conv_transpose2d` (weight
/// `[cin, cout, k, k]`), otherwise `conv2d` (weight `[cout, cin, k, k]`).
#[derive(Debug, Clone, Copy)]
struct Case {
    transposed: bool,
    batch: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
    output_padding: usize,
}

impl Case {
    fn weight_dims(&self) -> [usize; 4] {
        if self.transposed {
            [self.cin, self.cout, self.k, self.k]
        } else {
            [self.cout, self.cin, self.k, self.k]
        }
    }

    /// The output size along an input axis of `n`, if there is an output.
    fn out(&self, n: usize) -> Option<usize> {
        let (k, s, p) = (self.k, self.stride, self.padding);
        if self.transposed {
            ((n - 1) * s + k + self.output_padding)
                .checked_sub(2 * p)
                .filter(|&o| o > 0)
        } else {
            (n + 2 * p).checked_sub(k).map(|d| d / s + 1)
        }
    }

    /// vaekit's op.
    fn ours(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        if self.transposed {
            ops::conv_transpose2d(
                x,
                w,
                Some(b),
                self.stride,
                self.padding,
                self.output_padding,
            )
        } else {
            ops::conv2d(x, w, Some(b), self.stride, self.padding)
        }
    }

    /// candle's op.
    fn candle(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        let y = if self.transposed {
            x.conv_transpose2d(w, self.padding, self.output_padding, self.stride, 1)?
        } else {
            x.conv2d(w, self.padding, self.stride, 1, 1)?
        };
        y.broadcast_add(&b.reshape((1, self.cout, 1, 1))?)
    }
}

/// Outputs and the gradients of x, w and b of `Σ f(x, w, b)·r`.
struct Run {
    y: Tensor,
    dx: Tensor,
    dw: Tensor,
    db: Tensor,
}

fn run(
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    r: &Tensor,
) -> Run {
    let (xv, wv, bv) = (
        Var::from_tensor(x).expect("var"),
        Var::from_tensor(w).expect("var"),
        Var::from_tensor(b).expect("var"),
    );
    let y = f(xv.as_tensor(), wv.as_tensor(), bv.as_tensor()).expect("forward");
    let loss = (&y * r).and_then(|t| t.sum_all()).expect("loss");
    let grads = loss.backward().expect("backward");
    let grad = |v: &Var| grads.get(v.as_tensor()).expect("a gradient").clone();
    Run {
        dx: grad(&xv),
        dw: grad(&wv),
        db: grad(&bv),
        y: y.detach(),
    }
}

/// The inputs of a case: x, w, b, and the weights r of the summed output.
fn inputs(case: &Case, rng: &mut ChaCha8Rng, dtype: DType) -> (Tensor, Tensor, Tensor, Tensor) {
    let (oh, ow) = (
        case.out(case.h).expect("an output"),
        case.out(case.w).expect("an output"),
    );
    (
        randn(rng, &[case.batch, case.cin, case.h, case.w], dtype),
        randn(rng, &case.weight_dims(), dtype),
        randn(rng, &[case.cout], dtype),
        randn(rng, &[case.batch, case.cout, oh, ow], dtype),
    )
}

fn check(case: &Case, actual: &Run, expected: &Run) {
    let name = format!("{case:?}");
    assert_close(&format!("{name} y"), &actual.y, &expected.y, REL, 1e-3);
    assert_close(&format!("{name} dx"), &actual.dx, &expected.dx, REL, 1e-3);
    assert_close(&format!("{name} dw"), &actual.dw, &expected.dw, REL, 1e-3);
    assert_close(&format!("{name} db"), &actual.db, &expected.db, REL, 1e-3);
}

/// Every case with square inputs (7×7 and 8×8) and non-square ones whose sides
/// leave the same remainder under the stride, which candle's backward handles.
fn cases(transposed: bool) -> Vec<Case> {
    let mut out = Vec::new();
    for k in [1, 3, 4] {
        for stride in [1, 2] {
            for padding in [0, 1, 2] {
                let ops: &[usize] = if transposed { &[0, 1] } else { &[0] };
                for &output_padding in ops.iter().filter(|&&op| op < stride) {
                    for (h, w) in [(7, 7), (8, 8), (5, 9)] {
                        for batch in [1, 3, 11] {
                            let case = Case {
                                transposed,
                                batch,
                                cin: 2,
                                cout: 3,
                                h,
                                w,
                                k,
                                stride,
                                padding,
                                output_padding,
                            };
                            if case.out(h).is_some() && case.out(w).is_some() {
                                out.push(case);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn compare_with_candle(transposed: bool, dtype: DType) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let cases = cases(transposed);
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    for case in &cases {
        let (x, w, b, r) = inputs(case, &mut rng, dtype);
        let ours = run(|x, w, b| case.ours(x, w, b), &x, &w, &b, &r);
        let theirs = run(|x, w, b| case.candle(x, w, b), &x, &w, &b, &r);
        check(case, &ours, &theirs);
    }
}

#[test]
fn conv2d_matches_candle_forward_and_gradients() {
    compare_with_candle(false, DType::F32);
}

#[test]
fn conv_transpose2d_matches_candle_forward_and_gradients() {
    compare_with_candle(true, DType::F32);
}

#[test]
fn f64_matches_candle_too() {
    compare_with_candle(false, DType::F64);
    compare_with_candle(true, DType::F64);
}

/// `conv2d` by its definition, in `f64`: returns y and the gradients of x and w
/// of `Σ y·r` (the bias gradient is `Σ r` over batch and pixels).
fn direct_conv2d(
    x: &[f64],
    w: &[f64],
    r: &[f64],
    (b, cin, h, wd): (usize, usize, usize, usize),
    (cout, k, s, p): (usize, usize, usize, usize),
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (wd + 2 * p - k) / s + 1);
    let mut y = vec![0.0; b * cout * oh * ow];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for n in 0..b {
        for o in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((n * cout + o) * oh + oy) * ow + ox;
                    for c in 0..cin {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (iy, ix) = (oy * s + ki, ox * s + kj);
                                if iy < p || ix < p || iy - p >= h || ix - p >= wd {
                                    continue;
                                }
                                let xi = ((n * cin + c) * h + iy - p) * wd + ix - p;
                                let wi = ((o * cin + c) * k + ki) * k + kj;
                                y[yi] += w[wi] * x[xi];
                                dx[xi] += w[wi] * r[yi];
                                dw[wi] += x[xi] * r[yi];
                            }
                        }
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

fn tensor(v: Vec<f64>, dims: &[usize]) -> Tensor {
    Tensor::from_vec(v, dims, &Device::Cpu).expect("tensor")
}

/// Height and width with different remainders under the stride (5 and 6 under
/// stride 2): candle's own conv2d backward cannot size the input gradient, so
/// the reference is the definition. The transposed convolution is checked
/// against the same definition as the adjoint: `conv_transpose2d(g, w)` must
/// equal the input gradient of `conv2d` on the grid it came from.
#[test]
fn uneven_remainders_match_the_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (b, cin, h, wd, cout, k, s, p) = (3, 2, 5, 6, 4, 3, 2, 1);
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (wd + 2 * p - k) / s + 1);
    let x = randn(&mut rng, &[b, cin, h, wd], DType::F64);
    let w = randn(&mut rng, &[cout, cin, k, k], DType::F64);
    let bias = randn(&mut rng, &[cout], DType::F64);
    let r = randn(&mut rng, &[b, cout, oh, ow], DType::F64);
    let flat = |t: &Tensor| {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("values")
    };
    let (y, dx, dw) = direct_conv2d(
        &flat(&x),
        &flat(&w),
        &flat(&r),
        (b, cin, h, wd),
        (cout, k, s, p),
    );
    let y = tensor(y, &[b, cout, oh, ow])
        .broadcast_add(&bias.reshape((1, cout, 1, 1)).expect("reshape"))
        .expect("bias");
    let expected = Run {
        y,
        dx: tensor(dx, &[b, cin, h, wd]),
        dw: tensor(dw, &[cout, cin, k, k]),
        db: r.sum((0, 2, 3)).expect("sum"),
    };
    let ours = run(
        |x, w, b| ops::conv2d(x, w, Some(b), s, p),
        &x,
        &w,
        &bias,
        &r,
    );
    let case = Case {
        transposed: false,
        batch: b,
        cin,
        cout,
        h,
        w: wd,
        k,
        stride: s,
        padding: p,
        output_padding: 0,
    };
    check(&case, &ours, &expected);

    // The transposed convolution against the same definition, as the adjoint of
    // conv2d: onto 5×5 (output padding 0) and 6×6 (output padding 1) from 3×3.
    for (size, op) in [(5, 0), (6, 1)] {
        let xs = randn(&mut rng, &[b, cin, size, size], DType::F64);
        let n = (size + 2 * p - k) / s + 1;
        let g = randn(&mut rng, &[b, cout, n, n], DType::F64);
        let (_, dx, _) = direct_conv2d(
            &flat(&xs),
            &flat(&w),
            &flat(&g),
            (b, cin, size, size),
            (cout, k, s, p),
        );
        let t = ops::conv_transpose2d(&g, &w, None, s, p, op).expect("conv_transpose2d");
        assert_close(
            &format!("conv_transpose2d onto {size}×{size}"),
            &t,
            &tensor(dx, &[b, cin, size, size]),
            REL,
            1e-3,
        );
    }
}

/// Images that carry no gradient (the network input) get none, and the weight
/// gradient is still right.
#[test]
fn no_input_gradient_for_a_constant_input() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for transposed in [false, true] {
        let case = Case {
            transposed,
            batch: 3,
            cin: 2,
            cout: 3,
            h: 8,
            w: 8,
            k: 3,
            stride: 2,
            padding: 1,
            output_padding: usize::from(transposed),
        };
        let (x, w, b, r) = inputs(&case, &mut rng, DType::F32);
        let wv = Var::from_tensor(&w).expect("var");
        let y = case.ours(&x, wv.as_tensor(), &b).expect("forward");
        let grads = (&y * &r)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .expect("backward");
        assert!(grads.get(&x).is_none(), "{case:?}: gradient for a constant");
        let expected = run(|x, w, b| case.candle(x, w, b), &x, &w, &b, &r);
        assert_close(
            &format!("{case:?} dw"),
            grads.get(wv.as_tensor()).expect("weight gradient"),
            &expected.dw,
            REL,
            1e-3,
        );
    }
}

/// Strided (non-contiguous) inputs give the same values as contiguous copies.
#[test]
fn non_contiguous_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = randn(&mut rng, &[2, 3, 9, 7], DType::F32);
    let w = randn(&mut rng, &[4, 3, 3, 3], DType::F32);
    let xt = x.transpose(2, 3).expect("transpose"); // [2, 3, 7, 9]
    let got = ops::conv2d(&xt, &w, None, 2, 1).expect("conv2d");
    let want = xt.conv2d(&w, 1, 2, 1, 1).expect("candle conv2d");
    assert_close("transposed input", &got, &want, REL, 1e-3);
}

/// Bad shapes are errors that name them, not panics.
#[test]
fn bad_shapes_are_errors() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((2, 3, 8, 8), DType::F32, &dev).expect("x");
    let err = |r: candle_core::Result<Tensor>| r.expect_err("an error").to_string();

    let w = Tensor::zeros((4, 2, 3, 3), DType::F32, &dev).expect("w");
    let e = err(ops::conv2d(&x, &w, None, 1, 0));
    assert!(
        e.contains("[2, 3, 8, 8]") && e.contains("[4, 2, 3, 3]"),
        "{e}"
    );

    let w = Tensor::zeros((4, 3, 3, 2), DType::F32, &dev).expect("w");
    let e = err(ops::conv2d(&x, &w, None, 1, 0));
    assert!(e.contains("square kernel"), "{e}");

    let w = Tensor::zeros((4, 3, 9, 9), DType::F32, &dev).expect("w");
    let e = err(ops::conv2d(&x, &w, None, 1, 0));
    assert!(e.contains("does not fit"), "{e}");

    let w = Tensor::zeros((4, 3, 3, 3), DType::F32, &dev).expect("w");
    let e = err(ops::conv2d(&x, &w, None, 0, 0));
    assert!(e.contains("stride"), "{e}");
    let bad_bias = Tensor::zeros(5, DType::F32, &dev).expect("b");
    let e = err(ops::conv2d(&x, &w, Some(&bad_bias), 1, 1));
    assert!(e.contains("[4]") && e.contains("[5]"), "{e}");
    let e = err(ops::conv2d(
        &x.flatten_from(2).expect("flat"),
        &w,
        None,
        1,
        0,
    ));
    assert!(e.contains("[2, 3, 64]"), "{e}");
    let e = err(ops::conv2d(
        &x.to_dtype(DType::F64).expect("f64"),
        &w,
        None,
        1,
        0,
    ));
    assert!(e.contains("dtype"), "{e}");

    let wt = Tensor::zeros((3, 4, 3, 3), DType::F32, &dev).expect("w");
    let e = err(ops::conv_transpose2d(&x, &wt, None, 2, 0, 2));
    assert!(e.contains("output padding"), "{e}");
    let e = err(ops::conv_transpose2d(
        &x,
        &wt.transpose(0, 1).expect("t"),
        None,
        1,
        0,
        0,
    ));
    assert!(e.contains("[4, 3, 3, 3]"), "{e}");
    let one = Tensor::zeros((1, 3, 1, 1), DType::F32, &dev).expect("x");
    let e = err(ops::conv_transpose2d(&one, &wt, None, 1, 2, 0));
    assert!(e.contains("no output"), "{e}");
}

/// Images large enough that im2col is built in bands of output rows (it holds
/// at most 2²⁰ values, so each case below takes two bands), and the
/// element-wise kernels run in parallel.
#[test]
fn large_images_match_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    // (transposed, cin, cout, size, k, stride, padding, output_padding); patch
    // rows × output pixels: 72 × 130², 288 × 66², 256 × 65² (transposed: its
    // output channels × k² by its input pixels).
    for (transposed, cin, cout, size, k, stride, padding, output_padding) in [
        (false, 8, 4, 130, 3, 1, 1, 0),
        (false, 32, 4, 130, 3, 2, 2, 0),
        (true, 4, 16, 65, 4, 2, 1, 1),
    ] {
        let case = Case {
            transposed,
            batch: 2,
            cin,
            cout,
            h: size,
            w: size,
            k,
            stride,
            padding,
            output_padding,
        };
        let (x, wt, b, r) = inputs(&case, &mut rng, DType::F32);
        let ours = run(|x, w, b| case.ours(x, w, b), &x, &wt, &b, &r);
        let theirs = run(|x, w, b| case.candle(x, w, b), &x, &wt, &b, &r);
        check(&case, &ours, &theirs);
    }
}

/// Up-sampling against candle's, values and gradient, small and large.
#[test]
fn upsample_matches_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for (dims, scale) in [([2, 3, 4, 5], 2), ([1, 2, 3, 3], 3), ([4, 16, 30, 30], 2)] {
        let x = randn(&mut rng, &dims, DType::F32);
        let (h, w) = (dims[2] * scale, dims[3] * scale);
        let r = randn(&mut rng, &[dims[0], dims[1], h, w], DType::F32);
        let grad_of = |y: &Tensor, x: &Var| {
            (y * &r)
                .and_then(|t| t.sum_all())
                .and_then(|t| t.backward())
                .expect("backward")
                .get(x.as_tensor())
                .expect("a gradient")
                .clone()
        };
        let xv = Var::from_tensor(&x).expect("var");
        let ours = ops::upsample_nearest2d(xv.as_tensor(), scale).expect("upsample");
        let theirs = xv
            .as_tensor()
            .upsample_nearest2d(h, w)
            .expect("candle upsample");
        assert_close(&format!("{dims:?}×{scale}"), &ours, &theirs, REL, 1e-3);
        let (g_ours, g_theirs) = (grad_of(&ours, &xv), grad_of(&theirs, &xv));
        assert_close(
            &format!("{dims:?}×{scale} grad"),
            &g_ours,
            &g_theirs,
            REL,
            1e-3,
        );
    }
    let x = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).expect("x");
    assert!(ops::upsample_nearest2d(&x, 2).is_err());
}

/// LeakyReLU and ReLU against their definitions, with PyTorch's gradient
/// (`slope` at exactly 0, where candle's `maximum` would split it).
#[test]
fn leaky_relu_matches_the_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for (n, slope) in [(7, 0.2), (100_000, 0.2), (1000, 0.0), (1000, 1.5)] {
        // Two exact zeros first, to check the gradient there.
        let zeros = Tensor::zeros(2, DType::F32, &Device::Cpu).expect("zeros");
        let x = Tensor::cat(&[zeros, randn(&mut rng, &[n - 2], DType::F32)], 0).expect("x");
        let r = randn(&mut rng, &[n], DType::F32);
        let xv = Var::from_tensor(&x).expect("var");
        let y = ops::leaky_relu(xv.as_tensor(), slope).expect("leaky_relu");
        let grads = (&y * &r)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .expect("backward");
        let xs = x.to_vec1::<f32>().expect("x");
        let rs = r.to_vec1::<f32>().expect("r");
        let s = slope as f32;
        let want_y: Vec<f32> = xs
            .iter()
            .map(|&v| if v > 0.0 { v } else { s * v })
            .collect();
        let want_g: Vec<f32> = xs
            .iter()
            .zip(&rs)
            .map(|(&v, &g)| if v > 0.0 { g } else { s * g })
            .collect();
        assert_eq!(
            y.to_vec1::<f32>().expect("y"),
            want_y,
            "n {n}, slope {slope}"
        );
        let g = grads.get(xv.as_tensor()).expect("a gradient");
        assert_eq!(
            g.to_vec1::<f32>().expect("g"),
            want_g,
            "n {n}, slope {slope}"
        );
    }
}

/// vaekit's sigmoid against candle's: values and the gradient of `Σ y·r`, on
/// one task and on many (the pool's path), with zeros of both signs and
/// saturating inputs. In f64 they are the same bit for bit; in f32 vaekit's
/// vectorised exponential keeps values within 4e-7 relative of candle's.
#[test]
fn sigmoid_matches_candle() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    for (dtype, n) in [(DType::F32, 7), (DType::F32, 100_000), (DType::F64, 70_001)] {
        let edges = Tensor::new(&[0.0f64, -0.0, 90.0, -90.0, 1e4, -1e4], &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .expect("edges");
        let x = Tensor::cat(&[edges, randn(&mut rng, &[n], dtype)], 0).expect("x");
        let r = randn(&mut rng, &[n + 6], dtype);
        let run = |f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| {
            let xv = Var::from_tensor(&x).expect("var");
            let y = f(xv.as_tensor()).expect("sigmoid");
            let grads = (&y * &r)
                .and_then(|t| t.sum_all())
                .and_then(|t| t.backward())
                .expect("backward");
            let g = grads.get(xv.as_tensor()).expect("a gradient").clone();
            (y, g)
        };
        let (ours_y, ours_g) = run(&|t| ops::sigmoid(t));
        let (theirs_y, theirs_g) = run(&|t| candle_nn::ops::sigmoid(t));
        let what = format!("{dtype:?} n {n}");
        if dtype == DType::F64 {
            assert_eq!(values(&ours_y), values(&theirs_y), "{what}: values");
            assert_eq!(values(&ours_g), values(&theirs_g), "{what}: gradients");
        } else {
            assert_close(&format!("{what}: values"), &ours_y, &theirs_y, 4e-7, 0.0);
            // g = r·(1 − y)·y moves by at most |r|·|Δy| when y moves by Δy
            // (|1 − 2y| ≤ 1), plus the rounding of each product.
            let (a, b, rs) = (values(&ours_g), values(&theirs_g), values(&r));
            for (i, ((a, b), r)) in a.iter().zip(&b).zip(&rs).enumerate() {
                let tol = 4e-7 * r.abs() + 1e-6 * b.abs() + 1e-12;
                assert!(
                    (a - b).abs() <= tol,
                    "{what}: gradient {i} is {a}, candle's {b}"
                );
            }
        }
        let y = values(&ours_y);
        assert_eq!(y[2], 1.0, "sigmoid(90) saturates to 1");
        assert!((0.0..1e-30).contains(&y[3]), "sigmoid(-90) = {}", y[3]);
        assert!(
            y.iter().all(|v| (0.0..=1.0).contains(v)),
            "{what}: outside [0, 1]"
        );
    }
}

/// vaekit's batch norm against candle's `BatchNorm` on the same tensors:
/// training output, gradients of input, weight and bias, the running
/// statistics it leaves, and the evaluation output from them.
#[test]
fn batch_norm_matches_candle() {
    use candle_nn::ModuleT;
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    for (dims, dtype) in [
        ([4, 3, 5, 6], DType::F32),
        ([64, 16, 14, 14], DType::F32),
        ([2, 3, 1, 1], DType::F64),
    ] {
        let c = dims[1];
        let x = (randn(&mut rng, &dims, dtype) * 3.0)
            .and_then(|t| t + 1.5)
            .expect("x");
        let r = randn(&mut rng, &dims, dtype);
        let w = randn(&mut rng, &[c], dtype);
        let b = randn(&mut rng, &[c], dtype);
        let rm0 = randn(&mut rng, &[c], dtype);
        let rv0 = (randn(&mut rng, &[c], dtype).abs().expect("abs") + 0.5).expect("rv");
        // Two independent copies of the same starting statistics.
        let stats = || {
            (
                Var::from_tensor(&rm0).expect("mean"),
                Var::from_tensor(&rv0).expect("var"),
            )
        };
        let (ours_rm, ours_rv) = stats();
        let (theirs_rm, theirs_rv) = stats();
        let ours = vaekit::nets::BatchNorm2d::new(
            w.clone(),
            b.clone(),
            ours_rm.as_tensor().clone(),
            ours_rv.as_tensor().clone(),
        )
        .expect("ours");
        let theirs = candle_nn::BatchNorm::new(
            c,
            theirs_rm.as_tensor().clone(),
            theirs_rv.as_tensor().clone(),
            w.clone(),
            b.clone(),
            1e-5,
        )
        .expect("theirs");
        let case = Case {
            transposed: false,
            batch: dims[0],
            cin: c,
            cout: c,
            h: dims[2],
            w: dims[3],
            k: 1,
            stride: 1,
            padding: 0,
            output_padding: 0,
        };
        // x, w, b as the three variables of `run`.
        let got = run(
            |x, w, b| {
                vaekit::nets::BatchNorm2d::new(
                    w.clone(),
                    b.clone(),
                    ours_rm.as_tensor().clone(),
                    ours_rv.as_tensor().clone(),
                )?
                .forward_t(x, true)
            },
            &x,
            &w,
            &b,
            &r,
        );
        let want = run(
            |x, w, b| {
                candle_nn::BatchNorm::new(
                    c,
                    theirs_rm.as_tensor().clone(),
                    theirs_rv.as_tensor().clone(),
                    w.clone(),
                    b.clone(),
                    1e-5,
                )?
                .forward_t(x, true)
            },
            &x,
            &w,
            &b,
            &r,
        );
        check(&case, &got, &want);
        let what = format!("{dims:?}");
        assert_close(
            &format!("{what} running mean"),
            ours_rm.as_tensor(),
            theirs_rm.as_tensor(),
            REL,
            1e-3,
        );
        assert_close(
            &format!("{what} running var"),
            ours_rv.as_tensor(),
            theirs_rv.as_tensor(),
            REL,
            1e-3,
        );
        // The layers built above share those running statistics.
        let eval_ours = ours.forward_t(&x, false).expect("eval");
        let eval_theirs = theirs.forward_t(&x, false).expect("eval");
        assert_close(&format!("{what} eval"), &eval_ours, &eval_theirs, REL, 1e-3);
    }
    // One value per channel has no variance to normalise by (PyTorch refuses too).
    let one = Tensor::ones((1, 2, 1, 1), DType::F32, &Device::Cpu).expect("x");
    let ones = Tensor::ones(2, DType::F32, &Device::Cpu).expect("ones");
    let bn =
        vaekit::nets::BatchNorm2d::new(ones.clone(), ones.clone(), ones.clone(), ones).expect("bn");
    let e = bn.forward_t(&one, true).expect_err("an error").to_string();
    assert!(e.contains("more than one value per channel"), "{e}");
}

/// Gradients do not depend on how the work was spread over threads: the same
/// batch gives bit-identical results twice.
#[test]
fn gradients_are_bit_identical_across_runs() {
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    let case = Case {
        transposed: false,
        batch: 64,
        cin: 16,
        cout: 32,
        h: 14,
        w: 14,
        k: 3,
        stride: 1,
        padding: 1,
        output_padding: 0,
    };
    let (x, w, b, r) = inputs(&case, &mut rng, DType::F32);
    let bits = |t: &Tensor| {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values")
            .into_iter()
            .map(f32::to_bits)
            .collect::<Vec<_>>()
    };
    let first = run(|x, w, b| case.ours(x, w, b), &x, &w, &b, &r);
    for _ in 0..3 {
        let again = run(|x, w, b| case.ours(x, w, b), &x, &w, &b, &r);
        assert_eq!(bits(&again.dw), bits(&first.dw), "weight gradient");
        assert_eq!(bits(&again.db), bits(&first.db), "bias gradient");
        assert_eq!(bits(&again.dx), bits(&first.dx), "input gradient");
    }
}

/// candle's own linear layer: `x · wᵀ + b`.
fn candle_linear(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_matmul(&w.t()?)?.broadcast_add(b)
}

/// The fused linear layer against candle's ops: output and every gradient, for
/// batch sizes and widths around the GEMM's blocking, in f32 and f64.
#[test]
fn linear_matches_candle_forward_and_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    for (dtype, (n, k, m)) in [
        (DType::F32, (1, 1, 1)),
        (DType::F32, (3, 5, 7)),
        (DType::F32, (128, 784, 256)),
        (DType::F32, (100, 256, 784)),
        (DType::F32, (33, 2, 500)),
        (DType::F64, (17, 31, 9)),
    ] {
        let (x, w, b) = (
            randn(&mut rng, &[n, k], dtype),
            randn(&mut rng, &[m, k], dtype),
            randn(&mut rng, &[m], dtype),
        );
        let r = randn(&mut rng, &[n, m], dtype);
        let ours = run(|x, w, b| ops::linear(x, w, Some(b)), &x, &w, &b, &r);
        let theirs = run(candle_linear, &x, &w, &b, &r);
        let what = format!("{dtype:?} [{n}, {k}] x [{m}, {k}]");
        assert_close(&format!("{what} y"), &ours.y, &theirs.y, REL, 0.0);
        assert_close(&format!("{what} dx"), &ours.dx, &theirs.dx, REL, 0.0);
        assert_close(&format!("{what} dw"), &ours.dw, &theirs.dw, REL, 0.0);
        assert_close(&format!("{what} db"), &ours.db, &theirs.db, REL, 0.0);
    }
}

/// Data that records no graph gets no gradient, and the weights still do;
/// a non-contiguous input and inputs of rank 3 (candle's path) work; shapes that
/// do not fit are errors naming them.
#[test]
fn linear_inputs_without_gradient_other_layouts_and_bad_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let (w, b) = (
        randn(&mut rng, &[6, 4], DType::F32),
        randn(&mut rng, &[6], DType::F32),
    );
    let (wv, bv) = (
        Var::from_tensor(&w).expect("var"),
        Var::from_tensor(&b).expect("var"),
    );
    let data = randn(&mut rng, &[5, 4], DType::F32);
    let y = ops::linear(&data, wv.as_tensor(), Some(bv.as_tensor())).expect("linear");
    let grads = y.sum_all().and_then(|t| t.backward()).expect("backward");
    assert!(grads.get(&data).is_none(), "data has no gradient");
    assert!(grads.get(wv.as_tensor()).is_some() && grads.get(bv.as_tensor()).is_some());
    let want = candle_linear(&data, &w, &b).expect("candle");
    assert_close("untracked input", &y, &want, REL, 0.0);

    let transposed = randn(&mut rng, &[4, 5], DType::F32).t().expect("t");
    assert!(!transposed.is_contiguous());
    let y = ops::linear(&transposed, &w, Some(&b)).expect("non-contiguous");
    let want = candle_linear(&transposed, &w, &b).expect("candle");
    assert_close("non-contiguous input", &y, &want, REL, 0.0);

    let x3 = randn(&mut rng, &[2, 3, 4], DType::F32);
    let y = ops::linear(&x3, &w, Some(&b)).expect("rank 3");
    assert_eq!(y.dims(), [2, 3, 6]);
    let want = candle_linear(&x3, &w, &b).expect("candle");
    assert_close("rank 3", &y, &want, REL, 0.0);
    let y = ops::linear(&data, &w, None).expect("no bias");
    let want = data.matmul(&w.t().expect("t")).expect("matmul");
    assert_close("no bias", &y, &want, REL, 0.0);

    let bad_in = randn(&mut rng, &[5, 3], DType::F32);
    let msg = ops::linear(&bad_in, &w, Some(&b))
        .expect_err("width")
        .to_string();
    assert!(msg.contains("[5, 3]") && msg.contains("[6, 4]"), "{msg}");
    let bad_b = randn(&mut rng, &[5], DType::F32);
    let msg = ops::linear(&data, &w, Some(&bad_b))
        .expect_err("bias")
        .to_string();
    assert!(msg.contains("bias") && msg.contains("[5]"), "{msg}");
}

/// Training-mode batch norm of channels whose mean is large next to their
/// spread, followed by a leaky ReLU: the float32 gradients agree with float64
/// to float32 precision. Computed as `x·α + β`, the normalised values land on
/// a grid as coarse as the rounding of `x·α`, values near zero become exactly
/// zero and take the other branch of the ReLU, and the gradients of the batch
/// of 64 were 1e-1 off (the regression behind conv-vae-bn's encoder gradients).
#[test]
fn batch_norm_of_offset_channels_keeps_float32_gradients_exact() {
    let (b, c, hw) = (64, 128, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = randn(&mut rng, &[b, c, hw, hw], DType::F32)
        .affine(1.0, 30.0)
        .unwrap();
    let g = randn(&mut rng, &[b, c, hw, hw], DType::F32);
    let w = randn(&mut rng, &[c], DType::F32).affine(0.1, 1.0).unwrap();
    let bias = randn(&mut rng, &[c], DType::F32).affine(0.1, 0.0).unwrap();
    let grads = |dtype: DType| {
        let cast = |t: &Tensor| t.to_dtype(dtype).unwrap();
        let (xv, wv, bv) = (
            Var::from_tensor(&cast(&x)).unwrap(),
            Var::from_tensor(&cast(&w)).unwrap(),
            Var::from_tensor(&cast(&bias)).unwrap(),
        );
        let zeros = Tensor::zeros(c, dtype, &Device::Cpu).unwrap();
        let ones = Tensor::ones(c, dtype, &Device::Cpu).unwrap();
        let bn = vaekit::nets::BatchNorm2d::new(
            wv.as_tensor().clone(),
            bv.as_tensor().clone(),
            zeros,
            ones,
        )
        .unwrap();
        let y = candle_core::ModuleT::forward_t(&bn, xv.as_tensor(), true).unwrap();
        let y = ops::leaky_relu(&y, 0.2).unwrap();
        let total = (y * cast(&g)).unwrap().sum_all().unwrap();
        let store = total.backward().unwrap();
        [xv, wv, bv].map(|v| store.get(v.as_tensor()).unwrap().clone())
    };
    let (single, double) = (grads(DType::F32), grads(DType::F64));
    for (name, (a, e)) in ["x", "weight", "bias"]
        .iter()
        .zip(single.iter().zip(&double))
    {
        let (a, e) = (values(a), values(e));
        let scale = e.iter().fold(0f64, |m, v| m.max(v.abs()));
        let err = a
            .iter()
            .zip(&e)
            .map(|(a, e)| (a - e).abs())
            .fold(0f64, f64::max);
        assert!(
            err / scale < 1e-6,
            "gradient of {name}: float32 is {:.2e} off float64 (relative to its largest value)",
            err / scale
        );
    }
}
