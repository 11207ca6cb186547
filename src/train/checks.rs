//! Data that cannot make a run: refused before anything is written or
//! allocated, with an error naming the set or setting and what to do
//! ([`check_data`]), or named when a training step fails for it
//! ([`one_image_batch`]).

use std::path::PathBuf;

use super::config::{Binarization, TrainConfig};
use crate::data::{Dataset, ImageSource, LastBatch};
use crate::models::Trainable;
use crate::{Error, Result};

/// Refuses data that cannot make a run: an empty set, a set without labels
/// for a model that needs them, binarization of images not held in memory,
/// or no full batch when partial batches are dropped.
pub(super) fn check_data<M, T, V>(
    config: &TrainConfig,
    step_memory_limit: Option<u64>,
    model: &M,
    train: &T,
    test: &V,
) -> Result<()>
where
    M: Trainable + ?Sized,
    T: ImageSource + ?Sized,
    V: ImageSource + ?Sized,
{
    let empty = |what: &str| Error::Data {
        path: PathBuf::from(what),
        reason: "holds no image: nothing to train or evaluate on".into(),
    };
    if train.is_empty() {
        return Err(empty("training set"));
    }
    if test.is_empty() {
        return Err(empty("test set"));
    }
    for (what, labelled) in [
        ("training set", train.has_labels()),
        ("test set", test.has_labels()),
    ] {
        if model.needs_labels() && !labelled {
            return Err(Error::Data {
                path: PathBuf::from(what),
                reason: "has no labels, and this model needs a label per image (load an \
                         image folder with `Labels::SubFolders`, or use a model that \
                         does not need labels)"
                    .into(),
            });
        }
    }
    if config.beta_schedule.is_some() && model.beta().is_none() {
        return Err(Error::config(
            "beta_schedule",
            "this model has no KL weight to schedule",
        ));
    }
    if config.binarization != Binarization::None
        && (train.held().is_none() || test.held().is_none())
    {
        return Err(Error::config(
            "binarization",
            "binarizes images held in memory, and these are streamed from disk: use \
             `binarization: none`, or a memory budget that holds the images",
        ));
    }
    if let Some(bytes) = model.training_step_bytes(config.batch_size) {
        let limit = step_memory_limit.unwrap_or_else(crate::models::default_step_memory_limit);
        crate::models::step_bytes_within(bytes, config.batch_size, limit)?;
    }
    if config.last_batch == LastBatch::Drop && train.len() < config.batch_size {
        return Err(Error::config(
            "batch_size",
            format!(
                "{} is more than the {} training images, and last_batch = drop leaves no batch",
                config.batch_size,
                train.len()
            ),
        ));
    }
    Ok(())
}

/// `e`, or, when a batch of one image failed for wanting more than one value
/// per channel (batch norm in training), an error naming the training set
/// and what to do.
pub(super) fn one_image_batch(
    e: candle_core::Error,
    len: usize,
    images: usize,
    batch_size: usize,
) -> Error {
    if len == 1 && e.to_string().contains("more than one value per channel") {
        return Error::Data {
            path: PathBuf::from("training set"),
            reason: format!(
                "{images} image{} in batches of {batch_size} leave a batch of one image, and \
                 batch norm needs at least two per batch: use more training images, another \
                 batch size, or last_batch = drop",
                if images == 1 { "" } else { "s" }
            ),
        };
    }
    e.into()
}

/// The images of a set to binarize, which `check_data` made sure are held in memory.
pub(super) fn held(set: Option<&Dataset>) -> Result<&Dataset> {
    set.ok_or_else(|| Error::config("binarization", "needs images held in memory"))
}
