//! β schedules: how the KL weight moves from epoch to epoch.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The KL weight β per epoch, set by the trainer through
/// [`Trainable::set_beta`](crate::models::Trainable::set_beta) before each
/// epoch's training steps and recorded as `beta` in `history.jsonl`.
///
/// β is a function of the epoch alone, so a resumed run lands on the same β.
/// The test loss is computed at the schedule's [`target`](Self::target) β,
/// so test losses stay comparable from epoch to epoch (and `best.safetensors`
/// is the best model for the objective the schedule ends at).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum BetaSchedule {
    /// The same β every epoch.
    Constant {
        /// The KL weight.
        beta: f64,
    },
    /// Linear warm-up (Bowman et al. 2016): `start` in epoch 1, rising by
    /// `(end − start) / epochs` per epoch, `end` from epoch `epochs + 1` on.
    Linear {
        /// β in the first epoch.
        start: f64,
        /// β after the warm-up.
        end: f64,
        /// Epochs the warm-up takes (≥ 1).
        epochs: usize,
    },
    /// Cyclical annealing (Fu et al. 2019), per epoch: cycles of `period`
    /// epochs; at position `τ = ((epoch − 1) mod period) / period` of a cycle,
    /// `β = max · min(1, τ / ratio)`: it rises from 0 over the first `ratio` of
    /// the cycle, then holds at `max` (the paper's `R = 0.5`, `M = 4` cycles
    /// are `ratio: 0.5`, `period: epochs / 4`).
    Cyclical {
        /// Epochs per cycle (≥ 1).
        period: usize,
        /// Share of each cycle spent rising, in `(0, 1]`.
        ratio: f64,
        /// β at the top of each cycle.
        max: f64,
    },
}

impl BetaSchedule {
    /// β in `epoch` (1-based).
    pub fn beta_at(&self, epoch: usize) -> f64 {
        let e = epoch.max(1) - 1;
        match *self {
            BetaSchedule::Constant { beta } => beta,
            BetaSchedule::Linear { start, end, epochs } => {
                let t = (e as f64 / epochs.max(1) as f64).min(1.0);
                start + (end - start) * t
            }
            BetaSchedule::Cyclical { period, ratio, max } => {
                let period = period.max(1);
                let tau = (e % period) as f64 / period as f64;
                max * (tau / ratio).min(1.0)
            }
        }
    }

    /// The β the schedule ends at (`beta`, `end`, `max`): the one test losses
    /// are computed with.
    pub fn target(&self) -> f64 {
        match *self {
            BetaSchedule::Constant { beta } => beta,
            BetaSchedule::Linear { end, .. } => end,
            BetaSchedule::Cyclical { max, .. } => max,
        }
    }

    /// Checks the values; errors name the field under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a β that is negative or not finite, zero epochs
    /// or period, or a ratio outside `(0, 1]`.
    pub fn validate(&self, field: &str) -> Result<()> {
        let beta = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    format!("{field}.{name}"),
                    format!("{v} must be finite and ≥ 0"),
                ))
            }
        };
        match *self {
            BetaSchedule::Constant { beta: b } => beta("beta", b),
            BetaSchedule::Linear { start, end, epochs } => {
                beta("start", start)?;
                beta("end", end)?;
                if epochs == 0 {
                    return Err(Error::config(format!("{field}.epochs"), "must be positive"));
                }
                Ok(())
            }
            BetaSchedule::Cyclical { period, ratio, max } => {
                beta("max", max)?;
                if period == 0 {
                    return Err(Error::config(format!("{field}.period"), "must be positive"));
                }
                if !(ratio > 0.0 && ratio <= 1.0) {
                    return Err(Error::config(
                        format!("{field}.ratio"),
                        format!("{ratio} must be in (0, 1]"),
                    ));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BetaSchedule;

    #[test]
    fn linear_warm_up_starts_at_start_and_reaches_end_after_its_epochs() {
        let s = BetaSchedule::Linear {
            start: 0.0,
            end: 1.0,
            epochs: 4,
        };
        let b: Vec<f64> = (1..=7).map(|e| s.beta_at(e)).collect();
        assert_eq!(b, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
        assert_eq!(s.target(), 1.0);
    }

    #[test]
    fn cyclical_rises_over_ratio_of_each_cycle_then_holds() {
        let s = BetaSchedule::Cyclical {
            period: 4,
            ratio: 0.5,
            max: 2.0,
        };
        let b: Vec<f64> = (1..=9).map(|e| s.beta_at(e)).collect();
        assert_eq!(b, [0.0, 1.0, 2.0, 2.0, 0.0, 1.0, 2.0, 2.0, 0.0]);
        assert!(BetaSchedule::Cyclical {
            period: 4,
            ratio: 0.0,
            max: 1.0
        }
        .validate("beta_schedule")
        .is_err());
    }
}
