//! How much memory a training step takes: the estimate made from a config,
//! and the limit the trainer checks it against before the first step.

use super::config::ModelConfig;
use crate::{Error, Result};

/// How many values a training step keeps per value of a layer's output: the
/// output, what the normalisation and the activation make of it (kept for
/// the backward pass), and its gradient.
pub const STEP_COPIES: u64 = 4;

/// The share of the memory available when training starts that one training
/// step may take by default, in percent.
pub const STEP_MEMORY_PERCENT: u64 = 50;

/// The bytes of `f32` activations one training step of the model `config`
/// describes keeps at `batch_size` images: `batch_size` × (the values of
/// the input and of every layer's output, encoder and decoder, and the
/// classifier's) × [`STEP_COPIES`] × 4. An estimate, made from the config's
/// layer shapes without building anything; it saturates at `u64::MAX`.
///
/// # Errors
///
/// [`Error::Config`] for a layout that cannot work.
pub fn training_step_bytes(config: &ModelConfig, batch_size: usize) -> Result<u64> {
    let family = config.family();
    let parts = family.parts();
    let per_image = (parts.encoder.input_shape().numel() as u64)
        .saturating_add(parts.encoder.activation_values()?)
        .saturating_add(parts.decoder.activation_values()?)
        .saturating_add(family.other_activation_values());
    Ok(per_image
        .saturating_mul(batch_size as u64)
        .saturating_mul(STEP_COPIES)
        .saturating_mul(4))
}

/// The default limit on a training step's activations: [`STEP_MEMORY_PERCENT`]
/// of the memory available now ([`crate::memory::available_memory`]), or
/// 8 GiB where that cannot be read.
pub fn default_step_memory_limit() -> u64 {
    crate::memory::available_memory().map_or(8 << 30, |a| a / 100 * STEP_MEMORY_PERCENT)
}

/// Refuses a training step whose activations ([`training_step_bytes`]) would
/// take more than `limit` bytes, before anything is allocated.
///
/// # Errors
///
/// [`Error::Config`] (`batch_size`) naming the estimate and the limit;
/// [`Error::Config`] for a layout that cannot work.
pub fn check_training_step(config: &ModelConfig, batch_size: usize, limit: u64) -> Result<()> {
    step_bytes_within(training_step_bytes(config, batch_size)?, batch_size, limit)
}

/// An error unless a training step of `bytes` at `batch_size` images is
/// within `limit`.
pub(crate) fn step_bytes_within(bytes: u64, batch_size: usize, limit: u64) -> Result<()> {
    if bytes > limit {
        return Err(Error::config(
            "batch_size",
            format!(
                "a training step of this model at {batch_size} images per batch would keep about {} \
                 of activations, more than the limit of {}; use smaller images, narrower layers \
                 or a smaller batch (the limit is half the memory available, \
                 Trainer::step_memory_limit)",
                human_bytes(bytes),
                human_bytes(limit)
            ),
        ));
    }
    Ok(())
}

/// `1.5 GiB`, `300.0 MiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", b / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MiB", b / f64::from(1u32 << 20))
    }
}
