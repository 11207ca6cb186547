//! Squared-error losses.

use candle_core::{Result, Tensor};

use super::{same_shape, Reduction};

/// Mean squared error: `(input − target)²`, reduced (use [`Reduction::Mean`] for
/// PyTorch's `mse_loss` and Keras's `mse`, [`Reduction::Sum`] for the sum).
pub fn mse(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("mse", input, target)?;
    reduction.apply(&input.sub(target)?.sqr()?)
}

/// Scaled squared error `scale · (input − target)²`, reduced; with `scale = ½` and
/// [`Reduction::BatchMean`] this is the dense VAE tutorial's `0.5·Σ(x̂ − x)²`.
pub fn squared_error(
    input: &Tensor,
    target: &Tensor,
    scale: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    same_shape("squared_error", input, target)?;
    reduction.apply(&input.sub(target)?.sqr()?.affine(scale, 0.0)?)
}
