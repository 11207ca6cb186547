//! [`Model`]: any vaekit model built from a [`ModelConfig`], with its parameters,
//! saved and loaded as one safetensors file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::RngCore;

use crate::data::Batch;
use crate::latent::{gaussian_mixture_prior, vamp_prior, LatentPrior, PriorConfig, StandardNormal};
use crate::nets::{Decoder, Encoder, ImageShape, Mlp};
use crate::params::{CheckpointFile, ParamStore, ShapeProbe};
use crate::{Error, Result};

use super::autoencoder::Autoencoder;
use super::config::{CheckedModelConfig, ModelConfig, VaeConfig};
use super::digit::{ClassConditioning, Conditioning, DigitConditionedVae};
use super::presets::Preset;
use super::trainable::{LossTerms, Mode, Trainable, CONFIG_KEY};
use super::vae::Vae;

/// The autoencoder a [`Model`] builds from an autoencoder config.
pub type ConfigAutoencoder = Autoencoder<Box<dyn Encoder>, Box<dyn Decoder>>;
/// The VAE a [`Model`] builds from a VAE config (any prior).
pub type ConfigVae = Vae<Box<dyn Encoder>, Box<dyn Decoder>, Box<dyn LatentPrior>>;
/// The digit-conditioned VAE a [`Model`] builds from its config.
pub type ConfigDigitCvae = DigitConditionedVae<Box<dyn Encoder>, Box<dyn Decoder>, Mlp>;

/// The most parameters (weights and buffers) a model may have unless
/// [`ModelLimits`] allow more: 2^28 values, 1 GiB as `f32`.
pub const MAX_PARAMETERS: u64 = 1 << 28;

/// How many values a training step keeps per value of a layer's output: the
/// output, what the normalisation and the activation make of it (kept for
/// the backward pass), and its gradient.
pub const STEP_COPIES: u64 = 4;

/// The share of the memory available when training starts that one training
/// step may take by default, in percent.
pub const STEP_MEMORY_PERCENT: u64 = 50;

/// The bytes of `f32` activations one training step of the model `config`
/// describes keeps at `batch_size` images: `batch_size` × (the values of
/// the input and of every layer's output, encoder and decoder, and the
/// classifier's) × [`STEP_COPIES`] × 4. An estimate, made from the config's
/// layer shapes without building anything; it saturates at `u64::MAX`.
///
/// # Errors
///
/// [`Error::Config`] for a layout that cannot work.
pub fn training_step_bytes(config: &ModelConfig, batch_size: usize) -> Result<u64> {
    let (encoder, decoder, extra) = match config {
        ModelConfig::Autoencoder(c) => (&c.encoder, &c.decoder, 0),
        ModelConfig::Vae(c) => (&c.encoder, &c.decoder, 0),
        ModelConfig::DigitCvae(c) => (
            &c.encoder,
            &c.decoder,
            crate::nets::widths(&c.classifier.hidden).saturating_add(c.classifier.out_dim as u64),
        ),
    };
    let per_image = (encoder.input_shape().numel() as u64)
        .saturating_add(encoder.activation_values()?)
        .saturating_add(decoder.activation_values()?)
        .saturating_add(extra);
    Ok(per_image
        .saturating_mul(batch_size as u64)
        .saturating_mul(STEP_COPIES)
        .saturating_mul(4))
}

/// The default limit on a training step's activations: [`STEP_MEMORY_PERCENT`]
/// of the memory available now ([`crate::memory::available_memory`]), or
/// 8 GiB where that cannot be read.
pub fn default_step_memory_limit() -> u64 {
    crate::memory::available_memory().map_or(8 << 30, |a| a / 100 * STEP_MEMORY_PERCENT)
}

/// Refuses a training step whose activations ([`training_step_bytes`]) would
/// take more than `limit` bytes, before anything is allocated.
///
/// # Errors
///
/// [`Error::Config`] (`batch_size`) naming the estimate and the limit;
/// [`Error::Config`] for a layout that cannot work.
pub fn check_training_step(config: &ModelConfig, batch_size: usize, limit: u64) -> Result<()> {
    step_bytes_within(training_step_bytes(config, batch_size)?, batch_size, limit)
}

/// An error unless a training step of `bytes` at `batch_size` images is
/// within `limit`.
pub(crate) fn step_bytes_within(bytes: u64, batch_size: usize, limit: u64) -> Result<()> {
    if bytes > limit {
        return Err(Error::config(
            "batch_size",
            format!(
                "a training step of this model at {batch_size} images per batch would keep about {} \
                 of activations, more than the limit of {}; use smaller images, narrower layers \
                 or a smaller batch (the limit is half the memory available, \
                 Trainer::step_memory_limit)",
                human_bytes(bytes),
                human_bytes(limit)
            ),
        ));
    }
    Ok(())
}

