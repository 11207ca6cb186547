//! The categorical VAE with the Gumbel-softmax relaxation (Jang et al. 2017):
//! a latent of `N` categorical variables of `K` classes, trained through
//! relaxed (or straight-through one-hot) samples at an annealed temperature,
//! with the analytic KL to the uniform categorical.

use candle_core::{Result, Tensor};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::autoencoder::AeLoss;
use super::parts::{check_same_shape, non_empty};
use super::trainable::{LossTerms, Per, StepContext, Term, Trainable};
use crate::data::Batch;
use crate::latent::{
    categorical_log_prob, gumbel_noise, gumbel_softmax, kl_uniform_categorical, one_hot_argmax,
    uniform_one_hot, Relaxation, TemperatureSchedule,
};
use crate::losses::{sum_per_example, Reduction};
use crate::nets::{Decoder, Encoder, OutputKind};
use crate::params::ParamStore;
use crate::{Error, Result as VResult};

/// The loss of a [`GumbelVae`]: `reconstruction + β · KL(q(z|x) ‖ uniform)`,
/// both reduced alike. With binary cross-entropy and
/// [`Reduction::BatchMean`] (the default) it is the negative ELBO per image
/// of the Bernoulli decoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GumbelLossConfig {
    /// The reconstruction loss: binary cross-entropy on a decoder's logits or
    /// probabilities (the Bernoulli likelihood), or squared error.
    pub reconstruction: AeLoss,
    /// How both terms are reduced over the batch.
    pub reduction: Reduction,
    /// The KL weight β (a β schedule replaces it per step).
    pub beta: f64,
}

impl Default for GumbelLossConfig {
    /// Binary cross-entropy and KL summed per image, averaged over the batch,
    /// β = 1: the negative ELBO of Jang et al.'s MNIST model.
    fn default() -> Self {
        Self {
            reconstruction: AeLoss::Bce,
            reduction: Reduction::BatchMean,
            beta: 1.0,
        }
    }
}

crate::setters::with_setters!(GumbelLossConfig {
    with_reconstruction(reconstruction: AeLoss),
    with_reduction(reduction: Reduction),
    with_beta(beta: f64),
});

impl GumbelLossConfig {
    /// Checks that the loss fits a decoder of `kind`; errors name fields under
    /// `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for BCE on a linear decoder, a reduction that does
    /// not give a scalar, or a β that is negative or not finite.
    pub fn validate(&self, field: &str, kind: OutputKind) -> VResult<()> {
        self.reconstruction.check(
            &format!("{field}.reconstruction"),
            &format!("{field}.reduction"),
            self.reduction,
            kind,
        )?;
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return Err(Error::config(
                format!("{field}.beta"),
                format!("{} must be finite and at least 0", self.beta),
            ));
        }
        Ok(())
    }
}

/// The categorical latent of a [`GumbelVae`]: `variables` categoricals of
/// `classes` classes, relaxed at the temperatures of `temperature`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CategoricalLatentConfig {
    /// The number of categorical variables `N`.
    pub variables: usize,
    /// The classes of each, `K` (at least 2).
    pub classes: usize,
    /// The relaxed sample or its straight-through one-hot.
    #[serde(default)]
    pub relaxation: Relaxation,
    /// The temperature over the run.
    #[serde(default)]
    pub temperature: TemperatureSchedule,
}

impl CategoricalLatentConfig {
    /// `variables` categoricals of `classes` classes, relaxed softly, with
    /// the default temperature schedule (1 → 0.5).
    pub fn new(variables: usize, classes: usize) -> Self {
        Self {
            variables,
            classes,
            relaxation: Relaxation::Soft,
            temperature: TemperatureSchedule::default(),
        }
    }

    /// The latent width `N · K`.
    pub fn width(&self) -> usize {
        self.variables.saturating_mul(self.classes)
    }

    /// Checks the values; errors name fields under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field that cannot work.
    pub fn validate(&self, field: &str) -> VResult<()> {
        if self.variables == 0 {
            return Err(Error::config(
                format!("{field}.variables"),
                "must be positive",
            ));
        }
        if self.classes < 2 {
            return Err(Error::config(
                format!("{field}.classes"),
                format!("{} must be at least 2", self.classes),
            ));
        }
        if self.width() > crate::nets::MAX_WIDTH {
            return Err(Error::config(
                format!("{field}.variables"),
                format!(
                    "{} variables of {} classes are wider than vaekit accepts, {}",
                    self.variables,
                    self.classes,
                    crate::nets::MAX_WIDTH
                ),
            ));
        }
        self.temperature.validate(&format!("{field}.temperature"))
    }
}

