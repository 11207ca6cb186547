//! The digit-conditioned VAE: dense 128-unit sigmoid networks, z 10, a classifier
//! whose softmax the decoder sees beside z, loss = VAE loss (Gaussian, σ = 0.5) +
//! 10 · cross-entropy, Adam 1e-3, batch 100, 20 epochs.
//!
//! Generating a chosen digit sets the class vector to its one-hot and draws z
//! from the prior, so one z renders all ten digits in one style. Writes
//! `loss_curves.png` (the VAE loss and the classifier loss in two panels, as
//! the tutorial plots them), `digits_by_epoch.png` (one row per epoch, labelled:
//! a fresh z, digits 0–9), `digit_grid.png` (ten z's × ten digits from the final
//! model),
//! `interpolation.png` (between two test digits), and the trainer's files.
//!
//! ```text
//! cargo run --release --example digit_cvae
//! ```

#[path = "common/mod.rs"]
mod common;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::models::{Model, Preset};
use vaekit::pictures::{self, GridStyle};
use vaekit::train::{TrainConfig, Trainer};

fn main() {
    common::run(digit_cvae);
}

fn digit_cvae() -> vaekit::Result<()> {
    let args = common::Args::parse("out/digit_cvae", &[], "The digit-conditioned VAE.")?;
    let digits = args.digits()?;
    let built = Model::from_preset(Preset::DigitCvae, &args.device, args.seed())?;
    let model = built.as_vae().ok_or_else(|| {
        vaekit::Error::config("preset", "digit-cvae builds a digit-conditioned VAE")
    })?;
    let mut config = TrainConfig::for_preset(Preset::DigitCvae);
    config.seed = args.seed();
    config.epochs = args.epochs.unwrap_or(config.epochs);

    let style = GridStyle::default()
        .with_scale(2)
        .with_padding(2)
        .with_background(255);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed());
    let mut rows = Vec::new();
    let mut epochs = Vec::new();
    let (mut vae_loss, mut vae_test) = (Vec::new(), Vec::new());
    let (mut classifier_loss, mut classifier_test) = (Vec::new(), Vec::new());
    println!(
        "digit-conditioned VAE, z 10: {} parameters, {} epochs",
        built.params().num_trainable(),
        config.epochs
    );
    let mut trainer = Trainer::new(config)?
        .run_folder(args.run_folder(&[], &args.out)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            let train = |n: &str| report.train_metric(n).unwrap_or(f64::NAN);
            let test = |n: &str| report.test_metric(n).unwrap_or(f64::NAN);
            epochs.push(report.epoch);
            vae_loss.push(train("reconstruction") + train("kl"));
            vae_test.push(test("reconstruction") + test("kl"));
            classifier_loss.push(train("classification"));
            classifier_test.push(test("classification"));
            rows.push(model.generate_grid(1, &mut rng, &args.device)?); // [10, 1, 28, 28]
            Ok(())
        });
    args.fit_or_resume(&mut trainer, &args.out, &built, &digits)?;
    drop(trainer); // ends the hook's borrows

    let out = &args.out;
    pictures::loss_panels(
        &[
            (
                "VAE loss (reconstruction + KL)",
                &[("train", &vae_loss), ("test", &vae_test)],
            ),
            (
                "digit classifier loss (cross-entropy)",
                &[("train", &classifier_loss), ("test", &classifier_test)],
            ),
        ],
        out.join("loss_curves.png"),
        "digit-conditioned VAE: losses per epoch",
    )?;
    let tile = (28 * style.scale as u32, 28 * style.scale as u32);
    let digit_labels: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let by_epoch = candle_core::Tensor::cat(&rows, 0)?;
    let labels = pictures::GridLabels::default()
        .with_rows(epochs.iter().map(|e| format!("epoch {e}")).collect())
        .with_columns(digit_labels.clone());
    pictures::save_png(
        &pictures::label_grid(
            &pictures::image_grid(&by_epoch, 10, style)?,
            tile,
            style,
            &labels,
        )?,
        out.join("digits_by_epoch.png"),
    )?;
    let labels = pictures::GridLabels::default()
        .with_columns(digit_labels)
        .with_column_title(Some("digit (each row: one z from the prior)".into()));
    pictures::save_png(
        &pictures::label_grid(
            &pictures::digit_grid(model, 10, &mut rng, style)?,
            tile,
            style,
            &labels,
        )?,
        out.join("digit_grid.png"),
    )?;
    // From the first test digit to the second (to itself with one test image).
    let pair = common::first_images(&digits.test, 2, &args.device)?;
    let last = pair.indices.len() - 1;
    let codes = model.posterior(&pair.images, false)?.mean().clone(); // [1 or 2, 10]
    let labels: Vec<u32> = pair.require_labels("the interpolation")?.to_vec1()?;
    let (from, to) = (
        model.class_vector(labels[0])?,
        model.class_vector(labels[last])?,
    );
    let strip = pictures::interpolation_strip(
        model.decoder(),
        &codes.get(0)?,
        &codes.get(last)?,
        10,
        Some((&from, &to)),
        style,
    )?;
    pictures::save_png(&strip, out.join("interpolation.png"))?;
    println!("pictures, history and checkpoints in {}", out.display());
    Ok(())
}
