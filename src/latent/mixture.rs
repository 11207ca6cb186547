//! A mixture of diagonal Gaussians as a prior; its KL to a Gaussian posterior has
//! no closed form, so it is estimated by Monte Carlo.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use super::density::{log_sum_exp, LN_2PI};
use super::{noise::standard_normal, LatentPrior};
use crate::{Error, Result as VResult};

/// `log (1/K) Σ_k N(z; means_k, diag(exp(logvars_k)))` for each row of `z`
/// `[b, d]`, by log-sum-exp over the `K` components (`means`, `logvars`:
/// `[K, d]`). Returns `[b]`. Gradients flow to `z`, `means` and `logvars`.
pub fn mixture_log_prob(z: &Tensor, means: &Tensor, logvars: &Tensor) -> Result<Tensor> {
    let (_, d) = z.dims2()?;
    let (k, dm) = means.dims2()?;
    if dm != d || logvars.dims() != means.dims() {
        candle_core::bail!(
            "mixture: z {:?}, means {:?} and logvars {:?} must be [batch, d], [K, d], [K, d]",
            z.dims(),
            means.dims(),
            logvars.dims()
        );
    }
    let diff = z
        .unsqueeze(1)? // [b, 1, d]
        .broadcast_sub(&means.unsqueeze(0)?)?; // [b, K, d]
    let inv_var = logvars.neg()?.exp()?.unsqueeze(0)?; // [1, K, d]
    let maha = diff.sqr()?.broadcast_mul(&inv_var)?.sum(D::Minus1)?; // [b, K]
    let log_det = logvars.sum(D::Minus1)?.unsqueeze(0)?; // [1, K]
    let comp = maha
        .broadcast_add(&log_det)?
        .affine(-0.5, -0.5 * d as f64 * LN_2PI)?; // [b, K]
    log_sum_exp(&comp, 1)?.affine(1.0, -(k as f64).ln()) // [b]
}

/// `n` draws from the equal-weight mixture of `N(means_k, diag(exp(logvars_k)))`:
/// a component index, then Gaussian noise, both from `rng`.
pub(crate) fn mixture_sample(
    means: &Tensor,
    logvars: &Tensor,
    n: usize,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    let (k, d) = means.dims2()?;
    let idx: Vec<u32> = (0..n).map(|_| rng.random_range(0..k as u32)).collect();
    let idx = Tensor::from_vec(idx, n, device)?;
    let mu = means
        .to_device(device)?
        .contiguous()?
        .index_select(&idx, 0)?; // [n, d]
    let std = logvars
        .to_device(device)?
        .contiguous()?
        .index_select(&idx, 0)?
        .affine(0.5, 0.0)?
        .exp()?; // [n, d]
    let eps = standard_normal((n, d), rng, device)?;
    mu.add(&eps.mul(&std)?)
}

/// An equal-weight mixture of `K` diagonal Gaussians `N(means_k, diag(exp(logvars_k)))`.
///
/// Built from tensors ([`new`](Self::new), [`from_tensors`](Self::from_tensors))
/// or, with weights in a model's parameters, from a [`MixtureConfig`]
/// ([`gaussian_mixture_prior`]).
#[derive(Debug, Clone)]
pub struct GaussianMixturePrior {
    means: Tensor,
    logvars: Tensor,
}

impl GaussianMixturePrior {
    /// A mixture with component means `centres` `[k, latent]` and one shared
    /// standard deviation `sigma`.
    ///
    /// # Errors
    ///
    /// If `centres` is not `[k, latent]` with `k ≥ 1`, or `sigma` is not positive.
    pub fn new(centres: Tensor, sigma: f64) -> Result<Self> {
        if !(sigma.is_finite() && sigma > 0.0) {
            candle_core::bail!("mixture prior: sigma {sigma} must be positive");
        }
        let logvars = centres.ones_like()?.affine(2.0 * sigma.ln(), 0.0)?;
        Self::from_tensors(centres, logvars)
    }

