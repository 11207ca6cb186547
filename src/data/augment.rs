//! Seeded augmentation of training images: horizontal flips and random crops.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Random changes to every training image, drawn from the training run's
/// seeded generator, so a run with augmentation is as reproducible as one
/// without (the same seed gives the same images, bit for bit, and a resumed
/// run continues the same draws).
///
/// For each image, in batch order: with `horizontal_flip`, one fair coin
/// (`rng.random::<bool>()`) mirrors it left–right; with `crop_padding = p > 0`,
/// two offsets `dx`, `dy` uniform in `0..=2p` (`random_range`) choose a window
/// of the image padded by `p` pixels on every side, the padding repeating the
/// edge pixels — a shift of up to `p` pixels each way, of the same size (`p`
/// is capped at the larger side of the image). The
/// flip comes first. Off by default (`Augmentation::default()` changes nothing
/// and draws nothing).
///
/// ```
/// use vaekit::data::Augmentation;
///
/// let augment = Augmentation::default()
///     .with_horizontal_flip(true)
///     .with_crop_padding(4);
/// assert!(augment.is_active() && !Augmentation::default().is_active());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Augmentation {
    /// Mirror each image left–right with probability 1/2.
    pub horizontal_flip: bool,
    /// Shift each image by up to this many pixels each way (0: no crop).
    pub crop_padding: usize,
}

crate::setters::with_setters!(Augmentation {
    with_horizontal_flip(horizontal_flip: bool),
    with_crop_padding(crop_padding: usize),
});

impl Augmentation {
    /// Whether anything is changed (and anything drawn).
    pub fn is_active(&self) -> bool {
        self.horizontal_flip || self.crop_padding > 0
    }

    /// Augments `images` `[b, c, h, w]`, drawing from `rng` as the type's
    /// documentation says; the result is on the same device. Without anything
    /// to do it returns `images` and draws nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `images` is not 4-D; [`Error::Candle`] if the
    /// tensor cannot be read or made.
    pub fn apply(&self, images: &Tensor, rng: &mut dyn RngCore) -> Result<Tensor> {
        if !self.is_active() {
            return Ok(images.clone());
        }
        let (b, c, h, w) = match images.dims() {
            &[b, c, h, w] => (b, c, h, w),
            dims => {
                return Err(Error::config(
                    "images",
                    format!("augmentation takes images [b, c, h, w], got {dims:?}"),
                ))
            }
        };
        let src = images
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut out = vec![0.0f32; src.len()];
        let size = c * h * w;
        // A shift past the image's size repeats its edge like one to the edge.
        let p = self.crop_padding.min(h.max(w)) as isize;
        let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
        for i in 0..b {
            let flip = self.horizontal_flip && rng.random::<bool>();
            let (dx, dy) = if p > 0 {
                let span = 2 * p as u64;
                (
                    rng.random_range(0..=span) as isize - p,
                    rng.random_range(0..=span) as isize - p,
                )
            } else {
                (0, 0)
            };
            let (from, to) = (
                &src[i * size..(i + 1) * size],
                &mut out[i * size..(i + 1) * size],
            );
            for ch in 0..c {
                for y in 0..h {
                    let sy = clamp(y as isize + dy, h);
                    for x in 0..w {
                        let fx = if flip { w - 1 - x } else { x };
                        let sx = clamp(fx as isize + dx, w);
                        to[(ch * h + y) * w + x] = from[(ch * h + sy) * w + sx];
                    }
                }
            }
        }
        Ok(Tensor::from_vec(out, (b, c, h, w), images.device())?.to_dtype(images.dtype())?)
    }
}
