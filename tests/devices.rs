//! The same test bodies on every device vaekit is built for: each takes a
//! `&Device` and runs once on the CPU and, in a build with the `cuda` feature,
//! once on the first GPU (a `cuda` build's tests expect one). With `cuda`, the
//! CPU–GPU parity test also compares each preset's loss terms, gradients and
//! outputs on the two devices within 1e-4 relative.

mod common;

#[cfg(feature = "cuda")]
use candle_core::Tensor;
use candle_core::{DType, Device};
#[cfg(feature = "cuda")]
use common::assert_close;
use common::{head, temp_dir};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::{Batch, LastBatch, Mnist, Shuffle};
use vaekit::models::{Condition, StepContext};
use vaekit::models::{Mode, Model, Preset, Trainable};
use vaekit::train::{read_history, Binarization, Progress, TrainConfig, Trainer, HISTORY_FILE};

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// The first `n` bundled training digits on `device`, binarised as `preset`
/// trains on them.
fn batch(preset: Preset, n: usize, device: &Device) -> Batch {
    let digits = Mnist::bundled().unwrap();
    let train = match TrainConfig::for_preset(preset).binarization {
        Binarization::None => head(&digits.train, n),
        _ => head(&digits.train, n).binarize_static(),
    };
    train
        .batches(n, Shuffle::None, LastBatch::Keep, device)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

fn loss_value(model: &Model, b: &Batch, seed: u64) -> f64 {
    model
        .evaluate(b, &mut rng(seed), &StepContext::eval())
        .unwrap()
        .total
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Every preset trains on `device`: ten optimizer steps on one batch lower its
/// loss (measured in evaluation mode with the same noise before and after).
fn every_preset_trains(device: &Device) {
    for preset in Preset::ALL {
        let model = Model::from_preset(preset, device, 0).unwrap();
        assert!(model.device().same_device(device), "{preset}");
        let b = batch(preset, 32, device);
        let mut opt = TrainConfig::for_preset(preset)
            .optimizer
            .build(model.params().trainable_vars())
            .unwrap();
        let before = loss_value(&model, &b, 7);
        for step in 0..10 {
            let loss = model.batch_loss(&b, &mut rng(step), &StepContext::of(Mode::Train));
            opt.backward_step(&loss.unwrap().total).unwrap();
        }
        let after = loss_value(&model, &b, 7);
        assert!(before.is_finite() && after.is_finite(), "{preset}");
        assert!(after < before, "{preset}: loss {before} -> {after}");
    }
}

/// Encoding, reconstruction, decoding and sampling give tensors of the right
/// shape on `device`, pixels in [0, 1].
fn inference_runs(device: &Device) {
    for preset in Preset::ALL {
        let model = Model::from_preset(preset, device, 0).unwrap();
        let b = batch(preset, 8, device);
        let z = model.encode(&b.images).unwrap();
        assert_eq!(z.dims(), [8, model.latent_dim()], "{preset}");
        assert!(z.device().same_device(device), "{preset}");
        let pixels = model.reconstruct(&b.images, Condition::of(&b)).unwrap();
        assert_eq!(pixels.dims(), b.images.dims(), "{preset}");
        let sampled = model.sample(5, &mut rng(1)).unwrap();
        assert_eq!(sampled.dims()[0], 5, "{preset}");
        for t in [&pixels, &sampled] {
            let min = t.min_all().unwrap().to_scalar::<f32>().unwrap();
            let max = t.max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(
                (0.0..=1.0).contains(&min) && max <= 1.0,
                "{preset}: {min}..{max}"
            );
        }
    }
}

/// A model saved from `device` loads back onto it with the same outputs.
fn save_and_load_round_trip(device: &Device) {
    let dir = temp_dir(&format!(
        "devices-save-{}",
        vaekit::device::device_name(device)
    ));
    for preset in [Preset::ConvVaeBn, Preset::DigitCvae] {
        let model = Model::from_preset(preset, device, 3).unwrap();
        let b = batch(preset, 8, device);
        // A training step moves the batch-norm statistics away from their start.
        let loss = model.batch_loss(&b, &mut rng(0), &StepContext::of(Mode::Train));
        drop(loss.unwrap());
        let path = dir.join(format!("{preset}.safetensors"));
        model.save(&path).unwrap();
        let loaded = Model::load(&path, device).unwrap();
        let (a, c) = (
            model.reconstruct(&b.images, Condition::of(&b)).unwrap(),
            loaded.reconstruct(&b.images, Condition::of(&b)).unwrap(),
        );
        let diff = (a - c).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{preset}");
    }
}

/// The trainer runs an epoch on `device` and writes its history.
fn trainer_runs_an_epoch(device: &Device) {
    let digits = Mnist::bundled().unwrap();
    let dir = temp_dir(&format!(
        "devices-trainer-{}",
        vaekit::device::device_name(device)
    ));
    let model = Model::from_preset(Preset::ConvVaeBn, device, 0).unwrap();
    let config = TrainConfig::for_preset(Preset::ConvVaeBn)
        .with_epochs(1)
        .with_progress(Progress::Hidden);
    let summary = Trainer::new(config)
        .unwrap()
        .output_dir(&dir)
        .fit(&model, &head(&digits.train, 256), &head(&digits.test, 128))
        .unwrap();
    let loss = summary.history[0].test_loss();
    assert!(loss.is_finite() && loss > 0.0, "test loss {loss}");
    assert_eq!(read_history(dir.join(HISTORY_FILE)).unwrap().len(), 1);
}

/// One `#[test]` per body and device.
macro_rules! on_devices {
    ($($body:ident),* $(,)?) => {
        mod cpu {
            $(#[test]
            fn $body() {
                super::$body(&candle_core::Device::Cpu);
            })*
        }

        #[cfg(feature = "cuda")]
        mod cuda {
            $(#[test]
            fn $body() {
                super::$body(&super::gpu());
            })*
        }
    };
}

on_devices!(
    every_preset_trains,
    inference_runs,
    save_and_load_round_trip,
    trainer_runs_an_epoch,
);

/// The first GPU: a `cuda` build's tests are meant to run where there is one.
#[cfg(feature = "cuda")]
fn gpu() -> Device {
    Device::new_cuda(0).expect("a `cuda` build's tests need a GPU (CUDA device 0)")
}

/// The gradient of every trainable tensor of `model` for one training-mode
/// loss, by name, as CPU tensors.
#[cfg(feature = "cuda")]
fn gradients(model: &Model, loss: &Tensor) -> Vec<(String, Tensor)> {
    let grads = loss.backward().unwrap();
    model
        .params()
        .named_vars()
        .into_iter()
        .filter(|(name, _)| !vaekit::params::is_buffer(name))
        .map(|(name, var)| {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            (name, g.to_device(&Device::Cpu).unwrap())
        })
        .collect()
}

/// Each preset, built from the same seed on both devices (initial weights and
/// noise come from the host's seeded generator), gives the same loss terms,
/// gradients, reconstructions and running statistics within 1e-4 relative.
#[cfg(feature = "cuda")]
#[test]
fn cpu_and_gpu_agree_on_every_preset() {
    let gpu = gpu();
    for preset in Preset::ALL {
        let cpu_model = Model::from_preset(preset, &Device::Cpu, 11).unwrap();
        let gpu_model = Model::from_preset(preset, &gpu, 11).unwrap();
        let (cb, gb) = (batch(preset, 16, &Device::Cpu), batch(preset, 16, &gpu));

        let cl = cpu_model
            .batch_loss(&cb, &mut rng(5), &StepContext::train())
            .unwrap();
        let gl = gpu_model
            .batch_loss(&gb, &mut rng(5), &StepContext::train())
            .unwrap();
        for ((name, c), (_, g)) in cl.terms.iter().zip(&gl.terms) {
            let g = g.to_device(&Device::Cpu).unwrap();
            assert_close(&format!("{preset} {name}"), &g, c, 1e-4, 0.0);
        }
        for ((name, c), (_, g)) in gradients(&cpu_model, &cl.total)
            .iter()
            .zip(&gradients(&gpu_model, &gl.total))
        {
            assert_close(&format!("{preset} grad {name}"), g, c, 1e-4, 1e-6);
        }
        // Running statistics after that training-mode forward, and evaluation outputs.
        for ((name, c), (_, g)) in cpu_model
            .params()
            .snapshot()
            .iter()
            .zip(&gpu_model.params().snapshot())
        {
            let g = g.to_device(&Device::Cpu).unwrap();
            assert_close(&format!("{preset} {name}"), &g, c, 1e-4, 1e-6);
        }
        let c = cpu_model
            .reconstruct(&cb.images, Condition::of(&cb))
            .unwrap();
        let g = gpu_model
            .reconstruct(&gb.images, Condition::of(&gb))
            .unwrap();
        let g = g.to_device(&Device::Cpu).unwrap();
        assert_close(&format!("{preset} reconstruction"), &g, &c, 1e-4, 1e-6);
    }
}
