//! MNIST-format digit sets: the four standard IDX files of a folder, or the
//! 10,000 real digits bundled with vaekit.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::dataset::Dataset;
use super::idx::DataLimits;
use crate::error::{Error, Result};

/// The standard file name (without `.gz`) of the training images.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// The standard file name (without `.gz`) of the training labels.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// The standard file name (without `.gz`) of the test images.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// The standard file name (without `.gz`) of the test labels.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A training set and a test set of 28×28 digits (or any images in the
/// MNIST file layout, such as Fashion-MNIST).
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// The training images and labels.
    pub train: Dataset,
    /// The test images and labels.
    pub test: Dataset,
}

impl Mnist {
    /// Loads the four standard files from `dir`: `train-images-idx3-ubyte`,
    /// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
    /// `t10k-labels-idx1-ubyte`, each either raw or with a `.gz` suffix
    /// (the raw file is used when both exist).
    ///
    /// This is the layout of the original MNIST download and of Debian's
    /// `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist/`).
    ///
    /// # Errors
    ///
    /// Each file must be a regular file (a FIFO, a device or a folder under
    /// one of the names is refused without being read), and each set may
    /// take at most [`MAX_DATASET_BYTES`](super::idx::MAX_DATASET_BYTES) as
    /// `f32`; see [`Mnist::load_dir_with`] to change that.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] naming the file if one is missing (neither name
    /// exists), not a regular file, malformed or too large, or if an images
    /// file and its labels file hold different counts; [`Error::Io`] if a
    /// file exists but cannot be read.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_dir_with(dir, DataLimits::default())
    }

    /// [`Mnist::load_dir`] with each set bounded by `limits` instead of the
    /// default.
    ///
    /// # Errors
    ///
    /// As [`Mnist::load_dir`], with the limit of `limits`.
    pub fn load_dir_with(dir: impl AsRef<Path>, limits: DataLimits) -> Result<Self> {
        let dir = dir.as_ref();
        let train_images = find_either(dir, TRAIN_IMAGES)?;
        let train_labels = find_either(dir, TRAIN_LABELS)?;
        let test_images = find_either(dir, TEST_IMAGES)?;
        let test_labels = find_either(dir, TEST_LABELS)?;
        Ok(Self {
            train: Dataset::from_idx_files_with(train_images, train_labels, limits)?,
            test: Dataset::from_idx_files_with(test_images, test_labels, limits)?,
        })
    }

    /// The 10,000 real MNIST digits compiled into vaekit (8,000 training and
    /// 2,000 test images of 28×28 pixels, labels 0–9), from
    /// `data/mnist-10k` in the crate; see the README there for provenance.
    ///
    /// Needs the `bundled-mnist` feature (on by default).
    ///
    /// # Errors
    ///
    /// [`Error::Data`] if the embedded files do not parse (they always do in
    /// a published build; the check is kept rather than unwrapped).
    ///
    /// # Example
    ///
    /// ```
    /// let mnist = vaekit::data::Mnist::bundled()?;
    /// assert_eq!((mnist.train.len(), mnist.test.len()), (8_000, 2_000));
    /// # Ok::<(), vaekit::Error>(())
    /// ```
    #[cfg(feature = "bundled-mnist")]
    pub fn bundled() -> Result<Self> {
        macro_rules! bundled {
            ($file:literal) => {
                (
                    include_bytes!(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/data/mnist-10k/",
                        $file
                    ))
                    .as_slice(),
                    concat!("data/mnist-10k/", $file, " (bundled)"),
                )
            };
        }
        let (train_images, train_images_name) = bundled!("train-images-idx3-ubyte.gz");
        let (train_labels, train_labels_name) = bundled!("train-labels-idx1-ubyte.gz");
        let (test_images, test_images_name) = bundled!("t10k-images-idx3-ubyte.gz");
        let (test_labels, test_labels_name) = bundled!("t10k-labels-idx1-ubyte.gz");
        Ok(Self {
            train: Dataset::from_idx_bytes(
                train_images,
                train_images_name,
                train_labels,
                train_labels_name,
            )?,
            test: Dataset::from_idx_bytes(
                test_images,
                test_images_name,
                test_labels,
                test_labels_name,
            )?,
        })
    }
}

/// `dir/stem`, or `dir/stem.gz` if that does not exist; nothing is opened.
fn find_either(dir: &Path, stem: &str) -> Result<PathBuf> {
    let raw = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    for path in [raw, gz] {
        match std::fs::metadata(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Err(Error::Data {
        path: dir.join(stem),
        reason: format!(
            "missing: neither {stem} nor {stem}.gz exists in {}",
            dir.display()
        ),
    })
}
