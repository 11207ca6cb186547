//! Parity with PyTorch: every preset's forward outputs, loss terms and parameter
//! gradients match those of the same architecture in PyTorch on the same weights,
//! inputs and noise (fixtures written by `tests/fixtures/make_fixtures.py`).

mod common;

use candle_core::{DType, Device, Tensor};
use common::{assert_close, load_fixture, with_prefix};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::Batch;
use vaekit::models::{Conditioning, Mode, Model, Preset, Trainable};

const REL: f64 = 1e-4;

/// A preset model with the fixture's weights loaded.
fn model_with_fixture(
    config: &vaekit::models::ModelConfig,
    fixture: &str,
) -> (Model, std::collections::HashMap<String, Tensor>) {
    let dev = Device::Cpu;
    let f = load_fixture(fixture, &dev);
    let model = Model::new(config, &dev, 0).expect("model");
    model
        .params()
        .assign(&with_prefix(&f, "param"))
        .expect("fixture weights fit the preset");
    (model, f)
}

/// Compares the gradient of `total` for every trainable parameter with the
/// fixture's `grad.*`, and checks the fixture has no gradient we lack.
fn check_grads(
    model: &Model,
    total: &Tensor,
    f: &std::collections::HashMap<String, Tensor>,
    near_zero: &[&str],
) {
    let grads = total.backward().expect("backward");
    let expected = with_prefix(f, "grad");
    let mut seen = 0;
    for (name, var) in model.params().named_vars() {
        if vaekit::params::is_buffer(&name) {
            continue;
        }
        let Some(e) = expected.get(&name) else {
            assert!(
                grads.get(var.as_tensor()).is_none(),
                "{name}: a gradient where PyTorch has none"
            );
            continue;
        };
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        if near_zero.contains(&name.as_str()) {
            // In exact arithmetic this gradient is zero (a conv bias just before
            // batch norm cancels out); both frameworks leave rounding noise only.
            let m = common::values(g).iter().fold(0f64, |m, v| m.max(v.abs()));
            assert!(m < 1e-3, "{name}: expected ~0, got max |g| = {m}");
        } else {
            assert_close(&format!("grad {name}"), g, e, REL, 0.0);
        }
        seen += 1;
    }
    assert_eq!(seen, expected.len(), "every PyTorch gradient was compared");
}

fn out(f: &std::collections::HashMap<String, Tensor>, name: &str) -> Tensor {
    f.get(&format!("output.{name}"))
        .unwrap_or_else(|| panic!("fixture lacks output.{name}"))
        .clone()
}

fn input(f: &std::collections::HashMap<String, Tensor>, name: &str) -> Tensor {
    f.get(&format!("input.{name}"))
        .unwrap_or_else(|| panic!("fixture lacks input.{name}"))
        .clone()
}

fn check_vae(
    preset: Preset,
    fixture: &str,
    near_zero: &[&str],
) -> (Model, std::collections::HashMap<String, Tensor>) {
    let (model, f) = model_with_fixture(&preset.config(), fixture);
    let (x, eps) = (input(&f, "x"), input(&f, "eps"));
    let vae = model.as_vae().expect("a VAE preset");
    let o = vae.forward_with_eps(&x, &eps, true).unwrap();
    assert_close("mean", o.posterior.mean(), &out(&f, "mean"), REL, 0.0);
    assert_close("logvar", o.posterior.logvar(), &out(&f, "logvar"), REL, 0.0);
    assert_close("z", &o.z, &out(&f, "z"), REL, 0.0);
    assert_close("decoded", &o.decoded, &out(&f, "decoded"), REL, 0.0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let elbo = vae.loss(&o, &x, &mut rng).unwrap();
    assert_close(
        "reconstruction",
        &elbo.reconstruction,
        &out(&f, "reconstruction"),
        REL,
        0.0,
    );
    assert_close("total", &elbo.total, &out(&f, "total"), REL, 0.0);
    // The KL may be a small difference of large terms (the single-sample
    // estimate): compare it at the scale of the terms it comes from.
    let kl_floor = common::scalar(&out(&f, "reconstruction")).abs() * 1e-3;
    assert_close("kl", &elbo.kl, &out(&f, "kl"), REL, kl_floor);
    check_grads(&model, &elbo.total, &f, near_zero);
    (model, f)
}

#[test]
fn cvae_tf_matches_pytorch() {
    check_vae(Preset::CvaeTf, "tf_cvae.safetensors", &[]);
}

#[test]
#[cfg_attr(
    not(vaekit_fixtures),
    ignore = "needs the large PyTorch fixtures, which the published crate leaves out: run it from the repository"
)]
fn dense_vae_matches_pytorch() {
    check_vae(Preset::DenseVae, "dense_vae.safetensors", &[]);
}

