//! Models: every preset builds reproducibly from its seed with PyTorch's
//! parameter count, survives a save/load round trip bit for bit, and refuses
//! damaged checkpoints and unworkable configs with errors that name the culprit;
//! the encoder, decoder and prior traits are object-safe and mix across
//! families; the digit-conditioned VAE's grid renders one style per row and one
//! digit per column; batch norm is per-image in evaluation and per-batch in
//! training.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{load_fixture, values};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::Batch;
use vaekit::latent::{monte_carlo_kl, GaussianMixturePrior, LatentPrior, StandardNormal};
use vaekit::losses::Reduction;
use vaekit::models::{Condition, StepContext};
use vaekit::models::{
    ConditioningConfig, DecoderConfig, EncoderConfig, KlEstimator, Likelihood, Mode, Model,
    ModelConfig, PosteriorParam, Preset, Trainable, Vae, VaeLossConfig,
};
use vaekit::nets::{
    Activation, ConvDecoder, Decoder, DenseEncoder, DenseEncoderConfig, Encoder, ImageShape,
    OutputKind,
};
use vaekit::params::{read_checkpoint, write_checkpoint, InitScheme, ParamStore};
use vaekit::train::TrainConfig;
use vaekit::Error;

/// Metadata key of the model config in a checkpoint (`Model::save` writes it).
const CONFIG_KEY: &str = "vaekit.config";

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The first four t10k digits `[4, 1, 28, 28]` in `[0, 1]` and their labels
/// `[0, 2, 2, 8]` (int64), from the PyTorch fixtures.
/// Four real test digits and their labels.
fn digits() -> (Tensor, Tensor) {
    let mnist = vaekit::data::Mnist::bundled().unwrap();
    let batch = mnist.test.batch(&[0, 1, 2, 3], &Device::Cpu).unwrap();
    (
        batch.images,
        batch.labels.expect("the bundled digits have labels"),
    )
}

/// A folder of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "vaekit-test-models-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every tensor of a store, bit for bit.
fn bits(snapshot: &BTreeMap<String, Tensor>) -> BTreeMap<String, Vec<u32>> {
    snapshot
        .iter()
        .map(|(k, t)| (k.clone(), tensor_bits(t)))
        .collect()
}

fn tensor_bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32 tensor")
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

// ------------------------------------------------------- building and seeding

#[test]
fn every_preset_builds_and_its_seed_fixes_every_parameter() {
    for preset in Preset::ALL {
        let a = Model::from_preset(preset, &Device::Cpu, 42).expect("preset builds");
        let b = Model::from_preset(preset, &Device::Cpu, 42).unwrap();
        let c = Model::from_preset(preset, &Device::Cpu, 43).unwrap();
        assert_eq!(a.config(), &preset.config(), "{preset}");
        assert!(!a.params().is_empty(), "{preset}");
        let (sa, sb, sc) = (
            bits(&a.params().snapshot()),
            bits(&b.params().snapshot()),
            bits(&c.params().snapshot()),
        );
        assert_eq!(sa, sb, "{preset}: the same seed gives the same parameters");
        // Every randomly initialised tensor (layer weights; batch-norm scales
        // start at 1 and Glorot biases at 0) changes with the seed.
        let mut random = 0;
        for (name, va) in &sa {
            if name.ends_with(".weight") && !name.contains(".bn.") {
                random += 1;
                let differing = va.iter().zip(&sc[name]).filter(|(x, y)| x != y).count();
                assert!(
                    differing * 10 >= va.len() * 9,
                    "{preset}: `{name}` has only {differing} of {} values changed by the seed",
                    va.len()
                );
            }
        }
        assert!(random >= 4, "{preset}: {random} weight tensors");
        // And the preset names round-trip.
        assert_eq!(preset.name().parse::<Preset>().unwrap(), preset);
        assert_eq!(preset.to_string(), preset.name());
    }
}

/// Trainable parameter counts of the presets' PyTorch equivalents (as in
/// `tests/fixtures/make_fixtures.py`; `sum(p.numel() for p in
/// model.parameters())`, batch-norm running statistics excluded), from the
/// architectures in `src/models/presets.rs`. Conv weights are
/// `out·in·k·k + out`, transposed `in·out·k·k + out`, linear `in·out + out`.
const PYTORCH_COUNTS: [(Preset, usize); 6] = [
    // cvae-tf, latent 2: Conv(1→32,3) 32·1·9+32 = 320; Conv(32→64,3)
    // 64·32·9+64 = 18 496; 28 → 13 → 6, Linear(64·6·6 = 2304 → 4) 2304·4+4 =
    // 9220; Linear(2 → 1568) 2·1568+1568 = 4704; ConvT(32→64,3) 32·64·9+64 =
    // 18 496; ConvT(64→32,3) 64·32·9+32 = 18 464; ConvT(32→1,3) 32·9+1 = 289.
    (
        Preset::CvaeTf,
        320 + 18_496 + 9_220 + 4_704 + 18_496 + 18_464 + 289, // 69 989
    ),
    // conv-vae-bn, latent 32: Conv(1→64,4) 64·16+64 = 1088, BN 2·64 = 128;
    // Conv(64→128,4) 128·64·16+128 = 131 200, BN 256; Conv(128→128,3)
    // 128·128·9+128 = 147 584, BN 256; Linear(6272 → 64) 6272·64+64 = 401 472;
    // Linear(32 → 6272) 32·6272+6272 = 206 976; ConvT(128→64,4)
    // 128·64·16+64 = 131 136; ConvT(64→1,4) 64·16+1 = 1025.
    (
        Preset::ConvVaeBn,
        1_088 + 128 + 131_200 + 256 + 147_584 + 256 + 401_472 + 206_976 + 131_136 + 1_025, // 1 021 121
    ),
    // dense-vae: 784·256+256 + 256·4+4 + 2·256+256 + 256·784+784.
    (
        Preset::DenseVae,
        784 * 256 + 256 + 256 * 4 + 4 + 2 * 256 + 256 + 256 * 784 + 784, // 404 244
    ),
    // digit-cvae (z 10, 10 classes, classifier): encoder 784·128+128 +
    // 128·20+20; classifier 784·128+128 + 128·10+10; decoder (10+10)·128+128 +
    // 128·784+784.
    (
        Preset::DigitCvae,
        784 * 128
            + 128
            + 128 * 20
            + 20
            + 784 * 128
            + 128
            + 128 * 10
            + 10
            + 20 * 128
            + 128
            + 128 * 784
            + 784, // 308 654
    ),
    // conv-ae, code 10: Conv(1→8,3) 8·9+8 = 80; three Conv(8→8,3) 3·(8·8·9+8)
    // = 1752; 28 → 14 → 14 → 7 → 7, Linear(8·7·7 = 392 → 10) 3930;
    // Linear(10 → 3136) 10·3136+3136 = 34 496; Conv(64→64,3) 64·64·9+64 =
    // 36 928; Conv(64→32,3) 64·32·9+32 = 18 464; Conv(32→1,3) 32·9+1 = 289.
    (
        Preset::ConvAe,
        80 + 1_752 + 3_930 + 34_496 + 36_928 + 18_464 + 289, // 95 939
    ),
    // conv-ae-2d: the same with Linear(392 → 2) 786 and Linear(2 → 3136) 9408.
    (
        Preset::ConvAe2d,
        80 + 1_752 + 786 + 9_408 + 36_928 + 18_464 + 289, // 67 707
    ),
];

