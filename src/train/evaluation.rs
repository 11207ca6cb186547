//! Evaluation: a model's mean loss terms and metrics per image on a set of
//! images, in evaluation mode, for [`evaluate`] and the trainer's test pass.

use std::path::PathBuf;

use rand::RngCore;

use super::corruption::Corruption;
use super::means::TermAccumulator;
use crate::data::{ImageSource, LastBatch, Shuffle};
use crate::models::{StepContext, Trainable, TrainableExt};
use crate::{Error, Result};

/// Mean loss terms and metrics per image of `model` on `data`
/// ([`Trainable::evaluate`]: evaluation mode, plus `accuracy` for a model with
/// a classifier).
///
/// # Errors
///
/// [`Error::Data`] for an empty `data`; errors of the model's forward pass.
pub fn evaluate<M, S>(
    model: &M,
    data: &S,
    batch_size: usize,
    rng: &mut dyn RngCore,
) -> Result<Vec<(String, f64)>>
where
    M: Trainable + ?Sized,
    S: ImageSource + ?Sized,
{
    evaluate_with(model, data, batch_size, rng, None, &StepContext::eval())
}

/// [`evaluate`], with the inputs corrupted by `corruption` (drawn from `rng`).
pub(super) fn evaluate_with<M, S>(
    model: &M,
    data: &S,
    batch_size: usize,
    rng: &mut dyn RngCore,
    corruption: Option<&Corruption>,
    ctx: &StepContext,
) -> Result<Vec<(String, f64)>>
where
    M: Trainable + ?Sized,
    S: ImageSource + ?Sized,
{
    if data.is_empty() {
        return Err(Error::Data {
            path: PathBuf::from("evaluation set"),
            reason: "holds no image".into(),
        });
    }
    let mut acc = TermAccumulator::default();
    for batch in data.batches(batch_size, Shuffle::None, LastBatch::Keep, model.device())? {
        let batch = match corruption {
            Some(c) => c.corrupt(batch?, rng)?,
            None => batch?,
        };
        let terms = model.evaluate(&batch, rng, ctx)?;
        acc.add(&terms, batch.len())?;
    }
    Ok(acc.means())
}
