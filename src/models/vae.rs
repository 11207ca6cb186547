//! The variational autoencoder, generic over encoder, decoder and prior.

use candle_core::{Device, Result, Tensor};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::trainable::{LossTerms, Mode, Per, Term, Trainable};
use crate::data::Batch;
use crate::latent::{
    single_sample_kl, standard_normal, DiagonalGaussian, LatentPrior, PosteriorParam,
};
use crate::losses::{bce, bce_with_logits, gaussian_nll, squared_error, Elbo, Reduction};
use crate::nets::{Decoder, Encoder, OutputKind};
use crate::params::ParamStore;
use crate::{Error, Result as VResult};

/// The likelihood `p(x | z)` whose negative log is the reconstruction term.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Likelihood {
    /// Bernoulli pixels: binary cross-entropy on the decoder's logits or
    /// probabilities.
    Bernoulli,
    /// Gaussian pixels with a fixed standard deviation around the decoder output.
    Gaussian {
        /// Standard deviation σ.
        sigma: f64,
    },
    /// `scale · (x̂ − x)²` summed (a Gaussian up to a constant; the dense VAE
    /// tutorial's `0.5·Σ(x̂ − x)²` is `scale = 0.5`).
    SquaredError {
        /// Factor on the squared error.
        scale: f64,
    },
}

/// How the KL term is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// The prior's [`LatentPrior::kl`]: closed form where the prior has one.
    Analytic,
    /// `log q(z|x) − log p(z)` at the `z` the decoder saw: the single-sample
    /// Monte Carlo ELBO of the TensorFlow CVAE tutorial.
    SingleSample,
}

/// The loss of a VAE: `reduce(−log p(x|z)) + β · reduce(KL)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VaeLossConfig {
    /// The pixel likelihood.
    pub likelihood: Likelihood,
    /// How the KL term is computed.
    pub kl: KlEstimator,
    /// Weight of the KL term (1 for the ELBO; β-VAE otherwise).
    pub beta: f64,
    /// How per-example terms are combined over the batch ([`Reduction::Sum`] or
    /// [`Reduction::BatchMean`]).
    pub reduction: Reduction,
}

impl Default for VaeLossConfig {
    fn default() -> Self {
        Self {
            likelihood: Likelihood::Bernoulli,
            kl: KlEstimator::Analytic,
            beta: 1.0,
            reduction: Reduction::BatchMean,
        }
    }
}

impl VaeLossConfig {
    /// Checks the values; errors name the field under `field`.
    pub fn validate(&self, field: &str, kind: OutputKind) -> VResult<()> {
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::config(
                format!("{field}.beta"),
                format!("{} must be finite and ≥ 0", self.beta),
            ));
        }
        match self.likelihood {
            Likelihood::Bernoulli if kind == OutputKind::Linear => Err(Error::config(
                format!("{field}.likelihood"),
                "a Bernoulli likelihood needs a decoder with logits or probabilities",
            )),
            Likelihood::Gaussian { sigma } if !(sigma.is_finite() && sigma > 0.0) => {
                Err(Error::config(
                    format!("{field}.likelihood.sigma"),
                    format!("{sigma} must be positive"),
                ))
            }
            Likelihood::SquaredError { scale } if !(scale.is_finite() && scale > 0.0) => {
                Err(Error::config(
                    format!("{field}.likelihood.scale"),
                    format!("{scale} must be positive"),
                ))
            }
            _ => match self.reduction {
                Reduction::Sum | Reduction::BatchMean | Reduction::Mean => Ok(()),
                Reduction::None => Err(Error::config(
                    format!("{field}.reduction"),
                    "must reduce to a scalar (sum or batch_mean)",
                )),
            },
        }
    }

    /// `−log p(x | z)` per example, `[batch]`.
    pub fn reconstruction(
        &self,
        decoded: &Tensor,
        xs: &Tensor,
        kind: OutputKind,
    ) -> Result<Tensor> {
        let per_elem = match (self.likelihood, kind) {
            (Likelihood::Bernoulli, OutputKind::Logits) => {
                bce_with_logits(decoded, xs, Reduction::None)?
            }
            (Likelihood::Bernoulli, OutputKind::Probabilities) => {
                bce(decoded, xs, Reduction::None)?
            }
            (Likelihood::Bernoulli, OutputKind::Linear) => {
                candle_core::bail!("a Bernoulli likelihood needs logits or probabilities")
            }
            (Likelihood::Gaussian { sigma }, kind) => gaussian_nll(
                &kind.to_pixels_for_likelihood(decoded)?,
                xs,
                sigma,
                Reduction::None,
            )?,
            (Likelihood::SquaredError { scale }, kind) => squared_error(
                &kind.to_pixels_for_likelihood(decoded)?,
                xs,
                scale,
                Reduction::None,
            )?,
        };
        crate::losses::sum_per_example(&per_elem)
    }
}

