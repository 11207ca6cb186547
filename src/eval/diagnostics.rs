//! Latent diagnostics: the spread of the posterior means and the KL per
//! dimension over a dataset (active units, Burda et al. 2016), and traversals
//! that vary one latent dimension at a time around a code (Higgins et al. 2017).

use candle_core::{DType, Device, Tensor};

use super::LatentModel;
use crate::data::{Dataset, LastBatch, Shuffle};
use crate::models::Condition;
use crate::{Error, Result};

/// Burda et al.'s threshold: dimension `d` is active when
/// `Cov_x(E_q[z_d | x]) > 0.01`.
pub const ACTIVE_UNIT_THRESHOLD: f64 = 0.01;

/// Per-dimension statistics of a model's posteriors over a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentStatistics {
    /// `Var_x(E_q[z_d | x])` per dimension: the variance over the images of
    /// the posterior means (divided by the number of images).
    pub mean_variance: Vec<f64>,
    /// `E_x KL(q(z_d | x) ‖ p(z_d))` per dimension, nats, for a prior that
    /// factorises (the standard normal); `None` otherwise.
    pub kl_per_dim: Option<Vec<f64>>,
    /// Images seen.
    pub images: usize,
}

impl LatentStatistics {
    /// Dimensions whose [`mean_variance`](Self::mean_variance) exceeds
    /// `threshold` ([`ACTIVE_UNIT_THRESHOLD`] for Burda et al.'s count).
    pub fn active_units(&self, threshold: f64) -> usize {
        self.mean_variance
            .iter()
            .filter(|&&v| v > threshold)
            .count()
    }
}

/// [`LatentStatistics`] of `model` over `data`, in batches of `batch_size`,
/// accumulated in `f64`.
///
/// # Errors
///
/// [`Error::Data`] for an empty dataset, [`Error::Config`] for a zero batch
/// size; errors of the model.
pub fn latent_statistics<M: LatentModel + ?Sized>(
    model: &M,
    data: &Dataset,
    batch_size: usize,
    device: &Device,
) -> Result<LatentStatistics> {
    if batch_size == 0 {
        return Err(Error::config("batch_size", "must be positive"));
    }
    if data.is_empty() {
        return Err(Error::Data {
            path: "evaluation set".into(),
            reason: "holds no image".into(),
        });
    }
    let d = model.latent_dim();
    let (mut sum, mut sum_sq) = (vec![0f64; d], vec![0f64; d]);
    let mut kl: Option<Vec<f64>> = Some(vec![0f64; d]);
    let mut n = 0usize;
    for batch in data.batches(batch_size, Shuffle::None, LastBatch::Keep, device)? {
        let batch = batch?;
        let q = model.posterior_of(&batch.images)?;
        let means = q.mean().to_dtype(DType::F64)?.to_vec2::<f64>()?; // [b, d]
        for row in &means {
            for (j, &m) in row.iter().enumerate() {
                sum[j] += m;
                sum_sq[j] += m * m;
            }
        }
        n += means.len();
        match (model.kl_per_dim(&q)?, kl.as_mut()) {
            (Some(per_dim), Some(acc)) => {
                let per_dim = per_dim.to_dtype(DType::F64)?.sum(0)?.to_vec1::<f64>()?; // [d]
                for (a, v) in acc.iter_mut().zip(per_dim) {
                    *a += v;
                }
            }
            _ => kl = None,
        }
    }
    let nf = n.max(1) as f64;
    let mean_variance = sum
        .iter()
        .zip(&sum_sq)
        .map(|(s, ss)| (ss / nf - (s / nf).powi(2)).max(0.0))
        .collect();
    Ok(LatentStatistics {
        mean_variance,
        kl_per_dim: kl.map(|v| v.into_iter().map(|x| x / nf).collect()),
        images: n,
    })
}

/// A latent traversal: for each dimension `d` in turn, `code` `[latent]` with
/// `z_d` replaced by each of `values`, decoded to pixels — `[latent ·
/// values.len(), c, h, w]`, one row of `values.len()` images per dimension
/// (lay it out with `image_grid(…, values.len(), …)`). A conditioned model
/// decodes every image with `condition` (one class for all:
/// [`Condition::Class`]).
///
/// # Errors
///
/// [`Error::Config`] for no value or a code of the wrong width; errors of the
/// decoder.
pub fn latent_traversal<M: LatentModel + ?Sized>(
    model: &M,
    code: &[f32],
    values: &[f32],
    condition: Condition<'_>,
    device: &Device,
) -> Result<Tensor> {
    let d = model.latent_dim();
    if code.len() != d {
        return Err(Error::config(
            "code",
            format!("{} values for a {d}-dimensional latent space", code.len()),
        ));
    }
    if values.is_empty() {
        return Err(Error::config("values", "need at least one value"));
    }
    let mut rows = Vec::with_capacity(d * values.len() * d);
    for dim in 0..d {
        for &v in values {
            let mut z = code.to_vec();
            z[dim] = v;
            rows.extend(z);
        }
    }
    let z = Tensor::from_vec(rows, (d * values.len(), d), device)?; // [d·m, d]
    Ok(model.decode_pixels(&z, condition)?)
}
