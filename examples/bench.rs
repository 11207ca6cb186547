//! Training and inference throughput of the tutorial workloads, one JSON object
//! per line, for scripts to compare.
//!
//! ```text
//! cargo run --release --example bench -- --workload conv-vae-bn --device cpu --steps 50
//! cargo run --release --example bench -- --workload all
//! ```
//!
//! Fields: `workload`, `device`, `batch`, `params`, `train_images_per_s` (steady
//! state, after `--warmup` steps, 20 by default; each batch is gathered from
//! the shuffled training set inside the timed loop), `infer_images_per_s` (encode + decode of the
//! 2,000 test images at batch 1,000: the median of 5 timed passes after a
//! warm-up pass), `first_step_ms` (from process start to the
//! end of the first training step; on a GPU this includes kernel start-up),
//! `peak_rss_mib` (the process's peak resident memory), `threads` (CPU threads
//! candle uses), `allocator` (`system`, the default, or `mimalloc` with
//! `--allocator mimalloc`, for comparison), `step_phases_ms` (with `--phases`:
//! median milliseconds of a step's batch with forward and loss, backward and
//! optimizer phases; `null` without).

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use clap::Parser;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::{LastBatch, Mnist, Shuffle};
use vaekit::models::{Condition, Mode, Model, Preset, StepContext, Trainable};
use vaekit::train::TrainConfig;
use vaekit::{Error, Result};

/// The process's global allocator: the system's unless the environment
/// variable [`ALLOCATOR_VAR`] says `mimalloc`. It is read once, at the first
/// allocation (with `getenv`, which does not allocate), so every block is
/// freed by the allocator that made it; `--allocator` re-runs the bench with
/// the variable set.
struct BenchAllocator;

const ALLOCATOR_VAR: &std::ffi::CStr = c"VAEKIT_BENCH_ALLOCATOR";

/// 0: not yet read; 1: the system's; 2: mimalloc.
static ALLOCATOR: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

impl BenchAllocator {
    fn mimalloc(&self) -> bool {
        use std::sync::atomic::Ordering;
        match ALLOCATOR.load(Ordering::Relaxed) {
            0 => {
                // SAFETY: `getenv` reads the environment without allocating;
                // the bench sets no variables in its own process.
                let value = unsafe { libc::getenv(ALLOCATOR_VAR.as_ptr()) };
                let mi = !value.is_null()
                    // SAFETY: a non-null `getenv` result is a C string.
                    && unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() == b"mimalloc";
                ALLOCATOR.store(if mi { 2 } else { 1 }, Ordering::Relaxed);
                mi
            }
            state => state == 2,
        }
    }

    fn name(&self) -> &'static str {
        if self.mimalloc() {
            "mimalloc"
        } else {
            "system"
        }
    }
}

