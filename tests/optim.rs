//! Optimizers against PyTorch, state save/restore, validation and the object-safe interface.
//!
//! The reference trajectories in `tests/fixtures/optim.safetensors` come from
//! `tests/fixtures/make_optim_fixtures.py` (torch 2.15.0, float32): two parameters
//! (shapes [3, 4] and [5]) take 5 steps with fixed gradients under each configuration of
//! `cases()` below, which mirrors the script's `CASES` and `SKIPS`.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use vaekit::train::optim::{
    Adam, AdamParams, AdamW, AdamWParams, OptimizerConfig, OptimizerState, Rmsprop, RmspropParams,
    Sgd, SgdParams, TrainOptimizer,
};
use vaekit::Error;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

const STEPS: usize = 5;
const PARAMS: [&str; 2] = ["p0", "p1"];
const TOL: f32 = 1e-6;

/// One PyTorch configuration: its fixture name, the vaekit config, and the (step, parameter)
/// pairs at which the parameter gets no gradient.
struct Case {
    name: &'static str,
    config: OptimizerConfig,
    skips: &'static [(usize, &'static str)],
}

fn cases() -> Vec<Case> {
    use OptimizerConfig as C;
    let case = |name, config, skips| Case {
        name,
        config,
        skips,
    };
    vec![
        case("rmsprop_default", C::Rmsprop(RmspropParams::default()), &[]),
        case(
            "rmsprop_momentum_centered",
            C::Rmsprop(
                RmspropParams::default()
                    .with_momentum(0.9)
                    .with_centered(true)
                    .with_weight_decay(0.01),
            ),
            &[],
        ),
        case(
            "rmsprop_centered",
            C::Rmsprop(
                RmspropParams::default()
                    .with_lr(0.005)
                    .with_alpha(0.9)
                    .with_centered(true),
            ),
            &[],
        ),
        case(
            "rmsprop_momentum_skip",
            C::Rmsprop(RmspropParams::default().with_momentum(0.5).with_eps(1e-6)),
            &[(2, "p0")],
        ),
        case(
            "adam_default",
            C::Adam(AdamParams::default().with_lr(1e-3)),
            &[],
        ),
        case(
            "adam_weight_decay",
            C::Adam(AdamParams::default().with_weight_decay(0.1)),
            &[],
        ),
        case(
            "adam_skip",
            C::Adam(AdamParams::default().with_lr(1e-2)),
            &[(3, "p1")],
        ),
        case("adamw_default", C::AdamW(AdamWParams::default()), &[]),
        case(
            "adamw_custom",
            C::AdamW(
                AdamWParams::default()
                    .with_lr(1e-2)
                    .with_beta1(0.8)
                    .with_beta2(0.95)
                    .with_eps(1e-6)
                    .with_weight_decay(0.1),
            ),
            &[],
        ),
        case(
            "sgd_nesterov",
            C::Sgd(
                SgdParams::default()
                    .with_lr(0.1)
                    .with_momentum(0.9)
                    .with_nesterov(true),
            ),
            &[],
        ),
        case("sgd_plain", C::Sgd(SgdParams::default().with_lr(0.1)), &[]),
        case(
            "sgd_momentum_dampening_skip",
            C::Sgd(
                SgdParams::default()
                    .with_lr(0.1)
                    .with_momentum(0.9)
                    .with_dampening(0.3)
                    .with_weight_decay(0.01)
                    .with_nesterov(false),
            ),
            &[(1, "p1"), (4, "p1")],
        ),
    ]
}

fn fixture() -> candle_core::Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/optim.safetensors"
        ),
        &Device::Cpu,
    )
}

fn get<'a>(fx: &'a HashMap<String, Tensor>, name: &str) -> candle_core::Result<&'a Tensor> {
    fx.get(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("fixture has no tensor `{name}`")))
}

/// Fresh variables holding the fixture's initial values.
fn init_vars(fx: &HashMap<String, Tensor>) -> candle_core::Result<Vec<Var>> {
    PARAMS
        .iter()
        .map(|p| Var::from_tensor(get(fx, &format!("init.{p}"))?))
        .collect()
}

