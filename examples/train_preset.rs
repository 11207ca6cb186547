//! Trains any preset with its tutorial's settings, or any model and settings
//! from a run file (`--config`), and reports per-epoch metrics.
//!
//! ```text
//! cargo run --release --example train_preset -- --preset dense-vae --print-config > run.json
//! cargo run --release --example train_preset -- --config run.json --out out/my-run
//! cargo run --release --example train_preset -- --preset conv-vae-bn --epochs 5
//! cargo run --release --example train_preset -- --preset conv-vae-bn --epochs 10 --resume
//! cargo run --release --example train_preset -- --list
//! ```

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;

use clap::Parser;
use vaekit::models::{check_training_step, default_step_memory_limit, Model, Preset};
use vaekit::train::{RunConfig, TrainConfig, Trainer};

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
    /// Train the model and settings of a run file instead of a preset: JSON
    /// `{"model": {…}, "train": {…}}` (start from `--print-config`). `--epochs`,
    /// `--batch-size` and `--seed` override the file's values.
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Print the run file of `--preset` (model and training settings) and exit.
    #[arg(long)]
    print_config: bool,
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
    if cli.print_config {
        println!("{}", RunConfig::for_preset(preset).to_json_pretty());
        return Ok(());
    }
    // A run file is read and checked before anything is written.
    let run = match &cli.config {
        Some(path) => RunConfig::from_file(path)?,
        None => RunConfig::for_preset(preset).check()?,
    };
    let name = match &cli.config {
        Some(path) => path.display().to_string(),
        None => preset.to_string(),
    };
    args.prepare(&[])?;
    // A flag overrides the file only when it is given.
    let mut config: TrainConfig = run.train;
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(e) = args.epochs {
        config.epochs = e;
    }
    if let Some(b) = cli.batch_size {
        config.batch_size = b;
    }
    // A training step too large for the machine is refused before the model
    // is built or a digit read.
    check_training_step(
        run.model.get(),
        config.batch_size,
        default_step_memory_limit(),
    )?;
    let digits = args.digits()?;
    let model = Model::new(&run.model, &args.device, config.seed)?;
    println!(
        "{name}: {} parameters, {} epochs",
        model.params().num_trainable(),
        config.epochs
    );
    let mut trainer = Trainer::new(config)?
        .run_folder(args.run_folder(&[], &args.out)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            Ok(())
        });
    let summary = args.fit_or_resume(&mut trainer, &args.out, &model, &digits)?;
    if let Some((epoch, loss)) = summary.best {
        println!(
            "best test loss {loss:.4} at epoch {epoch}; outputs in {}",
            args.out.display()
        );
    }
    Ok(())
}
