//! Gaussian noise drawn from a caller's generator.

use candle_core::{Device, Result, Shape, Tensor};
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};

/// A tensor of `N(0, 1)` draws of `shape` on `device`, from `rng`.
///
/// The values are drawn on the host in row-major order and copied to the device,
/// so the same generator state gives the same tensor on the CPU and on CUDA.
pub fn standard_normal(
    shape: impl Into<Shape>,
    rng: &mut dyn RngCore,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| StandardNormal.sample(&mut *rng))
        .collect();
    Tensor::from_vec(data, shape, device)
}
