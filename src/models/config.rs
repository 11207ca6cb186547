//! Serialisable model configs: every part of every model, as plain data, and
//! [`CheckedModelConfig`], a config that built.
//!
//! A config is stored in each checkpoint, so a saved model loads back into the
//! right architecture with one call ([`Model::load`](super::Model::load)).
//! A config is checked by building its model on a
//! [`ShapeProbe`](crate::params::ShapeProbe), through the same constructors
//! that build it for real ([`ModelConfig::check`]): it is valid exactly when
//! it builds.

use serde::{Deserialize, Serialize};

use crate::latent::{PosteriorParam, PriorConfig, QuantizerConfig};
use crate::losses::{Reduction, VaeLossConfig};
use crate::nets::MlpConfig;

pub use crate::nets::{DecoderConfig, EncoderConfig};

use super::autoencoder::{AeLoss, AeLossConfig};
use super::conditioning::Conditioning;
use super::gumbel_vae::{CategoricalLatentConfig, GumbelLossConfig};
use super::vq_vae::VqLossConfig;

/// A plain autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "AutoencoderJson")]
#[non_exhaustive]
pub struct AutoencoderConfig {
    /// Width of the code.
    pub latent_dim: usize,
    /// The encoder (its output width is `latent_dim`).
    pub encoder: EncoderConfig,
    /// The decoder (its input width is `latent_dim`).
    pub decoder: DecoderConfig,
    /// The reconstruction loss and its reduction (JSON keys `loss` and
    /// `reduction`).
    #[serde(flatten)]
    pub loss: AeLossConfig,
}

/// The JSON of an [`AutoencoderConfig`], its loss's two keys beside the
/// others: read without `serde(flatten)`, which would let unknown fields
/// through.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoencoderJson {
    latent_dim: usize,
    encoder: EncoderConfig,
    decoder: DecoderConfig,
    loss: AeLoss,
    reduction: Reduction,
}

impl From<AutoencoderJson> for AutoencoderConfig {
    fn from(j: AutoencoderJson) -> Self {
        Self {
            latent_dim: j.latent_dim,
            encoder: j.encoder,
            decoder: j.decoder,
            loss: AeLossConfig {
                loss: j.loss,
                reduction: j.reduction,
            },
        }
    }
}

impl AutoencoderConfig {
    /// An autoencoder with a code of `latent_dim` between `encoder` and
    /// `decoder`, trained with [`AeLossConfig::default`] (mean squared error).
    pub fn new(latent_dim: usize, encoder: EncoderConfig, decoder: DecoderConfig) -> Self {
        Self {
            latent_dim,
            encoder,
            decoder,
            loss: AeLossConfig::default(),
        }
    }
}

crate::setters::with_setters!(AutoencoderConfig {
    with_latent_dim(latent_dim: usize),
    with_encoder(encoder: EncoderConfig),
    with_decoder(decoder: DecoderConfig),
    with_loss(loss: AeLossConfig),
});

/// A VAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VaeConfig {
    /// Width of the latent space.
    pub latent_dim: usize,
    /// The encoder (its output width is `2 · latent_dim`).
    pub encoder: EncoderConfig,
    /// The decoder (its input width is `latent_dim`).
    pub decoder: DecoderConfig,
    /// The prior (standard normal when absent).
    #[serde(default)]
    pub prior: PriorConfig,
    /// How the encoder's outputs parameterise the variance.
    pub posterior: PosteriorParam,
    /// The loss.
    pub loss: VaeLossConfig,
    /// What the decoder sees besides `z` (nothing when absent): a class
    /// vector, given or predicted. The decoder's input width is then
    /// `latent_dim + classes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditioning: Option<ConditioningConfig>,
}

impl VaeConfig {
    /// A VAE with a latent of `latent_dim` between `encoder` (of output width
    /// `2 · latent_dim`) and `decoder`: the standard-normal prior, the
    /// log-variance posterior and [`VaeLossConfig::default`] (the Bernoulli
    /// ELBO).
    pub fn new(latent_dim: usize, encoder: EncoderConfig, decoder: DecoderConfig) -> Self {
        Self {
            latent_dim,
            encoder,
            decoder,
            prior: PriorConfig::StandardNormal,
            posterior: PosteriorParam::LogVariance,
            loss: VaeLossConfig::default(),
            conditioning: None,
        }
    }
}

