//! The history of a run: what each epoch did ([`EpochReport`]), one JSON line
//! per epoch in `history.jsonl`, appended as the run goes, cut back to the
//! epochs a resumed run keeps, and read back.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// File name of the per-epoch history in the output folder.
pub const HISTORY_FILE: &str = "history.jsonl";

/// What one epoch did: mean loss terms per image on the training and test sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Training terms (`loss`, then the model's terms), mean per image over the
    /// epoch's batches (per pixel for a mean-reduced loss such as MSE).
    pub train: Vec<(String, f64)>,
    /// Test terms, likewise, in evaluation mode; `accuracy` for a model with a
    /// classifier.
    pub test: Vec<(String, f64)>,
    /// Wall-clock seconds for the epoch (training and evaluation).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Whether the test loss improved on the best so far.
    pub improved: bool,
    /// The KL weight β of the epoch's training steps, for a model with one:
    /// their mean, which is the epoch's β under a per-epoch
    /// [`BetaSchedule`](super::BetaSchedule).
    pub beta: Option<f64>,
}

impl EpochReport {
    /// The training loss.
    pub fn train_loss(&self) -> f64 {
        lookup(&self.train, "loss").unwrap_or(f64::NAN)
    }

    /// The test loss.
    pub fn test_loss(&self) -> f64 {
        lookup(&self.test, "loss").unwrap_or(f64::NAN)
    }

    /// A test term by name (`loss`, `reconstruction`, `kl`, `classification`,
    /// `accuracy`).
    pub fn test_metric(&self, name: &str) -> Option<f64> {
        lookup(&self.test, name)
    }

    /// A training term by name.
    pub fn train_metric(&self, name: &str) -> Option<f64> {
        lookup(&self.train, name)
    }

    /// The report as one flat JSON object: `epoch`, `train_loss`, `test_loss`,
    /// `train_<term>`, `test_<term>`, `beta` (for a model with one),
    /// `seconds`, `images_per_s`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("epoch".into(), self.epoch.into());
        for (k, v) in &self.train {
            m.insert(format!("train_{k}"), json_number(*v));
        }
        for (k, v) in &self.test {
            m.insert(format!("test_{k}"), json_number(*v));
        }
        if let Some(beta) = self.beta {
            m.insert("beta".into(), json_number(beta));
        }
        m.insert("seconds".into(), json_number(self.seconds));
        m.insert("images_per_s".into(), json_number(self.images_per_s));
        serde_json::Value::Object(m)
    }
}

fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

pub(super) fn lookup(terms: &[(String, f64)], name: &str) -> Option<f64> {
    terms.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

pub(super) fn append_history(path: &Path, report: &EpochReport) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{}", report.to_json()).map_err(|e| Error::io(path, e))
}

/// Keeps the first `epochs` lines of a history file (dropping epochs a resumed
/// run will redo).
pub(super) fn truncate_history(path: &Path, epochs: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let kept: String = text
        .lines()
        .take(epochs)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path, kept).map_err(|e| Error::io(path, e))
}

/// Reads the per-epoch history a run wrote.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::Data`] for a line that is
/// not a JSON object.
pub fn read_history(path: impl AsRef<Path>) -> Result<Vec<HashMap<String, serde_json::Value>>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Data {
                path: path.to_path_buf(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}
