//! The training loop: the [`Trainer`], [`fit`](Trainer::fit) and
//! [`resume`](Trainer::resume), each epoch (seeded batches, then the test
//! pass) and each step, early stopping. The history it writes is in
//! `history.rs`, the checkpoints it keeps to resume in `state.rs`, the test
//! pass in `evaluation.rs`.

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::checks::{check_data, held, one_image_batch};
use super::config::{Binarization, TrainConfig};
use super::evaluation::evaluate_with;
use super::fingerprint::DataFingerprint;
use super::history::{append_history, lookup, truncate_history, EpochReport, HISTORY_FILE};
use super::means::{BetaRecord, TermAccumulator};
use super::optim::TrainOptimizer;
use super::progress::progress_bar;
use super::run_folder::RunFolder;
use super::state::{
    fingerprint_json, restore_training_checkpoint, save_training_checkpoint, Restored, TrainState,
    BEST_MODEL_FILE, CHECKPOINT_FILE, EVAL_SEED_SALT,
};
use crate::data::{Batch, BatchIter, Dataset, ImageSource, LastBatch, Shuffle};
use crate::models::{checkpoint_metadata, StepContext, Trainable, TrainableExt};
use crate::params::write_checkpoint;
use crate::{Error, Result};

/// How a training run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Every epoch's report, resumed epochs included only for this call.
    pub history: Vec<EpochReport>,
    /// The last epoch completed.
    pub last_epoch: usize,
    /// The epoch with the lowest test loss, and that loss.
    pub best: Option<(usize, f64)>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

type EpochHook<'a> = Box<dyn FnMut(&EpochReport) -> Result<()> + 'a>;

