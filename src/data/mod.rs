//! Data for training and evaluating autoencoders: MNIST-format digits.
//!
//! - [`idx`] reads the IDX files of MNIST (raw or gzip), checking every header
//!   field against the bytes present.
//! - [`Dataset`] holds images as `f32` in `[0, 1]` with their labels, offers
//!   static and dynamic binarization, and iterates over [`Batch`]es of candle
//!   tensors in dataset order or a seeded shuffle.
//! - [`Mnist`] loads a training and a test set from a folder of the four
//!   standard files, or (feature `bundled-mnist`, on by default) from the
//!   10,000 real digits compiled into vaekit.
//!
//! ```
//! # #[cfg(feature = "bundled-mnist")] {
//! use candle_core::Device;
//! use rand::SeedableRng;
//! use vaekit::data::{LastBatch, Mnist, Shuffle};
//!
//! let mnist = Mnist::bundled()?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
//! let train = mnist.train.binarize_dynamic(&mut rng);
//! let mut batches = train.batches(64, Shuffle::Seeded(&mut rng), LastBatch::Drop, &Device::Cpu)?;
//! assert_eq!(batches.len(), 8_000 / 64);
//! let first = batches.next().expect("125 batches")?;
//! assert_eq!(first.images.dims(), &[64, 1, 28, 28]);
//! # }
//! # Ok::<(), vaekit::Error>(())
//! ```

mod dataset;
pub mod idx;
mod mnist;
mod source;

pub use dataset::{Batch, Batches, Dataset, LastBatch, Shuffle};
pub use source::{BatchIter, ImageSource};
pub use idx::{DataLimits, IdxImages, MAX_DATASET_BYTES};
pub use mnist::{Mnist, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
