//! [`Model`]: any vaekit model built from a [`ModelConfig`], with its parameters,
//! saved and loaded as one safetensors file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::RngCore;

use crate::data::Batch;
use crate::latent::{DiagonalGaussian, LatentPrior};
use crate::nets::{Decoder, Encoder, ImageShape};
use crate::params::{CheckpointFile, ParamStore, ShapeProbe};
use crate::{Error, Result};

use super::any::AnyModel;
use super::autoencoder::Autoencoder;
use super::build::build_model;
use super::conditioning::{Condition, Conditioner, Conditioning};
use super::config::{CheckedModelConfig, ModelConfig};
use super::gumbel_vae::GumbelVae;
use super::latent_model::LatentModel;
use super::persist::{TrainableExt, CONFIG_KEY};
use super::presets::Preset;
use super::step_memory::training_step_bytes;
use super::trainable::{LossTerms, StepContext, Trainable};
use super::vae::Vae;
use super::vq_vae::VqVae;

/// The autoencoder a [`Model`] builds from an autoencoder config.
pub type ConfigAutoencoder = Autoencoder<Box<dyn Encoder>, Box<dyn Decoder>>;
/// The VAE a [`Model`] builds from a VAE config (any prior, any conditioning).
pub type ConfigVae =
    Vae<Box<dyn Encoder>, Box<dyn Decoder>, Box<dyn LatentPrior>, Box<dyn Conditioner>>;

/// The VQ-VAE a [`Model`] builds from a VQ-VAE config.
pub type ConfigVqVae = VqVae<Box<dyn Encoder>, Box<dyn Decoder>>;
/// The Gumbel-softmax VAE a [`Model`] builds from its config.
pub type ConfigGumbelVae = GumbelVae<Box<dyn Encoder>, Box<dyn Decoder>>;

/// The most parameters (weights and buffers) a model may have unless
/// [`ModelLimits`] allow more: 2^28 values, 1 GiB as `f32`.
pub const MAX_PARAMETERS: u64 = 1 << 28;

/// Limits on what a [`Model`] may be, checked before anything is allocated:
/// [`ModelLimits::build`] and [`ModelLimits::load`] are the constructors
/// that take them ([`Model::new`] and [`Model::load`] use the defaults).
///
/// ```
/// use candle_core::Device;
/// use vaekit::models::{ModelLimits, Preset};
///
/// let small = ModelLimits::default().with_max_parameters(1_000);
/// let err = small.build(&Preset::DenseVae.config(), &Device::Cpu, 0).unwrap_err();
/// assert!(err.to_string().contains("more than the limit of 1000"));
/// # Ok::<(), vaekit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelLimits {
    /// The most values in all the model's tensors together.
    pub max_parameters: u64,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self {
            max_parameters: MAX_PARAMETERS,
        }
    }
}

crate::setters::with_setters!(ModelLimits {
    with_max_parameters(max_parameters: u64),
});

impl ModelLimits {
    /// Builds the model described by `config` on `device`, drawing its
    /// initial weights from a generator seeded with `seed`, if it is within
    /// these limits.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work, or saying how
    /// many parameters the model would have if that is over the limit (found
    /// before any weight is drawn).
    pub fn build(&self, config: &ModelConfig, device: &Device, seed: u64) -> Result<Model> {
        self.parameter_shapes(config)?;
        Model::build(config, device, seed)
    }

