//! [`Model`]: any vaekit model built from a [`ModelConfig`], with its parameters,
//! saved and loaded as one safetensors file.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use rand::RngCore;

use crate::latent::{LatentPrior, StandardNormal};
use crate::losses::Reduction;
use crate::nets::{Decoder, Encoder, ImageShape, Mlp};
use crate::params::{read_checkpoint, write_checkpoint, ParamStore};
use crate::{Error, Result};

use super::autoencoder::Autoencoder;
use super::config::ModelConfig;
use super::digit::{Conditioning, DigitConditionedVae};
use super::presets::Preset;
use super::vae::Vae;

/// Metadata key holding the model config (JSON) in a checkpoint.
pub(crate) const CONFIG_KEY: &str = "vaekit.config";
/// Metadata key holding the vaekit version that wrote a checkpoint.
const VERSION_KEY: &str = "vaekit.version";

/// The network of a [`Model`], by family.
#[derive(Debug)]
pub enum Network {
    /// A plain autoencoder.
    Autoencoder(Autoencoder<Box<dyn Encoder>, Box<dyn Decoder>>),
    /// A VAE with a standard-normal prior.
    Vae(Vae<Box<dyn Encoder>, Box<dyn Decoder>, StandardNormal>),
    /// A digit-conditioned VAE.
    DigitCvae(DigitConditionedVae<Box<dyn Encoder>, Box<dyn Decoder>, Mlp>),
}

impl std::fmt::Debug for Box<dyn Encoder> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoder({} → {})", self.input_shape(), self.output_dim())
    }
}

impl std::fmt::Debug for Box<dyn Decoder> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decoder({} → {})", self.input_dim(), self.output_shape())
    }
}

/// A loss and its named terms, each a scalar tensor.
#[derive(Debug, Clone)]
pub struct LossTerms {
    /// The loss to minimise.
    pub total: Tensor,
    /// The terms it is made of, by name (`reconstruction`, `kl`,
    /// `classification`).
    pub terms: Vec<(&'static str, Tensor)>,
}

/// A model built from a [`ModelConfig`], owning its parameters.
#[derive(Debug)]
pub struct Model {
    config: ModelConfig,
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
        config.validate()?;
        let params = ParamStore::new(device);
        let network = build_network(config, params.var_builder(seed))?;
        let frozen = build_network(config, params.untracked_var_builder())?;
        Ok(Self {
            config: config.clone(),
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
        &self.config
    }

    /// The parameters (weights and batch-norm buffers).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.config.latent_dim()
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ImageShape {
        self.config.input_shape()
    }

    /// How [`loss`](Model::loss) reduces over the batch: with
    /// [`Reduction::Sum`] a batch's loss grows with its size, otherwise it is a
    /// per-image (or per-pixel) mean.
    pub fn reduction(&self) -> Reduction {
        match &self.config {
            ModelConfig::Autoencoder(c) => c.reduction,
            ModelConfig::Vae(c) => c.loss.reduction,
            ModelConfig::DigitCvae(c) => c.loss.reduction,
        }
    }

    /// Classifier logits `[b, classes]` for `images`, for a digit-conditioned VAE
    /// with a classifier; `None` for every other model.
    pub fn classify(&self, images: &Tensor) -> candle_core::Result<Option<Tensor>> {
        match &self.frozen {
            Network::DigitCvae(m) => m.classify(images),
            _ => Ok(None),
        }
    }

    /// The training loss for a batch of `images` (and `labels`, used by the
    /// digit-conditioned VAE), drawing noise from `rng`. `train` selects
    /// training behaviour (batch statistics in batch norm, which also updates the
    /// running statistics).
    pub fn loss(
        &self,
        images: &Tensor,
        labels: Option<&Tensor>,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> candle_core::Result<LossTerms> {
        network_loss(&self.network, &self.config, images, labels, rng, train)
    }

    /// The loss in evaluation mode (running batch-norm statistics) without
    /// gradient tracking, as under PyTorch's `torch.no_grad()`: what
    /// [`Trainer`](crate::train::Trainer) reports on test data. Its memory is
    /// that of one layer's activations at a time, not of the whole forward pass.
    /// Use [`loss`](Model::loss) with `train == false` for gradients through an
    /// evaluation-mode forward pass.
    pub fn eval_loss(
        &self,
        images: &Tensor,
        labels: Option<&Tensor>,
        rng: &mut dyn RngCore,
    ) -> candle_core::Result<LossTerms> {
        network_loss(&self.frozen, &self.config, images, labels, rng, false)
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
            Network::Autoencoder(ae) => {
                let out = ae.forward_t(images, false)?;
                ae.decoder().output_kind().to_pixels(&out.decoded)
            }
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
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore) -> candle_core::Result<Tensor> {
        let z = StandardNormal::new(self.latent_dim()).sample(n, rng, self.device())?;
        match &self.frozen {
            Network::DigitCvae(m) => {
                let digits: Vec<u32> = (0..n).map(|i| (i % m.classes()) as u32).collect();
                m.generate(&z, &Tensor::from_vec(digits, n, self.device())?)
            }
            _ => self.decode(&z, None),
        }
    }

    /// Saves the weights, buffers and config to `path` (safetensors, atomically).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_checkpoint(path, &self.params.snapshot(), &self.metadata())
    }

    /// The metadata written with the weights: the config and vaekit's version.
    pub(crate) fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (CONFIG_KEY.to_string(), self.config.to_json()),
            (
                VERSION_KEY.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ])
    }

