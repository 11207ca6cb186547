//! The VAE objective: the pixel likelihood, the KL estimator, the ELBO or
//! IWAE bound, β and free bits ([`VaeLossConfig`]), as a VAE of any family
//! computes it from its posterior, prior and decoder output.

use candle_core::{Result, Tensor};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{bce, bce_with_logits, gaussian_nll, squared_error, Reduction};
use crate::latent::{
    log_sum_exp, single_sample_kl, single_sample_kl_per_dim, DiagonalGaussian, LatentPrior,
};
use crate::nets::OutputKind;
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
    pub(crate) fn to_pixels_for_likelihood(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            OutputKind::Logits => crate::kernels::sigmoid(xs),
            OutputKind::Probabilities | OutputKind::Linear => Ok(xs.clone()),
        }
    }
}

/// The importance-weighted bound of Burda et al. (2016) per image, `[b]`,
/// from log weights `[k, b]`: `log (1/k) Σ_j exp(lw_j)`, by log-sum-exp
/// around the (detached) largest weight.
pub fn importance_weighted_bound(log_weights: &Tensor) -> Result<Tensor> {
    let k = log_weights.dim(0)?;
    log_sum_exp(log_weights, 0)?.affine(1.0, -(k as f64).ln()) // [b]
}
