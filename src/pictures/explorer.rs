//! The latent explorer: one self-contained HTML file with two sliders for the
//! code `(z1, z2)` of a model with a 2-D latent space, the decoded image, and
//! the test set's latent scatter — the slider widget of the Keras tutorial,
//! without a Python kernel.
//!
//! The decoder runs live in the page: its config (the model's
//! [`DecoderConfig`](crate::nets::DecoderConfig) as JSON) and weights (every
//! `decoder.*` tensor, as base64 of little-endian float32) are embedded, and
//! `decoder.js`, shared with the [code explorer](super::write_code_explorer),
//! implements its forward pass in plain JavaScript — dense decoders (linear
//! layers and their activation, output kind), conv decoders (linear `fc` and
//! its activation, reshape, blocks of transposed convolution or nearest
//! up-sampling and convolution, batch norm with running statistics, ReLU,
//! leaky ReLU, sigmoid, tanh or identity, final sigmoid or logits) and
//! residual decoders (3×3 convolution of the code map, residual blocks, the
//! same up blocks). `explorer.js` runs the sliders and the plane. The page
//! loads nothing from the network.

use std::path::Path;

use serde_json::{json, Value};

use super::page::{embed_decoder, html_page};
use crate::nets::Decoder;
use crate::{Error, Result};

const BODY: &str = include_str!("explorer.html");
const SCRIPT: &str = include_str!("explorer.js");

/// The sliders' range for a VAE (the prior's ±4σ), and for an autoencoder
/// without a scatter to take the extent from.
const DEFAULT_RANGE: (f64, f64) = (-4.0, 4.0);

/// Points of the latent plane and one label per point, e.g. the test set's
/// codes from [`Model::encode`](crate::models::Model::encode) and their digits.
pub type LatentScatter<'a> = (&'a [(f32, f32)], &'a [u8]);

/// The range of the explorer's two sliders.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum SliderRange {
    /// `[−4, 4]` on both axes: ±4σ of a standard-normal prior (a VAE's).
    #[default]
    Prior,
    /// The scatter's extent plus 5 %, rounded out to 0.01 (an autoencoder's
    /// codes have no prior); `[−4, 4]` without a scatter.
    Scatter,
    /// Given ranges `[(z1_lo, z1_hi), (z2_lo, z2_hi)]`.
    Fixed([(f64, f64); 2]),
}

/// What the explorer shows besides the decoder: see [`write_latent_explorer`].
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct ExplorerOptions<'a> {
    /// Points of the latent plane with their labels, drawn under the sliders.
    pub scatter: Option<LatentScatter<'a>>,
    /// The sliders' range.
    pub range: SliderRange,
    /// For a decoder that takes `[z | one-hot class]`, the number of classes
    /// (the page gets a class selector); 0 for a decoder of `z` alone.
    pub classes: usize,
}

crate::setters::with_setters!(ExplorerOptions<'a> {
    with_scatter(scatter: Option<LatentScatter<'a>>),
    with_range(range: SliderRange),
    with_classes(classes: usize),
});

/// Writes the latent explorer of a `decoder` of 2-D codes to `path`: one HTML
/// file that needs no network, no external script and no font.
///
/// The page has two sliders, `z1` and `z2` (step 0.01, over `range`), a canvas
/// showing the decoded image scaled up to 280 × 280, and a second canvas with
/// the latent plane: the `scatter` points (e.g. the test set's codes and their
/// labels) coloured by label with a legend, and the current code marked by a
/// cross-hair. Clicking on the plane moves the sliders there. The plane shows
/// exactly the sliders' box. With `classes > 0` the decoder takes
/// `[z | one-hot class]` (the digit-conditioned VAE's), and the page gets a
/// class selector.
///
/// The decoder runs in JavaScript, from its [`Decoder::export`]: vaekit's
/// dense, conv and residual decoders (and boxes of them) export themselves;
/// another decoder type gets an error naming it.
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
/// [`Error::Config`] if the decoder does not take `2 + classes` values, cannot
/// be exported, or `points` and `labels` differ in length; [`Error::Io`]
/// naming `path` if it cannot be written; [`Error::Candle`] if a weight cannot
/// be read.
pub fn write_latent_explorer<D: Decoder + ?Sized>(
    decoder: &D,
    options: &ExplorerOptions<'_>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let html = latent_explorer_html(decoder, options)?;
    std::fs::write(path, html).map_err(|e| Error::io(path, e))
}

/// The explorer page as a string; see [`write_latent_explorer`].
fn latent_explorer_html<D: Decoder + ?Sized>(
    decoder: &D,
    options: &ExplorerOptions<'_>,
) -> Result<String> {
    let ExplorerOptions {
        scatter,
        range,
        classes,
    } = *options;
    let input = decoder.input_dim();
    if input != 2 + classes {
        let condition = if classes > 0 {
            format!(" (plus {classes} class values)")
        } else {
            String::new()
        };
        return Err(Error::config(
            "decoder.input_dim",
            format!("the latent explorer needs a 2-D latent space{condition}, this decoder takes {input} values"),
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
    let embedded = embed_decoder(decoder)?;
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
    let range = match range {
        SliderRange::Prior => [DEFAULT_RANGE, DEFAULT_RANGE],
        SliderRange::Scatter if !finite.is_empty() => [
            slider_range(finite.iter().map(|(p, _)| f64::from(p.0))),
            slider_range(finite.iter().map(|(p, _)| f64::from(p.1))),
        ],
        SliderRange::Scatter => [DEFAULT_RANGE, DEFAULT_RANGE],
        SliderRange::Fixed(r) => {
            for (i, (lo, hi)) in r.iter().enumerate() {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    return Err(Error::config(
                        format!("range[{i}]"),
                        format!("({lo}, {hi}) must be finite with low < high"),
                    ));
                }
            }
            r
        }
    };
    let scatter_json = scatter.map(|_| {
        let round = |v: f32| (f64::from(v) * 1e4).round() / 1e4;
        json!({
            "points": finite.iter().flat_map(|(p, _)| [round(p.0), round(p.1)]).collect::<Vec<f64>>(),
            "labels": finite.iter().map(|(_, l)| *l).collect::<Vec<u8>>(),
        })
    });
    let data = json!({
        "latent_dim": 2,
        "classes": classes,
        "decoder": embedded.config,
        "range": [[range[0].0, range[0].1], [range[1].0, range[1].1]],
        "scatter": scatter_json.unwrap_or(Value::Null),
        "weights": embedded.weights,
    });
    let kind = embedded.kind;
    let condition = if classes > 0 {
        format!(", conditioned on one of {classes} classes")
    } else {
        String::new()
    };
    let points = if finite.is_empty() {
        String::from("no scatter")
    } else {
        format!("{} points in the scatter", finite.len())
    };
    let subtitle = format!(
        "The {kind} decoder of a 2-D latent space{condition}, running in this page. Move the sliders or click on the latent plane. {points}."
    );
    Ok(html_page(
        "vaekit latent explorer",
        &subtitle,
        BODY,
        SCRIPT,
        &data,
    ))
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
