//! The variational autoencoder, generic over encoder, decoder and prior.

use candle_core::{Device, Result, Tensor};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::beta::{check_beta, BetaCell};
use super::trainable::{LossTerms, Mode, Per, Term, Trainable};
use crate::data::Batch;
use crate::latent::{
    single_sample_kl, single_sample_kl_per_dim, standard_normal, DiagonalGaussian, LatentPrior,
    PosteriorParam,
};
use crate::losses::{bce, bce_with_logits, gaussian_nll, squared_error, Elbo, Reduction};
use crate::nets::{Decoder, Encoder, OutputKind};
use crate::params::ParamStore;
use crate::{Error, Result as VResult};

/// The likelihood `p(x | z)` whose negative log is the reconstruction term.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum KlEstimator {
    /// The prior's [`LatentPrior::kl`]: closed form where the prior has one.
    Analytic,
    /// `log q(z|x) − log p(z)` at the `z` the decoder saw: the single-sample
    /// Monte Carlo ELBO of the TensorFlow CVAE tutorial.
    SingleSample,
}

/// What a VAE's training loss optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Objective {
    /// The ELBO, `E_q[log p(x|z)] − β · KL(q ‖ p)`, with one `z` per image.
    #[default]
    Elbo,
    /// The importance-weighted bound of Burda et al. (2016) with `samples`
    /// draws `z_j ~ q(z|x)` per image:
    /// `log (1/k) Σ_j exp(log p(x|z_j) + β · (log p(z_j) − log q(z_j|x)))`,
    /// by log-sum-exp (β = 1 gives the IWAE bound; `samples = 1` the
    /// single-sample ELBO). The loss is its negation, reduced over the batch.
    Iwae {
        /// Importance samples `k` per image (≥ 1).
        samples: usize,
    },
}

impl Objective {
    fn is_elbo(&self) -> bool {
        *self == Objective::Elbo
    }
}

/// The loss of a VAE: `reduce(−log p(x|z)) + β · reduce(KL)`.
///
/// `objective` and `free_bits` are left out of the JSON when they have their
/// defaults, so configs (and checkpoints) written before they existed read
/// and compare the same.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
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
    /// The ELBO (default) or the IWAE bound.
    #[serde(default, skip_serializing_if = "Objective::is_elbo")]
    pub objective: Objective,
    /// Free bits (Kingma et al. 2016), `λ` in nats per group of latent
    /// dimensions (per dimension unless [`free_bits_groups`](Self::free_bits_groups)
    /// says otherwise): the KL in the total becomes
    /// `Σ_j max(λ, mean over the batch of KL_j)` over the groups `j` (times
    /// the batch size under [`Reduction::Sum`]), so a group under `λ` nats
    /// gets no push towards the prior. `KL_j` is the sum over the group's
    /// dimensions of the per-dimension KL of the configured estimator: the
    /// closed form ([`KlEstimator::Analytic`]) or the single-sample
    /// `log q(z_d|x) − log p(z_d)` ([`KlEstimator::SingleSample`]). Needs a
    /// prior that factorises over the dimensions (the standard normal) and
    /// the ELBO objective. The reported `kl` term stays the KL without free
    /// bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bits: Option<f64>,
    /// Groups `K` of [`free_bits`](Self::free_bits): the latent dimensions in
    /// `K` consecutive groups of equal size (`K` divides the latent width),
    /// `λ` per group, as in Kingma et al. (2016). Absent: one group per
    /// dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bits_groups: Option<usize>,
}

impl Default for VaeLossConfig {
    fn default() -> Self {
        Self {
            likelihood: Likelihood::Bernoulli,
            kl: KlEstimator::Analytic,
            beta: 1.0,
            reduction: Reduction::BatchMean,
            objective: Objective::Elbo,
            free_bits: None,
            free_bits_groups: None,
        }
    }
}

