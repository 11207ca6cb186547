//! Trains any preset with its tutorial's settings and reports per-epoch metrics.
//!
//! ```text
//! cargo run --release --example train_preset -- --preset conv-vae-bn --epochs 5
//! cargo run --release --example train_preset -- --preset conv-vae-bn --epochs 10 --resume
//! cargo run --release --example train_preset -- --list
//! ```

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use vaekit::models::{Model, Preset};
use vaekit::train::{TrainConfig, Trainer};

/// The common flags plus this example's own.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: common::Args,
    /// The preset to train.
    #[arg(long, default_value = "dense-vae")]
    preset: Preset,
    /// Images per batch (the preset's tutorial value when absent).
    #[arg(long, value_name = "N", value_parser = common::positive, allow_negative_numbers = true)]
    batch_size: Option<usize>,
    /// List the presets and exit.
    #[arg(long)]
    list: bool,
}

fn main() {
    common::run(train);
}

fn train() -> vaekit::Result<()> {
    let cli: Cli = common::parse_flags("out/train_preset", "Train a preset on MNIST digits.");
    if cli.list {
        for preset in Preset::ALL {
            println!("{preset}");
        }
        return Ok(());
    }
    let (args, preset) = (&cli.common, cli.preset);
    args.prepare(&[])?;
    let mut config = TrainConfig::for_preset(preset);
    config.seed = args.seed;
    if let Some(e) = args.epochs {
        config.epochs = e;
    }
    if let Some(b) = cli.batch_size {
        config.batch_size = b;
    }
    let digits = args.digits()?;
    let model = Model::from_preset(preset, &args.device, args.seed)?;
    println!(
        "{preset}: {} parameters, {} epochs",
        model.params().num_trainable(),
        config.epochs
    );
    let mut trainer = Trainer::new(config)?
        .output_dir(&args.out)
        .on_epoch(|report, _| {
            common::print_epoch(report);
            Ok(())
        });
    let summary = if args.resumes(&args.out) {
        println!("resuming the run in {}", args.out.display());
        trainer.resume(&model, &digits.train, &digits.test)?
    } else {
        trainer.fit(&model, &digits.train, &digits.test)?
    };
    if let Some((epoch, loss)) = summary.best {
        println!(
            "best test loss {loss:.4} at epoch {epoch}; outputs in {}",
            args.out.display()
        );
    }
    Ok(())
}
