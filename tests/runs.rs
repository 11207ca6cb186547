//! A run's folder and a run's limits: a finished run is never lost to a new
//! run that fails (`RunFolder`: checks first, the old run moved aside only at
//! the new run's first write and deleted only after its first checkpoint);
//! a resumed run notices other data; a training step too large for the
//! machine, and a batch of one image under batch norm, are refused with the
//! figures, before anything is written.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use vaekit::data::{Dataset, Mnist};
use vaekit::models::{
    check_training_step, presets::vanilla_vae, training_step_bytes, Likelihood, Model, Preset,
};
use vaekit::nets::ImageShape;
use vaekit::train::{
    Progress, RunFolder, RunPolicy, TrainConfig, Trainer, BACKUP_PREFIX, BEST_MODEL_FILE,
    CHECKPOINT_FILE, HISTORY_FILE,
};
use vaekit::Error;

use common::{head, temp_dir};

const RUN_FILES: [&str; 3] = [HISTORY_FILE, CHECKPOINT_FILE, BEST_MODEL_FILE];

/// A made-up finished run in `dir` (nothing here reads the files); its bytes.
fn finished_run(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    RUN_FILES
        .iter()
        .map(|f| {
            let bytes = format!("the old run's {f}\n").into_bytes();
            std::fs::write(dir.join(f), &bytes).unwrap();
            bytes
        })
        .collect()
}

/// The run files in `dir` (`None` for a missing one).
fn run_files(dir: &Path) -> Vec<Option<Vec<u8>>> {
    RUN_FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).ok())
        .collect()
}

/// The backup folders in `dir`.
fn backups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(BACKUP_PREFIX)
        })
        .collect()
}

fn quiet(preset: Preset, epochs: usize) -> TrainConfig {
    TrainConfig::for_preset(preset)
        .with_epochs(epochs)
        .with_batch_size(50)
        .with_progress(Progress::Hidden)
}

#[test]
fn a_run_folder_checks_first_and_moves_the_old_run_aside_only_when_asked() {
    let dir = temp_dir("runs-policies");
    let old = finished_run(&dir);
    let kept = old.iter().cloned().map(Some).collect::<Vec<_>>();

    let err = RunFolder::open(&dir, RunPolicy::Refuse).unwrap_err();
    assert!(err.to_string().contains("already holds a run"), "{err}");
    let empty = temp_dir("runs-policies-empty");
    let err = RunFolder::open(&empty, RunPolicy::Resume).unwrap_err();
    assert!(
        err.to_string().contains("no checkpoint.safetensors"),
        "{err}"
    );
    assert!(RunFolder::open(&dir, RunPolicy::Resume).unwrap().resumes());

    // Opening to overwrite changes nothing.
    let mut folder = RunFolder::open(&dir, RunPolicy::Overwrite).unwrap();
    assert_eq!(run_files(&dir), kept);
    assert!(backups(&dir).is_empty());

    // Preparing moves the old run into one dated backup folder.
    folder.prepare().unwrap();
    assert_eq!(run_files(&dir), vec![None, None, None]);
    let backup = folder.backup().unwrap().to_path_buf();
    assert_eq!(backups(&dir), vec![backup.clone()]);
    assert_eq!(run_files(&backup), kept);
    // No checkpoint of the new run yet: the backup stays.
    std::fs::write(dir.join(HISTORY_FILE), "").unwrap();
    let err = folder.commit().unwrap_err();
    assert!(err.to_string().contains("the old run is kept"), "{err}");
    assert_eq!(run_files(&backup), kept);

    // Dropped before the new run's first checkpoint: the old run is back.
    drop(folder);
    assert_eq!(run_files(&dir), kept);
    assert!(backups(&dir).is_empty());

    // Committed after it: the backup is gone, the new checkpoint stays.
    let mut folder = RunFolder::open(&dir, RunPolicy::Overwrite).unwrap();
    folder.prepare().unwrap();
    std::fs::write(dir.join(CHECKPOINT_FILE), "new").unwrap();
    folder.commit().unwrap();
    drop(folder);
    assert!(backups(&dir).is_empty());
    assert_eq!(std::fs::read(dir.join(CHECKPOINT_FILE)).unwrap(), b"new");
    assert!(!dir.join(HISTORY_FILE).exists());
}

