//! The TF1 dense VAE with a 2-D latent: 784→256→(μ, log σ²) → 2 → 256 → 784,
//! loss `0.5·Σ(x̂ − x)²` + KL, Adam 1e-3, batch 128, 50 epochs.
//!
//! Writes to `--out` (default `out/dense_vae_2d`): `reconstructions.png`,
//! `latent_scatter.png`, `manifold.png` (15×15 decoded at the normal quantiles
//! Φ⁻¹(linspace(0.05, 0.95, 15)), labelled with their z values),
//! `manifold.gif` (that manifold as training goes, about 12 captioned frames),
//! `loss_curves.png`, `explorer.html`, and the trainer's `history.jsonl`,
//! `best.safetensors` and `checkpoint.safetensors`.
//!
//! ```text
//! cargo run --release --example dense_vae_2d
//! ```

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use vaekit::models::{Condition, Model, Preset};
use vaekit::pictures::{self, ExplorerOptions, FrameRecorder, GridStyle, SliderRange};
use vaekit::train::{TrainConfig, Trainer};

fn main() {
    common::run(dense_vae_2d);
}

fn dense_vae_2d() -> vaekit::Result<()> {
    let args = common::Args::parse(
        "out/dense_vae_2d",
        &[],
        "The dense VAE with a 2-D latent (TF1 tutorial).",
    )?;
    let digits = args.digits()?;
    let model = Model::from_preset(Preset::DenseVae, &args.device, args.seed())?;
    let mut config = TrainConfig::for_preset(Preset::DenseVae);
    config.seed = args.seed();
    config.epochs = args.epochs.unwrap_or(config.epochs);

    let style = GridStyle::default()
        .with_scale(1)
        .with_padding(1)
        .with_background(255);
    let coords = pictures::normal_quantile_grid(15, 0.05, 0.95)?;
    // About a dozen frames whatever the number of epochs: the GIF stays small.
    let every = config.epochs.div_ceil(12);
    let mut frames = FrameRecorder::new(15, style, Duration::from_millis(250));
    let mut curves = Vec::new();
    println!(
        "dense VAE, latent 2: {} parameters, {} epochs",
        model.params().num_trainable(),
        config.epochs
    );
    let mut trainer = Trainer::new(config)?
        .run_folder(args.run_folder(&[], &args.out)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            common::record_curves(&mut curves, report);
            if report.epoch % every == 0 || report.epoch == 1 {
                let pixels = pictures::manifold(model.decoder(), &coords, None, model.device())?;
                let grid = pictures::image_grid(&pixels, 15, style)?;
                frames.push_image(pictures::caption(
                    &grid,
                    &format!("epoch {}", report.epoch),
                )?)?;
            }
            Ok(())
        });
    args.fit_or_resume(&mut trainer, &args.out, &model, &digits)?;
    drop(trainer); // ends the hook's borrows

    let out = &args.out;
    let test = common::first_images(&digits.test, digits.test.len(), &args.device)?;
    let originals = test.images.narrow(0, 0, test.indices.len().min(10))?;
    let recon = model.reconstruct(&originals, Condition::None)?;
    let big = GridStyle::default()
        .with_scale(2)
        .with_padding(2)
        .with_background(255);
    pictures::save_png(
        &pictures::comparison_grid(&originals, &recon, 10, big)?,
        out.join("reconstructions.png"),
    )?;
    let points = common::points_2d(&model.encode(&test.images)?)?;
    pictures::latent_scatter(
        &points,
        common::labels_of(&digits.test)?,
        out.join("latent_scatter.png"),
        "test digits: latent means",
    )?;
    let grid = pictures::image_grid(
        &pictures::manifold(model.decoder(), &coords, None, model.device())?,
        15,
        big,
    )?;
    let labels = pictures::manifold_labels(&coords);
    pictures::save_png(
        &pictures::label_grid(&grid, (56, 56), big, &labels)?,
        out.join("manifold.png"),
    )?;
    frames.finish(out.join("manifold.gif"))?;
    common::save_curves(
        &curves,
        &["train loss", "test loss"],
        out.join("loss_curves.png"),
        "dense VAE loss per epoch",
    )?;
    let options = ExplorerOptions::default()
        .with_scatter(Some((&points, common::labels_of(&digits.test)?)))
        .with_range(SliderRange::Prior)
        .with_classes(0);
    pictures::write_latent_explorer(model.decoder(), &options, out.join("explorer.html"))?;
    println!("pictures, history and checkpoints in {}", out.display());
    Ok(())
}