/// The gradients of step `k` (1-based), leaving out the case's skipped parameters.
fn grads(
    fx: &HashMap<String, Tensor>,
    vars: &[Var],
    case: &Case,
    k: usize,
) -> candle_core::Result<GradStore> {
    let mut store = GradStore::default();
    for (var, p) in vars.iter().zip(PARAMS) {
        if !case.skips.contains(&(k, p)) {
            store.insert(var.as_tensor(), get(fx, &format!("grad.{k}.{p}"))?.clone());
        }
    }
    Ok(store)
}

fn values(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

fn bits(t: &Tensor) -> candle_core::Result<Vec<u32>> {
    Ok(values(t)?.into_iter().map(f32::to_bits).collect())
}

/// Compares the vars after step `k` with PyTorch's, to `TOL` relative and absolute; returns
/// one line per mismatching element.
fn compare(
    fx: &HashMap<String, Tensor>,
    vars: &[Var],
    case: &str,
    k: usize,
) -> candle_core::Result<Vec<String>> {
    let mut bad = Vec::new();
    for (var, p) in vars.iter().zip(PARAMS) {
        let want = values(get(fx, &format!("{case}.{k}.{p}"))?)?;
        let got = values(var.as_tensor())?;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let close = (g - w).abs() <= TOL + TOL * w.abs(); // false for NaN
            if !close {
                bad.push(format!("{case} step {k} {p}[{i}]: got {g}, PyTorch {w}"));
            }
        }
    }
    Ok(bad)
}

