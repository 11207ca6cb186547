//! A folder of PNG and JPEG images as training data (feature `image-folder`,
//! on by default): found recursively, classes from sub-folder names when asked,
//! each image centre-cropped to the target's aspect ratio, resized, composited
//! on a background where it has alpha, and converted to grey or RGB.
//!
//! [`ImageFolder::scan`] lists the files (nothing is decoded);
//! [`ImageFolder::split`] divides them into a training and a test part by a
//! seeded shuffle; [`ImageFolder::load`] decodes every file once, on
//! [`workers`](ImageFolderOptions::workers) threads, skipping (or, under
//! [`Unreadable::Fail`], refusing) files that cannot be read. Images whose
//! `f32` pixels fit in the [memory budget](ImageFolderOptions::memory_budget)
//! are held in a [`Dataset`]; larger sets are [streamed](StreamedImages) from
//! disk, decoded again each epoch in background threads.
//!
//! Nothing a file holds can make the reader panic or allocate without bound: a
//! file is read only if it is a regular file of at most
//! [`max_file_bytes`](ImageFolderOptions::max_file_bytes), the decoders run
//! under [`image::Limits`] (at most [`MAX_IMAGE_SIDE`] pixels a side and
//! [`MAX_DECODE_BYTES`] of decoded pixels), and the size of a held set is
//! checked against the budget before it is allocated.
//!
//! The whole pipeline of an image is bounded, not only its decoder: an image
//! whose crop would take more than [`REDUCE_ABOVE_BYTES`] as RGBA is first
//! reduced by averaging blocks of pixels, read straight from the decoded
//! buffer, to at least twice the target size, so no full-size copy is made;
//! and the decoded buffers of all threads of the process together stay within
//! [`MAX_DECODE_BYTES`] (a thread waits until the others' images are freed),
//! so more workers never multiply the peak.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::dataset::{Batch, Dataset, LastBatch, Shuffle};
use super::decode::{decode_all, ImageFolderOptions, Labels, Unreadable};
#[cfg(doc)]
use super::decode::{MAX_DECODE_BYTES, MAX_IMAGE_SIDE, REDUCE_ABOVE_BYTES};
use super::source::{BatchIter, ImageSource};
use super::stream::StreamedImages;
use crate::nets::ImageShape;
use crate::{Error, Result};

/// How many unreadable files a warning or an error names.
const NAMED_FAILURES: usize = 5;
/// The file extensions read (compared without case).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The image files of a folder, with their classes: what [`ImageFolder::scan`]
/// found. Nothing is decoded until [`load`](Self::load).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<PathBuf>,
    labels: Option<Vec<u8>>,
    classes: Vec<String>,
    options: ImageFolderOptions,
}

impl ImageFolder {
    /// Lists the PNG and JPEG files (extensions `.png`, `.jpg`, `.jpeg`, any
    /// case) under `root`, recursively, in the order of their paths. Names that
    /// start with `.` are skipped (hidden files, macOS `._` companions), and so
    /// are folders reached through symbolic links (a link cannot make a loop);
    /// linked files are read.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for options that cannot work; [`Error::Io`] if `root`
    /// or a folder under it cannot be listed; [`Error::Data`] naming `root` if
    /// it is not a folder or holds no PNG or JPEG file, and, with
    /// [`Labels::SubFolders`], if an image lies directly in `root` or there
    /// are more than 256 classes.
    pub fn scan(root: impl AsRef<Path>, options: &ImageFolderOptions) -> Result<Self> {
        options.validate()?;
        let root = root.as_ref();
        let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
        if !meta.is_dir() {
            return Err(data_error(root, "not a folder"));
        }
        let mut files = Vec::new();
        walk(root, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(data_error(
                root,
                "holds no PNG or JPEG image (searched recursively for .png, .jpg and .jpeg files)",
            ));
        }
        let (labels, classes) = match options.labels {
            Labels::None => (None, Vec::new()),
            Labels::SubFolders => {
                let (labels, classes) = class_labels(root, &files)?;
                (Some(labels), classes)
            }
        };
        Ok(Self {
            root: root.to_path_buf(),
            files,
            labels,
            classes,
            options: options.clone(),
        })
    }

    /// The folder scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image files found, in load order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// One label per file, with [`Labels::SubFolders`].
    pub fn labels(&self) -> Option<&[u8]> {
        self.labels.as_deref()
    }

    /// The class names (sub-folder names), label `k` being `classes()[k]`;
    /// empty without labels.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files (never after a successful scan).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The options the folder was scanned with.
    pub fn options(&self) -> &ImageFolderOptions {
        &self.options
    }

