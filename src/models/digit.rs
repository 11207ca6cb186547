//! The digit-conditioned VAE: the decoder sees `z` together with a class vector,
//! so one `z` renders every digit in one style.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::Module;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::latent::{standard_normal, DiagonalGaussian, LatentPrior};
use crate::losses::{cross_entropy, Reduction};
use crate::nets::{Decoder, Encoder};
use crate::{Error, Result as VResult};

use super::vae::{PosteriorParam, VaeLossConfig};

/// Where the decoder's class vector comes from during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conditioning {
    /// A classifier predicts the digit from the image; the decoder sees its
    /// softmax probabilities, and the loss adds `class_weight · cross-entropy`
    /// (the tutorial's design: no label is needed to encode).
    Predicted,
    /// The label is given: the decoder sees its one-hot vector (the classic
    /// conditional VAE, conditioning the decoder). No classifier is built.
    Given,
}

/// What the digit-conditioned VAE's forward pass returns.
#[derive(Debug, Clone)]
pub struct DigitCvaeOutput {
    /// The posterior `q(z | x)`.
    pub posterior: DiagonalGaussian,
    /// The latent sample, `[batch, latent]`.
    pub z: Tensor,
    /// The classifier's logits `[batch, classes]` (predicted conditioning only).
    pub class_logits: Option<Tensor>,
    /// The class vector the decoder saw, `[batch, classes]`.
    pub condition: Tensor,
    /// The decoder's output `[batch, c, h, w]`.
    pub decoded: Tensor,
}

/// The loss of the digit-conditioned VAE, terms kept apart (scalars).
#[derive(Debug, Clone)]
pub struct DigitCvaeLoss {
    /// `reconstruction + β·kl + class_weight · classification`.
    pub total: Tensor,
    /// `−log p(x | z, y)`.
    pub reconstruction: Tensor,
    /// KL term.
    pub kl: Tensor,
    /// Classifier cross-entropy (unweighted), for predicted conditioning.
    pub classification: Option<Tensor>,
}

/// A VAE whose decoder takes `[z | class vector]`, with an optional classifier.
#[derive(Debug, Clone)]
pub struct DigitConditionedVae<E, D, C> {
    encoder: E,
    decoder: D,
    classifier: Option<C>,
    prior: crate::latent::StandardNormal,
    classes: usize,
    class_weight: f64,
    posterior: PosteriorParam,
    loss: VaeLossConfig,
}

impl<E: Encoder, D: Decoder, C: Module> DigitConditionedVae<E, D, C> {
    /// Assembles the model. `classifier` must be `Some` exactly when
    /// `conditioning` is [`Conditioning::Predicted`]; it maps flattened images to
    /// `classes` logits.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the widths disagree or the classifier's presence does
    /// not match `conditioning`.
    pub fn new(
        encoder: E,
        decoder: D,
        classifier: Option<C>,
        classes: usize,
        class_weight: f64,
        posterior: PosteriorParam,
        loss: VaeLossConfig,
    ) -> VResult<Self> {
        if classes == 0 {
            return Err(Error::config("classes", "must be positive"));
        }
        let out = encoder.output_dim();
        if out == 0 || out % 2 != 0 {
            return Err(Error::config(
                "encoder.output_dim",
                format!("{out} must be 2 × latent_dim"),
            ));
        }
        let latent = out / 2;
        if decoder.input_dim() != latent + classes {
            return Err(Error::config(
                "decoder.input_dim",
                format!(
                    "{} must be latent_dim + classes = {}",
                    decoder.input_dim(),
                    latent + classes
                ),
            ));
        }
        if encoder.input_shape() != decoder.output_shape() {
            return Err(Error::config(
                "decoder.output",
                format!(
                    "{} does not match the encoder's input {}",
                    decoder.output_shape(),
                    encoder.input_shape()
                ),
            ));
        }
        if !(class_weight.is_finite() && class_weight >= 0.0) {
            return Err(Error::config(
                "class_weight",
                format!("{class_weight} must be finite and ≥ 0"),
            ));
        }
        loss.validate("loss", decoder.output_kind())?;
        Ok(Self {
            encoder,
            decoder,
            classifier,
            prior: crate::latent::StandardNormal::new(latent),
            classes,
            class_weight,
            posterior,
            loss,
        })
    }

    /// How the decoder's class vector is obtained.
    pub fn conditioning(&self) -> Conditioning {
        if self.classifier.is_some() {
            Conditioning::Predicted
        } else {
            Conditioning::Given
        }
    }

