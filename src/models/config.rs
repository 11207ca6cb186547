//! Serialisable model configs: every part of every model, as plain data, and
//! [`CheckedModelConfig`], a config checked once that the builders trust.
//!
//! A config is stored in each checkpoint, so a saved model loads back into the
//! right architecture with one call ([`Model::load`](super::Model::load)).

use serde::{Deserialize, Serialize};

use crate::latent::{PosteriorParam, PriorConfig};
use crate::losses::Reduction;
use crate::nets::{ImageShape, MlpConfig};
use crate::{Error, Result};

pub use crate::nets::{DecoderConfig, EncoderConfig};

use super::autoencoder::{AeLoss, AeLossConfig};
use super::digit::Conditioning;
use super::vae::{check_same_shape, check_vae_parts, VaeLossConfig};

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
});

/// A digit-conditioned VAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DigitCvaeConfig {
    /// Width of `z`.
    pub latent_dim: usize,
    /// Number of classes (10 digits).
    pub classes: usize,
    /// The encoder (output width `2 · latent_dim`).
    pub encoder: EncoderConfig,
    /// The decoder (input width `latent_dim + classes`).
    pub decoder: DecoderConfig,
    /// Where the decoder's class vector comes from.
    pub conditioning: Conditioning,
    /// The classifier, over flattened images (used with
    /// [`Conditioning::Predicted`]; its `in_dim` is the image size, `out_dim` the
    /// class count).
    pub classifier: MlpConfig,
    /// Weight of the classifier's cross-entropy in the loss.
    pub class_weight: f64,
    /// How the encoder's outputs parameterise the variance.
    pub posterior: PosteriorParam,
    /// The VAE part of the loss.
    pub loss: VaeLossConfig,
}

impl DigitCvaeConfig {
    /// A digit-conditioned VAE with a `z` of `latent_dim` and `classes`
    /// classes: `encoder` (of output width `2 · latent_dim`), `decoder` (of
    /// input width `latent_dim + classes`) and `classifier`, whose prediction
    /// the decoder sees ([`Conditioning::Predicted`], cross-entropy weighted
    /// 1); the log-variance posterior and [`VaeLossConfig::default`].
    pub fn new(
        latent_dim: usize,
        classes: usize,
        encoder: EncoderConfig,
        decoder: DecoderConfig,
        classifier: MlpConfig,
    ) -> Self {
        Self {
            latent_dim,
            classes,
            encoder,
            decoder,
            conditioning: Conditioning::Predicted,
            classifier,
            class_weight: 1.0,
            posterior: PosteriorParam::LogVariance,
            loss: VaeLossConfig::default(),
        }
    }
}

crate::setters::with_setters!(DigitCvaeConfig {
    with_latent_dim(latent_dim: usize),
    with_classes(classes: usize),
    with_encoder(encoder: EncoderConfig),
    with_decoder(decoder: DecoderConfig),
    with_conditioning(conditioning: Conditioning),
    with_classifier(classifier: MlpConfig),
    with_class_weight(class_weight: f64),
    with_posterior(posterior: PosteriorParam),
    with_loss(loss: VaeLossConfig),
});

/// Any model vaekit builds, tagged by `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelConfig {
    /// A plain autoencoder.
    Autoencoder(AutoencoderConfig),
    /// A VAE.
    Vae(VaeConfig),
    /// A digit-conditioned VAE.
    DigitCvae(DigitCvaeConfig),
}

crate::tagged::tagged_deserialize!(ModelConfig, "kind", {
    "autoencoder" => Autoencoder(AutoencoderConfig),
    "vae" => Vae(VaeConfig),
    "digit_cvae" => DigitCvae(DigitCvaeConfig),
});

/// A [`ModelConfig`] whose every field has been checked, and whose parts fit
/// together: what [`Model::from_checked`](super::Model::from_checked) builds
/// without checking again. Made only by [`ModelConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedModelConfig(ModelConfig);

impl std::ops::Deref for CheckedModelConfig {
    type Target = ModelConfig;
    fn deref(&self) -> &ModelConfig {
        &self.0
    }
}

impl CheckedModelConfig {
    /// The config.
    pub fn get(&self) -> &ModelConfig {
        &self.0
    }
}

