//! Binary cross-entropy, on logits and on probabilities.

use candle_core::{Result, Tensor};

use super::{same_shape, Reduction};

/// Binary cross-entropy between `sigmoid(logits)` and `target`, in the stable form
/// `max(l, 0) − l·t + ln(1 + e^{−|l|})`.
///
/// Finite for any finite logit (candle's own version takes `ln(sigmoid(l))`, which
/// is −∞ once the sigmoid saturates). Gradient `sigmoid(l) − t`. Equals PyTorch's
/// `binary_cross_entropy_with_logits` and TensorFlow's
/// `sigmoid_cross_entropy_with_logits`.
///
/// # Errors
///
/// If the shapes differ, or a target is outside `[0, 1]` or not a number (a
/// Bernoulli target out of range gives a meaningless, unbounded loss).
pub fn bce_with_logits(logits: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("bce_with_logits", logits, target)?;
    check_targets("bce_with_logits", target)?;
    let softplus_neg_abs = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?; // ln(1 + e^{−|l|})
    let loss = ((logits.relu()? - logits.mul(target)?)? + softplus_neg_abs)?;
    reduction.apply(&loss)
}

/// Smallest probability whose logarithm is taken: `ln` of it is ≈ −87.3 and
/// `1/it` is finite in `f32`, so the gradient stays finite. A subnormal
/// `0 < p < 1.2e-38` therefore gets `ln p ≈ −87.3` where PyTorch would take
/// `max(ln p, −100)`; `p = 0` gets PyTorch's −100 exactly.
const P_FLOOR: f64 = 1.175_494_4e-38;
/// PyTorch's clamp on the log terms of binary cross-entropy.
const LOG_CLAMP: f64 = -100.0;

/// `max(ln p, −100)`, with `ln 0 = −100` and a finite gradient everywhere.
fn clamped_log(p: &Tensor) -> Result<Tensor> {
    let positive = p.gt(0f64)?;
    let log = p.maximum(P_FLOOR)?.log()?;
    let floor = log.ones_like()?.affine(0.0, LOG_CLAMP)?;
    positive.where_cond(&log, &floor)?.maximum(LOG_CLAMP)
}

/// Binary cross-entropy between probabilities `probs` and `target`:
/// `−(t·ln p + (1 − t)·ln(1 − p))`, each log clamped at −100 as PyTorch's
/// `binary_cross_entropy` does, so `p = 0` or `p = 1` stays finite. Logs of
/// subnormal probabilities (below 1.2e-38) are taken at 1.2e-38, which keeps the
/// gradient finite in `f32`.
///
/// # Errors
///
/// If the shapes differ, or a target is outside `[0, 1]` or not a number.
pub fn bce(probs: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    same_shape("bce", probs, target)?;
    check_targets("bce", target)?;
    let log_p = clamped_log(probs)?;
    let log_1mp = clamped_log(&probs.affine(-1.0, 1.0)?)?;
    let one_minus_t = target.affine(-1.0, 1.0)?;
    let loss = (target.mul(&log_p)? + one_minus_t.mul(&log_1mp)?)?.neg()?;
    reduction.apply(&loss)
}

/// Checks that every target is in `[0, 1]`: two reductions over the batch and
/// one read-back, a few microseconds for a batch of digits.
fn check_targets(what: &str, target: &Tensor) -> Result<()> {
    if target.elem_count() == 0 {
        return Ok(());
    }
    let flat = target.flatten_all()?;
    let lo = flat
        .min(0)?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    let hi = flat
        .max(0)?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    // NaN fails both comparisons.
    if !(lo >= 0.0 && hi <= 1.0) {
        candle_core::bail!(
            "{what}: Bernoulli targets must be in [0, 1], these span [{lo}, {hi}] (scale images to [0, 1], or use a Gaussian likelihood)"
        );
    }
    Ok(())
}
