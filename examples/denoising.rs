//! A denoising VAE: the trainer corrupts every training (and test) input,
//! the loss scores the clean digit, and the picture shows noisy / clean /
//! denoised triplets of test digits.
//!
//! ```text
//! cargo run --release --example denoising -- --noise salt-and-pepper --level 0.3 --epochs 5
//! cargo run --release --example denoising -- --noise gaussian --level 0.4
//! ```

#[path = "common/mod.rs"]
mod common;

use clap::Parser;
use rand::SeedableRng;
use vaekit::prelude::*;
use vaekit::train::{Corruption, Progress, TrainConfig, Trainer};

/// The common flags plus this example's own.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: common::Args,
    /// The corruption: gaussian (level = std), masking or salt-and-pepper
    /// (level = probability per pixel).
    #[arg(long, default_value = "salt-and-pepper", value_parser = ["gaussian", "masking", "salt-and-pepper"])]
    noise: String,
    /// The noise level.
    #[arg(long, default_value_t = 0.3)]
    level: f64,
}

fn main() {
    common::run(train);
}

fn train() -> vaekit::Result<()> {
    let cli: Cli = common::parse_flags("out/denoising", "Train a denoising VAE on MNIST digits.");
    let args = &cli.common;
    args.prepare(&[])?;
    let corruption = match cli.noise.as_str() {
        "gaussian" => Corruption::Gaussian { std: cli.level },
        "masking" => Corruption::Masking { p: cli.level },
        _ => Corruption::SaltAndPepper { p: cli.level },
    };
    let digits = args.digits()?;
    let device = &args.device;
    // A dense VAE, 784 → 256 → 16 → 256 → 784 Bernoulli logits.
    let params = ParamStore::new(device);
    let vb = params.var_builder(args.seed());
    let encoder = DenseEncoder::new(
        &DenseEncoderConfig::new(ImageShape::MNIST, &[256], 2 * 16),
        vb.pp("encoder"),
    )?;
    let decoder = DenseDecoder::new(
        &DenseDecoderConfig::new(16, &[256], ImageShape::MNIST),
        vb.pp("decoder"),
    )?;
    let vae = Vae::new(
        &params,
        encoder,
        decoder,
        StandardNormal::new(16),
        PosteriorParam::LogVariance,
        VaeLossConfig::default(),
    )?;
    let config = TrainConfig::default()
        .with_epochs(args.epochs.unwrap_or(5))
        .with_batch_size(100)
        .with_seed(args.seed())
        .with_corruption(Some(corruption))
        .with_progress(Progress::Hidden);
    let mut trainer = Trainer::new(config)?
        .run_folder(args.run_folder(&[], &args.out)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            Ok(())
        });
    args.fit_or_resume(&mut trainer, &args.out, &vae, &digits)?;
    // Triplets of the first 16 test digits, corrupted with a fixed seed.
    let clean = common::first_images(&digits.test, 16, device)?;
    let mut rng = Generator::seed_from_u64(args.seed());
    let noisy = corruption.apply(&clean.images, &mut rng)?;
    let denoised = vae.reconstruct(&noisy, Condition::None)?;
    let grid = vaekit::pictures::denoising_triplets(
        &noisy,
        &clean.images,
        &denoised,
        4,
        vaekit::pictures::GridStyle::default(),
    )?;
    let path = args.out.join("triplets.png");
    vaekit::pictures::save_png(&grid, &path)?;
    println!("noisy / clean / denoised triplets in {}", path.display());
    Ok(())
}
