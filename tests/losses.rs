//! The loss functions of `vaekit::losses`:
//!
//! - parity with PyTorch for every reduction and for the gradients, on the
//!   tensors of `tests/fixtures/losses.safetensors` (written by the `losses()`
//!   function of `tests/fixtures/make_fixtures.py`), at 1e-4 relative;
//! - behaviour at the edges: saturated logits and probabilities of exactly 0
//!   and 1 give finite, correct losses and finite gradients;
//! - central finite-difference gradient checks, evaluated in `f64` around small
//!   `f32` inputs;
//! - shape-mismatch errors that name the shapes, and what each [`Reduction`]
//!   means.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use common::{assert_close, load_fixture, values};
use vaekit::latent::{DiagonalGaussian, StandardNormal};
use vaekit::losses::{
    bce, bce_with_logits, cross_entropy, gaussian_nll, kl_standard_normal, log_normal_pdf,
    monte_carlo_elbo, mse, squared_error, Elbo, Reduction,
};

/// Relative tolerance of every PyTorch comparison.
const REL: f64 = 1e-4;
/// `ln(2π)`.
const LN_2PI: f64 = 1.837_877_066_409_345_5;

fn fixture() -> HashMap<String, Tensor> {
    load_fixture("losses.safetensors", &Device::Cpu)
}

fn get(f: &HashMap<String, Tensor>, key: &str) -> Tensor {
    f.get(key)
        .unwrap_or_else(|| panic!("losses.safetensors lacks `{key}`"))
        .clone()
}

fn var(t: &Tensor) -> Var {
    Var::from_tensor(t).expect("var")
}

fn grad(loss: &Tensor, v: &Var) -> Tensor {
    let grads = loss.backward().expect("backward");
    grads
        .get(v.as_tensor())
        .expect("the input receives a gradient")
        .clone()
}

fn tensor(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).expect("tensor")
}

/// Checks `loss(·, reduction)` against the fixture's `<prefix>.{none, sum, mean,
/// batch_mean}` for every reduction.
fn check_reductions(
    f: &HashMap<String, Tensor>,
    prefix: &str,
    loss: impl Fn(Reduction) -> candle_core::Result<Tensor>,
) {
    for (reduction, key) in [
        (Reduction::None, "none"),
        (Reduction::Sum, "sum"),
        (Reduction::Mean, "mean"),
        (Reduction::BatchMean, "batch_mean"),
    ] {
        let actual = loss(reduction).unwrap_or_else(|e| panic!("{prefix} {reduction:?}: {e}"));
        let expected = get(f, &format!("{prefix}.{key}"));
        assert_close(
            &format!("{prefix} {reduction:?}"),
            &actual,
            &expected,
            REL,
            0.0,
        );
    }
}

// ---------------------------------------------------------------- PyTorch parity

#[test]
fn bce_with_logits_matches_pytorch_for_every_reduction_and_gradient() {
    let f = fixture();
    let (logits, target) = (get(&f, "bce_logits.logits"), get(&f, "bce_logits.target"));
    check_reductions(&f, "bce_logits", |r| bce_with_logits(&logits, &target, r));
    // The fixture holds saturated logits (±30, ±100): the stable form must keep
    // them finite and exact, which `assert_close` checks element by element.
    let l = var(&logits);
    let loss = bce_with_logits(l.as_tensor(), &target, Reduction::Sum).unwrap();
    assert_close(
        "bce_logits grad",
        &grad(&loss, &l),
        &get(&f, "bce_logits.grad"),
        REL,
        0.0,
    );
}

