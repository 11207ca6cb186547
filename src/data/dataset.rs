//! An in-memory set of `C×H×W` images with optional labels, binarization,
//! and a seeded batch iterator that yields candle tensors.

use std::fmt;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore};

use super::idx::{self, DataLimits, IdxImages};
use crate::error::{Error, Result};
use crate::nets::ImageShape;

/// Images of `channels × height × width` as `f32` in `[0, 1]`, one contiguous
/// buffer, with an optional `u8` label per image.
///
/// Value `(i, c, y, x)` — channel `c` of image `i` — sits at
/// `images()[((i * channels + c) * height + y) * width + x]`: images one after
/// the other, each channel-major like a candle tensor `[n, c, h, w]`. Images read
/// from IDX bytes are grey (one channel), labelled, and scaled as `v / 255`;
/// images read from a folder ([`ImageFolder`](super::ImageFolder)) have 1 or 3
/// channels and labels only when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    images: Vec<f32>,
    labels: Option<Vec<u8>>,
    shape: ImageShape,
    len: usize,
}

/// The order in which [`Dataset::batches`] visits the images.
pub enum Shuffle<'r> {
    /// Dataset order: 0, 1, 2, …
    None,
    /// A Fisher–Yates permutation drawn from the caller's seeded RNG
    /// ([`SliceRandom::shuffle`]); the same RNG state gives the same order,
    /// bit for bit, and the RNG is advanced.
    Seeded(&'r mut dyn RngCore),
}

impl fmt::Debug for Shuffle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shuffle::None => f.write_str("Shuffle::None"),
            Shuffle::Seeded(_) => f.write_str("Shuffle::Seeded(..)"),
        }
    }
}

/// What [`Dataset::batches`] does with a final batch smaller than the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LastBatch {
    /// Yield it (`ceil(len / batch_size)` batches).
    #[default]
    Keep,
    /// Skip it (`floor(len / batch_size)` batches), so every batch is full.
    Drop,
}

/// One batch of images, and their labels where the data has labels, as tensors.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The images, `f32`, shape `[batch, channels, height, width]`.
    pub images: Tensor,
    /// The labels, `u32`, shape `[batch]`; `None` for unlabelled data.
    pub labels: Option<Tensor>,
    /// Which dataset images these are, in batch order.
    pub indices: Vec<usize>,
    /// What the reconstruction is scored against, when it is not `images`:
    /// the clean images of a batch whose `images` were corrupted for
    /// denoising ([`Corruption`](crate::train::Corruption)). `None` for an
    /// ordinary batch; read it through [`targets`](Self::targets).
    pub targets: Option<Tensor>,
}

impl Batch {
    /// A batch of `images` `[b, c, h, w]` with their `labels` `[b]` (a
    /// `Tensor`, or `None` for unlabelled images), numbered `0..b` (for
    /// batches made outside a [`Dataset`]).
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use vaekit::data::Batch;
    ///
    /// let images = Tensor::zeros((2, 3, 8, 8), candle_core::DType::F32, &Device::Cpu)?;
    /// let unlabelled = Batch::new(images.clone(), None);
    /// assert!(unlabelled.labels.is_none());
    /// let labelled = Batch::new(images, Tensor::new(&[0u32, 1], &Device::Cpu)?);
    /// assert_eq!(labelled.labels.map(|l| l.dims().to_vec()), Some(vec![2]));
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn new(images: Tensor, labels: impl Into<Option<Tensor>>) -> Self {
        let b = images.dims().first().copied().unwrap_or(0);
        Self {
            images,
            labels: labels.into(),
            indices: (0..b).collect(),
            targets: None,
        }
    }

    /// The images a model's likelihood scores: [`targets`](Self::targets)
    /// when set (the clean images of a corrupted batch), else the images.
    pub fn targets(&self) -> &Tensor {
        self.targets.as_ref().unwrap_or(&self.images)
    }

