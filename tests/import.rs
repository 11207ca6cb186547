//! PyTorch `state_dict` import: `state_dict`s saved by the reference PyTorch
//! models (`torch.save` and safetensors files, float32 and float16, written by
//! `tests/fixtures/make_state_dict_fixtures.py`) load into the matching preset
//! with the ready-made rename maps, and vaekit then computes the reference's
//! outputs; a `state_dict` that does not fit is refused with every problem
//! named at once.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, ModuleT, Tensor};
use common::{assert_close, fixture_path, load_fixture, temp_dir, values};
use vaekit::models::{Condition, Model, Preset};
use vaekit::params::{import_state_dict, ImportReport, RenameMap, SourceTensor, TensorMismatch};
use vaekit::Error;

/// 1e-4 of each tensor's largest value, as in `tests/parity.rs`.
const REL: f64 = 1e-4;

/// The reference outputs of `model` (`dense_vae`, `cvae_tf`, …), without the prefix.
fn reference(model: &str) -> HashMap<String, Tensor> {
    common::with_prefix(
        &load_fixture("state_dict_outputs.safetensors", &Device::Cpu),
        model,
    )
}

/// `preset` built from another seed, with the fixture `state_dict` loaded.
fn imported(preset: Preset, file: &str, map: &RenameMap) -> (Model, ImportReport) {
    let model = Model::from_preset(preset, &Device::Cpu, 7).expect("preset");
    let report = model
        .params()
        .load_state_dict(fixture_path(file), map)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(report.is_ok(), "{report}");
    (model, report)
}

/// Compares a VAE's posterior and decoder output on the reference's input.
fn check_vae(model: &Model, r: &HashMap<String, Tensor>) {
    let vae = model.as_vae().expect("a VAE preset");
    let q = vae.posterior(&r["x"], false).expect("posterior");
    assert_close("mean", q.mean(), &r["mean"], REL, 0.0);
    assert_close("logvar", q.logvar(), &r["logvar"], REL, 0.0);
    let decoded = vae.decoder().forward_t(q.mean(), false).expect("decode");
    assert_close("decoded", &decoded, &r["decoded"], REL, 0.0);
    let pixels = model
        .reconstruct(&r["x"], Condition::None)
        .expect("reconstruct");
    // vaekit's pixels clamp a linear output to [0, 1]; the reference's
    // reconstruction does not (the others are sigmoids already).
    let expected = r["reconstruction"].clamp(0f32, 1f32).expect("clamp");
    assert_close("reconstruction", &pixels, &expected, REL, 0.0);
}

#[test]
fn dense_vae_imports_a_half_precision_torch_save_file() {
    let (model, report) = imported(
        Preset::DenseVae,
        "state_dict_dense_vae.pt",
        &RenameMap::dense_vae(),
    );
    assert!(report.ignored.is_empty());
    // The file is float16; the model keeps float32.
    let w = model.params().get("encoder.out.weight").expect("weight");
    assert_eq!((w.dtype(), w.dims()), (DType::F32, &[4, 256][..]));
    check_vae(&model, &reference("dense_vae"));
}

#[test]
fn cvae_tf_imports_a_torch_save_file() {
    let (model, _) = imported(
        Preset::CvaeTf,
        "state_dict_cvae_tf.pt",
        &RenameMap::cvae_tf(),
    );
    check_vae(&model, &reference("cvae_tf"));
}

#[test]
#[cfg_attr(
    not(vaekit_fixtures),
    ignore = "needs the large PyTorch fixtures, which the published crate leaves out: run it from the repository"
)]
fn conv_vae_bn_imports_safetensors_with_batch_norm_statistics() {
    let (model, report) = imported(
        Preset::ConvVaeBn,
        "state_dict_conv_vae_bn.safetensors",
        &RenameMap::conv_vae_bn(),
    );
    assert_eq!(
        report.ignored,
        [
            "encoder.1.num_batches_tracked",
            "encoder.4.num_batches_tracked",
            "encoder.7.num_batches_tracked"
        ]
    );
    check_vae(&model, &reference("conv_vae_bn"));
}

#[test]
fn digit_cvae_imports_a_torch_save_file() {
    let (model, _) = imported(
        Preset::DigitCvae,
        "state_dict_digit_cvae.pt",
        &RenameMap::digit_cvae(),
    );
    let r = reference("digit_cvae");
    let x = &r["x"];
    let cvae = model.as_vae().expect("digit-cvae");
    let q = cvae.posterior(x, false).expect("posterior");
    assert_close("mean", q.mean(), &r["mean"], REL, 0.0);
    // The reference reads its second head as log σ²; the preset reads it as
    // σ² = 1e-5 + exp(·), the digit-conditioned tutorial's floor.
    let floored = (r["logvar"].exp().unwrap() + 1e-5).unwrap().log().unwrap();
    assert_close("logvar", q.logvar(), &floored, REL, 0.0);
    let logits = model.classify(x).expect("classify").expect("a classifier");
    assert_close("class logits", &logits, &r["class_logits"], REL, 0.0);
    let pixels = model.reconstruct(x, Condition::None).expect("reconstruct");
    assert_close("reconstruction", &pixels, &r["reconstruction"], REL, 0.0);
}

