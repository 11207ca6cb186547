//! What a run keeps to resume: the resumable checkpoint (weights, buffers,
//! optimizer state and [`TrainState`]: settings, epoch, generator, best epoch,
//! with the data's fingerprint), the names of the run's checkpoint files,
//! the generator's state as text, and the evaluation generator's seed.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::fingerprint::DataFingerprint;
use super::optim::TrainOptimizer;
use crate::data::ImageSource;
use crate::difference::first_difference;
use crate::models::{
    architecture_difference, checkpoint_metadata, LossSettings, Trainable, TrainableExt, CONFIG_KEY,
};
use crate::params::{read_checkpoint, write_checkpoint};
use crate::{Error, Result};

/// File name of the resumable training checkpoint in the output folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File name of the best model (lowest test loss) in the output folder.
pub const BEST_MODEL_FILE: &str = "best.safetensors";

/// Metadata key of the training state in a checkpoint.
const STATE_KEY: &str = "vaekit.train_state";
/// Metadata key of the [`DataFingerprint`] in a checkpoint.
const DATA_KEY: &str = "vaekit.data";
/// Separates the evaluation generator's seed from the training generator's.
pub(super) const EVAL_SEED_SALT: u64 = 0x5eed_e7a1_0000_0001;

/// The state that survives a checkpoint: everything but weights and optimizer
/// moments, which travel as tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TrainState {
    pub(super) config: TrainConfig,
    pub(super) epoch: usize,
    pub(super) rng_seed: String,
    pub(super) rng_stream: u64,
    pub(super) rng_word_pos: String,
    pub(super) best: Option<(usize, f64)>,
    pub(super) bad_epochs: usize,
}

fn rng_state(rng: &ChaCha8Rng) -> (String, u64, String) {
    let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
    (seed, rng.get_stream(), rng.get_word_pos().to_string())
}

fn restore_rng(seed_hex: &str, stream: u64, word_pos: &str) -> Option<ChaCha8Rng> {
    if seed_hex.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(seed_hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(stream);
    rng.set_word_pos(word_pos.parse().ok()?);
    Some(rng)
}

/// A data fingerprint as JSON (plain data: serialising it cannot fail).
pub(super) fn fingerprint_json(data: &DataFingerprint) -> String {
    serde_json::to_string(data).unwrap_or_default()
}

/// Writes a resumable checkpoint: weights, buffers, optimizer state, generator
/// and epoch, atomically.
pub(super) fn save_training_checkpoint<M: Trainable + ?Sized>(
    path: &Path,
    model: &M,
    opt: &dyn TrainOptimizer,
    state: &TrainState,
    rng: &ChaCha8Rng,
    data: &str,
) -> Result<()> {
    let mut tensors = model.params().snapshot();
    for (name, t) in opt.state()? {
        tensors.insert(name, t);
    }
    let (rng_seed, rng_stream, rng_word_pos) = rng_state(rng);
    let state = TrainState {
        rng_seed,
        rng_stream,
        rng_word_pos,
        ..state.clone()
    };
    let mut metadata = checkpoint_metadata(model);
    let json = serde_json::to_string(&state).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("cannot serialise the training state: {e}"),
    })?;
    metadata.insert(STATE_KEY.to_string(), json);
    metadata.insert(DATA_KEY.to_string(), data.to_string());
    write_checkpoint(path, &tensors, &metadata)
}

/// A run restored from its resumable checkpoint, ready to go on.
pub(super) struct Restored {
    /// The training state at the end of the checkpoint's epoch.
    pub(super) state: TrainState,
    /// The generator, where that epoch left it.
    pub(super) rng: ChaCha8Rng,
    /// The optimizer, its state restored.
    pub(super) opt: Box<dyn TrainOptimizer>,
    /// The fingerprint of the data the run goes on with, as JSON.
    pub(super) data: String,
}

