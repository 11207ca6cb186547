//! [`Trainable`]: what the trainer needs from a model, so that any model —
//! built from a config or assembled by hand from the traits — trains, saves,
//! loads and resumes the same way; and [`StepContext`], what it tells the
//! model about each step.

use std::borrow::Cow;

use candle_core::Tensor;
use rand::RngCore;

use crate::data::Batch;
use crate::losses::Reduction;
use crate::params::ParamStore;

/// Whether a forward pass trains or evaluates: batch norm uses batch statistics
/// (and updates its running statistics) in training, running statistics in
/// evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training behaviour.
    Train,
    /// Evaluation behaviour.
    Eval,
}

impl Mode {
    /// candle's `train` flag for [`ModuleT::forward_t`](candle_nn::ModuleT::forward_t).
    pub fn is_train(self) -> bool {
        self == Mode::Train
    }
}

/// How a term's value relates to the images of its batch, so the trainer can
/// report every term per image without knowing the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// A sum over the batch's images: divided by the batch size when reported.
    Batch,
    /// Already a mean over the batch's images (per image, per pixel, or a rate
    /// such as accuracy): reported as it is.
    Image,
}

impl From<Reduction> for Per {
    /// [`Reduction::Sum`] sums over images; the means are per image.
    fn from(r: Reduction) -> Self {
        match r {
            Reduction::Sum => Per::Batch,
            _ => Per::Image,
        }
    }
}

/// One named scalar of a batch's loss.
#[derive(Debug, Clone)]
pub struct Term {
    /// Its name in reports and `history.jsonl` (`reconstruction`, `kl`, …).
    pub name: Cow<'static, str>,
    /// The scalar.
    pub value: Tensor,
    /// How it is normalised over the batch.
    pub per: Per,
}

impl Term {
    /// A term named `name`.
    pub fn new(name: impl Into<Cow<'static, str>>, value: Tensor, per: Per) -> Self {
        Self {
            name: name.into(),
            value,
            per,
        }
    }
}

/// A batch's loss and the terms it is made of.
#[derive(Debug, Clone)]
pub struct LossTerms {
    /// The scalar to minimise (reported as `loss`).
    pub total: Tensor,
    /// How [`total`](Self::total) is normalised over the batch.
    pub per: Per,
    /// Named scalars, reported beside the total: the loss's parts and, in
    /// evaluation, metrics such as `accuracy`.
    pub terms: Vec<Term>,
}

impl LossTerms {
    /// The term called `name`.
    pub fn term(&self, name: &str) -> Option<&Tensor> {
        self.terms.iter().find(|t| t.name == name).map(|t| &t.value)
    }
}

/// What the trainer tells a model about the step it computes a loss for:
/// training or evaluation, where in the run it is, and the KL weight β a β
/// schedule gives it ([`TrainConfig::beta_schedule`](crate::train::TrainConfig::beta_schedule)).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct StepContext {
    /// Training or evaluation behaviour.
    pub mode: Mode,
    /// The 1-based epoch (0 outside a run).
    pub epoch: usize,
    /// The 1-based training step over the whole run (0 outside a run, and in
    /// evaluation).
    pub step: usize,
    /// The KL weight for this step, when a schedule sets one; `None`: the
    /// model's configured β.
    pub beta: Option<f64>,
}

impl StepContext {
    /// A training step outside a run: the configured β.
    pub fn train() -> Self {
        Self {
            mode: Mode::Train,
            epoch: 0,
            step: 0,
            beta: None,
        }
    }

    /// An evaluation pass outside a run: the configured β.
    pub fn eval() -> Self {
        Self {
            mode: Mode::Eval,
            ..Self::train()
        }
    }

    /// `mode`, outside a run, with the configured β.
    pub fn of(mode: Mode) -> Self {
        Self {
            mode,
            ..Self::train()
        }
    }

    /// The β of this step for a model configured with `configured`.
    pub fn beta_or(&self, configured: f64) -> f64 {
        self.beta.unwrap_or(configured)
    }
}

crate::setters::with_setters!(StepContext {
    with_mode(mode: Mode),
    with_epoch(epoch: usize),
    with_step(step: usize),
    with_beta(beta: Option<f64>),
});

