//! β schedules: how the KL weight moves over training, epoch by epoch or
//! step by step.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Whether a [`BetaSchedule`] counts epochs or training steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleUnit {
    /// β changes between epochs and holds within one.
    Epoch,
    /// β changes from one training step (optimizer update) to the next.
    Step,
}

/// The KL weight β over training, given by the trainer to every training
/// step through [`StepContext::beta`](crate::models::StepContext::beta) and recorded per epoch as `beta` in `history.jsonl` (the
/// mean β of the epoch's training steps: the epoch's β for a per-epoch
/// schedule).
///
/// A schedule counts epochs or steps ([`unit`](Self::unit)); the step is the
/// global one, 1-based: the steps of every earlier epoch plus the step within
/// this epoch, so a resumed run lands on the same β at every step.
/// The test loss is computed at the schedule's [`target`](Self::target) β,
/// so test losses stay comparable from epoch to epoch (and `best.safetensors`
/// is the best model for the objective the schedule ends at).
///
/// In JSON, `"type"` names the schedule: `constant`, `linear`,
/// `cyclical_per_epoch` (also read as `cyclical`, its name before the
/// per-step one existed), `cyclical_per_step`, `sigmoid`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum BetaSchedule {
    /// The same β every epoch.
    Constant {
        /// The KL weight.
        beta: f64,
    },
    /// Linear warm-up per epoch (Sønderby et al. 2016): `start` in epoch 1,
    /// rising by `(end − start) / epochs` per epoch, `end` from epoch
    /// `epochs + 1` on.
    Linear {
        /// β in the first epoch.
        start: f64,
        /// β after the warm-up.
        end: f64,
        /// Epochs the warm-up takes (≥ 1).
        epochs: usize,
    },
    /// Cyclical annealing counted in epochs: cycles of `period` epochs; at
    /// position `τ = ((epoch − 1) mod period) / period` of a cycle,
    /// `β = max · min(1, τ / ratio)`: it rises from 0 over the first `ratio`
    /// of the cycle, then holds at `max`. Fu et al. (2019) count steps:
    /// [`CyclicalPerStep`](Self::CyclicalPerStep) is theirs.
    #[serde(alias = "cyclical")]
    CyclicalPerEpoch {
        /// Epochs per cycle (≥ 1).
        period: usize,
        /// Share of each cycle spent rising, in `(0, 1]`.
        ratio: f64,
        /// β at the top of each cycle.
        max: f64,
    },
    /// Cyclical annealing (Fu et al. 2019), counted in training steps as the
    /// paper does: cycles of `period` steps; at position
    /// `τ = ((step − 1) mod period) / period` of a cycle,
    /// `β = max · min(1, τ / ratio)`. The paper's `M` cycles over `T` steps
    /// are `period: ⌈T / M⌉` (its `R = 0.5`, `M = 4` are `ratio: 0.5` and a
    /// quarter of the run's steps).
    CyclicalPerStep {
        /// Training steps per cycle (≥ 1).
        period: usize,
        /// Share of each cycle spent rising, in `(0, 1]`.
        ratio: f64,
        /// β at the top of each cycle.
        max: f64,
    },
    /// KL annealing of Bowman et al. (2016), per training step: the logistic
    /// `β = max / (1 + exp(−k · (step − x0)))`, half of `max` at step `x0`
    /// (their code's `k = 0.0025`, `x0 = 2500`, `max = 1`).
    Sigmoid {
        /// Steepness `k` (> 0), per step.
        k: f64,
        /// The step `x0` at which β is half of `max`.
        x0: f64,
        /// β the schedule tends to.
        max: f64,
    },
}

impl BetaSchedule {
    /// Whether the schedule counts epochs or training steps.
    pub fn unit(&self) -> ScheduleUnit {
        match self {
            BetaSchedule::Constant { .. }
            | BetaSchedule::Linear { .. }
            | BetaSchedule::CyclicalPerEpoch { .. } => ScheduleUnit::Epoch,
            BetaSchedule::CyclicalPerStep { .. } | BetaSchedule::Sigmoid { .. } => {
                ScheduleUnit::Step
            }
        }
    }

    /// β at training step `step` (the global step, 1-based: steps of all
    /// earlier epochs plus the step in this one) of epoch `epoch` (1-based);
    /// a per-epoch schedule reads the epoch, a per-step one the step.
    pub fn beta_at(&self, epoch: usize, step: usize) -> f64 {
        let e = epoch.max(1) - 1;
        let t = step.max(1) - 1;
        match *self {
            BetaSchedule::Constant { beta } => beta,
            BetaSchedule::Linear { start, end, epochs } => {
                let t = (e as f64 / epochs.max(1) as f64).min(1.0);
                start + (end - start) * t
            }
            BetaSchedule::CyclicalPerEpoch { period, ratio, max } => {
                cyclical(e, period, ratio, max)
            }
            BetaSchedule::CyclicalPerStep { period, ratio, max } => cyclical(t, period, ratio, max),
            BetaSchedule::Sigmoid { k, x0, max } => max / (1.0 + (-k * (step as f64 - x0)).exp()),
        }
    }

