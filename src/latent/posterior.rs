//! How an encoder's output parameterises the diagonal-Gaussian posterior.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::DiagonalGaussian;
use crate::{Error, Result as VResult};

/// How the encoder's second half of outputs becomes a log-variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PosteriorParam {
    /// The outputs are the log-variance, clamped to `[−30, 20]` so `exp` stays
    /// finite (σ from 3e-7 to 2.2e4; the gradient is zero outside).
    LogVariance,
    /// The variance is `floor + exp(output)` (the digit-conditioned VAE
    /// tutorial's `1e-5 + exp(·)`), so it never falls below `floor`.
    ExpWithFloor {
        /// Smallest variance.
        floor: f64,
    },
}

/// Clamp on log-variances produced under [`PosteriorParam::LogVariance`].
const LOGVAR_RANGE: (f64, f64) = (-30.0, 20.0);

impl PosteriorParam {
    /// Checks the values; errors name the field `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a floor that is negative or not finite.
    pub fn validate(self, field: &str) -> VResult<()> {
        match self {
            PosteriorParam::ExpWithFloor { floor } if !(floor.is_finite() && floor >= 0.0) => {
                Err(Error::config(
                    format!("{field}.floor"),
                    format!("{floor} must be finite and ≥ 0"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The posterior from encoder output `[batch, 2·latent]`.
    pub fn posterior(self, params: &Tensor) -> Result<DiagonalGaussian> {
        let raw = DiagonalGaussian::from_params(params)?;
        let logvar = match self {
            PosteriorParam::LogVariance => raw.logvar().clamp(LOGVAR_RANGE.0, LOGVAR_RANGE.1)?,
            PosteriorParam::ExpWithFloor { floor } => {
                raw.logvar().exp()?.affine(1.0, floor)?.log()?
            }
        };
        DiagonalGaussian::new(raw.mean().clone(), logvar)
    }
}
