//! Run files and model configs as a user writes them: an unknown field is an
//! error at every level (a typo such as `free_bit` must not train without
//! free bits), anything after the JSON object is an error, and an error names
//! the field's path and the line and column where it is.

use serde_json::{json, Value};
use vaekit::models::{ModelConfig, Preset};
use vaekit::train::RunConfig;
use vaekit::Error;

/// The run file of `preset` as JSON.
fn run_file(preset: Preset) -> Value {
    serde_json::from_str(&RunConfig::for_preset(preset).to_json_pretty()).unwrap()
}

/// The field and reason of a config error.
#[track_caller]
fn config_error(json: &str) -> (String, String) {
    match RunConfig::from_json(json) {
        Err(Error::Config { field, reason }) => (field, reason),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    // (preset, the object to add a field to, the path the error must name)
    let cases: [(Preset, &[&str], &str); 11] = [
        (Preset::DenseVae, &[], "typo"),
        (Preset::DenseVae, &["model"], "model.typo"),
        (
            Preset::DenseVae,
            &["model", "encoder"],
            "model.encoder.typo",
        ),
        (
            Preset::DenseVae,
            &["model", "decoder"],
            "model.decoder.typo",
        ),
        (
            Preset::DenseVae,
            &["model", "encoder", "input"],
            "model.encoder.input.typo",
        ),
        (Preset::DenseVae, &["model", "loss"], "model.loss.typo"),
        (Preset::DenseVae, &["train"], "train.typo"),
        (
            Preset::ConvVaeBn,
            &["model", "encoder", "blocks", "1"],
            "model.encoder.blocks[1].typo",
        ),
        (
            Preset::ConvVaeBn,
            &["model", "decoder", "blocks", "0"],
            "model.decoder.blocks[0].typo",
        ),
        (
            Preset::ConvVaeBn,
            &["model", "decoder", "start"],
            "model.decoder.start.typo",
        ),
        // The autoencoder's loss keys sit beside its other fields.
        (Preset::ConvAe, &["model"], "model.typo"),
    ];
    for (preset, at, path) in cases {
        let mut file = run_file(preset);
        let mut object = &mut file;
        for step in at {
            object = match step.parse::<usize>() {
                Ok(i) => &mut object[i],
                Err(_) => &mut object[*step],
            };
        }
        object["typo"] = json!(1);
        let (field, reason) = config_error(&file.to_string());
        let parent = path.trim_end_matches(".typo").trim_end_matches("typo");
        assert!(
            field == path || field == parent,
            "{path}: field `{field}` ({reason})"
        );
        assert!(reason.contains("unknown field `typo`"), "{path}: {reason}");
    }
    // The case that trained without free bits and exited 0.
    let mut file = run_file(Preset::DenseVae);
    file["model"]["loss"]["free_bit"] = json!(0.5);
    let (field, reason) = config_error(&file.to_string());
    assert!(field.starts_with("model.loss"), "{field}: {reason}");
    assert!(reason.contains("free_bit"), "{reason}");
    // Without the typo the file parses, and a model config alone too.
    RunConfig::from_json(&run_file(Preset::ConvAe).to_string()).unwrap();
    let model = run_file(Preset::ConvAe)["model"].to_string();
    ModelConfig::from_json(&model).unwrap();
}

#[test]
fn anything_after_the_json_object_is_refused() {
    let one = run_file(Preset::DenseVae).to_string();
    RunConfig::from_json(&format!("{one}\n  \n")).unwrap();
    let mut other = run_file(Preset::DenseVae);
    other["train"]["epochs"] = json!(99);
    for tail in [other.to_string(), "x".to_string(), "{}".to_string()] {
        let (field, reason) = config_error(&format!("{one}\n{tail}"));
        assert_eq!(field, "config");
        assert!(reason.contains("one JSON object"), "{reason}");
    }
}

#[test]
fn errors_point_at_the_bad_field() {
    let mut file = run_file(Preset::ConvVaeBn);
    file["model"]["encoder"]["blocks"][1]["kernel"] = json!("four");
    let text = serde_json::to_string_pretty(&file).unwrap();
    let (field, reason) = config_error(&text);
    assert_eq!(field, "model.encoder.blocks[1].kernel");
    // The line of the bad `"kernel"` key.
    let line = text
        .lines()
        .position(|l| l.contains("\"kernel\": \"four\""))
        .map(|i| i + 1)
        .unwrap();
    assert!(
        reason.contains(&format!("at line {line} column")),
        "line {line}: {reason}"
    );
    // Before, every error under `model` named the end of the model object.
    let model_end = text.lines().position(|l| l == "  },").unwrap() + 1;
    assert_ne!(line, model_end);
}

// ------------------------------------------------ a config is valid when it builds

/// The paths of every number in `v` (`encoder.hidden[0]`, `loss.beta`).
fn number_paths(v: &Value, at: String, out: &mut Vec<(String, bool)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                number_paths(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                number_paths(x, format!("{at}[{i}]"), out);
            }
        }
        Value::Number(n) => out.push((at, n.is_f64())),
        _ => {}
    }
}

