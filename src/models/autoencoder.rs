//! The plain deterministic autoencoder.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::losses::{bce, bce_with_logits, mse, Reduction};
use crate::nets::{Decoder, Encoder, OutputKind};
use crate::{Error, Result as VResult};

/// Reconstruction loss of an [`Autoencoder`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AeLoss {
    /// Mean squared error against the decoder's pixels.
    Mse,
    /// Binary cross-entropy (on logits or probabilities, as the decoder outputs).
    Bce,
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
    encoder: E,
    decoder: D,
}

impl<E: Encoder, D: Decoder> Autoencoder<E, D> {
    /// Pairs `encoder` and `decoder`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the encoder's output width is not the decoder's input
    /// width, or the image shapes differ.
    pub fn new(encoder: E, decoder: D) -> VResult<Self> {
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
        Ok(Self { encoder, decoder })
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
        self.encoder.forward_t(xs, train)
    }

    /// Decodes codes to pixel values in `[0, 1]`.
    pub fn decode_pixels(&self, z: &Tensor) -> Result<Tensor> {
        let out = self.decoder.forward_t(z, false)?;
        self.decoder.output_kind().to_pixels(&out)
    }

    /// Encodes and decodes `xs`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<AutoencoderOutput> {
        let code = self.encoder.forward_t(xs, train)?; // [b, latent]
        let decoded = self.decoder.forward_t(&code, train)?; // [b, c, h, w]
        Ok(AutoencoderOutput { code, decoded })
    }

    /// The reconstruction loss of `out` against the input `xs`.
    pub fn loss(
        &self,
        out: &AutoencoderOutput,
        xs: &Tensor,
        loss: AeLoss,
        reduction: Reduction,
    ) -> Result<Tensor> {
        match (loss, self.decoder.output_kind()) {
            (AeLoss::Mse, kind) => mse(&kind.to_pixels(&out.decoded)?, xs, reduction),
            (AeLoss::Bce, OutputKind::Logits) => bce_with_logits(&out.decoded, xs, reduction),
            (AeLoss::Bce, OutputKind::Probabilities) => bce(&out.decoded, xs, reduction),
            (AeLoss::Bce, OutputKind::Linear) => {
                candle_core::bail!("autoencoder: BCE needs a decoder with logits or probabilities")
            }
        }
    }
}
