//! Flags shared by the tutorial examples: `--epochs`, `--data`, `--out`,
//! `--device`, `--seed` (and `--preset` where an example takes one).
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::Device;
use vaekit::data::Mnist;
use vaekit::{Error, Result};

/// The parsed command line of a tutorial example.
#[derive(Debug, Clone)]
pub struct Args {
    /// Epochs to train (the tutorial's default when absent).
    pub epochs: Option<usize>,
    /// A folder with the four MNIST-format IDX files; the bundled digits when absent.
    pub data: Option<PathBuf>,
    /// Where outputs go.
    pub out: PathBuf,
    /// The device.
    pub device: Device,
    /// The seed.
    pub seed: u64,
    /// Extra `--name value` pairs the example asked for.
    pub extra: Vec<(String, String)>,
}

impl Args {
    /// Parses `std::env::args()`, accepting the common flags plus `extra` names.
    pub fn parse(default_out: &str, extra: &[&str], usage: &str) -> Result<Self> {
        let mut args = Args {
            epochs: None,
            data: None,
            out: PathBuf::from(default_out),
            device: Device::Cpu,
            seed: 0,
            extra: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                println!("{usage}\n\nflags: --epochs N  --data DIR  --out DIR  --device cpu|cuda  --seed N{}",
                    extra.iter().map(|e| format!("  --{e} VALUE")).collect::<String>());
                std::process::exit(0);
            }
            let name = flag.strip_prefix("--").ok_or_else(|| {
                Error::config(
                    "arguments",
                    format!("unexpected argument `{flag}` (try --help)"),
                )
            })?;
            let value = it
                .next()
                .filter(|v| !v.starts_with("--"))
                .ok_or_else(|| Error::config(name, "needs a value"))?;
            match name {
                "epochs" => args.epochs = Some(parse_positive(name, &value)?),
                "data" => args.data = Some(PathBuf::from(value)),
                "out" => args.out = PathBuf::from(value),
                "device" => args.device = vaekit::device_from_name(&value)?,
                "seed" => {
                    args.seed = value.parse().map_err(|_| {
                        Error::config("seed", format!("`{value}` is not a whole number"))
                    })?
                }
                other if extra.contains(&other) => args.extra.push((other.to_string(), value)),
                other => return Err(Error::config(other, "unknown flag (try --help)")),
            }
        }
        std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
        Ok(args)
    }

    /// The value of an extra flag.
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The digits: from `--data`, or the bundled 8,000 + 2,000.
    pub fn digits(&self) -> Result<Mnist> {
        match &self.data {
            Some(dir) => Mnist::load_dir(dir),
            None => Mnist::bundled(),
        }
    }
}

/// Parses a positive whole number for flag `name`.
pub fn parse_positive(name: &str, value: &str) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::config(
            name,
            format!("`{value}` is not a positive whole number"),
        )),
    }
}

/// Prints one line per epoch.
pub fn print_epoch(report: &vaekit::train::EpochReport) {
    let test: Vec<String> = report
        .test
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    println!(
        "epoch {:>3}  train loss {:.4}  test {}  {:.1}s  {:.0} img/s",
        report.epoch,
        report.train_loss(),
        test.join("  "),
        report.seconds,
        report.images_per_s
    );
}

/// Runs an example's body, printing an error as one readable line (not `Debug`)
/// and exiting with status 2.
pub fn run(body: impl FnOnce() -> Result<()>) {
    if let Err(e) = body() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// Appends an epoch's train and test terms to per-term series (for loss curves).
pub fn record_curves(curves: &mut Vec<(String, Vec<f64>)>, report: &vaekit::train::EpochReport) {
    let named = report
        .train
        .iter()
        .map(|(k, v)| (format!("train {k}"), *v))
        .chain(report.test.iter().map(|(k, v)| (format!("test {k}"), *v)));
    for (name, v) in named {
        match curves.iter_mut().find(|(n, _)| *n == name) {
            Some((_, s)) => s.push(v),
            None => curves.push((name, vec![v])),
        }
    }
}

/// Plots the series whose names are in `keep` (all when empty).
#[cfg(feature = "pictures")]
pub fn save_curves(
    curves: &[(String, Vec<f64>)],
    keep: &[&str],
    path: impl AsRef<std::path::Path>,
    title: &str,
) -> Result<()> {
    let series: Vec<(&str, &[f64])> = curves
        .iter()
        .filter(|(n, _)| keep.is_empty() || keep.contains(&n.as_str()))
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    vaekit::pictures::loss_curves(&series, path, title)
}

/// Rows of a `[n, 2]` tensor as points.
pub fn points_2d(z: &candle_core::Tensor) -> Result<Vec<(f32, f32)>> {
    let rows = z.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
    Ok(rows
        .into_iter()
        .map(|r| (r[0], r.get(1).copied().unwrap_or(0.0)))
        .collect())
}

/// The first `n` images of `data` as one batch on `device`.
pub fn first_images(
    data: &vaekit::data::Dataset,
    n: usize,
    device: &Device,
) -> Result<vaekit::data::Batch> {
    let n = n.min(data.len());
    data.batch(&(0..n).collect::<Vec<_>>(), device)
}

/// mimalloc instead of the system allocator: candle allocates and frees
/// megabyte-sized buffers every step, which glibc's malloc serves with fresh
/// `mmap`s (and page faults) each time until its threshold adapts — up to 10×
/// slower training for the dense models (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
