//! Image grids: tiles of `[n, c, h, w]` pixel tensors laid out in rows, with
//! nearest-neighbour up-scaling and padding; originals over reconstructions.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};

use super::image_error;
use crate::{Error, Result};

/// How [`image_grid`] lays out its tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GridStyle {
    /// Nearest-neighbour up-scaling factor of every tile (≥ 1).
    pub scale: usize,
    /// Pixels of background between tiles and around the grid.
    pub padding: usize,
    /// Grey level of the background and padding (0 black, 255 white).
    pub background: u8,
}

impl Default for GridStyle {
    /// Tiles at 2× with 2 pixels of mid-grey between them.
    fn default() -> Self {
        Self {
            scale: 2,
            padding: 2,
            background: 128,
        }
    }
}

crate::setters::with_setters!(GridStyle {
    with_scale(scale: usize),
    with_padding(padding: usize),
    with_background(background: u8),
});

/// Images as bytes: `[n, c, h, w]`, row-major.
#[derive(Debug, Clone)]
pub(crate) struct ImageBytes {
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub bytes: Vec<u8>,
}

impl ImageBytes {
    /// The value of channel `c` at row `y`, column `x` of image `i`.
    fn at(&self, i: usize, c: usize, y: usize, x: usize) -> u8 {
        self.bytes[((i * self.channels + c) * self.height + y) * self.width + x]
    }
}

