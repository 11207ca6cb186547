//! Pictures of what a model generates: digit-conditioned grids (one style per
//! row, one digit per column) and interpolation strips between two images.

use candle_core::Tensor;
use image::DynamicImage;
use rand::RngCore;

use super::decode_codes;
use super::grid::{image_grid, GridStyle};
use crate::latent::LatentPrior;
use crate::models::{Conditioner, TrainableExt, Vae};
use crate::nets::{Decoder, Encoder};
use crate::{Error, Result};

/// Samples of a class-conditioned VAE (the digit-conditioned one): `rows`
/// rows, each decoded from one draw of the prior taken from `rng`, and one
/// column per class (digits 0–9 for MNIST), so a row shows every digit in one
/// style. Made with [`Vae::generate_grid`] and laid out by [`image_grid`] in
/// `style`.
///
/// # Errors
///
/// [`Error::Config`] if `rows` is 0 or the VAE is not class-conditioned;
/// [`Error::Candle`] if decoding fails; as [`image_grid`].
pub fn digit_grid<E: Encoder, D: Decoder, P: LatentPrior, C: Conditioner>(
    model: &Vae<E, D, P, C>,
    rows: usize,
    rng: &mut dyn RngCore,
    style: GridStyle,
) -> Result<DynamicImage> {
    if rows == 0 {
        return Err(Error::config("rows", "must be at least 1"));
    }
    let classes = model
        .classes()
        .ok_or_else(|| Error::config("model", "a grid of digits needs a class-conditioned VAE"))?;
    let device = model.device().clone();
    let pixels = model.generate_grid(rows, rng, &device)?; // [rows·k, c, h, w]
    image_grid(&pixels, classes, style)
}

/// A walk through the latent space from code `za` to code `zb` (`[latent]` or
/// `[1, latent]`, e.g. two rows of [`Model::encode`](crate::models::Model::encode)
/// or of a posterior's means): `z_i = (1 − t_i) · z_a + t_i · z_b` with
/// `t_i = i / (steps − 1)`, each decoded by `decoder` (evaluation mode); one
/// row of `steps` tiles laid out by [`image_grid`] in `style`, `za` first.
///
/// A decoder that takes a condition after the code (the digit-conditioned VAE's
/// `[z | class vector]`) gets `conditions = Some((from, to))`: steps with
/// `t < 0.5` use `from`, the others `to` (pass the same vector twice to morph
/// the style of one digit; [`Vae::class_vector`] makes them).
///
/// # Errors
///
/// [`Error::Config`] if `steps < 2`, the codes differ in width, or the code and
/// condition widths do not add up to the decoder's input; [`Error::Candle`]
/// if decoding fails.
pub fn interpolation_strip<D: Decoder + ?Sized>(
    decoder: &D,
    za: &Tensor,
    zb: &Tensor,
    steps: usize,
    conditions: Option<(&[f32], &[f32])>,
    style: GridStyle,
) -> Result<DynamicImage> {
    if steps < 2 {
        return Err(Error::config(
            "steps",
            format!("{steps}: an interpolation needs at least 2 steps"),
        ));
    }
    let (za, zb) = (za.flatten_all()?, zb.flatten_all()?); // [latent] each
    let latent = za.dim(0)?;
    if zb.dim(0)? != latent {
        return Err(Error::config(
            "zb",
            format!("{} values, but za has {latent}", zb.dim(0)?),
        ));
    }
    let device = za.device().clone();
    let ts: Vec<f32> = (0..steps).map(|i| i as f32 / (steps - 1) as f32).collect();
    let t = Tensor::from_vec(ts, (steps, 1), &device)?; // [steps, 1]
    let z = t
        .affine(-1.0, 1.0)?
        .broadcast_mul(&za.unsqueeze(0)?)?
        .broadcast_add(&t.broadcast_mul(&zb.unsqueeze(0)?)?)?; // [steps, latent]
    let condition = match conditions {
        Some((from, to)) => {
            if from.len() != to.len() {
                return Err(Error::config(
                    "conditions",
                    format!(
                        "{} and {} values: must be the same width",
                        from.len(),
                        to.len()
                    ),
                ));
            }
            let rows: Vec<f32> = (0..steps)
                .flat_map(|i| if 2 * i < steps - 1 { from } else { to }.iter().copied())
                .collect();
            Some(Tensor::from_vec(rows, (steps, from.len()), &device)?) // [steps, k]
        }
        None => None,
    };
    let pixels = decode_codes(decoder, &z, condition.as_ref())?; // [steps, c, h, w]
    image_grid(&pixels, steps, style)
}