#[test]
fn conv_ae_imports_safetensors() {
    let (model, _) = imported(
        Preset::ConvAe,
        "state_dict_conv_ae.safetensors",
        &RenameMap::conv_ae(),
    );
    let r = reference("conv_ae");
    let code = model.encode(&r["x"]).expect("encode");
    assert_close("code", &code, &r["code"], REL, 0.0);
    let pixels = model
        .reconstruct(&r["x"], Condition::None)
        .expect("reconstruct");
    assert_close("reconstruction", &pixels, &r["reconstruction"], REL, 0.0);
}

/// Writes `tensors` to `dir/name` as safetensors and returns the path.
fn write(dir: &Path, name: &str, tensors: &BTreeMap<String, Tensor>) -> PathBuf {
    let path = dir.join(name);
    vaekit::params::write_checkpoint(&path, tensors, &BTreeMap::new()).expect("write");
    path
}

/// The dense VAE's `state_dict` in the reference's names, from a vaekit model's
/// weights (the encoder output split into `fc_mu` and `fc_logvar`).
fn dense_vae_state_dict(model: &Model) -> BTreeMap<String, Tensor> {
    let w = model.params().snapshot();
    let t = |n: &str| w[n].copy().expect("copy");
    BTreeMap::from([
        ("enc.weight".into(), t("encoder.hidden.0.weight")),
        ("enc.bias".into(), t("encoder.hidden.0.bias")),
        (
            "fc_mu.weight".into(),
            t("encoder.out.weight").narrow(0, 0, 2).unwrap(),
        ),
        (
            "fc_mu.bias".into(),
            t("encoder.out.bias").narrow(0, 0, 2).unwrap(),
        ),
        (
            "fc_logvar.weight".into(),
            t("encoder.out.weight").narrow(0, 2, 2).unwrap(),
        ),
        (
            "fc_logvar.bias".into(),
            t("encoder.out.bias").narrow(0, 2, 2).unwrap(),
        ),
        ("dec1.weight".into(), t("decoder.hidden.0.weight")),
        ("dec1.bias".into(), t("decoder.hidden.0.bias")),
        ("dec2.weight".into(), t("decoder.out.weight")),
        ("dec2.bias".into(), t("decoder.out.bias")),
    ])
}

/// A fresh scratch folder `scratch`, a dense VAE, and its `state_dict` in the
/// reference's names with `name` set to `tensor`, written there.
fn written_with(scratch: &str, name: &str, tensor: Tensor) -> (PathBuf, Model, PathBuf) {
    let dir = temp_dir(scratch);
    let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 1).expect("preset");
    let mut sd = dense_vae_state_dict(&model);
    sd.insert(name.into(), tensor);
    let path = write(&dir, "sd.safetensors", &sd);
    (dir, model, path)
}

