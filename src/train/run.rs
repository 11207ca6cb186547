//! A run as a file: a model config and a training config in one JSON object, so
//! a new architecture trains without writing Rust
//! (`cargo run --release --example train_preset -- --config run.json`).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use crate::models::{parse_json, CheckedModelConfig, ModelConfig, Preset};
use crate::{Error, Result};

/// The largest run file read (1 MiB): a config is a few kilobytes.
pub const MAX_RUN_FILE_BYTES: u64 = 1 << 20;

/// A model and how to train it:
///
/// ```json
/// { "model": { "kind": "vae", "latent_dim": 2, … }, "train": { "epochs": 5, … } }
/// ```
///
/// `model` is a [`ModelConfig`] (its JSON is what a checkpoint stores, and what
/// `train_preset --print-config` prints); `train` is a [`TrainConfig`], whose
/// missing fields take [`TrainConfig::default`]'s values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RunConfig {
    /// The model.
    pub model: ModelConfig,
    /// The training settings.
    #[serde(default)]
    pub train: TrainConfig,
}

crate::setters::with_setters!(RunConfig {
    with_model(model: ModelConfig),
    with_train(train: TrainConfig),
});

/// A [`RunConfig`] whose model and training settings have been checked.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckedRunConfig {
    /// The model, checked.
    pub model: CheckedModelConfig,
    /// The training settings, validated.
    pub train: TrainConfig,
}

impl RunConfig {
    /// `model` trained with [`TrainConfig::default`]'s settings.
    pub fn new(model: ModelConfig) -> Self {
        Self {
            model,
            train: TrainConfig::default(),
        }
    }

    /// A preset's model with its tutorial's training settings.
    pub fn for_preset(preset: Preset) -> Self {
        Self {
            model: preset.config(),
            train: TrainConfig::for_preset(preset),
        }
    }

    /// Checks the model and the training settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field at fault under `model.` or `train.`.
    pub fn check(&self) -> Result<CheckedRunConfig> {
        let model = self.model.check().map_err(|e| prefixed("model", e))?;
        self.train.validate().map_err(|e| prefixed("train", e))?;
        Ok(CheckedRunConfig {
            model,
            train: self.train.clone(),
        })
    }

    /// Parses and checks a run from JSON.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the path of the field that does not parse
    /// (`model.encoder.hidden[0]`) or cannot work.
    pub fn from_json(json: &str) -> Result<CheckedRunConfig> {
        let run: RunConfig = parse_json(json)?;
        run.check()
    }

    /// Reads, parses and checks a run file (a regular file of at most
    /// [`MAX_RUN_FILE_BYTES`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be read; [`Error::Data`] if it is not a regular
    /// file, is too large or not UTF-8; [`Error::Config`] as
    /// [`from_json`](Self::from_json).
    pub fn from_file(path: impl AsRef<Path>) -> Result<CheckedRunConfig> {
        let path = path.as_ref();
        let bad = |reason: String| Error::Data {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        if meta.len() > MAX_RUN_FILE_BYTES {
            return Err(bad(format!(
                "{} bytes: a run file is at most {MAX_RUN_FILE_BYTES}",
                meta.len()
            )));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_RUN_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        Self::from_json(&text)
    }

    /// The run as pretty-printed JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// `e` with its field under `prefix`.
fn prefixed(prefix: &str, e: Error) -> Error {
    match e {
        Error::Config { field, reason } => Error::config(format!("{prefix}.{field}"), reason),
        other => other,
    }
}
