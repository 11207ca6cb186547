//! Bring your own model: a VAE whose encoder is written here, with vaekit's
//! decoder and a mixture prior, gets every trainer feature — history,
//! checkpoints, bit-identical resume, early stopping, non-finite errors — and
//! saves and reloads into a fresh instance with one call. Also: run files.

mod common;

use std::path::Path;

use common::{head, temp_dir};
use vaekit::candle_nn::{linear, Linear};
use vaekit::latent::{gaussian_mixture_prior, MixtureConfig};
use vaekit::prelude::*;
use vaekit::train::{
    read_history, EarlyStopping, Progress, RunConfig, BEST_MODEL_FILE, CHECKPOINT_FILE,
    HISTORY_FILE,
};

/// An encoder of a user's own: flatten, 64 ReLU units, `[mean | logvar]`.
struct TinyEncoder {
    hidden: Linear,
    out: Linear,
}

impl ModuleT for TinyEncoder {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let h = self.hidden.forward(&xs.flatten_from(1)?)?.relu()?; // [b, 64]
        self.out.forward(&h) // [b, 4]
    }
}

impl Encoder for TinyEncoder {
    fn input_shape(&self) -> ImageShape {
        ImageShape::MNIST
    }
    fn output_dim(&self) -> usize {
        4
    }
}

type Custom = Vae<TinyEncoder, DenseDecoder, GaussianMixturePrior>;

fn build(seed: u64) -> Custom {
    let params = ParamStore::new(&Device::Cpu);
    let vb = params.var_builder(seed);
    let encoder = TinyEncoder {
        hidden: linear(784, 64, vb.pp("encoder.hidden")).unwrap(),
        out: linear(64, 4, vb.pp("encoder.out")).unwrap(),
    };
    let decoder = DenseDecoder::new(
        &DenseDecoderConfig::new(2, &[64], ImageShape::MNIST),
        vb.pp("decoder"),
    )
    .unwrap();
    let prior = gaussian_mixture_prior(2, &MixtureConfig::default(), vb.pp("prior")).unwrap();
    Vae::new(
        &params,
        encoder,
        decoder,
        prior,
        PosteriorParam::LogVariance,
        VaeLossConfig::default(),
    )
    .unwrap()
}

fn quiet(epochs: usize) -> TrainConfig {
    TrainConfig::default()
        .with_epochs(epochs)
        .with_batch_size(50)
        .with_progress(Progress::Hidden)
}

