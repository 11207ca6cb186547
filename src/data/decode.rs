//! How one image file becomes training values: the options an
//! [`ImageFolder`](super::ImageFolder) reads with, and the decoding itself.
//!
//! A file is read only if it is a regular file of at most
//! [`max_file_bytes`](ImageFolderOptions::max_file_bytes) bytes; its decoded size is
//! read from the header and refused above [`MAX_DECODE_BYTES`]; the decoders run
//! under [`image::Limits`]; the decoded buffers of all threads of the process
//! together stay within [`MAX_DECODE_BYTES`]; and a crop larger than
//! [`REDUCE_ABOVE_BYTES`] as RGBA is reduced a row at a time, without full-size
//! copies. Then the image is centre-cropped to the target's aspect ratio,
//! composited on the background, resized and converted to grey or RGB.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use super::idx::MAX_DATASET_BYTES;
#[cfg(doc)]
use super::{FolderImages, ImageFolder, StreamedImages};
use crate::nets::ImageShape;
use crate::{Error, Result};

/// The longest side, in pixels, of an image the reader decodes.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// The most bytes a decoder may allocate for one image's pixels (256 MiB).
pub const MAX_DECODE_BYTES: u64 = 256 << 20;
/// An image whose centre crop would take more than this as RGBA (16 MiB,
/// 2048 × 2048 pixels) is reduced while it is read, without full-size copies.
pub const REDUCE_ABOVE_BYTES: u64 = 16 << 20;
/// The largest image file read, by default (64 MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Grey or colour images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Channels {
    /// One channel: the BT.709 luma `0.2126 R + 0.7152 G + 0.0722 B` of the
    /// composited RGB (the weights of `image`'s own conversion; grey pixels
    /// keep their value).
    Grey,
    /// Three channels, red, green and blue.
    #[default]
    Rgb,
}

impl Channels {
    /// The number of channels: 1 or 3.
    pub fn count(self) -> usize {
        match self {
            Channels::Grey => 1,
            Channels::Rgb => 3,
        }
    }
}

/// Whether images get labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Labels {
    /// No labels.
    #[default]
    None,
    /// The class of an image is the name of the sub-folder of the root it is
    /// in (at any depth below it); classes are numbered in the order of their
    /// names. Every image must then be in a sub-folder, and there may be at
    /// most 256 classes.
    SubFolders,
}

/// What happens to files that cannot be read (empty, truncated, not an image,
/// too large, an unsupported colour type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unreadable {
    /// Skip them, count them, and print one warning on stderr naming a few.
    #[default]
    Warn,
    /// Skip them and count them silently ([`FolderImages::skipped`] lists them).
    Skip,
    /// Refuse the load with an error naming them.
    Fail,
}

/// How [`ImageFolder`] finds, decodes and holds images.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ImageFolderOptions {
    /// Height of every image after cropping and resizing.
    pub height: usize,
    /// Width of every image after cropping and resizing.
    pub width: usize,
    /// Grey or RGB.
    pub channels: Channels,
    /// Labels from sub-folder names, or none.
    pub labels: Labels,
    /// The colour, as RGB bytes, that images with alpha are composited on.
    pub background: [u8; 3],
    /// What happens to files that cannot be read.
    pub unreadable: Unreadable,
    /// The most bytes of decoded `f32` pixels held in memory: a set within it
    /// is decoded once and held, a larger one is streamed from disk each epoch.
    /// Each [`ImageFolder::load`] checks it alone: after a [`split`](ImageFolder::split),
    /// the training and test parts together may hold up to twice the budget.
    pub memory_budget: u64,
    /// Threads that decode images (at least 1).
    pub workers: usize,
    /// Batches decoded ahead of training when streaming (at least 1).
    pub prefetch: usize,
    /// The largest file read; larger files count as unreadable.
    pub max_file_bytes: u64,
}

impl Default for ImageFolderOptions {
    /// 64×64 RGB without labels, composited on white, unreadable files skipped
    /// with a warning, a budget of [`MAX_DATASET_BYTES`], 2 workers, 4 batches
    /// of prefetch, files of at most [`MAX_FILE_BYTES`].
    fn default() -> Self {
        Self {
            height: 64,
            width: 64,
            channels: Channels::Rgb,
            labels: Labels::None,
            background: [255, 255, 255],
            unreadable: Unreadable::Warn,
            memory_budget: MAX_DATASET_BYTES,
            workers: 2,
            prefetch: 4,
            max_file_bytes: MAX_FILE_BYTES,
        }
    }
}

crate::setters::with_setters!(ImageFolderOptions {
    with_height(height: usize),
    with_width(width: usize),
    with_channels(channels: Channels),
    with_labels(labels: Labels),
    with_background(background: [u8; 3]),
    with_unreadable(unreadable: Unreadable),
    with_memory_budget(memory_budget: u64),
    with_workers(workers: usize),
    with_prefetch(prefetch: usize),
    with_max_file_bytes(max_file_bytes: u64),
});