impl VaeLossConfig {
    /// The KL term per example, `[batch]`, for posterior `q` and the `z` the
    /// decoder saw.
    pub fn kl_per_example<P: LatentPrior + ?Sized>(
        &self,
        prior: &P,
        q: &DiagonalGaussian,
        z: &Tensor,
        rng: &mut dyn RngCore,
    ) -> Result<Tensor> {
        match self.kl {
            KlEstimator::Analytic => prior.kl(q, rng),
            KlEstimator::SingleSample => single_sample_kl(q, prior, z),
        }
    }
}

impl OutputKind {
    /// The decoder output as the mean of a continuous likelihood: logits go
    /// through a sigmoid, probabilities and linear outputs are used as they are.
    fn to_pixels_for_likelihood(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            OutputKind::Logits => candle_nn::ops::sigmoid(xs),
            OutputKind::Probabilities | OutputKind::Linear => Ok(xs.clone()),
        }
    }
}

/// What a VAE's forward pass returns.
#[derive(Debug, Clone)]
pub struct VaeOutput {
    /// The posterior `q(z | x)`.
    pub posterior: DiagonalGaussian,
    /// The noise used, `[batch, latent]`.
    pub eps: Tensor,
    /// The latent sample `mean + eps · std`, `[batch, latent]`.
    pub z: Tensor,
    /// The decoder's output `[batch, c, h, w]` (see [`Decoder::output_kind`]).
    pub decoded: Tensor,
}

/// A variational autoencoder: `x → q(z|x) → z → p(x|z)`, with prior `p(z)`.
///
/// Generic over its parts, so any [`Encoder`] pairs with any [`Decoder`] and
/// [`LatentPrior`]; the encoder's output is `[mean | raw log-variance]`.
#[derive(Debug, Clone)]
pub struct Vae<E, D, P> {
    params: ParamStore,
    encoder: E,
    decoder: D,
    prior: P,
    posterior: PosteriorParam,
    loss: VaeLossConfig,
}

impl<E: Encoder, D: Decoder, P: LatentPrior> Vae<E, D, P> {
    /// Assembles a VAE from parts whose weights live in `params` (build them
    /// from `params.var_builder(seed)`, the encoder under `encoder`, the
    /// decoder under `decoder`, a prior with weights under `prior`).
    ///
    /// ```
    /// use vaekit::prelude::*;
    ///
    /// let params = ParamStore::new(&Device::Cpu);
    /// let vb = params.var_builder(0);
    /// let encoder = DenseEncoder::new(
    ///     &DenseEncoderConfig::new(ImageShape::MNIST, &[64], 2 * 8),
    ///     vb.pp("encoder"),
    /// )?;
    /// let decoder = DenseDecoder::new(
    ///     &DenseDecoderConfig::new(8, &[64], ImageShape::MNIST),
    ///     vb.pp("decoder"),
    /// )?;
    /// let prior = StandardNormal::new(8);
    /// let vae = Vae::new(&params, encoder, decoder, prior, PosteriorParam::LogVariance, VaeLossConfig::default())?;
    /// assert_eq!(vae.latent_dim(), 8);
    /// # Ok::<(), vaekit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the widths disagree (encoder output ≠ 2 × prior width,
    /// decoder input ≠ prior width), the image shapes differ, the latent width is
    /// zero, or the posterior or loss settings cannot work with the decoder.
    pub fn new(
        params: &ParamStore,
        encoder: E,
        decoder: D,
        prior: P,
        posterior: PosteriorParam,
        loss: VaeLossConfig,
    ) -> VResult<Self> {
        check_vae_parts(
            encoder.output_dim(),
            encoder.input_shape(),
            decoder.input_dim(),
            decoder.output_shape(),
            prior.latent_dim(),
            0,
        )?;
        posterior.validate("posterior")?;
        loss.validate("loss", decoder.output_kind())?;
        Ok(Self {
            params: params.clone(),
            encoder,
            decoder,
            prior,
            posterior,
            loss,
        })
    }

    /// The encoder.
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The prior.
    pub fn prior(&self) -> &P {
        &self.prior
    }

    /// The loss settings.
    pub fn loss_config(&self) -> &VaeLossConfig {
        &self.loss
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.prior.latent_dim()
    }

    /// The posterior `q(z | x)` for images `xs` `[b, c, h, w]`.
    pub fn posterior(&self, xs: &Tensor, train: bool) -> Result<DiagonalGaussian> {
        let params = self.encoder.forward_t(xs, train)?; // [b, 2·latent]
        self.posterior.posterior(&params)
    }

    /// The forward pass with given noise `eps` `[b, latent]`.
    pub fn forward_with_eps(&self, xs: &Tensor, eps: &Tensor, train: bool) -> Result<VaeOutput> {
        let posterior = self.posterior(xs, train)?;
        let z = posterior.sample_with(eps)?; // [b, latent]
        let decoded = self.decoder.forward_t(&z, train)?; // [b, c, h, w]
        Ok(VaeOutput {
            posterior,
            eps: eps.clone(),
            z,
            decoded,
        })
    }

