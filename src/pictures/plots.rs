//! Plots drawn with plotters into PNG files: the latent scatter of a test set
//! coloured by digit, and loss curves.
//!
//! Text uses DejaVu Sans, compiled into vaekit and registered with plotters'
//! `ab_glyph` text back end under the family name `sans-serif` on first use.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use image::{DynamicImage, RgbImage};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::grid::save_png;
use super::picture_error;
use crate::{Error, Result};

/// Width and height in pixels of [`latent_scatter`]'s picture.
pub const SCATTER_PLOT_SIZE: (u32, u32) = (760, 640);
/// Width and height in pixels of [`loss_curves`]' picture.
pub const LOSS_PLOT_SIZE: (u32, u32) = (760, 480);

/// DejaVu Sans 2.37 (see `assets/fonts/README.md` for provenance and licence).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Matplotlib's `tab10` palette: the colour of digit `d` is `TAB10[d % 10]`.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers the bundled font as `sans-serif`, once per process.
pub(crate) fn ensure_font_registered(path: &Path) -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err(picture_error(
            path,
            "the bundled DejaVu Sans font could not be loaded",
        ))
    }
}

/// Draws with `draw` on a white RGB canvas of `size` and writes it to `path`.
fn plot_png<F>(path: &Path, size: (u32, u32), draw: F) -> Result<()>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
{
    ensure_font_registered(path)?;
    let (w, h) = size;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| picture_error(path, e))?;
    }
    let image = RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| picture_error(path, "plot buffer has the wrong size"))?;
    save_png(&DynamicImage::ImageRgb8(image), path)
}

/// The range `lo..hi` of `values` (finite ones only), widened by 5 % on each
/// side; `−1..1` around the value when there is at most one distinct value.
fn padded_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !(lo.is_finite() && hi.is_finite()) {
        return -1.0..1.0;
    }
    if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
        let pad = (lo.abs() * 0.1).max(1.0);
        return lo - pad..hi + pad;
    }
    let pad = 0.05 * (hi - lo);
    lo - pad..hi + pad
}

/// A tick label for `v` on an axis spanning `span`: as many decimals as the
/// tick spacing needs, and no `-0`.
fn tick_label(v: f64, span: f64) -> String {
    let step = span / 10.0;
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        2
    };
    let text = format!("{v:.decimals$}");
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

/// Grid lines: light grey at the labelled ticks, none in between.
const GRID: RGBColor = RGBColor(215, 215, 215);

/// A scatter plot of 2-D codes `points`, each a dot coloured by its `labels`
/// entry (digit `d` in matplotlib's `tab10` colour `d % 10`), with a legend of
/// the labels present on the right, axes `z1` and `z2`, and `title` on top;
/// written to `path` as a PNG of [`SCATTER_PLOT_SIZE`]. Points with a
/// non-finite coordinate are left out. This is the tutorials' plot of the test
/// set's latent means.
///
/// # Errors
///
/// [`Error::Config`] if `points` and `labels` differ in length; [`Error::Io`]
/// naming `path` if the plot cannot be drawn or written.
pub fn latent_scatter(
    points: &[(f32, f32)],
    labels: &[u8],
    path: impl AsRef<Path>,
    title: &str,
) -> Result<()> {
    let path = path.as_ref();
    if points.len() != labels.len() {
        return Err(Error::config(
            "labels",
            format!(
                "{} labels for {} points: need one label per point",
                labels.len(),
                points.len()
            ),
        ));
    }
    let finite = |&(x, y): &(f32, f32)| x.is_finite() && y.is_finite();
    let xs = padded_range(points.iter().filter(|p| finite(p)).map(|p| f64::from(p.0)));
    let ys = padded_range(points.iter().filter(|p| finite(p)).map(|p| f64::from(p.1)));
    let (x_span, y_span) = (xs.end - xs.start, ys.end - ys.start);
    let mut present: Vec<u8> = labels.to_vec();
    present.sort_unstable();
    present.dedup();
    let err = |e: &dyn std::fmt::Display| picture_error(path, e);
    plot_png(path, SCATTER_PLOT_SIZE, |root| {
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let (plot, legend) = root.split_horizontally(SCATTER_PLOT_SIZE.0 - 90);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d(xs, ys)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("z1")
            .y_desc("z2")
            .x_label_formatter(&|v| tick_label(*v, x_span))
            .y_label_formatter(&|v| tick_label(*v, y_span))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| err(&e))?;
        for &digit in &present {
            let color = TAB10[usize::from(digit) % 10];
            chart
                .draw_series(
                    points
                        .iter()
                        .zip(labels)
                        .filter(|&(p, &l)| l == digit && finite(p))
                        .map(|(&(x, y), _)| {
                            Circle::new((f64::from(x), f64::from(y)), 2, color.mix(0.8).filled())
                        }),
                )
                .map_err(|e| err(&e))?;
        }
        legend
            .draw(&Text::new("label", (14, 44), ("sans-serif", 16)))
            .map_err(|e| err(&e))?;
        for (row, &digit) in present.iter().enumerate() {
            let y = 80 + 26 * row as i32;
            let color = TAB10[usize::from(digit) % 10];
            legend
                .draw(&Circle::new((22, y), 6, color.filled()))
                .map_err(|e| err(&e))?;
            legend
                .draw(&Text::new(
                    digit.to_string(),
                    (36, y - 8),
                    ("sans-serif", 16),
                ))
                .map_err(|e| err(&e))?;
        }
        Ok(())
    })
}

