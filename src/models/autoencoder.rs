//! The plain deterministic autoencoder.

use candle_core::{Result, Tensor};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::parts::{check_same_shape, non_empty};
use super::trainable::{LossTerms, Per, StepContext, Term, Trainable};
use crate::data::Batch;
use crate::losses::{bce, bce_with_logits, mse, Reduction};
use crate::nets::{Decoder, Encoder, OutputKind};
use crate::params::ParamStore;
use crate::{Error, Result as VResult};

/// Reconstruction loss of an [`Autoencoder`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AeLoss {
    /// Mean squared error against the decoder's pixels.
    Mse,
    /// Binary cross-entropy (on logits or probabilities, as the decoder outputs).
    Bce,
}

/// The loss of an [`Autoencoder`]: which reconstruction loss, and how it is
/// reduced over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AeLossConfig {
    /// The reconstruction loss.
    pub loss: AeLoss,
    /// Its reduction ([`Reduction::Mean`], per pixel, is Keras's `mse`).
    pub reduction: Reduction,
}

impl Default for AeLossConfig {
    /// Mean squared error per pixel, as Keras's `mse`.
    fn default() -> Self {
        Self {
            loss: AeLoss::Mse,
            reduction: Reduction::Mean,
        }
    }
}

crate::setters::with_setters!(AeLossConfig {
    with_loss(loss: AeLoss),
    with_reduction(reduction: Reduction),
});

impl AeLossConfig {
    /// Checks that the loss fits a decoder of `kind`; errors name fields under
    /// `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for BCE on a linear decoder, or a reduction that does
    /// not give a scalar.
    pub fn validate(&self, field: &str, kind: OutputKind) -> VResult<()> {
        self.loss.check(
            &format!("{field}.loss"),
            &format!("{field}.reduction"),
            self.reduction,
            kind,
        )
    }
}

impl AeLoss {
    /// Checks that this loss, reduced by `reduction`, fits a decoder of
    /// `kind`; errors name `loss_field` or `reduction_field`. Shared by every
    /// family whose reconstruction is an [`AeLoss`].
    pub(crate) fn check(
        self,
        loss_field: &str,
        reduction_field: &str,
        reduction: Reduction,
        kind: OutputKind,
    ) -> VResult<()> {
        if self == AeLoss::Bce && kind == OutputKind::Linear {
            return Err(Error::config(
                loss_field,
                "BCE needs a decoder with logits or probabilities",
            ));
        }
        if reduction == Reduction::None {
            return Err(Error::config(
                reduction_field,
                "must reduce to a scalar (sum, batch_mean or mean)",
            ));
        }
        Ok(())
    }

    /// This loss of the decoder output `decoded` (of `kind`) against `targets`,
    /// reduced by `reduction`. MSE scores a linear decoder's values as they
    /// are (clamped to pixels they would get no gradient outside `[0, 1]`),
    /// and logits through a sigmoid, as the VAE's squared error does.
    pub(crate) fn apply(
        self,
        decoded: &Tensor,
        targets: &Tensor,
        kind: OutputKind,
        reduction: Reduction,
    ) -> Result<Tensor> {
        match (self, kind) {
            (AeLoss::Mse, kind) => {
                mse(&kind.to_pixels_for_likelihood(decoded)?, targets, reduction)
            }
            (AeLoss::Bce, OutputKind::Logits) => bce_with_logits(decoded, targets, reduction),
            (AeLoss::Bce, OutputKind::Probabilities) => bce(decoded, targets, reduction),
            (AeLoss::Bce, OutputKind::Linear) => {
                candle_core::bail!("BCE needs a decoder with logits or probabilities")
            }
        }
    }
}

/// What an autoencoder's forward pass returns.
#[derive(Debug, Clone)]
pub struct AutoencoderOutput {
    /// The codes `[batch, latent]`.
    pub code: Tensor,
    /// The decoder's output `[batch, c, h, w]` (see [`Decoder::output_kind`]).
    pub decoded: Tensor,
}

/// An encoder and a decoder trained to reproduce their input through a code of
/// width `latent_dim`.
#[derive(Debug, Clone)]
pub struct Autoencoder<E, D> {
    params: ParamStore,
    encoder: E,
    decoder: D,
    loss: AeLossConfig,
}

impl<E: Encoder, D: Decoder> Autoencoder<E, D> {
    /// Pairs `encoder` and `decoder`, whose weights live in `params`, trained
    /// with `loss`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the encoder's output width is not the decoder's input
    /// width, the image shapes differ, or the loss does not fit the decoder.
    pub fn new(params: &ParamStore, encoder: E, decoder: D, loss: AeLossConfig) -> VResult<Self> {
        if encoder.output_dim() != decoder.input_dim() {
            return Err(Error::config(
                "decoder.input_dim",
                format!(
                    "{} does not match the encoder's code width {}",
                    decoder.input_dim(),
                    encoder.output_dim()
                ),
            ));
        }
        check_same_shape(encoder.input_shape(), decoder.output_shape())?;
        loss.validate("loss", decoder.output_kind())?;
        Ok(Self {
            params: params.clone(),
            encoder,
            decoder,
            loss,
        })
    }

    /// The loss settings.
    pub fn loss_config(&self) -> &AeLossConfig {
        &self.loss
    }

    /// The encoder.
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// Width of the code.
    pub fn latent_dim(&self) -> usize {
        self.encoder.output_dim()
    }

    /// Encodes `xs` `[b, c, h, w]` to codes `[b, latent]`.
    pub fn encode(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        non_empty(xs)?;
        self.encoder.forward_t(xs, train)
    }

    /// Decodes codes to pixel values in `[0, 1]`.
    pub fn decode_pixels(&self, z: &Tensor) -> Result<Tensor> {
        super::chunks::by_rows(z, None, |z, _| {
            let out = self.decoder.forward_t(z, false)?;
            self.decoder.output_kind().to_pixels(&out)
        })
    }

    /// Reconstructions of `xs` as pixels in `[0, 1]` (evaluation mode).
    pub fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        non_empty(xs)?;
        super::chunks::by_rows(xs, None, |xs, _| {
            let code = self.encoder.forward_t(xs, false)?;
            self.decode_pixels(&code)
        })
    }

    /// Encodes and decodes `xs`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<AutoencoderOutput> {
        non_empty(xs)?;
        let code = self.encoder.forward_t(xs, train)?; // [b, latent]
        let decoded = self.decoder.forward_t(&code, train)?; // [b, c, h, w]
        Ok(AutoencoderOutput { code, decoded })
    }

    /// The reconstruction loss of `out` against the input `xs`.
    pub fn loss(&self, out: &AutoencoderOutput, xs: &Tensor) -> Result<Tensor> {
        self.loss.loss.apply(
            &out.decoded,
            xs,
            self.decoder.output_kind(),
            self.loss.reduction,
        )
    }
}

impl<E: Encoder, D: Decoder> Trainable for Autoencoder<E, D> {
    fn params(&self) -> &ParamStore {
        &self.params
    }

    /// `{"loss": …, "reduction": …}`, as in the model config.
    fn loss_settings(&self) -> Option<String> {
        serde_json::to_string(&self.loss).ok()
    }

    /// One term, `reconstruction`, which is also the total.
    fn batch_loss(
        &self,
        batch: &Batch,
        _rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> Result<LossTerms> {
        let out = self.forward_t(&batch.images, ctx.mode.is_train())?;
        let total = self.loss(&out, batch.targets())?;
        let per = Per::from(self.loss.reduction);
        Ok(LossTerms {
            total: total.clone(),
            per,
            terms: vec![Term::new("reconstruction", total, per)],
        })
    }
}