    /// The labels, or an error saying that `what` needs them and this batch
    /// has none (for models that need labels, in their forward code).
    ///
    /// # Errors
    ///
    /// A candle error naming `what` when the batch is unlabelled.
    pub fn require_labels(&self, what: &str) -> candle_core::Result<&Tensor> {
        self.labels.as_ref().ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{what} needs a label per image, but this batch of {} images has none \
                 (the data was loaded without labels; an image folder gives labels with \
                 `Labels::SubFolders`)",
                self.len()
            ))
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.dims().first().copied().unwrap_or(0)
    }

    /// Whether the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Dataset {
    /// Builds a grey, labelled dataset from `images` (`labels.len() * height *
    /// width` values in `[0, 1]`, image after image, row-major) and one label
    /// per image.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `height` or `width` is zero, if the number of
    /// values does not match, or if a value is not a finite number in `[0, 1]`.
    pub fn new(images: Vec<f32>, labels: Vec<u8>, height: usize, width: usize) -> Result<Self> {
        let len = labels.len();
        Self::from_pixels(images, len, ImageShape::new(1, height, width), Some(labels))
    }

    /// Builds a dataset of `len` images of `shape` (any number of channels;
    /// pictures take 1 or 3) from `images`, `len · c · h · w` values in
    /// `[0, 1]` laid out as `[len, c, h, w]`, with one label per image or none.
    ///
    /// ```
    /// use vaekit::data::Dataset;
    /// use vaekit::nets::ImageShape;
    ///
    /// let rgb = Dataset::from_pixels(vec![0.5; 2 * 3 * 4 * 4], 2, ImageShape::new(3, 4, 4), None)?;
    /// assert_eq!((rgb.len(), rgb.channels(), rgb.labels()), (2, 3, None));
    /// # Ok::<(), vaekit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a dimension of `shape` is zero, if the number of
    /// values or of labels does not match `len`, or if a value is not a finite
    /// number in `[0, 1]`.
    pub fn from_pixels(
        images: Vec<f32>,
        len: usize,
        shape: ImageShape,
        labels: Option<Vec<u8>>,
    ) -> Result<Self> {
        let ImageShape {
            channels,
            height,
            width,
        } = shape;
        if channels == 0 || height == 0 || width == 0 {
            return Err(Error::config(
                "shape",
                format!("images of {channels}×{height}×{width}: every dimension must be positive"),
            ));
        }
        if let Some(labels) = &labels {
            if labels.len() != len {
                return Err(Error::config(
                    "labels",
                    format!("{} labels for {len} images", labels.len()),
                ));
            }
        }
        let expected = len
            .checked_mul(channels)
            .and_then(|n| n.checked_mul(height))
            .and_then(|n| n.checked_mul(width));
        if expected != Some(images.len()) {
            return Err(Error::config(
                "images",
                format!(
                    "{} values for {len} images of {channels}×{height}×{width}",
                    images.len(),
                ),
            ));
        }
        if let Some(pos) = images.iter().position(|v| !(0.0..=1.0).contains(v)) {
            return Err(Error::config(
                "images",
                format!("value {} at index {pos} is outside [0, 1]", images[pos]),
            ));
        }
        Ok(Self {
            images,
            labels,
            shape,
            len,
        })
    }

    /// Pairs parsed IDX images with their labels, scaling pixels as `v / 255`.
    ///
    /// `labels_name` names the labels file in the error.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] naming `labels_name` if the number of labels differs
    /// from the number of images.
    pub fn from_idx(
        images: &IdxImages,
        labels: Vec<u8>,
        labels_name: impl AsRef<Path>,
    ) -> Result<Self> {
        if labels.len() != images.count() {
            return Err(Error::Data {
                path: labels_name.as_ref().to_path_buf(),
                reason: format!(
                    "count mismatch: {} labels for {} images",
                    labels.len(),
                    images.count()
                ),
            });
        }
        let mut pixels = Vec::new();
        pixels
            .try_reserve_exact(images.pixels().len())
            .map_err(|_| {
                Error::config(
                    "images",
                    format!(
                        "cannot allocate {} bytes for the f32 pixels: out of memory",
                        images.pixels().len().saturating_mul(4)
                    ),
                )
            })?;
        pixels.extend(images.pixels().iter().map(|&v| f32::from(v) / 255.0));
        Ok(Self {
            images: pixels,
            len: labels.len(),
            labels: Some(labels),
            shape: ImageShape::new(1, images.rows(), images.cols()),
        })
    }

    /// Parses an IDX images file and an IDX labels file from bytes (each raw
    /// or gzip) and pairs them; the names appear in errors. The images may
    /// take at most [`idx::MAX_DATASET_BYTES`] as `f32`.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] as [`idx::parse_images`], [`idx::parse_labels`] and
    /// [`Dataset::from_idx`].
    pub fn from_idx_bytes(
        images: &[u8],
        images_name: impl AsRef<Path>,
        labels: &[u8],
        labels_name: impl AsRef<Path>,
    ) -> Result<Self> {
        Self::from_idx_bytes_with(
            images,
            images_name,
            labels,
            labels_name,
            DataLimits::default(),
        )
    }

    /// [`Dataset::from_idx_bytes`] under `limits` instead of the default.
    ///
    /// # Errors
    ///
    /// As [`Dataset::from_idx_bytes`], with the limit of `limits`.
    pub fn from_idx_bytes_with(
        images: &[u8],
        images_name: impl AsRef<Path>,
        labels: &[u8],
        labels_name: impl AsRef<Path>,
        limits: DataLimits,
    ) -> Result<Self> {
        let images = idx::parse_images_with(images, images_name, limits)?;
        let labels_name = labels_name.as_ref();
        let labels = idx::parse_labels_with(labels, labels_name, limits)?;
        Self::from_idx(&images, labels, labels_name)
    }

    /// Reads an IDX images file and an IDX labels file (each raw or gzip,
    /// each a regular file) and pairs them. The images may take at most
    /// [`idx::MAX_DATASET_BYTES`] as `f32`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a file cannot be read, otherwise as
    /// [`idx::read_images`] and [`Dataset::from_idx_bytes`].
    pub fn from_idx_files(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Self> {
        Self::from_idx_files_with(images, labels, DataLimits::default())
    }

    /// [`Dataset::from_idx_files`] under `limits` instead of the default.
    ///
    /// # Errors
    ///
    /// As [`Dataset::from_idx_files`], with the limit of `limits`.
    pub fn from_idx_files_with(
        images: impl AsRef<Path>,
        labels: impl AsRef<Path>,
        limits: DataLimits,
    ) -> Result<Self> {
        let images = idx::read_images_with(images, limits)?;
        let labels_path = labels.as_ref();
        let labels = idx::read_labels_with(labels_path, limits)?;
        Self::from_idx(&images, labels, labels_path)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shape of every image, `channels × height × width`.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.shape.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.shape.width
    }

    /// Number of channels: 1 for grey images (every IDX set), 3 for RGB.
    pub fn channels(&self) -> usize {
        self.shape.channels
    }

    /// All pixels, `len() * channels() * height() * width()` values in `[0, 1]`.
    pub fn images(&self) -> &[f32] {
        &self.images
    }

    /// The labels, one per image, or `None` for unlabelled images.
    pub fn labels(&self) -> Option<&[u8]> {
        self.labels.as_deref()
    }

    /// The same images without their labels.
    pub fn without_labels(mut self) -> Dataset {
        self.labels = None;
        self
    }

    /// The values of image `index` (`channels() * height() * width()` of
    /// them, channel-major then row-major), or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[f32]> {
        let size = self.shape.numel();
        let start = index.checked_mul(size)?;
        self.images.get(start..start.checked_add(size)?)
    }

    /// Static binarization: a copy with each pixel set to `1.0` if it is
    /// greater than `0.5` and to `0.0` otherwise.
    ///
    /// This is the rule of TensorFlow's convolutional VAE tutorial,
    /// `np.where(x > .5, 1.0, 0.0)`. Pixels read from IDX bytes are `v / 255`,
    /// so no pixel equals `0.5` exactly: bytes `0..=127` become 0 and
    /// `128..=255` become 1. The result is the same on every call.
    pub fn binarize_static(&self) -> Dataset {
        let images = self
            .images
            .iter()
            .map(|&p| if p > 0.5 { 1.0 } else { 0.0 })
            .collect();
        self.with_images(images)
    }

    /// Dynamic binarization: a copy with each pixel `p` replaced by a fresh
    /// Bernoulli(`p`) draw, `1.0` with probability `p`.
    ///
    /// One `f32` is drawn from `rng` per pixel in storage order and the pixel
    /// becomes `1.0` if the draw (uniform in `[0, 1)`) is below `p`, so pixels
    /// at 0 stay 0 and pixels at 1 stay 1. Every call advances `rng` and gives
    /// a new sample; the same RNG state gives the same sample, bit for bit.
    /// Call it once per epoch to resample the training set.
    pub fn binarize_dynamic<R: Rng + ?Sized>(&self, rng: &mut R) -> Dataset {
        let images = self
            .images
            .iter()
            .map(|&p| if rng.random::<f32>() < p { 1.0 } else { 0.0 })
            .collect();
        self.with_images(images)
    }

    fn with_images(&self, images: Vec<f32>) -> Dataset {
        Dataset {
            images,
            labels: self.labels.clone(),
            shape: self.shape,
            len: self.len,
        }
    }

    /// The images at `indices` (in that order) as one [`Batch`] on `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (field `indices`) if an index is out of range;
    /// [`Error::Candle`] if the tensors cannot be created on `device`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::config(
                "indices",
                format!(
                    "index {bad} out of range for a dataset of {} images",
                    self.len()
                ),
            ));
        }
        let size = self.shape.numel();
        let mut pixels = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            pixels.extend_from_slice(&self.images[i * size..(i + 1) * size]);
        }
        let b = indices.len();
        let ImageShape {
            channels: c,
            height: h,
            width: w,
        } = self.shape;
        let images = Tensor::from_vec(pixels, (b, c, h, w), device)?; // [b, c, h, w]
        let labels = match &self.labels {
            Some(all) => {
                let labels: Vec<u32> = indices.iter().map(|&i| u32::from(all[i])).collect();
                Some(Tensor::from_vec(labels, b, device)?) // [b]
            }
            None => None,
        };
        Ok(Batch {
            images,
            labels,
            indices: indices.to_vec(),
            targets: None,
        })
    }

    /// Iterates over the dataset in batches of `batch_size` images, built on
    /// `device`.
    ///
    /// The visiting order is fixed when this is called: dataset order for
    /// [`Shuffle::None`], or one Fisher–Yates permutation drawn from the
    /// caller's RNG for [`Shuffle::Seeded`]. `last` says whether a final
    /// partial batch is kept or dropped.
    ///
    /// Every call yields at least one batch: a request that would yield none
    /// is an error, so a caller never mistakes it for an epoch of zero steps.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (field `batch_size`) if `batch_size` is 0, or if
    /// `last` is [`LastBatch::Drop`] and the dataset holds fewer images than
    /// one batch; [`Error::Config`] (field `dataset`) if the dataset is empty.
    /// Each item is [`Error::Candle`] if its tensors cannot be created.
    ///
    /// # Example
    ///
    /// ```
    /// use vaekit::candle_core::Device;
    /// use vaekit::rand::SeedableRng;
    /// use vaekit::Generator;
    /// use vaekit::data::{Dataset, LastBatch, Shuffle};
    ///
    /// let data = Dataset::new(vec![0.0; 5 * 4], vec![0, 1, 2, 3, 4], 2, 2)?;
    /// let mut rng = Generator::seed_from_u64(0);
    /// let mut seen = 0;
    /// for batch in data.batches(2, Shuffle::Seeded(&mut rng), LastBatch::Drop, &Device::Cpu)? {
    ///     let batch = batch?;
    ///     assert_eq!(batch.images.dims(), &[2, 1, 2, 2]);
    ///     seen += batch.indices.len();
    /// }
    /// assert_eq!(seen, 4);
    /// # Ok::<(), vaekit::Error>(())
    /// ```
    pub fn batches(
        &self,
        batch_size: usize,
        shuffle: Shuffle<'_>,
        last: LastBatch,
        device: &Device,
    ) -> Result<Batches<'_>> {
        let order = visiting_order(self.len(), batch_size, shuffle, last)?;
        Ok(Batches {
            dataset: self,
            order,
            batch_size,
            next: 0,
            device: device.clone(),
        })
    }
}

