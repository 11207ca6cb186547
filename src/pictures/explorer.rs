//! The latent explorer: one self-contained HTML file with two sliders for the
//! code `(z1, z2)` of a model with a 2-D latent space, the decoded image, and
//! the test set's latent scatter — the slider widget of the Keras tutorial,
//! without a Python kernel.
//!
//! The decoder runs live in the page: its config (the model's
//! [`DecoderConfig`] as JSON) and weights (every `decoder.*` tensor, as base64
//! of little-endian float32) are embedded, and `explorer.js` implements its
//! forward pass in plain JavaScript — dense decoders (linear layers and their
//! activation, output kind) and conv decoders (linear `fc` and its activation,
//! reshape, blocks of transposed convolution or nearest up-sampling and
//! convolution, batch norm with running statistics, ReLU, leaky ReLU,
//! sigmoid, tanh or identity, final sigmoid or logits). The page loads nothing
//! from the network.

use std::path::Path;

use base64::Engine;
use candle_core::{DType, Device};
use serde_json::{json, Map, Value};

use crate::models::{DecoderConfig, Model, ModelConfig};
use crate::{Error, Result};

const TEMPLATE: &str = include_str!("explorer.html");
const SCRIPT: &str = include_str!("explorer.js");

/// The sliders' range for a VAE (the prior's ±4σ), and for an autoencoder
/// without a scatter to take the extent from.
const DEFAULT_RANGE: (f64, f64) = (-4.0, 4.0);

/// Points of the latent plane and one label per point, e.g. the test set's
/// codes from [`Model::encode`] and their digits.
pub type LatentScatter<'a> = (&'a [(f32, f32)], &'a [u8]);

/// Writes the latent explorer of `model` to `path`: one HTML file that needs
/// no network, no external script and no font.
///
/// The page has two sliders, `z1` and `z2` (step 0.01), a canvas showing the
/// decoded image scaled up to 280 × 280, and a second canvas with the latent
/// plane: the `scatter` points (e.g. the test set's codes from
/// [`Model::encode`] and their digit labels) coloured by label with a legend,
/// and the current code marked by a cross-hair. Clicking on the plane moves
/// the sliders there. The sliders span `[−4, 4]` for a VAE; for an autoencoder
/// they span the scatter's extent (plus 5 %, rounded out to 0.01), or
/// `[−4, 4]` without a scatter. The plane shows exactly the sliders' box. A
/// digit-conditioned VAE also gets a digit selector.
///
/// For scripts and tests the page defines `window.vaekitDecode(z1, z2)`, which
/// returns the decoded pixels `[c, h, w]` in `[0, 1]` as a `Float32Array`,
/// and keeps the pixels of the last slider input in `window.vaekitLastPixels`.
/// Opened as `page.html?test=1&z1=0.5&z2=-0.75` (optionally `&digit=3` and
/// `&click=a,b`), it sets the sliders, dispatches their input event (and a
/// click on the plane at the code `(a, b)`), and writes the resulting values
/// as JSON into `<pre id="result">`: `z`, `shape`, `pixels`, `direct` (from
/// `vaekitDecode`), `after_click`, `click_pixels` and `error`.
///
/// # Errors
///
/// [`Error::Config`] if the model's latent space is not 2-D or `points` and
/// `labels` differ in length; [`Error::Io`] naming `path` if it cannot be
/// written; [`Error::Candle`] if a weight cannot be read.
pub fn write_latent_explorer(
    model: &Model,
    scatter: Option<LatentScatter<'_>>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let html = latent_explorer_html(model, scatter)?;
    std::fs::write(path, html).map_err(|e| Error::io(path, e))
}