/// Loss curves: one line per `(name, values)` in `series`, value `i` plotted
/// at epoch `i + 1`, coloured in matplotlib's `tab10` order, with a legend of
/// the names, axes `epoch` and `loss`, and `title` on top; written to `path` as
/// a PNG of [`LOSS_PLOT_SIZE`]. Series of up to 40 values also get a dot per
/// value. Non-finite values break their line.
///
/// # Errors
///
/// [`Error::Config`] if `series` is empty or holds no finite value;
/// [`Error::Io`] naming `path` if the plot cannot be drawn or written.
pub fn loss_curves(series: &[(&str, &[f64])], path: impl AsRef<Path>, title: &str) -> Result<()> {
    let path = path.as_ref();
    check_series(series, "series")?;
    plot_png(path, LOSS_PLOT_SIZE, |root| {
        root.fill(&WHITE).map_err(|e| picture_error(path, e))?;
        draw_loss_panel(root, series, title, path)
    })
}

/// Loss curves in panels side by side, each with its own `loss` axis — for
/// losses of different sizes, such as a VAE's (≈ 250) and its classifier's
/// (≈ 0.5), which on one axis would flatten the smaller to a line at 0. Each
/// panel is `(title, series)` drawn as [`loss_curves`] draws its one; the
/// picture is [`LOSS_PLOT_SIZE`] wide per panel, with `title` above them.
///
/// # Errors
///
/// [`Error::Config`] if there is no panel or a panel has no finite value;
/// [`Error::Io`] naming `path` if the plot cannot be drawn or written.
pub fn loss_panels(panels: &[LossPanel<'_>], path: impl AsRef<Path>, title: &str) -> Result<()> {
    let path = path.as_ref();
    if panels.is_empty() {
        return Err(Error::config("panels", "need at least one panel"));
    }
    for (i, (_, series)) in panels.iter().enumerate() {
        check_series(series, &format!("panels[{i}]"))?;
    }
    let n = u32::try_from(panels.len()).unwrap_or(u32::MAX);
    let size = (LOSS_PLOT_SIZE.0.saturating_mul(n), LOSS_PLOT_SIZE.1 + 30);
    plot_png(path, size, |root| {
        root.fill(&WHITE).map_err(|e| picture_error(path, e))?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| picture_error(path, e))?;
        for (area, (panel_title, series)) in root.split_evenly((1, panels.len())).iter().zip(panels)
        {
            draw_loss_panel(area, series, panel_title, path)?;
        }
        Ok(())
    })
}

/// One panel of [`loss_panels`]: its title and its named series (values per
/// epoch).
pub type LossPanel<'a> = (&'a str, &'a [(&'a str, &'a [f64])]);

/// An error unless some series has a finite value.
fn check_series(series: &[(&str, &[f64])], field: &str) -> Result<()> {
    if !series
        .iter()
        .any(|(_, values)| values.iter().any(|v| v.is_finite()))
    {
        return Err(Error::config(
            field,
            "need at least one finite loss value to plot",
        ));
    }
    Ok(())
}