fn positive(v: usize, field: &str) -> Result<()> {
    if v == 0 {
        return Err(Error::config(field, "must be positive"));
    }
    Ok(())
}

impl ModelConfig {
    /// Checks every field and that the parts fit together, once: the same
    /// checks the parts' constructors make when a model is assembled by hand.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn check(&self) -> Result<CheckedModelConfig> {
        match self {
            ModelConfig::Autoencoder(c) => {
                positive(c.latent_dim, "latent_dim")?;
                c.encoder.validate("encoder")?;
                c.decoder.validate("decoder")?;
                for (v, field) in [
                    (c.encoder.output_dim(), "encoder.output_dim"),
                    (c.decoder.input_dim(), "decoder.input_dim"),
                ] {
                    if v != c.latent_dim {
                        return Err(Error::config(
                            field,
                            format!("{v} must equal latent_dim = {}", c.latent_dim),
                        ));
                    }
                }
                check_same_shape(c.encoder.input_shape(), c.decoder.output_shape())?;
                c.loss.validate("loss", c.decoder.output_kind())?;
            }
            ModelConfig::Vae(c) => {
                c.encoder.validate("encoder")?;
                c.decoder.validate("decoder")?;
                check_vae_parts(
                    c.encoder.output_dim(),
                    c.encoder.input_shape(),
                    c.decoder.input_dim(),
                    c.decoder.output_shape(),
                    c.latent_dim,
                    0,
                )?;
                c.prior.validate("prior")?;
                c.posterior.validate("posterior")?;
                c.loss.validate("loss", c.decoder.output_kind())?;
                c.loss.check_groups("loss", c.latent_dim)?;
                if c.loss.free_bits.is_some() && c.prior != PriorConfig::StandardNormal {
                    return Err(Error::config(
                        "loss.free_bits",
                        "free bits need a KL per latent dimension, which only the standard-normal prior has",
                    ));
                }
            }
            ModelConfig::DigitCvae(c) => {
                positive(c.classes, "classes")?;
                c.encoder.validate("encoder")?;
                c.decoder.validate("decoder")?;
                check_vae_parts(
                    c.encoder.output_dim(),
                    c.encoder.input_shape(),
                    c.decoder.input_dim(),
                    c.decoder.output_shape(),
                    c.latent_dim,
                    c.classes,
                )?;
                if c.conditioning == Conditioning::Predicted {
                    c.classifier.validate("classifier")?;
                    for (v, want, field, what) in [
                        (
                            c.classifier.in_dim,
                            c.encoder.input_shape().numel(),
                            "classifier.in_dim",
                            "the image size",
                        ),
                        (
                            c.classifier.out_dim,
                            c.classes,
                            "classifier.out_dim",
                            "classes",
                        ),
                    ] {
                        if v != want {
                            return Err(Error::config(
                                field,
                                format!("{v} must equal {what} = {want}"),
                            ));
                        }
                    }
                }
                if !(c.class_weight.is_finite() && c.class_weight >= 0.0) {
                    return Err(Error::config(
                        "class_weight",
                        format!("{} must be finite and ≥ 0", c.class_weight),
                    ));
                }
                c.posterior.validate("posterior")?;
                c.loss.validate("loss", c.decoder.output_kind())?;
                c.loss.check_groups("loss", c.latent_dim)?;
            }
        }
        Ok(CheckedModelConfig(self.clone()))
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        match self {
            ModelConfig::Autoencoder(c) => c.latent_dim,
            ModelConfig::Vae(c) => c.latent_dim,
            ModelConfig::DigitCvae(c) => c.latent_dim,
        }
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ImageShape {
        self.encoder().input_shape()
    }

    /// The encoder's config.
    pub fn encoder(&self) -> &EncoderConfig {
        match self {
            ModelConfig::Autoencoder(c) => &c.encoder,
            ModelConfig::Vae(c) => &c.encoder,
            ModelConfig::DigitCvae(c) => &c.encoder,
        }
    }

    /// The decoder's config.
    pub fn decoder(&self) -> &DecoderConfig {
        match self {
            ModelConfig::Autoencoder(c) => &c.decoder,
            ModelConfig::Vae(c) => &c.decoder,
            ModelConfig::DigitCvae(c) => &c.decoder,
        }
    }

