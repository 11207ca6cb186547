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
use crate::models::{checkpoint_metadata, Trainable};
use crate::params::write_checkpoint;
use crate::{Error, Result};

/// File name of the resumable training checkpoint in the output folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File name of the best model (lowest test loss) in the output folder.
pub const BEST_MODEL_FILE: &str = "best.safetensors";

/// Metadata key of the training state in a checkpoint.
pub(super) const STATE_KEY: &str = "vaekit.train_state";
/// Metadata key of the [`DataFingerprint`] in a checkpoint.
pub(super) const DATA_KEY: &str = "vaekit.data";
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

pub(super) fn restore_rng(seed_hex: &str, stream: u64, word_pos: &str) -> Option<ChaCha8Rng> {
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
