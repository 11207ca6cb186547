//! Building a model from its config: each family's config implements
//! [`FamilyConfig`], and [`ModelConfig::family`] is the registry, one arm per
//! family; what a [`ModelConfig`] says of itself is asked through it. Building is also how a config is checked (on a
//! [`ShapeProbe`](crate::params::ShapeProbe)), so the checks live in the
//! constructors alone.

use candle_core::Device;
use candle_nn::VarBuilder;

use super::any::AnyModel;
use super::autoencoder::Autoencoder;
use super::conditioning::{ClassConditioning, Conditioner, Unconditioned};
use super::config::{
    AutoencoderConfig, CheckedModelConfig, ConditioningConfig, GumbelVaeConfig, ModelConfig,
    VaeConfig, VqVaeConfig,
};
use super::gumbel_vae::GumbelVae;
use super::vae::Vae;
use super::vq_vae::{code_grid, VqVae};
use crate::latent::{
    gaussian_mixture_prior, independent_code_prior, vamp_prior, vector_quantizer, LatentPrior,
    PriorConfig, StandardNormal,
};
use crate::nets::{DecoderConfig, EncoderConfig, ImageShape, Mlp};
use crate::params::{ParamStore, ShapeProbe};
use crate::{Error, Result};

/// What the builder and the rest of vaekit ask of one family's config.
pub(crate) trait FamilyConfig {
    /// Builds the model from the tensors of `vb`, which belong to `params`:
    /// the encoder under `encoder.`, the decoder under `decoder.`, any other
    /// part under its own prefix.
    fn build(&self, params: &ParamStore, vb: VarBuilder) -> Result<Box<dyn AnyModel>>;

    /// The latent width, encoder and decoder every family has.
    fn parts(&self) -> Parts<'_>;

    /// The values per image of every layer's output beyond the encoder's and
    /// the decoder's (a classifier's), for the training-step estimate.
    fn other_activation_values(&self) -> u64 {
        0
    }
}

/// What every family's config has.
pub(crate) struct Parts<'c> {
    /// Width of the latent space.
    pub(crate) latent_dim: usize,
    /// The encoder's config.
    pub(crate) encoder: &'c EncoderConfig,
    /// The decoder's config.
    pub(crate) decoder: &'c DecoderConfig,
}

impl ModelConfig {
    /// Checks the config by building its model on a [`ShapeProbe`] (which
    /// allocates nothing) through the constructors that build it for real:
    /// a config is valid exactly when it builds.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) naming the first field that
    /// cannot work.
    pub fn check(&self) -> Result<CheckedModelConfig> {
        let probe = ShapeProbe::new();
        build_model(self, &ParamStore::new(&Device::Cpu), probe.var_builder())?;
        Ok(CheckedModelConfig::built(self.clone()))
    }

    /// The family's config, through which everything else is asked.
    pub(crate) fn family(&self) -> &dyn FamilyConfig {
        match self {
            ModelConfig::Autoencoder(c) => c,
            ModelConfig::Vae(c) => c,
            ModelConfig::VqVae(c) => c,
            ModelConfig::GumbelVae(c) => c,
        }
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.family().parts().latent_dim
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> ImageShape {
        self.encoder().input_shape()
    }

    /// The encoder's config.
    pub fn encoder(&self) -> &EncoderConfig {
        self.family().parts().encoder
    }

    /// The decoder's config.
    pub fn decoder(&self) -> &DecoderConfig {
        self.family().parts().decoder
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
    /// [`Error::Config`](crate::Error::Config) naming the field that does not
    /// parse (its path, such as `encoder.blocks[1].kernel`) or cannot work.
    pub fn from_json(json: &str) -> Result<CheckedModelConfig> {
        let config: ModelConfig = super::json::parse_json(json)?;
        config.check()
    }
}

/// Builds the model `config` describes.
pub(crate) fn build_model(
    config: &ModelConfig,
    params: &ParamStore,
    vb: VarBuilder,
) -> Result<Box<dyn AnyModel>> {
    config.family().build(params, vb)
}

impl FamilyConfig for AutoencoderConfig {
    fn build(&self, params: &ParamStore, vb: VarBuilder) -> Result<Box<dyn AnyModel>> {
        if self.latent_dim == 0 {
            return Err(Error::config("latent_dim", "must be positive"));
        }
        let encoder = self.encoder.build(vb.pp("encoder"))?;
        if encoder.output_dim() != self.latent_dim {
            return Err(Error::config(
                "encoder.output_dim",
                format!(
                    "{} must equal latent_dim = {}",
                    encoder.output_dim(),
                    self.latent_dim
                ),
            ));
        }
        let decoder = self.decoder.build(vb.pp("decoder"))?;
        Ok(Box::new(Autoencoder::new(
            params, encoder, decoder, self.loss,
        )?))
    }
    fn parts(&self) -> Parts<'_> {
        Parts {
            latent_dim: self.latent_dim,
            encoder: &self.encoder,
            decoder: &self.decoder,
        }
    }
}

impl FamilyConfig for VaeConfig {
    fn build(&self, params: &ParamStore, vb: VarBuilder) -> Result<Box<dyn AnyModel>> {
        let encoder = self.encoder.build(vb.pp("encoder"))?;
        let decoder = self.decoder.build(vb.pp("decoder"))?;
        let prior = build_prior(self, &vb)?;
        let conditioner = build_conditioner(
            self.conditioning.as_ref(),
            self.encoder.input_shape().numel(),
            &vb,
        )?;
        Ok(Box::new(Vae::conditioned(
            params,
            encoder,
            decoder,
            prior,
            conditioner,
            self.posterior,
            self.loss,
        )?))
    }
    fn parts(&self) -> Parts<'_> {
        Parts {
            latent_dim: self.latent_dim,
            encoder: &self.encoder,
            decoder: &self.decoder,
        }
    }
    fn other_activation_values(&self) -> u64 {
        match &self.conditioning {
            Some(ConditioningConfig::Classifier(c)) => crate::nets::widths(&c.classifier.hidden)
                .saturating_add(c.classifier.out_dim as u64),
            _ => 0,
        }
    }
}