impl ImageFolderOptions {
    /// Square images of `size × size` with `channels`, the other settings as
    /// [`Default`].
    pub fn square(size: usize, channels: Channels) -> Self {
        Self {
            height: size,
            width: size,
            channels,
            ..Self::default()
        }
    }

    /// The shape of every image.
    pub fn shape(&self) -> ImageShape {
        ImageShape::new(self.channels.count(), self.height, self.width)
    }

    pub(super) fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("height", self.height),
            ("width", self.width),
            ("workers", self.workers),
            ("prefetch", self.prefetch),
        ] {
            if value == 0 {
                return Err(Error::config(field, "must be positive, got 0"));
            }
        }
        let side = MAX_IMAGE_SIDE as usize;
        if self.height > side || self.width > side {
            return Err(Error::config(
                "height, width",
                format!(
                    "{}×{} is larger than {side} pixels a side",
                    self.height, self.width
                ),
            ));
        }
        Ok(())
    }
}

/// Decodes `files` on `opts.workers` threads, writing the pixels of file `i`
/// to `out[i · numel ..]` when `out` is given; returns the failures, by index.
pub(crate) fn decode_all(
    files: &[PathBuf],
    opts: &ImageFolderOptions,
    out: Option<&mut [f32]>,
) -> Vec<(usize, String)> {
    let numel = opts.shape().numel();
    let next = AtomicUsize::new(0);
    let workers = opts.workers.min(files.len()).max(1);
    // Every worker takes the next file in turn; a held set's slots are handed
    // out as disjoint slices, one per file.
    let slots: Vec<std::sync::Mutex<Option<&mut [f32]>>> = match out {
        Some(out) => out
            .chunks_mut(numel)
            .map(|c| std::sync::Mutex::new(Some(c)))
            .collect(),
        None => Vec::new(),
    };
    let mut failures: Vec<(usize, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut failed = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        match decode_file(path, opts) {
                            Ok(px) => {
                                if let Some(slot) = slots.get(i) {
                                    if let Ok(mut slot) = slot.lock() {
                                        if let Some(dst) = slot.take() {
                                            dst.copy_from_slice(&px);
                                        }
                                    }
                                }
                            }
                            Err(reason) => failed.push((i, reason)),
                        }
                    }
                    failed
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![(usize::MAX, "a decoding thread failed".into())])
            })
            .collect()
    });
    failures.retain(|(i, _)| *i < files.len());
    failures.sort_by_key(|(i, _)| *i);
    failures
}

/// Reads, decodes and converts one file to `[c, h, w]` values in `[0, 1]`.
pub(crate) fn decode_file(
    path: &Path,
    opts: &ImageFolderOptions,
) -> std::result::Result<Vec<f32>, String> {
    let bytes = read_limited(path, opts.max_file_bytes)?;
    // A decoder that panics on a malformed file must not take the run down.
    std::panic::catch_unwind(|| {
        let (decoded, _permit) = decode_bytes(&bytes)?;
        Ok(convert(&decoded, opts))
    })
    .map_err(|_| "the decoder failed on this file".to_string())?
    .map_err(|reason: String| one_line(&reason))
}

/// `text` with its lines joined by spaces (decoders' messages may hold
/// line breaks, and a warning names each file on one line).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The bytes of decoded pixels all threads of the process hold at once,
/// bounded by [`MAX_DECODE_BYTES`].
static DECODING: DecodeBudget = DecodeBudget {
    used: std::sync::Mutex::new(0),
    freed: std::sync::Condvar::new(),
};

/// A count of bytes in use, and a wait for room.
struct DecodeBudget {
    used: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
}

/// Room for one image's decoded pixels; given back when dropped.
struct Permit(u64);

impl DecodeBudget {
    /// Waits until `bytes` (at most [`MAX_DECODE_BYTES`]) fit beside what
    /// other threads hold.
    fn acquire(&'static self, bytes: u64) -> Permit {
        let bytes = bytes.min(MAX_DECODE_BYTES);
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + bytes > MAX_DECODE_BYTES {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += bytes;
        Permit(bytes)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut used = DECODING.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.0;
        DECODING.freed.notify_all();
    }
}

/// The bytes of a regular file of at most `max` bytes.
fn read_limited(path: &Path, max: u64) -> std::result::Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() == 0 {
        return Err("empty file".into());
    }
    if meta.len() > max {
        return Err(format!(
            "{} bytes, more than the limit of {max}",
            meta.len()
        ));
    }
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("more than the limit of {max} bytes"));
    }
    Ok(bytes)
}