    /// Width of `z`.
    pub fn latent_dim(&self) -> usize {
        self.prior.latent_dim()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The encoder.
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The posterior for images `xs`.
    pub fn posterior(&self, xs: &Tensor, train: bool) -> Result<DiagonalGaussian> {
        self.posterior
            .posterior(&self.encoder.forward_t(xs, train)?)
    }

    /// Classifier logits `[b, classes]` for images `xs`, if there is a classifier.
    pub fn classify(&self, xs: &Tensor) -> Result<Option<Tensor>> {
        match &self.classifier {
            Some(c) => Ok(Some(c.forward(&xs.flatten_from(1)?)?)),
            None => Ok(None),
        }
    }

    /// One-hot vectors `[n, classes]` for `labels` `[n]` (any integer dtype).
    pub fn one_hot(&self, labels: &Tensor) -> Result<Tensor> {
        let n = labels.dim(0)?;
        let labels = labels.to_dtype(DType::U32)?;
        let ids = Tensor::arange(0u32, self.classes as u32, labels.device())?.unsqueeze(0)?; // [1, k]
        labels
            .reshape((n, 1))?
            .broadcast_eq(&ids)?
            .to_dtype(DType::F32) // [n, k]
    }

    /// The forward pass with given noise `eps`. `labels` `[b]` are needed for
    /// [`Conditioning::Given`] and ignored otherwise.
    pub fn forward_with_eps(
        &self,
        xs: &Tensor,
        labels: Option<&Tensor>,
        eps: &Tensor,
        train: bool,
    ) -> Result<DigitCvaeOutput> {
        let posterior = self.posterior(xs, train)?;
        let z = posterior.sample_with(eps)?; // [b, latent]
        let (class_logits, condition) = match &self.classifier {
            Some(c) => {
                let logits = c.forward(&xs.flatten_from(1)?)?; // [b, k]
                                                               // softmax, not softmax_last_dim: the latter has no backward pass.
                let probs = candle_nn::ops::softmax(&logits, 1)?;
                (Some(logits), probs)
            }
            None => match labels {
                Some(l) => (None, self.one_hot(l)?),
                None => {
                    candle_core::bail!("digit-conditioned VAE with given conditioning needs labels")
                }
            },
        };
        let decoded = self
            .decoder
            .forward_t(&Tensor::cat(&[&z, &condition], 1)?, train)?; // [b, c, h, w]
        Ok(DigitCvaeOutput {
            posterior,
            z,
            class_logits,
            condition,
            decoded,
        })
    }

    /// The forward pass, drawing the noise from `rng`.
    pub fn forward_t(
        &self,
        xs: &Tensor,
        labels: Option<&Tensor>,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> Result<DigitCvaeOutput> {
        let eps = standard_normal((xs.dim(0)?, self.latent_dim()), rng, xs.device())?;
        self.forward_with_eps(xs, labels, &eps, train)
    }

    /// The loss of `out` against images `xs` and their `labels` `[b]`.
    pub fn loss(
        &self,
        out: &DigitCvaeOutput,
        xs: &Tensor,
        labels: &Tensor,
        rng: &mut dyn RngCore,
    ) -> Result<DigitCvaeLoss> {
        let r = self.loss.reduction;
        let recon = r.apply(&self.loss.reconstruction(
            &out.decoded,
            xs,
            self.decoder.output_kind(),
        )?)?;
        let kl = r.apply(
            &self
                .loss
                .kl_per_example(&self.prior, &out.posterior, &out.z, rng)?,
        )?;
        let mut total = recon.add(&kl.affine(self.loss.beta, 0.0)?)?;
        let classification = match &out.class_logits {
            Some(logits) => {
                let ce = cross_entropy(logits, labels, Reduction::Mean)?;
                total = total.add(&ce.affine(self.class_weight, 0.0)?)?;
                Some(ce)
            }
            None => None,
        };
        Ok(DigitCvaeLoss {
            total,
            reconstruction: recon,
            kl,
            classification,
        })
    }

    /// Decodes `z` `[n, latent]` with the class vectors of `digits` `[n]`, as pixels.
    pub fn generate(&self, z: &Tensor, digits: &Tensor) -> Result<Tensor> {
        let cond = self.one_hot(digits)?;
        let out = self
            .decoder
            .forward_t(&Tensor::cat(&[z, &cond], 1)?, false)?;
        self.decoder.output_kind().to_pixels(&out)
    }

    /// A grid of generated digits: row `r` uses the `r`-th of `rows` prior draws,
    /// column `k` is digit `k`. Returns pixels `[rows · classes, c, h, w]`, row-major.
    pub fn generate_grid(
        &self,
        rows: usize,
        rng: &mut dyn RngCore,
        device: &Device,
    ) -> Result<Tensor> {
        let k = self.classes;
        let z = self.prior.sample(rows, rng, device)?; // [rows, latent]
        let z = z
            .unsqueeze(1)?
            .repeat((1, k, 1))?
            .reshape((rows * k, self.latent_dim()))?; // [rows·k, latent]
        let digits: Vec<u32> = (0..rows).flat_map(|_| 0..k as u32).collect();
        let digits = Tensor::from_vec(digits, rows * k, device)?;
        self.generate(&z, &digits)
    }

    /// Reconstructions of `xs` through the posterior means, as pixels. With given
    /// conditioning, `labels` choose the class vector.
    pub fn reconstruct(&self, xs: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let eps = Tensor::zeros((xs.dim(0)?, self.latent_dim()), DType::F32, xs.device())?;
        let out = self.forward_with_eps(xs, labels, &eps, false)?; // z = posterior mean
        self.decoder.output_kind().to_pixels(&out.decoded)
    }
}