#[test]
fn bce_on_probabilities_matches_pytorch_including_exact_zero_and_one() {
    let f = fixture();
    let (probs, target) = (get(&f, "bce_probs.probs"), get(&f, "bce_probs.target"));
    // Elements with p = 0 or 1 and a target that disagrees cost 100·t or
    // 100·(1 − t) in PyTorch (its −100 clamp on the logs); they are compared here.
    check_reductions(&f, "bce_probs", |r| bce(&probs, &target, r));

    let p = var(&probs);
    let loss = bce(p.as_tensor(), &target, Reduction::Sum).unwrap();
    let g = values(&grad(&loss, &p));
    let expected = values(&get(&f, "bce_probs.grad"));
    let pv = values(&probs);
    // PyTorch's gradient at p ∈ {0, 1} is an artefact of its 1e-12 clamp on
    // p(1 − p) (values like ±1e12): mask those; the rest must match.
    let keep: Vec<usize> = (0..pv.len())
        .filter(|&i| pv[i] != 0.0 && pv[i] != 1.0)
        .collect();
    assert_eq!(
        keep.len(),
        pv.len() - 4,
        "the fixture has four p ∈ {{0, 1}}"
    );
    let pick = |v: &[f64]| -> Tensor {
        let kept: Vec<f64> = keep.iter().map(|&i| v[i]).collect();
        Tensor::new(kept, &Device::Cpu).unwrap()
    };
    assert_close("bce_probs grad", &pick(&g), &pick(&expected), REL, 0.0);
    for (i, gi) in g.iter().enumerate() {
        assert!(gi.is_finite(), "bce grad[{i}] at p = {} is {gi}", pv[i]);
    }
}

#[test]
fn mse_matches_pytorch_for_every_reduction_and_gradient() {
    let f = fixture();
    let (input, target) = (get(&f, "mse.input"), get(&f, "mse.target"));
    check_reductions(&f, "mse", |r| mse(&input, &target, r));
    let x = var(&input);
    let loss = mse(x.as_tensor(), &target, Reduction::Sum).unwrap();
    assert_close("mse grad", &grad(&loss, &x), &get(&f, "mse.grad"), REL, 0.0);
}

#[test]
fn squared_error_is_scaled_mse_and_matches_pytorch() {
    // squared_error(·, scale) = scale · mse(·): compare against the PyTorch MSE
    // numbers scaled by 0.5, for every reduction and for the gradient.
    let f = fixture();
    let (input, target) = (get(&f, "mse.input"), get(&f, "mse.target"));
    for (reduction, key) in [
        (Reduction::None, "none"),
        (Reduction::Sum, "sum"),
        (Reduction::Mean, "mean"),
        (Reduction::BatchMean, "batch_mean"),
    ] {
        let actual = squared_error(&input, &target, 0.5, reduction).unwrap();
        let expected = (get(&f, &format!("mse.{key}")) * 0.5).unwrap();
        assert_close(
            &format!("squared_error {reduction:?}"),
            &actual,
            &expected,
            REL,
            0.0,
        );
    }
    let x = var(&input);
    let loss = squared_error(x.as_tensor(), &target, 0.5, Reduction::Sum).unwrap();
    let expected = (get(&f, "mse.grad") * 0.5).unwrap();
    assert_close("squared_error grad", &grad(&loss, &x), &expected, REL, 0.0);
}

#[test]
fn gaussian_nll_matches_pytorch_normal_log_prob_with_sigma_half() {
    let f = fixture();
    let (mu, target) = (get(&f, "gaussian_nll.mu"), get(&f, "gaussian_nll.target"));
    check_reductions(&f, "gaussian_nll", |r| gaussian_nll(&mu, &target, 0.5, r));
    let m = var(&mu);
    let loss = gaussian_nll(m.as_tensor(), &target, 0.5, Reduction::Sum).unwrap();
    assert_close(
        "gaussian_nll grad wrt mu",
        &grad(&loss, &m),
        &get(&f, "gaussian_nll.grad"),
        REL,
        0.0,
    );
}

#[test]
fn kl_standard_normal_matches_pytorch_for_every_reduction_and_both_gradients() {
    let f = fixture();
    let (mu, logvar) = (get(&f, "kl.mu"), get(&f, "kl.logvar"));
    check_reductions(&f, "kl", |r| kl_standard_normal(&mu, &logvar, r));
    let (m, lv) = (var(&mu), var(&logvar));
    let loss = kl_standard_normal(m.as_tensor(), lv.as_tensor(), Reduction::Sum).unwrap();
    let grads = loss.backward().unwrap();
    assert_close(
        "kl grad wrt mean",
        grads.get(m.as_tensor()).unwrap(),
        &get(&f, "kl.grad_mean"),
        REL,
        0.0,
    );
    assert_close(
        "kl grad wrt logvar",
        grads.get(lv.as_tensor()).unwrap(),
        &get(&f, "kl.grad_logvar"),
        REL,
        0.0,
    );
}