#[test]
#[cfg_attr(
    not(vaekit_fixtures),
    ignore = "needs the large PyTorch fixtures, which the published crate leaves out: run it from the repository"
)]
fn parameter_counts_equal_pytorch() {
    for (preset, expected) in PYTORCH_COUNTS {
        let m = Model::from_preset(preset, &Device::Cpu, 0).unwrap();
        assert_eq!(
            m.params().num_trainable(),
            expected,
            "{preset}: trainable parameters"
        );
    }
    // Cross-check against the state dicts PyTorch actually wrote: the `param.*`
    // tensors of each fixture have the preset's names and shapes, and their
    // trainable count is the one above.
    for (preset, file) in [
        (Preset::CvaeTf, "tf_cvae.safetensors"),
        (Preset::ConvVaeBn, "conv_vae_bn.safetensors"),
        (Preset::DenseVae, "dense_vae.safetensors"),
        (Preset::DigitCvae, "digit_cvae.safetensors"),
        (Preset::ConvAe, "conv_ae.safetensors"),
    ] {
        let f = load_fixture(file, &Device::Cpu);
        let torch: BTreeMap<String, Vec<usize>> = common::with_prefix(&f, "param")
            .into_iter()
            .map(|(k, t)| (k, t.dims().to_vec()))
            .collect();
        let m = Model::from_preset(preset, &Device::Cpu, 0).unwrap();
        let ours: BTreeMap<String, Vec<usize>> = m
            .params()
            .named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.dims().to_vec()))
            .collect();
        assert_eq!(ours, torch, "{preset}: names and shapes of the state dict");
        let torch_count: usize = torch
            .iter()
            .filter(|(k, _)| !vaekit::params::is_buffer(k))
            .map(|(_, d)| d.iter().product::<usize>())
            .sum();
        let expected = PYTORCH_COUNTS.iter().find(|(p, _)| *p == preset).unwrap().1;
        assert_eq!(torch_count, expected, "{preset}: PyTorch's own count");
    }
}

// ------------------------------------------------------------- save and load

#[test]
fn save_then_load_gives_the_same_model_bit_for_bit_for_every_preset() {
    let dir = TempDir::new("roundtrip");
    let (x, labels) = digits();
    for preset in Preset::ALL {
        let model = Model::from_preset(preset, &Device::Cpu, 7).unwrap();
        // A training-mode forward moves the batch-norm running statistics off
        // their initial values, so the round trip must carry the buffers too.
        model
            .batch_loss(
                &Batch::new(x.clone(), labels.clone()),
                &mut rng(1),
                &StepContext::of(Mode::Train),
            )
            .unwrap();
        let path = dir.path(&format!("{preset}.safetensors"));
        model.save(&path).unwrap();
        let loaded = Model::load(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded.config(), model.config(), "{preset}: config");
        let (before, after) = (model.params().snapshot(), loaded.params().snapshot());
        assert_eq!(bits(&after), bits(&before), "{preset}: parameters");
        // `load` builds from seed 0 before assigning: the seed-7 weights differ
        // from those, so equality above proves the file's tensors were used.
        let fresh = Model::from_preset(preset, &Device::Cpu, 0).unwrap();
        assert_ne!(bits(&fresh.params().snapshot()), bits(&before), "{preset}");
        let r1 = model.reconstruct(&x, Condition::Labels(&labels)).unwrap();
        let r2 = loaded.reconstruct(&x, Condition::Labels(&labels)).unwrap();
        assert_eq!(r1.dims(), [4, 1, 28, 28]);
        assert_eq!(tensor_bits(&r1), tensor_bits(&r2), "{preset}: reconstruct");
        // The stored config is the model's, as JSON.
        let ckpt = read_checkpoint(&path, &Device::Cpu).unwrap();
        let stored = ModelConfig::from_json(&ckpt.metadata[CONFIG_KEY]).unwrap();
        assert_eq!(stored.get(), model.config());
        if preset == Preset::ConvVaeBn {
            let rv = &after["encoder.blocks.0.bn.running_var"];
            assert!(
                values(rv).iter().any(|v| *v != 1.0),
                "the running variance moved before saving"
            );
        }
    }
}

