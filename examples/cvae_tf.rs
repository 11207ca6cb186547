//! The TensorFlow CVAE tutorial: a convolutional VAE with logits output, latent 2,
//! binarised digits, the single-sample Monte Carlo ELBO, Adam 1e-4, batch 32,
//! 100 epochs.
//!
//! Prints the test-set ELBO and seconds per epoch, saves a 4×4 grid of decoded
//! test samples before training and after every epoch
//! (`image_at_epoch_NNNN.png`, captioned: the same 16 test images, encoded,
//! sampled and decoded) and assembles them into `cvae.gif`.
//!
//! ```text
//! cargo run --release --example cvae_tf -- --epochs 10
//! ```

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::models::{Condition, Model, Preset};
use vaekit::pictures::{self, FrameRecorder, GridStyle};
use vaekit::train::{TrainConfig, Trainer};

fn main() {
    common::run(cvae_tf);
}

fn cvae_tf() -> vaekit::Result<()> {
    let args = common::Args::parse("out/cvae_tf", &[], "The TensorFlow CVAE tutorial.")?;
    let digits = args.digits()?;
    let model = Model::from_preset(Preset::CvaeTf, &args.device, args.seed())?;
    let vae = model
        .as_vae()
        .ok_or_else(|| vaekit::Error::config("preset", "cvae-tf builds a VAE"))?;
    let mut config = TrainConfig::for_preset(Preset::CvaeTf);
    config.seed = args.seed();
    config.epochs = args.epochs.unwrap_or(config.epochs);

    // The tutorial's fixed test sample: 16 binarised test images.
    let test_sample =
        common::first_images(&digits.test.binarize_static(), 16, &args.device)?.images;
    let style = GridStyle::default()
        .with_scale(4)
        .with_padding(2)
        .with_background(255);
    let mut frames = FrameRecorder::new(4, style, Duration::from_millis(200));
    let mut noise = ChaCha8Rng::seed_from_u64(args.seed());
    let out = args.out.clone();
    println!(
        "CVAE, latent 2: {} parameters, {} epochs",
        model.params().num_trainable(),
        config.epochs
    );
    // The test sample encoded, sampled and decoded, captioned with the epoch.
    let mut frame = |epoch: usize| -> vaekit::Result<()> {
        let out_epoch = vae.forward_t(&test_sample, Condition::None, &mut noise, false)?; // z ~ q(z|x)
        let pixels = vae.to_pixels(&out_epoch.decoded)?;
        let grid = pictures::image_grid(&pixels, 4, style)?;
        let grid = pictures::caption(&grid, &format!("epoch {epoch}"))?;
        pictures::save_png(&grid, out.join(format!("image_at_epoch_{epoch:04}.png")))?;
        frames.push_image(grid)
    };
    // As the tutorial does, the untrained model first: the run folder is
    // made ready (an old run moved aside) before that first picture.
    let mut folder = args.run_folder(&[], &args.out)?;
    if !folder.resumes() {
        folder.prepare()?;
        frame(0)?;
    }
    let mut trainer = Trainer::new(config)?
        .run_folder(folder)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            println!(
                "Epoch: {}, Test set ELBO: {:.4}, time elapse for current epoch: {:.2}s",
                report.epoch,
                -report.test_loss(),
                report.seconds
            );
            frame(report.epoch)
        });
    args.fit_or_resume(&mut trainer, &args.out, &model, &digits)?;
    drop(trainer); // ends the hook's borrows
    frames.finish(args.out.join("cvae.gif"))?;
    println!(
        "pictures, history and checkpoints in {}",
        args.out.display()
    );
    Ok(())
}