/// `1.5 GiB`, `300.0 MiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", b / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MiB", b / f64::from(1u32 << 20))
    }
}

/// Limits on what [`Model::new_with_limits`] builds and
/// [`Model::load_with_limits`] loads, checked before anything is allocated.
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

/// The network of a [`Model`], by family.
#[derive(Debug)]
enum Network {
    Autoencoder(ConfigAutoencoder),
    Vae(ConfigVae),
    DigitCvae(ConfigDigitCvae),
}

impl Network {
    fn trainable(&self) -> &dyn Trainable {
        match self {
            Network::Autoencoder(m) => m,
            Network::Vae(m) => m,
            Network::DigitCvae(m) => m,
        }
    }
}

/// A model built from a [`ModelConfig`], owning its parameters.
///
/// It implements [`Trainable`], so the [`Trainer`](crate::train::Trainer)
/// trains it; [`save`](Model::save) writes its config with its weights, and
/// [`Model::load`] rebuilds it from the file alone. The network inside is one of
/// the generic models; [`as_vae`](Model::as_vae),
/// [`as_autoencoder`](Model::as_autoencoder) and
/// [`as_digit_cvae`](Model::as_digit_cvae) give it typed.
#[derive(Debug)]
pub struct Model {
    config: CheckedModelConfig,
    params: ParamStore,
    network: Network,
    /// The same network over untracked views of the same parameter storage,
    /// for inference: its results carry no autograd graph, so intermediates are
    /// freed as soon as the next layer has used them.
    frozen: Network,
}