#[test]
fn log_normal_pdf_matches_the_tutorial_formula_in_pytorch_per_row() {
    let f = fixture();
    let out = log_normal_pdf(
        &get(&f, "lnp.x"),
        &get(&f, "lnp.mean"),
        &get(&f, "lnp.logvar"),
    )
    .unwrap();
    assert_eq!(out.dims(), [3], "one log-density per row");
    assert_close("log_normal_pdf", &out, &get(&f, "lnp.out"), REL, 0.0);
}

#[test]
fn cross_entropy_matches_pytorch_with_int64_labels() {
    let f = fixture();
    let (logits, labels) = (get(&f, "ce.logits"), get(&f, "ce.labels"));
    assert_eq!(labels.dtype(), DType::I64, "PyTorch's labels are int64");
    let none = cross_entropy(&logits, &labels, Reduction::None).unwrap();
    assert_close("ce none", &none, &get(&f, "ce.none"), REL, 0.0);
    let mean = cross_entropy(&logits, &labels, Reduction::Mean).unwrap();
    assert_close("ce mean", &mean, &get(&f, "ce.mean"), REL, 0.0);
    // Over [batch] the batch mean is the mean, and the sum is 3× it.
    let batch_mean = cross_entropy(&logits, &labels, Reduction::BatchMean).unwrap();
    assert_close("ce batch_mean", &batch_mean, &get(&f, "ce.mean"), REL, 0.0);
    let sum = cross_entropy(&logits, &labels, Reduction::Sum).unwrap();
    let expected_sum = (get(&f, "ce.mean") * 3.0).unwrap();
    assert_close("ce sum", &sum, &expected_sum, REL, 0.0);

    let l = var(&logits);
    let loss = cross_entropy(l.as_tensor(), &labels, Reduction::Mean).unwrap();
    assert_close(
        "ce grad of the mean",
        &grad(&loss, &l),
        &get(&f, "ce.grad"),
        REL,
        0.0,
    );
}

// ------------------------------------------------------------------- edge cases

#[test]
fn bce_with_logits_is_finite_and_exact_at_saturated_logits() {
    // Stable form: max(l, 0) − l·t + ln(1 + e^{−|l|}). At |l| ≥ 100 the last
    // term is below 4e-44, so the loss is exactly max(l, 0) − l·t, i.e. |l| when
    // the target disagrees with the sign, 0 when it agrees, |l|/2 for t = ½.
    // The gradient is sigmoid(l) − t ∈ {±1, 0, ±½}.
    let mut logits = Vec::new();
    let mut targets = Vec::new();
    for l in [100f32, -100.0, 1e4, -1e4] {
        for t in [0f32, 1.0, 0.5] {
            logits.push(l);
            targets.push(t);
        }
    }
    let n = logits.len();
    let l = var(&tensor(&logits, &[n]));
    let t = tensor(&targets, &[n]);
    let loss = bce_with_logits(l.as_tensor(), &t, Reduction::None).unwrap();
    let got = values(&loss);
    let g = values(&grad(&loss.sum_all().unwrap(), &l));
    for i in 0..n {
        let (li, ti) = (logits[i] as f64, targets[i] as f64);
        let expected = li.max(0.0) - li * ti;
        let sig = if li > 0.0 { 1.0 } else { 0.0 };
        assert!(got[i].is_finite(), "loss(l={li}, t={ti}) = {}", got[i]);
        assert!(
            (got[i] - expected).abs() <= 1e-6 * expected.abs().max(1.0),
            "loss(l={li}, t={ti}) = {}, expected {expected}",
            got[i]
        );
        assert!(g[i].is_finite(), "grad(l={li}, t={ti}) = {}", g[i]);
        assert!(
            (g[i] - (sig - ti)).abs() <= 1e-6,
            "grad(l={li}, t={ti}) = {}, expected sigmoid(l) − t = {}",
            g[i],
            sig - ti
        );
    }
    // The loss of l = +100 against t = 0 is exactly 100 (as the saturated term).
    assert_eq!(got[0], 100.0);
}