#[test]
fn a_trainer_keeps_the_old_run_until_its_first_checkpoint() {
    let digits = Mnist::bundled().unwrap();
    let (train, test) = (head(&digits.train, 200), head(&digits.test, 100));
    let dir = temp_dir("runs-trainer");
    let old = finished_run(&dir);
    let kept = old.into_iter().map(Some).collect::<Vec<_>>();

    // Data that cannot make a run: refused, and nothing moved.
    let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0).unwrap();
    let folder = RunFolder::open(&dir, RunPolicy::Overwrite).unwrap();
    let err = Trainer::new(quiet(Preset::DenseVae, 1))
        .unwrap()
        .run_folder(folder)
        .fit(&model, &head(&digits.train, 0), &test)
        .unwrap_err();
    assert!(matches!(err, Error::Data { .. }), "{err}");
    assert_eq!(run_files(&dir), kept);

    // A run that fails in its first epoch (a NaN weight): the old run is back.
    let var = model.params().get("decoder.out.bias").unwrap();
    let good = var.as_tensor().copy().unwrap();
    var.set(&Tensor::full(f32::NAN, var.dims(), &Device::Cpu).unwrap())
        .unwrap();
    let folder = RunFolder::open(&dir, RunPolicy::Overwrite).unwrap();
    let err = Trainer::new(quiet(Preset::DenseVae, 1))
        .unwrap()
        .run_folder(folder)
        .fit(&model, &train, &test)
        .unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert_eq!(run_files(&dir), kept);
    assert!(backups(&dir).is_empty());

    // A run that writes its first checkpoint replaces the old one for good.
    var.set(&good).unwrap();
    let folder = RunFolder::open(&dir, RunPolicy::Overwrite).unwrap();
    Trainer::new(quiet(Preset::DenseVae, 1))
        .unwrap()
        .run_folder(folder)
        .fit(&model, &train, &test)
        .unwrap();
    assert!(backups(&dir).is_empty());
    let history = std::fs::read_to_string(dir.join(HISTORY_FILE)).unwrap();
    assert_eq!(history.lines().count(), 1);
    assert!(history.contains("\"epoch\":1"), "{history}");
    Model::load(dir.join(CHECKPOINT_FILE), &Device::Cpu).unwrap();

    // Refuse: a trainer never gets a folder that holds a run.
    let err = RunFolder::open(&dir, RunPolicy::Refuse).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}

/// `d` without its first `skip` images.
fn skip(d: &Dataset, skip: usize) -> Dataset {
    let size = d.shape().numel();
    let n = d.len() - skip;
    Dataset::from_pixels(
        d.images()[skip * size..].to_vec(),
        n,
        d.shape(),
        d.labels().map(|l| l[skip..].to_vec()),
    )
    .unwrap()
}

#[test]
fn resume_refuses_other_data_unless_allowed() {
    let digits = Mnist::bundled().unwrap();
    let (train, test) = (head(&digits.train, 200), head(&digits.test, 100));
    let dir = temp_dir("runs-data");
    let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0).unwrap();
    Trainer::new(quiet(Preset::DenseVae, 1))
        .unwrap()
        .output_dir(&dir)
        .fit(&model, &train, &test)
        .unwrap();
    let before = std::fs::read(dir.join(CHECKPOINT_FILE)).unwrap();
    let resume = |train: &Dataset, allow: bool| {
        let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0).unwrap();
        let folder = RunFolder::open(&dir, RunPolicy::Resume).unwrap();
        Trainer::new(quiet(Preset::DenseVae, 2))
            .unwrap()
            .run_folder(folder)
            .allow_data_change(allow)
            .resume(&model, train, &test)
    };
    // More images, and as many images but other ones.
    let more = head(&digits.train, 300);
    let err = resume(&more, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("training set: 200 images, now 300"),
        "{err}"
    );
    let other = head(&skip(&digits.train, 1000), 200);
    let err = resume(&other, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("training set: its first images differ"),
        "{err}"
    );
    assert!(err.to_string().contains("--allow-data-change"), "{err}");
    assert_eq!(std::fs::read(dir.join(CHECKPOINT_FILE)).unwrap(), before);
    // The same data resumes; other data does when allowed.
    let summary = resume(&more, true).unwrap();
    assert_eq!(summary.last_epoch, 2);
}

