//! Trains PyTorch-VAE's `VanillaVAE` on a folder of your own PNG and JPEG
//! images, grey or colour, at 32×32, 64×64 or any multiple of 32: 90 % of the
//! files (a seeded split) train, 10 % test.
//!
//! Writes `history.jsonl` and the checkpoints, `reconstructions.png` (test
//! images over their reconstructions), `samples.png` and `samples.gif` (the
//! same 64 draws of z after every epoch) and `loss_curves.png`; with
//! `--latent 2` also `manifold.png`, `latent_scatter.png` and the latent
//! explorer `explorer.html`. `--measure-loader` only times the loader.
//!
//! ```text
//! cargo run --release --example image_folder -- --images DIR --size 32 --epochs 10 --out out/icons
//! cargo run --release --example image_folder -- --images DIR --size 64 --channels 1 --labels
//! cargo run --release --example image_folder -- --images DIR --size 64 --measure-loader
//! ```

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::{
    Augmentation, Channels, FolderImages, ImageFolder, ImageFolderOptions, ImageSource, Labels,
    LastBatch, Shuffle,
};
use vaekit::latent::{LatentPrior, StandardNormal};
use vaekit::models::{
    check_training_step, default_step_memory_limit, presets::vanilla_vae, Condition, Likelihood,
    Model,
};
use vaekit::nets::ImageShape;
use vaekit::pictures::{self, ExplorerOptions, FrameRecorder, GridStyle, SliderRange};
use vaekit::train::{TrainConfig, Trainer};
use vaekit::{Error, Result};

/// The pixel likelihood of the VAE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Pixels {
    /// Binary cross-entropy on logits.
    Bernoulli,
    /// A Gaussian with standard deviation --sigma around sigmoid(logits).
    Gaussian,
}

/// The common flags plus this example's own.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: common::Args,
    /// The folder of PNG and JPEG images (searched recursively).
    #[arg(long, value_name = "DIR")]
    images: PathBuf,
    /// Height and width of the images the model sees (a multiple of 32).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = common::positive)]
    size: usize,
    /// 1 for grey, 3 for RGB.
    #[arg(long, value_name = "C", default_value_t = 3, value_parser = channels)]
    channels: usize,
    /// Label each image by its sub-folder (shown in the latent scatter).
    #[arg(long)]
    labels: bool,
    /// Width of the latent space (VanillaVAE's is 128; 2 adds a manifold and an explorer).
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = common::positive)]
    latent: usize,
    /// The pixel likelihood.
    #[arg(long, value_enum, default_value_t = Pixels::Bernoulli)]
    likelihood: Pixels,
    /// σ of the Gaussian likelihood.
    #[arg(long, default_value_t = 0.1)]
    sigma: f64,
    /// Images per batch.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = common::positive)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Share of the files held out for testing.
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// MiB of decoded pixels held in memory; larger sets stream from disk.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    memory_mib: u64,
    /// Threads that decode images.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = common::positive)]
    workers: usize,
    /// Mirror training images left–right at random.
    #[arg(long)]
    flip: bool,
    /// Shift training images by up to N pixels at random.
    #[arg(long, value_name = "N", default_value_t = 0)]
    crop: usize,
    /// Stop with an error on an unreadable file instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Time the loader (decoding, held or streamed) and exit without training.
    #[arg(long)]
    measure_loader: bool,
}

fn channels(value: &str) -> std::result::Result<usize, String> {
    match value {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err(format!("`{value}`: 1 (grey) or 3 (RGB)")),
    }
}

fn main() {
    common::run(train);
}

