//! The VampPrior (Tomczak & Welling 2018): a mixture of the posteriors of `K`
//! learnable pseudo-inputs, `p(z) = (1/K) Σ_k q(z | u_k)`.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::mixture::{mixture_log_prob, mixture_sample};
use super::{DiagonalGaussian, LatentPrior, PosteriorParam};
use crate::nets::Encoder;
use crate::{Error, Result as VResult};

/// The VampPrior: the encoder's posteriors of `K` pseudo-inputs `u_k`, mixed with
/// equal weights.
///
/// The pseudo-inputs are images `[K, c, h, w]` (learnable when they are
/// variables) clamped to `[0, 1]` before they enter the encoder (the paper's
/// hard-tanh), and they go through the encoder in evaluation mode, so they never
/// move batch-norm running statistics. The encoder shares its weights with the
/// model's: gradients of `log p(z)` reach both the pseudo-inputs and the encoder.
///
/// It is a [`LatentPrior`] for any [`Encoder`]: its `Debug` output names the
/// encoder's type rather than printing it, so the encoder need not be `Debug`.
#[derive(Clone)]
pub struct VampPrior<E> {
    encoder: E,
    pseudo_inputs: Tensor,
    posterior: PosteriorParam,
    latent_dim: usize,
}

impl<E> std::fmt::Debug for VampPrior<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VampPrior")
            .field("encoder", &std::any::type_name::<E>())
            .field("pseudo_inputs", &self.pseudo_inputs.shape())
            .field("posterior", &self.posterior)
            .field("latent_dim", &self.latent_dim)
            .finish()
    }
}

impl<E: Encoder> VampPrior<E> {
    /// A VampPrior over `encoder`'s posterior, with `pseudo_inputs`
    /// `[K, c, h, w]` in the encoder's input shape.
    ///
    /// # Errors
    ///
    /// If the pseudo-inputs do not have the encoder's input shape, there are
    /// none, or the encoder's output width is odd.
    pub fn new(encoder: E, pseudo_inputs: Tensor, posterior: PosteriorParam) -> Result<Self> {
        let k = encoder
            .input_shape()
            .check_batch(&pseudo_inputs, "VampPrior pseudo-inputs")?;
        let out = encoder.output_dim();
        if k == 0 || out == 0 || !out.is_multiple_of(2) {
            candle_core::bail!(
                "VampPrior: need at least one pseudo-input and an encoder of output 2 × latent, got {k} and {out}"
            );
        }
        Ok(Self {
            encoder,
            pseudo_inputs,
            posterior,
            latent_dim: out / 2,
        })
    }

    /// Number of components (pseudo-inputs).
    pub fn components(&self) -> usize {
        self.pseudo_inputs.dims()[0]
    }

    /// The pseudo-inputs `[K, c, h, w]`, before clamping.
    pub fn pseudo_inputs(&self) -> &Tensor {
        &self.pseudo_inputs
    }

    /// The `K` component posteriors `q(z | u_k)`.
    pub fn component_posteriors(&self) -> Result<DiagonalGaussian> {
        let u = self.pseudo_inputs.clamp(0f32, 1f32)?; // [K, c, h, w]
        let params = self.encoder.forward_t(&u, false)?; // [K, 2·latent]
        self.posterior.posterior(&params)
    }
}

impl<E: Encoder> LatentPrior for VampPrior<E> {
    fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// `log (1/K) Σ_k q(z | u_k)`, by log-sum-exp.
    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let q = self.component_posteriors()?;
        mixture_log_prob(z, q.mean(), q.logvar())
    }

    fn sample(&self, n: usize, rng: &mut dyn RngCore, device: &Device) -> Result<Tensor> {
        let q = self.component_posteriors()?;
        mixture_sample(q.mean(), q.logvar(), n, rng, device)
    }
}

/// Settings of a VampPrior whose pseudo-inputs live in the model's parameters
/// (`prior.pseudo_inputs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VampConfig {
    /// Number of pseudo-inputs `K` (the paper uses 500 for MNIST).
    pub components: usize,
    /// The pseudo-inputs' pixels start as `N(init_mean, init_std²)` draws from
    /// the model's seeded generator (the paper: 0.05 and 0.01).
    pub init_mean: f64,
    /// See [`init_mean`](Self::init_mean).
    pub init_std: f64,
}

impl Default for VampConfig {
    fn default() -> Self {
        Self {
            components: 50,
            init_mean: 0.05,
            init_std: 0.01,
        }
    }
}

crate::setters::with_setters!(VampConfig {
    with_components(components: usize),
    with_init_mean(init_mean: f64),
    with_init_std(init_std: f64),
});

impl VampConfig {
    /// Checks the values; errors name the field under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for no component or initial values that are not finite.
    pub fn validate(&self, field: &str) -> VResult<()> {
        if self.components == 0 {
            return Err(Error::config(
                format!("{field}.components"),
                "must be positive",
            ));
        }
        if !self.init_mean.is_finite() {
            return Err(Error::config(
                format!("{field}.init_mean"),
                format!("{} must be finite", self.init_mean),
            ));
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(Error::config(
                format!("{field}.init_std"),
                format!("{} must be finite and ≥ 0", self.init_std),
            ));
        }
        Ok(())
    }
}

/// Builds a VampPrior over `encoder` (which should share the model's encoder
/// weights: build it a second time from the same [`VarBuilder`] path), creating
/// the pseudo-inputs in `vb`.
///
/// # Errors
///
/// [`Error::Config`] for settings that cannot work.
pub fn vamp_prior<E: Encoder>(
    encoder: E,
    config: &VampConfig,
    posterior: PosteriorParam,
    vb: VarBuilder,
) -> VResult<VampPrior<E>> {
    config.validate("prior")?;
    let s = encoder.input_shape();
    let init = if config.init_std == 0.0 {
        Init::Const(config.init_mean)
    } else {
        Init::Randn {
            mean: config.init_mean,
            stdev: config.init_std,
        }
    };
    let u = vb.get_with_hints_dtype(
        (config.components, s.channels, s.height, s.width),
        "pseudo_inputs",
        init,
        DType::F32,
    )?;
    Ok(VampPrior::new(encoder, u, posterior)?)
}
