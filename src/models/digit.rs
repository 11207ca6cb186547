//! The digit-conditioned VAE: the decoder sees `z` together with a class vector,
//! so one `z` renders every digit in one style.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::Module;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::beta::{check_beta, BetaCell};
use super::trainable::{LossTerms, Mode, Per, Term, Trainable};
use super::vae::{check_vae_parts, non_empty, Objective, VaeLossConfig};
use crate::data::Batch;
use crate::latent::{standard_normal, DiagonalGaussian, LatentPrior, PosteriorParam};
use crate::losses::{cross_entropy, Reduction};
use crate::nets::{Decoder, Encoder};
use crate::params::ParamStore;
use crate::{Error, Result as VResult};

/// Where the decoder's class vector comes from during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Conditioning {
    /// A classifier predicts the digit from the image; the decoder sees its
    /// softmax probabilities, and the loss adds `class_weight · cross-entropy`
    /// (the tutorial's design: no label is needed to encode).
    Predicted,
    /// The label is given: the decoder sees its one-hot vector (the classic
    /// conditional VAE, conditioning the decoder). No classifier is built.
    Given,
}

/// The class side of a digit-conditioned VAE: how many classes, and the weight
/// of the classifier's cross-entropy in the loss (used with a classifier).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ClassConditioning {
    /// Number of classes (10 digits).
    pub classes: usize,
    /// Weight of the classifier's cross-entropy.
    pub class_weight: f64,
}

impl ClassConditioning {
    /// `classes` classes, the classifier's cross-entropy weighted 1.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            class_weight: 1.0,
        }
    }
}

crate::setters::with_setters!(ClassConditioning {
    with_classes(classes: usize),
    with_class_weight(class_weight: f64),
});

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
    params: ParamStore,
    encoder: E,
    decoder: D,
    classifier: Option<C>,
    prior: crate::latent::StandardNormal,
    classes: usize,
    class_weight: f64,
    posterior: PosteriorParam,
    loss: VaeLossConfig,
    beta: BetaCell,
}

