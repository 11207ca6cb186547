//! Flags shared by the tutorial examples: `--epochs`, `--data`, `--out`,
//! `--device`, `--seed`, `--resume`, `--overwrite` (parsed with clap; an example
//! with flags of its own flattens [`Args`] into its own parser).
//!
//! Errors are one line, `error: …`, and exit status 2, whatever `RUST_BACKTRACE`
//! says; `--help` prints the full help and exits 0. A `--out` that already holds
//! a run is never overwritten silently: `--resume` continues it, `--overwrite`
//! starts anew.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::{Arg, ArgAction, ColorChoice, CommandFactory, FromArgMatches, Parser};
use vaekit::data::Mnist;
use vaekit::train::{RunFolder, RunPolicy};
use vaekit::{Error, Result};

/// The parsed command line of a tutorial example.
#[derive(Debug, Clone, Parser)]
pub struct Args {
    /// Epochs to train (the tutorial's number when absent).
    #[arg(long, value_name = "N", value_parser = positive, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// A folder with the four MNIST-format IDX files (raw or .gz); the bundled
    /// 10,000 digits when absent.
    #[arg(long, value_name = "DIR", value_parser = non_empty_path)]
    pub data: Option<PathBuf>,
    /// Where outputs go.
    #[arg(long, value_name = "DIR", value_parser = non_empty_path)]
    pub out: PathBuf,
    /// The device: cpu, cuda or cuda:N.
    #[arg(long, value_name = "NAME", default_value = "cpu", value_parser = device)]
    pub device: Device,
    /// The seed of every random draw (0 when absent; a run file's own seed
    /// when absent and the example reads one).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Continue the run in --out from its checkpoint (bit-identical on the CPU).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Start anew in an --out that holds a run: its history and checkpoints
    /// move into a dated backup folder there when training starts, deleted
    /// once the new run's first checkpoint is written.
    #[arg(long)]
    pub overwrite: bool,
    /// With --resume: continue even if the data differ from the run's (other
    /// sizes or first images than its checkpoint records).
    #[arg(long, requires = "resume")]
    pub allow_data_change: bool,
    /// Extra `--name value` pairs asked for through [`Args::parse`].
    #[arg(skip)]
    pub extra: Vec<(String, String)>,
}

impl Args {
    /// Parses the command line: the common flags plus `--NAME VALUE` for each
    /// name in `extra`, with `usage` as the help's description; then checks
    /// `--out` against `--resume`/`--overwrite` ([`Args::prepare`]).
    ///
    /// Exits with status 2 and one line on a bad flag, 0 after `--help`.
    pub fn parse(default_out: &'static str, extra: &[&'static str], usage: &str) -> Result<Self> {
        let mut cmd = Self::command().about(usage.to_string());
        for &name in extra {
            cmd = cmd.arg(
                Arg::new(name)
                    .long(name)
                    .value_name("VALUE")
                    .action(ArgAction::Set),
            );
        }
        let (matches, mut cmd) = matches(cmd, default_out);
        let mut args =
            Self::from_arg_matches(&matches).unwrap_or_else(|e| clap_exit(e.format(&mut cmd)));
        for &name in extra {
            if let Some(v) = matches.get_one::<String>(name) {
                args.extra.push((name.to_string(), v.clone()));
            }
        }
        args.prepare(&[])?;
        Ok(args)
    }

    /// The seed: `--seed`, or 0.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
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

    /// What `--resume` and `--overwrite` ask for a run folder that holds a run.
    pub fn policy(&self) -> RunPolicy {
        if self.overwrite {
            RunPolicy::Overwrite
        } else if self.resume {
            RunPolicy::Resume
        } else {
            RunPolicy::Refuse
        }
    }

    /// The run folders: `--out` itself when `runs` is empty, else
    /// `--out/<run>` for each (an example that trains several models).
    fn run_dirs(&self, runs: &[&str]) -> Vec<PathBuf> {
        if runs.is_empty() {
            vec![self.out.clone()]
        } else {
            runs.iter().map(|r| self.out.join(r)).collect()
        }
    }

    /// Checks the run folders against `--resume` and `--overwrite`
    /// ([`RunFolder::open_each`]); nothing is written. An old run is moved
    /// aside only when the new run is about to write its first file (see
    /// [`Args::run_folder`]).
    pub fn prepare(&self, runs: &[&str]) -> Result<()> {
        RunFolder::open_each(&self.run_dirs(runs), self.policy()).map(drop)
    }

    /// The run folder `dir` (one of `runs`' folders), checked again with the
    /// others, for [`Trainer::run_folder`](vaekit::train::Trainer::run_folder).
    pub fn run_folder(&self, runs: &[&str], dir: &Path) -> Result<RunFolder> {
        RunFolder::open_each(&self.run_dirs(runs), self.policy())?
            .into_iter()
            .find(|f| f.path() == dir)
            .ok_or_else(|| Error::config("out", format!("{} is not a run folder", dir.display())))
    }

    /// Trains `model` with `trainer`, which writes into a
    /// [`RunFolder`]: resumes the run there if it holds one to resume, else
    /// starts it.
    pub fn fit_or_resume<M: vaekit::models::Trainable + ?Sized>(
        &self,
        trainer: &mut vaekit::train::Trainer<'_>,
        dir: &Path,
        model: &M,
        data: &Mnist,
    ) -> Result<vaekit::train::TrainSummary> {
        if trainer.resumes() {
            println!("resuming the run in {}", dir.display());
            trainer.resume(model, &data.train, &data.test)
        } else {
            trainer.fit(model, &data.train, &data.test)
        }
    }
}