crate::setters::with_setters!(VaeLossConfig {
    with_likelihood(likelihood: Likelihood),
    with_kl(kl: KlEstimator),
    with_beta(beta: f64),
    with_reduction(reduction: Reduction),
    with_objective(objective: Objective),
    with_free_bits(free_bits: Option<f64>),
    with_free_bits_groups(free_bits_groups: Option<usize>),
});

impl VaeLossConfig {
    /// Checks the values; errors name the field under `field`.
    pub fn validate(&self, field: &str, kind: OutputKind) -> VResult<()> {
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::config(
                format!("{field}.beta"),
                format!("{} must be finite and ≥ 0", self.beta),
            ));
        }
        if let Objective::Iwae { samples } = self.objective {
            if samples == 0 {
                return Err(Error::config(
                    format!("{field}.objective.samples"),
                    "must be at least 1",
                ));
            }
            if self.free_bits.is_some() {
                return Err(Error::config(
                    format!("{field}.free_bits"),
                    "free bits apply to the ELBO objective, not to the IWAE bound",
                ));
            }
        }
        if let Some(lambda) = self.free_bits {
            if !(lambda.is_finite() && lambda >= 0.0) {
                return Err(Error::config(
                    format!("{field}.free_bits"),
                    format!("{lambda} must be finite and ≥ 0"),
                ));
            }
        }
        match (self.free_bits_groups, self.free_bits) {
            (Some(0), _) => {
                return Err(Error::config(
                    format!("{field}.free_bits_groups"),
                    "must be at least 1",
                ))
            }
            (Some(_), None) => {
                return Err(Error::config(
                    format!("{field}.free_bits_groups"),
                    "groups the dimensions for free bits: set free_bits too",
                ))
            }
            _ => {}
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

    /// The normalised `log p(x | z)` per example, `[batch]`: the negated
    /// [`reconstruction`](Self::reconstruction) for the Bernoulli and Gaussian
    /// likelihoods; for [`Likelihood::SquaredError`] the Gaussian it is
    /// proportional to, `σ² = 1 / (2 · scale)`, with its normalising constant
    /// `½ ln(π / scale)` per pixel. This is what importance sampling and the
    /// IWAE bound weigh.
    ///
    /// # Shapes
    ///
    /// `decoded`, `xs`: `[batch, c, h, w]`; returns `[batch]`.
    pub fn log_likelihood(
        &self,
        decoded: &Tensor,
        xs: &Tensor,
        kind: OutputKind,
    ) -> Result<Tensor> {
        let recon = self.reconstruction(decoded, xs, kind)?; // [b]
        match self.likelihood {
            Likelihood::SquaredError { scale } => {
                let pixels = xs.elem_count() / xs.dim(0)?.max(1);
                recon.affine(
                    -1.0,
                    -0.5 * (std::f64::consts::PI / scale).ln() * pixels as f64,
                )
            }
            _ => recon.neg(),
        }
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

    /// The KL term per example and latent dimension, `[batch, latent]`, by the
    /// configured estimator: the prior's closed form
    /// ([`LatentPrior::kl_per_dim`]) or the single-sample
    /// `log q(z_d|x) − log p(z_d)` at the `z` the decoder saw. Its rows sum to
    /// [`kl_per_example`](Self::kl_per_example).
    ///
    /// # Errors
    ///
    /// For a prior that does not factorise over the dimensions (a mixture, the
    /// VampPrior).
    pub fn kl_per_dim<P: LatentPrior + ?Sized>(
        &self,
        prior: &P,
        q: &DiagonalGaussian,
        z: &Tensor,
    ) -> Result<Tensor> {
        let per_dim = match self.kl {
            KlEstimator::Analytic => prior.kl_per_dim(q)?,
            KlEstimator::SingleSample => single_sample_kl_per_dim(q, prior, z)?,
        };
        match per_dim {
            Some(t) => Ok(t),
            None => candle_core::bail!(
                "a KL per latent dimension (for free bits) needs a prior that factorises over the dimensions (the standard normal)"
            ),
        }
    }

    /// The KL part of the total, reduced, from the reduced KL `kl`:
    /// `β · kl`, or with free bits `β · Σ_j max(λ, mean_b KL_{b,j})` over the
    /// groups `j` of [`free_bits_groups`](Self::free_bits_groups) (times the
    /// batch size under [`Reduction::Sum`]), `KL_{b,j}` from
    /// [`kl_per_dim`](Self::kl_per_dim).
    pub(crate) fn kl_in_total<P: LatentPrior + ?Sized>(
        &self,
        prior: &P,
        q: &DiagonalGaussian,
        z: &Tensor,
        kl: &Tensor,
        beta: f64,
    ) -> Result<Tensor> {
        let Some(lambda) = self.free_bits else {
            return kl.affine(beta, 0.0);
        };
        let per_dim = self.kl_per_dim(prior, q, z)?; // [b, d]
        let (b, d) = per_dim.dims2()?;
        let groups = self.free_bits_groups.unwrap_or(d);
        if groups == 0 || !d.is_multiple_of(groups) {
            candle_core::bail!("free bits: {groups} groups do not split {d} latent dimensions");
        }
        let per_group = per_dim.reshape((b, groups, d / groups))?.sum(2)?; // [b, groups]
        let kept = per_group.mean(0)?.maximum(lambda)?.sum_all()?; // per image
        let scale = match self.reduction {
            Reduction::Sum => b as f64,
            _ => 1.0,
        };
        kept.affine(beta * scale, 0.0)
    }

    /// Checks the free-bits groups against the latent width `latent`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `{field}.free_bits_groups` if they do not
    /// split the latent dimensions into groups of equal size.
    pub(crate) fn check_groups(&self, field: &str, latent: usize) -> VResult<()> {
        match self.free_bits_groups {
            Some(k) if k == 0 || !latent.is_multiple_of(k) => Err(Error::config(
                format!("{field}.free_bits_groups"),
                format!("{k} groups do not split latent_dim = {latent} into groups of equal size"),
            )),
            _ => Ok(()),
        }
    }
}

impl OutputKind {
    /// The decoder output as the mean of a continuous likelihood: logits go
    /// through a sigmoid, probabilities and linear outputs are used as they are.
    fn to_pixels_for_likelihood(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            OutputKind::Logits => crate::kernels::sigmoid(xs),
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
    beta: BetaCell,
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
        loss.check_groups("loss", prior.latent_dim())?;
        Ok(Self {
            params: params.clone(),
            encoder,
            decoder,
            prior,
            posterior,
            loss,
            beta: BetaCell::new(loss.beta),
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

    /// The loss settings (with the configured β; see [`beta`](Self::beta)).
    pub fn loss_config(&self) -> &VaeLossConfig {
        &self.loss
    }

    /// The KL weight in use: the configured β until a β schedule
    /// ([`Trainable::set_beta`]) changes it.
    pub fn beta(&self) -> f64 {
        self.beta.get()
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.prior.latent_dim()
    }

    /// The posterior `q(z | x)` for images `xs` `[b, c, h, w]`.
    ///
    /// # Errors
    ///
    /// For an empty batch, or images the encoder does not take.
    pub fn posterior(&self, xs: &Tensor, train: bool) -> Result<DiagonalGaussian> {
        non_empty(xs)?;
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
        let beta = self.beta.get();
        let (reconstruction, kl) = (r.apply(&recon)?, r.apply(&kl)?);
        if self.loss.free_bits.is_none() {
            return Elbo::new(reconstruction, kl, beta);
        }
        let kl_part = self
            .loss
            .kl_in_total(&self.prior, &out.posterior, &out.z, &kl, beta)?;
        Ok(Elbo {
            total: reconstruction.add(&kl_part)?,
            reconstruction,
            kl,
            beta,
        })
    }

    /// The log importance weights `log p(x|z_j) + log p(z_j) − log q(z_j|x)`
    /// of `k` draws per image with given noise `eps` `[k, b, latent]`
    /// (`z_j = mean + eps_j · std`), as `[k, b]`, with training or evaluation
    /// behaviour. Their log-mean-exp over `k` is the importance-sampled
    /// estimate of `log p(x)`; their mean the Monte Carlo ELBO.
    ///
    /// # Shapes
    ///
    /// `xs`: `[b, c, h, w]`; `eps`: `[k, b, latent]`; returns `[k, b]`.
    pub fn log_weights_with_eps(&self, xs: &Tensor, eps: &Tensor, train: bool) -> Result<Tensor> {
        let q = self.posterior(xs, train)?; // [b, d]
        let (lpx, lpz, lqz) = self.log_weight_parts(&q, xs, eps, train)?;
        lpx.add(&lpz)?.sub(&lqz)
    }

    /// `log p(x|z)`, `log p(z)` and `log q(z|x)`, each `[k, b]`, at
    /// `z = mean + eps · std` for noise `eps` `[k, b, d]`.
    pub(crate) fn log_weight_parts(
        &self,
        q: &DiagonalGaussian,
        xs: &Tensor,
        eps: &Tensor,
        train: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (k, b, d) = eps.dims3()?;
        if q.mean().dims() != [b, d] {
            candle_core::bail!(
                "importance weights: noise {:?} does not fit the posterior {:?} ([k, batch, latent])",
                eps.dims(),
                q.mean().dims()
            );
        }
        let mean = q.mean().unsqueeze(0)?.broadcast_as((k, b, d))?; // [k, b, d]
        let logvar = q.logvar().unsqueeze(0)?.broadcast_as((k, b, d))?; // [k, b, d]
        let z = eps
            .broadcast_mul(&q.std()?.unsqueeze(0)?)?
            .broadcast_add(q.mean())?
            .reshape((k * b, d))?; // [k·b, d]
        let q_rep = DiagonalGaussian::new(
            mean.contiguous()?.reshape((k * b, d))?,
            logvar.contiguous()?.reshape((k * b, d))?,
        )?;
        let mut rep = vec![k];
        rep.extend_from_slice(xs.dims());
        let mut flat = vec![k * b];
        flat.extend_from_slice(&xs.dims()[1..]);
        let xs_rep = xs
            .unsqueeze(0)?
            .broadcast_as(rep)?
            .contiguous()?
            .reshape(flat)?; // [k·b, c, h, w]
        let log_likelihood = |z: &Tensor, xs: &Tensor| {
            let decoded = self.decoder.forward_t(z, train)?; // [rows, c, h, w]
            let kind = self.decoder.output_kind();
            self.loss.log_likelihood(&decoded, xs, kind) // [rows]
        };
        let lpx = if train {
            log_likelihood(&z, &xs_rep)?
        } else {
            // Evaluation decodes a few thousand codes at once: in pieces on the CPU.
            super::chunks::by_rows(&z, Some(&xs_rep), |z, xs| match xs {
                Some(xs) => log_likelihood(z, xs),
                None => candle_core::bail!("importance weights: the images are missing"),
            })?
        }
        .reshape((k, b))?; // [k, b]
        let lpz = self.prior.log_prob(&z)?.reshape((k, b))?;
        let lqz = q_rep.log_prob(&z)?.reshape((k, b))?;
        Ok((lpx, lpz, lqz))
    }

    /// The IWAE objective of a batch with `k` samples per image: terms
    /// `iwae` (the negated bound), `reconstruction` and `kl` (single-sample
    /// estimates averaged over the `k` draws), reduced as configured.
    fn iwae_loss(
        &self,
        xs: &Tensor,
        targets: &Tensor,
        k: usize,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> Result<LossTerms> {
        let q = self.posterior(xs, train)?; // [b, d]
        let b = xs.dim(0)?;
        let eps = standard_normal((k, b, self.latent_dim()), rng, xs.device())?;
        let (lpx, lpz, lqz) = self.log_weight_parts(&q, targets, &eps, train)?; // [k, b] each
        let kl = lqz.sub(&lpz)?; // [k, b]
        let lw = lpx.sub(&kl.affine(self.beta.get(), 0.0)?)?; // [k, b]
        let m = lw.max_keepdim(0)?.detach(); // [1, b]
        let bound = lw
            .broadcast_sub(&m)?
            .exp()?
            .sum_keepdim(0)?
            .log()?
            .add(&m)?
            .squeeze(0)?
            .affine(1.0, -(k as f64).ln())?; // [b]
        let r = self.loss.reduction;
        let per = Per::from(r);
        let scale = 1.0 / k as f64;
        Ok(LossTerms {
            total: r.apply(&bound.neg()?)?,
            per,
            terms: vec![
                Term::new(
                    "reconstruction",
                    r.apply(&lpx.sum(0)?.affine(-scale, 0.0)?)?,
                    per,
                ),
                Term::new("kl", r.apply(&kl.sum(0)?.affine(scale, 0.0)?)?, per),
            ],
        })
    }

    /// The decoder's output (from [`VaeOutput::decoded`]) as pixels in `[0, 1]`.
    pub fn to_pixels(&self, decoded: &Tensor) -> Result<Tensor> {
        self.decoder.output_kind().to_pixels(decoded)
    }

    /// Decodes latent vectors `[n, latent]` to pixels in `[0, 1]` (evaluation mode).
    pub fn decode_pixels(&self, z: &Tensor) -> Result<Tensor> {
        super::chunks::by_rows(z, None, |z, _| {
            let out = self.decoder.forward_t(z, false)?;
            self.decoder.output_kind().to_pixels(&out)
        })
    }

    /// `n` images from the prior, as pixels `[n, c, h, w]` on `device`.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        let z = self.prior.sample(n, rng, device)?;
        self.decode_pixels(&z)
    }

    /// Reconstructions of `xs` through the posterior means, as pixels (evaluation mode).
    pub fn reconstruct(&self, xs: &Tensor) -> Result<Tensor> {
        super::chunks::by_rows(xs, None, |xs, _| {
            let q = self.posterior(xs, false)?;
            self.decode_pixels(q.mean())
        })
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
        recon.add(&kl.affine(self.beta.get(), 0.0)?)
    }
}

/// Refuses an empty batch before it reaches a kernel.
pub(crate) fn non_empty(xs: &Tensor) -> Result<()> {
    if xs.dims().first().is_none_or(|&b| b == 0) {
        candle_core::bail!("an empty batch {:?}: no image to work on", xs.dims());
    }
    Ok(())
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
    for (v, field) in [(latent, "latent_dim"), (condition, "classes")] {
        if v > crate::nets::MAX_WIDTH {
            return Err(Error::config(
                field,
                format!(
                    "{v} is more than the largest width vaekit accepts, {}",
                    crate::nets::MAX_WIDTH
                ),
            ));
        }
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
    check_same_shape(encoder_input, decoder_output)
}

/// The decoder must give back images of the shape the encoder takes.
pub(crate) fn check_same_shape(
    encoder_input: crate::nets::ImageShape,
    decoder_output: crate::nets::ImageShape,
) -> VResult<()> {
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
    /// reduced over the batch by the loss config's reduction; under
    /// [`Objective::Iwae`] the negated IWAE bound. The likelihood scores the
    /// batch's [`targets`](Batch::targets) (the clean images when the trainer
    /// corrupts the inputs).
    fn batch_loss(&self, batch: &Batch, rng: &mut dyn RngCore, mode: Mode) -> Result<LossTerms> {
        if let Objective::Iwae { samples } = self.loss.objective {
            return self.iwae_loss(
                &batch.images,
                batch.targets(),
                samples,
                rng,
                mode.is_train(),
            );
        }
        let out = self.forward_t(&batch.images, rng, mode.is_train())?;
        let elbo = self.loss(&out, batch.targets(), rng)?;
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

    /// `{"loss": …}`, as in the model config.
    fn loss_settings(&self) -> Option<String> {
        serde_json::to_string(&serde_json::json!({ "loss": self.loss })).ok()
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