/// The value at `path` in `v`, for writing.
fn at_path<'v>(v: &'v mut Value, path: &str) -> &'v mut Value {
    let mut v = v;
    for part in path.split('.') {
        let (key, rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        v = &mut v[key];
        for index in rest.split(['[', ']']).filter(|s| !s.is_empty()) {
            v = &mut v[index.parse::<usize>().unwrap()];
        }
    }
    v
}

/// Every key anywhere in `v`.
fn keys(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

/// The configs the property starts from: every preset, a colour VAE, the
/// digit-conditioned VAE with given labels and a mixture prior, the digit
/// VQ-VAE and the digit Gumbel-softmax VAE.
fn seeds() -> Vec<Value> {
    let mut out: Vec<Value> = Preset::ALL
        .iter()
        .map(|p| serde_json::to_value(p.config()).unwrap())
        .collect();
    let colour = vaekit::models::presets::vanilla_vae(
        vaekit::nets::ImageShape::new(3, 32, 32),
        8,
        vaekit::models::Likelihood::Gaussian { sigma: 0.1 },
    )
    .unwrap();
    out.push(serde_json::to_value(colour).unwrap());
    let mut given = serde_json::to_value(vaekit::models::presets::digit_cvae(
        4,
        vaekit::models::Conditioning::Given,
    ))
    .unwrap();
    given["prior"] = json!({"type": "gaussian_mixture", "components": 3, "spread": 2.0,
        "sigma": 0.5, "learn_means": true, "learn_variances": false});
    out.push(given);
    out.push(serde_json::to_value(vaekit::models::presets::vq_vae_digits()).unwrap());
    out.push(serde_json::to_value(vaekit::models::presets::gumbel_vae_digits()).unwrap());
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 160,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// One number of a working config changed at random: the config either
    /// passes `check` and then builds and trains a step (so `check` cannot
    /// promise what building refuses), or `check` refuses it naming a field
    /// the config has, under the part it belongs to.
    #[test]
    fn a_config_that_checks_builds_and_one_that_does_not_names_its_field(
        seed in 0usize..10,
        pick in 0usize..1000,
        int in 0u64..40,
        float in -2.0f64..3.0,
    ) {
        let mut json = seeds()[seed].clone();
        let mut numbers = Vec::new();
        number_paths(&json, String::new(), &mut numbers);
        let (path, is_float) = numbers[pick % numbers.len()].clone();
        *at_path(&mut json, &path) = if is_float { json!(float) } else { json!(int) };
        let Ok(config) = serde_json::from_value::<ModelConfig>(json.clone()) else {
            return Ok(());
        };
        match config.check() {
            Ok(_) => {
                let device = candle_core::Device::Cpu;
                let model = vaekit::models::Model::new(&config, &device, 0);
                proptest::prop_assert!(model.is_ok(), "{path} = {}: checked, but {:?}", at_path(&mut json, &path), model.err());
                let model = model.unwrap();
                let shape = config.input_shape();
                let images = candle_core::Tensor::full(
                    0.5f32, (2, shape.channels, shape.height, shape.width), &device).unwrap();
                let labels = candle_core::Tensor::zeros(2, candle_core::DType::U32, &device).unwrap();
                let batch = vaekit::data::Batch::new(images, labels);
                use vaekit::models::{StepContext, Trainable};
                let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
                let loss = model.batch_loss(&batch, &mut rng, &StepContext::train());
                proptest::prop_assert!(loss.is_ok(), "{path}: checked and built, but a step fails: {:?}", loss.err());
            }
            Err(Error::Config { field, reason }) => {
                let mut names = std::collections::BTreeSet::new();
                keys(&json, &mut names);
                let top = field.split(['.', '[']).next().unwrap_or_default();
                let last = field.rsplit('.').next().unwrap_or_default();
                let last = last.split('[').next().unwrap_or_default();
                proptest::prop_assert!(
                    field == "config" || (json.get(top).is_some() && names.contains(last)),
                    "{path} changed: the error names `{field}`, which the config does not have ({reason})"
                );
            }
            Err(other) => proptest::prop_assert!(false, "{path}: not a config error: {other:?}"),
        }
    }
}