    /// The β the schedule ends at (`beta`, `end`, `max`): the one test losses
    /// are computed with.
    pub fn target(&self) -> f64 {
        match *self {
            BetaSchedule::Constant { beta } => beta,
            BetaSchedule::Linear { end, .. } => end,
            BetaSchedule::CyclicalPerEpoch { max, .. }
            | BetaSchedule::CyclicalPerStep { max, .. }
            | BetaSchedule::Sigmoid { max, .. } => max,
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
            BetaSchedule::CyclicalPerEpoch { period, ratio, max }
            | BetaSchedule::CyclicalPerStep { period, ratio, max } => {
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
            BetaSchedule::Sigmoid { k, x0, max } => {
                beta("max", max)?;
                if !(k.is_finite() && k > 0.0) {
                    return Err(Error::config(
                        format!("{field}.k"),
                        format!("{k} must be finite and > 0"),
                    ));
                }
                if !x0.is_finite() {
                    return Err(Error::config(
                        format!("{field}.x0"),
                        format!("{x0} must be finite"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// `max · min(1, τ / ratio)` at position `τ = (t mod period) / period` of a
/// cycle, for a 0-based count `t`.
fn cyclical(t: usize, period: usize, ratio: f64, max: f64) -> f64 {
    let period = period.max(1);
    let tau = (t % period) as f64 / period as f64;
    max * (tau / ratio).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::{BetaSchedule, ScheduleUnit};

    #[test]
    fn linear_warm_up_starts_at_start_and_reaches_end_after_its_epochs() {
        let s = BetaSchedule::Linear {
            start: 0.0,
            end: 1.0,
            epochs: 4,
        };
        let b: Vec<f64> = (1..=7).map(|e| s.beta_at(e, 1000 * e)).collect();
        assert_eq!(b, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
        assert_eq!((s.target(), s.unit()), (1.0, ScheduleUnit::Epoch));
    }

    #[test]
    fn cyclical_per_epoch_rises_over_ratio_of_each_cycle_then_holds() {
        let s = BetaSchedule::CyclicalPerEpoch {
            period: 4,
            ratio: 0.5,
            max: 2.0,
        };
        // The step does not matter to a per-epoch schedule.
        let b: Vec<f64> = (1..=9).map(|e| s.beta_at(e, 7 * e + 3)).collect();
        assert_eq!(b, [0.0, 1.0, 2.0, 2.0, 0.0, 1.0, 2.0, 2.0, 0.0]);
        assert!(BetaSchedule::CyclicalPerEpoch {
            period: 4,
            ratio: 0.0,
            max: 1.0
        }
        .validate("beta_schedule")
        .is_err());
    }

    #[test]
    fn cyclical_per_step_counts_global_steps_as_fu_et_al() {
        // T = 16 steps, M = 2 cycles, R = 0.5: period 8, rising over 4 steps.
        let s = BetaSchedule::CyclicalPerStep {
            period: 8,
            ratio: 0.5,
            max: 1.0,
        };
        let b: Vec<f64> = (1..=17).map(|t| s.beta_at(1, t)).collect();
        assert_eq!(
            b,
            [
                0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0,
                0.0
            ]
        );
        // The epoch does not matter to a per-step schedule.
        assert_eq!(s.beta_at(9, 2), 0.25);
        assert_eq!((s.target(), s.unit()), (1.0, ScheduleUnit::Step));
    }

    #[test]
    fn sigmoid_is_bowmans_logistic_of_the_step() {
        let s = BetaSchedule::Sigmoid {
            k: 0.0025,
            x0: 2500.0,
            max: 1.0,
        };
        assert_eq!(s.beta_at(1, 2500), 0.5);
        // 1 / (1 + e^{−0.0025·(3500 − 2500)}) = 1 / (1 + e^{−2.5}).
        assert_eq!(s.beta_at(1, 3500), 1.0 / (1.0 + (-2.5f64).exp()));
        assert!((s.beta_at(1, 3500) - 0.924_141_819_978_756_6).abs() < 1e-15);
        // Step 1: 1 / (1 + e^{6.2475}).
        assert!((s.beta_at(1, 1) - 0.001_931_548_210_460_426_4).abs() < 1e-15);
        let half = BetaSchedule::Sigmoid {
            k: 0.5,
            x0: 4.0,
            max: 2.0,
        };
        assert_eq!(half.beta_at(3, 4), 1.0);
        assert_eq!((half.target(), half.unit()), (2.0, ScheduleUnit::Step));
        for bad in [
            BetaSchedule::Sigmoid {
                k: 0.0,
                x0: 1.0,
                max: 1.0,
            },
            BetaSchedule::Sigmoid {
                k: 1.0,
                x0: f64::NAN,
                max: 1.0,
            },
            BetaSchedule::Sigmoid {
                k: 1.0,
                x0: 1.0,
                max: -1.0,
            },
        ] {
            assert!(bad.validate("beta_schedule").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn old_run_files_read_cyclical_as_the_per_epoch_schedule() {
        let old: BetaSchedule =
            serde_json::from_str(r#"{"type": "cyclical", "period": 2, "ratio": 0.5, "max": 0.8}"#)
                .unwrap();
        let per_epoch = BetaSchedule::CyclicalPerEpoch {
            period: 2,
            ratio: 0.5,
            max: 0.8,
        };
        assert_eq!(old, per_epoch);
        assert_eq!(
            serde_json::to_string(&per_epoch).unwrap(),
            r#"{"type":"cyclical_per_epoch","period":2,"ratio":0.5,"max":0.8}"#
        );
        let step: BetaSchedule = serde_json::from_str(
            r#"{"type": "cyclical_per_step", "period": 100, "ratio": 0.5, "max": 1.0}"#,
        )
        .unwrap();
        assert_eq!(step.unit(), ScheduleUnit::Step);
        let sigmoid: BetaSchedule =
            serde_json::from_str(r#"{"type": "sigmoid", "k": 0.0025, "x0": 2500, "max": 1}"#)
                .unwrap();
        assert_eq!(
            sigmoid,
            BetaSchedule::Sigmoid {
                k: 0.0025,
                x0: 2500.0,
                max: 1.0
            }
        );
    }
}