/// Decodes PNG or JPEG bytes (the format from the bytes, not the name) under
/// the decoding limits, once the decoded size (read from the header) fits in
/// [`MAX_DECODE_BYTES`] beside what other threads are decoding.
fn decode_bytes(bytes: &[u8]) -> std::result::Result<(DynamicImage, Permit), String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    let size = decoder.total_bytes();
    if size > MAX_DECODE_BYTES {
        return Err(format!(
            "{w}×{h} pixels of {:?} take {size} bytes decoded, more than the limit of {MAX_DECODE_BYTES}",
            decoder.color_type()
        ));
    }
    let permit = DECODING.acquire(size);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    if image.width() == 0 || image.height() == 0 {
        return Err(format!(
            "an image of {}×{} pixels",
            image.width(),
            image.height()
        ));
    }
    Ok((image, permit))
}

/// The centre crop of `image` with the aspect ratio of the target, composited
/// on the background, resized to the target (bilinear, widened when shrinking)
/// and converted to `[c, h, w]` values in `[0, 1]`.
fn convert(image: &DynamicImage, opts: &ImageFolderOptions) -> Vec<f32> {
    let (w, h) = (u64::from(image.width()), u64::from(image.height()));
    let (tw, th) = (opts.width as u64, opts.height as u64);
    // The largest centred box of aspect tw : th inside w × h.
    let (cw, ch) = if w * th > h * tw {
        (((h * tw + th / 2) / th).clamp(1, w), h)
    } else {
        (w, ((w * th + tw / 2) / tw).clamp(1, h))
    };
    let (x0, y0) = ((w - cw) / 2, (h - ch) / 2);
    let bg = opts.background.map(f32::from);
    let rgb = if cw * ch * 4 > REDUCE_ABOVE_BYTES {
        reduce(image, (x0, y0, cw, ch), (tw, th), bg)
    } else {
        let cropped = image.crop_imm(x0 as u32, y0 as u32, cw as u32, ch as u32);
        let rgba = cropped.to_rgba8();
        let mut rgb = RgbImage::new(rgba.width(), rgba.height());
        for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
            *dst = image::Rgb(composite(src.0, bg));
        }
        rgb
    };
    let rgb = if (rgb.width(), rgb.height()) == (tw as u32, th as u32) {
        rgb
    } else {
        image::imageops::resize(&rgb, tw as u32, th as u32, FilterType::Triangle)
    };
    rgb_values(&rgb, opts)
}

/// An RGBA pixel composited on the background `bg`.
fn composite(px: [u8; 4], bg: [f32; 3]) -> [u8; 3] {
    let a = f32::from(px[3]) / 255.0;
    let mut out = [0u8; 3];
    for ((d, &c), &b) in out.iter_mut().zip(&px[..3]).zip(&bg) {
        *d = (a * f32::from(c) + (1.0 - a) * b).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// The crop box `(x0, y0, cw, ch)` of `image` reduced by a whole factor to at
/// least twice the target `(tw, th)` a side: each output pixel the mean of a
/// block of composited pixels, converted one row of the crop at a time, so
/// nothing the size of the crop is allocated.
fn reduce(
    image: &DynamicImage,
    (x0, y0, cw, ch): (u64, u64, u64, u64),
    (tw, th): (u64, u64),
    bg: [f32; 3],
) -> RgbImage {
    let f = (cw / (2 * tw)).min(ch / (2 * th)).max(1);
    let (ow, oh) = ((cw / f).max(1), (ch / f).max(1));
    let mut out = RgbImage::new(ow as u32, oh as u32);
    let mut sums = vec![[0u64; 3]; ow as usize];
    let n = f * f;
    for oy in 0..oh {
        sums.iter_mut().for_each(|s| *s = [0; 3]);
        for y in oy * f..(oy + 1) * f {
            let row = image
                .crop_imm(x0 as u32, (y0 + y) as u32, (ow * f) as u32, 1)
                .to_rgba8();
            for (sum, block) in sums
                .iter_mut()
                .zip(row.as_raw().chunks_exact(4 * f as usize))
            {
                for px in block.chunks_exact(4) {
                    let c = composite([px[0], px[1], px[2], px[3]], bg);
                    for (s, v) in sum.iter_mut().zip(c) {
                        *s += u64::from(v);
                    }
                }
            }
        }
        for (ox, sum) in sums.iter().enumerate() {
            let px = sum.map(|s| ((s + n / 2) / n) as u8);
            out.put_pixel(ox as u32, oy as u32, image::Rgb(px));
        }
    }
    out
}

/// `[c, h, w]` values in `[0, 1]` of an RGB image of the target size.
fn rgb_values(rgb: &RgbImage, opts: &ImageFolderOptions) -> Vec<f32> {
    let plane = opts.width * opts.height;
    match opts.channels {
        Channels::Rgb => {
            let mut out = vec![0.0f32; 3 * plane];
            for (p, px) in rgb.pixels().enumerate() {
                for k in 0..3 {
                    out[k * plane + p] = f32::from(px.0[k]) / 255.0;
                }
            }
            out
        }
        Channels::Grey => rgb
            .pixels()
            .map(|px| {
                let [r, g, b] = px.0.map(f32::from);
                ((0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0).clamp(0.0, 1.0)
            })
            .collect(),
    }
}
