//! Text around pictures: row and column labels (and axis titles) around a grid
//! of tiles, such as the digits-by-epoch grid or a latent manifold's `z`
//! values, and a caption strip on top of a frame ("epoch 3").
//!
//! Text is DejaVu Sans, drawn with plotters onto the picture's pixels.

use image::{DynamicImage, GenericImage, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::grid::GridStyle;
use super::plots::ensure_font_registered;
use crate::{Error, Result};

/// Labels for the rows and columns of a grid made by
/// [`image_grid`](super::image_grid) with `style`, whose tiles are `tile`
/// pixels (width, height) after scaling.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GridLabels {
    /// One label per row, top to bottom (empty: no row labels).
    pub rows: Vec<String>,
    /// One label per column, left to right (empty: no column labels).
    pub columns: Vec<String>,
    /// A title along the left edge, rotated (e.g. `z2`).
    pub row_title: Option<String>,
    /// A title above the column labels (e.g. `z1`).
    pub column_title: Option<String>,
}

crate::setters::with_setters!(GridLabels {
    with_rows(rows: Vec<String>),
    with_columns(columns: Vec<String>),
    with_row_title(row_title: Option<String>),
    with_column_title(column_title: Option<String>),
});

/// Font size of labels and titles, in pixels.
const FONT_PX: u32 = 14;
/// Width given to each character of a row label.
const CHAR_PX: u32 = 8;

/// `grid` with `labels` drawn around it: row labels on the left, centred on
/// their rows, column labels above, centred on their columns, and the titles
/// beyond them. `tile` is one tile's size in pixels after scaling, `style` the
/// grid's (its padding places the tiles).
///
/// # Errors
///
/// [`Error::Config`] if there are more labels than rows or columns fit in the
/// picture; [`Error::Io`] if the font cannot be loaded.
pub fn label_grid(
    grid: &DynamicImage,
    tile: (u32, u32),
    style: GridStyle,
    labels: &GridLabels,
) -> Result<DynamicImage> {
    let pad = u32::try_from(style.padding).unwrap_or(u32::MAX);
    let (gw, gh) = (grid.width(), grid.height());
    let step = (tile.0 + pad, tile.1 + pad);
    let fits = |n: usize, size: u32, step: u32| n as u64 * u64::from(step) <= u64::from(size);
    if !fits(labels.rows.len(), gh, step.1) || !fits(labels.columns.len(), gw, step.0) {
        return Err(Error::config(
            "labels",
            format!(
                "{} row and {} column labels for a {gw}×{gh} grid of {}×{} tiles",
                labels.rows.len(),
                labels.columns.len(),
                tile.0,
                tile.1
            ),
        ));
    }
    let longest = labels
        .rows
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let left = if labels.rows.is_empty() {
        0
    } else {
        longest * CHAR_PX + 10
    } + if labels.row_title.is_some() {
        FONT_PX + 10
    } else {
        0
    };
    let top = if labels.columns.is_empty() {
        0
    } else {
        FONT_PX + 10
    } + if labels.column_title.is_some() {
        FONT_PX + 10
    } else {
        0
    };
    let (w, h) = (gw + left + 4, gh + top + 4);
    let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    canvas
        .copy_from(&grid.to_rgb8(), left, top)
        .map_err(|e| Error::config("grid", e.to_string()))?;
    draw_text(&mut canvas, |root| {
        let font = ("sans-serif", FONT_PX).into_font().color(&BLACK);
        let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        for (r, label) in labels.rows.iter().enumerate() {
            let y = top + pad + r as u32 * step.1 + tile.1 / 2;
            let style = font.clone().pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(
                label.as_str(),
                (to_i32(left) - 6, to_i32(y)),
                style,
            ))?;
        }
        let label_row = top
            - if labels.columns.is_empty() {
                0
            } else {
                FONT_PX / 2 + 6
            };
        for (c, label) in labels.columns.iter().enumerate() {
            let x = left + pad + c as u32 * step.0 + tile.0 / 2;
            let style = font.clone().pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(
                label.as_str(),
                (to_i32(x), to_i32(label_row)),
                style,
            ))?;
        }
        if let Some(title) = &labels.column_title {
            let style = font.clone().pos(Pos::new(HPos::Center, VPos::Top));
            let x = left + gw / 2;
            root.draw(&Text::new(title.as_str(), (to_i32(x), 2), style))?;
        }
        if let Some(title) = &labels.row_title {
            let style = font
                .clone()
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Center, VPos::Top));
            let y = top + gh / 2;
            root.draw(&Text::new(title.as_str(), (2, to_i32(y)), style))?;
        }
        Ok(())
    })?;
    Ok(DynamicImage::ImageRgb8(canvas))
}

/// `image` with a white strip on top holding `text`, centred (e.g. an epoch's
/// number on a frame of a GIF).
///
/// # Errors
///
/// [`Error::Io`] if the font cannot be loaded.
pub fn caption(image: &DynamicImage, text: &str) -> Result<DynamicImage> {
    let strip = FONT_PX + 10;
    let (w, h) = (image.width(), image.height() + strip);
    let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    canvas
        .copy_from(&image.to_rgb8(), 0, strip)
        .map_err(|e| Error::config("image", e.to_string()))?;
    draw_text(&mut canvas, |root| {
        let style = ("sans-serif", FONT_PX)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let x = i32::try_from(w / 2).unwrap_or(i32::MAX);
        let y = i32::try_from(strip / 2).unwrap_or(i32::MAX);
        root.draw(&Text::new(text, (x, y), style))
    })?;
    Ok(DynamicImage::ImageRgb8(canvas))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult<'a> =
    std::result::Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>>;

/// Runs `draw` on a plotters drawing area over `canvas`'s pixels.
fn draw_text(
    canvas: &mut RgbImage,
    draw: impl for<'a> FnOnce(&Area<'a>) -> DrawResult<'a>,
) -> Result<()> {
    let path = std::path::Path::new("(in memory)");
    ensure_font_registered(path)?;
    let size = canvas.dimensions();
    let root = BitMapBackend::with_buffer(canvas.as_mut(), size).into_drawing_area();
    draw(&root).map_err(|e| super::picture_error(path, e))?;
    root.present().map_err(|e| super::picture_error(path, e))
}

/// The labels of a latent manifold over `coords` (see
/// [`manifold`](super::manifold)): `z1` above the columns, left to
/// right, `z2` beside the rows, top to bottom (largest first), each to two
/// decimals, so a tile can be mapped back to its code.
pub fn manifold_labels(coords: &[f64]) -> GridLabels {
    let fmt = |v: &f64| {
        let s = format!("{v:.2}");
        if s == "-0.00" {
            "0.00".to_string()
        } else {
            s
        }
    };
    GridLabels {
        rows: coords.iter().rev().map(fmt).collect(),
        columns: coords.iter().map(fmt).collect(),
        row_title: Some("z2".into()),
        column_title: Some("z1".into()),
    }
}