/// A model the [`Trainer`](crate::train::Trainer) can train: it owns its
/// parameters and gives the loss of a batch as named terms.
///
/// [`Vae`](super::Vae) and [`Autoencoder`](super::Autoencoder) implement it
/// for any parts, and [`Model`](super::Model) for any config. A model of your
/// own implements [`params`](Self::params) and [`batch_loss`](Self::batch_loss);
/// saving, loading and everything the trainer does then come with it, through
/// [`TrainableExt`](super::TrainableExt), which every `Trainable` has.
///
/// Object-safe: `&dyn Trainable` works wherever a model is taken by reference.
///
/// Saving and loading, for a model built from a config and for one assembled by
/// hand:
///
/// ```
/// use vaekit::prelude::*;
///
/// let dir = std::env::temp_dir().join(format!("vaekit-doc-trainable-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
///
/// // Built from a config: the file carries the config, `Model::load` rebuilds it.
/// let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 1)?;
/// model.save(dir.join("preset.safetensors"))?;
/// let loaded = Model::load(dir.join("preset.safetensors"), &Device::Cpu)?;
/// assert_eq!(loaded.config(), model.config());
///
/// // Assembled by hand: build a fresh instance, then load the weights into it.
/// fn build(seed: u64) -> vaekit::Result<Vae<DenseEncoder, DenseDecoder, StandardNormal>> {
///     let params = ParamStore::new(&Device::Cpu);
///     let vb = params.var_builder(seed);
///     let encoder = DenseEncoder::new(
///         &DenseEncoderConfig::new(ImageShape::MNIST, &[32], 2 * 4),
///         vb.pp("encoder"),
///     )?;
///     let decoder = DenseDecoder::new(&DenseDecoderConfig::new(4, &[32], ImageShape::MNIST), vb.pp("decoder"))?;
///     Vae::new(&params, encoder, decoder, StandardNormal::new(4), PosteriorParam::LogVariance, VaeLossConfig::default())
/// }
/// let vae = build(1)?;
/// vae.save(dir.join("own.safetensors"))?;
/// let fresh = build(2)?;
/// fresh.load_weights(dir.join("own.safetensors"))?;
/// let w = |m: &dyn Trainable| m.params().snapshot()["decoder.out.bias"].to_vec1::<f32>();
/// assert_eq!(w(&fresh)?, w(&vae)?);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The trainer's checkpoints (`checkpoint.safetensors`) add the optimizer's
/// state, the generator's and the epoch, which
/// [`Trainer::resume`](crate::train::Trainer::resume) restores.
pub trait Trainable {
    /// The weights and buffers: what the optimizer updates and a checkpoint holds.
    fn params(&self) -> &ParamStore;

    /// The loss of `batch` as named terms, drawing any noise from `rng`, with
    /// the behaviour and β of the step `ctx` describes.
    fn batch_loss(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> candle_core::Result<LossTerms>;

    /// What the trainer reports on test data (`ctx` in evaluation mode): the
    /// loss, plus any metric the model has (a classifier's `accuracy`).
    /// Nothing is back-propagated from it, so a model may compute it without
    /// an autograd graph ([`Model`](super::Model) does).
    fn evaluate(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> candle_core::Result<LossTerms> {
        self.batch_loss(batch, rng, ctx)
    }

    /// Whether [`batch_loss`](Self::batch_loss) needs [`Batch::labels`]: the
    /// trainer refuses unlabelled data for such a model before the first step.
    /// `false` unless a model says otherwise (a class-conditioned VAE does).
    fn needs_labels(&self) -> bool {
        false
    }

    /// The model's architecture as JSON, for models built from a config; written
    /// into checkpoints and compared when one is loaded or resumed
    /// ([`TrainableExt::load_weights`](super::TrainableExt::load_weights) leaves the loss settings out of the
    /// comparison, [`Trainer::resume`](crate::train::Trainer::resume) does
    /// not).
    fn architecture(&self) -> Option<String> {
        None
    }

    /// An estimate of the bytes of activations one training step at
    /// `batch_size` images keeps, which the trainer checks against its
    /// [memory limit](crate::train::Trainer::step_memory_limit) before the
    /// first step; `None` (the default) when the model cannot tell.
    fn training_step_bytes(&self, batch_size: usize) -> Option<u64> {
        let _ = batch_size;
        None
    }

    /// The loss settings as JSON (objective, β, free bits, …), for a model
    /// that has them: written into checkpoints under `vaekit.loss` for
    /// information, never compared when one is loaded. `None` by default.
    fn loss_settings(&self) -> Option<String> {
        None
    }

    /// The KL weight β the loss is configured with, for a model that has one
    /// (every VAE); `None` otherwise, the default. A β schedule needs a model
    /// with one, and reaches it through [`StepContext::beta`].
    fn beta(&self) -> Option<f64> {
        None
    }
}

impl<M: Trainable + ?Sized> Trainable for &M {
    fn params(&self) -> &ParamStore {
        (**self).params()
    }
    fn batch_loss(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> candle_core::Result<LossTerms> {
        (**self).batch_loss(batch, rng, ctx)
    }
    fn evaluate(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> candle_core::Result<LossTerms> {
        (**self).evaluate(batch, rng, ctx)
    }
    fn needs_labels(&self) -> bool {
        (**self).needs_labels()
    }
    fn architecture(&self) -> Option<String> {
        (**self).architecture()
    }
    fn training_step_bytes(&self, batch_size: usize) -> Option<u64> {
        (**self).training_step_bytes(batch_size)
    }
    fn loss_settings(&self) -> Option<String> {
        (**self).loss_settings()
    }
    fn beta(&self) -> Option<f64> {
        (**self).beta()
    }
}