#[test]
fn bce_on_probabilities_is_finite_with_finite_gradients_at_zero_and_one() {
    // PyTorch clamps each log at −100, so p = 0 costs 100·t and p = 1 costs
    // 100·(1 − t); agreeing targets cost 0. The gradient must stay finite.
    let probs = [0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
    let targets = [0f32, 1.0, 0.3, 1.0, 0.0, 0.7];
    let expected = [0.0, 100.0, 30.0, 0.0, 100.0, 30.0];
    let p = var(&tensor(&probs, &[2, 3]));
    let t = tensor(&targets, &[2, 3]);
    let loss = bce(p.as_tensor(), &t, Reduction::None).unwrap();
    let got = values(&loss);
    for i in 0..6 {
        assert!(
            (got[i] - expected[i]).abs() <= 1e-4,
            "bce(p={}, t={}) = {}, expected {}",
            probs[i],
            targets[i],
            got[i],
            expected[i]
        );
    }
    for r in [Reduction::Sum, Reduction::Mean, Reduction::BatchMean] {
        let s = bce(p.as_tensor(), &t, r).unwrap();
        assert!(common::scalar(&s).is_finite(), "{r:?}");
        let g = values(&grad(&s, &p));
        assert!(
            g.iter().all(|v| v.is_finite()),
            "{r:?}: gradient at p ∈ {{0, 1}} is {g:?}"
        );
    }
}

#[test]
fn bce_on_subnormal_probabilities_stays_finite_with_a_finite_gradient() {
    // Documented trade-off (src/losses/bce.rs): for 0 < p < 1.2e-38 (f32
    // subnormals) the log is taken at 1.2e-38, ln = −87.34, where PyTorch takes
    // max(ln p, −100); in exchange the gradient −t/p stays finite in f32.
    // p = 0 is PyTorch's clamp exactly: −100.
    let probs = [1e-40f32, 1e-44, 0.0];
    let floor = -(1.175_494_4e-38f64).ln();
    let expected = [floor, floor, 100.0];
    let p = candle_core::Var::from_tensor(&tensor(&probs, &[3])).unwrap();
    let loss = bce(
        p.as_tensor(),
        &tensor(&[1.0, 1.0, 1.0], &[3]),
        Reduction::None,
    )
    .unwrap();
    let got = values(&loss);
    for i in 0..3 {
        assert!(
            (got[i] - expected[i]).abs() <= 1e-3 * expected[i],
            "bce(p={:e}, t=1) = {}, expected {}",
            probs[i],
            got[i],
            expected[i]
        );
    }
    let grads = loss.sum_all().unwrap().backward().unwrap();
    let g = values(grads.get(p.as_tensor()).unwrap());
    assert!(g.iter().all(|v| v.is_finite()), "gradient {g:?}");
}

#[test]
fn gaussian_nll_refuses_a_sigma_that_is_not_positive() {
    let x = tensor(&[0.1, 0.2], &[1, 2]);
    for sigma in [0.0, -0.5, f64::NAN, f64::INFINITY] {
        let err = gaussian_nll(&x, &x, sigma, Reduction::Sum)
            .expect_err("a non-positive sigma is an error")
            .to_string();
        assert!(err.contains("sigma"), "{sigma}: {err}");
    }
}

#[test]
fn cross_entropy_refuses_out_of_range_labels() {
    let logits = tensor(&[0.0; 6], &[2, 3]);
    let labels = Tensor::new(&[1u32, 3], &Device::Cpu).unwrap();
    let err = cross_entropy(&logits, &labels, Reduction::Mean)
        .expect_err("label 3 of 3 classes")
        .to_string();
    assert!(
        err.contains("label 3") && err.contains("3 classes"),
        "{err}"
    );
}

// ---------------------------------------------------- finite-difference checks

/// Checks the autograd gradient of the scalar `f(inputs)` with respect to each
/// input against central differences.
///
/// The analytic gradient is candle's backward pass in `f32`; the numeric one is
/// `(f(x + h·e_j) − f(x − h·e_j)) / 2h` with the inputs and `f` evaluated in
/// `f64`, with `h = 1e-6`, so its truncation (~h² f‴ ≈ 1e-12) and rounding
/// (~1e-16 / h ≈ 1e-10) errors are far below the `f32` rounding of the analytic
/// gradient (~1e-7 relative). They must agree to 1e-3 relative, with an
/// absolute allowance of 1e-4 × the largest gradient for near-zero entries.
fn finite_difference_check(
    what: &str,
    inputs: &[Tensor],
    wrt: &[usize],
    f: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
) {
    const H: f64 = 1e-6;
    let vars: Vec<Var> = inputs.iter().map(var).collect();
    let as_tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&as_tensors).unwrap();
    assert_eq!(out.dims(), [0usize; 0], "{what}: f must return a scalar");
    let grads = out.backward().unwrap();
    let f64_inputs: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_dtype(DType::F64).unwrap())
        .collect();
    for &i in wrt {
        let analytic = grads
            .get(vars[i].as_tensor())
            .unwrap_or_else(|| panic!("{what}: input {i} has no gradient"));
        let base = values(&f64_inputs[i]);
        let shape = inputs[i].shape().clone();
        let mut numeric = Vec::with_capacity(base.len());
        for j in 0..base.len() {
            let eval = |delta: f64| -> f64 {
                let mut v = base.clone();
                v[j] += delta;
                let mut xs = f64_inputs.clone();
                xs[i] = Tensor::from_vec(v, shape.clone(), &Device::Cpu).unwrap();
                let y = f(&xs).unwrap();
                assert_eq!(y.dtype(), DType::F64, "{what}: f must keep f64");
                common::scalar(&y)
            };
            numeric.push((eval(H) - eval(-H)) / (2.0 * H));
        }
        let numeric = Tensor::from_vec(numeric, shape, &Device::Cpu).unwrap();
        assert_close(
            &format!("{what}: d/d input {i}"),
            analytic,
            &numeric,
            1e-3,
            0.0,
        );
    }
}

