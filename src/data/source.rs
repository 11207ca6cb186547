//! [`ImageSource`]: what the trainer iterates over — images held in memory
//! (a [`Dataset`]) or streamed from disk
//! ([`StreamedImages`](super::StreamedImages)) — in seeded batches.

use candle_core::Device;

use super::dataset::{Batch, Dataset, LastBatch, Shuffle};
use crate::nets::ImageShape;
use crate::Result;

/// The batches of an [`ImageSource`], in the order fixed when they were asked for.
pub type BatchIter<'a> = Box<dyn Iterator<Item = Result<Batch>> + 'a>;

/// A set of images the [`Trainer`](crate::train::Trainer) can train or
/// evaluate on: it knows its size, shape and whether it has labels, and yields
/// batches in dataset order or a seeded shuffle.
///
/// Every implementation draws its order exactly as [`Dataset::batches`] does
/// (one Fisher–Yates permutation of `0..len` from the caller's RNG), so the
/// same seed visits the same images in the same order whether they are held
/// or streamed.
///
/// Object-safe: `&dyn ImageSource` works wherever a source is taken by reference.
pub trait ImageSource {
    /// Number of images.
    fn len(&self) -> usize;

    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of every image.
    fn shape(&self) -> ImageShape;

    /// Whether every image has a label.
    fn has_labels(&self) -> bool;

    /// The images held in memory, if they are (binarization needs them).
    fn held(&self) -> Option<&Dataset> {
        None
    }

    /// Iterates over the images in batches of `batch_size` built on `device`,
    /// as [`Dataset::batches`] does.
    ///
    /// # Errors
    ///
    /// As [`Dataset::batches`]; each item may fail as a batch is read.
    fn batches<'a>(
        &'a self,
        batch_size: usize,
        shuffle: Shuffle<'_>,
        last: LastBatch,
        device: &Device,
    ) -> Result<BatchIter<'a>>;
}

impl ImageSource for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }

    fn shape(&self) -> ImageShape {
        Dataset::shape(self)
    }

    fn has_labels(&self) -> bool {
        self.labels().is_some()
    }

    fn held(&self) -> Option<&Dataset> {
        Some(self)
    }

    fn batches<'a>(
        &'a self,
        batch_size: usize,
        shuffle: Shuffle<'_>,
        last: LastBatch,
        device: &Device,
    ) -> Result<BatchIter<'a>> {
        Ok(Box::new(Dataset::batches(
            self, batch_size, shuffle, last, device,
        )?))
    }
}

impl<S: ImageSource + ?Sized> ImageSource for &S {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn shape(&self) -> ImageShape {
        (**self).shape()
    }
    fn has_labels(&self) -> bool {
        (**self).has_labels()
    }
    fn held(&self) -> Option<&Dataset> {
        (**self).held()
    }
    fn batches<'a>(
        &'a self,
        batch_size: usize,
        shuffle: Shuffle<'_>,
        last: LastBatch,
        device: &Device,
    ) -> Result<BatchIter<'a>> {
        (**self).batches(batch_size, shuffle, last, device)
    }
}
