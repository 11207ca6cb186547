//! Pictures of what a model generates: digit-conditioned grids (one style per
//! row, one digit per column) and interpolation strips between two images.

use candle_core::Tensor;
use image::DynamicImage;
use rand::RngCore;

use super::grid::{image_grid, GridStyle};
use crate::models::{Model, Network};
use crate::{Error, Result};

/// Samples of a digit-conditioned VAE: `rows` rows, each decoded from one draw
/// of `z ~ N(0, I)` taken from `rng`, and one column per class (digits 0–9
/// for MNIST), so a row shows every digit in one style. Made with
/// [`DigitConditionedVae::generate_grid`](crate::models::DigitConditionedVae::generate_grid)
/// and laid out by [`image_grid`] in `style`.
///
/// # Errors
///
/// [`Error::Config`] if the model is not a digit-conditioned VAE or `rows` is
/// 0; [`Error::Candle`] if decoding fails; as [`image_grid`].
pub fn digit_grid(
    model: &Model,
    rows: usize,
    rng: &mut dyn RngCore,
    style: GridStyle,
) -> Result<DynamicImage> {
    let Network::DigitCvae(m) = model.network() else {
        return Err(Error::config(
            "model",
            "a digit grid needs a digit-conditioned VAE",
        ));
    };
    if rows == 0 {
        return Err(Error::config("rows", "must be at least 1"));
    }
    let pixels = m.generate_grid(rows, rng, model.device())?; // [rows·k, c, h, w]
    image_grid(&pixels, m.classes(), style)
}

/// One image `[1, c, h, w]` from `x`, which may also be `[c, h, w]`.
fn one_image(model: &Model, x: &Tensor, what: &str) -> Result<Tensor> {
    let s = model.input_shape();
    let want = [s.channels, s.height, s.width];
    match x.dims() {
        [c, h, w] if [*c, *h, *w] == want => Ok(x.unsqueeze(0)?),
        [1, c, h, w] if [*c, *h, *w] == want => Ok(x.clone()),
        dims => Err(Error::config(
            what,
            format!("expected one image [1, {s}] or [{s}], got {dims:?}"),
        )),
    }
}

/// A walk through the latent space from image `a` to image `b`: both are
/// encoded ([`Model::encode`]: the code of an autoencoder, the posterior mean
/// of a VAE), the codes are interpolated linearly in `steps` evenly spaced
/// steps, `z_i = (1 − t_i) · z_a + t_i · z_b` with `t_i = i / (steps − 1)`, and
/// each is decoded ([`Model::decode`]); the result is one row of `steps` tiles
/// laid out by [`image_grid`] in `style`, `a`'s reconstruction first.
///
/// `a` and `b` are single images `[1, c, h, w]` or `[c, h, w]` with pixels in
/// `[0, 1]`. A digit-conditioned VAE decodes with the digits `labels = (da, db)`:
/// steps with `t < 0.5` with digit `da`, the others with `db` (pass the same digit
/// twice to morph the style of one digit). Other models ignore `labels`.
///
/// # Errors
///
/// [`Error::Config`] if `steps < 2`, an image has the wrong shape, or a
/// digit-conditioned VAE gets no `labels` or a digit outside its classes;
/// [`Error::Candle`] if encoding or decoding fails.
pub fn interpolation_strip(
    model: &Model,
    a: &Tensor,
    b: &Tensor,
    steps: usize,
    labels: Option<(u32, u32)>,
    style: GridStyle,
) -> Result<DynamicImage> {
    if steps < 2 {
        return Err(Error::config(
            "steps",
            format!("{steps}: an interpolation needs at least 2 steps"),
        ));
    }
    let digits = match (model.network(), labels) {
        (Network::DigitCvae(m), Some((da, db))) => {
            if let Some(d) = [da, db].into_iter().find(|&d| d as usize >= m.classes()) {
                return Err(Error::config(
                    "labels",
                    format!("{d} is not one of the model's {} classes", m.classes()),
                ));
            }
            let digits: Vec<u32> = (0..steps)
                .map(|i| if 2 * i < steps - 1 { da } else { db })
                .collect();
            Some(Tensor::from_vec(digits, steps, model.device())?) // [steps]
        }
        (Network::DigitCvae(_), None) => {
            return Err(Error::config(
                "labels",
                "a digit-conditioned VAE decodes with chosen digits: pass Some((from, to))",
            ))
        }
        _ => None,
    };
    let a = one_image(model, a, "a")?.to_device(model.device())?;
    let b = one_image(model, b, "b")?.to_device(model.device())?;
    let codes = model.encode(&Tensor::cat(&[&a, &b], 0)?)?; // [2, latent]
    let (za, zb) = (codes.get(0)?, codes.get(1)?); // [latent] each
    let ts: Vec<f32> = (0..steps).map(|i| i as f32 / (steps - 1) as f32).collect();
    let t = Tensor::from_vec(ts, (steps, 1), model.device())?; // [steps, 1]
    let z = t
        .affine(-1.0, 1.0)?
        .broadcast_mul(&za.unsqueeze(0)?)?
        .broadcast_add(&t.broadcast_mul(&zb.unsqueeze(0)?)?)?; // [steps, latent]
    let pixels = model.decode(&z, digits.as_ref())?; // [steps, c, h, w]
    image_grid(&pixels, steps, style)
}