/// `Σ w ⊙ loss` with fixed, uneven weights, so every element's gradient is
/// checked with a different upstream gradient.
fn weighted_sum(loss: &Tensor) -> candle_core::Result<Tensor> {
    let n = loss.elem_count();
    let w: Vec<f64> = (0..n).map(|i| 0.3 + 0.17 * i as f64).collect();
    let w = Tensor::from_vec(w, loss.shape(), loss.device())?.to_dtype(loss.dtype())?;
    loss.mul(&w)?.sum_all()
}

/// A small tensor of deterministic, well-spread values in `[lo, hi]`.
fn spread(shape: &[usize], lo: f32, hi: f32, phase: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let s = ((i as f32 + phase) * 2.399_963).sin() * 0.5 + 0.5; // in [0, 1]
            lo + (hi - lo) * s
        })
        .collect();
    tensor(&v, shape)
}

#[test]
fn bce_with_logits_gradient_matches_finite_differences() {
    let logits = spread(&[3, 4], -4.0, 4.0, 0.1);
    let target = spread(&[3, 4], 0.0, 1.0, 7.3);
    assert!(
        values(&logits).iter().all(|l| l.abs() > 1e-3),
        "away from the kink"
    );
    finite_difference_check("bce_with_logits", &[logits, target], &[0, 1], |x| {
        weighted_sum(&bce_with_logits(&x[0], &x[1], Reduction::None)?)
    });
}

#[test]
fn bce_gradient_matches_finite_differences() {
    let probs = spread(&[3, 4], 0.05, 0.95, 0.4);
    let target = spread(&[3, 4], 0.0, 1.0, 3.1);
    finite_difference_check("bce", &[probs, target], &[0, 1], |x| {
        weighted_sum(&bce(&x[0], &x[1], Reduction::None)?)
    });
}

#[test]
fn mse_and_squared_error_gradients_match_finite_differences() {
    let input = spread(&[2, 5], -2.0, 2.0, 0.2);
    let target = spread(&[2, 5], -1.0, 1.0, 5.5);
    let inputs = [input, target];
    finite_difference_check("mse", &inputs, &[0, 1], |x| {
        weighted_sum(&mse(&x[0], &x[1], Reduction::None)?)
    });
    finite_difference_check("mse (mean)", &inputs, &[0, 1], |x| {
        mse(&x[0], &x[1], Reduction::Mean)
    });
    finite_difference_check("squared_error", &inputs, &[0, 1], |x| {
        weighted_sum(&squared_error(&x[0], &x[1], 0.7, Reduction::None)?)
    });
    finite_difference_check("squared_error (batch mean)", &inputs, &[0, 1], |x| {
        squared_error(&x[0], &x[1], 0.5, Reduction::BatchMean)
    });
}