impl Model {
    /// Builds the model described by `config` on `device`, drawing its initial
    /// weights from a generator seeded with `seed`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn new(config: &ModelConfig, device: &Device, seed: u64) -> Result<Self> {
        Self::from_checked(&config.check()?, device, seed)
    }

    /// Builds the model of a config checked by [`ModelConfig::check`]; see
    /// [`Model::new`].
    ///
    /// # Errors
    ///
    /// [`Error::Candle`] if a tensor cannot be created on `device`.
    pub fn from_checked(config: &CheckedModelConfig, device: &Device, seed: u64) -> Result<Self> {
        Self::from_checked_with_limits(config, device, seed, &ModelLimits::default())
    }

    /// [`Model::new`] with other [`ModelLimits`] than the default.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work, or saying how
    /// many parameters the model would have if that is over the limit.
    pub fn new_with_limits(
        config: &ModelConfig,
        device: &Device,
        seed: u64,
        limits: &ModelLimits,
    ) -> Result<Self> {
        Self::from_checked_with_limits(&config.check()?, device, seed, limits)
    }

    /// [`Model::from_checked`] with other [`ModelLimits`] than the default.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the model would have more parameters than
    /// `limits` allow (found before any weight is drawn).
    pub fn from_checked_with_limits(
        config: &CheckedModelConfig,
        device: &Device,
        seed: u64,
        limits: &ModelLimits,
    ) -> Result<Self> {
        parameter_shapes(config, limits)?;
        Self::build(config, device, seed)
    }

    /// Builds the model of a config whose size was already checked.
    fn build(config: &CheckedModelConfig, device: &Device, seed: u64) -> Result<Self> {
        let params = ParamStore::new(device);
        let network = build_network(config, &params, params.var_builder(seed))?;
        let frozen = build_network(config, &params, params.untracked_var_builder())?;
        Ok(Self {
            config: config.clone(),
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
        let network = build_network(&self.config, &params, params.var_builder(0))?;
        let frozen = build_network(&self.config, &params, params.untracked_var_builder())?;
        let values = self
            .params
            .snapshot()
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_dtype(dtype)?)))
            .collect::<candle_core::Result<HashMap<_, _>>>()?;
        params.assign(&values)?;
        Ok(Self {
            config: self.config.clone(),
            params,
            network,
            frozen,
        })
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

    /// The VAE, if the model is one.
    pub fn as_vae(&self) -> Option<&ConfigVae> {
        match &self.network {
            Network::Vae(m) => Some(m),
            _ => None,
        }
    }

    /// The VAE over untracked views of the weights, if the model is one: the
    /// same network as [`as_vae`](Self::as_vae), for inference (importance
    /// sampling, diagnostics) without an autograd graph.
    pub fn as_vae_untracked(&self) -> Option<&ConfigVae> {
        match &self.frozen {
            Network::Vae(m) => Some(m),
            _ => None,
        }
    }

    /// The autoencoder, if the model is one.
    pub fn as_autoencoder(&self) -> Option<&ConfigAutoencoder> {
        match &self.network {
            Network::Autoencoder(m) => Some(m),
            _ => None,
        }
    }

    /// The digit-conditioned VAE, if the model is one.
    pub fn as_digit_cvae(&self) -> Option<&ConfigDigitCvae> {
        match &self.network {
            Network::DigitCvae(m) => Some(m),
            _ => None,
        }
    }

    /// The decoder (of whichever family).
    pub fn decoder(&self) -> &dyn Decoder {
        match &self.network {
            Network::Autoencoder(m) => m.decoder(),
            Network::Vae(m) => m.decoder(),
            Network::DigitCvae(m) => m.decoder(),
        }
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.config.latent_dim()
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ImageShape {
        self.config.input_shape()
    }

    /// Classifier logits `[b, classes]` for `images`, for a digit-conditioned VAE
    /// with a classifier; `None` for every other model.
    pub fn classify(&self, images: &Tensor) -> candle_core::Result<Option<Tensor>> {
        match &self.frozen {
            Network::DigitCvae(m) => m.classify(images),
            _ => Ok(None),
        }
    }

    /// Codes `[b, latent]` for `images`: the code of an autoencoder, the posterior
    /// mean of a VAE (evaluation mode).
    pub fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        match &self.frozen {
            Network::Autoencoder(ae) => ae.encode(images, false),
            Network::Vae(vae) => Ok(vae.posterior(images, false)?.mean().clone()),
            Network::DigitCvae(m) => Ok(m.posterior(images, false)?.mean().clone()),
        }
    }

    /// Reconstructions of `images` as pixels in `[0, 1]` (evaluation mode, through
    /// the posterior mean); `labels` are used by a label-conditioned model.
    pub fn reconstruct(
        &self,
        images: &Tensor,
        labels: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        match &self.frozen {
            Network::Autoencoder(ae) => ae.reconstruct(images),
            Network::Vae(vae) => vae.reconstruct(images),
            Network::DigitCvae(m) => m.reconstruct(images, labels),
        }
    }

    /// Decodes codes `z` `[n, latent]` to pixels. The digit-conditioned VAE
    /// decodes with the class vectors of `digits` `[n]`, which it requires.
    pub fn decode(&self, z: &Tensor, digits: Option<&Tensor>) -> candle_core::Result<Tensor> {
        match &self.frozen {
            Network::Autoencoder(ae) => ae.decode_pixels(z),
            Network::Vae(vae) => vae.decode_pixels(z),
            Network::DigitCvae(m) => match digits {
                Some(d) => m.generate(z, d),
                None => candle_core::bail!("the digit-conditioned VAE decodes with chosen digits"),
            },
        }
    }

    /// `n` draws from the prior, decoded to pixels. An autoencoder has no prior:
    /// it decodes `N(0, I)` codes, which is what its tutorial's latent grid does.
    /// The digit-conditioned VAE cycles through its classes.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore) -> candle_core::Result<Tensor> {
        let device = self.device();
        match &self.frozen {
            Network::Vae(vae) => vae.sample(n, rng, device),
            Network::Autoencoder(ae) => {
                ae.decode_pixels(&StandardNormal::new(self.latent_dim()).sample(n, rng, device)?)
            }
            Network::DigitCvae(m) => {
                let z = StandardNormal::new(self.latent_dim()).sample(n, rng, device)?;
                let digits: Vec<u32> = (0..n).map(|i| (i % m.classes()) as u32).collect();
                m.generate(&z, &Tensor::from_vec(digits, n, device)?)
            }
        }
    }

    /// Saves the weights, buffers and config to `path` (safetensors,
    /// atomically); [`Trainable::save`] for a model built from a config.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        Trainable::save(self, path)
    }

    /// Loads a model saved by [`Model::save`] (or a training checkpoint) onto
    /// `device`: the config in the file picks the architecture.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] if the file is not a vaekit checkpoint, or its config
    /// does not parse or cannot work (the message names the config field);
    /// [`Error::Tensor`] naming a tensor that is missing or of the wrong shape or
    /// dtype.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::load_with_limits(path, device, &ModelLimits::default())
    }

    /// [`Model::load`] with other [`ModelLimits`] than the default. The file's
    /// config is checked, the model's parameter count computed and every tensor's
    /// name, dtype and shape compared with the file's header before any weight
    /// is allocated.
    ///
    /// # Errors
    ///
    /// As [`Model::load`]; [`Error::Checkpoint`] too if the config asks for more
    /// parameters than `limits` allow.
    pub fn load_with_limits(
        path: impl AsRef<Path>,
        device: &Device,
        limits: &ModelLimits,
    ) -> Result<Self> {
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
        let config = ModelConfig::from_json(json).map_err(in_file)?;
        let shapes = parameter_shapes(&config, limits).map_err(in_file)?;
        file.check_shapes(&shapes)?;
        let ckpt = file.load(device)?;
        // The size was checked against `limits` above, with the shapes.
        let model = Self::build(&config, device, 0)?;
        model.params.assign(&ckpt.tensors)?;
        Ok(model)
    }

    /// Overwrites the weights with those in a safetensors file of PyTorch-named
    /// tensors (e.g. a PyTorch `state_dict` saved with `safetensors.torch.save_file`),
    /// or in a vaekit checkpoint of the same network; [`Trainable::load_weights`].
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
        Trainable::load_weights(self, path)
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
        mode: Mode,
    ) -> candle_core::Result<LossTerms> {
        self.network.trainable().batch_loss(batch, rng, mode)
    }

    /// The evaluation loss without gradient tracking, as under PyTorch's
    /// `torch.no_grad()`: its memory is that of one layer's activations at a
    /// time, not of the whole forward pass.
    fn evaluate(&self, batch: &Batch, rng: &mut dyn RngCore) -> candle_core::Result<LossTerms> {
        self.frozen.trainable().evaluate(batch, rng)
    }

    fn needs_labels(&self) -> bool {
        self.network.trainable().needs_labels()
    }

    fn architecture(&self) -> Option<String> {
        Some(self.config.to_json())
    }

    fn training_step_bytes(&self, batch_size: usize) -> Option<u64> {
        training_step_bytes(self.config.get(), batch_size).ok()
    }

    fn loss_settings(&self) -> Option<String> {
        self.network.trainable().loss_settings()
    }

    fn beta(&self) -> Option<f64> {
        self.network.trainable().beta()
    }

    /// Sets β in both copies of the network (training and inference).
    fn set_beta(&self, beta: f64) -> Result<()> {
        self.network.trainable().set_beta(beta)?;
        self.frozen.trainable().set_beta(beta)
    }
}