/// One pixel value in `[0, 1]` as a byte: `round(clamp(p, 0, 1) · 255)`; NaN is 0.
pub(crate) fn to_byte(p: f32) -> u8 {
    if p.is_nan() {
        0
    } else {
        (p.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Reads `pixels` `[n, c, h, w]` (c ∈ {1, 3}, values in `[0, 1]`) as bytes.
pub(crate) fn pixels_to_bytes(pixels: &Tensor, what: &str) -> Result<ImageBytes> {
    let (n, channels, height, width) = match pixels.dims() {
        &[n, c, h, w] if n > 0 && (c == 1 || c == 3) && h > 0 && w > 0 => (n, c, h, w),
        dims => {
            return Err(Error::config(
                what,
                format!(
                    "expected pixels [n, c, h, w] with n, h, w > 0 and c ∈ {{1, 3}}, got {dims:?}"
                ),
            ))
        }
    };
    let values = pixels
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(ImageBytes {
        n,
        channels,
        height,
        width,
        bytes: values.into_iter().map(to_byte).collect(),
    })
}

/// Draws the tiles of `cells` (row-major, `cols` per row; `None` leaves a cell
/// empty) taken from `images`.
fn render(
    images: &ImageBytes,
    cells: &[Option<usize>],
    cols: usize,
    style: GridStyle,
) -> Result<DynamicImage> {
    if style.scale == 0 {
        return Err(Error::config("style.scale", "must be at least 1"));
    }
    let rows = cells.len().div_ceil(cols);
    let (s, p) = (style.scale, style.padding);
    let (tile_w, tile_h) = (images.width * s, images.height * s);
    let width = cols * (tile_w + p) + p;
    let height = rows * (tile_h + p) + p;
    let (w32, h32) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => {
            return Err(Error::config(
                "style",
                format!("a {width}×{height} grid is too large for an image"),
            ))
        }
    };
    let channels = images.channels;
    let mut buf = vec![style.background; width * height * channels];
    for (cell, index) in cells.iter().enumerate() {
        let Some(i) = *index else { continue };
        let (x0, y0) = (
            p + (cell % cols) * (tile_w + p),
            p + (cell / cols) * (tile_h + p),
        );
        for y in 0..tile_h {
            let row = (y0 + y) * width;
            for x in 0..tile_w {
                let at = (row + x0 + x) * channels;
                for c in 0..channels {
                    buf[at + c] = images.at(i, c, y / s, x / s);
                }
            }
        }
    }
    // The buffer has exactly width · height · channels bytes, so these succeed.
    let image = match channels {
        1 => GrayImage::from_raw(w32, h32, buf).map(DynamicImage::ImageLuma8),
        _ => RgbImage::from_raw(w32, h32, buf).map(DynamicImage::ImageRgb8),
    };
    image.ok_or_else(|| Error::config("pixels", "grid buffer has the wrong size"))
}

/// Tiles `pixels` `[n, c, h, w]` (values in `[0, 1]`, `c` = 1 or 3) into a grid of
/// `cols` columns and `ceil(n / cols)` rows, image `i` at row `i / cols`, column
/// `i % cols`. Every tile is up-scaled `style.scale`× by repeating pixels, and
/// `style.padding` background pixels surround every tile, so the picture is
///
/// - width `cols · (w · scale + padding) + padding`,
/// - height `rows · (h · scale + padding) + padding`,
///
/// with cells after the last image left as background. Grey images give
/// [`DynamicImage::ImageLuma8`], RGB ones [`DynamicImage::ImageRgb8`]; a pixel `p`
/// becomes the byte `round(clamp(p, 0, 1) · 255)`.
///
/// # Errors
///
/// [`Error::Config`] if `pixels` is not `[n, c, h, w]` with `n ≥ 1` and
/// `c` ∈ {1, 3}, if `cols` or `style.scale` is 0, or if the grid is too large;
/// [`Error::Candle`] if the tensor cannot be read.
pub fn image_grid(pixels: &Tensor, cols: usize, style: GridStyle) -> Result<DynamicImage> {
    if cols == 0 {
        return Err(Error::config("cols", "must be at least 1"));
    }
    let images = pixels_to_bytes(pixels, "pixels")?;
    let cells: Vec<Option<usize>> = (0..images.n).map(Some).collect();
    render(&images, &cells, cols, style)
}

/// Originals over their reconstructions: a row of up to `cols` originals, the
/// row of their reconstructions below it, then the next pair of rows for the
/// next `cols` images, and so on (`2 · ceil(n / cols)` rows of `cols` cells, the
/// last pair partly empty when `cols` does not divide `n`). Original `i` sits in
/// row `2 · (i / cols)`, its reconstruction in the row below, both in column
/// `i % cols`. Sizes are as in [`image_grid`].
///
/// # Errors
///
/// [`Error::Config`] if the two tensors differ in shape or are not valid pixel
/// batches, or as in [`image_grid`].
pub fn comparison_grid(
    originals: &Tensor,
    reconstructions: &Tensor,
    cols: usize,
    style: GridStyle,
) -> Result<DynamicImage> {
    if cols == 0 {
        return Err(Error::config("cols", "must be at least 1"));
    }
    if originals.dims() != reconstructions.dims() {
        return Err(Error::config(
            "reconstructions",
            format!(
                "shape {:?} differs from the originals' {:?}",
                reconstructions.dims(),
                originals.dims()
            ),
        ));
    }
    let both = Tensor::cat(&[originals, reconstructions], 0)?; // [2n, c, h, w]
    let images = pixels_to_bytes(&both, "originals")?;
    let n = images.n / 2;
    let mut cells = Vec::with_capacity(2 * n.div_ceil(cols) * cols);
    for start in (0..n).step_by(cols) {
        for offset in [0, n] {
            cells.extend((start..start + cols).map(|i| (i < n).then_some(i + offset)));
        }
    }
    render(&images, &cells, cols, style)
}

/// Denoising triplets: for each image, its corrupted input, the clean image
/// and the model's reconstruction from the corrupted input, side by side —
/// `cols` triplets per row (`3 · cols` cells), triplet `i` in row
/// `i / cols`, columns `3 · (i % cols)` to `3 · (i % cols) + 2`. Sizes are
/// as in [`image_grid`].
///
/// # Errors
///
/// [`Error::Config`] if the three tensors differ in shape or are not valid
/// pixel batches, or as in [`image_grid`].
pub fn denoising_triplets(
    noisy: &Tensor,
    clean: &Tensor,
    denoised: &Tensor,
    cols: usize,
    style: GridStyle,
) -> Result<DynamicImage> {
    if cols == 0 {
        return Err(Error::config("cols", "must be at least 1"));
    }
    for (name, t) in [("clean", clean), ("denoised", denoised)] {
        if t.dims() != noisy.dims() {
            return Err(Error::config(
                name,
                format!(
                    "shape {:?} differs from the noisy images' {:?}",
                    t.dims(),
                    noisy.dims()
                ),
            ));
        }
    }
    let all = Tensor::cat(&[noisy, clean, denoised], 0)?; // [3n, c, h, w]
    let images = pixels_to_bytes(&all, "noisy")?;
    let n = images.n / 3;
    let mut cells = Vec::with_capacity(3 * n.div_ceil(cols) * cols);
    for start in (0..n).step_by(cols) {
        for i in start..start + cols {
            for offset in [0, n, 2 * n] {
                cells.push((i < n).then_some(i + offset));
            }
        }
    }
    render(&images, &cells, 3 * cols, style)
}

/// Writes `image` to `path` as PNG, whatever the file's extension.
///
/// # Errors
///
/// [`Error::Io`] naming `path` if the file cannot be written.
pub fn save_png(image: &DynamicImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    image
        .save_with_format(path, ImageFormat::Png)
        .map_err(|e| image_error(path, e))
}