    /// Loads a model saved by [`Model::save`] (or a training checkpoint) onto
    /// `device`, if it is within these limits. The file's config is checked,
    /// the model's parameter count computed and every tensor's name, dtype and
    /// shape compared with the file's header before any weight is allocated.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] if the file is not a vaekit checkpoint, its config
    /// does not parse or cannot work (the message names the config field), or
    /// asks for more parameters than allowed; [`Error::Tensor`] naming a tensor
    /// that is missing or of the wrong shape or dtype.
    pub fn load(&self, path: impl AsRef<Path>, device: &Device) -> Result<Model> {
        let path = path.as_ref();
        let file = CheckpointFile::open(path)?;
        let json = file.metadata().get(CONFIG_KEY).ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!("no `{CONFIG_KEY}` metadata: not a vaekit model file (use load_weights for a bare state dict)"),
        })?;
        let in_file = |e| match e {
            Error::Config { field, reason } => Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("config field `{field}`: {reason}"),
            },
            other => other,
        };
        let config: ModelConfig = super::json::parse_json(json).map_err(in_file)?;
        // Building on the probe checks the config and finds the shapes.
        let shapes = self.parameter_shapes(&config).map_err(in_file)?;
        file.check_shapes(&shapes)?;
        let ckpt = file.load(device)?;
        let model = Model::build(&config, device, 0)?;
        model.params.assign(&ckpt.tensors)?;
        Ok(model)
    }

    /// The name and shape of every tensor of the model `config` describes,
    /// found by building it on a [`ShapeProbe`] (which checks the config and
    /// allocates nothing); an error if they hold more values than allowed.
    fn parameter_shapes(&self, config: &ModelConfig) -> Result<BTreeMap<String, Vec<usize>>> {
        let probe = ShapeProbe::new();
        build_model(config, &ParamStore::new(&Device::Cpu), probe.var_builder())?;
        let values = probe.values();
        match values {
            Some(n) if n <= self.max_parameters => Ok(probe.shapes()),
            _ => Err(Error::config(
                "config",
                format!(
                    "the model would have {} parameters, more than the limit of {} (raise ModelLimits::max_parameters)",
                    values.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
                    self.max_parameters
                ),
            )),
        }
    }
}

/// A model built from a [`ModelConfig`], owning its parameters.
///
/// It implements [`Trainable`], so the [`Trainer`](crate::train::Trainer)
/// trains it; [`save`](Model::save) writes its config with its weights, and
/// [`Model::load`] rebuilds it from the file alone. The network inside is one
/// family's type behind [`AnyModel`]; [`as_vae`](Model::as_vae),
/// [`as_autoencoder`](Model::as_autoencoder), [`as_vq_vae`](Model::as_vq_vae)
/// and [`as_gumbel_vae`](Model::as_gumbel_vae) give it typed.
#[derive(Debug)]
pub struct Model {
    config: CheckedModelConfig,
    params: ParamStore,
    network: Box<dyn AnyModel>,
    /// The same network over untracked views of the same parameter storage,
    /// for inference: its results carry no autograd graph, so intermediates are
    /// freed as soon as the next layer has used them.
    frozen: Box<dyn AnyModel>,
}

