//! Criterion benchmarks: one training step and one inference pass for each
//! tutorial workload at its tutorial batch size, on the CPU (and on CUDA when
//! built with `--features cuda` and a GPU is present).
//!
//! ```text
//! cargo bench --bench workloads
//! cargo bench --bench workloads -- conv-vae-bn
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::{LastBatch, Mnist, Shuffle};
use vaekit::models::{Condition, Mode, Model, Preset, StepContext, Trainable};
use vaekit::train::TrainConfig;

const WORKLOADS: [(&str, Preset); 5] = [
    ("dense-vae", Preset::DenseVae),
    ("cvae-tf", Preset::CvaeTf),
    ("conv-vae-bn", Preset::ConvVaeBn),
    ("digit-cvae", Preset::DigitCvae),
    ("conv-ae", Preset::ConvAe),
];

fn devices() -> Vec<candle_core::Device> {
    let mut d = vec![candle_core::Device::Cpu];
    if let Ok(cuda) = vaekit::device_from_name("cuda") {
        d.push(cuda);
    }
    d
}

fn workloads(c: &mut Criterion) {
    let digits = Mnist::bundled().expect("bundled digits");
    for device in devices() {
        let dev_name = vaekit::device::device_name(&device);
        for (name, preset) in WORKLOADS {
            let config = TrainConfig::for_preset(preset);
            let model = Model::from_preset(preset, &device, 0).expect("preset");
            let mut opt = config
                .optimizer
                .build(model.params().trainable_vars())
                .expect("optimizer");
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let batch = digits
                .train
                .batches(config.batch_size, Shuffle::None, LastBatch::Drop, &device)
                .expect("batches")
                .next()
                .expect("one batch")
                .expect("batch");
            let mut group = c.benchmark_group(format!("{name}/{dev_name}"));
            group.sample_size(20);
            group.throughput(Throughput::Elements(config.batch_size as u64));
            group.bench_function(BenchmarkId::new("train_step", config.batch_size), |b| {
                b.iter(|| {
                    let loss = model
                        .batch_loss(&batch, &mut rng, &StepContext::of(Mode::Train))
                        .expect("loss");
                    opt.backward_step(&loss.total).expect("step");
                    device.synchronize().expect("sync");
                })
            });
            let test = digits
                .test
                .batches(1000, Shuffle::None, LastBatch::Keep, &device)
                .expect("batches")
                .next()
                .expect("one batch")
                .expect("batch");
            group.throughput(Throughput::Elements(1000));
            group.bench_function(BenchmarkId::new("inference", 1000), |b| {
                b.iter(|| {
                    model
                        .reconstruct(&test.images, Condition::of(&test))
                        .expect("reconstruct");
                    device.synchronize().expect("sync");
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, workloads);
criterion_main!(benches);