    /// Divides the files into a training and a test part: a Fisher–Yates
    /// shuffle drawn from a `ChaCha8Rng` seeded with `seed`, the first
    /// `round(len · test_fraction)` files (at least 1) to the test part, each
    /// part then back in path order. The same seed gives the same parts.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] unless `0 < test_fraction < 1`, or if either part
    /// would be empty.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(ImageFolder, ImageFolder)> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(Error::config(
                "test_fraction",
                format!("{test_fraction} must be strictly between 0 and 1"),
            ));
        }
        let n = self.files.len();
        let test_len = ((n as f64 * test_fraction).round() as usize).max(1);
        if test_len >= n {
            return Err(Error::config(
                "test_fraction",
                format!(
                    "{n} image files cannot be split into a training and a test part \
                     of at least one image each"
                ),
            ));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut test: Vec<usize> = order[..test_len].to_vec();
        let mut train: Vec<usize> = order[test_len..].to_vec();
        test.sort_unstable();
        train.sort_unstable();
        Ok((self.subset(&train), self.subset(&test)))
    }

    /// The folder restricted to the files at `indices`, in that order.
    fn subset(&self, indices: &[usize]) -> ImageFolder {
        ImageFolder {
            root: self.root.clone(),
            files: indices.iter().map(|&i| self.files[i].clone()).collect(),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            classes: self.classes.clone(),
            options: self.options.clone(),
        }
    }

    /// Decodes every file once (on `options.workers` threads), skipping or
    /// refusing unreadable ones as `options.unreadable` says. If the decoded
    /// `f32` pixels of every file fit in `options.memory_budget` they are held
    /// in memory; otherwise only the readable files are kept, and each epoch
    /// decodes them again from disk in the background ([`StreamedImages`]).
    ///
    /// # Errors
    ///
    /// [`Error::Data`] naming a file that cannot be read under
    /// [`Unreadable::Fail`] (and how many others cannot), or naming the root if
    /// no file can be read; [`Error::Config`] if the held pixels cannot be
    /// allocated.
    pub fn load(&self) -> Result<FolderImages> {
        let opts = &self.options;
        let shape = opts.shape();
        let numel = shape.numel();
        let bytes = (self.files.len() as u128) * (numel as u128) * 4;
        let held = bytes <= u128::from(opts.memory_budget);
        let mut pixels: Vec<f32> = Vec::new();
        if held {
            let len = self.files.len() * numel;
            pixels.try_reserve_exact(len).map_err(|_| {
                Error::config(
                    "memory_budget",
                    format!("cannot allocate {bytes} bytes for the pixels: out of memory"),
                )
            })?;
            pixels.resize(len, 0.0);
        }
        let failures = decode_all(&self.files, opts, held.then_some(pixels.as_mut_slice()));
        let skipped: Vec<SkippedFile> = failures
            .into_iter()
            .map(|(i, reason)| SkippedFile {
                path: self.files[i].clone(),
                reason,
            })
            .collect();
        self.report(&skipped)?;
        let bad: std::collections::HashSet<&Path> =
            skipped.iter().map(|s| s.path.as_path()).collect();
        let keep: Vec<usize> = (0..self.files.len())
            .filter(|&i| !bad.contains(self.files[i].as_path()))
            .collect();
        let labels = self
            .labels
            .as_ref()
            .map(|l| keep.iter().map(|&i| l[i]).collect::<Vec<u8>>());
        let storage = if held {
            // Close the gaps of skipped files.
            for (to, &from) in keep.iter().enumerate() {
                if to != from {
                    pixels.copy_within(from * numel..(from + 1) * numel, to * numel);
                }
            }
            pixels.truncate(keep.len() * numel);
            Storage::Held(Dataset::from_pixels(pixels, keep.len(), shape, labels)?)
        } else {
            let files = keep.iter().map(|&i| self.files[i].clone()).collect();
            Storage::Streamed(StreamedImages::new(files, labels, opts.clone()))
        };
        Ok(FolderImages {
            storage,
            skipped,
            classes: self.classes.clone(),
        })
    }

    /// Warns about, or refuses, the unreadable files.
    fn report(&self, skipped: &[SkippedFile]) -> Result<()> {
        if skipped.is_empty() {
            return Ok(());
        }
        let n = self.files.len();
        let named = name_failures(skipped);
        if skipped.len() == n {
            return Err(data_error(
                &self.root,
                format!("none of the {n} image files can be read: {named}"),
            ));
        }
        match self.options.unreadable {
            Unreadable::Fail => Err(Error::Data {
                path: skipped[0].path.clone(),
                reason: format!(
                    "cannot be read: {} ({} of the {n} image files under {} cannot be read: {named})",
                    skipped[0].reason,
                    skipped.len(),
                    self.root.display()
                ),
            }),
            Unreadable::Warn => {
                eprintln!(
                    "warning: skipped {} of {n} image files under {} that cannot be read: {named}",
                    skipped.len(),
                    self.root.display()
                );
                Ok(())
            }
            Unreadable::Skip => Ok(()),
        }
    }
}

