//! Training: the [`Trainer`] loop, its [`TrainConfig`] (with β schedules and
//! input corruption for denoising), and the optimizers that update a model's
//! variables from its gradients.
//!
//! [`optim`] holds PyTorch-exact Adam, AdamW, SGD and RMSprop, their serde-ready
//! [`OptimizerConfig`], and the object-safe [`TrainOptimizer`] a training loop drives.

mod checks;
mod config;
mod corruption;
mod evaluation;
mod fingerprint;
mod history;
mod means;
pub mod optim;
mod progress;
mod run;
mod run_folder;
mod schedule;
mod state;
mod trainer;

pub use config::{Binarization, EarlyStopping, Progress, TrainConfig};
pub use corruption::Corruption;
pub use evaluation::evaluate;
pub use fingerprint::{DataFingerprint, SetFingerprint, HASHED_IMAGES};
pub use history::{read_history, EpochReport, HISTORY_FILE};
pub use optim::{
    Adam, AdamParams, AdamW, AdamWParams, OptimizerConfig, OptimizerState, Rmsprop, RmspropParams,
    Sgd, SgdParams, TrainOptimizer,
};
pub(crate) use progress::progress_bar;
pub use run::{CheckedRunConfig, RunConfig, MAX_RUN_FILE_BYTES};
pub use run_folder::{RunFolder, RunPolicy, BACKUP_PREFIX};
pub use schedule::{BetaSchedule, ScheduleUnit};
pub use state::{BEST_MODEL_FILE, CHECKPOINT_FILE};
pub use trainer::{TrainSummary, Trainer};