impl FamilyConfig for VqVaeConfig {
    fn build(&self, params: &ParamStore, vb: VarBuilder) -> Result<Box<dyn AnyModel>> {
        let encoder = self.encoder.build(vb.pp("encoder"))?;
        let decoder = self.decoder.build(vb.pp("decoder"))?;
        let quantizer = vector_quantizer(&self.quantizer, vb.pp("quantizer"))?;
        let grid = code_grid(encoder.as_ref(), self.quantizer.code_dim)?;
        // A residual decoder's input is its code map, `start`.
        if let DecoderConfig::Residual(d) = &self.decoder {
            if d.start.numel() != encoder.output_dim() {
                return Err(Error::config(
                    "decoder.start",
                    format!(
                        "a {} code map holds {} values, but the encoder gives {}",
                        d.start,
                        d.start.numel(),
                        encoder.output_dim()
                    ),
                ));
            }
        }
        let prior = independent_code_prior(grid, self.quantizer.codes, vb.pp("prior"))?;
        Ok(Box::new(VqVae::new(
            params, encoder, decoder, quantizer, prior, self.loss,
        )?))
    }
    fn parts(&self) -> Parts<'_> {
        Parts {
            latent_dim: self.encoder.output_dim(),
            encoder: &self.encoder,
            decoder: &self.decoder,
        }
    }
    /// The distances of every code vector to every code, and the codes, the
    /// straight-through sum and the two squared errors.
    fn other_activation_values(&self) -> u64 {
        let latent = self.encoder.output_dim() as u64;
        let positions = latent / self.quantizer.code_dim.max(1) as u64;
        positions
            .saturating_mul(self.quantizer.codes as u64)
            .saturating_add(latent.saturating_mul(4))
    }
}

impl FamilyConfig for GumbelVaeConfig {
    fn build(&self, params: &ParamStore, vb: VarBuilder) -> Result<Box<dyn AnyModel>> {
        self.latent.validate("latent")?;
        let encoder = self.encoder.build(vb.pp("encoder"))?;
        let decoder = self.decoder.build(vb.pp("decoder"))?;
        Ok(Box::new(GumbelVae::new(
            params,
            encoder,
            decoder,
            self.latent,
            self.loss,
        )?))
    }
    fn parts(&self) -> Parts<'_> {
        Parts {
            latent_dim: self.latent.width(),
            encoder: &self.encoder,
            decoder: &self.decoder,
        }
    }
    /// The noise, the softmax and the sample.
    fn other_activation_values(&self) -> u64 {
        (self.latent.width() as u64).saturating_mul(3)
    }
}

/// The prior of a VAE config; its tensors (if any) go under `prior.`. A
/// VampPrior gets a second encoder over the same `encoder.` tensors.
fn build_prior(c: &VaeConfig, vb: &VarBuilder) -> Result<Box<dyn LatentPrior>> {
    if c.latent_dim == 0 {
        return Err(Error::config("latent_dim", "must be positive"));
    }
    c.prior.validate("prior")?;
    c.posterior.validate("posterior")?;
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

/// The conditioning of a VAE config for images of `image_size` values; a
/// classifier's tensors go under `classifier.`.
fn build_conditioner(
    config: Option<&ConditioningConfig>,
    image_size: usize,
    vb: &VarBuilder,
) -> Result<Box<dyn Conditioner>> {
    Ok(match config {
        None => Box::new(Unconditioned),
        Some(ConditioningConfig::Labels(c)) => {
            Box::new(ClassConditioning::<Mlp>::given(c.classes)?)
        }
        Some(ConditioningConfig::Classifier(c)) => {
            const FIELD: &str = "conditioning.classifier";
            c.classifier.validate(FIELD)?;
            for (v, want, field, what) in [
                (c.classifier.in_dim, image_size, "in_dim", "the image size"),
                (c.classifier.out_dim, c.classes, "out_dim", "classes"),
            ] {
                if v != want {
                    return Err(Error::config(
                        format!("{FIELD}.{field}"),
                        format!("{v} must equal {what} = {want}"),
                    ));
                }
            }
            let classifier = Mlp::new(&c.classifier, vb.pp("classifier"))?;
            Box::new(ClassConditioning::predicted(
                c.classes,
                classifier,
                c.class_weight,
            )?)
        }
    })
}