/// The order in which a set of `len` images is visited in batches of
/// `batch_size`: `0..len`, shuffled by one Fisher–Yates permutation from the
/// caller's RNG for [`Shuffle::Seeded`], cut to whole batches for
/// [`LastBatch::Drop`]. Shared by every [`ImageSource`](super::ImageSource),
/// so held and streamed images are visited in the same seeded order.
pub(crate) fn visiting_order(
    len: usize,
    batch_size: usize,
    shuffle: Shuffle<'_>,
    last: LastBatch,
) -> Result<Vec<usize>> {
    if batch_size == 0 {
        return Err(Error::config("batch_size", "must be positive, got 0"));
    }
    if len == 0 {
        return Err(Error::config(
            "dataset",
            "is empty: there are no images to make batches of",
        ));
    }
    if last == LastBatch::Drop && len < batch_size {
        return Err(Error::config(
            "batch_size",
            format!(
                "{batch_size} is more than the {len} images of the dataset, and LastBatch::Drop drops the only, partial batch: no batch would be made (use a smaller batch size or LastBatch::Keep)",
            ),
        ));
    }
    let mut order: Vec<usize> = (0..len).collect();
    if let Shuffle::Seeded(rng) = shuffle {
        order.shuffle(rng);
    }
    let end = match last {
        LastBatch::Keep => order.len(),
        LastBatch::Drop => order.len() - order.len() % batch_size,
    };
    order.truncate(end);
    Ok(order)
}

/// Iterator over the batches of a [`Dataset`], from [`Dataset::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    dataset: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    device: Device,
}

impl Batches<'_> {
    /// The full visiting order (dataset indices), already cut to whole
    /// batches under [`LastBatch::Drop`].
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let indices = &self.order[self.next..end];
        self.next = end;
        Some(self.dataset.batch(indices, &self.device))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}