    /// Loads a model saved by [`Model::save`] onto `device`: the config in the
    /// file picks the architecture.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] if the file is not a vaekit checkpoint, or its config
    /// does not parse or cannot work (the message names the config field);
    /// [`Error::Tensor`] naming a tensor that is missing or of the wrong shape or
    /// dtype.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let ckpt = read_checkpoint(path, device)?;
        let json = ckpt.metadata.get(CONFIG_KEY).ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            reason: format!("no `{CONFIG_KEY}` metadata: not a vaekit model file (use Model::load_weights for a bare state dict)"),
        })?;
        let config = ModelConfig::from_json(json).map_err(|e| match e {
            Error::Config { field, reason } => Error::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("config field `{field}`: {reason}"),
            },
            other => other,
        })?;
        let model = Self::new(&config, device, 0)?;
        model.params.assign(&ckpt.tensors)?;
        Ok(model)
    }

    /// Overwrites the weights with those in a safetensors file of PyTorch-named
    /// tensors (e.g. a PyTorch `state_dict` saved with `safetensors.torch.save_file`).
    /// Tensors the model does not use (`num_batches_tracked`) are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] for an unreadable file; [`Error::Tensor`] naming a
    /// tensor that is missing or of the wrong shape or dtype (nothing is changed
    /// then).
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let ckpt = read_checkpoint(path, self.device())?;
        self.params.assign(&ckpt.tensors)
    }
}

/// Builds the network `config` describes from the tensors of `vb`.
fn build_network(config: &ModelConfig, vb: VarBuilder) -> Result<Network> {
    Ok(match config {
        ModelConfig::Autoencoder(c) => Network::Autoencoder(Autoencoder::new(
            c.encoder.build(vb.pp("encoder"))?,
            c.decoder.build(vb.pp("decoder"))?,
        )?),
        ModelConfig::Vae(c) => Network::Vae(Vae::new(
            c.encoder.build(vb.pp("encoder"))?,
            c.decoder.build(vb.pp("decoder"))?,
            StandardNormal::new(c.latent_dim),
            c.posterior,
            c.loss,
        )?),
        ModelConfig::DigitCvae(c) => {
            let encoder = c.encoder.build(vb.pp("encoder"))?;
            let classifier = match c.conditioning {
                Conditioning::Predicted => Some(Mlp::new(&c.classifier, vb.pp("classifier"))?),
                Conditioning::Given => None,
            };
            let decoder = c.decoder.build(vb.pp("decoder"))?;
            Network::DigitCvae(DigitConditionedVae::new(
                encoder,
                decoder,
                classifier,
                c.classes,
                c.class_weight,
                c.posterior,
                c.loss,
            )?)
        }
    })
}

/// The loss terms of `network` (built from `config`) on a batch.
fn network_loss(
    network: &Network,
    config: &ModelConfig,
    images: &Tensor,
    labels: Option<&Tensor>,
    rng: &mut dyn RngCore,
    train: bool,
) -> candle_core::Result<LossTerms> {
    match network {
        Network::Autoencoder(ae) => {
            let (loss, reduction) = match config {
                ModelConfig::Autoencoder(c) => (c.loss, c.reduction),
                _ => candle_core::bail!("model config does not match its network"),
            };
            let out = ae.forward_t(images, train)?;
            let total = ae.loss(&out, images, loss, reduction)?;
            Ok(LossTerms {
                total: total.clone(),
                terms: vec![("reconstruction", total)],
            })
        }
        Network::Vae(vae) => {
            let out = vae.forward_t(images, rng, train)?;
            let elbo = vae.loss(&out, images, rng)?;
            Ok(LossTerms {
                total: elbo.total,
                terms: vec![("reconstruction", elbo.reconstruction), ("kl", elbo.kl)],
            })
        }
        Network::DigitCvae(m) => {
            let labels = labels.ok_or_else(|| {
                candle_core::Error::Msg("the digit-conditioned VAE needs labels".into())
            })?;
            let out = m.forward_t(images, Some(labels), rng, train)?;
            let l = m.loss(&out, images, labels, rng)?;
            let mut terms = vec![("reconstruction", l.reconstruction), ("kl", l.kl)];
            if let Some(ce) = l.classification {
                terms.push(("classification", ce));
            }
            Ok(LossTerms {
                total: l.total,
                terms,
            })
        }
    }
}
