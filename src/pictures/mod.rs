//! Pictures of models and their training: image grids, animated GIFs, latent
//! manifolds, plots, digit grids and interpolations, and self-contained HTML
//! latent and code explorers (feature `pictures`, on by default).
//!
//! Every function takes plain data or candle tensors of pixels in `[0, 1]`,
//! shaped `[n, c, h, w]` with `c` = 1 (grey) or 3 (RGB), the shape
//! [`Model::reconstruct`](crate::models::Model::reconstruct),
//! [`Model::decode`](crate::models::Model::decode) and
//! [`Model::sample`](crate::models::Model::sample) return. Pixels become bytes
//! as `round(clamp(p, 0, 1) · 255)`.
//!
//! | file | what it makes |
//! |---|---|
//! | [`image_grid`], [`comparison_grid`], [`denoising_triplets`], [`save_png`] | tiles of images, originals over reconstructions, noisy / clean / denoised |
//! | [`write_gif`], [`FrameRecorder`] | an animated GIF, e.g. one frame per epoch |
//! | [`normal_quantile_grid`], [`linear_grid`], [`manifold`] | the decoded grid of a 2-D latent space |
//! | [`latent_scatter`], [`loss_curves`], [`active_units_plot`] | plots (plotters, PNG) |
//! | [`digit_grid`], [`interpolation_strip`] | digit-conditioned samples; a walk between two codes |
//! | [`write_latent_explorer`] | one HTML file with sliders that runs the decoder live |
//! | [`write_code_explorer`] | one HTML file of a VQ-VAE's or Gumbel-softmax VAE's codes, clicked to change, decoded live |
//!
//! Plot text is rendered with DejaVu Sans, compiled into vaekit (see
//! `assets/fonts/README.md`), so no system fonts are needed.
//!
//! ```
//! use vaekit::candle_core::Device;
//! use vaekit::rand::SeedableRng;
//! use vaekit::Generator;
//! use vaekit::models::{Model, Preset};
//! use vaekit::pictures::{image_grid, GridStyle};
//!
//! let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0)?;
//! let mut rng = Generator::seed_from_u64(7);
//! let samples = model.sample(12, &mut rng)?; // [12, 1, 28, 28]
//! let style = GridStyle::default()
//!     .with_scale(2)
//!     .with_padding(2)
//!     .with_background(255);
//! let grid = image_grid(&samples, 6, style)?;
//! assert_eq!((grid.width(), grid.height()), (6 * (28 * 2 + 2) + 2, 2 * (28 * 2 + 2) + 2));
//! # Ok::<(), vaekit::Error>(())
//! ```

mod code_explorer;
mod digits;
mod explorer;
mod gif;
mod grid;
mod labels;
mod manifold;
mod page;
mod plots;

pub use code_explorer::{write_code_explorer, CodeExplorerOptions, CodeSpace};
pub use digits::{digit_grid, interpolation_strip};
pub use explorer::{write_latent_explorer, ExplorerOptions, LatentScatter, SliderRange};
pub use gif::{write_gif, FrameRecorder};
pub use grid::{comparison_grid, denoising_triplets, image_grid, save_png, GridStyle};
pub use labels::{caption, label_grid, manifold_labels, GridLabels};
pub use manifold::{
    inverse_normal_cdf, linear_grid, manifold, manifold_codes, normal_quantile_grid,
};
pub use plots::{
    active_units_plot, latent_scatter, loss_curves, loss_panels, LossPanel, BAR_PLOT_SIZE,
    LOSS_PLOT_SIZE, SCATTER_PLOT_SIZE,
};

use std::path::Path;

use candle_core::Tensor;

use crate::nets::Decoder;
use crate::Error;

/// Pixels `[n, c, h, w]` in `[0, 1]` of codes `z` `[n, latent]` decoded by
/// `decoder` in evaluation mode, with `condition` `[n, k]` appended to each
/// code for a decoder that takes `[z | condition]`.
pub(crate) fn decode_codes<D: Decoder + ?Sized>(
    decoder: &D,
    z: &Tensor,
    condition: Option<&Tensor>,
) -> crate::Result<Tensor> {
    let input = match condition {
        Some(c) => Tensor::cat(&[z, c], 1)?, // [n, latent + k]
        None => z.clone(),
    };
    let want = decoder.input_dim();
    let got = input.dim(1)?;
    if got != want {
        return Err(Error::config(
            "decoder.input_dim",
            format!("the decoder takes {want} values per code, got {got} (code and condition)"),
        ));
    }
    let out = decoder.forward_t(&input, false)?; // [n, c, h, w]
    Ok(decoder.output_kind().to_pixels(&out)?)
}

/// An [`Error::Io`] for a picture that could not be encoded or written to `path`.
pub(crate) fn picture_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(reason.to_string()))
}

/// An [`Error::Io`] from an `image` error while writing `path`.
pub(crate) fn image_error(path: &Path, e: image::ImageError) -> Error {
    match e {
        image::ImageError::IoError(io) => Error::io(path, io),
        other => picture_error(path, other),
    }
}