/// Trains any [`Trainable`] model — a [`Model`](crate::models::Model) built from
/// a config, a [`Vae`](crate::models::Vae) assembled by hand, or a model of your
/// own: seeded shuffling and noise, per-epoch evaluation on the test set,
/// `history.jsonl`, atomic checkpoints, the best model, early stopping, and
/// resume that finishes with the same weights as an uninterrupted run (CPU).
///
/// ```no_run
/// use candle_core::Device;
/// use vaekit::data::Mnist;
/// use vaekit::models::{Model, Preset};
/// use vaekit::train::{TrainConfig, Trainer};
///
/// let data = Mnist::bundled()?;
/// let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0)?;
/// let config = TrainConfig::for_preset(Preset::DenseVae).with_epochs(2);
/// let summary = Trainer::new(config)?
///     .output_dir("out/dense-vae")
///     .on_epoch(|report| {
///         println!("epoch {}: test loss {:.2}", report.epoch, report.test_loss());
///         Ok(())
///     })
///     .fit(&model, &data.train, &data.test)?;
/// # Ok::<(), vaekit::Error>(())
/// ```
pub struct Trainer<'a> {
    config: TrainConfig,
    out_dir: Option<PathBuf>,
    folder: Option<RunFolder>,
    allow_data_change: bool,
    step_memory_limit: Option<u64>,
    /// The data's fingerprint as JSON, for the checkpoints of the run.
    data: String,
    hooks: Vec<EpochHook<'a>>,
}

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("out_dir", &self.out_dir)
            .field("folder", &self.folder)
            .field("allow_data_change", &self.allow_data_change)
            .field("step_memory_limit", &self.step_memory_limit)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl<'a> Trainer<'a> {
    /// A trainer with validated settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming a setting that cannot work.
    pub fn new(config: TrainConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            out_dir: None,
            folder: None,
            allow_data_change: false,
            step_memory_limit: None,
            data: String::new(),
            hooks: Vec::new(),
        })
    }

    /// Writes `history.jsonl`, `checkpoint.safetensors` (every epoch) and
    /// `best.safetensors` (when the test loss improves) into `dir`.
    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self.folder = None;
        self
    }

    /// Writes into a checked [`RunFolder`], as [`output_dir`](Self::output_dir)
    /// does, and protects the run already there: [`fit`](Self::fit) calls
    /// [`RunFolder::prepare`] after its checks on the data and right before
    /// its first write (the old run moves into a backup folder), and
    /// [`RunFolder::commit`] once the first checkpoint is written (the backup
    /// is deleted); a run that fails in between puts the old run back.
    pub fn run_folder(mut self, folder: RunFolder) -> Self {
        self.out_dir = Some(folder.path().to_path_buf());
        self.folder = Some(folder);
        self
    }

    /// The most bytes of activations one training step may keep, as the
    /// model estimates them ([`Trainable::training_step_bytes`]); checked
    /// before anything is written or allocated. By default
    /// [`default_step_memory_limit`](crate::models::default_step_memory_limit):
    /// half the memory available when training starts.
    pub fn step_memory_limit(mut self, bytes: u64) -> Self {
        self.step_memory_limit = Some(bytes);
        self
    }

    /// Lets [`resume`](Self::resume) continue on other data than the run's
    /// checkpoint records (a [`DataFingerprint`]: the sizes, shapes and first
    /// images of the training and test sets); refused by default.
    pub fn allow_data_change(mut self, allow: bool) -> Self {
        self.allow_data_change = allow;
        self
    }

    /// Whether the run folder holds a run to resume ([`RunFolder::resumes`]):
    /// call [`resume`](Self::resume) then, else [`fit`](Self::fit).
    pub fn resumes(&self) -> bool {
        self.folder.as_ref().is_some_and(RunFolder::resumes)
    }

    /// Calls `hook` with the epoch's report after every epoch (after the history
    /// and checkpoints are written), e.g. to print a line or write pictures: the
    /// hook borrows the model it draws from, as `fit` does. The progress bar is
    /// cleared while a hook runs, so its output never collides with the bar. An
    /// error from the hook stops training.
    pub fn on_epoch(mut self, hook: impl FnMut(&EpochReport) -> Result<()> + 'a) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains `model` from its current weights on `train`, evaluating on `test`:
    /// each a [`Dataset`] held in memory or any other [`ImageSource`], such as
    /// images streamed from disk.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] for an empty training or test set, a set without labels
    /// for a model that [needs them](Trainable::needs_labels), or a training set
    /// smaller than one batch when the last partial batch is dropped;
    /// [`Error::Config`] for binarization of images that are not held in
    /// memory;
    /// [`Error::NonFinite`] naming the epoch, step and term if a loss is not
    /// finite (the checkpoint of the last complete epoch is left as it was);
    /// [`Error::Io`] if the output folder cannot be written; errors from hooks.
    pub fn fit<M, T, V>(&mut self, model: &M, train: &T, test: &V) -> Result<TrainSummary>
    where
        M: Trainable + ?Sized,
        T: ImageSource + ?Sized,
        V: ImageSource + ?Sized,
    {
        check_data(&self.config, self.step_memory_limit, model, train, test)?;
        self.data = fingerprint_json(&DataFingerprint::of(train, test)?);
        let mut opt = self
            .config
            .optimizer
            .build(model.params().trainable_vars())?;
        let state = TrainState {
            config: self.config.clone(),
            epoch: 0,
            rng_seed: String::new(),
            rng_stream: 0,
            rng_word_pos: String::new(),
            best: None,
            bad_epochs: 0,
        };
        let rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        if let Some(folder) = &mut self.folder {
            if folder.resumes() {
                return Err(Error::config(
                    "output_dir",
                    format!(
                        "{} holds a run to resume: call resume, not fit",
                        folder.path().display()
                    ),
                ));
            }
            folder.prepare()?;
        }
        if let Some(dir) = &self.out_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let h = dir.join(HISTORY_FILE);
            std::fs::write(&h, b"").map_err(|e| Error::io(&h, e))?;
        }
        self.run(model, train, test, opt.as_mut(), state, rng)
    }

    /// Continues the run whose checkpoint is in the output folder: restores the
    /// weights, optimizer state, generator and epoch, then trains to
    /// [`TrainConfig::epochs`]. On the CPU the result is bit-identical to a run
    /// that was never interrupted.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] without an output folder; [`Error::Checkpoint`] if the
    /// checkpoint is unreadable, was made for another model or with other
    /// training settings; [`Error::Tensor`] naming a tensor that does not fit;
    /// and the errors of [`fit`](Trainer::fit).
    pub fn resume<M, T, V>(&mut self, model: &M, train: &T, test: &V) -> Result<TrainSummary>
    where
        M: Trainable + ?Sized,
        T: ImageSource + ?Sized,
        V: ImageSource + ?Sized,
    {
        check_data(&self.config, self.step_memory_limit, model, train, test)?;
        if let Some(folder) = &mut self.folder {
            if !folder.resumes() {
                return Err(Error::config(
                    "output_dir",
                    format!(
                        "{} was not opened to resume a run (RunPolicy::Resume)",
                        folder.path().display()
                    ),
                ));
            }
            // Resuming moves nothing: this only marks the folder as in use.
            folder.prepare()?;
        }
        let dir = self.out_dir.clone().ok_or_else(|| {
            Error::config("output_dir", "resuming needs the output folder of the run")
        })?;
        let Restored {
            state,
            rng,
            mut opt,
            data,
        } = restore_training_checkpoint(
            &dir.join(CHECKPOINT_FILE),
            model,
            &self.config,
            train,
            test,
            self.allow_data_change,
        )?;
        self.data = data;
        truncate_history(&dir.join(HISTORY_FILE), state.epoch)?;
        self.run(model, train, test, opt.as_mut(), state, rng)
    }

    /// Trains from the epoch after `state.epoch` to [`TrainConfig::epochs`]
    /// (or an early stop): each epoch, then its files, then the hooks.
    fn run<M, T, V>(
        &mut self,
        model: &M,
        train: &T,
        test: &V,
        opt: &mut dyn TrainOptimizer,
        mut state: TrainState,
        mut rng: ChaCha8Rng,
    ) -> Result<TrainSummary>
    where
        M: Trainable + ?Sized,
        T: ImageSource + ?Sized,
        V: ImageSource + ?Sized,
    {
        let cfg = self.config.clone();
        let (train_static, test_bin) = match cfg.binarization {
            Binarization::None => (None, None),
            Binarization::Static => (
                Some(held(train.held())?.binarize_static()),
                Some(held(test.held())?.binarize_static()),
            ),
            Binarization::Dynamic => {
                let mut fixed = ChaCha8Rng::seed_from_u64(cfg.seed ^ EVAL_SEED_SALT);
                (None, Some(held(test.held())?.binarize_dynamic(&mut fixed)))
            }
        };
        let test_set: &dyn ImageSource = match &test_bin {
            Some(t) => t,
            None => &test,
        };
        let steps_per_epoch = match cfg.last_batch {
            LastBatch::Keep => train.len().div_ceil(cfg.batch_size),
            LastBatch::Drop => train.len() / cfg.batch_size,
        };
        let bar = progress_bar(
            cfg.progress,
            (cfg.epochs - state.epoch.min(cfg.epochs)) * steps_per_epoch,
        );
        let epochs = Epochs {
            cfg: &cfg,
            model,
            train,
            train_static: train_static.as_ref(),
            test_set,
            steps_per_epoch,
            bar: &bar,
        };
        let mut history = Vec::new();
        let mut stopped_early = false;
        while state.epoch < cfg.epochs {
            let report = epochs.epoch(opt, &mut state, &mut rng)?;
            self.save_epoch(model, opt, &state, &rng, &report)?;
            // The bar steps aside while hooks run, so what they print lands on
            // lines of its own, never on the end of the bar's line.
            for hook in &mut self.hooks {
                bar.suspend(|| hook(&report))?;
            }
            history.push(report);
            if let Some(es) = cfg.early_stopping {
                if state.bad_epochs >= es.patience {
                    stopped_early = true;
                    break;
                }
            }
        }
        bar.finish_and_clear();
        Ok(TrainSummary {
            history,
            last_epoch: state.epoch,
            best: state.best,
            stopped_early,
        })
    }

    /// Writes what an epoch leaves in the output folder, if there is one: its
    /// line of the history, the best model when the test loss improved, and
    /// the resumable checkpoint, which commits the run folder.
    fn save_epoch<M: Trainable + ?Sized>(
        &mut self,
        model: &M,
        opt: &dyn TrainOptimizer,
        state: &TrainState,
        rng: &ChaCha8Rng,
        report: &EpochReport,
    ) -> Result<()> {
        if let Some(dir) = &self.out_dir {
            append_history(&dir.join(HISTORY_FILE), report)?;
            if report.improved {
                write_checkpoint(
                    dir.join(BEST_MODEL_FILE),
                    &model.params().snapshot(),
                    &checkpoint_metadata(model),
                )?;
            }
            save_training_checkpoint(
                &dir.join(CHECKPOINT_FILE),
                model,
                opt,
                state,
                rng,
                &self.data,
            )?;
            if let Some(folder) = &mut self.folder {
                folder.commit()?;
            }
        }
        Ok(())
    }
}

