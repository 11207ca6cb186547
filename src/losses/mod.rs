//! Loss functions, as free functions with a [`Reduction`], and the ELBO, which
//! keeps its terms apart.
//!
//! Every function takes tensors of the same shape `[batch, …]` and returns the
//! element-wise loss reduced as asked. Forms are the numerically stable ones:
//! binary cross-entropy on logits goes through softplus, on probabilities its
//! logarithms are clamped at −100 as PyTorch does.

mod bce;
mod cross_entropy;
mod elbo;
mod gaussian;
mod kl;
mod mse;
mod vae;

pub use crate::latent::log_normal_pdf;
pub use bce::{bce, bce_with_logits};
pub use cross_entropy::cross_entropy;
pub use elbo::{monte_carlo_elbo, Elbo};
pub use gaussian::gaussian_nll;
pub use kl::kl_standard_normal;
pub use mse::{mse, squared_error};
pub use vae::{importance_weighted_bound, KlEstimator, Likelihood, Objective, VaeLossConfig};

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// How an element-wise loss is reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reduction {
    /// Keep every element.
    None,
    /// Sum over everything (PyTorch's `reduction='sum'`).
    Sum,
    /// Mean over everything (PyTorch's `reduction='mean'`, Keras's `mse`).
    Mean,
    /// Sum over every dimension but the first, then mean over the first: the
    /// per-example total averaged over the batch, as the VAE tutorials report.
    #[default]
    BatchMean,
}

impl Reduction {
    /// Reduces the element-wise loss `xs`.
    pub fn apply(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Reduction::None => Ok(xs.clone()),
            Reduction::Sum => xs.sum_all(),
            Reduction::Mean => xs.mean_all(),
            Reduction::BatchMean => {
                let b = xs.dims().first().copied().unwrap_or(1).max(1);
                xs.sum_all()?.affine(1.0 / b as f64, 0.0)
            }
        }
    }
}

/// Checks two operands have the same shape, naming the loss in the error.
pub(crate) fn same_shape(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        candle_core::bail!("{what}: shapes differ, {:?} vs {:?}", a.dims(), b.dims());
    }
    Ok(())
}

/// Sums every dimension but the first: `[batch, …] → [batch]`.
pub(crate) fn sum_per_example(xs: &Tensor) -> Result<Tensor> {
    if xs.rank() <= 1 {
        return Ok(xs.clone());
    }
    xs.flatten_from(1)?.sum(1)
}