    /// The config as JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a config from JSON and checks it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field that does not parse (its path, such as
    /// `encoder.blocks[1].kernel`) or cannot work.
    pub fn from_json(json: &str) -> Result<CheckedModelConfig> {
        let config: ModelConfig = parse_json(json)?;
        config.check()
    }
}

impl ModelConfig {
    /// This config with the loss settings of `other` (the loss, and the
    /// digit-conditioned VAE's class weight) when both are of the same family,
    /// so that comparing the two compares their networks only.
    fn with_loss_settings_of(&self, other: &ModelConfig) -> ModelConfig {
        let mut config = self.clone();
        match (&mut config, other) {
            (ModelConfig::Autoencoder(a), ModelConfig::Autoencoder(b)) => a.loss = b.loss,
            (ModelConfig::Vae(a), ModelConfig::Vae(b)) => a.loss = b.loss,
            (ModelConfig::DigitCvae(a), ModelConfig::DigitCvae(b)) => {
                a.loss = b.loss;
                a.class_weight = b.class_weight;
            }
            _ => {}
        }
        config
    }
}

/// Whether comparing two configs takes their loss settings into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LossSettings {
    /// Compared too: the same run, as a resumed one must be.
    Compared,
    /// Left aside: the same network, whatever it is trained or scored with.
    Ignored,
}

/// Where the architecture saved in a checkpoint (`saved`, the JSON of
/// [`Trainable::architecture`](super::Trainable::architecture)) differs from
/// a model's (`ours`): the path of the first differing field and both values;
/// `None` when they agree. Configs of [`ModelConfig`] are compared as parsed
/// (so a file written before a setting with a default existed agrees), with
/// or without their `loss`; any other architecture as its text.
pub(crate) fn architecture_difference(
    saved: &str,
    ours: &str,
    loss: LossSettings,
) -> Option<String> {
    let as_value = |c: &ModelConfig| serde_json::to_value(c).unwrap_or_default();
    match (
        parse_json::<ModelConfig>(saved),
        parse_json::<ModelConfig>(ours),
    ) {
        (Ok(saved), Ok(ours)) => {
            let saved = match loss {
                LossSettings::Compared => saved,
                LossSettings::Ignored => saved.with_loss_settings_of(&ours),
            };
            (saved != ours).then(|| {
                crate::difference::first_difference(&as_value(&saved), &as_value(&ours))
                    .unwrap_or_else(|| "the configs differ".into())
            })
        }
        _ if saved == ours => None,
        _ => Some(
            match (
                serde_json::from_str::<serde_json::Value>(saved),
                serde_json::from_str::<serde_json::Value>(ours),
            ) {
                (Ok(a), Ok(b)) => crate::difference::first_difference(&a, &b),
                _ => None,
            }
            .unwrap_or_else(|| "the architecture in the file is not the model's".into()),
        ),
    }
}

/// Parses JSON into `T`; an error names the path of the field at fault
/// (through the tagged enums too, see `crate::tagged`) and its line and
/// column. Anything but white space after the value is an error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    use crate::tagged::{join, locate, PATH_MARK};
    let de = &mut serde_json::Deserializer::from_str(json);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let outer = e.path().to_string();
        let message = e.into_inner().to_string();
        let (path, reason) = match message.split_once(PATH_MARK) {
            Some((_, rest)) => match rest.split_once(PATH_MARK) {
                Some((inner, msg)) => (join(&outer, inner), msg.to_string()),
                None => (outer, message.replace(PATH_MARK, "")),
            },
            None => (outer, message),
        };
        // serde_json places an error found inside a tagged object at the end
        // of that object: point at the field instead.
        let reason = match (locate(json, &path), reason.rfind(" at line ")) {
            (Some((line, column)), Some(at)) => {
                format!("{} at line {line} column {column}", &reason[..at])
            }
            _ => reason,
        };
        let field = if path == "." {
            "config".to_string()
        } else {
            path
        };
        Error::config(field, reason)
    })?;
    de.end().map_err(|e| {
        Error::config(
            "config",
            format!("{e}: a file holds one JSON object, and nothing after it"),
        )
    })?;
    Ok(value)
}