/// What every epoch of a run shares: the settings, the model, the data
/// (binarized once where the settings say so) and the progress bar.
struct Epochs<'r, M: ?Sized, T: ?Sized> {
    cfg: &'r TrainConfig,
    model: &'r M,
    /// The training set as given.
    train: &'r T,
    /// The training set binarized once, under static binarization.
    train_static: Option<&'r Dataset>,
    /// The test set, binarized once under static or dynamic binarization.
    test_set: &'r dyn ImageSource,
    steps_per_epoch: usize,
    bar: &'r indicatif::ProgressBar,
}

/// An epoch under way: which one, since when, and what its steps add up to.
struct EpochTally {
    epoch: usize,
    /// The global step of this epoch's first step, less one.
    steps_before: usize,
    started: Instant,
    acc: TermAccumulator,
    betas: BetaRecord,
}

impl<M, T> Epochs<'_, M, T>
where
    M: Trainable + ?Sized,
    T: ImageSource + ?Sized,
{
    /// Trains the epoch after `state.epoch`, with the generator `rng` (for the
    /// shuffle, dynamic binarization, augmentation, corruption and the
    /// model's noise), evaluates on the test set with the epoch's evaluation
    /// generator, and records the epoch in `state`.
    fn epoch(
        &self,
        opt: &mut dyn TrainOptimizer,
        state: &mut TrainState,
        mut rng: &mut ChaCha8Rng,
    ) -> Result<EpochReport> {
        let Self {
            cfg,
            model,
            train,
            train_static,
            test_set,
            steps_per_epoch,
            bar,
        } = *self;
        let epoch = state.epoch + 1;
        let started = Instant::now();
        // The global step of this epoch's first step, less one.
        let steps_before = state.epoch * steps_per_epoch;
        let dynamic;
        let train_set: &dyn ImageSource = match (train_static, cfg.binarization) {
            (Some(s), _) => s,
            (None, Binarization::Dynamic) => {
                dynamic = held(train.held())?.binarize_dynamic(&mut rng);
                &dynamic
            }
            (None, _) => &train,
        };
        let batches: BatchIter<'_> = train_set.batches(
            cfg.batch_size,
            Shuffle::Seeded(&mut rng),
            cfg.last_batch,
            model.device(),
        )?;
        let mut tally = EpochTally {
            epoch,
            steps_before,
            started,
            acc: TermAccumulator::default(),
            betas: BetaRecord::default(),
        };
        for (i, batch) in batches.enumerate() {
            self.step(&mut tally, opt, rng, i + 1, batch?)?;
        }
        let EpochTally { acc, betas, .. } = tally;
        let train_seconds = started.elapsed().as_secs_f64();
        let beta = betas.value();
        let mut eval_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ EVAL_SEED_SALT);
        eval_rng.set_stream(epoch as u64);
        // Evaluation weighs the KL with the schedule's target β.
        let eval_ctx = StepContext::eval()
            .with_epoch(epoch)
            .with_beta(cfg.beta_schedule.as_ref().map(|s| s.target()));
        let test_terms = evaluate_with(
            model,
            test_set,
            cfg.eval_batch_size,
            &mut eval_rng,
            cfg.corruption.as_ref(),
            &eval_ctx,
        )?;
        let train_terms = acc.means();
        let test_loss = lookup(&test_terms, "loss").unwrap_or(f64::NAN);
        if !test_loss.is_finite() {
            bar.abandon();
            return Err(Error::NonFinite {
                epoch,
                step: steps_per_epoch,
                term: "test loss".into(),
                value: test_loss,
            });
        }
        let min_delta = cfg.early_stopping.map_or(0.0, |e| e.min_delta);
        let improved = state
            .best
            .is_none_or(|(_, best)| test_loss < best - min_delta);
        if improved {
            state.best = Some((epoch, test_loss));
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
        }
        state.epoch = epoch;
        Ok(EpochReport {
            epoch,
            train: train_terms,
            test: test_terms,
            seconds: started.elapsed().as_secs_f64(),
            images_per_s: acc.images as f64 / train_seconds.max(1e-9),
            improved,
            beta,
        })
    }

    /// Training step `step` of the epoch in `tally`: `batch` augmented and
    /// corrupted (drawing from `rng`), its loss at the step's β, the
    /// optimizer's update, the progress bar moved on.
    fn step(
        &self,
        tally: &mut EpochTally,
        opt: &mut dyn TrainOptimizer,
        mut rng: &mut ChaCha8Rng,
        step: usize,
        mut batch: Batch,
    ) -> Result<()> {
        let Self {
            cfg,
            model,
            train,
            steps_per_epoch,
            bar,
            ..
        } = *self;
        let EpochTally {
            epoch,
            steps_before,
            started,
            ref mut acc,
            ref mut betas,
        } = *tally;
        if cfg.augmentation.is_active() {
            batch.images = cfg.augmentation.apply(&batch.images, &mut rng)?;
        }
        // Corrupted after augmenting: the loss scores the augmented clean images.
        let batch = match &cfg.corruption {
            Some(c) => c.corrupt(batch, &mut rng)?,
            None => batch,
        };
        let ctx = StepContext::train()
            .with_epoch(epoch)
            .with_step(steps_before + step)
            .with_beta(
                cfg.beta_schedule
                    .as_ref()
                    .map(|s| s.beta_at(epoch, steps_before + step)),
            );
        if let Some(beta) = ctx.beta.or(model.beta()) {
            betas.add(beta);
        }
        let terms = model
            .batch_loss(&batch, &mut rng, &ctx)
            .map_err(|e| one_image_batch(e, batch.len(), train.len(), cfg.batch_size))?;
        let values = acc.add(&terms, batch.len())?;
        if let Some((term, value)) = values.iter().find(|(_, v)| !v.is_finite()) {
            bar.abandon();
            return Err(Error::NonFinite {
                epoch,
                step,
                term: term.clone(),
                value: *value,
            });
        }
        opt.backward_step(&terms.total)?;
        bar.inc(1);
        if step.is_multiple_of(10) || step == steps_per_epoch {
            bar.set_message(format!(
                "epoch {epoch}/{} loss {:.4} {:.0} img/s",
                cfg.epochs,
                acc.mean("loss"),
                acc.images as f64 / started.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        Ok(())
    }
}
