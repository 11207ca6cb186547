//! Evaluates a checkpoint vaekit wrote (`Model::save`, or a run's
//! `best.safetensors` / `checkpoint.safetensors`): the importance-sampled
//! negative log-likelihood (Burda et al. 2016) with its standard error over
//! the images and its Monte Carlo standard error (from the importance
//! weights' effective sample size), −ELBO from the same samples, bits per
//! dimension, KL per dimension and active units on the test set, printed as
//! ONE JSON object on stdout. `nll_standard_error` is the standard error over
//! images under its old name (deprecated).
//!
//! ```text
//! cargo run --release --example train_preset -- --preset conv-vae-bn --epochs 5 --out out/cvb
//! cargo run --release --example evaluate -- --checkpoint out/cvb/best.safetensors --importance-samples 1000
//! cargo run --release --example evaluate -- --checkpoint model.safetensors --importance-samples 5000 \
//!     --binarization static --pictures out/cvb/eval
//! ```

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use serde_json::json;
use vaekit::data::Dataset;
use vaekit::eval::{
    dataset_log_likelihood, latent_statistics, latent_traversal, ImportanceSampling, LatentModel,
    ACTIVE_UNIT_THRESHOLD,
};
use vaekit::models::{Condition, Model};
use vaekit::Error;

/// This example's flags.
#[derive(Debug, Parser)]
struct Cli {
    /// The checkpoint to evaluate (written by `Model::save` or the trainer).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Importance samples k per image (Burda et al. report 5,000).
    #[arg(long, value_name = "K", default_value_t = 1000, value_parser = common::positive)]
    importance_samples: usize,
    /// A folder with the four MNIST-format IDX files (raw or .gz); the bundled
    /// 2,000 test digits when absent.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Evaluate the first N test images only.
    #[arg(long, value_name = "N", value_parser = common::positive)]
    limit: Option<usize>,
    /// Test images as they are (`none`) or binarised at 0.5 (`static`, as the
    /// TensorFlow CVAE trains): a Bernoulli likelihood is a probability of
    /// binary pixels only.
    #[arg(long, value_name = "KIND", default_value = "none", value_parser = ["none", "static"])]
    binarization: String,
    /// The device: cpu, cuda or cuda:N.
    #[arg(long, value_name = "NAME", default_value = "cpu")]
    device: String,
    /// Seed of the importance-sampling noise.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Images encoded per pass.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = common::positive)]
    images_per_pass: usize,
    /// (image, sample) pairs decoded per pass: the memory budget.
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = common::positive)]
    pairs_per_pass: usize,
    /// Also write `active_units.png` and `traversal.png` into this folder.
    #[arg(long, value_name = "DIR")]
    pictures: Option<PathBuf>,
}

fn main() {
    common::run(evaluate);
}

fn evaluate() -> vaekit::Result<()> {
    let cli: Cli = common::parse_flags(
        "",
        "Evaluate a VAE checkpoint: importance-sampled NLL, −ELBO, active units.",
    );
    let device = vaekit::device_from_name(&cli.device)?;
    let model = Model::load(&cli.checkpoint, &device)?;
    let vae = model.as_vae_untracked().ok_or_else(|| {
        Error::config(
            "checkpoint",
            format!(
                "{} holds no VAE: only VAEs have a likelihood to estimate",
                cli.checkpoint.display()
            ),
        )
    })?;
    let digits = match &cli.data {
        Some(dir) => vaekit::data::Mnist::load_dir(dir)?,
        None => vaekit::data::Mnist::bundled()?,
    };
    let mut test = digits.test;
    if let Some(n) = cli.limit {
        test = first(&test, n)?;
    }
    if cli.binarization == "static" {
        test = test.binarize_static();
    }
    let settings = ImportanceSampling::default()
        .with_samples(cli.importance_samples)
        .with_seed(cli.seed)
        .with_images_per_pass(cli.images_per_pass)
        .with_pairs_per_pass(cli.pairs_per_pass);
    let started = Instant::now();
    let estimate = dataset_log_likelihood(vae, &test, &settings, &device)?;
    let seconds = started.elapsed().as_secs_f64();
    let stats = latent_statistics(vae, &test, cli.images_per_pass, &device)?;
    let active = stats.active_units(ACTIVE_UNIT_THRESHOLD);
    if let Some(dir) = &cli.pictures {
        write_pictures(vae, &test, &stats.mean_variance, dir, &device)?;
    }
    let out = json!({
        "checkpoint": cli.checkpoint.display().to_string(),
        "test_images": test.len(),
        "binarization": cli.binarization,
        "likelihood": serde_json::to_value(vae.loss_config().likelihood).unwrap_or_default(),
        "importance_samples": estimate.samples,
        "seed": cli.seed,
        "nll": estimate.nll(),
        "nll_standard_error_over_images": estimate.nll_standard_error_over_images(),
        "nll_monte_carlo_standard_error": estimate.nll_monte_carlo_standard_error(),
        // The standard error over images under its old name, for scripts that read it.
        "nll_standard_error": estimate.nll_standard_error_over_images(),
        "effective_sample_size_mean": mean(&estimate.effective_sample_size),
        "effective_sample_size_min": estimate.effective_sample_size.iter().copied().fold(f64::INFINITY, f64::min),
        "negative_elbo": estimate.negative_elbo(),
        "bits_per_dim": estimate.bits_per_dim(),
        "latent_dim": vae.latent_dim(),
        "active_units": active,
        "active_unit_threshold": ACTIVE_UNIT_THRESHOLD,
        "posterior_mean_variance": stats.mean_variance,
        "kl_per_dim": stats.kl_per_dim,
        "seconds": seconds,
    });
    println!("{out}");
    Ok(())
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The first `n` images of `data`.
fn first(data: &Dataset, n: usize) -> vaekit::Result<Dataset> {
    let n = n.min(data.len());
    let size = data.shape().numel();
    Dataset::from_pixels(
        data.images()[..n * size].to_vec(),
        n,
        data.shape(),
        data.labels().map(|l| l[..n].to_vec()),
    )
}

/// The active-unit bar plot and a traversal of every dimension around the
/// first test image's posterior mean, from −3 to 3.
fn write_pictures<M: LatentModel>(
    model: &M,
    test: &Dataset,
    variances: &[f64],
    dir: &std::path::Path,
    device: &candle_core::Device,
) -> vaekit::Result<()> {
    use vaekit::pictures::{active_units_plot, image_grid, save_png, GridStyle};
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    active_units_plot(
        variances,
        ACTIVE_UNIT_THRESHOLD,
        dir.join("active_units.png"),
        "Active units: Var(E[z_d | x]) > 0.01",
    )?;
    let x = common::first_images(test, 1, device)?;
    let code = model
        .posterior_of(&x.images)?
        .mean()
        .squeeze(0)?
        .to_vec1::<f32>()?;
    let values: Vec<f32> = (0..9).map(|i| -3.0 + 0.75 * i as f32).collect();
    let pixels = latent_traversal(model, &code, &values, Condition::None, device)?;
    save_png(
        &image_grid(&pixels, values.len(), GridStyle::default())?,
        dir.join("traversal.png"),
    )
}
