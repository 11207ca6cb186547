//! The PyTorch convolutional VAE with batch norm: Conv(64,4,s2)+BN+LeakyReLU(0.2),
//! Conv(128,4,s2)+BN+LeakyReLU, Conv(128,3,s1)+BN+LeakyReLU, two linear heads to a
//! 32-D latent; Linear → ConvT(64,4,s2)+ReLU → ConvT(1,4,s2)+Sigmoid; BCE (sum) +
//! KL; Adam 1e-3, batch 64, 15 epochs. (The tutorial's forward runs the encoder
//! twice; vaekit runs it once.)
//!
//! Saves an 8×8 grid of prior samples each epoch (`sample_epoch_NN.png`, the same
//! 64 draws of z every time) and their GIF `samples.gif`, then
//! `reconstructions.png` from the evaluation-mode model (batch norm with running
//! statistics).
//!
//! ```text
//! cargo run --release --example conv_vae_bn -- --epochs 5
//! ```

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::latent::{LatentPrior, StandardNormal};
use vaekit::models::{Condition, Model, Preset};
use vaekit::pictures::{self, FrameRecorder, GridStyle};
use vaekit::train::{TrainConfig, Trainer};

fn main() {
    common::run(conv_vae_bn);
}

fn conv_vae_bn() -> vaekit::Result<()> {
    let args = common::Args::parse(
        "out/conv_vae_bn",
        &[],
        "The PyTorch conv VAE with batch norm.",
    )?;
    let digits = args.digits()?;
    let model = Model::from_preset(Preset::ConvVaeBn, &args.device, args.seed())?;
    let mut config = TrainConfig::for_preset(Preset::ConvVaeBn);
    config.seed = args.seed();
    config.epochs = args.epochs.unwrap_or(config.epochs);

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed());
    let z = StandardNormal::new(model.latent_dim()).sample(64, &mut rng, &args.device)?;
    let style = GridStyle::default()
        .with_scale(2)
        .with_padding(2)
        .with_background(255);
    let mut frames = FrameRecorder::new(8, style, Duration::from_millis(300));
    let out = args.out.clone();
    println!(
        "conv VAE with batch norm, latent 32: {} parameters, {} epochs",
        model.params().num_trainable(),
        config.epochs
    );
    let mut trainer = Trainer::new(config)?
        .run_folder(args.run_folder(&[], &args.out)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            let grid = pictures::image_grid(&model.decode(&z, Condition::None)?, 8, style)?;
            let grid = pictures::caption(&grid, &format!("epoch {}", report.epoch))?;
            pictures::save_png(
                &grid,
                out.join(format!("sample_epoch_{:02}.png", report.epoch)),
            )?;
            frames.push_image(grid)
        });
    args.fit_or_resume(&mut trainer, &args.out, &model, &digits)?;
    drop(trainer); // ends the hook's borrows
    frames.finish(args.out.join("samples.gif"))?;
    let originals = common::first_images(&digits.test, 16, &args.device)?.images;
    let recon = model.reconstruct(&originals, Condition::None)?;
    pictures::save_png(
        &pictures::comparison_grid(&originals, &recon, 16, style)?,
        args.out.join("reconstructions.png"),
    )?;
    println!(
        "pictures, history and checkpoints in {}",
        args.out.display()
    );
    Ok(())
}