impl Model {
    /// Builds the model described by `config` on `device`, drawing its initial
    /// weights from a generator seeded with `seed`, within the default
    /// [`ModelLimits`] (see [`ModelLimits::build`] for others).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn new(config: &ModelConfig, device: &Device, seed: u64) -> Result<Self> {
        ModelLimits::default().build(config, device, seed)
    }

    /// Builds the model of a config whose size was checked.
    fn build(config: &ModelConfig, device: &Device, seed: u64) -> Result<Self> {
        Self::build_with(config, ParamStore::new(device), seed)
    }

    /// Builds both copies of the network over `params`.
    fn build_with(config: &ModelConfig, params: ParamStore, seed: u64) -> Result<Self> {
        let network = build_model(config, &params, params.var_builder(seed))?;
        let frozen = build_model(config, &params, params.untracked_var_builder())?;
        Ok(Self {
            config: CheckedModelConfig::built(config.clone()),
            params,
            network,
            frozen,
        })
    }

    /// A copy of the model whose weights and buffers are in `dtype`, e.g.
    /// `f64` for a reference computation: the same architecture, built anew
    /// ([`ParamStore::with_dtype`]), holding this model's current values
    /// converted. The copy shares no storage with `self`.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vaekit::models::{Model, Preset};
    ///
    /// let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0)?;
    /// let exact = model.to_dtype(DType::F64)?;
    /// assert_eq!(exact.params().dtype(), DType::F64);
    /// # Ok::<(), vaekit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Candle`] if a tensor cannot be converted.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let params = ParamStore::with_dtype(&self.params.device().clone(), dtype);
        let model = Self::build_with(self.config(), params, 0)?;
        let values = self
            .params
            .snapshot()
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_dtype(dtype)?)))
            .collect::<candle_core::Result<HashMap<_, _>>>()?;
        model.params.assign(&values)?;
        Ok(model)
    }

    /// Builds a tutorial preset; see [`Model::new`].
    pub fn from_preset(preset: Preset, device: &Device, seed: u64) -> Result<Self> {
        Self::new(&preset.config(), device, seed)
    }

    /// The config the model was built from.
    pub fn config(&self) -> &ModelConfig {
        self.config.get()
    }

    /// The parameters (weights and buffers).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// The network, of whichever family, over the tracked weights (what
    /// training differentiates).
    pub fn network(&self) -> &dyn AnyModel {
        self.network.as_ref()
    }

    /// The same network over untracked views of the weights, for inference
    /// without an autograd graph.
    pub fn network_untracked(&self) -> &dyn AnyModel {
        self.frozen.as_ref()
    }

    /// The VAE (conditioned or not), if the model is one.
    pub fn as_vae(&self) -> Option<&ConfigVae> {
        self.network.as_any().downcast_ref()
    }

    /// The VAE over untracked views of the weights, if the model is one: the
    /// same network as [`as_vae`](Self::as_vae), for inference (importance
    /// sampling, diagnostics) without an autograd graph.
    pub fn as_vae_untracked(&self) -> Option<&ConfigVae> {
        self.frozen.as_any().downcast_ref()
    }

    /// The autoencoder, if the model is one.
    pub fn as_autoencoder(&self) -> Option<&ConfigAutoencoder> {
        self.network.as_any().downcast_ref()
    }

    /// The VQ-VAE, if the model is one, over untracked views of the weights
    /// (its quantiser's buffers are shared with the trained network): what
    /// encodes code grids, fits the prior ([`VqVae::fit_prior`]) and samples.
    pub fn as_vq_vae(&self) -> Option<&ConfigVqVae> {
        self.frozen.as_any().downcast_ref()
    }

    /// The Gumbel-softmax VAE, if the model is one, over untracked views of
    /// the weights (for inference: importance weights, encoding).
    pub fn as_gumbel_vae(&self) -> Option<&ConfigGumbelVae> {
        self.frozen.as_any().downcast_ref()
    }

    /// The decoder (of whichever family).
    pub fn decoder(&self) -> &dyn Decoder {
        self.frozen.decoder()
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.frozen.latent_dim()
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ImageShape {
        self.frozen.input_shape()
    }

    /// The number of classes, for a class-conditioned model.
    pub fn classes(&self) -> Option<usize> {
        self.frozen.classes()
    }

    /// Where a class-conditioned model's class vector comes from.
    pub fn conditioning(&self) -> Option<Conditioning> {
        self.frozen.conditioning()
    }

    /// Classifier logits `[b, classes]` for `images`, for a model whose
    /// conditioning predicts the class; `None` for every other model.
    pub fn classify(&self, images: &Tensor) -> candle_core::Result<Option<Tensor>> {
        self.frozen.classify(images)
    }

    /// Codes `[b, latent]` for `images`: the code of an autoencoder, the posterior
    /// mean of a VAE (evaluation mode).
    pub fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        self.frozen.encode(images)
    }

    /// Reconstructions of `images` as pixels in `[0, 1]` (evaluation mode,
    /// through the posterior mean). A class-conditioned model's decoder sees
    /// the class of `condition` (`Condition::of(&batch)` gives a batch's
    /// labels) unless it predicts it from the images; other models ignore it.
    pub fn reconstruct(
        &self,
        images: &Tensor,
        condition: Condition<'_>,
    ) -> candle_core::Result<Tensor> {
        self.frozen.reconstruct(images, condition)
    }

    /// Decodes codes `z` `[n, latent]` to pixels. A class-conditioned model
    /// decodes with the classes `condition` gives, which it requires; other
    /// models ignore it.
    pub fn decode(&self, z: &Tensor, condition: Condition<'_>) -> candle_core::Result<Tensor> {
        self.frozen.decode(z, condition)
    }

    /// `n` draws from the prior, decoded to pixels. An autoencoder has no prior:
    /// it decodes `N(0, I)` codes, which is what its tutorial's latent grid does.
    /// A class-conditioned model cycles through its classes.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore) -> candle_core::Result<Tensor> {
        self.frozen.sample(n, rng)
    }

    /// Saves the weights, buffers and config to `path` (safetensors,
    /// atomically); [`TrainableExt::save`] for a model built from a config.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        TrainableExt::save(self, path)
    }

    /// Loads a model saved by [`Model::save`] (or a training checkpoint) onto
    /// `device`, within the default [`ModelLimits`] (see
    /// [`ModelLimits::load`]): the config in the file picks the architecture.
    ///
    /// # Errors
    ///
    /// As [`ModelLimits::load`].
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        ModelLimits::default().load(path, device)
    }

    /// Overwrites the weights with those in a safetensors file of PyTorch-named
    /// tensors (e.g. a PyTorch `state_dict` saved with `safetensors.torch.save_file`),
    /// or in a vaekit checkpoint of the same network; [`TrainableExt::load_weights`].
    /// Tensors the model does not use (`num_batches_tracked`) are ignored. The
    /// loss settings may differ from the file's: a model saved with the ELBO
    /// loads into this network built with the IWAE objective, another β or
    /// free bits.
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] naming a tensor that is missing or of the wrong shape
    /// or dtype; [`Error::Checkpoint`] for an unreadable file, or a vaekit file
    /// whose config describes another network (naming the field). Nothing is
    /// changed then.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        TrainableExt::load_weights(self, path)
    }

    /// The latent model of the untracked network, or an error naming the
    /// family that has none.
    fn latent(&self) -> candle_core::Result<&dyn LatentModel> {
        self.frozen.latent_model().ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "importance sampling and latent diagnostics need a VAE; this model is a {}",
                self.frozen.family()
            ))
        })
    }
}