#[test]
#[cfg_attr(
    not(vaekit_fixtures),
    ignore = "needs the large PyTorch fixtures, which the published crate leaves out: run it from the repository"
)]
fn conv_vae_bn_matches_pytorch_in_training_and_evaluation() {
    let biases = [
        "encoder.blocks.0.conv.bias",
        "encoder.blocks.1.conv.bias",
        "encoder.blocks.2.conv.bias",
    ];
    let (model, f) = check_vae(Preset::ConvVaeBn, "conv_vae_bn.safetensors", &biases);
    // The training forward updated the running statistics as PyTorch does.
    let after = with_prefix(&f, "buffer_after");
    assert_eq!(after.len(), 6);
    for (name, expected) in &after {
        let v = model
            .params()
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_close(name, v.as_tensor(), expected, REL, 0.0);
    }
    // Evaluation uses those running statistics.
    let vae = model.as_vae().expect("a VAE preset");
    let o = vae
        .forward_with_eps(&input(&f, "x"), &input(&f, "eps"), false)
        .unwrap();
    assert_close(
        "eval decoded",
        &o.decoded,
        &out(&f, "eval_decoded"),
        REL,
        0.0,
    );
}

#[test]
fn conv_ae_matches_pytorch() {
    let (model, f) = model_with_fixture(&Preset::ConvAe.config(), "conv_ae.safetensors");
    let x = input(&f, "x");
    let ae = model.as_autoencoder().expect("conv-ae is an autoencoder");
    let o = ae.forward_t(&x, true).unwrap();
    assert_close("code", &o.code, &out(&f, "code"), REL, 0.0);
    assert_close("decoded", &o.decoded, &out(&f, "decoded"), REL, 0.0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let labels = Tensor::zeros(x.dim(0).unwrap(), DType::U32, x.device()).unwrap();
    let terms = model
        .batch_loss(&Batch::new(x.clone(), labels), &mut rng, Mode::Train)
        .unwrap();
    assert_close(
        "reconstruction",
        &terms.terms[0].value,
        &out(&f, "reconstruction"),
        REL,
        0.0,
    );
    assert_close("total", &terms.total, &out(&f, "total"), REL, 0.0);
    check_grads(&model, &terms.total, &f, &[]);
}

fn check_digit(conditioning: Conditioning, fixture: &str) {
    let config = vaekit::models::presets::digit_cvae(10, conditioning);
    let (model, f) = model_with_fixture(&config, fixture);
    let (x, eps, labels) = (input(&f, "x"), input(&f, "eps"), input(&f, "labels"));
    let m = model.as_digit_cvae().expect("digit-cvae");
    let o = m.forward_with_eps(&x, Some(&labels), &eps, true).unwrap();
    assert_close("mean", o.posterior.mean(), &out(&f, "mean"), REL, 0.0);
    assert_close("logvar", o.posterior.logvar(), &out(&f, "logvar"), REL, 0.0);
    assert_close("z", &o.z, &out(&f, "z"), REL, 0.0);
    assert_close("decoded", &o.decoded, &out(&f, "decoded"), REL, 0.0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let l = m.loss(&o, &x, &labels, &mut rng).unwrap();
    assert_close(
        "reconstruction",
        &l.reconstruction,
        &out(&f, "reconstruction"),
        REL,
        0.0,
    );
    assert_close("kl", &l.kl, &out(&f, "kl"), REL, 0.0);
    assert_close("total", &l.total, &out(&f, "total"), REL, 0.0);
    match conditioning {
        Conditioning::Predicted => {
            assert_close(
                "class logits",
                o.class_logits.as_ref().unwrap(),
                &out(&f, "class_logits"),
                REL,
                0.0,
            );
            assert_close(
                "classification",
                l.classification.as_ref().unwrap(),
                &out(&f, "classification"),
                REL,
                0.0,
            );
        }
        Conditioning::Given => assert!(l.classification.is_none()),
        other => panic!("no fixture for {other:?}"),
    }
    check_grads(&model, &l.total, &f, &[]);
}

#[test]
#[cfg_attr(
    not(vaekit_fixtures),
    ignore = "needs the large PyTorch fixtures, which the published crate leaves out: run it from the repository"
)]
fn digit_cvae_matches_pytorch() {
    check_digit(Conditioning::Predicted, "digit_cvae.safetensors");
}

#[test]
#[cfg_attr(
    not(vaekit_fixtures),
    ignore = "needs the large PyTorch fixtures, which the published crate leaves out: run it from the repository"
)]
fn digit_cvae_with_given_labels_matches_pytorch() {
    check_digit(Conditioning::Given, "digit_cvae_given.safetensors");
}