// SAFETY: every call goes to one of two allocators, chosen once for the
// process's life, so a block is always freed by the allocator that made it.
unsafe impl std::alloc::GlobalAlloc for BenchAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if self.mimalloc() {
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        } else {
            unsafe { std::alloc::System.alloc(layout) }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if self.mimalloc() {
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        } else {
            unsafe { std::alloc::System.alloc_zeroed(layout) }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if self.mimalloc() {
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        } else {
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if self.mimalloc() {
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        } else {
            unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static GLOBAL: BenchAllocator = BenchAllocator;

/// Timed inference passes; the median is reported.
const INFER_PASSES: usize = 5;

const WORKLOADS: [(&str, Preset); 5] = [
    ("dense-vae", Preset::DenseVae),
    ("cvae-tf", Preset::CvaeTf),
    ("conv-vae-bn", Preset::ConvVaeBn),
    ("digit-cvae", Preset::DigitCvae),
    ("conv-ae", Preset::ConvAe),
];

/// The bench's flags.
#[derive(Debug, Parser)]
struct Flags {
    /// `all`, or one of dense-vae, cvae-tf, conv-vae-bn, digit-cvae, conv-ae.
    #[arg(long, value_name = "NAME", default_value = "all")]
    workload: String,
    /// The device: cpu, cuda or cuda:N.
    #[arg(long, value_name = "NAME", default_value = "cpu")]
    device: String,
    /// Timed training steps.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = common::positive, allow_negative_numbers = true)]
    steps: usize,
    /// Untimed training steps before them.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = common::positive, allow_negative_numbers = true)]
    warmup: usize,
    /// Also time each phase of a training step (median milliseconds of the
    /// timed steps, in `step_phases_ms`); it waits for the device between
    /// phases, so throughput is measured without it.
    #[arg(long)]
    phases: bool,
    /// The global allocator: system (the default) or mimalloc.
    #[arg(long, value_name = "NAME", default_value = "system", value_parser = ["system", "mimalloc"])]
    allocator: String,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run(name: &str, preset: Preset, flags: &Flags, started: Instant) -> Result<serde_json::Value> {
    let device = vaekit::device_from_name(&flags.device)?;
    let digits = Mnist::bundled()?;
    let config = TrainConfig::for_preset(preset);
    let model = Model::from_preset(preset, &device, 0)?;
    let mut opt = config.optimizer.build(model.params().trainable_vars())?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let train = match config.binarization {
        vaekit::train::Binarization::None => digits.train.clone(),
        _ => digits.train.binarize_static(),
    };
    // Batches are gathered inside the timed loop, a new shuffle each epoch,
    // as a training loop (and the PyTorch reference) does.
    let mut epoch = train.batches(
        config.batch_size,
        Shuffle::Seeded(&mut rng),
        LastBatch::Drop,
        &device,
    )?;
    let mut step_rng = ChaCha8Rng::seed_from_u64(1);
    // Seconds of each phase of every step (batch and forward with the loss,
    // backward, optimizer), with `--phases` only: it waits for the device
    // between phases.
    let mut phases: [Vec<f64>; 3] = Default::default();
    let mut step = |_: usize| -> Result<()> {
        let t0 = Instant::now();
        let b = match epoch.next() {
            Some(b) => b?,
            None => {
                epoch = train.batches(
                    config.batch_size,
                    Shuffle::Seeded(&mut rng),
                    LastBatch::Drop,
                    &device,
                )?;
                epoch
                    .next()
                    .ok_or_else(|| Error::config("batch_size", "larger than the data"))??
            }
        };
        let loss = model.batch_loss(&b, &mut step_rng, &StepContext::of(Mode::Train))?;
        if !flags.phases {
            opt.backward_step(&loss.total)?;
        } else {
            device.synchronize()?;
            let t1 = Instant::now();
            let grads = loss.total.backward()?;
            device.synchronize()?;
            let t2 = Instant::now();
            opt.step(&grads)?;
            device.synchronize()?;
            let t3 = Instant::now();
            for (phase, (a, b)) in phases.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
                phase.push((b - a).as_secs_f64());
            }
        }
        // Read the loss back, as a training loop does (it also waits for the GPU).
        loss.total
            .to_dtype(candle_core::DType::F32)?
            .to_scalar::<f32>()?;
        Ok(())
    };
    step(0)?;
    device.synchronize()?;
    let first_step_ms = started.elapsed().as_secs_f64() * 1e3;
    for i in 1..flags.warmup {
        step(i)?;
    }
    device.synchronize()?;
    let t = Instant::now();
    for i in 0..flags.steps {
        step(flags.warmup + i)?;
    }
    device.synchronize()?;
    let train_images_per_s = (flags.steps * config.batch_size) as f64 / t.elapsed().as_secs_f64();
    let phase_ms = |i: usize| {
        // The timed steps only, not the warm-up.
        let mut v = phases[i][phases[i].len().saturating_sub(flags.steps)..].to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).map(|s| (s * 1e4).round() / 10.0)
    };
    let step_phases_ms = flags.phases.then(|| {
        serde_json::json!({
            "forward_and_loss": phase_ms(0),
            "backward": phase_ms(1),
            "optimizer": phase_ms(2),
        })
    });

    let test: Vec<_> = digits
        .test
        .batches(1000, Shuffle::None, LastBatch::Keep, &device)?
        .collect::<Result<_>>()?;
    let infer = |labels: bool| -> Result<()> {
        for b in &test {
            model.reconstruct(
                &b.images,
                match (&b.labels, labels) {
                    (Some(l), true) => Condition::Labels(l),
                    _ => Condition::None,
                },
            )?;
        }
        Ok(())
    };
    infer(true)?; // warm-up
    let mut seconds = Vec::with_capacity(INFER_PASSES);
    for _ in 0..INFER_PASSES {
        device.synchronize()?;
        let t = Instant::now();
        infer(true)?;
        device.synchronize()?;
        seconds.push(t.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let infer_images_per_s = digits.test.len() as f64 / seconds[INFER_PASSES / 2];

    Ok(serde_json::json!({
        "workload": name,
        "device": vaekit::device::device_name(&device),
        "batch": config.batch_size,
        "params": model.params().num_trainable(),
        "train_images_per_s": train_images_per_s.round(),
        "infer_images_per_s": infer_images_per_s.round(),
        "first_step_ms": (first_step_ms * 10.0).round() / 10.0,
        "peak_rss_mib": (peak_rss_mib() * 10.0).round() / 10.0,
        "threads": candle_core::utils::get_num_threads(),
        "allocator": GLOBAL.name(),
        "step_phases_ms": step_phases_ms,
        "steps": flags.steps,
    }))
}

fn main() {
    let started = Instant::now();
    common::run(|| bench(started));
}

fn bench(started: Instant) -> Result<()> {
    let flags: Flags =
        common::parse_flags("", "Training and inference throughput of the workloads.");
    if flags.workload == "all" || flags.allocator != GLOBAL.name() {
        // One process per workload, so memory and start-up are measured alone,
        // each with the allocator asked for.
        let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
        let names: Vec<&str> = if flags.workload == "all" {
            WORKLOADS.iter().map(|(n, _)| *n).collect()
        } else {
            vec![flags.workload.as_str()]
        };
        for name in names {
            let status = std::process::Command::new(&exe)
                .env(
                    ALLOCATOR_VAR.to_str().expect("ASCII name"),
                    &flags.allocator,
                )
                .args(["--workload", name, "--device", &flags.device])
                .args(["--allocator", &flags.allocator])
                .args(flags.phases.then_some("--phases"))
                .args([
                    "--steps",
                    &flags.steps.to_string(),
                    "--warmup",
                    &flags.warmup.to_string(),
                ])
                .status()
                .map_err(|e| Error::io(&exe, e))?;
            if !status.success() {
                return Err(Error::config(
                    "workload",
                    format!("`{name}` failed: {status}"),
                ));
            }
        }
        return Ok(());
    }
    let (name, preset) = WORKLOADS
        .iter()
        .find(|(n, _)| *n == flags.workload)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = WORKLOADS.iter().map(|(n, _)| *n).collect();
            Error::config(
                "workload",
                format!(
                    "unknown workload `{}`; expected all or one of {}",
                    flags.workload,
                    names.join(", ")
                ),
            )
        })?;
    println!("{}", run(name, preset, &flags, started)?);
    Ok(())
}
