//! The code explorer: one self-contained HTML file for a model with discrete
//! codes — a VQ-VAE's grid of code indices, or a Gumbel-softmax VAE's
//! categorical variables — that shows the codes as cells coloured by code,
//! lets a click change one, and decodes the image again in the page.
//!
//! The decoder runs in JavaScript as in the [latent
//! explorer](super::write_latent_explorer) (`decoder.js`, from
//! [`Decoder::export`]); `code_explorer.js` turns the codes into the
//! decoder's input — a codebook lookup per cell for a VQ-VAE, one one-hot
//! vector per variable for a Gumbel-softmax VAE — and runs the page. The page
//! loads nothing from the network.

use std::path::Path;

use candle_core::Tensor;
use serde_json::json;

use super::page::{embed_decoder, float32_base64, html_page};
use crate::models::{GumbelVae, Model, VqVae};
use crate::nets::{Decoder, Encoder};
use crate::{Error, Result};

const BODY: &str = include_str!("code_explorer.html");
const SCRIPT: &str = include_str!("code_explorer.js");

/// What a model's discrete codes are and how they become its decoder's input.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CodeSpace {
    /// A VQ-VAE's: a grid of `h × w` indices into a `codebook` `[K, D]`; the
    /// decoder takes the grid's code vectors as a map `[D, h, w]`, flattened
    /// in NCHW order (what [`VqVae::codes_of`] gives).
    Codebook {
        /// The codebook `[K, D]`.
        codebook: Tensor,
        /// The grid `(h, w)`.
        grid: (usize, usize),
    },
    /// A Gumbel-softmax VAE's: `variables` categorical variables of `classes`
    /// classes; the decoder takes their one-hot vectors `[N, K]`, flattened.
    Categorical {
        /// The number of variables `N`.
        variables: usize,
        /// The classes `K` of each.
        classes: usize,
    },
}

impl CodeSpace {
    /// The codes of `vq`: its quantiser's codebook on its grid.
    pub fn of_vq_vae<E: Encoder, D: Decoder>(vq: &VqVae<E, D>) -> Self {
        CodeSpace::Codebook {
            codebook: vq.quantizer().codebook(),
            grid: vq.grid(),
        }
    }

    /// The codes of `model`: its `N` variables of `K` classes.
    pub fn of_gumbel_vae<E: Encoder, D: Decoder>(model: &GumbelVae<E, D>) -> Self {
        let latent = model.latent();
        CodeSpace::Categorical {
            variables: latent.variables,
            classes: latent.classes,
        }
    }

    /// The codes of a VQ-VAE or Gumbel-softmax VAE; `None` for a model of
    /// continuous codes.
    pub fn of(model: &Model) -> Option<Self> {
        match (model.as_vq_vae(), model.as_gumbel_vae()) {
            (Some(vq), _) => Some(Self::of_vq_vae(vq)),
            (_, Some(g)) => Some(Self::of_gumbel_vae(g)),
            _ => None,
        }
    }

    /// The number of cells: `h · w` codes, or `N` variables.
    pub fn cells(&self) -> usize {
        match self {
            CodeSpace::Codebook { grid, .. } => grid.0 * grid.1,
            CodeSpace::Categorical { variables, .. } => *variables,
        }
    }

    /// The values a cell can take: the codebook's `K` codes, or the `K`
    /// classes.
    pub fn codes(&self) -> usize {
        match self {
            CodeSpace::Codebook { codebook, .. } => codebook.dims().first().copied().unwrap_or(0),
            CodeSpace::Categorical { classes, .. } => *classes,
        }
    }

    /// The width of the decoder's input: `D · h · w`, or `N · K`.
    pub fn input_dim(&self) -> usize {
        match self {
            CodeSpace::Codebook { codebook, grid } => {
                codebook.dims().get(1).copied().unwrap_or(0) * grid.0 * grid.1
            }
            CodeSpace::Categorical { variables, classes } => variables * classes,
        }
    }

    /// What the codes are, in words.
    fn describe(&self) -> String {
        match self {
            CodeSpace::Codebook { grid, .. } => format!(
                "a grid of {}×{} codes from a codebook of {}",
                grid.0,
                grid.1,
                self.codes()
            ),
            CodeSpace::Categorical { variables, classes } => {
                format!("{variables} categorical variables of {classes} classes")
            }
        }
    }
}

/// What the code explorer starts from: see [`write_code_explorer`].
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct CodeExplorerOptions<'a> {
    /// The codes the page starts with (and its reset button returns to), one
    /// per cell in row-major order: e.g. a test image's, from
    /// [`VqVae::encode_indices`] or [`GumbelVae::encode_classes`]. All 0
    /// when absent.
    pub start: Option<&'a [u32]>,
}

crate::setters::with_setters!(CodeExplorerOptions<'a> {
    with_start(start: Option<&'a [u32]>),
});

