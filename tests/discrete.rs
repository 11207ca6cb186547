//! Discrete latents: the vector quantiser and the VQ-VAE, and the
//! Gumbel-softmax VAE.
//!
//! Against PyTorch (`tests/fixtures/make_vq_fixtures.py`, float64 truths from
//! float32 inputs): nearest-code indices, the straight-through output, the
//! codebook and commitment losses and their gradients, three EMA steps, and a
//! small VQ-VAE's loss terms and every gradient; float32 within 10× PyTorch's
//! own float32 error (at least ε_f32, at most 1e-4), float64 within 1e-9.
//! Then: training on real digits, perplexity and codes used in the history,
//! seeded restarts, checkpoints that keep the codebook and EMA state, a
//! bit-identical resume, the fitted prior, and bad input.
//!
//! The Gumbel-softmax VAE against PyTorch (`make_gumbel_fixtures.py`, with
//! `F.gumbel_softmax` given the noise): relaxed and straight-through samples
//! and their gradients, the KL to the uniform categorical, and a small
//! model's loss and gradients in both relaxations; the temperature schedule,
//! importance weights that converge to the exact likelihood of a model small
//! enough to sum, training on digits, and bad input.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use common::{error_against, fixture_path, fixture_tolerance, head, temp_dir, values};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::{Batch, Mnist};
use vaekit::latent::{
    vector_quantizer, CodePrior, CodebookUpdate, EmaConfig, QuantizerConfig, RestartConfig,
};
use vaekit::models::{
    presets, AnyModel, Model, ModelConfig, StepContext, Trainable, VqLossConfig, VqVaeConfig,
};
use vaekit::nets::{
    Activation, ConvBlockConfig, DecoderConfig, EncoderConfig, ImageShape, OutputKind,
    ResidualDecoderConfig, ResidualEncoderConfig, ResidualStackConfig, UpBlockConfig, Upsampling,
};
use vaekit::params::ParamStore;
use vaekit::train::{read_history, Progress, TrainConfig, Trainer, CHECKPOINT_FILE, HISTORY_FILE};
use vaekit::Error;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The PyTorch fixture of the quantiser and the small VQ-VAE.
struct Fixture(HashMap<String, Tensor>);

impl Fixture {
    fn load() -> Self {
        Self::named("vq.safetensors")
    }

    fn named(file: &str) -> Self {
        let path = fixture_path(file);
        Self(
            candle_core::safetensors::load(&path, &Device::Cpu)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
    }

    fn get(&self, key: &str) -> &Tensor {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("fixture: no {key}"))
    }

    fn input(&self, key: &str, dtype: DType) -> Tensor {
        self.get(key).to_dtype(dtype).unwrap()
    }

    /// `max |actual − truth| / scale` of `<case>.<key>` and its tolerance.
    fn error(&self, case: &str, key: &str, actual: &Tensor, dtype: DType) -> (f64, f64) {
        let truth = self.get(&format!("{case}.{key}"));
        let scale = values(self.get(&format!("{case}.scale.{key}")))[0];
        let torch = values(self.get(&format!("{case}.f32_error.{key}")))[0];
        (
            error_against(actual, truth, scale),
            fixture_tolerance(dtype, torch),
        )
    }

    /// Asserts that the indices of `<case>.<key>` are exactly `actual`'s.
    fn same_indices(&self, case: &str, key: &str, actual: &Tensor) {
        let truth: Vec<u32> = values(self.get(&format!("{case}.{key}")))
            .into_iter()
            .map(|v| v as u32)
            .collect();
        let ours = actual.flatten_all().unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(ours, truth, "{case}.{key}");
    }
}

/// Collects every comparison and fails with all of those over tolerance.
#[derive(Default)]
struct Report(Vec<(String, f64, f64)>);

impl Report {
    fn add(&mut self, what: String, (err, tol): (f64, f64)) {
        self.0.push((what, err, tol));
    }