#[test]
fn stacked_heads_round_trip_mean_rows_over_log_variance_rows() {
    let dir = temp_dir("import-round-trip");
    let source = Model::from_preset(Preset::DenseVae, &Device::Cpu, 1).expect("preset");
    let path = write(&dir, "sd.safetensors", &dense_vae_state_dict(&source));
    let target = Model::from_preset(Preset::DenseVae, &Device::Cpu, 2).expect("preset");
    let before = values(&target.params().snapshot()["encoder.out.weight"]);
    target
        .params()
        .load_state_dict(&path, &RenameMap::dense_vae())
        .expect("import");
    let (a, b) = (source.params().snapshot(), target.params().snapshot());
    assert_ne!(
        before,
        values(&a["encoder.out.weight"]),
        "seeds 1 and 2 differ"
    );
    for (name, t) in &a {
        assert_eq!(values(t), values(&b[name]), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_state_dict_that_does_not_fit_names_every_problem_and_changes_nothing() {
    let dir = temp_dir("import-report");
    let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 1).expect("preset");
    let mut sd = dense_vae_state_dict(&model);
    sd.remove("fc_logvar.bias");
    sd.remove("dec2.bias");
    sd.insert(
        "extra.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    sd.insert(
        "dec1.weight".into(),
        Tensor::zeros((256, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    sd.insert(
        "fc_mu.weight".into(),
        Tensor::zeros((2, 255), DType::F32, &Device::Cpu).unwrap(),
    );
    let path = write(&dir, "bad.safetensors", &sd);
    let before = model.params().snapshot();
    let before: Vec<Vec<f64>> = before.values().map(values).collect();

    let err = model
        .params()
        .load_state_dict(&path, &RenameMap::dense_vae())
        .expect_err("a state_dict that does not fit");
    let Error::StateDict { report, .. } = &err else {
        panic!("expected Error::StateDict, got {err}");
    };
    let missing: Vec<(&str, Vec<&str>)> = report
        .missing
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.absent.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        missing,
        [
            ("decoder.out.bias", vec!["dec2.bias"]),
            ("encoder.out.bias", vec!["fc_logvar.bias"]),
        ]
    );
    assert_eq!(report.unused, ["extra.weight"]);
    let f32 = |name: &str, shape: &[usize]| SourceTensor {
        name: name.into(),
        dtype: DType::F32,
        shape: shape.to_vec(),
    };
    assert_eq!(
        report.mismatched,
        [
            TensorMismatch {
                name: "decoder.hidden.0.weight".into(),
                expected: vec![256, 2],
                found: vec![f32("dec1.weight", &[256, 3])],
            },
            TensorMismatch {
                name: "encoder.out.weight".into(),
                expected: vec![4, 256],
                found: vec![
                    f32("fc_mu.weight", &[2, 255]),
                    f32("fc_logvar.weight", &[2, 256])
                ],
            },
        ]
    );
    // One message names them all, shapes included.
    let msg = err.to_string();
    for needle in [
        "`decoder.out.bias` (the file has no `dec2.bias`)",
        "`encoder.out.bias` (the file has no `fc_logvar.bias`)",
        "1 unused: `extra.weight`",
        "`decoder.hidden.0.weight` needs a float tensor of shape [256, 2], the file has `dec1.weight` F32 [256, 3]",
        "`fc_mu.weight` F32 [2, 255] stacked over `fc_logvar.weight` F32 [2, 256]",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
    let after: Vec<Vec<f64>> = model.params().snapshot().values().map(values).collect();
    assert_eq!(before, after, "nothing was written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn integer_tensors_do_not_fit_float_weights() {
    let zeros = Tensor::zeros(784, DType::I64, &Device::Cpu).unwrap();
    let (dir, model, path) = written_with("import-dtype", "dec2.bias", zeros);
    let sd = import_state_dict(&path, &RenameMap::dense_vae()).expect("readable");
    let expected = model.params().shapes();
    let report = sd.check(&expected);
    assert!(report.missing.is_empty() && report.unused.is_empty());
    assert_eq!(report.mismatched.len(), 1);
    assert_eq!(report.mismatched[0].name, "decoder.out.bias");
    assert_eq!(report.mismatched[0].found[0].dtype, DType::I64);
    assert!(sd.tensors_for(&expected, DType::F32).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_map_that_sends_two_tensors_to_one_name_is_an_error() {
    let map = RenameMap::dense_vae().rename("dec1.bias", "decoder.out.bias");
    let err = import_state_dict(fixture_path("state_dict_dense_vae.pt"), &map)
        .expect_err("two tensors, one name");
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "rename_map"),
        "{msg}"
    );
    assert!(msg.contains("`decoder.out.bias`"), "{msg}");
    assert!(
        msg.contains("`dec1.bias`") && msg.contains("`dec2.bias`"),
        "{msg}"
    );
}

#[test]
fn unreadable_files_are_errors_not_panics() {
    let dir = temp_dir("import-unreadable");
    let pt = std::fs::read(fixture_path("state_dict_cvae_tf.pt")).expect("fixture");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "truncated.pt",
            pt[..pt.len() / 2].to_vec(),
            "not a readable torch.save file",
        ),
        (
            "legacy.pt",
            vec![0x80, 0x02, 0x8a, 0x0a, 0x6c],
            "legacy (non-zip) format",
        ),
        (
            "text.pt",
            b"not a checkpoint".to_vec(),
            "not a valid safetensors file",
        ),
        ("empty.pt", Vec::new(), "not a valid safetensors file"),
    ];
    for (name, bytes, reason) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let err = import_state_dict(&path, &RenameMap::cvae_tf()).expect_err(name);
        assert!(
            matches!(err, Error::Checkpoint { .. }) && err.to_string().contains(reason),
            "{name}: {err}"
        );
    }
    let err = import_state_dict(dir.join("absent.pt"), &RenameMap::new()).expect_err("absent");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ignore_rules_drop_tensors_on_purpose() {
    let zeros = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let (dir, model, path) = written_with("import-ignore", "head.weight", zeros);
    let map = RenameMap::dense_vae();
    let err = model
        .params()
        .load_state_dict(&path, &map)
        .expect_err("unused head");
    assert!(err.to_string().contains("1 unused: `head.weight`"), "{err}");
    let report = model
        .params()
        .load_state_dict(&path, &map.ignore("head"))
        .expect("head ignored");
    assert_eq!(report.ignored, ["head.weight"]);
    let _ = std::fs::remove_dir_all(&dir);
}
