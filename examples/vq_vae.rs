//! The VQ-VAE (van den Oord et al. 2017) on the bundled digits, or on a folder
//! of PNG and JPEG images with `--images DIR` (32×32 colour by default); or
//! the model and settings of a run file with `--config`, such as
//! `examples/runs/vq_vae_digits.json` and `examples/runs/gumbel_vae_digits.json`,
//! which select the two discrete families.
//!
//! After training a VQ-VAE, two priors over its code grids are fitted to the
//! codes of the training images: the independent categorical prior (one
//! distribution per grid position, the model's own), and a small PixelCNN
//! trained with the `Trainer` for `--prior-epochs`; their negative
//! log-likelihoods of the test images' code grids are printed. Outputs in
//! `--out`: `reconstructions.png` (test images over their reconstructions),
//! `samples_independent.png` and `samples_pixel_cnn.png` (64 code grids drawn
//! from each prior, decoded; `samples.png`, prior samples, for other models),
//! `curves.png` (the loss, and for a VQ-VAE the perplexity and the share of
//! codes used, per epoch), `explorer.html` (the code explorer of a VQ-VAE or
//! Gumbel-softmax VAE, starting from the first test image's codes: click a
//! code cell to change it and see the image decoded again), `model.safetensors`
//! (the trained model with its fitted independent prior),
//! `pixel_cnn.safetensors`, and the run's `history.jsonl` and checkpoints.
//!
//! ```text
//! cargo run --release --example vq_vae -- --epochs 10
//! cargo run --release --example vq_vae -- --images DIR --size 32 --out out/vq_icons
//! cargo run --release --example vq_vae -- --config examples/runs/gumbel_vae_digits.json --out out/gumbel
//! ```

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;

use clap::Parser;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::{
    Channels, ImageFolder, ImageFolderOptions, ImageSource, LastBatch, Shuffle, Unreadable,
};
use vaekit::latent::CodePrior;
use vaekit::models::{
    check_training_step, code_grid_dataset, default_step_memory_limit, presets, AnyModel,
    Condition, ConfigVqVae, Model, ModelConfig, PixelCnnConfig, PixelCnnPrior, TrainableExt,
};
use vaekit::nets::ImageShape;
use vaekit::params::ParamStore;
use vaekit::pictures::{self, CodeExplorerOptions, CodeSpace, GridStyle};
use vaekit::train::{RunConfig, TrainConfig, Trainer};
use vaekit::{Error, Result};

/// The common flags plus this example's own.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: common::Args,
    /// A folder of PNG and JPEG images (searched recursively) to train on
    /// instead of the digits; 10 % of the files are held out for testing.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// With --images: height and width of the images the model sees (a
    /// multiple of 4).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = common::positive)]
    size: usize,
    /// With --images: 1 for grey, 3 for RGB.
    #[arg(long, value_name = "C", default_value_t = 3, value_parser = channels)]
    channels: usize,
    /// Train the model and settings of a run file (`{"model": …, "train": …}`)
    /// instead of the VQ-VAE preset; `--epochs`, `--batch-size` and `--seed`
    /// override the file's values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Images per batch (64 when absent, or the run file's).
    #[arg(long, value_name = "N", value_parser = common::positive)]
    batch_size: Option<usize>,
    /// Epochs of the PixelCNN prior over a VQ-VAE's code grids.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = common::positive)]
    prior_epochs: usize,
}

fn channels(value: &str) -> std::result::Result<usize, String> {
    match value {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err(format!("`{value}`: 1 (grey) or 3 (RGB)")),
    }
}

fn main() {
    common::run(vq_vae);
}

