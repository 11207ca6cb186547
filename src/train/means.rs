//! Means over the batches of an epoch or an evaluation pass: each loss term
//! per image ([`TermAccumulator`]) and the KL weight β of the training steps
//! ([`BetaRecord`]).

use candle_core::{DType, Tensor};

use crate::models::{LossTerms, Per};
use crate::{Error, Result};

/// The β of an epoch's training steps, for [`EpochReport::beta`](super::EpochReport::beta).
#[derive(Default)]
pub(super) struct BetaRecord {
    first: Option<f64>,
    varied: bool,
    sum: f64,
    steps: usize,
}

impl BetaRecord {
    pub(super) fn add(&mut self, beta: f64) {
        let first = *self.first.get_or_insert(beta);
        self.varied |= beta != first;
        self.sum += beta;
        self.steps += 1;
    }

    /// The steps' β where it held all epoch (exactly), their mean otherwise;
    /// `None` for a model without β.
    pub(super) fn value(&self) -> Option<f64> {
        let first = self.first?;
        Some(if self.varied {
            self.sum / self.steps as f64
        } else {
            first
        })
    }
}

/// Per-image means of the loss terms over an epoch.
#[derive(Default)]
pub(super) struct TermAccumulator {
    names: Vec<String>,
    sums: Vec<f64>,
    pub(super) images: usize,
}

impl TermAccumulator {
    /// Adds one batch of `b` images; returns its per-image values by name
    /// (`loss` first, then the model's terms).
    pub(super) fn add(&mut self, terms: &LossTerms, b: usize) -> Result<Vec<(String, f64)>> {
        let mut scalars: Vec<&Tensor> = vec![&terms.total];
        scalars.extend(terms.terms.iter().map(|t| &t.value));
        // One transfer for every term.
        let values = Tensor::stack(&scalars, 0)?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        let pers = std::iter::once(terms.per).chain(terms.terms.iter().map(|t| t.per));
        let names = std::iter::once("loss").chain(terms.terms.iter().map(|t| t.name.as_ref()));
        let per_image: Vec<(String, f64)> = names
            .zip(pers)
            .zip(&values)
            .map(|((n, per), v)| {
                let v = match per {
                    Per::Batch => v / b.max(1) as f64,
                    Per::Image => *v,
                };
                (n.to_string(), v)
            })
            .collect();
        if self.names.is_empty() {
            self.names = per_image.iter().map(|(n, _)| n.clone()).collect();
            self.sums = vec![0.0; self.names.len()];
        }
        for (name, v) in &per_image {
            match self.names.iter().position(|n| n == name) {
                Some(i) => self.sums[i] += v * b as f64,
                None => {
                    return Err(Error::Candle(candle_core::Error::Msg(format!(
                        "the model gave a term `{name}` it did not give on the first batch"
                    ))))
                }
            }
        }
        self.images += b;
        Ok(per_image)
    }

    pub(super) fn mean(&self, name: &str) -> f64 {
        self.names
            .iter()
            .position(|n| n == name)
            .map_or(f64::NAN, |i| self.sums[i] / self.images.max(1) as f64)
    }

    pub(super) fn means(&self) -> Vec<(String, f64)> {
        self.names
            .iter()
            .zip(&self.sums)
            .map(|(n, s)| (n.clone(), s / self.images.max(1) as f64))
            .collect()
    }
}