/// Reads the resumable checkpoint at `path` and checks it against `model`,
/// the run's settings `config` (only `epochs` and `progress` may differ) and
/// the data (`train`, `test`: other data only with `allow_data_change`), then
/// restores the model's weights and buffers and the optimizer's state.
///
/// # Errors
///
/// [`Error::Checkpoint`] if the checkpoint is unreadable, was made for another
/// model or with other training settings, or on other data without
/// `allow_data_change`; [`Error::Tensor`] naming a tensor that does not fit.
pub(super) fn restore_training_checkpoint<M, T, V>(
    path: &Path,
    model: &M,
    config: &TrainConfig,
    train: &T,
    test: &V,
    allow_data_change: bool,
) -> Result<Restored>
where
    M: Trainable + ?Sized,
    T: ImageSource + ?Sized,
    V: ImageSource + ?Sized,
{
    let ckpt = read_checkpoint(path, model.device())?;
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    // Resuming continues the same run: the model config must agree in
    // everything, its loss settings included.
    let difference = match (ckpt.metadata.get(CONFIG_KEY), model.architecture()) {
        (Some(saved), Some(ours)) => architecture_difference(saved, &ours, LossSettings::Compared),
        (None, None) => None,
        (Some(_), None) => Some("the checkpoint has a model config, this model has none".into()),
        (None, Some(_)) => Some("the checkpoint has no model config, this model has one".into()),
    };
    if let Some(difference) = difference {
        return Err(bad(format!(
            "it was made for a different model config: {difference}"
        )));
    }
    let state: TrainState = ckpt
        .metadata
        .get(STATE_KEY)
        .ok_or_else(|| bad("no training state: not a resumable checkpoint".into()))
        .and_then(|s| {
            serde_json::from_str(s).map_err(|e| bad(format!("training state does not parse: {e}")))
        })?;
    let saved = TrainConfig {
        epochs: config.epochs,
        progress: config.progress,
        ..state.config.clone()
    };
    if saved != *config {
        let as_value = |c: &TrainConfig| serde_json::to_value(c).unwrap_or_default();
        let difference = first_difference(&as_value(&saved), &as_value(config))
            .unwrap_or_else(|| "the settings differ".into());
        return Err(bad(format!(
            "it was made with other training settings (only `epochs` and `progress` may change on resume): {difference}"
        )));
    }
    if state.epoch == 0 || state.epoch > state.config.epochs {
        return Err(bad(format!(
            "its epoch {} is impossible for a run of {} epochs",
            state.epoch, state.config.epochs
        )));
    }
    if let Some((best_epoch, best)) = state.best {
        if best_epoch == 0 || best_epoch > state.epoch || best.is_nan() {
            return Err(bad(format!(
                "its best epoch {best_epoch} (loss {best}) is impossible after epoch {}",
                state.epoch
            )));
        }
    }
    let rng = restore_rng(&state.rng_seed, state.rng_stream, &state.rng_word_pos)
        .ok_or_else(|| bad("generator state does not parse".into()))?;
    let data = DataFingerprint::of(train, test)?;
    if let Some(json) = ckpt.metadata.get(DATA_KEY) {
        let was: DataFingerprint = serde_json::from_str(json)
            .map_err(|e| bad(format!("data fingerprint does not parse: {e}")))?;
        let changes = was.differences(&data);
        if !changes.is_empty() && !allow_data_change {
            return Err(bad(format!(
                "the run was trained on other data ({}); resume on other data only if \
                 that is meant (--allow-data-change, Trainer::allow_data_change)",
                changes.join("; ")
            )));
        }
    }
    model.params().assign(&ckpt.tensors)?;
    let mut opt = config.optimizer.build(model.params().trainable_vars())?;
    opt.load_state(&ckpt.tensors)
        .map_err(|e| bad(format!("optimizer state: {e}")))?;
    Ok(Restored {
        state,
        rng,
        opt,
        data: fingerprint_json(&data),
    })
}