    fn finish(self, what: &str) {
        if let Some((k, err, tol)) = self
            .0
            .iter()
            .max_by(|a, b| (a.1 / a.2).total_cmp(&(b.1 / b.2)))
        {
            println!("{what}: closest {k}: error {err:.2e}, tolerance {tol:.2e}");
        }
        let bad: Vec<String> = self
            .0
            .iter()
            .filter(|(_, err, tol)| err.is_nan() || err > tol)
            .map(|(k, err, tol)| format!("  {k}: error {err:.3e}, tolerance {tol:.3e}"))
            .collect();
        assert!(
            bad.is_empty(),
            "{what}: {} off\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
}

#[test]
fn the_quantiser_matches_pytorch_indices_losses_and_straight_through_gradients() {
    let f = Fixture::load();
    for dtype in [DType::F32, DType::F64] {
        let params = ParamStore::with_dtype(&Device::Cpu, dtype);
        let q =
            vector_quantizer(&QuantizerConfig::new(11, 5), params.var_builder(0).pp("q")).unwrap();
        let codebook = params.get("q.codebook").unwrap();
        codebook.set(&f.input("vq.codebook", dtype)).unwrap();
        let z = Var::from_tensor(&f.input("vq.z", dtype)).unwrap();
        let out = q.quantize(z.as_tensor(), false, &mut rng(0)).unwrap();
        f.same_indices("vq", "indices", &out.indices);
        let codebook_loss = out.codebook_error.mean_all().unwrap();
        let commitment_loss = out.commitment_error.mean_all().unwrap();
        let r = f.input("vq.r", dtype);
        let total = ((&out.quantized * &r).unwrap().sum_all().unwrap()
            + (&codebook_loss + commitment_loss.affine(0.25, 0.0).unwrap()).unwrap())
        .unwrap();
        let grads = total.backward().unwrap();
        let mut report = Report::default();
        for (key, t) in [
            ("quantized", out.quantized.clone()),
            ("codebook_loss", codebook_loss),
            ("commitment_loss", commitment_loss),
            ("grad_z", grads.get(z.as_tensor()).unwrap().clone()),
            (
                "grad_codebook",
                grads.get(codebook.as_tensor()).unwrap().clone(),
            ),
        ] {
            report.add(format!("vq.{key}"), f.error("vq", key, &t, dtype));
        }
        report.finish(&format!("quantiser, {dtype:?}"));
    }
}

#[test]
fn three_ema_steps_match_pytorch() {
    let f = Fixture::load();
    for dtype in [DType::F32, DType::F64] {
        let params = ParamStore::with_dtype(&Device::Cpu, dtype);
        let config =
            QuantizerConfig::new(11, 5).with_update(CodebookUpdate::Ema(EmaConfig::default()));
        let q = vector_quantizer(&config, params.var_builder(0).pp("q")).unwrap();
        // The EMA state is three buffers, none of them trainable.
        assert!(params.trainable_vars().is_empty());
        params
            .get("q.ema_codebook")
            .unwrap()
            .set(&f.input("ema.codebook0", dtype))
            .unwrap();
        let mut report = Report::default();
        for step in 0..3 {
            let z = f.input(&format!("ema.z{step}"), dtype);
            // Evaluation changes nothing.
            let before = params
                .get("q.ema_embed_sum")
                .unwrap()
                .as_tensor()
                .copy()
                .unwrap();
            q.quantize(&z, false, &mut rng(0)).unwrap();
            let after = params
                .get("q.ema_embed_sum")
                .unwrap()
                .as_tensor()
                .copy()
                .unwrap();
            assert_eq!(
                values(&before),
                values(&after),
                "evaluation updated the EMA"
            );
            let out = q.quantize(&z, true, &mut rng(0)).unwrap();
            f.same_indices("ema", &format!("step{step}.indices"), &out.indices);
            for (key, name) in [
                ("codebook", "q.ema_codebook"),
                ("cluster_size", "q.ema_cluster_size"),
                ("embed_sum", "q.ema_embed_sum"),
            ] {
                let actual = params.get(name).unwrap().as_tensor().clone();
                let key = format!("step{step}.{key}");
                report.add(format!("ema.{key}"), f.error("ema", &key, &actual, dtype));
            }
        }
        report.finish(&format!("EMA, {dtype:?}"));
    }
}

/// The architecture of the fixture's small VQ-VAE.
fn small_vq_vae() -> ModelConfig {
    let image = ImageShape::new(1, 8, 8);
    let residual = ResidualStackConfig::new(1, 3);
    let conv = |c, k, s, p, a| ConvBlockConfig::new(c, k, s, p).with_activation(a);
    let t = Upsampling::Transposed { output_padding: 0 };
    let encoder = ResidualEncoderConfig::new(
        image,
        vec![
            conv(4, 4, 2, 1, Activation::Relu),
            conv(6, 4, 2, 1, Activation::Relu),
            conv(6, 3, 1, 1, Activation::Identity),
        ],
        residual,
        3,
    );
    let decoder = ResidualDecoderConfig::new(
        ImageShape::new(3, 2, 2),
        6,
        residual,
        vec![
            UpBlockConfig::new(t, 4, 4, 2, 1),
            UpBlockConfig::new(t, 1, 4, 2, 1).with_activation(Activation::Identity),
        ],
        image,
    )
    .with_output_kind(OutputKind::Linear);
    ModelConfig::VqVae(VqVaeConfig::new(
        EncoderConfig::Residual(encoder),
        DecoderConfig::Residual(decoder),
        QuantizerConfig::new(7, 3),
    ))
}

/// The small VQ-VAE in `dtype` with the fixture's weights.
fn fixture_model(f: &Fixture, dtype: DType) -> Model {
    let model = Model::new(&small_vq_vae(), &Device::Cpu, 0)
        .and_then(|m| m.to_dtype(dtype))
        .unwrap();
    let mut weights: HashMap<String, Tensor> = model
        .params()
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k, v.copy().unwrap()))
        .collect();
    let mut loaded = 0;
    for (k, v) in &f.0 {
        if let Some(name) = k.strip_prefix("model.param.") {
            assert!(weights.contains_key(name), "{name}: not a vaekit tensor");
            weights.insert(name.to_string(), v.to_dtype(dtype).unwrap());
            loaded += 1;
        }
    }
    // Every tensor but the prior (not part of the PyTorch model) came from PyTorch.
    assert_eq!(loaded + 1, weights.len());
    model.params().assign(&weights).unwrap();
    model
}

#[test]
fn a_small_vq_vae_matches_pytorch_losses_and_every_gradient() {
    let f = Fixture::load();
    for dtype in [DType::F32, DType::F64] {
        let model = fixture_model(&f, dtype);
        let batch = Batch::new(f.input("model.x", dtype), None::<Tensor>);
        let vq = model
            .network()
            .as_any()
            .downcast_ref::<vaekit::models::ConfigVqVae>()
            .unwrap();
        let out = vq.forward_t(&batch.images, true, &mut rng(0)).unwrap();
        f.same_indices("model", "indices", &out.quantized.indices);
        let terms = vq.loss_terms(&out, &batch.images).unwrap();
        let mut report = Report::default();
        report.add(
            "total".into(),
            f.error("model", "total", &terms.total, dtype),
        );
        for key in ["reconstruction", "codebook", "commitment"] {
            let t = terms.term(key).unwrap();
            report.add(key.into(), f.error("model", key, t, dtype));
        }
        let grads = terms.total.backward().unwrap();
        let mut seen = 0;
        for (name, var) in model.params().named_vars() {
            if vaekit::params::is_buffer(&name) {
                assert!(
                    grads.get(var.as_tensor()).is_none(),
                    "{name}: a buffer with a gradient"
                );
                continue;
            }
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            let key = format!("grad.{name}");
            report.add(key.clone(), f.error("model", &key, g, dtype));
            seen += 1;
        }
        let stored = f.0.keys().filter(|k| k.starts_with("model.grad.")).count();
        assert_eq!(seen, stored, "every PyTorch gradient was compared");
        report.finish(&format!("small VQ-VAE, {dtype:?}"));
    }
}