#[test]
fn gaussian_nll_gradient_matches_finite_differences() {
    let mean = spread(&[3, 3], 0.0, 1.0, 0.9);
    let target = spread(&[3, 3], 0.0, 1.0, 4.2);
    finite_difference_check("gaussian_nll", &[mean, target], &[0, 1], |x| {
        weighted_sum(&gaussian_nll(&x[0], &x[1], 0.5, Reduction::None)?)
    });
}

#[test]
fn kl_standard_normal_gradient_matches_finite_differences() {
    let mean = spread(&[2, 4], -1.5, 1.5, 0.6);
    let logvar = spread(&[2, 4], -2.0, 1.0, 2.8);
    finite_difference_check("kl_standard_normal", &[mean, logvar], &[0, 1], |x| {
        weighted_sum(&kl_standard_normal(&x[0], &x[1], Reduction::None)?)
    });
}

#[test]
fn log_normal_pdf_gradient_matches_finite_differences() {
    let x = spread(&[3, 4], -2.0, 2.0, 0.3);
    let mean = spread(&[3, 4], -1.0, 1.0, 1.7);
    let logvar = spread(&[3, 4], -1.5, 1.0, 6.1);
    finite_difference_check("log_normal_pdf", &[x, mean, logvar], &[0, 1, 2], |x| {
        weighted_sum(&log_normal_pdf(&x[0], &x[1], &x[2])?)
    });
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    let logits = spread(&[4, 5], -3.0, 3.0, 0.8);
    let labels = Tensor::new(&[0u32, 4, 2, 2], &Device::Cpu).unwrap();
    finite_difference_check("cross_entropy", &[logits], &[0], |x| {
        weighted_sum(&cross_entropy(&x[0], &labels, Reduction::None)?)
    });
    finite_difference_check(
        "cross_entropy (mean)",
        &[spread(&[4, 5], -3.0, 3.0, 0.8)],
        &[0],
        |x| cross_entropy(&x[0], &labels, Reduction::Mean),
    );
}

// ------------------------------------------------------- shapes and reductions

#[test]
fn shape_mismatches_are_errors_naming_the_loss_and_both_shapes() {
    let a = tensor(&[0.5; 6], &[2, 3]);
    let b = tensor(&[0.5; 6], &[3, 2]);
    let cases: Vec<(&str, candle_core::Result<Tensor>)> = vec![
        ("bce_with_logits", bce_with_logits(&a, &b, Reduction::Sum)),
        ("bce", bce(&a, &b, Reduction::Sum)),
        ("mse", mse(&a, &b, Reduction::Sum)),
        ("squared_error", squared_error(&a, &b, 0.5, Reduction::Sum)),
        ("gaussian_nll", gaussian_nll(&a, &b, 0.5, Reduction::Sum)),
        (
            "kl_standard_normal",
            kl_standard_normal(&a, &b, Reduction::Sum),
        ),
        ("log_normal_pdf", log_normal_pdf(&a, &b, &a)),
        ("log_normal_pdf", log_normal_pdf(&a, &a, &b)),
    ];
    for (name, result) in cases {
        let err = result
            .expect_err(&format!("{name}: [2, 3] against [3, 2]"))
            .to_string();
        assert!(
            err.contains(name) && err.contains("[2, 3]") && err.contains("[3, 2]"),
            "{name}: the error should name the loss and both shapes: {err}"
        );
    }
    // Cross-entropy: labels must be [batch] for logits [batch, classes].
    let labels = Tensor::new(&[0u32, 1, 2], &Device::Cpu).unwrap();
    let err = cross_entropy(&a, &labels, Reduction::Mean)
        .expect_err("3 labels for 2 rows")
        .to_string();
    assert!(
        err.contains("cross_entropy") && err.contains("[3]") && err.contains("[2, 3]"),
        "{err}"
    );
}

