//! The checks a model makes of its parts, in one place: the widths and
//! image shapes where encoder, latent and decoder meet, and a non-empty batch.

use candle_core::{Result, Tensor};

use crate::nets::ImageShape;
use crate::{Error, Result as VResult};

/// Refuses an empty batch before it reaches a kernel.
pub(crate) fn non_empty(xs: &Tensor) -> Result<()> {
    if xs.dims().first().is_none_or(|&b| b == 0) {
        candle_core::bail!("an empty batch {:?}: no image to work on", xs.dims());
    }
    Ok(())
}

/// The checks every VAE-like model makes of its parts, in one place: a
/// positive latent width, an encoder giving `[mean | log-variance]`
/// (`2 × latent`), a decoder taking `latent + condition` values, and the same
/// image shape at both ends.
pub(crate) fn check_vae_parts(
    encoder_out: usize,
    encoder_input: ImageShape,
    decoder_in: usize,
    decoder_output: ImageShape,
    latent: usize,
    condition: usize,
) -> VResult<()> {
    if latent == 0 {
        return Err(Error::config("latent_dim", "must be positive"));
    }
    for (v, field) in [(latent, "latent_dim"), (condition, "classes")] {
        if v > crate::nets::MAX_WIDTH {
            return Err(Error::config(
                field,
                format!(
                    "{v} is more than the largest width vaekit accepts, {}",
                    crate::nets::MAX_WIDTH
                ),
            ));
        }
    }
    if encoder_out != 2 * latent {
        return Err(Error::config(
            "encoder.output_dim",
            format!("{encoder_out} must be 2 × latent_dim = {}", 2 * latent),
        ));
    }
    if decoder_in != latent + condition {
        let what = if condition == 0 {
            format!("latent_dim = {latent}")
        } else {
            format!("latent_dim + classes = {}", latent + condition)
        };
        return Err(Error::config(
            "decoder.input_dim",
            format!("{decoder_in} must equal {what}"),
        ));
    }
    check_same_shape(encoder_input, decoder_output)
}

/// The decoder must give back images of the shape the encoder takes.
pub(crate) fn check_same_shape(
    encoder_input: ImageShape,
    decoder_output: ImageShape,
) -> VResult<()> {
    if encoder_input != decoder_output {
        return Err(Error::config(
            "decoder.output",
            format!("{decoder_output} does not match the encoder's input {encoder_input}"),
        ));
    }
    Ok(())
}