#[test]
fn the_digit_vq_vae_reports_its_terms_and_shapes() {
    let model = Model::new(&presets::vq_vae_digits(), &Device::Cpu, 0).unwrap();
    assert_eq!(model.family(), "VQ-VAE");
    assert_eq!(model.latent_dim(), 16 * 7 * 7);
    assert!(model.latent_model().is_none(), "a VQ-VAE has no likelihood");
    let vq = model.as_vq_vae().unwrap();
    assert_eq!(vq.grid(), (7, 7));
    let digits = Mnist::bundled().unwrap();
    let batch = digits
        .test
        .batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap();
    let terms = model
        .batch_loss(&batch, &mut rng(0), &StepContext::eval())
        .unwrap();
    let names: Vec<&str> = terms.terms.iter().map(|t| t.name.as_ref()).collect();
    // An EMA codebook has no codebook loss.
    assert_eq!(
        names,
        ["reconstruction", "commitment", "perplexity", "codes_used"]
    );
    let codes = vq.encode_indices(&batch.images).unwrap();
    assert_eq!(codes.dims(), &[8, 7, 7]);
    // encode gives the nearest codes, which decode back to the reconstruction.
    let z = model.encode(&batch.images).unwrap();
    assert_eq!(z.dims(), &[8, 16 * 49]);
    assert_eq!(
        values(&vq.codes_of(&codes).unwrap()),
        values(&z),
        "encode is the codes of encode_indices"
    );
    let recon = model
        .reconstruct(&batch.images, vaekit::models::Condition::None)
        .unwrap();
    let decoded = vq.decode_indices(&codes).unwrap();
    assert_eq!(values(&recon), values(&decoded));
    assert_eq!(
        model.sample(3, &mut rng(1)).unwrap().dims(),
        &[3, 1, 28, 28]
    );
}

fn quiet(epochs: usize) -> TrainConfig {
    TrainConfig::default()
        .with_epochs(epochs)
        .with_batch_size(64)
        .with_progress(Progress::Hidden)
}