fn expect_checkpoint_error(result: vaekit::Result<Model>, path: &Path, what: &str) -> String {
    match result {
        Err(Error::Checkpoint { path: p, reason }) => {
            assert_eq!(p, path, "{what}: the error names the file");
            reason
        }
        Err(other) => panic!("{what}: expected Error::Checkpoint, got {other:?}"),
        Ok(_) => panic!("{what}: loaded"),
    }
}

fn expect_tensor_error(result: vaekit::Result<Model>, what: &str) -> (String, String) {
    match result {
        Err(Error::Tensor { name, reason }) => (name, reason),
        Err(other) => panic!("{what}: expected Error::Tensor, got {other:?}"),
        Ok(_) => panic!("{what}: loaded"),
    }
}

/// The tensors and metadata of a freshly saved `preset`.
fn saved(preset: Preset, dir: &TempDir) -> (BTreeMap<String, Tensor>, BTreeMap<String, String>) {
    let path = dir.path(&format!("source-{preset}.safetensors"));
    Model::from_preset(preset, &Device::Cpu, 3)
        .unwrap()
        .save(&path)
        .unwrap();
    let ckpt = read_checkpoint(&path, &Device::Cpu).unwrap();
    (
        ckpt.tensors.into_iter().collect(),
        ckpt.metadata.into_iter().collect(),
    )
}