/// The name and shape of every tensor of the model `config` describes, found
/// without allocating them; an error if they hold more values than `limits`
/// allow.
fn parameter_shapes(
    config: &ModelConfig,
    limits: &ModelLimits,
) -> Result<std::collections::BTreeMap<String, Vec<usize>>> {
    let probe = ShapeProbe::new();
    build_network(config, &ParamStore::new(&Device::Cpu), probe.var_builder())?;
    let values = probe.values();
    match values {
        Some(n) if n <= limits.max_parameters => Ok(probe.shapes()),
        _ => Err(Error::config(
            "config",
            format!(
                "the model would have {} parameters, more than the limit of {} (raise ModelLimits::max_parameters)",
                values.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
                limits.max_parameters
            ),
        )),
    }
}

/// Builds the network `config` describes from the tensors of `vb`, which
/// belong to `params`.
fn build_network(config: &ModelConfig, params: &ParamStore, vb: VarBuilder) -> Result<Network> {
    Ok(match config {
        ModelConfig::Autoencoder(c) => Network::Autoencoder(Autoencoder::new(
            params,
            c.encoder.build(vb.pp("encoder"))?,
            c.decoder.build(vb.pp("decoder"))?,
            c.loss,
        )?),
        ModelConfig::Vae(c) => {
            let encoder = c.encoder.build(vb.pp("encoder"))?;
            let decoder = c.decoder.build(vb.pp("decoder"))?;
            let prior = build_prior(c, &vb)?;
            Network::Vae(Vae::new(
                params,
                encoder,
                decoder,
                prior,
                c.posterior,
                c.loss,
            )?)
        }
        ModelConfig::DigitCvae(c) => {
            let encoder = c.encoder.build(vb.pp("encoder"))?;
            let classifier = match c.conditioning {
                Conditioning::Predicted => Some(Mlp::new(&c.classifier, vb.pp("classifier"))?),
                Conditioning::Given => None,
            };
            let decoder = c.decoder.build(vb.pp("decoder"))?;
            Network::DigitCvae(DigitConditionedVae::new(
                params,
                encoder,
                decoder,
                classifier,
                ClassConditioning {
                    classes: c.classes,
                    class_weight: c.class_weight,
                },
                c.posterior,
                c.loss,
            )?)
        }
    })
}

/// The prior of a VAE config; its tensors (if any) go under `prior.`. A
/// VampPrior gets a second encoder over the same `encoder.` tensors.
fn build_prior(c: &VaeConfig, vb: &VarBuilder) -> Result<Box<dyn LatentPrior>> {
    Ok(match &c.prior {
        PriorConfig::StandardNormal => Box::new(StandardNormal::new(c.latent_dim)),
        PriorConfig::GaussianMixture(m) => {
            Box::new(gaussian_mixture_prior(c.latent_dim, m, vb.pp("prior"))?)
        }
        PriorConfig::Vamp(v) => Box::new(vamp_prior(
            c.encoder.build(vb.pp("encoder"))?,
            v,
            c.posterior,
            vb.pp("prior"),
        )?),
    })
}