impl<E: Encoder, D: Decoder, C: Module> DigitConditionedVae<E, D, C> {
    /// Assembles the model from parts whose weights live in `params`.
    /// `classifier` (for [`Conditioning::Predicted`]; `None` for
    /// [`Conditioning::Given`]) maps flattened images to `classes` logits.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the widths disagree (encoder output ≠ 2 × latent,
    /// decoder input ≠ latent + classes), the image shapes differ, or a setting
    /// cannot work.
    pub fn new(
        params: &ParamStore,
        encoder: E,
        decoder: D,
        classifier: Option<C>,
        conditioning: ClassConditioning,
        posterior: PosteriorParam,
        loss: VaeLossConfig,
    ) -> VResult<Self> {
        let ClassConditioning {
            classes,
            class_weight,
        } = conditioning;
        if classes == 0 {
            return Err(Error::config("classes", "must be positive"));
        }
        let latent = encoder.output_dim() / 2;
        check_vae_parts(
            encoder.output_dim(),
            encoder.input_shape(),
            decoder.input_dim(),
            decoder.output_shape(),
            latent,
            classes,
        )?;
        if !(class_weight.is_finite() && class_weight >= 0.0) {
            return Err(Error::config(
                "class_weight",
                format!("{class_weight} must be finite and ≥ 0"),
            ));
        }
        posterior.validate("posterior")?;
        loss.validate("loss", decoder.output_kind())?;
        if loss.objective != Objective::Elbo {
            return Err(Error::config(
                "loss.objective",
                "the digit-conditioned VAE trains on the ELBO",
            ));
        }
        loss.check_groups("loss", latent)?;
        Ok(Self {
            params: params.clone(),
            encoder,
            decoder,
            classifier,
            prior: crate::latent::StandardNormal::new(latent),
            classes,
            class_weight,
            posterior,
            loss,
            beta: BetaCell::new(loss.beta),
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
        non_empty(xs)?;
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

    /// The one-hot class vector of `class`, as the decoder takes it after `z`
    /// (for [`manifold`](crate::pictures::manifold) and
    /// [`interpolation_strip`](crate::pictures::interpolation_strip)).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `class` is not one of the model's classes.
    pub fn class_vector(&self, class: u32) -> VResult<Vec<f32>> {
        if class as usize >= self.classes {
            return Err(Error::config(
                "class",
                format!("{class} is not one of the model's {} classes", self.classes),
            ));
        }
        Ok((0..self.classes)
            .map(|k| if k == class as usize { 1.0 } else { 0.0 })
            .collect())
    }

    /// Checks that every label `[n]` is one of the model's classes (one small
    /// transfer from the device).
    pub fn check_labels(&self, labels: &Tensor) -> Result<()> {
        if labels.dim(0)? == 0 {
            return Ok(());
        }
        let max = labels.to_dtype(DType::U32)?.max(0)?.to_scalar::<u32>()?;
        if max as usize >= self.classes {
            candle_core::bail!(
                "label {max} is not one of the model's {} classes (0 to {})",
                self.classes,
                self.classes - 1
            );
        }
        Ok(())
    }

    /// One-hot vectors `[n, classes]` for `labels` `[n]` (any integer dtype).
    ///
    /// # Errors
    ///
    /// If a label is not one of the classes.
    pub fn one_hot(&self, labels: &Tensor) -> Result<Tensor> {
        self.check_labels(labels)?;
        let n = labels.dim(0)?;
        let labels = labels.to_dtype(DType::U32)?;
        let ids = Tensor::arange(0u32, self.classes as u32, labels.device())?.unsqueeze(0)?; // [1, k]
        labels
            .reshape((n, 1))?
            .broadcast_eq(&ids)?
            .to_dtype(self.params.dtype()) // [n, k]
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
        let kl_part =
            self.loss
                .kl_in_total(&self.prior, &out.posterior, &out.z, &kl, self.beta.get())?;
        let mut total = recon.add(&kl_part)?;
        let classification = match &out.class_logits {
            Some(logits) => {
                self.check_labels(labels)?;
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
        super::chunks::by_rows(xs, labels, |xs, labels| {
            let eps = Tensor::zeros((xs.dim(0)?, self.latent_dim()), xs.dtype(), xs.device())?;
            let out = self.forward_with_eps(xs, labels, &eps, false)?; // z = posterior mean
            self.decoder.output_kind().to_pixels(&out.decoded)
        })
    }
}

impl<E: Encoder, D: Decoder, C: Module> Trainable for DigitConditionedVae<E, D, C> {
    fn params(&self) -> &ParamStore {
        &self.params
    }

    /// `{"loss": …, "class_weight": …}`, as in the model config.
    fn loss_settings(&self) -> Option<String> {
        serde_json::to_string(&serde_json::json!({
            "loss": self.loss,
            "class_weight": self.class_weight,
        }))
        .ok()
    }

    /// Always: the loss needs the labels, to condition the decoder or to
    /// train the classifier.
    fn needs_labels(&self) -> bool {
        true
    }

    /// Terms `reconstruction` and `kl` (reduced as the loss config says) and,
    /// with a classifier, `classification` (mean cross-entropy per image).
    ///
    /// The batch must have labels: an unlabelled batch is an error saying so.
    fn batch_loss(&self, batch: &Batch, rng: &mut dyn RngCore, mode: Mode) -> Result<LossTerms> {
        let labels = batch.require_labels("the digit-conditioned VAE")?;
        let out = self.forward_t(&batch.images, Some(labels), rng, mode.is_train())?;
        let l = self.loss(&out, batch.targets(), labels, rng)?;
        let per = Per::from(self.loss.reduction);
        let mut terms = vec![
            Term::new("reconstruction", l.reconstruction, per),
            Term::new("kl", l.kl, per),
        ];
        if let Some(ce) = l.classification {
            terms.push(Term::new("classification", ce, Per::Image));
        }
        Ok(LossTerms {
            total: l.total,
            per,
            terms,
        })
    }

    /// The loss in evaluation mode and, with a classifier, `accuracy`: the
    /// share of images whose most likely class is their label.
    fn evaluate(&self, batch: &Batch, rng: &mut dyn RngCore) -> Result<LossTerms> {
        let mut terms = self.batch_loss(batch, rng, Mode::Eval)?;
        if let Some(logits) = self.classify(&batch.images)? {
            let hits = logits
                .argmax(1)? // [b]
                .eq(&batch
                    .require_labels("the digit-conditioned VAE")?
                    .to_dtype(DType::U32)?)?
                .to_dtype(DType::F32)?
                .mean_all()?;
            terms.terms.push(Term::new("accuracy", hits, Per::Image));
        }
        Ok(terms)
    }

    fn beta(&self) -> Option<f64> {
        Some(self.beta.get())
    }

    fn set_beta(&self, beta: f64) -> VResult<()> {
        check_beta(beta)?;
        self.beta.set(beta);
        Ok(())
    }
}
