//! Faults from outside: a process killed while it saves checkpoints, and a
//! training run killed mid-epoch. The test binary re-runs itself as the child
//! (the `#[ignore]`d entry points below, selected with `--ignored --exact`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use vaekit::data::{Dataset, Mnist};
use vaekit::models::{Model, Preset};
use vaekit::train::{Progress, TrainConfig, Trainer, HISTORY_FILE};

use common::{head, temp_dir};

/// Where a child works, passed through the environment.
const DIR_VAR: &str = "VAEKIT_FAULT_DIR";

fn spawn_child(test: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            test,
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(DIR_VAR, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn weights(model: &Model) -> Vec<(String, Vec<f32>)> {
    model
        .params()
        .snapshot()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

/// Child: saves the model over and over, changing a weight each time.
#[test]
#[ignore = "child process of kill_during_checkpoint_saves_leaves_a_loadable_file"]
fn child_saves_checkpoints_forever() {
    let dir = PathBuf::from(std::env::var(DIR_VAR).expect("run by the parent test"));
    let model = Model::from_preset(Preset::ConvVaeBn, &Device::Cpu, 1).unwrap();
    let var = model.params().get("decoder.fc.bias").unwrap();
    for i in 0u32.. {
        var.set(&Tensor::full(i as f32, var.dims(), &Device::Cpu).unwrap())
            .unwrap();
        model.save(dir.join("model.safetensors")).unwrap();
    }
}

#[test]
fn kill_during_checkpoint_saves_leaves_a_loadable_file() {
    let dir = temp_dir("faults-saves");
    let path = dir.join("model.safetensors");
    Model::from_preset(Preset::ConvVaeBn, &Device::Cpu, 1)
        .unwrap()
        .save(&path)
        .unwrap();
    // conv-vae-bn's checkpoint is ~2.7 MB, so a kill often lands mid-write.
    const KILLS: u64 = 40;
    let mut last_values = std::collections::BTreeSet::new();
    for k in 0..KILLS {
        let mut child = spawn_child("child_saves_checkpoints_forever", &dir);
        std::thread::sleep(Duration::from_millis(150 + 37 * (k % 9)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let model = Model::load(&path, &Device::Cpu)
            .unwrap_or_else(|e| panic!("kill {k}: the checkpoint does not load: {e}"));
        let bias = model.params().get("decoder.fc.bias").unwrap();
        let v = bias
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // A whole save: every element of the bias has the same value.
        assert!(v.iter().all(|x| *x == v[0]), "kill {k}: a torn write");
        last_values.insert(v[0] as u32);
    }
    // The children really were saving (many distinct saves were caught).
    assert!(
        last_values.len() > 1,
        "children never completed a save: {last_values:?}"
    );
    // Each save first deletes the temporary files of killed savers, so at most
    // the last killed child's is left, and the next save removes it.
    let left = temporaries(&dir, "model.safetensors");
    assert!(
        left.len() <= 1,
        "temporary files left by the kills: {left:?}"
    );
    Model::load(&path, &Device::Cpu)
        .unwrap()
        .save(&path)
        .unwrap();
    let left = temporaries(&dir, "model.safetensors");
    assert!(left.is_empty(), "left after a clean save: {left:?}");
    println!(
        "{KILLS} kills during saves survived; {} distinct checkpoints seen",
        last_values.len()
    );
}

/// The temporary files of saves of `target` in `dir`.
fn temporaries(dir: &Path, target: &str) -> Vec<String> {
    let prefix = format!(".{target}.tmp-");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

#[test]
fn a_save_removes_temporary_files_of_dead_processes_only() {
    let dir = temp_dir("faults-stale");
    // A pid that no longer runs: a child that has exited and been reaped.
    let mut done = Command::new("true").spawn().unwrap();
    let dead = done.id();
    done.wait().unwrap();
    assert!(
        !Path::new(&format!("/proc/{dead}")).exists(),
        "pid {dead} still runs"
    );
    // A pid that runs: another process, alive for the whole test.
    let mut alive = Command::new("sleep").arg("60").spawn().unwrap();
    let live = alive.id();
    let own = std::process::id();
    let names = [
        format!(".model.safetensors.tmp-{dead}-0"),
        format!(".model.safetensors.tmp-{dead}-17"),
        format!(".model.safetensors.tmp-{live}-3"),
        format!(".model.safetensors.tmp-{own}-999999"),
        format!(".other.safetensors.tmp-{dead}-0"),
        format!(".model.safetensors.tmp-{dead}-x"),
        format!("model.safetensors.tmp-{dead}-1"),
    ];
    for n in &names {
        std::fs::write(dir.join(n), b"partial").unwrap();
    }
    let tensors = [(
        "w".to_string(),
        Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
    )]
    .into_iter()
    .collect();
    vaekit::params::write_checkpoint(dir.join("model.safetensors"), &tensors, &Default::default())
        .unwrap();
    alive.kill().unwrap();
    alive.wait().unwrap();
    let mut kept: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "model.safetensors")
        .collect();
    kept.sort();
    let mut expected: Vec<String> = names[2..].to_vec();
    expected.sort();
    assert_eq!(
        kept, expected,
        "only the dead process's temporaries of model.safetensors go"
    );
}

fn fault_config() -> TrainConfig {
    TrainConfig::for_preset(Preset::DigitCvae)
        .with_epochs(4)
        .with_batch_size(10)
        .with_seed(3)
        .with_progress(Progress::Hidden)
}

fn fault_data() -> (Dataset, Dataset) {
    let digits = Mnist::bundled().unwrap();
    (head(&digits.train, 3000), head(&digits.test, 200))
}

/// Child: the training run that gets killed.
#[test]
#[ignore = "child process of training_killed_mid_epoch_resumes_to_the_same_weights"]
fn child_trains() {
    let dir = PathBuf::from(std::env::var(DIR_VAR).expect("run by the parent test"));
    let (train, test) = fault_data();
    let model = Model::from_preset(Preset::DigitCvae, &Device::Cpu, 3).unwrap();
    Trainer::new(fault_config())
        .unwrap()
        .output_dir(dir)
        .fit(&model, &train, &test)
        .unwrap();
}

fn epochs_done(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join(HISTORY_FILE)).map_or(0, |t| t.lines().count())
}

#[test]
fn training_killed_mid_epoch_resumes_to_the_same_weights() {
    let (train, test) = fault_data();
    let straight = Model::from_preset(Preset::DigitCvae, &Device::Cpu, 3).unwrap();
    Trainer::new(fault_config())
        .unwrap()
        .fit(&straight, &train, &test)
        .unwrap();

    let dir = temp_dir("faults-train");
    let mut child = spawn_child("child_trains", &dir);
    let started = Instant::now();
    // Kill shortly after epoch 1's checkpoint is on disk, i.e. inside epoch 2.
    while epochs_done(&dir) < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the child never finished an epoch"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(50));
    child.kill().unwrap();
    child.wait().unwrap();
    let done = epochs_done(&dir);
    assert!(
        done < fault_config().epochs,
        "the child finished before it was killed"
    );

    let resumed = Model::from_preset(Preset::DigitCvae, &Device::Cpu, 123).unwrap();
    let summary = Trainer::new(fault_config())
        .unwrap()
        .output_dir(&dir)
        .resume(&resumed, &train, &test)
        .unwrap();
    assert_eq!(summary.last_epoch, fault_config().epochs);
    assert_eq!(
        weights(&resumed),
        weights(&straight),
        "resumed after a kill in epoch {}",
        done + 1
    );
    println!("killed in epoch {}, resumed, weights identical", done + 1);
}
