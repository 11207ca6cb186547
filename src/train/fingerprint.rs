//! [`DataFingerprint`]: what a training checkpoint records of the data it was
//! trained on, so that a resumed run notices other data.

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::data::{ImageSource, LastBatch, Shuffle};
use crate::Result;

/// How many of a set's first images are hashed.
pub const HASHED_IMAGES: usize = 16;

/// A summary of one image set: its size, image shape, whether it is
/// labelled, and a hash of its first [`HASHED_IMAGES`] images (and labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SetFingerprint {
    /// Number of images.
    pub images: usize,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// Whether the images are labelled.
    pub labelled: bool,
    /// FNV-1a (64-bit, hexadecimal) of the first images' `f32` bits and labels.
    pub hash: String,
}

/// The training and test sets of a run, as [`SetFingerprint`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DataFingerprint {
    /// The training set.
    pub train: SetFingerprint,
    /// The test set.
    pub test: SetFingerprint,
}

impl SetFingerprint {
    /// The fingerprint of `set`: its first images are read once, on the CPU.
    ///
    /// # Errors
    ///
    /// The errors of reading the first batch of `set`.
    pub fn of<S: ImageSource + ?Sized>(set: &S) -> Result<Self> {
        let shape = set.shape();
        let mut hash = Fnv::default();
        let first = set
            .batches(HASHED_IMAGES, Shuffle::None, LastBatch::Keep, &Device::Cpu)?
            .next()
            .transpose()?;
        if let Some(batch) = first {
            let pixels = batch
                .images
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            for p in pixels {
                hash.write(&p.to_bits().to_le_bytes());
            }
            if let Some(labels) = &batch.labels {
                for l in labels.to_dtype(DType::U32)?.to_vec1::<u32>()? {
                    hash.write(&l.to_le_bytes());
                }
            }
        }
        Ok(Self {
            images: set.len(),
            shape: [shape.channels, shape.height, shape.width],
            labelled: set.has_labels(),
            hash: format!("{:016x}", hash.0),
        })
    }
}

impl DataFingerprint {
    /// The fingerprints of a run's training and test sets.
    ///
    /// # Errors
    ///
    /// As [`SetFingerprint::of`].
    pub fn of<T, V>(train: &T, test: &V) -> Result<Self>
    where
        T: ImageSource + ?Sized,
        V: ImageSource + ?Sized,
    {
        Ok(Self {
            train: SetFingerprint::of(train)?,
            test: SetFingerprint::of(test)?,
        })
    }

    /// What differs from `other`, one phrase per difference
    /// (`training set: 200 images, now 300`); empty if nothing does.
    pub fn differences(&self, now: &DataFingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for (what, was, is) in [
            ("training set", &self.train, &now.train),
            ("test set", &self.test, &now.test),
        ] {
            if was.images != is.images {
                out.push(format!("{what}: {} images, now {}", was.images, is.images));
            }
            if was.shape != is.shape {
                out.push(format!(
                    "{what}: images of {:?}, now {:?}",
                    was.shape, is.shape
                ));
            }
            if was.labelled != is.labelled {
                out.push(format!(
                    "{what}: {}labelled, now {}labelled",
                    if was.labelled { "" } else { "not " },
                    if is.labelled { "" } else { "not " }
                ));
            }
            if was.hash != is.hash && was.shape == is.shape {
                out.push(format!("{what}: its first images differ"));
            }
        }
        out
    }
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