fn vq_vae() -> Result<()> {
    let cli: Cli = common::parse_flags(
        "out/vq_vae",
        "Train the VQ-VAE (or a run file's model) on digits or a folder of images.",
    );
    let args = &cli.common;
    if args.data.is_some() && cli.images.is_some() {
        return Err(Error::config(
            "data",
            "is for MNIST-format files; --images names a folder of images",
        ));
    }
    // Everything that can be checked is checked before --out is touched.
    let shape = match &cli.images {
        Some(_) => ImageShape::new(cli.channels, cli.size, cli.size),
        None => ImageShape::MNIST,
    };
    let run = match &cli.config {
        Some(path) => RunConfig::from_file(path)?,
        None => {
            let model = if cli.images.is_some() {
                presets::vq_vae(shape, 128, 32, 512, 64)?
            } else {
                presets::vq_vae_digits()
            };
            RunConfig::new(model)
                .with_train(TrainConfig::default().with_epochs(10))
                .check()?
        }
    };
    if run.model.input_shape() != shape {
        return Err(Error::config(
            "config",
            format!(
                "the model takes {} images, the data are {shape}",
                run.model.input_shape()
            ),
        ));
    }
    let mut config: TrainConfig = run.train.clone();
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(e) = args.epochs {
        config.epochs = e;
    }
    if let Some(b) = cli.batch_size {
        config.batch_size = b;
    }
    args.prepare(&[])?;
    check_training_step(&run.model, config.batch_size, default_step_memory_limit())?;
    let model = Model::new(&run.model, &args.device, config.seed)?;

    let (train, test): (Box<dyn ImageSource>, Box<dyn ImageSource>) = match &cli.images {
        Some(dir) => {
            let channels = if cli.channels == 1 {
                Channels::Grey
            } else {
                Channels::Rgb
            };
            let options =
                ImageFolderOptions::square(cli.size, channels).with_unreadable(Unreadable::Warn);
            let (train, test) = ImageFolder::scan(dir, &options)?.split(0.1, config.seed)?;
            (Box::new(train.load()?), Box::new(test.load()?))
        }
        None => {
            let digits = args.digits()?;
            (Box::new(digits.train), Box::new(digits.test))
        }
    };
    println!(
        "{}: {} parameters, {} epochs on {} training and {} test images",
        model.family(),
        model.params().num_trainable(),
        config.epochs,
        train.len(),
        test.len()
    );

    let mut curves = Vec::new();
    let mut trainer = Trainer::new(config.clone())?
        .run_folder(args.run_folder(&[], &args.out)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            common::record_curves(&mut curves, report);
            Ok(())
        });
    if trainer.resumes() {
        println!("resuming the run in {}", args.out.display());
        trainer.resume(&model, train.as_ref(), test.as_ref())?;
    } else {
        trainer.fit(&model, train.as_ref(), test.as_ref())?;
    }
    drop(trainer); // ends the hook's borrows

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let samples = match model.as_vq_vae() {
        Some(vq) => code_priors(vq, train.as_ref(), test.as_ref(), &cli, &config, &mut rng)?,
        None => vec![("samples.png", model.sample(64, &mut rng)?)],
    };
    // With a VQ-VAE's fitted independent prior.
    model.save(args.out.join("model.safetensors"))?;

    let style = GridStyle::default()
        .with_scale(if shape.height >= 64 { 1 } else { 2 })
        .with_padding(2)
        .with_background(255);
    let originals = test
        .batches(16, Shuffle::None, LastBatch::Keep, &args.device)?
        .next()
        .ok_or_else(|| Error::config("data", "no test image"))??
        .images;
    let recon = model.reconstruct(&originals, Condition::None)?;
    pictures::save_png(
        &pictures::comparison_grid(&originals, &recon, 16, style)?,
        args.out.join("reconstructions.png"),
    )?;
    for (file, pixels) in &samples {
        pictures::save_png(
            &pictures::image_grid(pixels, 8, style)?,
            args.out.join(file),
        )?;
    }
    save_curves(&curves, &run.model, &args.out.join("curves.png"))?;
    // The code explorer, from the first test image's codes.
    let first = originals.narrow(0, 0, 1)?;
    let start = match (model.as_vq_vae(), model.as_gumbel_vae()) {
        (Some(vq), _) => Some(vq.encode_indices(&first)?),
        (_, Some(gumbel)) => Some(gumbel.encode_classes(&first)?),
        _ => None,
    };
    if let (Some(space), Some(start)) = (CodeSpace::of(&model), start) {
        let start = start.flatten_all()?.to_vec1::<u32>()?;
        pictures::write_code_explorer(
            model.decoder(),
            &space,
            &CodeExplorerOptions::default().with_start(Some(&start)),
            args.out.join("explorer.html"),
        )?;
    }
    println!(
        "pictures, model, history and checkpoints in {}",
        args.out.display()
    );
    Ok(())
}

