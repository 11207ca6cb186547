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
