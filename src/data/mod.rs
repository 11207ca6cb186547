//! Data for training and evaluating autoencoders: MNIST-format digits and
//! folders of your own PNG and JPEG images.
//!
//! - [`idx`] reads the IDX files of MNIST (raw or gzip), checking every header
//!   field against the bytes present.
//! - [`Dataset`] holds `C×H×W` images as `f32` in `[0, 1]`, with labels or
//!   without, offers static and dynamic binarization, and iterates over
//!   [`Batch`]es of candle tensors in dataset order or a seeded shuffle.
//! - [`Mnist`] loads a training and a test set from a folder of the four
//!   standard files, or (feature `bundled-mnist`, on by default) from the
//!   10,000 real digits compiled into vaekit.
//! - `ImageFolder` (feature `image-folder`, on by default) reads a folder of
//!   PNG and JPEG files, grey or RGB, at any size, with classes from
//!   sub-folder names when asked; it holds what fits in a memory budget and
//!   streams the rest from disk (`StreamedImages`).
//! - [`ImageSource`] is what the trainer iterates over: a [`Dataset`] or
//!   images streamed from disk, visited in the same seeded order.
//!
//! ```
//! # #[cfg(feature = "bundled-mnist")] {
//! use vaekit::candle_core::Device;
//! use vaekit::rand::SeedableRng;
//! use vaekit::Generator;
//! use vaekit::data::{LastBatch, Mnist, Shuffle};
//!
//! let mnist = Mnist::bundled()?;
//! let mut rng = Generator::seed_from_u64(42);
//! let train = mnist.train.binarize_dynamic(&mut rng);
//! let mut batches = train.batches(64, Shuffle::Seeded(&mut rng), LastBatch::Drop, &Device::Cpu)?;
//! assert_eq!(batches.len(), 8_000 / 64);
//! let first = batches.next().expect("125 batches")?;
//! assert_eq!(first.images.dims(), &[64, 1, 28, 28]);
//! # }
//! # Ok::<(), vaekit::Error>(())
//! ```

mod augment;
mod dataset;
#[cfg(feature = "image-folder")]
mod decode;
#[cfg(feature = "image-folder")]
mod folder;
pub mod idx;
mod mnist;
mod source;
#[cfg(feature = "image-folder")]
mod stream;

pub use augment::Augmentation;
pub use dataset::{Batch, Batches, Dataset, LastBatch, Shuffle};
#[cfg(feature = "image-folder")]
pub use decode::{
    Channels, ImageFolderOptions, Labels, Unreadable, MAX_DECODE_BYTES, MAX_FILE_BYTES,
    MAX_IMAGE_SIDE, REDUCE_ABOVE_BYTES,
};
#[cfg(feature = "image-folder")]
pub use folder::{FolderImages, ImageFolder, SkippedFile};
pub use idx::{DataLimits, IdxImages, MAX_DATASET_BYTES};
pub use mnist::{Mnist, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
pub use source::{BatchIter, ImageSource};
#[cfg(feature = "image-folder")]
pub use stream::StreamedImages;