fn weights<M: Trainable>(model: &M) -> Vec<(String, Vec<u32>)> {
    model
        .params()
        .snapshot()
        .into_iter()
        .map(|(k, t)| {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (k, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

fn data() -> (Dataset, Dataset) {
    let digits = Mnist::bundled().unwrap();
    (head(&digits.train, 1000), head(&digits.test, 200))
}

#[test]
fn a_hand_built_vae_trains_checkpoints_and_resumes_bit_for_bit() {
    let (train, test) = data();
    let straight_dir = temp_dir("custom-straight");
    let model = build(1);
    let mut epochs_seen = Vec::new();
    let summary = Trainer::new(quiet(3))
        .unwrap()
        .output_dir(&straight_dir)
        .on_epoch(|r| {
            epochs_seen.push(r.epoch);
            Ok(())
        })
        .fit(&model, &train, &test)
        .unwrap();
    assert_eq!(epochs_seen, [1, 2, 3]);
    let first = summary.history[0].test_loss();
    let last = summary.history[2].test_loss();
    assert!(last < first, "test loss {first} -> {last}");
    for term in ["loss", "reconstruction", "kl"] {
        assert!(
            summary.history[2].test_metric(term).unwrap().is_finite(),
            "{term}"
        );
    }
    let history = read_history(straight_dir.join(HISTORY_FILE)).unwrap();
    assert_eq!(history.len(), 3);
    assert!(history[2].contains_key("test_kl"));
    for file in [BEST_MODEL_FILE, CHECKPOINT_FILE] {
        assert!(straight_dir.join(file).is_file(), "{file}");
    }

    // Interrupted after epoch 1, resumed in a fresh process-like state (a new
    // model with other initial weights): the same weights, bit for bit.
    let dir = temp_dir("custom-resumed");
    let first_half = build(1);
    Trainer::new(quiet(1))
        .unwrap()
        .output_dir(&dir)
        .fit(&first_half, &train, &test)
        .unwrap();
    let resumed = build(99);
    Trainer::new(quiet(3))
        .unwrap()
        .output_dir(&dir)
        .resume(&resumed, &train, &test)
        .unwrap();
    assert_eq!(weights(&resumed), weights(&model));
    assert_eq!(read_history(dir.join(HISTORY_FILE)).unwrap().len(), 3);

    // Saved with one call, reloaded into a fresh instance with one call.
    let path = straight_dir.join("model.safetensors");
    model.save(&path).unwrap();
    let fresh = build(7);
    assert_ne!(weights(&fresh), weights(&model));
    fresh.load_weights(&path).unwrap();
    assert_eq!(weights(&fresh), weights(&model));
    // The trainer's own files load the same way.
    let again = build(8);
    again
        .load_weights(straight_dir.join(CHECKPOINT_FILE))
        .unwrap();
    assert_eq!(weights(&again), weights(&model));
}

#[test]
fn a_hand_built_vae_stops_early_and_on_a_non_finite_loss() {
    let (train, test) = data();
    // No epoch can improve by 1e9: the run stops after `patience` more epochs.
    let model = build(2);
    let summary =
        Trainer::new(quiet(5).with_early_stopping(Some(EarlyStopping::new(1).with_min_delta(1e9))))
            .unwrap()
            .fit(&model, &train, &test)
            .unwrap();
    assert!(summary.stopped_early);
    assert_eq!(summary.last_epoch, 2);

    let dir = temp_dir("custom-nan");
    let model = build(3);
    let err = Trainer::new(quiet(3))
        .unwrap()
        .output_dir(&dir)
        .on_epoch(|report| {
            if report.epoch == 1 {
                let var = model.params().get("decoder.out.bias").unwrap();
                var.set(&Tensor::full(f32::NAN, var.dims(), &Device::Cpu)?)?;
            }
            Ok(())
        })
        .fit(&model, &train, &test)
        .unwrap_err();
    match err {
        Error::NonFinite { epoch, step, .. } => assert_eq!((epoch, step), (2, 1)),
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn resume_and_load_refuse_another_architecture() {
    let (train, test) = data();
    let dir = temp_dir("custom-other");
    Trainer::new(quiet(1))
        .unwrap()
        .output_dir(&dir)
        .fit(&build(1), &train, &test)
        .unwrap();
    // A config-built model is not the hand-built one.
    let preset = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0).unwrap();
    let err = Trainer::new(quiet(2))
        .unwrap()
        .output_dir(&dir)
        .resume(&preset, &train, &test)
        .unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    assert!(matches!(
        preset.load_weights(dir.join(CHECKPOINT_FILE)),
        Err(Error::Tensor { .. })
    ));
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_files_parse_or_name_the_field_at_fault() {
    let dir = temp_dir("run-files");
    let good = RunConfig::for_preset(Preset::DenseVae).to_json_pretty();
    let run = RunConfig::from_file(write(&dir, "good.json", &good)).unwrap();
    assert_eq!(run.model.get(), &Preset::DenseVae.config());
    assert_eq!(run.train, TrainConfig::for_preset(Preset::DenseVae));
    // Training settings left out take their defaults.
    let value: serde_json::Value = serde_json::from_str(&good).unwrap();
    let model_only = serde_json::json!({ "model": value["model"] }).to_string();
    let run = RunConfig::from_file(write(&dir, "model-only.json", &model_only)).unwrap();
    assert_eq!(run.train, TrainConfig::default());

    let cases = [
        (
            good.replacen(
                "\"hidden\": [\n        256",
                "\"hidden\": [\n        \"x\"",
                1,
            ),
            "model.encoder.hidden[0]",
        ),
        (
            good.replacen("\"kind\": \"vae\"", "\"kind\": \"gan\"", 1),
            "model.kind",
        ),
        (
            good.replacen("\"epochs\": 50", "\"epochs\": 0", 1),
            "train.epochs",
        ),
        (
            good.replacen("\"batch_size\": 128", "\"batch_sise\": 128", 1),
            "train",
        ),
        (
            good.replacen("\"latent_dim\": 2", "\"latent_dim\": 3", 1),
            "model.encoder.output_dim",
        ),
        (
            good.replacen("\"type\": \"dense\"", "\"type\": \"rnn\"", 1),
            "model.encoder.type",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        assert_ne!(text, &good, "case {i} changed nothing");
        match RunConfig::from_file(write(&dir, &format!("bad{i}.json"), text)) {
            Err(Error::Config { field: f, reason }) => {
                assert!(
                    f.starts_with(field),
                    "case {i}: blamed `{f}` ({reason}), not `{field}`"
                )
            }
            other => panic!("case {i}: expected a config error, got {other:?}"),
        }
    }
    // Not a regular file, too large, not UTF-8: clear errors, nothing read.
    assert!(matches!(
        RunConfig::from_file(&dir),
        Err(Error::Data { .. })
    ));
    let big = write(&dir, "big.json", &" ".repeat(2 << 20));
    assert!(matches!(RunConfig::from_file(big), Err(Error::Data { .. })));
    let path = dir.join("latin1.json");
    std::fs::write(&path, [0xff, 0xfe, b'{']).unwrap();
    assert!(matches!(
        RunConfig::from_file(path),
        Err(Error::Data { .. })
    ));
}