/// Parses the command line into `P` (an example's own parser, which may
/// flatten [`Args`]), with `default_out` for `--out` if `P` has one and
/// `about` as the help's description. Nothing is checked on disk: call
/// [`Args::prepare`] next.
///
/// Exits with status 2 and one line on a bad flag (a non-UTF-8 argument
/// included), 0 after `--help`.
pub fn parse_flags<P: Parser>(default_out: &'static str, about: &str) -> P {
    let (matches, mut cmd) = matches(P::command().about(about.to_string()), default_out);
    P::from_arg_matches(&matches).unwrap_or_else(|e| clap_exit(e.format(&mut cmd)))
}

/// Runs `cmd` on the process's arguments.
fn matches(cmd: clap::Command, default_out: &'static str) -> (clap::ArgMatches, clap::Command) {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some((i, bad)) = args
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, a)| a.to_str().is_none())
    {
        fail(&format!(
            "argument {i} is not valid UTF-8: `{}`",
            bad.to_string_lossy()
        ));
    }
    let mut cmd = cmd.color(ColorChoice::Never);
    if cmd.get_arguments().any(|a| a.get_id() == "out") {
        cmd = cmd.mut_arg("out", |a| a.default_value(default_out).required(false));
    }
    match cmd.try_get_matches_from_mut(args) {
        Ok(m) => (m, cmd),
        Err(e) => clap_exit(e),
    }
}

/// Prints clap's help (exit 0) or its error on one line (exit 2): the message
/// up to the first blank line, without the usage and tips that follow.
fn clap_exit(e: clap::Error) -> ! {
    if !e.use_stderr() {
        // --help: the full text on stdout.
        print!("{e}");
        std::process::exit(0);
    }
    let text = e.to_string();
    let message: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    fail(&format!("{message} (try --help)"))
}

/// Prints `message` as one line `error: …` on stderr and exits with status 2.
pub fn fail(message: &str) -> ! {
    eprintln!("error: {}", one_line(message));
    std::process::exit(2);
}

/// `text` on one line: a backtrace (which candle appends to its errors when
/// `RUST_BACKTRACE` is set) is cut off, and the remaining lines are joined
/// with `: `.
pub fn one_line(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let frame = t
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if frame || t.starts_with("stack backtrace") || t.starts_with("note: Some details") {
            break;
        }
        if !t.is_empty() {
            kept.push(t);
        }
    }
    kept.join(": ")
}

/// A positive whole number (for clap).
pub fn positive(value: &str) -> std::result::Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{value}` is not a positive whole number")),
    }
}

/// A path that is not empty (for clap): `--out ''` would mean the current folder.
fn non_empty_path(value: &str) -> std::result::Result<PathBuf, String> {
    if value.is_empty() {
        Err("an empty path; name a folder".into())
    } else {
        Ok(PathBuf::from(value))
    }
}

/// A device by name (for clap).
fn device(value: &str) -> Result<Device> {
    vaekit::device_from_name(value)
}

/// Parses a positive whole number for flag `name`.
pub fn parse_positive(name: &str, value: &str) -> Result<usize> {
    positive(value).map_err(|reason| Error::config(name, reason))
}

/// Prints one line per epoch: the training terms (means over the epoch's
/// batches) and the test terms (evaluation mode), labelled.
pub fn print_epoch(report: &vaekit::train::EpochReport) {
    let terms = |t: &[(String, f64)]| {
        t.iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "epoch {:>3}  train: {}  test: {}  ({:.1} s, {:.0} img/s)",
        report.epoch,
        terms(&report.train),
        terms(&report.test),
        report.seconds,
        report.images_per_s
    );
}

/// Runs an example's body, printing an error as one readable line (not `Debug`,
/// no backtrace) and exiting with status 2. Output into a closed pipe
/// (`example --help | head`) ends the process quietly, as it does other
/// command-line tools, instead of panicking.
pub fn run(body: impl FnOnce() -> Result<()>) {
    quiet_broken_pipe();
    if let Err(e) = body() {
        fail(&e.to_string());
    }
}

/// Restores the default action of `SIGPIPE` (Rust ignores it, so a write to a
/// closed pipe fails, and `println!` panics on the failure).
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default is async-signal
    // safe and done once, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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

/// The labels of `data` (every MNIST-format set has them), or an error.
pub fn labels_of(data: &vaekit::data::Dataset) -> Result<&[u8]> {
    data.labels()
        .ok_or_else(|| Error::config("data", "these images have no labels"))
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