#[test]
fn load_refuses_files_that_are_not_checkpoints() {
    let dir = TempDir::new("not-checkpoints");
    let cases: [(&str, &[u8]); 3] = [
        ("text.safetensors", b"this is not a safetensors file\n"),
        ("empty.safetensors", b""),
        // A header length of 2^63: far past the end.
        (
            "huge-header.safetensors",
            &[0, 0, 0, 0, 0, 0, 0, 0x80, b'{', b'}'],
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path(name);
        std::fs::write(&path, bytes).unwrap();
        let reason = expect_checkpoint_error(Model::load(&path, &Device::Cpu), &path, name);
        assert!(
            reason.contains("not a valid safetensors file"),
            "{name}: {reason}"
        );
    }
    // A file that is not there is an I/O error naming it.
    let missing = dir.path("missing.safetensors");
    match Model::load(&missing, &Device::Cpu) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn load_refuses_a_truncated_checkpoint() {
    let dir = TempDir::new("truncated");
    let full = dir.path("full.safetensors");
    Model::from_preset(Preset::DenseVae, &Device::Cpu, 0)
        .unwrap()
        .save(&full)
        .unwrap();
    let bytes = std::fs::read(&full).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 100, 8, 4] {
        let path = dir.path(&format!("cut-{keep}.safetensors"));
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let reason = expect_checkpoint_error(
            Model::load(&path, &Device::Cpu),
            &path,
            &format!("cut to {keep} bytes"),
        );
        assert!(
            reason.contains("not a valid safetensors file"),
            "{keep}: {reason}"
        );
    }
}

#[test]
fn load_refuses_safetensors_without_the_config() {
    let dir = TempDir::new("no-config");
    let (tensors, _) = saved(Preset::DenseVae, &dir);
    let path = dir.path("bare.safetensors");
    write_checkpoint(&path, &tensors, &BTreeMap::new()).unwrap();
    let reason = expect_checkpoint_error(Model::load(&path, &Device::Cpu), &path, "bare");
    assert!(reason.contains(CONFIG_KEY), "{reason}");
    // The same bare weights do load into a model built by hand.
    let m = Model::from_preset(Preset::DenseVae, &Device::Cpu, 9).unwrap();
    m.load_weights(&path).unwrap();
    assert_eq!(bits(&m.params().snapshot()), bits(&tensors));
}

#[test]
fn load_refuses_weights_of_another_architecture_naming_a_tensor() {
    let dir = TempDir::new("other-arch");
    let (tensors, mut meta) = saved(Preset::ConvAe, &dir);
    // conv-ae's tensors under a dense-vae config: dense-vae's first parameter
    // (in name order) is not in the file.
    meta.insert(CONFIG_KEY.into(), Preset::DenseVae.config().to_json());
    let path = dir.path("dense-config.safetensors");
    write_checkpoint(&path, &tensors, &meta).unwrap();
    let (name, reason) = expect_tensor_error(Model::load(&path, &Device::Cpu), "dense-vae");
    assert_eq!(name, "decoder.hidden.0.bias");
    assert_eq!(reason, "missing");
    // Under conv-ae-2d's config every name exists but the code width differs:
    // the first tensor that differs is named with both shapes.
    meta.insert(CONFIG_KEY.into(), Preset::ConvAe2d.config().to_json());
    let path = dir.path("2d-config.safetensors");
    write_checkpoint(&path, &tensors, &meta).unwrap();
    let (name, reason) = expect_tensor_error(Model::load(&path, &Device::Cpu), "conv-ae-2d");
    assert_eq!(name, "decoder.fc.weight");
    assert!(
        reason.contains("[3136, 10]") && reason.contains("[3136, 2]"),
        "{reason}"
    );
}

#[test]
fn load_names_a_tensor_of_the_wrong_shape_dtype_or_missing() {
    let dir = TempDir::new("bad-tensor");
    let (tensors, meta) = saved(Preset::DenseVae, &dir);

    let mut wrong_shape = tensors.clone();
    wrong_shape.insert(
        "encoder.out.bias".into(),
        Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap(),
    );
    let path = dir.path("shape.safetensors");
    write_checkpoint(&path, &wrong_shape, &meta).unwrap();
    let (name, reason) = expect_tensor_error(Model::load(&path, &Device::Cpu), "shape");
    assert_eq!(name, "encoder.out.bias");
    assert!(reason.contains("[5]") && reason.contains("[4]"), "{reason}");

    let mut missing = tensors.clone();
    missing.remove("decoder.out.weight");
    let path = dir.path("missing.safetensors");
    write_checkpoint(&path, &missing, &meta).unwrap();
    let (name, reason) = expect_tensor_error(Model::load(&path, &Device::Cpu), "missing");
    assert_eq!(name, "decoder.out.weight");
    assert_eq!(reason, "missing");

    let mut wrong_dtype = tensors.clone();
    let w = wrong_dtype["encoder.hidden.0.weight"]
        .to_dtype(DType::F64)
        .unwrap();
    wrong_dtype.insert("encoder.hidden.0.weight".into(), w);
    let path = dir.path("dtype.safetensors");
    write_checkpoint(&path, &wrong_dtype, &meta).unwrap();
    let (name, reason) = expect_tensor_error(Model::load(&path, &Device::Cpu), "dtype");
    assert_eq!(name, "encoder.hidden.0.weight");
    assert!(reason.contains("F64") && reason.contains("F32"), "{reason}");

    // An extra tensor the model does not use is not an error.
    let mut extra = tensors.clone();
    extra.insert(
        "encoder.num_batches_tracked".into(),
        Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(),
    );
    let path = dir.path("extra.safetensors");
    write_checkpoint(&path, &extra, &meta).unwrap();
    let m = Model::load(&path, &Device::Cpu).unwrap();
    assert_eq!(bits(&m.params().snapshot()), bits(&tensors));
}

#[test]
fn load_names_the_problem_with_a_config_that_does_not_parse_or_cannot_work() {
    let dir = TempDir::new("bad-config");
    let (tensors, mut meta) = saved(Preset::DenseVae, &dir);
    let json = Preset::DenseVae.config().to_json();
    let cases = [
        // Cut-off JSON: serde says where it ended.
        ("cut", json[..json.len() / 2].to_string(), "EOF"),
        // A model kind that does not exist: serde names it.
        ("kind", json.replacen("\"vae\"", "\"gan\"", 1), "gan"),
        // Valid JSON, unworkable config: the field is named.
        (
            "latent",
            json.replacen("\"latent_dim\":2", "\"latent_dim\":0", 1),
            "latent_dim",
        ),
    ];
    for (what, text, needle) in cases {
        assert_ne!(text, json, "{what}: the edit applied");
        meta.insert(CONFIG_KEY.into(), text);
        let path = dir.path(&format!("{what}.safetensors"));
        write_checkpoint(&path, &tensors, &meta).unwrap();
        let reason = expect_checkpoint_error(Model::load(&path, &Device::Cpu), &path, what);
        assert!(reason.contains("config"), "{what}: {reason}");
        assert!(reason.contains(needle), "{what}: {reason}");
    }
}

// ------------------------------------------------------------ config validation

fn vae(config: &mut ModelConfig) -> &mut vaekit::models::VaeConfig {
    match config {
        ModelConfig::Vae(c) => c,
        _ => panic!("not a VAE config"),
    }
}

/// `Model::new` and `ModelConfig::from_json` both refuse `config` with
/// `Error::Config` for exactly `field`; returns the reason.
fn expect_config_error(config: &ModelConfig, field: &str, json_too: bool) -> String {
    let reason = match Model::new(config, &Device::Cpu, 0) {
        Err(Error::Config { field: f, reason }) => {
            assert_eq!(f, field, "wrong field blamed ({reason})");
            reason
        }
        Err(other) => panic!("{field}: expected Error::Config, got {other:?}"),
        Ok(_) => panic!("{field}: the model built"),
    };
    match config.check() {
        Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
        other => panic!("{field}: check gave {other:?}"),
    }
    if json_too {
        match ModelConfig::from_json(&config.to_json()) {
            Err(Error::Config { field: f, .. }) => assert_eq!(f, field, "from_json"),
            other => panic!("{field}: from_json gave {other:?}"),
        }
    }
    reason
}

#[test]
fn config_errors_name_the_field_at_fault() {
    // latent_dim 0.
    let mut c = Preset::DenseVae.config();
    vae(&mut c).latent_dim = 0;
    expect_config_error(&c, "latent_dim", true);

    // A decoder whose blocks make 16×16 images: conv-vae-bn's first transposed
    // conv with stride 1 turns 7 into 8, the second 8 into 16.
    let mut c = Preset::ConvVaeBn.config();
    if let DecoderConfig::Conv(d) = &mut vae(&mut c).decoder {
        d.blocks[0].stride = 1;
    }
    let reason = expect_config_error(&c, "decoder.blocks", true);
    assert!(
        reason.contains("16×16") && reason.contains("28×28"),
        "{reason}"
    );

    // A kernel that does not fit: cvae-tf's second conv sees 13×13 unpadded.
    let mut c = Preset::CvaeTf.config();
    if let EncoderConfig::Conv(e) = &mut vae(&mut c).encoder {
        e.blocks[1].kernel = 20;
    }
    let reason = expect_config_error(&c, "encoder.blocks[1]", true);
    assert!(reason.contains("kernel 20"), "{reason}");

    // A zero stride.
    let mut c = Preset::CvaeTf.config();
    if let EncoderConfig::Conv(e) = &mut vae(&mut c).encoder {
        e.blocks[0].stride = 0;
    }
    expect_config_error(&c, "encoder.blocks[0].stride", true);

    // An output padding as large as the stride.
    let mut c = Preset::CvaeTf.config();
    if let DecoderConfig::Conv(d) = &mut vae(&mut c).decoder {
        d.blocks[0].upsampling = vaekit::nets::Upsampling::Transposed { output_padding: 2 };
    }
    expect_config_error(&c, "decoder.blocks[0].upsampling.output_padding", true);

    // encoder.output_dim ≠ 2 · latent_dim.
    let mut c = Preset::DenseVae.config();
    if let EncoderConfig::Dense(e) = &mut vae(&mut c).encoder {
        e.output_dim = 3;
    }
    let reason = expect_config_error(&c, "encoder.output_dim", true);
    assert!(reason.contains('3') && reason.contains('4'), "{reason}");

    // decoder.input_dim ≠ latent_dim.
    let mut c = Preset::DenseVae.config();
    if let DecoderConfig::Dense(d) = &mut vae(&mut c).decoder {
        d.input_dim = 5;
    }
    expect_config_error(&c, "decoder.input_dim", true);

    // A Gaussian likelihood with σ ≤ 0 (or not a number).
    for (sigma, json_too) in [(0.0, true), (-0.5, true), (f64::NAN, false)] {
        let mut c = Preset::DigitCvae.config();
        vae(&mut c).loss.likelihood = Likelihood::Gaussian { sigma };
        expect_config_error(&c, "loss.likelihood.sigma", json_too);
    }

    // β < 0.
    let mut c = Preset::ConvVaeBn.config();
    vae(&mut c).loss.beta = -0.1;
    expect_config_error(&c, "loss.beta", true);

    // A Bernoulli likelihood on a linear decoder (dense-vae's).
    let mut c = Preset::DenseVae.config();
    vae(&mut c).loss.likelihood = Likelihood::Bernoulli;
    let reason = expect_config_error(&c, "loss.likelihood", true);
    assert!(reason.contains("Bernoulli"), "{reason}");

    // A loss that does not reduce to a scalar.
    let mut c = Preset::DenseVae.config();
    vae(&mut c).loss.reduction = Reduction::None;
    expect_config_error(&c, "loss.reduction", true);

    // The digit model's classifier must see whole images.
    let mut c = Preset::DigitCvae.config();
    if let Some(ConditioningConfig::Classifier(d)) = &mut vae(&mut c).conditioning {
        d.classifier.in_dim = 100;
    }
    expect_config_error(&c, "conditioning.classifier.in_dim", true);
}

#[test]
fn an_unknown_preset_name_is_a_config_error_listing_the_names() {
    match "nope".parse::<Preset>() {
        Err(Error::Config { field, reason }) => {
            assert_eq!(field, "preset");
            assert!(reason.contains("`nope`"), "{reason}");
            for p in Preset::ALL {
                assert!(reason.contains(p.name()), "{reason} lacks {p}");
            }
        }
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

// ------------------------------------------------------------- object safety

#[test]
fn boxed_encoders_and_decoders_work_through_the_traits() {
    let store = ParamStore::new(&Device::Cpu);
    let vb = store.var_builder(5);
    let (x, _) = digits();
    for preset in Preset::ALL {
        let (enc_cfg, dec_cfg) = match preset.config() {
            ModelConfig::Vae(c) => (c.encoder, c.decoder),
            ModelConfig::Autoencoder(c) => (c.encoder, c.decoder),
            _ => unreachable!("the presets build these two families"),
        };
        let vb = vb.pp(preset.name());
        let encoder: Box<dyn Encoder> = enc_cfg.build(vb.pp("encoder")).unwrap();
        let decoder: Box<dyn Decoder> = dec_cfg.build(vb.pp("decoder")).unwrap();
        let (encoder, decoder): (&dyn Encoder, &dyn Decoder) = (&*encoder, &*decoder);
        assert_eq!(encoder.input_shape(), ImageShape::MNIST, "{preset}");
        assert_eq!(encoder.output_dim(), enc_cfg.output_dim(), "{preset}");
        let h = encoder.forward_t(&x, false).unwrap();
        assert_eq!(h.dims(), [4, encoder.output_dim()], "{preset}");
        assert_eq!(decoder.input_dim(), dec_cfg.input_dim(), "{preset}");
        assert_eq!(decoder.output_shape(), ImageShape::MNIST, "{preset}");
        assert_eq!(decoder.output_kind(), dec_cfg.output_kind(), "{preset}");
        let z = Tensor::ones((3, decoder.input_dim()), DType::F32, &Device::Cpu).unwrap();
        let out = decoder.forward_t(&z, false).unwrap();
        assert_eq!(out.dims(), [3, 1, 28, 28], "{preset}");
        if decoder.output_kind() == OutputKind::Probabilities {
            assert!(values(&out).iter().all(|v| (0.0..=1.0).contains(v)));
        }
        // A wrongly shaped batch is an error naming the shapes.
        let err = encoder
            .forward_t(&z, false)
            .expect_err("latent vectors are not images")
            .to_string();
        assert!(err.contains("28"), "{preset}: {err}");
    }
}

fn dense_encoder_config(latent: usize) -> DenseEncoderConfig {
    DenseEncoderConfig::new(ImageShape::MNIST, &[64], 2 * latent)
        .with_activation(Activation::Relu)
        .with_init(InitScheme::GlorotUniform)
}

fn cvae_tf_decoder() -> vaekit::nets::ConvDecoderConfig {
    match Preset::CvaeTf.config() {
        ModelConfig::Vae(c) => match c.decoder {
            DecoderConfig::Conv(d) => d,
            _ => panic!("cvae-tf has a conv decoder"),
        },
        _ => panic!("cvae-tf is a VAE"),
    }
}

#[test]
fn a_hand_assembled_vae_mixes_a_dense_encoder_with_a_conv_decoder() {
    let store = ParamStore::new(&Device::Cpu);
    let vb = store.var_builder(11);
    let encoder = DenseEncoder::new(&dense_encoder_config(2), vb.pp("encoder")).unwrap();
    let decoder = ConvDecoder::new(&cvae_tf_decoder(), vb.pp("decoder")).unwrap();
    let vae = Vae::new(
        &store,
        encoder,
        decoder,
        StandardNormal::new(2),
        PosteriorParam::LogVariance,
        VaeLossConfig::default(),
    )
    .unwrap();
    let (x, _) = digits();
    let out = vae
        .forward_t(&x, Condition::None, &mut rng(0), true)
        .unwrap();
    assert_eq!(out.z.dims(), [4, 2]);
    assert_eq!(out.decoded.dims(), [4, 1, 28, 28]);
    let elbo = vae
        .loss(&out, &x, &mut rng(1), vae.loss_config().beta)
        .unwrap();
    let total = common::scalar(&elbo.total);
    assert!(total.is_finite() && total > 0.0, "{total}");
    let grads = elbo.total.backward().unwrap();
    for (name, var) in store.named_vars() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let gv = values(g);
        assert!(gv.iter().all(|v| v.is_finite()), "{name}");
        if name.ends_with("weight") {
            assert!(gv.iter().any(|v| *v != 0.0), "{name}: all-zero gradient");
        }
    }
    assert!(store
        .named_vars()
        .iter()
        .any(|(n, _)| n == "encoder.hidden.0.weight"));
    assert!(store
        .named_vars()
        .iter()
        .any(|(n, _)| n == "decoder.blocks.2.conv.weight"));

    // The same with every part boxed behind its trait.
    let encoder: Box<dyn Encoder> = EncoderConfig::Dense(dense_encoder_config(2))
        .build(vb.pp("boxed.encoder"))
        .unwrap();
    let decoder: Box<dyn Decoder> = DecoderConfig::Conv(cvae_tf_decoder())
        .build(vb.pp("boxed.decoder"))
        .unwrap();
    let prior: Box<dyn LatentPrior> = Box::new(StandardNormal::new(2));
    let boxed = Vae::new(
        &store,
        encoder,
        decoder,
        prior,
        PosteriorParam::LogVariance,
        VaeLossConfig::default(),
    )
    .unwrap();
    let out = boxed
        .forward_t(&x, Condition::None, &mut rng(0), true)
        .unwrap();
    let elbo = boxed
        .loss(&out, &x, &mut rng(1), boxed.loss_config().beta)
        .unwrap();
    assert!(common::scalar(&elbo.total).is_finite());
    elbo.total.backward().unwrap();
}

#[test]
fn a_vae_with_a_mixture_prior_falls_back_to_monte_carlo_kl() {
    let store = ParamStore::new(&Device::Cpu);
    let vb = store.var_builder(12);
    let encoder = DenseEncoder::new(&dense_encoder_config(2), vb.pp("encoder")).unwrap();
    let decoder = ConvDecoder::new(&cvae_tf_decoder(), vb.pp("decoder")).unwrap();
    let centres = Tensor::new(&[[1.0f32, 0.0], [-1.0, 0.0], [0.0, 1.5]], &Device::Cpu).unwrap();
    let prior = GaussianMixturePrior::new(centres, 0.6).unwrap();
    assert!(!prior.has_closed_form_kl());
    let loss = VaeLossConfig::default()
        .with_likelihood(Likelihood::Bernoulli)
        .with_kl(KlEstimator::Analytic)
        .with_beta(1.0)
        .with_reduction(Reduction::BatchMean);
    let vae = Vae::new(
        &store,
        encoder,
        decoder,
        prior.clone(),
        PosteriorParam::LogVariance,
        loss,
    )
    .unwrap();
    let (x, _) = digits();
    let out = vae
        .forward_t(&x, Condition::None, &mut rng(0), true)
        .unwrap();
    let g = rng(99);
    let elbo = vae
        .loss(&out, &x, &mut g.clone(), vae.loss_config().beta)
        .unwrap();
    let kl = common::scalar(&elbo.kl);
    assert!(kl.is_finite(), "{kl}");
    // "Analytic" with a prior that has no closed form is exactly the prior's
    // single-sample Monte Carlo estimate from the same generator state.
    let mc = monte_carlo_kl(&prior, &out.posterior, 1, &mut g.clone()).unwrap();
    let mc = Reduction::BatchMean.apply(&mc).unwrap();
    assert_eq!(kl, common::scalar(&mc));
    // It is an estimate: another generator state gives another value.
    let other = vae
        .loss(&out, &x, &mut rng(100), vae.loss_config().beta)
        .unwrap();
    assert_ne!(common::scalar(&other.kl), kl);
    let grads = elbo.total.backward().unwrap();
    let w = store.get("encoder.out.weight").unwrap();
    assert!(values(grads.get(w.as_tensor()).unwrap())
        .iter()
        .all(|v| v.is_finite()));
}

// -------------------------------------------------------------- digit-cvae grid

#[test]
fn digit_cvae_grid_renders_every_digit_for_each_style() {
    let model = Model::from_preset(Preset::DigitCvae, &Device::Cpu, 3).unwrap();
    let m = model.as_vae().expect("digit-cvae");
    let rows = 3;
    let grid = m.generate_grid(rows, &mut rng(5), &Device::Cpu).unwrap();
    assert_eq!(grid.dims(), [rows * 10, 1, 28, 28]);
    let px = values(&grid);
    assert!(
        px.iter().all(|v| (0.0..=1.0).contains(v)),
        "pixels in [0, 1]"
    );
    let image = |i: usize| &px[i * 784..(i + 1) * 784];
    let max_diff = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    // Row r decodes the r-th prior draw with digits 0..9: the same z for the
    // whole row (checked by decoding that z by hand), a different image per
    // column (the decoder sees the class).
    let z = StandardNormal::new(10)
        .sample(rows, &mut rng(5), &Device::Cpu)
        .unwrap();
    let digits = Tensor::arange(0u32, 10, &Device::Cpu).unwrap();
    for r in 0..rows {
        let zr = z.narrow(0, r, 1).unwrap().repeat((10, 1)).unwrap();
        let by_hand = m.decode_pixels(&zr, Condition::Labels(&digits)).unwrap();
        let row = grid.narrow(0, r * 10, 10).unwrap();
        common::assert_close(&format!("grid row {r}"), &row, &by_hand, 1e-5, 0.0);
        for k in 0..10 {
            for j in 0..k {
                let d = max_diff(image(r * 10 + k), image(r * 10 + j));
                assert!(
                    d > 1e-3,
                    "row {r}: digits {j} and {k} render alike (max diff {d})"
                );
            }
        }
    }
    // Columns share a digit but not a style.
    let d = max_diff(image(4), image(14));
    assert!(d > 1e-3, "rows 0 and 1 of digit 4 alike (max diff {d})");
}

// ----------------------------------------------------------------- batch norm

#[test]
fn batch_norm_is_per_image_in_evaluation_and_per_batch_in_training() {
    let model = Model::from_preset(Preset::ConvVaeBn, &Device::Cpu, 0).unwrap();
    let vae = model.as_vae().expect("conv-vae-bn is a VAE");
    let (x, _) = digits();
    let first = x.narrow(0, 0, 1).unwrap();
    let eps = Tensor::zeros((4, 32), DType::F32, &Device::Cpu).unwrap();
    let eps1 = eps.narrow(0, 0, 1).unwrap();
    let running_before = tensor_bits(
        model
            .params()
            .get("encoder.blocks.0.bn.running_mean")
            .unwrap()
            .as_tensor(),
    );

    // Evaluation: running statistics, so image 0 gives the same output alone
    // as in a batch of 4, and the running statistics stay put. "The same" is
    // up to float rounding (1e-6 relative): the CPU matrix products may sum in
    // a different order for a batch of 1 than of 4 (the decoder's pixels differ
    // by 1 ULP in a few places), which is not a dependence on the batch's
    // content. Training below differs by orders of magnitude more.
    let alone = vae
        .forward_with_eps(&first, Condition::None, &eps1, false)
        .unwrap();
    let batch = vae
        .forward_with_eps(&x, Condition::None, &eps, false)
        .unwrap();
    let row0 = |t: &Tensor| t.narrow(0, 0, 1).unwrap();
    let same = |what: &str, a: &Tensor, b: &Tensor| common::assert_close(what, a, b, 1e-6, 0.0);
    same(
        "eval: posterior mean of image 0",
        alone.posterior.mean(),
        &row0(batch.posterior.mean()),
    );
    same(
        "eval: posterior logvar of image 0",
        alone.posterior.logvar(),
        &row0(batch.posterior.logvar()),
    );
    same(
        "eval: decoded image 0",
        &alone.decoded,
        &row0(&batch.decoded),
    );
    let r_alone = model.reconstruct(&first, Condition::None).unwrap();
    let r_batch = model.reconstruct(&x, Condition::None).unwrap();
    same("eval: reconstruct image 0", &r_alone, &row0(&r_batch));
    let running = model
        .params()
        .get("encoder.blocks.0.bn.running_mean")
        .unwrap();
    assert_eq!(tensor_bits(running.as_tensor()), running_before);

    // Training: batch statistics, so image 0's output depends on its company.
    let alone = vae
        .forward_with_eps(&first, Condition::None, &eps1, true)
        .unwrap();
    let batch = vae
        .forward_with_eps(&x, Condition::None, &eps, true)
        .unwrap();
    let a = values(alone.posterior.mean());
    let b = values(&row0(batch.posterior.mean()));
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f64, f64::max);
    assert!(
        diff > 1e-2 * scale,
        "train: image 0's posterior mean moved only {diff} (scale {scale}) with the batch"
    );
    // And a training forward updates the running statistics.
    assert_ne!(tensor_bits(running.as_tensor()), running_before);
}

#[test]
fn model_level_helpers_agree_with_the_network() {
    // encode is the posterior mean in evaluation mode; decode/sample give pixels.
    let (x, labels) = digits();
    let model = Model::from_preset(Preset::CvaeTf, &Device::Cpu, 2).unwrap();
    let vae = model.as_vae().expect("cvae-tf is a VAE");
    let code = model.encode(&x).unwrap();
    assert_eq!(code.dims(), [4, 2]);
    assert_eq!(
        tensor_bits(&code),
        tensor_bits(vae.posterior(&x, false).unwrap().mean())
    );
    let px = model.decode(&code, Condition::None).unwrap();
    assert_eq!(px.dims(), [4, 1, 28, 28]);
    assert!(values(&px).iter().all(|v| (0.0..=1.0).contains(v)));
    let s = model.sample(5, &mut rng(1)).unwrap();
    assert_eq!(s.dims(), [5, 1, 28, 28]);
    assert_eq!(model.latent_dim(), 2);
    assert_eq!(model.input_shape(), ImageShape::MNIST);
    // The digit model needs labels within its classes and digits to decode.
    let digit = Model::from_preset(Preset::DigitCvae, &Device::Cpu, 2).unwrap();
    let beyond = Tensor::new(&[1u32, 2, 10, 3], &Device::Cpu).unwrap();
    let err = digit
        .batch_loss(
            &Batch::new(x.clone(), beyond),
            &mut rng(0),
            &StepContext::of(Mode::Train),
        )
        .expect_err("label 10 of 10 classes")
        .to_string();
    assert!(err.contains("label 10"), "{err}");
    assert!(digit
        .decode(
            &Tensor::zeros((2, 10), DType::F32, &Device::Cpu).unwrap(),
            Condition::None
        )
        .is_err());
    // …and says so when a batch has none, for training and for evaluation.
    assert!(digit.needs_labels());
    let unlabelled = Batch::new(x.clone(), None);
    for err in [
        digit
            .batch_loss(&unlabelled, &mut rng(0), &StepContext::of(Mode::Train))
            .expect_err("no labels")
            .to_string(),
        digit
            .evaluate(&unlabelled, &mut rng(0), &StepContext::eval())
            .expect_err("no labels")
            .to_string(),
    ] {
        assert!(
            err.contains("a class-conditioned VAE needs a label per image"),
            "{err}"
        );
    }
    // A VAE or an autoencoder trains on unlabelled images.
    for preset in [Preset::CvaeTf, Preset::ConvAe] {
        let m = Model::from_preset(preset, &Device::Cpu, 2).unwrap();
        assert!(!m.needs_labels(), "{preset}");
        m.batch_loss(&unlabelled, &mut rng(0), &StepContext::of(Mode::Train))
            .unwrap();
    }
    let batch = Batch::new(x.clone(), labels.clone());
    let terms = digit
        .batch_loss(&batch, &mut rng(0), &StepContext::of(Mode::Train))
        .unwrap();
    let names: Vec<&str> = terms.terms.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["reconstruction", "kl", "classification"]);
    let eval = digit
        .evaluate(&batch, &mut rng(0), &StepContext::eval())
        .unwrap();
    let names: Vec<&str> = eval.terms.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        ["reconstruction", "kl", "classification", "accuracy"]
    );
    let accuracy = common::scalar(eval.term("accuracy").unwrap());
    assert!(
        [0.0, 0.25, 0.5, 0.75, 1.0].contains(&accuracy),
        "a share of 4 images: {accuracy}"
    );
}

