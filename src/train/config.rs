//! Training settings, validated once, with each tutorial's defaults.

use serde::{Deserialize, Serialize};

use super::corruption::Corruption;
use super::optim::{AdamParams, OptimizerConfig, RmspropParams};
use super::schedule::BetaSchedule;
use crate::data::{Augmentation, LastBatch};
use crate::models::Preset;
use crate::{Error, Result};

/// How training images are binarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Binarization {
    /// Grey levels in `[0, 1]` as they are.
    #[default]
    None,
    /// `x > 0.5 → 1, else 0`, once, for training and test images (the TensorFlow
    /// CVAE tutorial).
    Static,
    /// Each training pixel redrawn as Bernoulli(x) every epoch from the seeded
    /// generator; test images are binarised once with a fixed seed.
    Dynamic,
}

/// Stop when the test loss has not improved for `patience` epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest decrease that counts as an improvement.
    pub min_delta: f64,
}

impl EarlyStopping {
    /// Stop after `patience` epochs without any decrease of the test loss
    /// (`min_delta` 0).
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            min_delta: 0.0,
        }
    }
}

crate::setters::with_setters!(EarlyStopping {
    with_patience(patience: usize),
    with_min_delta(min_delta: f64),
});

/// Whether a progress bar is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Progress {
    /// On standard error when it is a terminal; silent otherwise.
    #[default]
    Auto,
    /// Never.
    Hidden,
}

/// Everything a [`Trainer`](super::Trainer) needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TrainConfig {
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Images per training step.
    pub batch_size: usize,
    /// Seed of the generator behind shuffling, binarisation and the VAE noise.
    pub seed: u64,
    /// The optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// How training images are binarised.
    pub binarization: Binarization,
    /// Whether a final partial training batch is used.
    pub last_batch: LastBatch,
    /// Early stopping on the test loss, if any.
    pub early_stopping: Option<EarlyStopping>,
    /// Images per evaluation step.
    pub eval_batch_size: usize,
    /// Progress bar.
    pub progress: Progress,
    /// A β schedule for the KL weight (the model's configured β when absent).
    /// Needs a model with a β ([`Trainable::beta`](crate::models::Trainable::beta)), which
    /// gets each step's β through [`StepContext::beta`](crate::models::StepContext::beta).
    pub beta_schedule: Option<BetaSchedule>,
    /// Input corruption for denoising: the model sees corrupted images, its
    /// loss scores the clean ones (test images are corrupted too, with the
    /// evaluation generator). None when absent.
    pub corruption: Option<Corruption>,
    /// Seeded flips and crops of the training images (none by default).
    pub augmentation: Augmentation,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            seed: 0,
            optimizer: OptimizerConfig::default(),
            binarization: Binarization::None,
            last_batch: LastBatch::Keep,
            early_stopping: None,
            eval_batch_size: 1000,
            progress: Progress::Auto,
            beta_schedule: None,
            corruption: None,
            augmentation: Augmentation::default(),
        }
    }
}

crate::setters::with_setters!(TrainConfig {
    with_epochs(epochs: usize),
    with_batch_size(batch_size: usize),
    with_seed(seed: u64),
    with_optimizer(optimizer: OptimizerConfig),
    with_binarization(binarization: Binarization),
    with_last_batch(last_batch: LastBatch),
    with_early_stopping(early_stopping: Option<EarlyStopping>),
    with_eval_batch_size(eval_batch_size: usize),
    with_progress(progress: Progress),
    with_beta_schedule(beta_schedule: Option<BetaSchedule>),
    with_corruption(corruption: Option<Corruption>),
    with_augmentation(augmentation: Augmentation),
});

impl TrainConfig {
    /// Checks every value.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field: zero epochs, batch sizes or patience, or
    /// an optimizer hyper-parameter out of range.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::config("epochs", "must be positive"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be positive"));
        }
        if self.eval_batch_size == 0 {
            return Err(Error::config("eval_batch_size", "must be positive"));
        }
        if let Some(es) = &self.early_stopping {
            if es.patience == 0 {
                return Err(Error::config("early_stopping.patience", "must be positive"));
            }
            if !(es.min_delta.is_finite() && es.min_delta >= 0.0) {
                return Err(Error::config(
                    "early_stopping.min_delta",
                    format!("{} must be finite and ≥ 0", es.min_delta),
                ));
            }
        }
        if let Some(s) = &self.beta_schedule {
            s.validate("beta_schedule")?;
        }
        if let Some(c) = &self.corruption {
            c.validate("corruption")?;
        }
        self.optimizer.validate()
    }

    /// The tutorial's training settings for `preset` (its optimizer, learning
    /// rate, batch size, epochs, binarisation and early stopping).
    pub fn for_preset(preset: Preset) -> Self {
        let adam = |lr: f64| {
            OptimizerConfig::Adam(AdamParams {
                lr,
                ..Default::default()
            })
        };
        let rmsprop = |lr: f64| {
            OptimizerConfig::Rmsprop(RmspropParams {
                lr,
                ..Default::default()
            })
        };
        let base = TrainConfig::default();
        match preset {
            // Adam 1e-4, batch 32, 100 epochs, static binarisation.
            Preset::CvaeTf => TrainConfig {
                epochs: 100,
                batch_size: 32,
                optimizer: adam(1e-4),
                binarization: Binarization::Static,
                ..base
            },
            // Adam 1e-3, batch 64, 15 epochs.
            Preset::ConvVaeBn => TrainConfig {
                epochs: 15,
                batch_size: 64,
                optimizer: adam(1e-3),
                ..base
            },
            // Adam 1e-3, batch 128, 50 epochs.
            Preset::DenseVae => TrainConfig {
                epochs: 50,
                batch_size: 128,
                optimizer: adam(1e-3),
                ..base
            },
            // Adam 1e-3, batch 100, 20 epochs.
            Preset::DigitCvae => TrainConfig {
                epochs: 20,
                batch_size: 100,
                optimizer: adam(1e-3),
                ..base
            },
            // RMSprop 3e-4 (1e-3 for the 2-D code), batch 64 with the remainder
            // dropped, up to 100 epochs, early stopping with patience 5.
            Preset::ConvAe | Preset::ConvAe2d => TrainConfig {
                epochs: 100,
                batch_size: 64,
                optimizer: rmsprop(if preset == Preset::ConvAe { 3e-4 } else { 1e-3 }),
                last_batch: LastBatch::Drop,
                early_stopping: Some(EarlyStopping {
                    patience: 5,
                    min_delta: 0.0,
                }),
                ..base
            },
        }
    }
}