impl Trainable for Model {
    fn params(&self) -> &ParamStore {
        &self.params
    }

    fn batch_loss(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> candle_core::Result<LossTerms> {
        self.network.batch_loss(batch, rng, ctx)
    }

    /// The evaluation loss without gradient tracking, as under PyTorch's
    /// `torch.no_grad()`: its memory is that of one layer's activations at a
    /// time, not of the whole forward pass.
    fn evaluate(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> candle_core::Result<LossTerms> {
        self.frozen.evaluate(batch, rng, ctx)
    }

    fn needs_labels(&self) -> bool {
        self.network.needs_labels()
    }

    fn architecture(&self) -> Option<String> {
        Some(self.config.to_json())
    }

    fn training_step_bytes(&self, batch_size: usize) -> Option<u64> {
        training_step_bytes(self.config.get(), batch_size).ok()
    }

    fn loss_settings(&self) -> Option<String> {
        self.network.loss_settings()
    }

    fn beta(&self) -> Option<f64> {
        self.network.beta()
    }
}

/// Through the untracked network; an error for a family without a latent
/// model (the plain autoencoder).
impl LatentModel for Model {
    fn latent_dim(&self) -> usize {
        self.frozen.latent_dim()
    }
    fn posterior_of(&self, images: &Tensor) -> candle_core::Result<DiagonalGaussian> {
        self.latent()?.posterior_of(images)
    }
    fn log_weights(
        &self,
        q: &DiagonalGaussian,
        images: &Tensor,
        condition: Condition<'_>,
        eps: &Tensor,
    ) -> candle_core::Result<Tensor> {
        self.latent()?.log_weights(q, images, condition, eps)
    }
    fn kl_per_dim(&self, q: &DiagonalGaussian) -> candle_core::Result<Option<Tensor>> {
        self.latent()?.kl_per_dim(q)
    }
    fn decode_pixels(&self, z: &Tensor, condition: Condition<'_>) -> candle_core::Result<Tensor> {
        self.latent()?.decode_pixels(z, condition)
    }
}

/// Through the untracked network, as [`Model`]'s own methods.
impl AnyModel for Model {
    fn family(&self) -> &'static str {
        self.frozen.family()
    }
    fn latent_dim(&self) -> usize {
        Model::latent_dim(self)
    }
    fn input_shape(&self) -> ImageShape {
        Model::input_shape(self)
    }
    fn classes(&self) -> Option<usize> {
        Model::classes(self)
    }
    fn conditioning(&self) -> Option<Conditioning> {
        Model::conditioning(self)
    }
    fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        Model::encode(self, images)
    }
    fn decode(&self, z: &Tensor, condition: Condition<'_>) -> candle_core::Result<Tensor> {
        Model::decode(self, z, condition)
    }
    fn reconstruct(
        &self,
        images: &Tensor,
        condition: Condition<'_>,
    ) -> candle_core::Result<Tensor> {
        Model::reconstruct(self, images, condition)
    }
    fn sample(&self, n: usize, rng: &mut dyn RngCore) -> candle_core::Result<Tensor> {
        Model::sample(self, n, rng)
    }
    fn decoder(&self) -> &dyn Decoder {
        Model::decoder(self)
    }
    fn classify(&self, images: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Model::classify(self, images)
    }
    fn latent_model(&self) -> Option<&dyn LatentModel> {
        self.frozen.latent_model().map(|_| self as &dyn LatentModel)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