/// Writes the code explorer of a `decoder` of discrete codes to `path`: one
/// HTML file that needs no network, no external script and no font.
///
/// The page shows the decoded image scaled up to 280 × 280, the codes as a
/// grid of cells coloured by code with the code's number (a VQ-VAE's `h × w`
/// grid; a Gumbel-softmax VAE's `N` variables in rows of `⌈√N⌉`), a number
/// input with the chosen code's colour, and a palette of the `K` codes.
/// Clicking a cell gives it the chosen code and decodes again; clicking a
/// cell that already has it steps cell and choice to the next code;
/// shift-clicking a cell chooses its code; the palette chooses a code; reset
/// returns to the start.
///
/// The decoder runs in JavaScript, from its [`Decoder::export`]: vaekit's
/// dense, conv and residual decoders (and boxes of them) export themselves;
/// another decoder type gets an error naming it. Use [`CodeSpace::of`] for a
/// [`Model`]'s codes and `model.decoder()`.
///
/// For scripts and tests the page defines `window.vaekitDecodeCodes(codes)`,
/// which returns the pixels `[c, h, w]` in `[0, 1]` of the codes (one per
/// cell) as a `Float32Array`, and keeps the pixels on show in
/// `window.vaekitLastPixels`. Opened as `page.html?test=1` (optionally
/// `&codes=3,0,17,…`, one per cell, and `&pick=k&click=i`), it sets the codes,
/// decodes them (and chooses the code `k` and clicks the cell `i`,
/// row-major), and writes the resulting values as JSON into
/// `<pre id="result">`: `grid`, `cells`, `codes`, `shape`, `pixels`,
/// `direct` (from `vaekitDecodeCodes`), `after_click`, `click_pixels` and
/// `error`.
///
/// # Errors
///
/// [`Error::Config`] if the decoder does not take `space`'s input width or
/// cannot be exported, `space` has no cell or fewer than 2 codes (a codebook
/// not `[K, D]`), or `start` has not one code below `K` per cell;
/// [`Error::Io`] naming `path` if it cannot be written; [`Error::Candle`] if a
/// weight cannot be read.
pub fn write_code_explorer<D: Decoder + ?Sized>(
    decoder: &D,
    space: &CodeSpace,
    options: &CodeExplorerOptions<'_>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let html = code_explorer_html(decoder, space, options)?;
    std::fs::write(path, html).map_err(|e| Error::io(path, e))
}

/// The code explorer page as a string; see [`write_code_explorer`].
fn code_explorer_html<D: Decoder + ?Sized>(
    decoder: &D,
    space: &CodeSpace,
    options: &CodeExplorerOptions<'_>,
) -> Result<String> {
    let (cells, k) = (space.cells(), space.codes());
    if let CodeSpace::Codebook { codebook, .. } = space {
        if codebook.rank() != 2 || codebook.dim(1)? == 0 {
            return Err(Error::config(
                "codebook",
                format!("is {:?}, expected [K, D]", codebook.dims()),
            ));
        }
    }
    if cells == 0 || k < 2 {
        return Err(Error::config(
            "codes",
            format!("{cells} cells of {k} codes: the code explorer needs a cell and 2 codes"),
        ));
    }
    let input = decoder.input_dim();
    if input != space.input_dim() {
        return Err(Error::config(
            "decoder.input_dim",
            format!(
                "the code explorer of {} needs a decoder of {} values, this decoder takes {input}",
                space.describe(),
                space.input_dim()
            ),
        ));
    }
    let start = options
        .start
        .map_or_else(|| vec![0; cells], <[u32]>::to_vec);
    if start.len() != cells {
        return Err(Error::config(
            "start",
            format!("{} codes for {cells} cells: need one per cell", start.len()),
        ));
    }
    if let Some((i, c)) = start.iter().enumerate().find(|(_, &c)| c as usize >= k) {
        return Err(Error::config(
            "start",
            format!("code {c} of cell {i} is out of range 0..{k}"),
        ));
    }
    let embedded = embed_decoder(decoder)?;
    let codes = match space {
        CodeSpace::Codebook { codebook, grid } => json!({
            "kind": "codebook",
            "codes": k,
            "code_dim": codebook.dim(1)?,
            "grid": [grid.0, grid.1],
            "codebook": float32_base64(codebook)?,
        }),
        CodeSpace::Categorical { variables, .. } => {
            let cols = (1..=*variables)
                .find(|c| c * c >= *variables)
                .unwrap_or(*variables);
            json!({
                "kind": "categorical",
                "codes": k,
                "grid": [variables.div_ceil(cols), cols],
            })
        }
    };
    let data = json!({
        "decoder": embedded.config,
        "weights": embedded.weights,
        "codes": codes,
        "cells": cells,
        "start": start,
    });
    let subtitle = format!(
        "The {} decoder of {}, running in this page. Click a cell to change its code.",
        embedded.kind,
        space.describe()
    );
    Ok(html_page(
        "vaekit code explorer",
        &subtitle,
        BODY,
        SCRIPT,
        &data,
    ))
}