    /// A mixture with means `[k, latent]` and log-variances `[k, latent]`
    /// (variables, for a learnable prior, or plain tensors).
    ///
    /// # Errors
    ///
    /// If the shapes are not both `[k ≥ 1, latent ≥ 1]`.
    pub fn from_tensors(means: Tensor, logvars: Tensor) -> Result<Self> {
        let (k, d) = means.dims2()?;
        if k == 0 || d == 0 || logvars.dims() != means.dims() {
            candle_core::bail!(
                "mixture prior: means {:?} and logvars {:?} must both be [k ≥ 1, latent ≥ 1]",
                means.dims(),
                logvars.dims()
            );
        }
        Ok(Self { means, logvars })
    }

    /// Number of components.
    pub fn components(&self) -> usize {
        self.means.dims()[0]
    }

    /// The component means `[k, latent]`.
    pub fn means(&self) -> &Tensor {
        &self.means
    }

    /// The component log-variances `[k, latent]`.
    pub fn logvars(&self) -> &Tensor {
        &self.logvars
    }
}

impl LatentPrior for GaussianMixturePrior {
    fn latent_dim(&self) -> usize {
        self.means.dims()[1]
    }

    /// `log (1/K) Σ_k N(z; mean_k, diag(exp(logvar_k)))`, by log-sum-exp.
    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        mixture_log_prob(z, &self.means, &self.logvars)
    }

    fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        mixture_sample(&self.means, &self.logvars, n, rng, device)
    }
}

/// Settings of a Gaussian-mixture prior whose means and variances live in the
/// model's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MixtureConfig {
    /// Number of components `K`.
    pub components: usize,
    /// The initial means are drawn from `N(0, spread²)`, from the model's seeded
    /// generator.
    pub spread: f64,
    /// Initial standard deviation of every component.
    pub sigma: f64,
    /// Whether training moves the means (`prior.means`); otherwise they are a
    /// fixed buffer (`prior.fixed_means`), saved with the model.
    pub learn_means: bool,
    /// Whether training moves the log-variances (`prior.logvars`); otherwise
    /// they are a fixed buffer (`prior.fixed_logvars`).
    pub learn_variances: bool,
}

impl Default for MixtureConfig {
    fn default() -> Self {
        Self {
            components: 10,
            spread: 1.0,
            sigma: 1.0,
            learn_means: true,
            learn_variances: true,
        }
    }
}

crate::setters::with_setters!(MixtureConfig {
    with_components(components: usize),
    with_spread(spread: f64),
    with_sigma(sigma: f64),
    with_learn_means(learn_means: bool),
    with_learn_variances(learn_variances: bool),
});

impl MixtureConfig {
    /// Checks the values; errors name the field under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no component, or a spread or σ that is not
    /// positive and finite.
    pub fn validate(&self, field: &str) -> VResult<()> {
        if self.components == 0 {
            return Err(Error::config(
                format!("{field}.components"),
                "must be positive",
            ));
        }
        for (name, v) in [("spread", self.spread), ("sigma", self.sigma)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(
                    format!("{field}.{name}"),
                    format!("{v} must be positive and finite"),
                ));
            }
        }
        Ok(())
    }
}

/// Builds a Gaussian-mixture prior over `latent_dim`-wide codes whose tensors
/// are created in `vb`: `means` / `fixed_means` and `logvars` / `fixed_logvars`
/// (see [`MixtureConfig`]). A name starting with `fixed_` is a buffer: saved,
/// loaded, never trained.
///
/// # Errors
///
/// [`Error::Config`] for settings that cannot work.
pub fn gaussian_mixture_prior(
    latent_dim: usize,
    config: &MixtureConfig,
    vb: VarBuilder,
) -> VResult<GaussianMixturePrior> {
    config.validate("prior")?;
    if latent_dim == 0 {
        return Err(Error::config("latent_dim", "must be positive"));
    }
    let shape = (config.components, latent_dim);
    let means_name = if config.learn_means {
        "means"
    } else {
        "fixed_means"
    };
    let logvars_name = if config.learn_variances {
        "logvars"
    } else {
        "fixed_logvars"
    };
    let means = vb.get_with_hints_dtype(
        shape,
        means_name,
        Init::Randn {
            mean: 0.0,
            stdev: config.spread,
        },
        DType::F32,
    )?;
    let logvars = vb.get_with_hints_dtype(
        shape,
        logvars_name,
        Init::Const(2.0 * config.sigma.ln()),
        DType::F32,
    )?;
    Ok(GaussianMixturePrior::from_tensors(means, logvars)?)
}
