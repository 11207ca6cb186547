//! vaekit's CPU kernels against PyTorch, one op at a time, forward and
//! backward, on odd shapes (`tests/fixtures/make_kernel_fixtures.py`): batch 1,
//! 3 and 11 (the convolutions group 8 + 3 images), 1, 3 and 8 channels, stride
//! 1 and 2, padding 0 and 2, a batch-norm channel far from zero in both modes,
//! and a linear layer of 40 rows. The reference values are PyTorch's in
//! float64. vaekit's float32 must be within 10× PyTorch's own float32 error on
//! each tensor (at least float32's ε, at most 1e-4), relative to the tensor's
//! largest value; vaekit's float64 within 1e-9.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use common::{error_against, fixture_path, fixture_tolerance, values};
use vaekit::nets::{ops, BatchNorm2d};

fn fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_path("kernels.safetensors"), &Device::Cpu)
        .expect("tests/fixtures/kernels.safetensors")
}

/// Runs `op` on the case's inputs in `dtype`, takes the gradients of `Σ y·r`
/// and compares the output and every stored gradient; returns the failures.
fn check(
    f: &HashMap<String, Tensor>,
    case: &str,
    dtype: DType,
    op: impl Fn(&HashMap<&str, Tensor>) -> candle_core::Result<Tensor>,
) -> Vec<String> {
    let get = |k: &str| {
        f.get(&format!("{case}.{k}"))
            .unwrap_or_else(|| panic!("{case}: no {k}"))
    };
    let mut vars = HashMap::new();
    let mut inputs = HashMap::new();
    for name in ["x", "w", "b", "mean", "var"] {
        if let Some(t) = f.get(&format!("{case}.{name}")) {
            let t = t.to_dtype(dtype).unwrap();
            if name == "mean" || name == "var" {
                inputs.insert(name, t);
            } else {
                let v = Var::from_tensor(&t).unwrap();
                inputs.insert(name, v.as_tensor().clone());
                vars.insert(name, v);
            }
        }
    }
    let y = op(&inputs).unwrap_or_else(|e| panic!("{case}: {e}"));
    let r = get("r").to_dtype(dtype).unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let mut actual = vec![("y".to_string(), y.clone())];
    for (name, v) in &vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            actual.push((format!("grad_{name}"), g.clone()));
        }
    }
    let expected = f
        .keys()
        .filter(|k| k.starts_with(&format!("{case}.grad_")) || *k == &format!("{case}.y"))
        .count();
    assert_eq!(
        actual.len(),
        expected,
        "{case}: every stored tensor compared"
    );
    let mut bad = Vec::new();
    for (name, a) in actual {
        let truth = get(&name);
        let scale = values(truth).iter().fold(0f64, |m, v| m.max(v.abs()));
        let err = error_against(&a, truth, scale.max(f64::MIN_POSITIVE));
        let torch = values(get(&format!("f32_error.{name}")))[0];
        let tol = fixture_tolerance(dtype, torch);
        if err.is_nan() || err > tol {
            bad.push(format!(
                "{case}.{name} in {dtype:?}: error {err:.3e}, tolerance {tol:.3e} (PyTorch float32 {torch:.3e})"
            ));
        }
    }
    bad
}

/// Every case whose name starts with `prefix`.
fn cases(f: &HashMap<String, Tensor>, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = f
        .keys()
        .filter_map(|k| k.strip_suffix(".y"))
        .filter(|k| k.starts_with(prefix) && !k.contains(".f32_error"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The numbers in a case name after `key`, e.g. `s2` → 2.
fn param(case: &str, key: &str) -> usize {
    case.split('_')
        .find_map(|p| p.strip_prefix(key).and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("{case}: no {key}"))
}

fn run_all(prefix: &str, op: impl Fn(&str, &HashMap<&str, Tensor>) -> candle_core::Result<Tensor>) {
    let f = fixture();
    let names = cases(&f, prefix);
    assert!(!names.is_empty(), "no case {prefix}*");
    let mut bad = Vec::new();
    for case in &names {
        for dtype in [DType::F32, DType::F64] {
            bad.extend(check(&f, case, dtype, |i| op(case, i)));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn conv2d_matches_pytorch() {
    run_all("conv_", |case, i| {
        let (s, p) = (param(case, "s"), param(case, "p"));
        ops::conv2d(&i["x"], &i["w"], Some(&i["b"]), s, p)
    });
}

#[test]
fn conv_transpose2d_matches_pytorch() {
    run_all("tconv_", |case, i| {
        let (s, p) = (param(case, "s"), param(case, "p"));
        let op = if case.contains("_op") {
            param(case, "op")
        } else {
            0
        };
        ops::conv_transpose2d(&i["x"], &i["w"], Some(&i["b"]), s, p, op)
    });
}

#[test]
fn batch_norm_then_leaky_relu_matches_pytorch_in_both_modes() {
    run_all("bn_", |case, i| {
        let bn = BatchNorm2d::new(
            i["w"].clone(),
            i["b"].clone(),
            i["mean"].clone(),
            i["var"].clone(),
        )?;
        let y = bn.forward_t(&i["x"], case.starts_with("bn_train"))?;
        ops::leaky_relu(&y, 0.2)
    });
}

#[test]
fn linear_matches_pytorch() {
    run_all("linear_", |_, i| {
        ops::linear(&i["x"], &i["w"], Some(&i["b"]))
    });
}

#[test]
fn element_wise_kernels_match_pytorch() {
    run_all("leaky_relu", |_, i| ops::leaky_relu(&i["x"], 0.2));
    run_all("relu", |_, i| ops::leaky_relu(&i["x"], 0.0));
    run_all("sigmoid", |_, i| ops::sigmoid(&i["x"]));
    run_all("upsample2", |_, i| ops::upsample_nearest2d(&i["x"], 2));
}