crate::setters::with_setters!(VaeConfig {
    with_latent_dim(latent_dim: usize),
    with_encoder(encoder: EncoderConfig),
    with_decoder(decoder: DecoderConfig),
    with_prior(prior: PriorConfig),
    with_posterior(posterior: PosteriorParam),
    with_loss(loss: VaeLossConfig),
    with_conditioning(conditioning: Option<ConditioningConfig>),
});

/// A VQ-VAE ([`VqVae`](super::VqVae)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VqVaeConfig {
    /// The encoder: its output is a map of `quantizer.code_dim` channels (a
    /// [`ResidualEncoderConfig`](crate::nets::ResidualEncoderConfig)), or
    /// any encoder whose output width is a multiple of `code_dim` (a row of
    /// code vectors).
    pub encoder: EncoderConfig,
    /// The decoder (its input width is the encoder's output width).
    pub decoder: DecoderConfig,
    /// The codebook: its size `K`, code width `D`, how it learns, restarts.
    pub quantizer: QuantizerConfig,
    /// The loss.
    #[serde(default)]
    pub loss: VqLossConfig,
}

impl VqVaeConfig {
    /// A VQ-VAE with `quantizer` between `encoder` and `decoder`, trained
    /// with [`VqLossConfig::default`] (squared error, β = 0.25).
    pub fn new(encoder: EncoderConfig, decoder: DecoderConfig, quantizer: QuantizerConfig) -> Self {
        Self {
            encoder,
            decoder,
            quantizer,
            loss: VqLossConfig::default(),
        }
    }
}

crate::setters::with_setters!(VqVaeConfig {
    with_encoder(encoder: EncoderConfig),
    with_decoder(decoder: DecoderConfig),
    with_quantizer(quantizer: QuantizerConfig),
    with_loss(loss: VqLossConfig),
});

/// A Gumbel-softmax VAE ([`GumbelVae`](super::GumbelVae)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GumbelVaeConfig {
    /// The categorical latent: `N` variables of `K` classes, the relaxation
    /// and the temperature schedule.
    pub latent: CategoricalLatentConfig,
    /// The encoder (its output width is `N · K`, the logits).
    pub encoder: EncoderConfig,
    /// The decoder (its input width is `N · K`).
    pub decoder: DecoderConfig,
    /// The loss.
    #[serde(default)]
    pub loss: GumbelLossConfig,
}

impl GumbelVaeConfig {
    /// A Gumbel-softmax VAE with `latent` between `encoder` and `decoder`,
    /// trained with [`GumbelLossConfig::default`] (the Bernoulli negative
    /// ELBO).
    pub fn new(
        latent: CategoricalLatentConfig,
        encoder: EncoderConfig,
        decoder: DecoderConfig,
    ) -> Self {
        Self {
            latent,
            encoder,
            decoder,
            loss: GumbelLossConfig::default(),
        }
    }
}

crate::setters::with_setters!(GumbelVaeConfig {
    with_latent(latent: CategoricalLatentConfig),
    with_encoder(encoder: EncoderConfig),
    with_decoder(decoder: DecoderConfig),
    with_loss(loss: GumbelLossConfig),
});

/// What a VAE's decoder sees besides `z`, tagged by `type` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConditioningConfig {
    /// The label's one-hot vector ([`Conditioning::Given`]).
    Labels(LabelConditioningConfig),
    /// The softmax of a classifier over the image ([`Conditioning::Predicted`]).
    Classifier(ClassifierConditioningConfig),
}

crate::tagged::tagged_deserialize!(ConditioningConfig, "type", {
    "labels" => Labels(LabelConditioningConfig),
    "classifier" => Classifier(ClassifierConditioningConfig),
});

/// Conditioning on the given label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LabelConditioningConfig {
    /// Number of classes (10 digits).
    pub classes: usize,
}

/// Conditioning on a classifier's prediction, trained with the labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClassifierConditioningConfig {
    /// Number of classes (10 digits).
    pub classes: usize,
    /// The classifier, over flattened images: its `in_dim` is the image
    /// size, its `out_dim` the class count. Its tensors are under
    /// `classifier.`.
    pub classifier: MlpConfig,
    /// Weight of the classifier's cross-entropy in the loss.
    pub class_weight: f64,
}

impl ConditioningConfig {
    /// Conditioning on `classes` classes, from `source`: the label, or a
    /// `classifier` whose cross-entropy is weighted `class_weight` (the
    /// classifier is not used for [`Conditioning::Given`]).
    pub fn classes(
        source: Conditioning,
        classes: usize,
        classifier: MlpConfig,
        class_weight: f64,
    ) -> Self {
        match source {
            Conditioning::Given => Self::Labels(LabelConditioningConfig { classes }),
            Conditioning::Predicted => Self::Classifier(ClassifierConditioningConfig {
                classes,
                classifier,
                class_weight,
            }),
        }
    }