/// The codes of `images` through the tracked network (evaluation mode).
fn tracked_codes(model: &Model, images: &Tensor) -> Tensor {
    if let Some(ae) = model.as_autoencoder() {
        ae.encode(images, false).unwrap()
    } else if let Some(vae) = model.as_vae() {
        vae.posterior(images, false).unwrap().mean().clone()
    } else {
        let m = model.as_vae().expect("one of the three families");
        m.posterior(images, false).unwrap().mean().clone()
    }
}

#[test]
fn inference_records_no_graph_and_sees_every_training_update() {
    let (images, labels) = digits();
    let batch = Batch::new(images.clone(), labels.clone());
    for preset in Preset::ALL {
        let model = Model::from_preset(preset, &Device::Cpu, 5).unwrap();
        let mut opt = TrainConfig::for_preset(preset)
            .optimizer
            .build(model.params().trainable_vars())
            .unwrap();
        // Training steps move the weights and the batch-norm statistics in place.
        for step in 0..3 {
            let loss = model
                .batch_loss(&batch, &mut rng(step), &StepContext::of(Mode::Train))
                .unwrap();
            opt.backward_step(&loss.total).unwrap();
        }

        let tracked = model
            .batch_loss(&batch, &mut rng(9), &StepContext::of(Mode::Eval))
            .unwrap();
        let untracked = model
            .evaluate(&batch, &mut rng(9), &StepContext::eval())
            .unwrap();
        assert!(tracked.total.track_op(), "{preset}: loss keeps its graph");
        assert!(!untracked.total.track_op(), "{preset}: evaluate has none");
        assert!(tracked.terms.len() <= untracked.terms.len(), "{preset}");
        for (a, b) in tracked.terms.iter().zip(&untracked.terms) {
            assert_eq!(a.name, b.name, "{preset}");
            assert_eq!(
                tensor_bits(&a.value),
                tensor_bits(&b.value),
                "{preset}: term {}",
                a.name
            );
        }

        let codes = model.encode(&images).unwrap();
        assert!(!codes.track_op(), "{preset}: encode");
        assert_eq!(
            tensor_bits(&codes),
            tensor_bits(&tracked_codes(&model, &images)),
            "{preset}: encode uses the trained weights and statistics"
        );
        let pixels = model
            .reconstruct(&images, Condition::Labels(&labels))
            .unwrap();
        assert!(!pixels.track_op(), "{preset}: reconstruct");
        assert!(
            !model.sample(3, &mut rng(1)).unwrap().track_op(),
            "{preset}"
        );
    }
}

