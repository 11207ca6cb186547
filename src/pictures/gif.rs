//! Animated GIFs: frames (image grids, e.g. one per epoch of samples from a
//! fixed `z` or reconstructions of a fixed test batch) played in a loop.

use std::path::Path;
use std::time::Duration;

use candle_core::Tensor;
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, DynamicImage, Frame};

use super::grid::{image_grid, GridStyle};
use super::image_error;
use crate::{Error, Result};

/// Writes `frames` to `path` as an animated GIF that loops forever, showing each
/// frame for `delay` (GIF stores hundredths of a second: the delay is truncated
/// to them).
///
/// Frames with at most 256 distinct colours — every grey image — are stored
/// exactly; others are quantised to 256 colours.
///
/// # Errors
///
/// [`Error::Config`] if there are no frames or they differ in size;
/// [`Error::Io`] naming `path` if it cannot be written.
pub fn write_gif(frames: &[DynamicImage], delay: Duration, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let first = frames
        .first()
        .ok_or_else(|| Error::config("frames", "an animation needs at least one frame"))?;
    let size = (first.width(), first.height());
    if let Some(i) = frames.iter().position(|f| (f.width(), f.height()) != size) {
        return Err(Error::config(
            format!("frames[{i}]"),
            format!(
                "is {}×{}, frame 0 is {}×{}",
                frames[i].width(),
                frames[i].height(),
                size.0,
                size.1
            ),
        ));
    }
    // Encode in memory: the encoder writes the GIF trailer when dropped, where a
    // write error could not be reported.
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(Repeat::Infinite)
            .map_err(|e| image_error(path, e))?;
        let delay = Delay::from_saturating_duration(delay);
        encoder
            .encode_frames(
                frames
                    .iter()
                    .map(|f| Frame::from_parts(f.to_rgba8(), 0, 0, delay)),
            )
            .map_err(|e| image_error(path, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Collects one frame per call — typically from a training loop's per-epoch
/// hook — and writes them as an animated GIF with [`finish`](Self::finish).
///
/// ```no_run
/// # use candle_core::{Device, Tensor};
/// # use std::time::Duration;
/// use vaekit::pictures::{FrameRecorder, GridStyle};
///
/// let mut frames = FrameRecorder::new(8, GridStyle::default(), Duration::from_millis(300));
/// for epoch in 0..3 {
///     // … train one epoch, then decode a fixed batch of z:
///     let pixels = Tensor::full(epoch as f32 / 2.0, (16, 1, 28, 28), &Device::Cpu)?;
///     frames.push(&pixels)?;
/// }
/// frames.finish("samples.gif")?;
/// # Ok::<(), vaekit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FrameRecorder {
    cols: usize,
    style: GridStyle,
    delay: Duration,
    frames: Vec<DynamicImage>,
}

impl FrameRecorder {
    /// A recorder that renders each pushed batch as an [`image_grid`] of `cols`
    /// columns in `style`, and shows each frame for `delay`.
    pub fn new(cols: usize, style: GridStyle, delay: Duration) -> Self {
        Self {
            cols,
            style,
            delay,
            frames: Vec::new(),
        }
    }

    /// Adds a frame: the grid of `pixels` `[n, c, h, w]` in `[0, 1]`.
    ///
    /// # Errors
    ///
    /// As [`image_grid`]; [`Error::Config`] if the grid's size differs from the
    /// first frame's.
    pub fn push(&mut self, pixels: &Tensor) -> Result<()> {
        let frame = image_grid(pixels, self.cols, self.style)?;
        self.push_image(frame)
    }

    /// Adds a frame that is already a picture.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if its size differs from the first frame's.
    pub fn push_image(&mut self, frame: DynamicImage) -> Result<()> {
        if let Some(first) = self.frames.first() {
            if (first.width(), first.height()) != (frame.width(), frame.height()) {
                return Err(Error::config(
                    format!("frames[{}]", self.frames.len()),
                    format!(
                        "is {}×{}, the first frame is {}×{}",
                        frame.width(),
                        frame.height(),
                        first.width(),
                        first.height()
                    ),
                ));
            }
        }
        self.frames.push(frame);
        Ok(())
    }

    /// Number of frames so far.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames so far.
    pub fn frames(&self) -> &[DynamicImage] {
        &self.frames
    }

    /// Writes the frames to `path` as a looping GIF; see [`write_gif`].
    ///
    /// # Errors
    ///
    /// As [`write_gif`] (including when no frame was pushed).
    pub fn finish(self, path: impl AsRef<Path>) -> Result<()> {
        write_gif(&self.frames, self.delay, path)
    }
}
