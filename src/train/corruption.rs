//! Input corruption for denoising autoencoders: the trainer corrupts a
//! batch's images and keeps the clean ones as the targets the loss scores.

use candle_core::{DType, Tensor};
use rand::{Rng, RngCore};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::data::Batch;
use crate::{Error, Result};

/// How the trainer corrupts training (and test) inputs; the loss still scores
/// the clean images ([`Batch::targets`]). Every draw comes from the run's
/// seeded generator, on the host, so runs are reproducible and resumable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Corruption {
    /// Additive Gaussian noise: `clamp(x + std · ε, 0, 1)`, `ε ~ N(0, 1)`.
    Gaussian {
        /// Standard deviation of the noise.
        std: f64,
    },
    /// Masking noise: each pixel set to 0 with probability `p`.
    Masking {
        /// Probability that a pixel is dropped.
        p: f64,
    },
    /// Salt-and-pepper noise: each pixel set to 0 with probability `p / 2`
    /// and to 1 with probability `p / 2`.
    SaltAndPepper {
        /// Probability that a pixel is replaced.
        p: f64,
    },
}

impl Corruption {
    /// Checks the values; errors name the field under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a negative or non-finite std, or a probability
    /// outside `[0, 1]`.
    pub fn validate(&self, field: &str) -> Result<()> {
        match *self {
            Corruption::Gaussian { std } if !(std.is_finite() && std >= 0.0) => Err(Error::config(
                format!("{field}.std"),
                format!("{std} must be finite and ≥ 0"),
            )),
            Corruption::Masking { p } | Corruption::SaltAndPepper { p }
                if !(0.0..=1.0).contains(&p) =>
            {
                Err(Error::config(
                    format!("{field}.p"),
                    format!("{p} must be a probability in [0, 1]"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Corrupted copies of `images` (any shape, pixels in `[0, 1]`), on the
    /// same device: one draw per pixel from `rng`, in row-major order.
    ///
    /// # Errors
    ///
    /// If the tensor cannot be read or written.
    pub fn apply(&self, images: &Tensor, rng: &mut dyn RngCore) -> candle_core::Result<Tensor> {
        let mut px = images
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        match *self {
            Corruption::Gaussian { std } => {
                for v in &mut px {
                    let e: f32 = StandardNormal.sample(&mut *rng);
                    *v = (*v + std as f32 * e).clamp(0.0, 1.0);
                }
            }
            Corruption::Masking { p } => {
                for v in &mut px {
                    if rng.random::<f64>() < p {
                        *v = 0.0;
                    }
                }
            }
            Corruption::SaltAndPepper { p } => {
                for v in &mut px {
                    let u = rng.random::<f64>();
                    if u < p / 2.0 {
                        *v = 0.0;
                    } else if u < p {
                        *v = 1.0;
                    }
                }
            }
        }
        Tensor::from_vec(px, images.shape(), images.device())?.to_dtype(images.dtype())
    }

    /// `batch` with its images corrupted and the clean images kept as its
    /// [`targets`](Batch::targets).
    ///
    /// # Errors
    ///
    /// As [`apply`](Self::apply).
    pub fn corrupt(&self, batch: Batch, rng: &mut dyn RngCore) -> candle_core::Result<Batch> {
        let noisy = self.apply(&batch.images, rng)?;
        let clean = batch.targets.clone().unwrap_or(batch.images);
        Ok(Batch {
            images: noisy,
            targets: Some(clean),
            ..batch
        })
    }
}