crate::setters::with_setters!(CategoricalLatentConfig {
    with_variables(variables: usize),
    with_classes(classes: usize),
    with_relaxation(relaxation: Relaxation),
    with_temperature(temperature: TemperatureSchedule),
});

/// What a Gumbel-softmax VAE's forward pass returns.
#[derive(Debug, Clone)]
pub struct GumbelVaeOutput {
    /// The encoder's logits `[b, N, K]`.
    pub logits: Tensor,
    /// The noise used, `[b, N, K]`.
    pub noise: Tensor,
    /// The temperature of a training pass (`None` in evaluation, which
    /// samples the categorical itself).
    pub tau: Option<f64>,
    /// What the decoder saw, `[b, N, K]`: the relaxed sample, its
    /// straight-through one-hot, or (evaluation) a one-hot sample of `q`.
    pub z: Tensor,
    /// The decoder's output `[b, c, h, w]`.
    pub decoded: Tensor,
}

/// A VAE whose latent is `N` categorical variables of `K` classes:
/// `x → logits [b, N, K] → z → decoder`, with the uniform categorical as its
/// prior.
///
/// Training decodes the Gumbel-softmax sample `softmax((logits + g) / τ)` (or
/// its straight-through one-hot) at the temperature of the step
/// ([`TemperatureSchedule`], from [`StepContext::step`]); evaluation decodes a
/// one-hot sample of the categorical posterior itself (the Gumbel-max trick,
/// `one_hot(argmax(logits + g))`), so the test loss is the single-sample
/// negative ELBO of the discrete model, whatever τ. The KL to the uniform
/// categorical is exact in both.
///
/// The relaxed model's own bound — with the Concrete density of the relaxed
/// sample — is not a bound on the discrete model's likelihood, so vaekit does
/// not estimate `log p(x)` through it; [`log_weights`](Self::log_weights)
/// gives the importance weights of the discrete model with the categorical
/// posterior as proposal, which are valid for a Bernoulli decoder. It has no
/// [`LatentModel`](super::LatentModel), which is for Gaussian posteriors.
#[derive(Debug, Clone)]
pub struct GumbelVae<E, D> {
    params: ParamStore,
    encoder: E,
    decoder: D,
    latent: CategoricalLatentConfig,
    loss: GumbelLossConfig,
}