#[test]
fn vanilla_vae_has_pytorch_vaes_layers_for_32_and_64_pixel_colour_images() {
    use vaekit::models::presets::vanilla_vae;
    // PyTorch-VAE's VanillaVAE(in_channels=3, latent_dim=128) at 64×64: five
    // Conv2d(k3)+BatchNorm2d of 32…512 channels (896 + 64, 18,496 + 128,
    // 73,856 + 256, 295,168 + 512, 1,180,160 + 1,024), fc_mu and fc_var
    // (2 × 262,272), decoder_input (264,192), four ConvTranspose2d+BatchNorm2d
    // (1,179,904 + 512, 295,040 + 256, 73,792 + 128, 18,464 + 64), the final
    // ConvTranspose2d(32)+BatchNorm2d (9,248 + 64) and Conv2d(32→3) (867):
    // 3,937,635 trainable values. At 32×32 the flattened code is 512, not 2048.
    for (side, params) in [(64, 3_937_635), (32, 3_346_275)] {
        let shape = ImageShape::new(3, side, side);
        let config = vanilla_vae(shape, 128, Likelihood::Bernoulli).unwrap();
        let model = Model::new(&config, &Device::Cpu, 0).unwrap();
        assert_eq!(model.params().num_trainable(), params, "{side}×{side}");
        let x = Tensor::full(0.25f32, (2, 3, side, side), &Device::Cpu).unwrap();
        assert_eq!(
            model.reconstruct(&x, Condition::None).unwrap().dims(),
            [2, 3, side, side]
        );
        assert_eq!(
            model.sample(3, &mut rng(0)).unwrap().dims(),
            [3, 3, side, side]
        );
        let terms = model
            .batch_loss(
                &Batch::new(x, None),
                &mut rng(0),
                &StepContext::of(Mode::Train),
            )
            .unwrap();
        assert!(common::scalar(&terms.total).is_finite());
    }
    // A Gaussian likelihood and grey images work too; sizes that five
    // halvings cannot divide do not.
    let grey = vanilla_vae(
        ImageShape::new(1, 32, 64),
        16,
        Likelihood::Gaussian { sigma: 0.1 },
    )
    .unwrap();
    Model::new(&grey, &Device::Cpu, 0).unwrap();
    for bad in [ImageShape::new(3, 48, 48), ImageShape::new(0, 32, 32)] {
        match vanilla_vae(bad, 8, Likelihood::Bernoulli) {
            Err(Error::Config { field, reason }) => {
                assert_eq!(field, "image");
                assert!(reason.contains("multiples of 32"), "{reason}");
            }
            other => panic!("{bad:?}: expected a config error, got {other:?}"),
        }
    }
}