fn train() -> Result<()> {
    let cli: Cli = common::parse_flags(
        "out/image_folder",
        "Train PyTorch-VAE's VanillaVAE on a folder of PNG and JPEG images.",
    );
    let args = &cli.common;
    if args.data.is_some() {
        return Err(Error::config(
            "data",
            "is for MNIST-format files; name the image folder with --images",
        ));
    }
    let shape = ImageShape::new(cli.channels, cli.size, cli.size);
    let likelihood = match cli.likelihood {
        Pixels::Bernoulli => Likelihood::Bernoulli,
        Pixels::Gaussian => Likelihood::Gaussian { sigma: cli.sigma },
    };
    // Everything that can be checked is checked before --out is touched.
    let model_config = vanilla_vae(shape, cli.latent, likelihood)?;
    let options = ImageFolderOptions::square(cli.size, Channels::Rgb)
        .with_channels(if cli.channels == 1 {
            Channels::Grey
        } else {
            Channels::Rgb
        })
        .with_labels(if cli.labels {
            Labels::SubFolders
        } else {
            Labels::None
        })
        .with_memory_budget(cli.memory_mib.saturating_mul(1 << 20))
        .with_workers(cli.workers)
        .with_unreadable(if cli.strict {
            vaekit::data::Unreadable::Fail
        } else {
            vaekit::data::Unreadable::Warn
        });
    if cli.measure_loader {
        let folder = ImageFolder::scan(&cli.images, &options)?;
        return measure(&folder, cli.batch_size, &args.device);
    }
    // --out, the model's size and a training step's memory are checked, and
    // the model built, before a single image is decoded.
    args.prepare(&[])?;
    check_training_step(&model_config, cli.batch_size, default_step_memory_limit())?;
    let model = Model::new(&model_config, &args.device, args.seed())?;
    let started = Instant::now();
    let folder = ImageFolder::scan(&cli.images, &options)?;
    let (train_files, test_files) = folder.split(cli.test_fraction, args.seed())?;
    let train = train_files.load()?;
    let test = test_files.load()?;
    println!(
        "{}: {} training and {} test images of {}×{}×{} ({}{}) loaded in {:.1} s",
        cli.images.display(),
        train.len(),
        test.len(),
        shape.channels,
        shape.height,
        shape.width,
        if train.is_streamed() {
            "streamed from disk"
        } else {
            "held in memory"
        },
        if folder.classes().is_empty() {
            String::new()
        } else {
            format!(", {} classes", folder.classes().len())
        },
        started.elapsed().as_secs_f64()
    );

    let mut config = TrainConfig::default()
        .with_seed(args.seed())
        .with_epochs(args.epochs.unwrap_or(10))
        .with_batch_size(cli.batch_size)
        .with_augmentation(
            Augmentation::default()
                .with_horizontal_flip(cli.flip)
                .with_crop_padding(cli.crop),
        );
    if let vaekit::train::OptimizerConfig::Adam(p) = &mut config.optimizer {
        p.lr = cli.lr;
    }
    println!(
        "VanillaVAE, latent {}: {} parameters, {} epochs",
        cli.latent,
        model.params().num_trainable(),
        config.epochs
    );

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed());
    let z = StandardNormal::new(cli.latent).sample(64, &mut rng, &args.device)?;
    let style = GridStyle::default()
        .with_scale(if cli.size >= 64 { 1 } else { 2 })
        .with_padding(2)
        .with_background(255);
    let mut frames = FrameRecorder::new(8, style, Duration::from_millis(300));
    let mut curves = Vec::new();
    let mut trainer = Trainer::new(config)?
        .run_folder(args.run_folder(&[], &args.out)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            common::record_curves(&mut curves, report);
            frames.push(&model.decode(&z, Condition::None)?)
        });
    if trainer.resumes() {
        println!("resuming the run in {}", args.out.display());
        trainer.resume(&model, &train, &test)?;
    } else {
        trainer.fit(&model, &train, &test)?;
    }
    drop(trainer); // ends the hook's borrows
    frames.finish(args.out.join("samples.gif"))?;
    pictures::save_png(
        &pictures::image_grid(&model.decode(&z, Condition::None)?, 8, style)?,
        args.out.join("samples.png"),
    )?;
    let shown: Vec<usize> = (0..test.len().min(16)).collect();
    let originals = test.batch(&shown, &args.device)?;
    let recon = model.reconstruct(&originals.images, Condition::None)?;
    pictures::save_png(
        &pictures::comparison_grid(&originals.images, &recon, 8, style)?,
        args.out.join("reconstructions.png"),
    )?;
    common::save_curves(
        &curves,
        &["train loss", "test loss"],
        args.out.join("loss_curves.png"),
        "VanillaVAE loss per image",
    )?;
    if cli.latent == 2 {
        two_d(&model, &test, &args.out, style, &args.device)?;
    }
    println!(
        "pictures, history and checkpoints in {}",
        args.out.display()
    );
    Ok(())
}

/// The manifold, the test set's latent scatter and the explorer of a 2-D latent.
fn two_d(
    model: &Model,
    test: &FolderImages,
    out: &std::path::Path,
    style: GridStyle,
    device: &candle_core::Device,
) -> Result<()> {
    let coords = pictures::normal_quantile_grid(12, 0.05, 0.95)?;
    pictures::save_png(
        &pictures::image_grid(
            &pictures::manifold(model.decoder(), &coords, None, device)?,
            12,
            style,
        )?,
        out.join("manifold.png"),
    )?;
    let mut points = Vec::with_capacity(test.len());
    let mut labels = Vec::with_capacity(test.len());
    for batch in test.batches(256, Shuffle::None, LastBatch::Keep, device)? {
        let batch = batch?;
        points.extend(common::points_2d(&model.encode(&batch.images)?)?);
        match &batch.labels {
            Some(l) => labels.extend(l.to_vec1::<u32>()?.into_iter().map(|v| v as u8)),
            None => labels.extend(std::iter::repeat_n(0u8, batch.len())),
        }
    }
    pictures::latent_scatter(
        &points,
        &labels,
        out.join("latent_scatter.png"),
        "test images: latent means",
    )?;
    let options = ExplorerOptions::default()
        .with_scatter(Some((&points, &labels)))
        .with_range(SliderRange::Prior)
        .with_classes(0);
    pictures::write_latent_explorer(model.decoder(), &options, out.join("explorer.html"))
}

/// Times the loader on every file of the folder: one pass decoding them all (what a
/// held set costs once), then one epoch of streamed batches (what a streamed
/// set costs every epoch), in images per second.
fn measure(files: &ImageFolder, batch_size: usize, device: &candle_core::Device) -> Result<()> {
    let n = files.len();
    let t = Instant::now();
    let held = files.load()?;
    let load_s = t.elapsed().as_secs_f64();
    drop(held);
    let streamed_files = ImageFolder::scan(
        files.root(),
        &files
            .options()
            .clone()
            .with_memory_budget(0)
            .with_unreadable(vaekit::data::Unreadable::Skip),
    )?;
    let streamed = streamed_files.load()?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let t = Instant::now();
    let mut seen = 0;
    for batch in streamed.batches(
        batch_size,
        Shuffle::Seeded(&mut rng),
        LastBatch::Keep,
        device,
    )? {
        seen += batch?.len();
    }
    let epoch_s = t.elapsed().as_secs_f64();
    let o = files.options();
    println!(
        "loader, {} worker(s), {}×{}×{}: decode-and-hold {n} images in {load_s:.2} s ({:.0} images/s); \
         one streamed epoch of {seen} images in {epoch_s:.2} s ({:.0} images/s)",
        o.workers,
        o.channels.count(),
        o.height,
        o.width,
        n as f64 / load_s,
        seen as f64 / epoch_s
    );
    Ok(())
}