/// A file [`ImageFolder::load`] could not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The images of a folder, held in memory or streamed from disk, from
/// [`ImageFolder::load`]; an [`ImageSource`] the trainer takes.
#[derive(Debug)]
pub struct FolderImages {
    storage: Storage,
    skipped: Vec<SkippedFile>,
    classes: Vec<String>,
}

#[derive(Debug)]
enum Storage {
    Held(Dataset),
    Streamed(StreamedImages),
}

impl FolderImages {
    /// The files that could not be read and were skipped.
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.skipped
    }

    /// The class names, label `k` being `classes()[k]`; empty without labels.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Whether the images are streamed from disk rather than held.
    pub fn is_streamed(&self) -> bool {
        matches!(self.storage, Storage::Streamed(_))
    }

    /// The images held in memory, if they are.
    pub fn dataset(&self) -> Option<&Dataset> {
        match &self.storage {
            Storage::Held(d) => Some(d),
            Storage::Streamed(_) => None,
        }
    }

    /// The streamed images, if they are streamed.
    pub fn streamed(&self) -> Option<&StreamedImages> {
        match &self.storage {
            Storage::Held(_) => None,
            Storage::Streamed(s) => Some(s),
        }
    }

    fn source(&self) -> &dyn ImageSource {
        match &self.storage {
            Storage::Held(d) => d,
            Storage::Streamed(s) => s,
        }
    }

    /// The images at `indices`, in that order, as one batch on `device` (for
    /// pictures of a few test images).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if an index is out of range; [`Error::Data`] if a
    /// streamed file can no longer be read; [`Error::Candle`] if the tensors
    /// cannot be made.
    pub fn batch(&self, indices: &[usize], device: &candle_core::Device) -> Result<Batch> {
        match &self.storage {
            Storage::Held(d) => d.batch(indices, device),
            Storage::Streamed(s) => s.batch(indices, device),
        }
    }
}

impl ImageSource for FolderImages {
    fn len(&self) -> usize {
        self.source().len()
    }
    fn shape(&self) -> ImageShape {
        self.source().shape()
    }
    fn has_labels(&self) -> bool {
        self.source().has_labels()
    }
    fn held(&self) -> Option<&Dataset> {
        self.dataset()
    }
    fn batches<'a>(
        &'a self,
        batch_size: usize,
        shuffle: Shuffle<'_>,
        last: LastBatch,
        device: &candle_core::Device,
    ) -> Result<BatchIter<'a>> {
        self.source().batches(batch_size, shuffle, last, device)
    }
}

fn data_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `a.png (reason), b.jpg (reason), … and 7 more`.
fn name_failures(skipped: &[SkippedFile]) -> String {
    let mut named: Vec<String> = skipped
        .iter()
        .take(NAMED_FAILURES)
        .map(|s| format!("{} ({})", s.path.display(), s.reason))
        .collect();
    if skipped.len() > NAMED_FAILURES {
        named.push(format!("and {} more", skipped.len() - NAMED_FAILURES));
    }
    named.join(", ")
}

/// Whether `path` names a PNG or JPEG file by its extension.
fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Collects the image files under `dir`, not following linked folders.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ty.is_dir() {
            walk(&path, files)?;
        } else if is_image_name(&path) {
            // A file or a link to one (checked when it is read); a link to a
            // folder is never descended.
            if ty.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            files.push(path);
        }
    }
    Ok(())
}

/// The class of every file (the first folder below `root` on its path) and
/// the sorted class names.
fn class_labels(root: &Path, files: &[PathBuf]) -> Result<(Vec<u8>, Vec<String>)> {
    let mut names = Vec::with_capacity(files.len());
    for file in files {
        let rel = file.strip_prefix(root).unwrap_or(file);
        let mut parts = rel.components();
        let first = parts.next();
        let class = match (first, parts.next()) {
            (Some(c), Some(_)) => c.as_os_str().to_string_lossy().into_owned(),
            _ => {
                return Err(data_error(
                    file,
                    format!(
                        "lies directly in {}: with labels from sub-folders, every image \
                         must be in a sub-folder named after its class",
                        root.display()
                    ),
                ))
            }
        };
        names.push(class);
    }
    let mut classes = names.clone();
    classes.sort();
    classes.dedup();
    if classes.len() > 256 {
        return Err(data_error(
            root,
            format!(
                "{} sub-folders hold images: labels are bytes, so at most 256 classes",
                classes.len()
            ),
        ));
    }
    let labels = names
        .iter()
        .map(|n| classes.binary_search(n).map_or(0, |k| k as u8))
        .collect();
    Ok((labels, classes))
}