fn assert_no_mismatch(bad: Vec<String>) {
    assert!(
        bad.is_empty(),
        "{} values differ from PyTorch:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn boxed_optimizers_match_pytorch_at_every_step() -> TestResult {
    let fx = fixture()?;
    let mut bad = Vec::new();
    for case in cases() {
        let vars = init_vars(&fx)?;
        let mut optimizer = case.config.build(vars.clone())?;
        // Sanity: the fixture moves the parameters, so the comparison can fail.
        assert_ne!(
            bits(get(&fx, "init.p0")?)?,
            bits(get(&fx, &format!("{}.{STEPS}.p0", case.name))?)?,
            "{}: PyTorch left p0 unchanged",
            case.name
        );
        for k in 1..=STEPS {
            optimizer.step(&grads(&fx, &vars, &case, k)?)?;
            bad.extend(compare(&fx, &vars, case.name, k)?);
        }
    }
    assert_no_mismatch(bad);
    Ok(())
}

/// The same values as `t` in a non-contiguous layout (a strided view).
fn strided(t: &Tensor) -> candle_core::Result<Tensor> {
    let view = Tensor::stack(&[t, t], t.rank())?
        .narrow(t.rank(), 0, 1)?
        .squeeze(t.rank())?;
    assert!(!view.is_contiguous());
    Ok(view)
}

/// Adam's in-place CPU kernels (taken for contiguous gradients) give the same bits as
/// its tensor-op path (taken otherwise, and on other devices): parameters and state.
#[test]
fn adam_fused_and_tensor_op_paths_agree_bit_for_bit() -> TestResult {
    let fx = fixture()?;
    let mut compared = 0;
    for case in cases() {
        if !matches!(
            case.config,
            OptimizerConfig::Adam(_) | OptimizerConfig::AdamW(_)
        ) {
            continue;
        }
        let (fused_vars, op_vars) = (init_vars(&fx)?, init_vars(&fx)?);
        let mut fused = case.config.build(fused_vars.clone())?;
        let mut ops = case.config.build(op_vars.clone())?;
        for k in 1..=STEPS {
            let contiguous = grads(&fx, &fused_vars, &case, k)?;
            let mut non_contiguous = GradStore::default();
            for (var, fused_var) in op_vars.iter().zip(&fused_vars) {
                if let Some(g) = contiguous.get(fused_var.as_tensor()) {
                    assert!(g.is_contiguous());
                    non_contiguous.insert(var.as_tensor(), strided(g)?);
                }
            }
            fused.step(&contiguous)?;
            ops.step(&non_contiguous)?;
            for (a, b) in fused_vars.iter().zip(&op_vars) {
                assert_eq!(bits(a)?, bits(b)?, "{} step {k}", case.name);
            }
            assert_eq!(
                state_bits(fused.as_ref())?,
                state_bits(ops.as_ref())?,
                "{} step {k}",
                case.name
            );
        }
        compared += 1;
    }
    assert!(compared >= 2, "the fixture has Adam and AdamW cases");
    Ok(())
}

/// Runs a case through candle's `Optimizer` interface of the concrete type.
fn run_candle<O: Optimizer>(
    fx: &HashMap<String, Tensor>,
    case: &Case,
    params: O::Config,
) -> candle_core::Result<Vec<String>> {
    let vars = init_vars(fx)?;
    let mut optimizer = O::new(vars.clone(), params)?;
    let mut bad = Vec::new();
    for k in 1..=STEPS {
        Optimizer::step(&mut optimizer, &grads(fx, &vars, case, k)?)?;
        bad.extend(compare(fx, &vars, case.name, k)?);
    }
    Ok(bad)
}

#[test]
fn concrete_optimizers_match_pytorch_through_candles_trait() -> TestResult {
    let fx = fixture()?;
    let mut bad = Vec::new();
    for case in cases() {
        bad.extend(match &case.config {
            OptimizerConfig::Adam(p) => run_candle::<Adam>(&fx, &case, p.clone())?,
            OptimizerConfig::AdamW(p) => run_candle::<AdamW>(&fx, &case, p.clone())?,
            OptimizerConfig::Sgd(p) => run_candle::<Sgd>(&fx, &case, p.clone())?,
            OptimizerConfig::Rmsprop(p) => run_candle::<Rmsprop>(&fx, &case, p.clone())?,
            other => panic!("no candle run for {other:?}"),
        });
    }
    assert_no_mismatch(bad);
    Ok(())
}

/// Copies of the vars' current values as new vars.
fn clone_vars(vars: &[Var]) -> candle_core::Result<Vec<Var>> {
    vars.iter()
        .map(|v| Var::from_tensor(&v.as_tensor().copy()?))
        .collect()
}

/// A state tensor as name, dtype, shape and raw bytes, for bitwise comparison.
type StateEntry = (String, DType, Vec<usize>, Vec<u8>);

fn state_bits(optimizer: &dyn TrainOptimizer) -> candle_core::Result<Vec<StateEntry>> {
    let mut state = optimizer
        .state()?
        .into_iter()
        .map(|(name, t)| {
            let bytes = match t.dtype() {
                DType::I64 => t
                    .to_vec1::<i64>()?
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                _ => bits(&t)?.iter().flat_map(|x| x.to_le_bytes()).collect(),
            };
            Ok((name, t.dtype(), t.dims().to_vec(), bytes))
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    state.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(state)
}

#[test]
fn resuming_from_saved_state_is_bit_identical() -> TestResult {
    let fx = fixture()?;
    let dir = std::env::temp_dir();
    for case in cases() {
        // The uninterrupted run.
        let vars = init_vars(&fx)?;
        let mut straight = case.config.build(vars.clone())?;
        for k in 1..=STEPS {
            straight.step(&grads(&fx, &vars, &case, k)?)?;
        }
        let want_params = vars
            .iter()
            .map(|v| bits(v))
            .collect::<Result<Vec<_>, _>>()?;
        let want_state = state_bits(straight.as_ref())?;

        for stop in 0..=STEPS {
            let vars = init_vars(&fx)?;
            let mut first = case.config.build(vars.clone())?;
            for k in 1..=stop {
                first.step(&grads(&fx, &vars, &case, k)?)?;
            }
            // Checkpoint through a safetensors file, as a trainer would.
            let path = dir.join(format!(
                "vaekit-optim-test-{}-{}-{stop}.safetensors",
                std::process::id(),
                case.name
            ));
            let state: HashMap<String, Tensor> = first.state()?.into_iter().collect();
            candle_core::safetensors::save(&state, &path)?;
            let loaded = candle_core::safetensors::load(&path, &Device::Cpu)?;
            std::fs::remove_file(&path)?;
            drop(first);

            let vars = clone_vars(&vars)?;
            let mut resumed = case.config.build(vars.clone())?;
            resumed.load_state(&loaded)?;
            for k in stop + 1..=STEPS {
                resumed.step(&grads(&fx, &vars, &case, k)?)?;
            }
            let got_params = vars
                .iter()
                .map(|v| bits(v))
                .collect::<Result<Vec<_>, _>>()?;
            assert_eq!(
                got_params, want_params,
                "{}: parameters after resuming at step {stop}",
                case.name
            );
            assert_eq!(
                state_bits(resumed.as_ref())?,
                want_state,
                "{}: optimizer state after resuming at step {stop}",
                case.name
            );
        }
    }
    Ok(())
}

#[test]
fn resuming_without_the_state_would_differ() -> TestResult {
    // Shows that the resume test above can fail: without the state, the runs part.
    let fx = fixture()?;
    for case in cases() {
        if matches!(case.name, "sgd_plain") {
            continue; // stateless apart from step counts
        }
        let vars = init_vars(&fx)?;
        let mut straight = case.config.build(vars.clone())?;
        for k in 1..=STEPS {
            straight.step(&grads(&fx, &vars, &case, k)?)?;
        }
        let restarted_vars = init_vars(&fx)?;
        let mut first = case.config.build(restarted_vars.clone())?;
        for k in 1..=2 {
            first.step(&grads(&fx, &restarted_vars, &case, k)?)?;
        }
        let restarted_vars = clone_vars(&restarted_vars)?;
        let mut fresh = case.config.build(restarted_vars.clone())?;
        for k in 3..=STEPS {
            fresh.step(&grads(&fx, &restarted_vars, &case, k)?)?;
        }
        assert_ne!(
            bits(&vars[0])?,
            bits(&restarted_vars[0])?,
            "{}: a fresh optimizer reproduced the uninterrupted run",
            case.name
        );
    }
    Ok(())
}

fn names(optimizer: &dyn TrainOptimizer) -> candle_core::Result<Vec<(String, Vec<usize>)>> {
    let mut names: Vec<_> = optimizer
        .state()?
        .into_iter()
        .map(|(name, t)| (name, t.dims().to_vec()))
        .collect();
    names.sort();
    Ok(names)
}

fn named(list: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn state_is_named_per_var_with_step_counts() -> TestResult {
    let fx = fixture()?;
    let vars = init_vars(&fx)?;
    let adam = OptimizerConfig::default().build(vars.clone())?;
    assert_eq!(
        names(adam.as_ref())?,
        named(&[
            ("adam.step", &[2]),
            ("adam.exp_avg.0", &[3, 4]),
            ("adam.exp_avg.1", &[5]),
            ("adam.exp_avg_sq.0", &[3, 4]),
            ("adam.exp_avg_sq.1", &[5]),
        ])
    );
    let rmsprop = OptimizerConfig::Rmsprop(
        RmspropParams::default()
            .with_momentum(0.9)
            .with_centered(true),
    )
    .build(vars.clone())?;
    assert_eq!(
        names(rmsprop.as_ref())?,
        named(&[
            ("rmsprop.step", &[2]),
            ("rmsprop.square_avg.0", &[3, 4]),
            ("rmsprop.square_avg.1", &[5]),
            ("rmsprop.momentum_buffer.0", &[3, 4]),
            ("rmsprop.momentum_buffer.1", &[5]),
            ("rmsprop.grad_avg.0", &[3, 4]),
            ("rmsprop.grad_avg.1", &[5]),
        ])
    );
    let sgd = OptimizerConfig::Sgd(SgdParams::default()).build(vars.clone())?;
    assert_eq!(names(sgd.as_ref())?, named(&[("sgd.step", &[2])]));
    let adamw = OptimizerConfig::AdamW(AdamWParams::default()).build(vars.clone())?;
    assert_eq!(names(adamw.as_ref())?[0].0, "adamw.exp_avg.0");

    // Step counts are per var: in `adam_skip` p1 has no gradient at step 3.
    let case = cases()
        .into_iter()
        .find(|c| c.name == "adam_skip")
        .ok_or("no adam_skip case")?;
    let mut optimizer = case.config.build(vars.clone())?;
    for k in 1..=STEPS {
        optimizer.step(&grads(&fx, &vars, &case, k)?)?;
    }
    let state: HashMap<_, _> = optimizer.state()?.into_iter().collect();
    let step = state.get("adam.step").ok_or("no adam.step")?;
    assert_eq!(step.dtype(), DType::I64);
    assert_eq!(step.to_vec1::<i64>()?, vec![5, 4]);
    Ok(())
}

#[test]
fn state_tensors_are_detached_and_vars_updated_in_place() -> TestResult {
    let fx = fixture()?;
    for case in cases() {
        let vars = init_vars(&fx)?;
        let ids: Vec<_> = vars.iter().map(|v| v.id()).collect();
        let mut optimizer = case.config.build(vars.clone())?;
        for k in 1..=2 {
            optimizer.step(&grads(&fx, &vars, &case, k)?)?;
        }
        for (name, t) in optimizer.state()? {
            assert!(
                !t.track_op(),
                "{}: `{name}` is part of an autograd graph",
                case.name
            );
        }
        let now: Vec<_> = vars.iter().map(|v| v.id()).collect();
        assert_eq!(ids, now, "{}: vars replaced instead of set", case.name);
        assert!(compare(&fx, &vars, case.name, 2)?.is_empty());
    }
    Ok(())
}

fn load_err(optimizer: &mut dyn TrainOptimizer, state: &HashMap<String, Tensor>) -> String {
    match optimizer.load_state(state) {
        Ok(()) => panic!("load_state accepted a bad state"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn load_state_checks_presence_shape_dtype_and_names_the_tensor() -> TestResult {
    let fx = fixture()?;
    let case = cases()
        .into_iter()
        .find(|c| c.name == "adam_default")
        .ok_or("no adam_default case")?;
    let vars = init_vars(&fx)?;
    let mut optimizer = case.config.build(vars.clone())?;
    optimizer.step(&grads(&fx, &vars, &case, 1)?)?;
    let good: HashMap<String, Tensor> = optimizer.state()?.into_iter().collect();
    let before = state_bits(optimizer.as_ref())?;

    let mut missing = good.clone();
    missing.remove("adam.exp_avg_sq.1");
    let msg = load_err(optimizer.as_mut(), &missing);
    assert!(
        msg.contains("`adam.exp_avg_sq.1`") && msg.contains("missing"),
        "{msg}"
    );

    let mut shape = good.clone();
    shape.insert(
        "adam.exp_avg.0".into(),
        Tensor::zeros((4, 3), DType::F32, &Device::Cpu)?,
    );
    let msg = load_err(optimizer.as_mut(), &shape);
    assert!(
        msg.contains("`adam.exp_avg.0`") && msg.contains("[3, 4]"),
        "{msg}"
    );

    let mut dtype = good.clone();
    dtype.insert(
        "adam.exp_avg.1".into(),
        Tensor::zeros(5, DType::F64, &Device::Cpu)?,
    );
    let msg = load_err(optimizer.as_mut(), &dtype);
    assert!(
        msg.contains("`adam.exp_avg.1`") && msg.contains("dtype"),
        "{msg}"
    );

    let mut step_shape = good.clone();
    step_shape.insert("adam.step".into(), Tensor::new(1i64, &Device::Cpu)?);
    let msg = load_err(optimizer.as_mut(), &step_shape);
    assert!(
        msg.contains("`adam.step`") && msg.contains("shape"),
        "{msg}"
    );

    let mut negative = good.clone();
    negative.insert("adam.step".into(), Tensor::new(&[1i64, -1], &Device::Cpu)?);
    let msg = load_err(optimizer.as_mut(), &negative);
    assert!(
        msg.contains("`adam.step`") && msg.contains("non-negative"),
        "{msg}"
    );

    let mut extra = good.clone();
    extra.insert(
        "adam.exp_avg.2".into(),
        Tensor::zeros(5, DType::F32, &Device::Cpu)?,
    );
    let msg = load_err(optimizer.as_mut(), &extra);
    assert!(msg.contains("`adam.exp_avg.2`"), "{msg}");

    // Another optimizer's state is refused by name.
    let mut adamw = OptimizerConfig::AdamW(AdamWParams::default()).build(vars.clone())?;
    let msg = load_err(adamw.as_mut(), &good);
    assert!(msg.contains("`adamw.step`"), "{msg}");

    // Failed loads changed nothing; unrelated entries (model weights) are ignored.
    assert_eq!(state_bits(optimizer.as_ref())?, before);
    let mut with_model = good.clone();
    with_model.insert(
        "encoder.fc.weight".into(),
        Tensor::zeros(2, DType::F32, &Device::Cpu)?,
    );
    optimizer.load_state(&with_model)?;
    assert_eq!(state_bits(optimizer.as_ref())?, before);
    Ok(())
}

/// The `field` of a [`Error::Config`], or a description of what came instead.
fn config_field(result: vaekit::Result<()>) -> String {
    match result {
        Err(Error::Config { field, .. }) => field,
        Err(other) => format!("not a config error: {other}"),
        Ok(()) => "accepted".into(),
    }
}

#[test]
fn validation_errors_name_the_field() -> TestResult {
    use OptimizerConfig as C;
    let adam = AdamParams::default();
    let adamw = AdamWParams::default();
    let sgd = SgdParams::default();
    let rms = RmspropParams::default();
    let bad: Vec<(C, &str)> = vec![
        (C::Adam(adam.clone().with_lr(0.0)), "adam.lr"),
        (C::Adam(adam.clone().with_lr(-1e-3)), "adam.lr"),
        (C::Adam(adam.clone().with_lr(f64::NAN)), "adam.lr"),
        (C::Adam(adam.clone().with_lr(f64::INFINITY)), "adam.lr"),
        (C::Adam(adam.clone().with_beta1(1.0)), "adam.beta1"),
        (C::Adam(adam.clone().with_beta1(-0.1)), "adam.beta1"),
        (C::Adam(adam.clone().with_beta2(f64::NAN)), "adam.beta2"),
        (C::Adam(adam.clone().with_eps(-1e-8)), "adam.eps"),
        (
            C::Adam(adam.clone().with_weight_decay(-0.1)),
            "adam.weight_decay",
        ),
        (C::AdamW(adamw.clone().with_lr(0.0)), "adamw.lr"),
        (C::AdamW(adamw.clone().with_beta2(1.5)), "adamw.beta2"),
        (C::AdamW(adamw.clone().with_eps(f64::INFINITY)), "adamw.eps"),
        (
            C::AdamW(adamw.clone().with_weight_decay(f64::NAN)),
            "adamw.weight_decay",
        ),
        (C::Sgd(sgd.clone().with_lr(f64::NAN)), "sgd.lr"),
        (C::Sgd(sgd.clone().with_momentum(-0.9)), "sgd.momentum"),
        (C::Sgd(sgd.clone().with_dampening(1.5)), "sgd.dampening"),
        (
            C::Sgd(sgd.clone().with_weight_decay(-1.0)),
            "sgd.weight_decay",
        ),
        (C::Sgd(sgd.clone().with_nesterov(true)), "sgd.nesterov"),
        (
            C::Sgd(
                sgd.clone()
                    .with_nesterov(true)
                    .with_momentum(0.9)
                    .with_dampening(0.1),
            ),
            "sgd.nesterov",
        ),
        (C::Rmsprop(rms.clone().with_lr(-0.01)), "rmsprop.lr"),
        (C::Rmsprop(rms.clone().with_alpha(1.0)), "rmsprop.alpha"),
        (C::Rmsprop(rms.clone().with_eps(-1.0)), "rmsprop.eps"),
        (
            C::Rmsprop(rms.clone().with_weight_decay(-1.0)),
            "rmsprop.weight_decay",
        ),
        (
            C::Rmsprop(rms.clone().with_momentum(f64::NAN)),
            "rmsprop.momentum",
        ),
    ];
    let vars = vec![Var::zeros(3, DType::F32, &Device::Cpu)?];
    for (config, field) in bad {
        assert_eq!(config_field(config.validate()), field, "{config:?}");
        assert_eq!(
            config_field(config.build(vars.clone()).map(drop)),
            field,
            "{config:?}"
        );
        // candle's `Optimizer::new` refuses with the same message.
        let want = config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let got = match &config {
            C::Adam(p) => Adam::new(vars.clone(), p.clone()).map(drop),
            C::AdamW(p) => AdamW::new(vars.clone(), p.clone()).map(drop),
            C::Sgd(p) => Sgd::new(vars.clone(), p.clone()).map(drop),
            C::Rmsprop(p) => Rmsprop::new(vars.clone(), p.clone()).map(drop),
            other => panic!("no constructor for {other:?}"),
        };
        let got = got.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(want.contains(field), "{want}");
        assert_eq!(got, want, "{config:?}");
    }
    // The edges of the ranges are accepted.
    let good = [
        C::Adam(adam.with_beta1(0.0).with_beta2(0.0).with_eps(0.0)),
        C::Sgd(sgd.with_dampening(1.0).with_momentum(0.5)),
        C::Rmsprop(rms.with_alpha(0.0).with_momentum(0.0)),
        C::AdamW(adamw),
    ];
    for config in good {
        config.validate()?;
    }
    Ok(())
}

#[test]
fn defaults_are_pytorchs() {
    assert_eq!(
        AdamParams::default(),
        AdamParams::default()
            .with_lr(1e-3)
            .with_beta1(0.9)
            .with_beta2(0.999)
            .with_eps(1e-8)
            .with_weight_decay(0.0)
    );
    assert_eq!(
        AdamWParams::default(),
        AdamWParams::default()
            .with_lr(1e-3)
            .with_beta1(0.9)
            .with_beta2(0.999)
            .with_eps(1e-8)
            .with_weight_decay(0.01)
    );
    assert_eq!(
        SgdParams::default(),
        SgdParams::default()
            .with_lr(1e-3)
            .with_momentum(0.0)
            .with_dampening(0.0)
            .with_weight_decay(0.0)
            .with_nesterov(false)
    );
    assert_eq!(
        RmspropParams::default(),
        RmspropParams::default()
            .with_lr(1e-2)
            .with_alpha(0.99)
            .with_eps(1e-8)
            .with_weight_decay(0.0)
            .with_momentum(0.0)
            .with_centered(false)
    );
    assert_eq!(
        OptimizerConfig::default(),
        OptimizerConfig::Adam(AdamParams::default())
    );
}

#[test]
fn config_reads_and_writes_json() -> TestResult {
    for case in cases() {
        let json = serde_json::to_string(&case.config)?;
        let back: OptimizerConfig = serde_json::from_str(&json)?;
        assert_eq!(back, case.config, "{json}");
    }
    let adamw: OptimizerConfig = serde_json::from_str(r#"{"kind": "adamw", "lr": 0.01}"#)?;
    assert_eq!(
        adamw,
        OptimizerConfig::AdamW(AdamWParams::default().with_lr(0.01))
    );
    let rms: OptimizerConfig = serde_json::from_str(r#"{"kind": "rmsprop", "centered": true}"#)?;
    assert_eq!(
        rms,
        OptimizerConfig::Rmsprop(RmspropParams::default().with_centered(true))
    );
    let json = serde_json::to_value(OptimizerConfig::default())?;
    assert_eq!(json["kind"], "adam");
    assert_eq!(json["weight_decay"], 0.0);
    // A misspelt field or an unknown optimizer is an error, not a silent default.
    assert!(
        serde_json::from_str::<OptimizerConfig>(r#"{"kind": "adam", "learning_rate": 1}"#).is_err()
    );
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"kind": "lbfgs"}"#).is_err());
    Ok(())
}

#[test]
fn boxed_optimizers_train_and_change_learning_rate() -> TestResult {
    let configs = [
        OptimizerConfig::Adam(AdamParams::default().with_lr(0.1)),
        OptimizerConfig::AdamW(AdamWParams::default().with_lr(0.1)),
        OptimizerConfig::Sgd(SgdParams::default().with_lr(0.1).with_momentum(0.5)),
        OptimizerConfig::Rmsprop(RmspropParams::default().with_lr(0.05)),
    ];
    for config in configs {
        // Minimise |w - target|^2.
        let w = Var::zeros(4, DType::F32, &Device::Cpu)?;
        let target = Tensor::new(&[1f32, -2., 0.5, 3.], &Device::Cpu)?;
        let mut optimizer: Box<dyn TrainOptimizer> = config.build(vec![w.clone()])?;
        assert_eq!(optimizer.learning_rate(), config.learning_rate());
        let loss = |w: &Var| w.as_tensor().sub(&target)?.sqr()?.sum_all();
        let start = loss(&w)?.to_scalar::<f32>()?;
        for _ in 0..100 {
            optimizer.backward_step(&loss(&w)?)?;
        }
        let end = loss(&w)?.to_scalar::<f32>()?;
        assert!(end < 0.05 * start, "{config:?}: loss {start} -> {end}");

        optimizer.set_learning_rate(0.0);
        assert_eq!(optimizer.learning_rate(), 0.0);
        let before = bits(&w)?;
        optimizer.backward_step(&loss(&w)?)?;
        assert_eq!(bits(&w)?, before, "{config:?}: lr 0 moved the parameters");
    }
    Ok(())
}

#[test]
fn non_float_vars_are_skipped_but_keep_their_index() -> TestResult {
    let a = Var::ones(2, DType::F32, &Device::Cpu)?;
    let counter = Var::zeros(1, DType::U32, &Device::Cpu)?;
    let c = Var::ones(3, DType::F32, &Device::Cpu)?;
    let mut optimizer = Adam::new(
        vec![a.clone(), counter.clone(), c.clone()],
        Default::default(),
    )?;
    let mut grads = GradStore::default();
    grads.insert(a.as_tensor(), Tensor::ones(2, DType::F32, &Device::Cpu)?);
    grads.insert(c.as_tensor(), Tensor::ones(3, DType::F32, &Device::Cpu)?);
    Optimizer::step(&mut optimizer, &grads)?;
    let state: HashMap<_, _> = optimizer.state()?.into_iter().collect();
    let mut keys: Vec<_> = state.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "adam.exp_avg.0",
            "adam.exp_avg.2",
            "adam.exp_avg_sq.0",
            "adam.exp_avg_sq.2",
            "adam.step"
        ]
    );
    let step = state.get("adam.step").ok_or("no adam.step")?;
    assert_eq!(step.to_vec1::<i64>()?, vec![1, 0, 1]);
    assert_eq!(values(&c)?, vec![0.999; 3]);
    Ok(())
}

#[test]
fn half_precision_small_learning_rate_stays_finite() -> TestResult {
    // At step 1 Adam's folded denominator scale is about 3.2 / lr, beyond f16's range for
    // lr = 1e-5; the update must still come out as -lr per element.
    let w = Var::zeros(3, DType::F16, &Device::Cpu)?;
    let mut optimizer = Adam::new(vec![w.clone()], AdamParams::default().with_lr(1e-5))?;
    let mut grads = GradStore::default();
    grads.insert(w.as_tensor(), Tensor::ones(3, DType::F16, &Device::Cpu)?);
    Optimizer::step(&mut optimizer, &grads)?;
    for x in w.as_tensor().to_dtype(DType::F32)?.to_vec1::<f32>()? {
        assert!((x + 1e-5).abs() < 1e-7, "got {x}");
    }
    Ok(())
}

#[test]
fn mismatched_gradient_is_an_error() -> TestResult {
    let w = Var::zeros((2, 3), DType::F32, &Device::Cpu)?;
    let mut grads = GradStore::default();
    grads.insert(
        w.as_tensor(),
        Tensor::ones((3, 2), DType::F32, &Device::Cpu)?,
    );
    for config in [
        OptimizerConfig::Adam(Default::default()),
        OptimizerConfig::AdamW(Default::default()),
        OptimizerConfig::Sgd(SgdParams::default().with_momentum(0.9)),
        OptimizerConfig::Rmsprop(Default::default()),
    ] {
        let mut optimizer = config.build(vec![w.clone()])?;
        assert!(optimizer.step(&grads).is_err(), "{config:?}");
    }
    Ok(())
}