    /// The forward pass, drawing the noise from `rng`.
    pub fn forward_t(&self, xs: &Tensor, rng: &mut dyn RngCore, train: bool) -> Result<VaeOutput> {
        let b = xs.dim(0)?;
        let eps = standard_normal((b, self.latent_dim()), rng, xs.device())?;
        self.forward_with_eps(xs, &eps, train)
    }

    /// The loss of `out` against the input `xs`, terms kept apart.
    pub fn loss(&self, out: &VaeOutput, xs: &Tensor, rng: &mut dyn RngCore) -> Result<Elbo> {
        let recon = self
            .loss
            .reconstruction(&out.decoded, xs, self.decoder.output_kind())?; // [b]
        let kl = self
            .loss
            .kl_per_example(&self.prior, &out.posterior, &out.z, rng)?; // [b]
        let r = self.loss.reduction;
        Elbo::new(r.apply(&recon)?, r.apply(&kl)?, self.loss.beta)
    }

    /// The decoder's output (from [`VaeOutput::decoded`]) as pixels in `[0, 1]`.
    pub fn to_pixels(&self, decoded: &Tensor) -> Result<Tensor> {
        self.decoder.output_kind().to_pixels(decoded)
    }

    /// Decodes latent vectors `[n, latent]` to pixels in `[0, 1]` (evaluation mode).
    pub fn decode_pixels(&self, z: &Tensor) -> Result<Tensor> {
        let out = self.decoder.forward_t(z, false)?;
        self.decoder.output_kind().to_pixels(&out)
    }

    /// `n` images from the prior, as pixels `[n, c, h, w]` on `device`.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        let z = self.prior.sample(n, rng, device)?;
        self.decode_pixels(&z)
    }

    /// Reconstructions of `xs` through the posterior means, as pixels (evaluation mode).
    pub fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        let q = self.posterior(xs, false)?;
        self.decode_pixels(q.mean())
    }

    /// Per-example `−ELBO` in evaluation mode, `[batch]`, with a fresh `z`.
    pub fn negative_elbo(&self, xs: &Tensor, rng: &mut dyn RngCore) -> Result<Tensor> {
        let out = self.forward_t(xs, rng, false)?;
        let recon = self
            .loss
            .reconstruction(&out.decoded, xs, self.decoder.output_kind())?;
        let kl = self
            .loss
            .kl_per_example(&self.prior, &out.posterior, &out.z, rng)?;
        recon.add(&kl.affine(self.loss.beta, 0.0)?)
    }
}

/// The checks every VAE-like model makes of its parts, in one place: a
/// positive latent width, an encoder giving `[mean | log-variance]`
/// (`2 × latent`), a decoder taking `latent + condition` values, and the same
/// image shape at both ends.
pub(crate) fn check_vae_parts(
    encoder_out: usize,
    encoder_input: crate::nets::ImageShape,
    decoder_in: usize,
    decoder_output: crate::nets::ImageShape,
    latent: usize,
    condition: usize,
) -> VResult<()> {
    if latent == 0 {
        return Err(Error::config("latent_dim", "must be positive"));
    }
    if encoder_out != 2 * latent {
        return Err(Error::config(
            "encoder.output_dim",
            format!("{encoder_out} must be 2 × latent_dim = {}", 2 * latent),
        ));
    }
    if decoder_in != latent + condition {
        let what = if condition == 0 {
            format!("latent_dim = {latent}")
        } else {
            format!("latent_dim + classes = {}", latent + condition)
        };
        return Err(Error::config(
            "decoder.input_dim",
            format!("{decoder_in} must equal {what}"),
        ));
    }
    if encoder_input != decoder_output {
        return Err(Error::config(
            "decoder.output",
            format!("{decoder_output} does not match the encoder's input {encoder_input}"),
        ));
    }
    Ok(())
}

impl<E: Encoder, D: Decoder, P: LatentPrior> Trainable for Vae<E, D, P> {
    fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The negative ELBO: terms `reconstruction` and `kl` (before β), each
    /// reduced over the batch by the loss config's reduction.
    fn batch_loss(&self, batch: &Batch, rng: &mut dyn RngCore, mode: Mode) -> Result<LossTerms> {
        let out = self.forward_t(&batch.images, rng, mode.is_train())?;
        let elbo = self.loss(&out, &batch.images, rng)?;
        let per = Per::from(self.loss.reduction);
        Ok(LossTerms {
            total: elbo.total,
            per,
            terms: vec![
                Term::new("reconstruction", elbo.reconstruction, per),
                Term::new("kl", elbo.kl, per),
            ],
        })
    }
}