    /// Number of classes.
    pub fn class_count(&self) -> usize {
        match self {
            Self::Labels(c) => c.classes,
            Self::Classifier(c) => c.classes,
        }
    }

    /// Where the class vector comes from.
    pub fn source(&self) -> Conditioning {
        match self {
            Self::Labels(_) => Conditioning::Given,
            Self::Classifier(_) => Conditioning::Predicted,
        }
    }
}

/// The JSON of the digit-conditioned VAE as vaekit wrote it before it became a
/// VAE with a conditioning (`"kind": "digit_cvae"`): read into a
/// [`VaeConfig`], so checkpoints of that time still load.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DigitCvaeJson {
    latent_dim: usize,
    classes: usize,
    encoder: EncoderConfig,
    decoder: DecoderConfig,
    conditioning: Conditioning,
    classifier: MlpConfig,
    class_weight: f64,
    posterior: PosteriorParam,
    loss: VaeLossConfig,
}

impl From<DigitCvaeJson> for VaeConfig {
    fn from(j: DigitCvaeJson) -> Self {
        Self {
            latent_dim: j.latent_dim,
            encoder: j.encoder,
            decoder: j.decoder,
            prior: PriorConfig::StandardNormal,
            posterior: j.posterior,
            loss: j.loss,
            conditioning: Some(ConditioningConfig::classes(
                j.conditioning,
                j.classes,
                j.classifier,
                j.class_weight,
            )),
        }
    }
}

/// Any model vaekit builds, tagged by `kind` in JSON.
///
/// A family is one variant here, one type implementing
/// [`AnyModel`](super::AnyModel), and one arm in the builder's registry
/// (`models/build.rs`); `docs/architecture.md` lists the steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
// A config is built and compared a few times per run, never in a loop: the
// size of its largest variant costs nothing worth a box in every user's code.
#[allow(clippy::large_enum_variant)]
pub enum ModelConfig {
    /// A plain autoencoder.
    Autoencoder(AutoencoderConfig),
    /// A VAE, conditioned or not.
    Vae(VaeConfig),
    /// A VQ-VAE.
    VqVae(VqVaeConfig),
    /// A Gumbel-softmax VAE.
    GumbelVae(GumbelVaeConfig),
}

crate::tagged::tagged_deserialize!(ModelConfig, "kind", {
    "autoencoder" => Autoencoder(AutoencoderConfig),
    "vae" => Vae(VaeConfig),
    "digit_cvae" => Vae(DigitCvaeJson),
    "vq_vae" => VqVae(VqVaeConfig),
    "gumbel_vae" => GumbelVae(GumbelVaeConfig),
});

/// A [`ModelConfig`] whose model built: what
/// [`RunConfig::check`](crate::train::RunConfig::check) gives. Made only by
/// [`ModelConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedModelConfig(ModelConfig);

impl std::ops::Deref for CheckedModelConfig {
    type Target = ModelConfig;
    fn deref(&self) -> &ModelConfig {
        &self.0
    }
}

impl CheckedModelConfig {
    /// A config whose model built.
    pub(crate) fn built(config: ModelConfig) -> Self {
        Self(config)
    }

    /// The config.
    pub fn get(&self) -> &ModelConfig {
        &self.0
    }
}

impl ModelConfig {
    /// This config with the loss settings of `other` (the loss, and a
    /// classifier's weight) when both are of the same family, so that
    /// comparing the two compares their networks only.
    pub(crate) fn with_loss_settings_of(&self, other: &ModelConfig) -> ModelConfig {
        let mut config = self.clone();
        match (&mut config, other) {
            (ModelConfig::Autoencoder(a), ModelConfig::Autoencoder(b)) => a.loss = b.loss,
            (ModelConfig::Vae(a), ModelConfig::Vae(b)) => {
                a.loss = b.loss;
                if let (
                    Some(ConditioningConfig::Classifier(a)),
                    Some(ConditioningConfig::Classifier(b)),
                ) = (&mut a.conditioning, &b.conditioning)
                {
                    a.class_weight = b.class_weight;
                }
            }
            (ModelConfig::VqVae(a), ModelConfig::VqVae(b)) => a.loss = b.loss,
            (ModelConfig::GumbelVae(a), ModelConfig::GumbelVae(b)) => {
                a.loss = b.loss;
                a.latent.temperature = b.latent.temperature;
            }
            _ => {}
        }
        config
    }
}
