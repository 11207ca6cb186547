//! Trains any preset with its tutorial's settings and reports per-epoch metrics.
//!
//! ```text
//! cargo run --release --example train_preset -- --preset conv-vae-bn --epochs 5
//! ```

#[path = "common/mod.rs"]
mod common;

use vaekit::models::{Model, Preset};
use vaekit::train::{TrainConfig, Trainer};

fn main() {
    common::run(train);
}

fn train() -> vaekit::Result<()> {
    let args = common::Args::parse(
        "out/train_preset",
        &["preset", "batch-size"],
        "Train a preset on MNIST digits.",
    )?;
    let preset: Preset = args.extra("preset").unwrap_or("dense-vae").parse()?;
    let mut config = TrainConfig::for_preset(preset);
    config.seed = args.seed;
    if let Some(e) = args.epochs {
        config.epochs = e;
    }
    if let Some(b) = args.extra("batch-size") {
        config.batch_size = common::parse_positive("batch-size", b)?;
    }
    let digits = args.digits()?;
    let model = Model::from_preset(preset, &args.device, args.seed)?;
    println!(
        "{preset}: {} parameters, {} epochs",
        model.params().num_trainable(),
        config.epochs
    );
    let summary = Trainer::new(config)?
        .output_dir(&args.out)
        .on_epoch(|report| {
            common::print_epoch(report);
            Ok(())
        })
        .fit(&model, &digits.train, &digits.test)?;
    if let Some((epoch, loss)) = summary.best {
        println!(
            "best test loss {loss:.4} at epoch {epoch}; outputs in {}",
            args.out.display()
        );
    }
    Ok(())
}
