//! The Keras convolutional autoencoder: four 8-filter 3×3 convs with strides
//! 2, 1, 2 and 1 to a 10-D code, a dense + up-sampling decoder with a sigmoid
//! output, MSE, RMSprop 3e-4, batch 64, up to 100 epochs with early stopping
//! (patience 5) and the best model kept on the test loss. Then a second
//! autoencoder with a 2-D code (RMSprop 1e-3) to look at its latent space.
//!
//! Writes `ae10/` (history, `best.safetensors`, `reconstructions.png`) and
//! `ae2/` (history, `best.safetensors`, `latent_scatter.png`, `latent_grid.png`:
//! a 10×10 grid decoded over [−5, 5]², and `explorer.html`, the tutorial's
//! slider widget as a self-contained page).
//!
//! ```text
//! cargo run --release --example conv_autoencoder -- --epochs 10
//! ```
//!
//! With `--resume`, each model whose folder holds a checkpoint continues from
//! it, and one whose folder holds none starts.

#[path = "common/mod.rs"]
mod common;

use vaekit::data::Mnist;
use vaekit::models::{Condition, Model, Preset};
use vaekit::pictures::{self, ExplorerOptions, GridStyle, SliderRange};
use vaekit::train::{TrainConfig, Trainer, BEST_MODEL_FILE};

fn main() {
    common::run(conv_autoencoder);
}

/// Trains `preset` into `out/<name>` and returns the best model (lowest test MSE).
fn train(
    args: &common::Args,
    digits: &Mnist,
    preset: Preset,
    name: &str,
) -> vaekit::Result<(Model, std::path::PathBuf)> {
    let dir = args.out.join(name);
    let model = Model::from_preset(preset, &args.device, args.seed())?;
    let mut config = TrainConfig::for_preset(preset);
    config.seed = args.seed();
    config.epochs = args.epochs.unwrap_or(config.epochs);
    println!(
        "{preset}: {} parameters, up to {} epochs",
        model.params().num_trainable(),
        config.epochs
    );
    let mut trainer = Trainer::new(config)?
        .run_folder(args.run_folder(&["ae10", "ae2"], &dir)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            Ok(())
        });
    let summary = args.fit_or_resume(&mut trainer, &dir, &model, digits)?;
    if summary.stopped_early {
        println!("early stopping after epoch {}", summary.last_epoch);
    }
    if let Some((epoch, mse)) = summary.best {
        println!("best test MSE {mse:.5} at epoch {epoch}");
    }
    Ok((Model::load(dir.join(BEST_MODEL_FILE), &args.device)?, dir))
}

fn conv_autoencoder() -> vaekit::Result<()> {
    let args: common::Args = common::parse_flags(
        "out/conv_autoencoder",
        "The Keras convolutional autoencoder.",
    );
    // Two runs, each in its own folder: both are checked before either trains.
    args.prepare(&["ae10", "ae2"])?;
    let digits = args.digits()?;
    let style = GridStyle::default()
        .with_scale(2)
        .with_padding(2)
        .with_background(255);

    let (ae, dir) = train(&args, &digits, Preset::ConvAe, "ae10")?;
    let originals = common::first_images(&digits.test, 10, &args.device)?.images;
    let recon = ae.reconstruct(&originals, Condition::None)?;
    pictures::save_png(
        &pictures::comparison_grid(&originals, &recon, 10, style)?,
        dir.join("reconstructions.png"),
    )?;

    let (ae2, dir) = train(&args, &digits, Preset::ConvAe2d, "ae2")?;
    let test = common::first_images(&digits.test, digits.test.len(), &args.device)?;
    let points = common::points_2d(&ae2.encode(&test.images)?)?;
    pictures::latent_scatter(
        &points,
        common::labels_of(&digits.test)?,
        dir.join("latent_scatter.png"),
        "test digits: 2-D codes",
    )?;
    let coords = pictures::linear_grid(10, -5.0, 5.0)?;
    let grid = pictures::image_grid(
        &pictures::manifold(ae2.decoder(), &coords, None, ae2.device())?,
        10,
        style,
    )?;
    let labels = pictures::manifold_labels(&coords);
    pictures::save_png(
        &pictures::label_grid(&grid, (56, 56), style, &labels)?,
        dir.join("latent_grid.png"),
    )?;
    let options = ExplorerOptions::default()
        .with_scatter(Some((&points, common::labels_of(&digits.test)?)))
        .with_range(SliderRange::Scatter)
        .with_classes(0);
    pictures::write_latent_explorer(ae2.decoder(), &options, dir.join("explorer.html"))?;
    println!(
        "pictures, histories and best models in {}",
        args.out.display()
    );
    Ok(())
}