/// The explorer page as a string; see [`write_latent_explorer`].
fn latent_explorer_html(model: &Model, scatter: Option<LatentScatter<'_>>) -> Result<String> {
    if model.latent_dim() != 2 {
        return Err(Error::config(
            "model.latent_dim",
            format!(
                "the latent explorer needs a 2-D latent space, this model's has {} dimensions",
                model.latent_dim()
            ),
        ));
    }
    if let Some((points, labels)) = scatter {
        if points.len() != labels.len() {
            return Err(Error::config(
                "scatter",
                format!(
                    "{} labels for {} points: need one label per point",
                    labels.len(),
                    points.len()
                ),
            ));
        }
    }
    let (family, decoder, classes): (&str, &DecoderConfig, usize) = match model.config() {
        ModelConfig::Autoencoder(c) => ("autoencoder", &c.decoder, 0),
        ModelConfig::Vae(c) => ("VAE", &c.decoder, 0),
        ModelConfig::DigitCvae(c) => ("digit-conditioned VAE", &c.decoder, c.classes),
    };
    let finite: Vec<((f32, f32), u8)> = scatter
        .map(|(points, labels)| {
            points
                .iter()
                .zip(labels)
                .filter(|((x, y), _)| x.is_finite() && y.is_finite())
                .map(|(&p, &l)| (p, l))
                .collect()
        })
        .unwrap_or_default();
    let range = match model.config() {
        ModelConfig::Autoencoder(_) if !finite.is_empty() => [
            slider_range(finite.iter().map(|(p, _)| f64::from(p.0))),
            slider_range(finite.iter().map(|(p, _)| f64::from(p.1))),
        ],
        _ => [DEFAULT_RANGE, DEFAULT_RANGE],
    };
    let scatter_json = scatter.map(|_| {
        let round = |v: f32| (f64::from(v) * 1e4).round() / 1e4;
        json!({
            "points": finite.iter().flat_map(|(p, _)| [round(p.0), round(p.1)]).collect::<Vec<f64>>(),
            "labels": finite.iter().map(|(_, l)| *l).collect::<Vec<u8>>(),
        })
    });
    let mut weights = Map::new();
    for (name, tensor) in model.params().snapshot() {
        if !name.starts_with("decoder.") {
            continue;
        }
        let values = tensor
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        weights.insert(
            name,
            json!({
                "shape": tensor.dims(),
                "data": base64::engine::general_purpose::STANDARD.encode(bytes),
            }),
        );
    }
    let data = json!({
        "family": family,
        "latent_dim": 2,
        "classes": classes,
        "decoder": serde_json::to_value(decoder)
            .map_err(|e| Error::config("decoder", format!("does not serialise: {e}")))?,
        "range": [[range[0].0, range[0].1], [range[1].0, range[1].1]],
        "scatter": scatter_json.unwrap_or(Value::Null),
        "weights": Value::Object(weights),
    });
    // `<` never appears in JSON outside strings; escaped, no `</script>` can end
    // the data block early.
    let data = data.to_string().replace('<', "\\u003c");
    let kind = match decoder {
        DecoderConfig::Dense(_) => "dense decoder",
        DecoderConfig::Conv(_) => "convolutional decoder",
    };
    let points = if finite.is_empty() {
        String::from("no scatter")
    } else {
        format!("{} points in the scatter", finite.len())
    };
    let subtitle = format!(
        "A {family} with a {kind}, running in this page. Move the sliders or click on the latent plane. {points}."
    );
    Ok(TEMPLATE
        .replace("{{TITLE}}", "vaekit latent explorer")
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{SUBTITLE}}", &subtitle)
        .replace("{{SCRIPT}}", SCRIPT)
        .replace("{{MODEL_JSON}}", &data))
}

/// The extent of `values` widened by 5 % on each side and rounded out to the
/// sliders' step of 0.01; `[−4, 4]` if it is empty or a single value.
fn slider_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi.is_finite()) || hi - lo < 0.02 {
        return DEFAULT_RANGE;
    }
    let pad = 0.05 * (hi - lo);
    (
        ((lo - pad) * 100.0).floor() / 100.0,
        ((hi + pad) * 100.0).ceil() / 100.0,
    )
}