/// Fits the VQ-VAE's independent prior and trains a PixelCNN prior on the
/// code grids of `train`, prints both priors' negative log-likelihood of the
/// test grids, saves the PixelCNN, and returns 64 decoded samples of each.
fn code_priors(
    vq: &ConfigVqVae,
    train: &dyn ImageSource,
    test: &dyn ImageSource,
    cli: &Cli,
    config: &TrainConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<(&'static str, candle_core::Tensor)>> {
    let out = &cli.common.out;
    let device = &cli.common.device;
    let (h, w) = vq.grid();
    let k = vq.quantizer().codes();
    let train_codes = vq.encode_dataset(train, 256)?;
    let test_codes = vq.encode_dataset(test, 256)?;
    vq.prior().fit(&train_codes, 1.0)?;
    let mean_nll = |lp: candle_core::Tensor| -> Result<f64> {
        Ok(-lp
            .to_dtype(candle_core::DType::F64)?
            .mean_all()?
            .to_scalar::<f64>()?)
    };
    let independent = mean_nll(vq.prior().log_prob(&test_codes)?)?;
    println!(
        "independent prior over {h}×{w} grids of {k} codes: test NLL {independent:.2} nats a grid"
    );
    let params = ParamStore::new(device);
    let pixel_cnn = PixelCnnPrior::new(
        &PixelCnnConfig::new(k, (h, w)),
        &params,
        params.var_builder(config.seed),
    )?;
    let prior_config = TrainConfig::default()
        .with_seed(config.seed)
        .with_epochs(cli.prior_epochs)
        .with_batch_size(64)
        .with_progress(config.progress);
    let summary = Trainer::new(prior_config)?
        .on_epoch(|r| {
            println!(
                "PixelCNN prior epoch {:>3}: train NLL {:.2}, test NLL {:.2} nats a grid",
                r.epoch,
                r.train_loss(),
                r.test_loss()
            );
            Ok(())
        })
        .fit(
            &pixel_cnn,
            &code_grid_dataset(&train_codes, k)?,
            &code_grid_dataset(&test_codes, k)?,
        )?;
    if let Some(last) = summary.history.last() {
        println!(
            "PixelCNN prior: test NLL {:.2} nats a grid, independent prior {independent:.2}",
            last.test_loss()
        );
    }
    pixel_cnn.save(out.join("pixel_cnn.safetensors"))?;
    Ok(vec![
        ("samples_independent.png", vq.sample(64, rng)?),
        (
            "samples_pixel_cnn.png",
            vq.sample_with(&pixel_cnn, 64, rng)?,
        ),
    ])
}

/// The loss per epoch, and for a VQ-VAE the perplexity and the share of
/// codes used, each in its own panel.
fn save_curves(
    curves: &[(String, Vec<f64>)],
    model: &ModelConfig,
    path: &std::path::Path,
) -> Result<()> {
    let series = |names: &[&str]| -> Vec<(String, Vec<f64>)> {
        curves
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .cloned()
            .collect()
    };
    let mut panels = vec![("loss", series(&["train loss", "test loss"]))];
    if matches!(model, ModelConfig::VqVae(_)) {
        panels.push((
            "codebook perplexity",
            series(&["train perplexity", "test perplexity"]),
        ));
        panels.push((
            "share of codes used",
            series(&["train codes_used", "test codes_used"]),
        ));
    }
    let borrowed: Vec<Vec<(&str, &[f64])>> = panels
        .iter()
        .map(|(_, s)| s.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect())
        .collect();
    let panels: Vec<pictures::LossPanel<'_>> = panels
        .iter()
        .zip(&borrowed)
        .map(|((title, _), s)| (*title, s.as_slice()))
        .collect();
    pictures::loss_panels(&panels, path, "training")
}
