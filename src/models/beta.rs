//! [`BetaCell`]: the KL weight a model holds, which a β schedule changes
//! between epochs through a shared reference.

use std::sync::atomic::{AtomicU64, Ordering};

/// An `f64` behind a shared reference (the bits in an atomic, so models stay
/// `Send + Sync`). Cloning copies the current value.
pub(crate) struct BetaCell(AtomicU64);

impl BetaCell {
    pub(crate) fn new(beta: f64) -> Self {
        Self(AtomicU64::new(beta.to_bits()))
    }

    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn set(&self, beta: f64) {
        self.0.store(beta.to_bits(), Ordering::Relaxed);
    }
}

impl Clone for BetaCell {
    fn clone(&self) -> Self {
        Self::new(self.get())
    }
}

impl std::fmt::Debug for BetaCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// Checks a β given to [`Trainable::set_beta`](super::Trainable::set_beta).
pub(crate) fn check_beta(beta: f64) -> crate::Result<()> {
    if beta.is_finite() && beta >= 0.0 {
        Ok(())
    } else {
        Err(crate::Error::config(
            "beta",
            format!("{beta} must be finite and ≥ 0"),
        ))
    }
}
