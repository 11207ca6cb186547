//! Softmax cross-entropy for the digit classifier.

use candle_core::{DType, Result, Tensor, D};

use super::Reduction;

/// Cross-entropy of class `labels` `[batch]` (integer dtype) under
/// `softmax(logits)` `[batch, classes]`: `−ln softmax(l)[label]`, as `[batch]`
/// reduced ([`Reduction::Mean`] and [`Reduction::BatchMean`] agree here).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let (b, k) = logits.dims2()?;
    if labels.dims() != [b] {
        candle_core::bail!(
            "cross_entropy: labels {:?} must be [batch] for logits {:?}",
            labels.dims(),
            logits.dims()
        );
    }
    let labels = labels.to_dtype(DType::U32)?;
    let max = labels.max_all()?.to_scalar::<u32>()?;
    if b > 0 && max as usize >= k {
        candle_core::bail!("cross_entropy: label {max} out of range for {k} classes");
    }
    let log_sm = candle_nn::ops::log_softmax(logits, D::Minus1)?; // [b, k]
    let picked = log_sm.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?; // [b]
    reduction.apply(&picked.neg()?)
}