/// One chart of loss curves per epoch on `root`.
fn draw_loss_panel(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    series: &[(&str, &[f64])],
    title: &str,
    path: &Path,
) -> Result<()> {
    let epochs = series.iter().map(|(_, v)| v.len()).max().unwrap_or(1);
    // Epochs are integers; one spare on each side keeps the end dots inside.
    let xs = 0..i32::try_from(epochs).unwrap_or(i32::MAX - 1) + 1;
    let ys = padded_range(series.iter().flat_map(|(_, v)| v.iter().copied()));
    let y_span = ys.end - ys.start;
    let err = |e: &dyn std::fmt::Display| picture_error(path, e);
    {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(xs, ys)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .x_labels(epochs.min(12) + 2)
            .y_label_formatter(&|v| tick_label(*v, y_span))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| err(&e))?;
        for (k, (name, values)) in series.iter().enumerate() {
            let color = TAB10[k % 10];
            let style = color.stroke_width(2);
            // Runs of finite values, each drawn as one line.
            let mut runs: Vec<Vec<(i32, f64)>> = vec![Vec::new()];
            for (i, &v) in values.iter().enumerate() {
                let epoch = i32::try_from(i + 1).unwrap_or(i32::MAX);
                match (v.is_finite(), runs.last_mut()) {
                    (true, Some(run)) => run.push((epoch, v)),
                    (false, Some(run)) if !run.is_empty() => runs.push(Vec::new()),
                    _ => {}
                }
            }
            for (r, run) in runs.iter().enumerate() {
                let drawn = chart
                    .draw_series(LineSeries::new(run.iter().copied(), style))
                    .map_err(|e| err(&e))?;
                if r == 0 {
                    drawn.label(*name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                    });
                }
                if values.len() <= 40 {
                    chart
                        .draw_series(run.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| err(&e))?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        Ok(())
    }
}

/// Width and height in pixels of [`active_units_plot`]'s picture.
pub const BAR_PLOT_SIZE: (u32, u32) = (760, 420);

/// A bar per latent dimension of `values` (e.g. `Var_x(E_q[z_d])` from
/// [`LatentStatistics`](crate::eval::LatentStatistics)) on a log scale, bars
/// above `threshold` in blue and the rest in grey, with the threshold as a
/// dashed red line, axis `dimension` and `title` on top; written to `path` as
/// a PNG of [`BAR_PLOT_SIZE`]. With `threshold = 0.01` this is Burda et al.'s
/// active-unit count. Values at or below 1e-8 are drawn at 1e-8.
///
/// # Errors
///
/// [`Error::Config`] for no value or a threshold that is not positive;
/// [`Error::Io`] naming `path` if the plot cannot be drawn or written.
pub fn active_units_plot(
    values: &[f64],
    threshold: f64,
    path: impl AsRef<Path>,
    title: &str,
) -> Result<()> {
    let path = path.as_ref();
    if values.is_empty() {
        return Err(Error::config(
            "values",
            "need at least one dimension to plot",
        ));
    }
    if !(threshold.is_finite() && threshold > 0.0) {
        return Err(Error::config(
            "threshold",
            format!("{threshold} must be positive"),
        ));
    }
    const FLOOR: f64 = 1e-8;
    let shown: Vec<f64> = values
        .iter()
        .map(|v| if v.is_finite() { v.max(FLOOR) } else { FLOOR })
        .collect();
    let lo = shown.iter().copied().fold(threshold, f64::min) / 3.0;
    let hi = shown.iter().copied().fold(threshold, f64::max) * 3.0;
    let n = values.len();
    let err = |e: &dyn std::fmt::Display| picture_error(path, e);
    plot_png(path, BAR_PLOT_SIZE, |root| {
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..n as f64, (lo..hi).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("dimension")
            .y_desc("Var of posterior mean")
            .x_labels(n.min(16) + 1)
            .x_label_formatter(&|v| format!("{}", v.floor() as i64))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(shown.iter().enumerate().map(|(d, &v)| {
                let color = if v > threshold { TAB10[0] } else { TAB10[7] };
                Rectangle::new([(d as f64 + 0.1, lo), (d as f64 + 0.9, v)], color.filled())
            }))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, threshold), (n as f64, threshold)],
                8,
                5,
                TAB10[3].stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        Ok(())
    })
}
