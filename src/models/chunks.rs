//! Inference in pieces: a batch of a thousand images through a conv network
//! makes single activations of a hundred megabytes, too large for the system
//! allocator to keep (see [`memory`](crate::memory)) and for any cache.
//! Running such a batch a piece at a time keeps every buffer small and reused,
//! and gives the same images: evaluation-mode networks treat images
//! independently.

use candle_core::{Result, Tensor};

/// Rows per piece for inference on the CPU.
pub(crate) const CPU_ROWS: usize = 128;

/// `f` over the rows of `xs` (with the matching rows of `paired`, such as
/// labels or targets), at most [`CPU_ROWS`] at a time on the CPU and the
/// results concatenated; in one call on a GPU, which wants large batches.
pub(crate) fn by_rows(
    xs: &Tensor,
    paired: Option<&Tensor>,
    f: impl Fn(&Tensor, Option<&Tensor>) -> Result<Tensor>,
) -> Result<Tensor> {
    let rows = xs.dim(0)?;
    if !xs.device().is_cpu() || rows <= CPU_ROWS {
        return f(xs, paired);
    }
    let mut parts = Vec::with_capacity(rows.div_ceil(CPU_ROWS));
    for start in (0..rows).step_by(CPU_ROWS) {
        let len = CPU_ROWS.min(rows - start);
        let piece = xs.narrow(0, start, len)?;
        let piece_paired = paired.map(|p| p.narrow(0, start, len)).transpose()?;
        parts.push(f(&piece, piece_paired.as_ref())?);
    }
    Tensor::cat(&parts, 0)
}