#[test]
fn the_digit_vq_vae_learns_real_digits_and_records_perplexity_every_epoch() {
    let digits = Mnist::bundled().unwrap();
    let train = head(&digits.train, 2000);
    let test = head(&digits.test, 500);
    let dir = temp_dir("vq-learns");
    let model = Model::new(&presets::vq_vae_digits(), &Device::Cpu, 0).unwrap();
    let summary = Trainer::new(quiet(2))
        .unwrap()
        .output_dir(&dir)
        .fit(&model, &train, &test)
        .unwrap();
    let last = summary.history.last().unwrap();
    println!("{}", last.to_json());
    // Black images score the mean of x², 0.11 on these digits.
    let recon = last.test_metric("reconstruction").unwrap();
    assert!(recon < 0.03, "reconstruction {recon}");
    let perplexity = last.test_metric("perplexity").unwrap();
    let used = last.test_metric("codes_used").unwrap();
    assert!(
        perplexity > 20.0 && perplexity <= 128.0,
        "perplexity {perplexity}"
    );
    assert!(used > 0.5 && used <= 1.0, "codes used {used}");
    let history = read_history(dir.join(HISTORY_FILE)).unwrap();
    assert_eq!(history.len(), 2);
    for h in &history {
        for key in [
            "train_perplexity",
            "test_perplexity",
            "train_codes_used",
            "test_codes_used",
            "test_commitment",
            "test_reconstruction",
        ] {
            assert!(
                h[key].as_f64().is_some_and(f64::is_finite),
                "{key} in {h:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn weights(model: &Model) -> Vec<(String, Vec<f64>)> {
    model
        .params()
        .snapshot()
        .into_iter()
        .map(|(k, t)| (k, values(&t)))
        .collect()
}

#[test]
fn resume_is_bit_identical_with_the_ema_state_and_restarts() {
    let digits = Mnist::bundled().unwrap();
    let train = head(&digits.train, 256);
    let test = head(&digits.test, 64);
    let config = presets::vq_vae_digits();
    let straight = Model::new(&config, &Device::Cpu, 3).unwrap();
    Trainer::new(quiet(2))
        .unwrap()
        .fit(&straight, &train, &test)
        .unwrap();

    let dir = temp_dir("vq-resume");
    let first = Model::new(&config, &Device::Cpu, 3).unwrap();
    Trainer::new(quiet(1))
        .unwrap()
        .output_dir(&dir)
        .fit(&first, &train, &test)
        .unwrap();
    // The checkpoint holds the EMA codebook, its statistics and the usage.
    let saved = vaekit::params::read_checkpoint(dir.join(CHECKPOINT_FILE), &Device::Cpu).unwrap();
    for name in [
        "quantizer.ema_codebook",
        "quantizer.ema_cluster_size",
        "quantizer.ema_embed_sum",
        "quantizer.ema_usage",
    ] {
        assert!(
            saved.tensors.contains_key(name),
            "{name} not in the checkpoint"
        );
    }
    let resumed = Model::new(&config, &Device::Cpu, 99).unwrap();
    Trainer::new(quiet(2))
        .unwrap()
        .output_dir(&dir)
        .resume(&resumed, &train, &test)
        .unwrap();
    assert_eq!(weights(&resumed), weights(&straight));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restarts_give_dead_codes_encoder_outputs_drawn_from_the_step_generator() {
    let config = QuantizerConfig::new(6, 2).with_restart(Some(RestartConfig::default()));
    let z = Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.], [7., 8.]], &Device::Cpu).unwrap();
    let run = |seed: u64| {
        let params = ParamStore::new(&Device::Cpu);
        let q = vector_quantizer(&config, params.var_builder(0).pp("q")).unwrap();
        // Evaluation neither restarts nor draws.
        let mut r = rng(seed);
        q.quantize(&z, false, &mut r).unwrap();
        let untouched = rand::RngCore::next_u64(&mut r) == rand::RngCore::next_u64(&mut rng(seed));
        assert!(untouched, "evaluation drew from the generator");
        q.quantize(&z, true, &mut rng(seed)).unwrap();
        let codebook = params
            .get("q.codebook")
            .unwrap()
            .as_tensor()
            .to_vec2::<f32>()
            .unwrap();
        let usage = params
            .get("q.ema_usage")
            .unwrap()
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        (codebook, usage)
    };
    let (codebook, usage) = run(7);
    // Usage starts at zero: after one step every code was dead, and each is
    // now one of the batch's vectors, with its usage at the threshold.
    let rows: Vec<Vec<f32>> = values(&z)
        .chunks(2)
        .map(|c| vec![c[0] as f32, c[1] as f32])
        .collect();
    for code in &codebook {
        assert!(rows.contains(code), "{code:?} is not an encoder output");
    }
    assert!(usage.iter().all(|&u| u == 1.0), "{usage:?}");
    assert_eq!(
        run(7).0,
        codebook,
        "the same generator gives the same restarts"
    );
    assert_ne!(run(8).0, codebook, "another generator gives other restarts");
}

#[test]
fn the_fitted_prior_holds_the_code_frequencies_and_survives_saving() {
    let digits = Mnist::bundled().unwrap();
    let data = head(&digits.test, 40);
    let model = Model::new(&presets::vq_vae_digits(), &Device::Cpu, 0).unwrap();
    let vq = model.as_vq_vae().unwrap();
    let codes = vq.encode_dataset(&data, 16).unwrap();
    assert_eq!(codes.dims(), &[40, 7, 7]);
    vq.fit_prior(&data, 16).unwrap();
    // Position (0, 0): add-one smoothing over 128 codes.
    let first: Vec<u32> = (0..40)
        .map(|i| {
            codes
                .get(i)
                .unwrap()
                .get(0)
                .unwrap()
                .get(0)
                .unwrap()
                .to_scalar::<u32>()
                .unwrap()
        })
        .collect();
    let log_probs = vq.prior().log_probs().to_vec2::<f32>().unwrap();
    for k in 0..128u32 {
        let count = first.iter().filter(|&&c| c == k).count() as f64;
        let expected = ((count + 1.0) / (40.0 + 128.0)).ln();
        assert!(
            (log_probs[0][k as usize] as f64 - expected).abs() < 1e-5,
            "code {k}"
        );
    }
    // The grids' log-probability sums the positions'.
    let lp = vq
        .prior()
        .log_prob(&codes.narrow(0, 0, 2).unwrap())
        .unwrap();
    assert_eq!(lp.dims(), &[2]);
    assert!(lp
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .all(|v| v.is_finite() && *v < 0.0));

    let dir = temp_dir("vq-prior");
    let path = dir.join("vq.safetensors");
    model.save(&path).unwrap();
    let loaded = Model::load(&path, &Device::Cpu).unwrap();
    assert_eq!(weights(&loaded), weights(&model));
    let a = model.sample(4, &mut rng(5)).unwrap();
    let b = loaded.sample(4, &mut rng(5)).unwrap();
    assert_eq!(values(&a), values(&b));
    let grids = loaded
        .as_vq_vae()
        .unwrap()
        .prior()
        .sample_codes(2, &mut rng(5), &Device::Cpu)
        .unwrap();
    assert_eq!(grids.dims(), &[2, 7, 7]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The field of a config error.
fn field_of(e: Error) -> String {
    match e {
        Error::Config { field, .. } => field,
        other => panic!("expected a config error, got {other}"),
    }
}

fn vq_config(f: impl FnOnce(&mut VqVaeConfig)) -> ModelConfig {
    let mut config = presets::vq_vae_digits();
    if let ModelConfig::VqVae(c) = &mut config {
        f(c);
    }
    config
}

#[test]
fn bad_vq_vae_configs_are_refused_naming_the_field() {
    let cases: Vec<(ModelConfig, &str)> = vec![
        (vq_config(|c| c.quantizer.codes = 0), "quantizer.codes"),
        (
            vq_config(|c| c.quantizer.code_dim = 0),
            "quantizer.code_dim",
        ),
        // D not matching the encoder's output channels (16).
        (
            vq_config(|c| c.quantizer.code_dim = 8),
            "quantizer.code_dim",
        ),
        (
            vq_config(|c| {
                c.quantizer.update = CodebookUpdate::Ema(EmaConfig::default().with_decay(1.0))
            }),
            "quantizer.update.decay",
        ),
        (
            vq_config(|c| {
                c.quantizer.update = CodebookUpdate::Ema(EmaConfig::default().with_epsilon(0.0))
            }),
            "quantizer.update.epsilon",
        ),
        (
            vq_config(|c| {
                c.quantizer.restart = Some(RestartConfig::default().with_threshold(-1.0))
            }),
            "quantizer.restart.threshold",
        ),
        (
            vq_config(|c| c.loss = VqLossConfig::default().with_commitment(f64::NAN)),
            "loss.commitment",
        ),
        (
            vq_config(|c| {
                c.loss = VqLossConfig::default().with_reconstruction(vaekit::models::AeLoss::Bce)
            }),
            "loss.reconstruction",
        ),
        (
            vq_config(|c| {
                if let DecoderConfig::Residual(d) = &mut c.decoder {
                    d.start = ImageShape::new(8, 7, 7);
                }
            }),
            "decoder.start",
        ),
        (
            vq_config(|c| {
                if let EncoderConfig::Residual(e) = &mut c.encoder {
                    e.latent_channels = 0;
                }
            }),
            "encoder.latent_channels",
        ),
    ];
    for (config, field) in cases {
        let err = config.check().expect_err(field);
        let got = field_of(err);
        assert_eq!(got, field);
        let err = Model::new(&config, &Device::Cpu, 0).expect_err(field);
        assert_eq!(field_of(err), field, "Model::new and check agree");
    }
    // A dense encoder whose width is not a multiple of D.
    let err = vq_config(|c| {
        c.encoder = EncoderConfig::Dense(vaekit::nets::DenseEncoderConfig::new(
            ImageShape::MNIST,
            &[32],
            100,
        ));
        c.quantizer.code_dim = 16;
    })
    .check()
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not divide the encoder's output width 100"),
        "{err}"
    );
    assert_eq!(field_of(err), "quantizer.code_dim");
}

#[test]
fn a_vq_vae_config_round_trips_through_json_and_names_unknown_fields() {
    for config in [presets::vq_vae_digits(), presets::vq_vae_colour()] {
        let json = config.to_json();
        assert!(json.contains("\"kind\":\"vq_vae\""), "{json}");
        let back = ModelConfig::from_json(&json).unwrap();
        assert_eq!(*back, config);
    }
    let mut value: serde_json::Value =
        serde_json::from_str(&presets::vq_vae_digits().to_json()).unwrap();
    value["quantizer"]["codez"] = serde_json::json!(3);
    let err = ModelConfig::from_json(&value.to_string()).unwrap_err();
    assert!(field_of(err).starts_with("quantizer"));
    let mut value: serde_json::Value =
        serde_json::from_str(&presets::vq_vae_digits().to_json()).unwrap();
    value["quantizer"]["update"]["type"] = serde_json::json!("kmeans");
    let err = ModelConfig::from_json(&value.to_string()).unwrap_err();
    assert!(
        err.to_string().contains("expected one of gradient, ema"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_with_a_nan_codebook_is_refused_naming_the_tensor() {
    let dir = temp_dir("vq-nan");
    let model = Model::new(&presets::vq_vae_digits(), &Device::Cpu, 0).unwrap();
    let path = dir.join("vq.safetensors");
    model.save(&path).unwrap();
    let mut file = vaekit::params::read_checkpoint(&path, &Device::Cpu).unwrap();
    let name = "quantizer.ema_codebook";
    let shape = file.tensors[name].dims().to_vec();
    file.tensors.insert(
        name.to_string(),
        Tensor::full(f32::NAN, shape, &Device::Cpu).unwrap(),
    );
    let bad = dir.join("nan.safetensors");
    vaekit::params::write_checkpoint(
        &bad,
        &file.tensors.into_iter().collect(),
        &file.metadata.into_iter().collect(),
    )
    .unwrap();
    for err in [
        Model::load(&bad, &Device::Cpu).unwrap_err(),
        model.load_weights(&bad).unwrap_err(),
    ] {
        match err {
            Error::Tensor { name: n, reason } => {
                assert_eq!(n, name);
                assert!(reason.contains("NaN"), "{reason}");
            }
            other => panic!("expected a tensor error, got {other}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// The Gumbel-softmax VAE.

use vaekit::latent::{
    gumbel_softmax, kl_uniform_categorical, one_hot_argmax, Relaxation, TemperatureSchedule,
};
use vaekit::models::{CategoricalLatentConfig, ConfigGumbelVae, GumbelVaeConfig};
use vaekit::nets::{DenseDecoderConfig, DenseEncoderConfig};

#[test]
fn gumbel_softmax_samples_and_the_uniform_kl_match_pytorch() {
    let f = Fixture::named("gumbel.safetensors");
    for dtype in [DType::F32, DType::F64] {
        let mut report = Report::default();
        for (case, relaxation) in [
            ("gs_soft", Relaxation::Soft),
            ("gs_hard", Relaxation::StraightThrough),
        ] {
            let logits = Var::from_tensor(&f.input(&format!("{case}.logits"), dtype)).unwrap();
            let noise = f.input(&format!("{case}.noise"), dtype);
            let y = gumbel_softmax(logits.as_tensor(), &noise, 0.7, relaxation).unwrap();
            let r = f.input(&format!("{case}.r"), dtype);
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            report.add(format!("{case}.y"), f.error(case, "y", &y, dtype));
            let g = grads.get(logits.as_tensor()).unwrap();
            report.add(
                format!("{case}.grad_logits"),
                f.error(case, "grad_logits", g, dtype),
            );
        }
        let logits = Var::from_tensor(&f.input("kl.logits", dtype)).unwrap();
        let kl = kl_uniform_categorical(logits.as_tensor()).unwrap();
        let grads = kl.sum_all().unwrap().backward().unwrap();
        report.add("kl.kl".into(), f.error("kl", "kl", &kl, dtype));
        let g = grads.get(logits.as_tensor()).unwrap();
        report.add(
            "kl.grad_logits".into(),
            f.error("kl", "grad_logits", g, dtype),
        );
        report.finish(&format!("Gumbel-softmax samples and KL, {dtype:?}"));
    }
}

/// The fixture's small Gumbel-softmax VAE.
fn small_gumbel_vae(relaxation: Relaxation) -> ModelConfig {
    let image = ImageShape::new(1, 4, 4);
    ModelConfig::GumbelVae(GumbelVaeConfig::new(
        CategoricalLatentConfig::new(3, 4)
            .with_relaxation(relaxation)
            .with_temperature(TemperatureSchedule::constant(0.7)),
        EncoderConfig::Dense(DenseEncoderConfig::new(image, &[10], 12)),
        DecoderConfig::Dense(DenseDecoderConfig::new(12, &[10], image)),
    ))
}

#[test]
fn a_small_gumbel_vae_matches_pytorch_in_both_relaxations() {
    let f = Fixture::named("gumbel.safetensors");
    for (case, relaxation) in [
        ("soft", Relaxation::Soft),
        ("hard", Relaxation::StraightThrough),
    ] {
        for dtype in [DType::F32, DType::F64] {
            let model = Model::new(&small_gumbel_vae(relaxation), &Device::Cpu, 0)
                .and_then(|m| m.to_dtype(dtype))
                .unwrap();
            let weights: HashMap<String, Tensor> =
                f.0.iter()
                    .filter_map(|(k, v)| k.strip_prefix("model.param.").map(|n| (n.to_string(), v)))
                    .map(|(n, v)| (n, v.to_dtype(dtype).unwrap()))
                    .collect();
            model.params().assign(&weights).unwrap();
            let vae = model
                .network()
                .as_any()
                .downcast_ref::<ConfigGumbelVae>()
                .unwrap();
            let x = f.input("model.x", dtype);
            let noise = f.input("model.noise", dtype);
            let out = vae.forward_with_noise(&x, &noise, 0.7, true).unwrap();
            let terms = vae.loss_terms(&out, &x, 1.0).unwrap();
            let mut report = Report::default();
            report.add("sample".into(), f.error(case, "sample", &out.z, dtype));
            report.add("total".into(), f.error(case, "total", &terms.total, dtype));
            for key in ["reconstruction", "kl"] {
                report.add(
                    key.into(),
                    f.error(case, key, terms.term(key).unwrap(), dtype),
                );
            }
            let tau = terms.term("temperature").unwrap();
            assert!((values(tau)[0] - 0.7).abs() < 1e-7);
            let grads = terms.total.backward().unwrap();
            let mut seen = 0;
            for (name, var) in model.params().named_vars() {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{name}: no gradient"));
                let key = format!("grad.{name}");
                report.add(key.clone(), f.error(case, &key, g, dtype));
                seen += 1;
            }
            assert_eq!(seen, 8);
            report.finish(&format!("small Gumbel-softmax VAE, {case}, {dtype:?}"));
        }
    }
}

#[test]
fn the_temperature_decays_exponentially_to_its_floor() {
    let s = TemperatureSchedule::default();
    assert_eq!(s.at(0), 1.0);
    assert!((s.at(1000) - (-0.1f64).exp()).abs() < 1e-12);
    assert_eq!(s.at(7000), 0.5, "floored after ln 2 / 1e-4 = 6,932 steps");
    assert_eq!(s.at(1_000_000), 0.5);
    assert_eq!(TemperatureSchedule::constant(0.3).at(12345), 0.3);
}

#[test]
fn the_kl_to_the_uniform_categorical_is_zero_at_uniform_and_at_most_n_log_k() {
    let uniform = Tensor::zeros((2, 3, 5), DType::F32, &Device::Cpu).unwrap();
    let kl = kl_uniform_categorical(&uniform).unwrap();
    assert!(values(&kl).iter().all(|v| v.abs() < 1e-6), "{kl}");
    // A posterior certain of every class: KL = N · ln K.
    let certain = (one_hot_argmax(&Tensor::randn(0f32, 1., (2, 3, 5), &Device::Cpu).unwrap())
        .unwrap()
        * 200.0)
        .unwrap();
    let kl = kl_uniform_categorical(&certain).unwrap();
    for v in values(&kl) {
        assert!((v - 3.0 * 5f64.ln()).abs() < 1e-4, "{v}");
    }
}

#[test]
fn importance_weights_converge_to_the_exact_likelihood_of_a_model_small_enough_to_sum() {
    // One variable of 3 classes: p(x) = (1/3) Σ_z p(x | z), summed exactly.
    let image = ImageShape::new(1, 2, 2);
    let config = ModelConfig::GumbelVae(GumbelVaeConfig::new(
        CategoricalLatentConfig::new(1, 3),
        EncoderConfig::Dense(DenseEncoderConfig::new(image, &[4], 3)),
        DecoderConfig::Dense(DenseDecoderConfig::new(3, &[4], image)),
    ));
    let model = Model::new(&config, &Device::Cpu, 5)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let vae = model.as_gumbel_vae().unwrap();
    let x = Tensor::new(
        &[[[[1f64, 0.], [0., 1.]]], [[[0., 0.], [1., 1.]]]],
        &Device::Cpu,
    )
    .unwrap();
    let mut exact = [0f64; 2];
    for z in 0..3 {
        let mut v = vec![0f64; 3];
        v[z] = 1.0;
        let zz = Tensor::new(v.as_slice(), &Device::Cpu)
            .unwrap()
            .reshape((1, 3))
            .unwrap();
        let logits = vae
            .decoder()
            .forward_t(&zz, false)
            .unwrap()
            .flatten_all()
            .unwrap();
        let logits = values(&logits);
        for (i, e) in exact.iter_mut().enumerate() {
            let xs = values(&x.get(i).unwrap());
            // Bernoulli log-likelihood of the logits.
            let lp: f64 = xs
                .iter()
                .zip(&logits)
                .map(|(x, l)| x * l - (1.0 + l.exp()).ln())
                .sum();
            *e += lp.exp() / 3.0;
        }
    }
    use candle_nn::ModuleT;
    let w = vae.log_weights(&x, 4000, &mut rng(11)).unwrap(); // [k, b]
    assert_eq!(w.dims(), &[4000, 2]);
    for (i, e) in exact.iter().enumerate() {
        let col = values(&w.narrow(1, i, 1).unwrap());
        let max = col.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let estimate =
            max + (col.iter().map(|v| (v - max).exp()).sum::<f64>() / col.len() as f64).ln();
        assert!(
            (estimate - e.ln()).abs() < 0.02,
            "image {i}: importance-sampled {estimate}, exact {}",
            e.ln()
        );
    }
    // The squared error has no normalised likelihood here.
    let mse = ModelConfig::GumbelVae(
        GumbelVaeConfig::new(
            CategoricalLatentConfig::new(1, 3),
            EncoderConfig::Dense(DenseEncoderConfig::new(image, &[4], 3)),
            DecoderConfig::Dense(DenseDecoderConfig::new(3, &[4], image)),
        )
        .with_loss(
            vaekit::models::GumbelLossConfig::default()
                .with_reconstruction(vaekit::models::AeLoss::Mse),
        ),
    );
    let model = Model::new(&mse, &Device::Cpu, 5).unwrap();
    let err = model.as_gumbel_vae().unwrap().log_weights(
        &x.to_dtype(DType::F32).unwrap(),
        2,
        &mut rng(0),
    );
    assert!(err.unwrap_err().to_string().contains("Bernoulli"));
}

#[test]
fn the_digit_gumbel_vae_learns_real_digits_and_records_its_temperature() {
    let digits = Mnist::bundled().unwrap();
    let (train, test) = (&digits.train, &digits.test);
    let dir = temp_dir("gumbel-learns");
    let model = Model::new(&presets::gumbel_vae_digits(), &Device::Cpu, 0).unwrap();
    assert_eq!(model.family(), "Gumbel-softmax VAE");
    assert_eq!(model.latent_dim(), 300);
    assert!(model.latent_model().is_none());
    assert_eq!(model.beta(), Some(1.0));
    let summary = Trainer::new(quiet(3).with_batch_size(100))
        .unwrap()
        .output_dir(&dir)
        .fit(&model, train, test)
        .unwrap();
    let first = &summary.history[0];
    let last = summary.history.last().unwrap();
    println!("{}", last.to_json());
    // The mean image scores ≈ 206; PyTorch's run of the same model and
    // settings (Adam 1e-3, batch 100, the same τ schedule, the test set
    // scored with one-hot posterior samples) gets 204.8, 198.4 and 195.7 in
    // its first three epochs, vaekit 204.3, 199.5 and 195.6.
    assert!(last.test_loss() < 198.0, "test loss {}", last.test_loss());
    assert!(last.test_loss() < first.test_loss());
    let kl = last.test_metric("kl").unwrap();
    assert!(kl > 1.5 && kl < 30.0 * 10f64.ln(), "KL {kl}");
    // τ at steps 161 ..= 240, averaged: ≈ exp(−0.02).
    let tau = last.train_metric("temperature").unwrap();
    assert!((tau - (-0.02f64).exp()).abs() < 1e-3, "τ {tau}");
    assert!(
        last.test_metric("temperature").is_none(),
        "evaluation samples the categorical"
    );
    let history = read_history(dir.join(HISTORY_FILE)).unwrap();
    assert!(history[2]["train_temperature"].as_f64().is_some());
    let batch = test.batch(&[0, 1, 2], &Device::Cpu).unwrap();
    let z = model.encode(&batch.images).unwrap();
    assert_eq!(z.dims(), &[3, 300]);
    assert_eq!(
        values(&z).iter().sum::<f64>(),
        90.0,
        "one class per variable"
    );
    assert_eq!(
        model.sample(4, &mut rng(0)).unwrap().dims(),
        &[4, 1, 28, 28]
    );
    let w = model
        .as_gumbel_vae()
        .unwrap()
        .log_weights(&batch.images, 8, &mut rng(0))
        .unwrap();
    assert_eq!(w.dims(), &[8, 3]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn gumbel_config(f: impl FnOnce(&mut GumbelVaeConfig)) -> ModelConfig {
    let mut config = presets::gumbel_vae_digits();
    if let ModelConfig::GumbelVae(c) = &mut config {
        f(c);
    }
    config
}

#[test]
fn bad_gumbel_vae_configs_are_refused_naming_the_field() {
    let cases: Vec<(ModelConfig, &str)> = vec![
        (
            gumbel_config(|c| c.latent.temperature.initial = 0.0),
            "latent.temperature.initial",
        ),
        (
            gumbel_config(|c| c.latent.temperature.floor = -0.5),
            "latent.temperature.floor",
        ),
        (
            gumbel_config(|c| c.latent.temperature.rate = f64::NAN),
            "latent.temperature.rate",
        ),
        (gumbel_config(|c| c.latent.classes = 1), "latent.classes"),
        (
            gumbel_config(|c| c.latent.variables = 0),
            "latent.variables",
        ),
        (
            gumbel_config(|c| c.latent.variables = 29),
            "encoder.output_dim",
        ),
        (
            gumbel_config(|c| {
                if let DecoderConfig::Dense(d) = &mut c.decoder {
                    d.input_dim = 100;
                }
            }),
            "decoder.input_dim",
        ),
        (gumbel_config(|c| c.loss.beta = -1.0), "loss.beta"),
    ];
    for (config, field) in cases {
        assert_eq!(field_of(config.check().expect_err(field)), field);
        assert_eq!(
            field_of(Model::new(&config, &Device::Cpu, 0).expect_err(field)),
            field
        );
    }
    let json = presets::gumbel_vae_digits().to_json();
    assert!(json.contains("\"kind\":\"gumbel_vae\""), "{json}");
    assert_eq!(
        *ModelConfig::from_json(&json).unwrap(),
        presets::gumbel_vae_digits()
    );
    // A hard relaxation by name.
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["latent"]["relaxation"] = serde_json::json!("straight_through");
    let config = ModelConfig::from_json(&value.to_string()).unwrap();
    match config.get() {
        ModelConfig::GumbelVae(c) => assert_eq!(c.latent.relaxation, Relaxation::StraightThrough),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_run_files_select_the_two_discrete_families() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/runs");
    for (file, model) in [
        ("vq_vae_digits.json", presets::vq_vae_digits()),
        ("gumbel_vae_digits.json", presets::gumbel_vae_digits()),
    ] {
        let run = vaekit::train::RunConfig::from_file(dir.join(file)).unwrap();
        assert_eq!(*run.model, model, "{file}");
        assert_eq!(run.train.epochs, 10, "{file}");
    }
}

// ---------------------------------------------------------------------------
// The PixelCNN prior over code grids.

use vaekit::models::{code_grid_dataset, PixelCnnConfig, PixelCnnPrior};

fn pixel_cnn(codes: usize, grid: (usize, usize), seed: u64) -> PixelCnnPrior {
    let params = ParamStore::new(&Device::Cpu);
    let config = PixelCnnConfig::new(codes, grid)
        .with_channels(16)
        .with_blocks(2);
    PixelCnnPrior::new(&config, &params, params.var_builder(seed)).unwrap()
}

#[test]
fn the_pixel_cnn_sees_only_the_codes_before_each_position() {
    let prior = pixel_cnn(5, (4, 5), 0);
    let mut r = rng(3);
    let grids = prior.sample_codes(2, &mut r, &Device::Cpu).unwrap();
    let base = prior.logits(&grids).unwrap(); // [2, K, 4, 5]
    let codes = grids.flatten_all().unwrap().to_vec1::<u32>().unwrap();
    for pos in 0..20 {
        // Change the code at `pos` in every grid: no logit at or before it moves.
        let mut changed = codes.clone();
        for g in 0..2 {
            changed[g * 20 + pos] = (changed[g * 20 + pos] + 1) % 5;
        }
        let changed = Tensor::from_vec(changed, (2, 4, 5), &Device::Cpu).unwrap();
        let logits = prior.logits(&changed).unwrap();
        let diff = (&logits - &base).unwrap().abs().unwrap();
        let diff = diff
            .flatten_from(2)
            .unwrap()
            .max(1)
            .unwrap()
            .max(0)
            .unwrap(); // [20]
        let diff = diff.to_vec1::<f32>().unwrap();
        for (p, d) in diff.iter().enumerate() {
            if p <= pos {
                assert_eq!(*d, 0.0, "position {p} sees the code at {pos}");
            }
        }
        assert!(
            diff[pos + 1..].iter().any(|&d| d > 0.0) || pos == 19,
            "nothing after {pos} sees it"
        );
    }
    // log p(grid) is minus the NLL, and a grid's probability sums to one over
    // the grids of a tiny prior (1×2 of 3 codes: 9 grids).
    let tiny = pixel_cnn(3, (1, 2), 1);
    let all: Vec<u32> = (0..9u32).flat_map(|i| [i / 3, i % 3]).collect();
    let all = Tensor::from_vec(all, (9, 1, 2), &Device::Cpu).unwrap();
    let total: f64 = values(&tiny.log_prob(&all).unwrap())
        .iter()
        .map(|v| v.exp())
        .sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");
}

#[test]
fn the_pixel_cnn_learns_code_grids_with_the_trainer_far_better_than_the_independent_prior() {
    // Grids whose codes are all one code, drawn uniformly from 8: an
    // independent prior scores 16·ln 8 = 33.3 nats a grid, the truth ln 8 = 2.1.
    let (k, grid) = (8usize, (4usize, 4usize));
    let mut r = rng(0);
    let make = |n: usize, r: &mut ChaCha8Rng| {
        let codes: Vec<u32> = (0..n)
            .flat_map(|_| {
                let c = rand::RngCore::next_u32(r) % k as u32;
                std::iter::repeat_n(c, 16)
            })
            .collect();
        Tensor::from_vec(codes, (n, 4, 4), &Device::Cpu).unwrap()
    };
    let (train, test) = (make(512, &mut r), make(128, &mut r));
    let train_set = code_grid_dataset(&train, k).unwrap();
    let test_set = code_grid_dataset(&test, k).unwrap();
    let prior = pixel_cnn(k, grid, 0);
    let before = values(&prior.nll(&test).unwrap()).iter().sum::<f64>() / 128.0;
    let summary = Trainer::new(quiet(10).with_batch_size(32))
        .unwrap()
        .fit(&prior, &train_set, &test_set)
        .unwrap();
    let after = summary.history.last().unwrap().test_metric("nll").unwrap();
    let direct = values(&prior.nll(&test).unwrap()).iter().sum::<f64>() / 128.0;
    assert!(
        (after - direct).abs() < 1e-3,
        "the trainer's nll is the prior's: {after} vs {direct}"
    );
    println!(
        "PixelCNN test NLL per grid: {before:.2} → {after:.2} nats (truth {:.2})",
        8f64.ln()
    );
    assert!(after < 5.0, "{after}");
    assert!(before > 25.0, "{before}");
    // Samples repeat their first code (1 in 8 positions would by chance).
    let samples = prior.sample_codes(20, &mut rng(1), &Device::Cpu).unwrap();
    let codes = samples.flatten_all().unwrap().to_vec1::<u32>().unwrap();
    let same = codes
        .chunks(16)
        .map(|g| g.iter().filter(|&&c| c == g[0]).count() as f64 / 16.0)
        .sum::<f64>()
        / 20.0;
    println!("share of sampled codes equal to their grid's first: {same:.2}");
    assert!(same > 0.7, "{same}");
    // The same generator gives the same samples.
    let again = prior.sample_codes(20, &mut rng(1), &Device::Cpu).unwrap();
    assert_eq!(values(&again), values(&samples));
}

#[test]
fn code_grid_datasets_refuse_codes_out_of_range() {
    let codes = Tensor::new(&[[[0u32, 3], [1, 2]]], &Device::Cpu).unwrap();
    assert!(code_grid_dataset(&codes, 4).is_ok());
    let err = code_grid_dataset(&codes, 3).unwrap_err();
    assert_eq!(field_of(err), "indices");
    let err = PixelCnnPrior::new(
        &PixelCnnConfig::new(0, (2, 2)),
        &ParamStore::new(&Device::Cpu),
        ParamStore::new(&Device::Cpu).var_builder(0),
    )
    .unwrap_err();
    assert_eq!(field_of(err), "prior.codes");
}

#[cfg(feature = "pictures")]
#[test]
fn the_discrete_families_get_the_code_explorer_not_the_sliders() {
    use vaekit::pictures::{
        write_code_explorer, write_latent_explorer, CodeExplorerOptions, CodeSpace, ExplorerOptions,
    };
    let dir = temp_dir("discrete-explorer");
    let vq = Model::new(&presets::vq_vae_digits(), &Device::Cpu, 0).unwrap();
    let gumbel = Model::new(&presets::gumbel_vae_digits(), &Device::Cpu, 0).unwrap();
    for (model, width, cells, codes) in [(&vq, 784, 49, 128), (&gumbel, 300, 30, 10)] {
        // The sliders still need a 2-D latent, and say so.
        let err = write_latent_explorer(
            model.decoder(),
            &ExplorerOptions::default(),
            dir.join("explorer.html"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("needs a 2-D latent space")
                && text.contains(&format!("this decoder takes {width} values")),
            "{text}"
        );
        // The code explorer takes their codes.
        let space = CodeSpace::of(model).expect("discrete codes");
        assert_eq!(
            (space.cells(), space.codes(), space.input_dim()),
            (cells, codes, width)
        );
        let page = dir.join("codes.html");
        write_code_explorer(
            model.decoder(),
            &space,
            &CodeExplorerOptions::default(),
            &page,
        )
        .unwrap();
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(html.contains("<title>vaekit code explorer</title>"));
        assert!(html.contains(&format!("\"cells\":{cells}")), "cell count");
        assert!(
            html.contains("\"start\":[0,0,"),
            "all codes 0 without a start"
        );
        assert!(!html.contains("://"), "the page must not load anything");
        // Start codes: one per cell, each below K.
        let short = vec![0u32; cells - 1];
        match write_code_explorer(
            model.decoder(),
            &space,
            &CodeExplorerOptions::default().with_start(Some(&short)),
            &page,
        ) {
            Err(Error::Config { field, reason }) => {
                assert_eq!(field, "start");
                assert!(reason.contains(&format!("for {cells} cells")), "{reason}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
        let mut high = vec![0u32; cells];
        high[3] = codes as u32;
        let err = write_code_explorer(
            model.decoder(),
            &space,
            &CodeExplorerOptions::default().with_start(Some(&high)),
            &page,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!(
                "code {codes} of cell 3 is out of range 0..{codes}"
            )),
            "{err}"
        );
    }
    // One family's decoder with the other's codes: the error names both.
    let err = write_code_explorer(
        vq.decoder(),
        &CodeSpace::of(&gumbel).unwrap(),
        &CodeExplorerOptions::default(),
        dir.join("mixed.html"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("30 categorical variables of 10 classes needs a decoder of 300 values")
            && err.contains("this decoder takes 784"),
        "{err}"
    );
    assert!(!dir.join("mixed.html").exists());
    let dense = Model::new(&presets::dense_vae(2), &Device::Cpu, 0).unwrap();
    assert!(CodeSpace::of(&dense).is_none(), "continuous codes");
    let _ = std::fs::remove_dir_all(&dir);
}