impl<E: Encoder, D: Decoder> GumbelVae<E, D> {
    /// Assembles a Gumbel-softmax VAE from parts whose tensors live in
    /// `params` (the encoder under `encoder`, the decoder under `decoder`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field at fault: `latent.*` for a latent
    /// or temperature that cannot work; `encoder.output_dim` when the encoder
    /// does not give `N · K` logits; `decoder.input_dim` when the decoder does
    /// not take `N · K` values; `decoder.output` when the image shapes differ;
    /// `loss.*` for a loss that does not fit the decoder.
    pub fn new(
        params: &ParamStore,
        encoder: E,
        decoder: D,
        latent: CategoricalLatentConfig,
        loss: GumbelLossConfig,
    ) -> VResult<Self> {
        latent.validate("latent")?;
        let width = latent.width();
        if encoder.output_dim() != width {
            return Err(Error::config(
                "encoder.output_dim",
                format!(
                    "{} must equal latent.variables × latent.classes = {width}",
                    encoder.output_dim()
                ),
            ));
        }
        if decoder.input_dim() != width {
            return Err(Error::config(
                "decoder.input_dim",
                format!(
                    "{} must equal latent.variables × latent.classes = {width}",
                    decoder.input_dim()
                ),
            ));
        }
        check_same_shape(encoder.input_shape(), decoder.output_shape())?;
        loss.validate("loss", decoder.output_kind())?;
        Ok(Self {
            params: params.clone(),
            encoder,
            decoder,
            latent,
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

    /// The latent's layout and temperature schedule.
    pub fn latent(&self) -> &CategoricalLatentConfig {
        &self.latent
    }

    /// The loss settings.
    pub fn loss_config(&self) -> &GumbelLossConfig {
        &self.loss
    }

    /// Width of the latent, `N · K`.
    pub fn latent_dim(&self) -> usize {
        self.latent.width()
    }

    /// The posterior's logits `[b, N, K]` for images `xs`.
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn logits(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        non_empty(xs)?;
        let b = xs.dim(0)?;
        self.encoder
            .forward_t(xs, train)? // [b, N·K]
            .reshape((b, self.latent.variables, self.latent.classes)) // [b, N, K]
    }

    /// The forward pass with the Gumbel `noise` `[b, N, K]` given: in
    /// training (`train`), the Gumbel-softmax sample at temperature `tau`
    /// (relaxed or straight-through, as configured); in evaluation, the
    /// one-hot `argmax(logits + noise)`, a sample of the categorical
    /// posterior.
    ///
    /// # Errors
    ///
    /// When the shapes do not fit or `tau` is not positive.
    pub fn forward_with_noise(
        &self,
        xs: &Tensor,
        noise: &Tensor,
        tau: f64,
        train: bool,
    ) -> Result<GumbelVaeOutput> {
        let logits = self.logits(xs, train)?; // [b, N, K]
        let z = if train {
            gumbel_softmax(&logits, noise, tau, self.latent.relaxation)?
        } else {
            one_hot_argmax(&(logits.detach() + noise.to_dtype(logits.dtype())?)?)?
        }; // [b, N, K]
        let decoded = self.decoder.forward_t(&z.flatten_from(1)?, train)?; // [b, c, h, w]
        Ok(GumbelVaeOutput {
            logits,
            noise: noise.clone(),
            tau: train.then_some(tau),
            z,
            decoded,
        })
    }

    /// The forward pass with noise drawn from `rng` at the temperature of
    /// step `step`.
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn forward_t(
        &self,
        xs: &Tensor,
        train: bool,
        step: usize,
        rng: &mut dyn RngCore,
    ) -> Result<GumbelVaeOutput> {
        non_empty(xs)?;
        let b = xs.dim(0)?;
        let noise = gumbel_noise(
            (b, self.latent.variables, self.latent.classes),
            rng,
            xs.device(),
        )?;
        self.forward_with_noise(xs, &noise, self.latent.temperature.at(step), train)
    }

    /// `−log p(x | z)` per element of the decoder's output against the
    /// targets `xs` (the reconstruction loss before reduction).
    fn reconstruction_elements(&self, decoded: &Tensor, xs: &Tensor) -> Result<Tensor> {
        self.loss
            .reconstruction
            .apply(decoded, xs, self.decoder.output_kind(), Reduction::None)
    }

    /// The loss of `out` against the targets `xs` with KL weight `beta`, as
    /// its terms: `reconstruction`, `kl` (the exact KL to the uniform
    /// categorical, unweighted; with [`Reduction::Mean`], its mean over the
    /// batch and the variables) and, in training, `temperature` (τ, not part
    /// of the total).
    ///
    /// # Errors
    ///
    /// When the shapes do not match.
    pub fn loss_terms(&self, out: &GumbelVaeOutput, xs: &Tensor, beta: f64) -> Result<LossTerms> {
        let reduction = self.loss.reduction;
        let per = Per::from(reduction);
        let reconstruction = reduction.apply(&self.reconstruction_elements(&out.decoded, xs)?)?;
        let b = xs.dim(0)?;
        let kl_rows = kl_uniform_categorical(&out.logits)?; // [b]
        let kl = match reduction {
            // The mean over the batch and the variables.
            Reduction::Mean => kl_rows
                .sum_all()?
                .affine(1.0 / (b * self.latent.variables) as f64, 0.0)?,
            r => r.apply(&kl_rows)?,
        };
        let total = (&reconstruction + kl.affine(beta, 0.0)?)?;
        let mut terms = vec![
            Term::new("reconstruction", reconstruction, per),
            Term::new("kl", kl, per),
        ];
        if let Some(tau) = out.tau {
            let tau = Tensor::new(tau, total.device())?.to_dtype(total.dtype())?;
            terms.push(Term::new("temperature", tau, Per::Image));
        }
        Ok(LossTerms { total, per, terms })
    }

    /// The most probable class of every variable, one-hot, `[b, N·K]`
    /// (evaluation mode): the latent [`decode_pixels`](Self::decode_pixels)
    /// takes.
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn encode(&self, xs: &Tensor) -> Result<Tensor> {
        non_empty(xs)?;
        super::chunks::by_rows(xs, None, |xs, _| {
            one_hot_argmax(&self.logits(xs, false)?)?.flatten_from(1)
        })
    }

    /// The most probable class of every variable, `[b, N]` (`u32`, evaluation
    /// mode): the classes whose one-hot vectors [`encode`](Self::encode)
    /// gives, as the code explorer (`pictures::write_code_explorer`) shows
    /// them.
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn encode_classes(&self, xs: &Tensor) -> Result<Tensor> {
        non_empty(xs)?;
        super::chunks::by_rows(xs, None, |xs, _| {
            self.logits(xs, false)?.argmax(candle_core::D::Minus1) // [b, N]
        })
    }

    /// Decodes latents `[n, N·K]` (one-hot or relaxed) to pixels in `[0, 1]`
    /// (evaluation mode).
    ///
    /// # Errors
    ///
    /// When `z` is not `[n, N·K]`.
    pub fn decode_pixels(&self, z: &Tensor) -> Result<Tensor> {
        super::chunks::by_rows(z, None, |z, _| {
            let out = self.decoder.forward_t(z, false)?;
            self.decoder.output_kind().to_pixels(&out)
        })
    }

    /// Reconstructions of `xs` through the most probable classes, as pixels.
    ///
    /// # Errors
    ///
    /// When `xs` is empty or not of the encoder's shape.
    pub fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        self.decode_pixels(&self.encode(xs)?)
    }

    /// `n` one-hot latents drawn from the uniform prior, decoded to pixels.
    ///
    /// # Errors
    ///
    /// A candle error from the decoder.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Result<Tensor> {
        let z = uniform_one_hot(
            n,
            self.latent.variables,
            self.latent.classes,
            rng,
            self.params.device(),
        )?
        .to_dtype(self.params.dtype())?;
        self.decode_pixels(&z.flatten_from(1)?)
    }

    /// The log importance weights of the discrete model,
    /// `log p(x | z_j) + log p(z_j) − log q(z_j | x)` `[k, b]`, for `k`
    /// one-hot samples `z_j ~ q(z | x)` drawn with Gumbel-max from `rng`
    /// (evaluation mode). `log (1/k) Σ_j exp(w_j)` is then an estimate of
    /// `log p(x)` whose expectation is a lower bound that tightens with `k`.
    /// The likelihood is the Bernoulli of a binary cross-entropy loss; the
    /// squared error has no normalised likelihood here.
    ///
    /// # Errors
    ///
    /// For a squared-error loss, `k = 0`, or images that do not fit.
    pub fn log_weights(&self, xs: &Tensor, k: usize, rng: &mut dyn RngCore) -> Result<Tensor> {
        if self.loss.reconstruction != AeLoss::Bce {
            candle_core::bail!(
                "Gumbel-softmax VAE: importance weights need the Bernoulli likelihood (reconstruction: bce)"
            );
        }
        if k == 0 {
            candle_core::bail!("Gumbel-softmax VAE: importance sampling needs at least one sample");
        }
        let logits = self.logits(xs, false)?.detach(); // [b, N, K]
        let (b, n, c) = logits.dims3()?;
        let log_prior = -(n as f64) * (c as f64).ln();
        let mut rows = Vec::with_capacity(k);
        for _ in 0..k {
            let noise = gumbel_noise((b, n, c), rng, xs.device())?;
            let z = one_hot_argmax(&(&logits + noise.to_dtype(logits.dtype())?)?)?; // [b, N, K]
            let decoded = self.decoder.forward_t(&z.flatten_from(1)?, false)?;
            let log_px = sum_per_example(&self.reconstruction_elements(&decoded, xs)?)?.neg()?; // [b]
            let log_qz = categorical_log_prob(&logits, &z)?; // [b]
            rows.push(((log_px - log_qz)? + log_prior)?);
        }
        Tensor::stack(&rows, 0) // [k, b]
    }
}

impl<E: Encoder, D: Decoder> Trainable for GumbelVae<E, D> {
    fn params(&self) -> &ParamStore {
        &self.params
    }

    /// `{"reconstruction": …, "reduction": …, "beta": …}`, as in the model
    /// config.
    fn loss_settings(&self) -> Option<String> {
        serde_json::to_string(&self.loss).ok()
    }

    fn beta(&self) -> Option<f64> {
        Some(self.loss.beta)
    }

    /// Training: the Gumbel-softmax sample at the temperature of
    /// `ctx.step`; evaluation: a one-hot sample of the posterior. The noise
    /// comes from `rng`; β from `ctx` or the config.
    fn batch_loss(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> Result<LossTerms> {
        let out = self.forward_t(&batch.images, ctx.mode.is_train(), ctx.step, rng)?;
        self.loss_terms(&out, batch.targets(), ctx.beta_or(self.loss.beta))
    }
}
