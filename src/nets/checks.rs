//! The size checks of network configs: a size against its limit
//! ([`MAX_SIDE`], [`MAX_WIDTH`](super::MAX_WIDTH), …) and an image shape
//! against the image limits, with errors that name the field.

use super::{ImageShape, MAX_IMAGE_VALUES, MAX_SIDE};
use crate::{Error, Result as VResult};

/// Checks that an image shape has no zero size.
pub(crate) fn check_shape(s: &ImageShape, field: &str) -> VResult<()> {
    if s.channels == 0 || s.height == 0 || s.width == 0 {
        return Err(Error::config(
            field,
            format!("image shape {s} has a zero size"),
        ));
    }
    for (name, v) in [
        ("channels", s.channels),
        ("height", s.height),
        ("width", s.width),
    ] {
        at_most(v, MAX_SIDE, &format!("{field}.{name}"))?;
    }
    // Each side is at most 2^16, so the product cannot overflow 64 bits.
    at_most(s.numel(), MAX_IMAGE_VALUES, field)
}

/// Checks `v ≤ max` for the size `field`.
pub(crate) fn at_most(v: usize, max: usize, field: &str) -> VResult<()> {
    if v > max {
        return Err(Error::config(
            field,
            format!("{v} is more than the largest size vaekit accepts here, {max}"),
        ));
    }
    Ok(())
}