#[test]
fn a_training_step_larger_than_the_limit_is_refused_before_anything_is_written() {
    // VanillaVAE at 1024² (205 M parameters, under the parameter cap)
    // aborted at 8.1 GB: its step is estimated at tens of GiB.
    let big = vanilla_vae(ImageShape::new(3, 1024, 1024), 128, Likelihood::Bernoulli).unwrap();
    let small = vanilla_vae(ImageShape::new(3, 32, 32), 128, Likelihood::Bernoulli).unwrap();
    let big_bytes = training_step_bytes(&big, 64).unwrap();
    let small_bytes = training_step_bytes(&small, 64).unwrap();
    assert!(big_bytes > 16 << 30, "{big_bytes}");
    assert!(small_bytes < 256 << 20, "{small_bytes}");
    // 1024² has 1024 times the pixels of 32²: the estimate scales with them.
    assert!(big_bytes / small_bytes > 900, "{big_bytes} / {small_bytes}");
    assert_eq!(training_step_bytes(&small, 128).unwrap(), 2 * small_bytes);
    let err = check_training_step(&big, 64, 8 << 30).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("batch_size") && text.contains("GiB"),
        "{text}"
    );
    check_training_step(&small, 64, 8 << 30).unwrap();

    // The trainer checks the same before its first write.
    let digits = Mnist::bundled().unwrap();
    let dir = temp_dir("runs-step-limit");
    let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0).unwrap();
    let need = model.config().clone();
    let bytes = training_step_bytes(&need, 50).unwrap();
    let err = Trainer::new(quiet(Preset::DenseVae, 1))
        .unwrap()
        .output_dir(&dir)
        .step_memory_limit(bytes - 1)
        .fit(&model, &head(&digits.train, 100), &head(&digits.test, 50))
        .unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
    assert!(!dir.join(HISTORY_FILE).exists());
    Trainer::new(quiet(Preset::DenseVae, 1))
        .unwrap()
        .output_dir(&dir)
        .step_memory_limit(bytes)
        .fit(&model, &head(&digits.train, 100), &head(&digits.test, 50))
        .unwrap();
}

#[test]
fn a_batch_of_one_image_under_batch_norm_names_the_training_set() {
    // VanillaVAE at 32×32 ends its encoder in 1×1 batch-normed maps: a batch
    // of one image has one value per channel there.
    let config = vanilla_vae(ImageShape::new(3, 32, 32), 8, Likelihood::Bernoulli).unwrap();
    let model = Model::new(&config, &Device::Cpu, 0).unwrap();
    let images = |n: usize| {
        let pixels = (0..n * 3 * 32 * 32).map(|i| (i % 7) as f32 / 7.0).collect();
        Dataset::from_pixels(pixels, n, ImageShape::new(3, 32, 32), None).unwrap()
    };
    // 51 images by 50: the last batch holds one image.
    let err = Trainer::new(quiet(Preset::DenseVae, 1))
        .unwrap()
        .fit(&model, &images(51), &images(4))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Data { .. }), "{text}");
    assert!(
        text.contains("training set")
            && text.contains("51 images in batches of 50 leave a batch of one image"),
        "{text}"
    );
    assert!(text.contains("last_batch = drop"), "{text}");
}