#[test]
fn reductions_mean_what_they_say() {
    // A [2, 3, 4] tensor of 0, 1, …, 23: sum 276.
    let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let xs = tensor(&v, &[2, 3, 4]);
    let none = Reduction::None.apply(&xs).unwrap();
    assert_eq!(none.dims(), [2, 3, 4]);
    assert_eq!(values(&none), values(&xs));
    let scalar = |r: Reduction| {
        let t = r.apply(&xs).unwrap();
        assert_eq!(t.rank(), 0, "{r:?} gives a scalar");
        common::scalar(&t)
    };
    assert_eq!(scalar(Reduction::Sum), 276.0);
    assert_eq!(scalar(Reduction::Mean), 276.0 / 24.0);
    // BatchMean = Sum / batch: the per-example total (sum over 3·4) averaged
    // over the 2 examples.
    assert_eq!(scalar(Reduction::BatchMean), 276.0 / 2.0);
    assert_eq!(Reduction::default(), Reduction::BatchMean);

    // On a [batch] vector, BatchMean and Mean agree.
    let row = tensor(&[1.0, 2.0, 6.0], &[3]);
    assert_eq!(
        common::scalar(&Reduction::BatchMean.apply(&row).unwrap()),
        3.0
    );
    assert_eq!(common::scalar(&Reduction::Mean.apply(&row).unwrap()), 3.0);

    // The losses reduce the same way: BatchMean = Sum / batch for each of them.
    let f = fixture();
    let (input, target) = (get(&f, "mse.input"), get(&f, "mse.target"));
    let b = input.dim(0).unwrap() as f64;
    let sum = common::scalar(&mse(&input, &target, Reduction::Sum).unwrap());
    let batch_mean = common::scalar(&mse(&input, &target, Reduction::BatchMean).unwrap());
    assert!((batch_mean - sum / b).abs() <= 1e-6 * sum.abs());
}

#[test]
fn reduction_names_round_trip_through_serde() {
    for (r, name) in [
        (Reduction::None, "\"none\""),
        (Reduction::Sum, "\"sum\""),
        (Reduction::Mean, "\"mean\""),
        (Reduction::BatchMean, "\"batch_mean\""),
    ] {
        assert_eq!(serde_json::to_string(&r).unwrap(), name);
        assert_eq!(serde_json::from_str::<Reduction>(name).unwrap(), r);
    }
}

// --------------------------------------------------------------- ELBO helpers

#[test]
fn elbo_total_is_reconstruction_plus_beta_times_kl() {
    let recon = Tensor::new(12.5f32, &Device::Cpu).unwrap();
    let kl = Tensor::new(3.0f32, &Device::Cpu).unwrap();
    let e = Elbo::new(recon.clone(), kl.clone(), 1.0).unwrap();
    assert_eq!(common::scalar(&e.total), 15.5);
    let e = Elbo::new(recon.clone(), kl.clone(), 0.25).unwrap();
    assert_eq!(common::scalar(&e.total), 13.25);
    assert_eq!(common::scalar(&e.reconstruction), 12.5);
    assert_eq!(common::scalar(&e.kl), 3.0);
    assert_eq!(e.beta, 0.25);
    let e = Elbo::new(recon, kl, 0.0).unwrap();
    assert_eq!(common::scalar(&e.total), 12.5, "β = 0 drops the KL");
}

#[test]
fn monte_carlo_elbo_is_log_px_plus_log_pz_minus_log_qz() {
    // Per row: log p(x|z) + Σ −½(z² + ln 2π) − Σ −½((z−μ)² e^{−lv} + lv + ln 2π).
    let mean = [0.2f32, -0.4, 1.0, 0.3];
    let logvar = [-0.5f32, 0.1, 0.0, -1.2];
    let z = [0.7f32, -0.1, 0.5, 0.9];
    let log_px = [-10.0f32, -20.0];
    let q = DiagonalGaussian::new(tensor(&mean, &[2, 2]), tensor(&logvar, &[2, 2])).unwrap();
    let prior = StandardNormal::new(2);
    let got = values(
        &monte_carlo_elbo(&tensor(&log_px, &[2]), &tensor(&z, &[2, 2]), &q, &prior).unwrap(),
    );
    for row in 0..2 {
        let mut log_pz = 0.0;
        let mut log_qz = 0.0;
        for d in 0..2 {
            let i = 2 * row + d;
            let (zi, m, lv) = (z[i] as f64, mean[i] as f64, logvar[i] as f64);
            log_pz += -0.5 * (zi * zi + LN_2PI);
            log_qz += -0.5 * ((zi - m).powi(2) * (-lv).exp() + lv + LN_2PI);
        }
        let expected = log_px[row] as f64 + log_pz - log_qz;
        assert!(
            (got[row] - expected).abs() <= 1e-5 * expected.abs(),
            "row {row}: {} vs {expected}",
            got[row]
        );
    }
}
