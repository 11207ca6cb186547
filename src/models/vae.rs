//! The variational autoencoder, generic over encoder, decoder, prior and
//! conditioning.

use candle_core::{Device, Result, Tensor};
use rand::RngCore;

use super::conditioning::{
    class_vector, Condition, ConditionVectors, Conditioner, Conditioning, Unconditioned,
};
use super::parts::{check_vae_parts, non_empty};
use super::trainable::{LossTerms, Per, StepContext, Term, Trainable};
use crate::data::Batch;
use crate::latent::{standard_normal, DiagonalGaussian, LatentPrior, PosteriorParam};
use crate::losses::{importance_weighted_bound, Elbo, Objective, VaeLossConfig};
use crate::nets::{Decoder, Encoder};
use crate::params::ParamStore;
use crate::{Error, Result as VResult};

/// What a VAE's forward pass returns.
#[derive(Debug, Clone)]
pub struct VaeOutput {
    /// The posterior `q(z | x)`.
    pub posterior: DiagonalGaussian,
    /// The noise used, `[batch, latent]`.
    pub eps: Tensor,
    /// The latent sample `mean + eps · std`, `[batch, latent]`.
    pub z: Tensor,
    /// What the decoder saw after `z`, for a conditioned VAE.
    pub condition: Option<ConditionVectors>,
    /// The decoder's output `[batch, c, h, w]` (see [`Decoder::output_kind`]).
    pub decoded: Tensor,
}

/// A variational autoencoder: `x → q(z|x) → z → p(x|z, c)`, with prior `p(z)`
/// and an optional condition `c` beside `z`.
///
/// Generic over its parts, so any [`Encoder`] pairs with any [`Decoder`],
/// [`LatentPrior`] and [`Conditioner`]; the encoder's output is
/// `[mean | raw log-variance]`. The conditioning is [`Unconditioned`] unless
/// the VAE is built with [`Vae::conditioned`]: with a
/// [`ClassConditioning`](super::ClassConditioning) it is the
/// digit-conditioned VAE of the tutorial, and keeps everything a VAE has
/// (any prior, the IWAE bound, free bits, β schedules, importance-sampled
/// likelihood, traversals).
#[derive(Debug, Clone)]
pub struct Vae<E, D, P, C = Unconditioned> {
    params: ParamStore,
    encoder: E,
    decoder: D,
    prior: P,
    conditioner: C,
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
    /// As [`Vae::conditioned`].
    pub fn new(
        params: &ParamStore,
        encoder: E,
        decoder: D,
        prior: P,
        posterior: PosteriorParam,
        loss: VaeLossConfig,
    ) -> VResult<Self> {
        Vae::conditioned(
            params,
            encoder,
            decoder,
            prior,
            Unconditioned,
            posterior,
            loss,
        )
    }
}

impl<E: Encoder, D: Decoder, P: LatentPrior, C: Conditioner> Vae<E, D, P, C> {
    /// A VAE whose decoder sees `[z | condition]`, the condition given by
    /// `conditioner` (e.g. [`ClassConditioning`](super::ClassConditioning)).
    ///
    /// ```
    /// use vaekit::prelude::*;
    /// use vaekit::models::ClassConditioning;
    ///
    /// let params = ParamStore::new(&Device::Cpu);
    /// let vb = params.var_builder(0);
    /// let encoder = DenseEncoder::new(&DenseEncoderConfig::new(ImageShape::MNIST, &[64], 2 * 4), vb.pp("encoder"))?;
    /// // The decoder takes z (4 values) and the one-hot label (10).
    /// let decoder = DenseDecoder::new(&DenseDecoderConfig::new(4 + 10, &[64], ImageShape::MNIST), vb.pp("decoder"))?;
    /// let cvae = Vae::conditioned(
    ///     &params, encoder, decoder, StandardNormal::new(4),
    ///     ClassConditioning::<vaekit::nets::Mlp>::given(10)?,
    ///     PosteriorParam::LogVariance, VaeLossConfig::default(),
    /// )?;
    /// assert_eq!(cvae.classes(), Some(10));
    /// # Ok::<(), vaekit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the widths disagree (encoder output ≠ 2 × prior
    /// width, decoder input ≠ prior width + condition width), the image shapes
    /// differ, the latent width is zero, free bits are asked of a prior that
    /// does not factorise over the dimensions, or the posterior or loss
    /// settings cannot work with the decoder.
    pub fn conditioned(
        params: &ParamStore,
        encoder: E,
        decoder: D,
        prior: P,
        conditioner: C,
        posterior: PosteriorParam,
        loss: VaeLossConfig,
    ) -> VResult<Self> {
        check_vae_parts(
            encoder.output_dim(),
            encoder.input_shape(),
            decoder.input_dim(),
            decoder.output_shape(),
            prior.latent_dim(),
            conditioner.width(),
        )?;
        posterior.validate("posterior")?;
        loss.validate("loss", decoder.output_kind())?;
        loss.check_groups("loss", prior.latent_dim())?;
        if loss.free_bits.is_some() && !prior.factorises() {
            return Err(Error::config(
                "loss.free_bits",
                "free bits need a KL per latent dimension, which only a prior that factorises over the dimensions (the standard normal) has",
            ));
        }
        Ok(Self {
            params: params.clone(),
            encoder,
            decoder,
            prior,
            conditioner,
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

    /// The conditioning.
    pub fn conditioner(&self) -> &C {
        &self.conditioner
    }

    /// The loss settings, with the configured β (a β schedule passes its own
    /// through [`StepContext::beta`]).
    pub fn loss_config(&self) -> &VaeLossConfig {
        &self.loss
    }

    /// Width of the latent space.
    pub fn latent_dim(&self) -> usize {
        self.prior.latent_dim()
    }

    /// The number of classes, for a class-conditioned VAE.
    pub fn classes(&self) -> Option<usize> {
        self.conditioner.classes()
    }

    /// Where a class-conditioned VAE's class vector comes from.
    pub fn conditioning(&self) -> Option<Conditioning> {
        self.conditioner.source()
    }

    /// The one-hot class vector of `class`, as the decoder takes it after `z`
    /// (for [`manifold`](crate::pictures::manifold) and
    /// [`interpolation_strip`](crate::pictures::interpolation_strip)).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the VAE is not class-conditioned, or `class` is
    /// not one of its classes.
    pub fn class_vector(&self, class: u32) -> VResult<Vec<f32>> {
        let classes = self
            .classes()
            .ok_or_else(|| Error::config("class", "this VAE is not conditioned on a class"))?;
        class_vector(class, classes)
    }

    /// Classifier logits `[b, classes]` for images `xs` (evaluation mode),
    /// for a VAE whose conditioning predicts the class; `None` otherwise.
    pub fn classify(&self, xs: &Tensor) -> Result<Option<Tensor>> {
        if self.conditioning() != Some(Conditioning::Predicted) {
            return Ok(None);
        }
        Ok(self
            .condition_vectors(Some(xs), Condition::None, xs.dim(0)?)?
            .and_then(|c| c.logits))
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

    /// The condition vectors of `rows` rows: predicted from `images` where the
    /// conditioner does so, otherwise from `condition`.
    pub(crate) fn condition_vectors(
        &self,
        images: Option<&Tensor>,
        condition: Condition<'_>,
        rows: usize,
    ) -> Result<Option<ConditionVectors>> {
        self.conditioner.vectors(
            images,
            condition,
            rows,
            self.params.dtype(),
            self.params.device(),
        )
    }

    /// The decoder's output for codes `z` `[n, latent]` and their condition
    /// vectors `[n, width]`, if any.
    fn decode_t(&self, z: &Tensor, condition: Option<&Tensor>, train: bool) -> Result<Tensor> {
        match condition {
            Some(c) => self.decoder.forward_t(&Tensor::cat(&[z, c], 1)?, train),
            None => self.decoder.forward_t(z, train),
        }
    }

    /// The forward pass with given noise `eps` `[b, latent]`; `condition` is
    /// what a conditioned VAE's decoder sees when it does not predict it
    /// from the images.
    pub fn forward_with_eps(
        &self,
        xs: &Tensor,
        condition: Condition<'_>,
        eps: &Tensor,
        train: bool,
    ) -> Result<VaeOutput> {
        let posterior = self.posterior(xs, train)?;
        let z = posterior.sample_with(eps)?; // [b, latent]
        let vectors = self.condition_vectors(Some(xs), condition, xs.dim(0)?)?; // [b, width]
        let decoded = self.decode_t(&z, vectors.as_ref().map(|c| &c.vectors), train)?; // [b, c, h, w]
        Ok(VaeOutput {
            posterior,
            eps: eps.clone(),
            z,
            condition: vectors,
            decoded,
        })
    }

    /// The forward pass, drawing the noise from `rng`.
    pub fn forward_t(
        &self,
        xs: &Tensor,
        condition: Condition<'_>,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> Result<VaeOutput> {
        let b = xs.dim(0)?;
        let eps = standard_normal((b, self.latent_dim()), rng, xs.device())?;
        self.forward_with_eps(xs, condition, &eps, train)
    }

    /// The ELBO part of the loss of `out` against `targets`, terms kept
    /// apart, with KL weight `beta`: `reconstruction + β · kl`, or the free-bits
    /// form of [`VaeLossConfig::free_bits`]. A conditioning's own term (the
    /// classifier's cross-entropy) is not in it: [`loss_terms`](Self::loss_terms)
    /// adds it.
    pub fn loss(
        &self,
        out: &VaeOutput,
        targets: &Tensor,
        rng: &mut dyn RngCore,
        beta: f64,
    ) -> Result<Elbo> {
        let recon = self
            .loss
            .reconstruction(&out.decoded, targets, self.decoder.output_kind())?; // [b]
        let kl = self
            .loss
            .kl_per_example(&self.prior, &out.posterior, &out.z, rng)?; // [b]
        let r = self.loss.reduction;
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

    /// The whole loss of `out` against `targets` as named terms, with the β of
    /// `ctx`: `reconstruction` and `kl` (before β), each reduced over the
    /// batch by the loss config's reduction, and the conditioning's term
    /// (`classification`, scored against `labels`) where it has one.
    pub fn loss_terms(
        &self,
        out: &VaeOutput,
        targets: &Tensor,
        labels: Option<&Tensor>,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> Result<LossTerms> {
        let elbo = self.loss(out, targets, rng, ctx.beta_or(self.loss.beta))?;
        let per = Per::from(self.loss.reduction);
        let terms = LossTerms {
            total: elbo.total,
            per,
            terms: vec![
                Term::new("reconstruction", elbo.reconstruction, per),
                Term::new("kl", elbo.kl, per),
            ],
        };
        self.with_condition_term(terms, out.condition.as_ref(), labels)
    }

    /// `terms` with the conditioning's own term added to the total and the
    /// list, where it has one.
    fn with_condition_term(
        &self,
        mut terms: LossTerms,
        vectors: Option<&ConditionVectors>,
        labels: Option<&Tensor>,
    ) -> Result<LossTerms> {
        if let Some(vectors) = vectors {
            if let Some((term, weight)) = self.conditioner.loss_term(vectors, labels)? {
                terms.total = terms.total.add(&term.value.affine(weight, 0.0)?)?;
                terms.terms.push(term);
            }
        }
        Ok(terms)
    }

    /// The log importance weights `log p(x|z_j) + log p(z_j) − log q(z_j|x)`
    /// of `k` draws per image with given noise `eps` `[k, b, latent]`
    /// (`z_j = mean + eps_j · std`), as `[k, b]`, with training or evaluation
    /// behaviour. Their log-mean-exp over `k` is the importance-sampled
    /// estimate of `log p(x)` (of `log p(x | c)` for a conditioned VAE);
    /// their mean the Monte Carlo ELBO.
    ///
    /// # Shapes
    ///
    /// `xs`: `[b, c, h, w]`; `eps`: `[k, b, latent]`; returns `[k, b]`.
    pub fn log_weights_with_eps(
        &self,
        xs: &Tensor,
        condition: Condition<'_>,
        eps: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let q = self.posterior(xs, train)?; // [b, d]
        let vectors = self.condition_vectors(Some(xs), condition, xs.dim(0)?)?;
        let (lpx, lpz, lqz) =
            self.log_weight_parts(&q, xs, vectors.as_ref().map(|c| &c.vectors), eps, train)?;
        lpx.add(&lpz)?.sub(&lqz)
    }

    /// `log p(x|z, c)`, `log p(z)` and `log q(z|x)`, each `[k, b]`, at
    /// `z = mean + eps · std` for noise `eps` `[k, b, d]`, the decoder seeing
    /// the condition vectors `[b, width]` after each `z`.
    pub(crate) fn log_weight_parts(
        &self,
        q: &DiagonalGaussian,
        xs: &Tensor,
        condition: Option<&Tensor>,
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
        let xs_rep = repeat_rows(xs, k)?; // [k·b, c, h, w]
        let c_rep = condition.map(|c| repeat_rows(c, k)).transpose()?; // [k·b, width]
        let log_likelihood = |z: &Tensor, xs: &Tensor, c: Option<&Tensor>| {
            let decoded = self.decode_t(z, c, train)?; // [rows, c, h, w]
            let kind = self.decoder.output_kind();
            self.loss.log_likelihood(&decoded, xs, kind) // [rows]
        };
        let lpx = if train {
            log_likelihood(&z, &xs_rep, c_rep.as_ref())?
        } else {
            // Evaluation decodes a few thousand codes at once: in pieces on the CPU.
            let zc = match &c_rep {
                Some(c) => Tensor::cat(&[&z, c], 1)?,
                None => z.clone(),
            };
            super::chunks::by_rows(&zc, Some(&xs_rep), |zc, xs| match xs {
                Some(xs) => {
                    let decoded = self.decoder.forward_t(zc, false)?;
                    self.loss
                        .log_likelihood(&decoded, xs, self.decoder.output_kind())
                }
                None => candle_core::bail!("importance weights: the images are missing"),
            })?
        }
        .reshape((k, b))?; // [k, b]
        let lpz = self.prior.log_prob(&z)?.reshape((k, b))?;
        let lqz = q_rep.log_prob(&z)?.reshape((k, b))?;
        Ok((lpx, lpz, lqz))
    }

    /// The IWAE objective of a batch with `k` samples per image: terms
    /// `reconstruction` and `kl` (single-sample estimates averaged over the
    /// `k` draws), reduced as configured, and the conditioning's term; with
    /// the condition vectors the decoder saw.
    fn iwae_loss(
        &self,
        batch: &Batch,
        labels: Option<&Tensor>,
        k: usize,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> Result<(LossTerms, Option<ConditionVectors>)> {
        let (xs, targets) = (&batch.images, batch.targets());
        let train = ctx.mode.is_train();
        let q = self.posterior(xs, train)?; // [b, d]
        let b = xs.dim(0)?;
        let condition = labels.map_or(Condition::None, Condition::Labels);
        let vectors = self.condition_vectors(Some(xs), condition, b)?;
        let eps = standard_normal((k, b, self.latent_dim()), rng, xs.device())?;
        let (lpx, lpz, lqz) = self.log_weight_parts(
            &q,
            targets,
            vectors.as_ref().map(|c| &c.vectors),
            &eps,
            train,
        )?; // [k, b] each
        let kl = lqz.sub(&lpz)?; // [k, b]
        let lw = lpx.sub(&kl.affine(ctx.beta_or(self.loss.beta), 0.0)?)?; // [k, b]
        let bound = importance_weighted_bound(&lw)?; // [b]
        let r = self.loss.reduction;
        let per = Per::from(r);
        let scale = 1.0 / k as f64;
        let terms = LossTerms {
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
        };
        let terms = self.with_condition_term(terms, vectors.as_ref(), labels)?;
        Ok((terms, vectors))
    }

    /// The decoder's output (from [`VaeOutput::decoded`]) as pixels in `[0, 1]`.
    pub fn to_pixels(&self, decoded: &Tensor) -> Result<Tensor> {
        self.decoder.output_kind().to_pixels(decoded)
    }

    /// Decodes latent vectors `[n, latent]` to pixels in `[0, 1]` (evaluation
    /// mode); a conditioned VAE's decoder sees `condition`.
    pub fn decode_pixels(&self, z: &Tensor, condition: Condition<'_>) -> Result<Tensor> {
        let labels = match condition {
            Condition::Labels(l) => Some(l),
            _ => None,
        };
        super::chunks::by_rows(z, labels, |z, labels| {
            let condition = labels.map_or(condition, Condition::Labels);
            let vectors = self.condition_vectors(None, condition, z.dim(0)?)?;
            let out = self.decode_t(z, vectors.as_ref().map(|c| &c.vectors), false)?;
            self.decoder.output_kind().to_pixels(&out)
        })
    }

    /// `n` images from the prior, as pixels `[n, c, h, w]` on `device`; a
    /// class-conditioned VAE cycles through its classes.
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        let z = self.prior.sample(n, rng, device)?;
        match self.classes() {
            Some(k) => {
                let classes: Vec<u32> = (0..n).map(|i| (i % k) as u32).collect();
                let labels = Tensor::from_vec(classes, n, device)?;
                self.decode_pixels(&z, Condition::Labels(&labels))
            }
            None => self.decode_pixels(&z, Condition::None),
        }
    }

    /// A grid of generated images of a class-conditioned VAE: row `r` uses
    /// the `r`-th of `rows` prior draws, column `k` is class `k`. Returns
    /// pixels `[rows · classes, c, h, w]`, row-major.
    ///
    /// # Errors
    ///
    /// If the VAE is not class-conditioned.
    pub fn generate_grid(
        &self,
        rows: usize,
        rng: &mut dyn RngCore,
        device: &Device,
    ) -> Result<Tensor> {
        let Some(k) = self.classes() else {
            candle_core::bail!("a grid of classes needs a class-conditioned VAE")
        };
        let z = self.prior.sample(rows, rng, device)?; // [rows, latent]
        let z = z
            .unsqueeze(1)?
            .repeat((1, k, 1))?
            .reshape((rows * k, self.latent_dim()))?; // [rows·k, latent]
        let digits: Vec<u32> = (0..rows).flat_map(|_| 0..k as u32).collect();
        let digits = Tensor::from_vec(digits, rows * k, device)?;
        self.decode_pixels(&z, Condition::Labels(&digits))
    }

    /// Reconstructions of `xs` through the posterior means, as pixels
    /// (evaluation mode); a conditioned VAE's decoder sees `condition` where
    /// it does not predict it from the images.
    pub fn reconstruct(&self, xs: &Tensor, condition: Condition<'_>) -> Result<Tensor> {
        let labels = match condition {
            Condition::Labels(l) => Some(l),
            _ => None,
        };
        super::chunks::by_rows(xs, labels, |xs, labels| {
            let condition = labels.map_or(condition, Condition::Labels);
            let q = self.posterior(xs, false)?;
            let vectors = self.condition_vectors(Some(xs), condition, xs.dim(0)?)?;
            let out = self.decode_t(q.mean(), vectors.as_ref().map(|c| &c.vectors), false)?;
            self.decoder.output_kind().to_pixels(&out)
        })
    }

    /// Per-example `−ELBO` in evaluation mode, `[batch]`, with a fresh `z` and
    /// the configured β.
    pub fn negative_elbo(
        &self,
        xs: &Tensor,
        condition: Condition<'_>,
        rng: &mut dyn RngCore,
    ) -> Result<Tensor> {
        let out = self.forward_t(xs, condition, rng, false)?;
        let recon = self
            .loss
            .reconstruction(&out.decoded, xs, self.decoder.output_kind())?;
        let kl = self
            .loss
            .kl_per_example(&self.prior, &out.posterior, &out.z, rng)?;
        recon.add(&kl.affine(self.loss.beta, 0.0)?)
    }

    /// The loss of `batch` (and, when `metrics`, the conditioning's metrics).
    fn terms_of(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
        metrics: bool,
    ) -> Result<LossTerms> {
        let labels = if self.conditioner.needs_labels() {
            Some(batch.require_labels("a class-conditioned VAE")?)
        } else {
            batch.labels.as_ref()
        };
        let (mut terms, vectors) = match self.loss.objective {
            Objective::Iwae { samples } => self.iwae_loss(batch, labels, samples, rng, ctx)?,
            _ => {
                let condition = labels.map_or(Condition::None, Condition::Labels);
                let out = self.forward_t(&batch.images, condition, rng, ctx.mode.is_train())?;
                let terms = self.loss_terms(&out, batch.targets(), labels, rng, ctx)?;
                (terms, out.condition)
            }
        };
        if let (true, Some(vectors)) = (metrics, &vectors) {
            terms
                .terms
                .extend(self.conditioner.metrics(vectors, labels)?);
        }
        Ok(terms)
    }
}

/// `xs` `[b, …]` repeated `k` times along a new first axis and flattened to
/// `[k·b, …]`.
fn repeat_rows(xs: &Tensor, k: usize) -> Result<Tensor> {
    let mut rep = vec![k];
    rep.extend_from_slice(xs.dims());
    let mut flat = vec![k * xs.dim(0)?];
    flat.extend_from_slice(&xs.dims()[1..]);
    xs.unsqueeze(0)?
        .broadcast_as(rep)?
        .contiguous()?
        .reshape(flat)
}

impl<E: Encoder, D: Decoder, P: LatentPrior, C: Conditioner> Trainable for Vae<E, D, P, C> {
    fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The negative ELBO: terms `reconstruction` and `kl` (before β), each
    /// reduced over the batch by the loss config's reduction; under
    /// [`Objective::Iwae`] the negated IWAE bound; plus the conditioning's
    /// term (`classification`). The likelihood scores the batch's
    /// [`targets`](Batch::targets) (the clean images when the trainer
    /// corrupts the inputs). A class-conditioned VAE needs the batch's labels.
    fn batch_loss(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> Result<LossTerms> {
        self.terms_of(batch, rng, ctx, false)
    }

    /// The loss and, with a classifier, `accuracy`: the share of images whose
    /// most likely class is their label.
    fn evaluate(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> Result<LossTerms> {
        self.terms_of(batch, rng, ctx, true)
    }

    fn needs_labels(&self) -> bool {
        self.conditioner.needs_labels()
    }

    /// `{"loss": …}`, as in the model config.
    fn loss_settings(&self) -> Option<String> {
        serde_json::to_string(&serde_json::json!({ "loss": self.loss })).ok()
    }

    fn beta(&self) -> Option<f64> {
        Some(self.loss.beta)
    }
}
