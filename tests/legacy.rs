//! Runs written before vaekit had one way to build a model still load and
//! resume, bit for bit.
//!
//! `tests/fixtures/legacy/<run>/` holds, for six small models of every family
//! and prior (a dense VAE with a Gaussian-mixture prior and one with a
//! VampPrior, a conv VAE with batch norm, free bits and a β schedule, the
//! digit-conditioned VAE with predicted and with given labels, in the
//! `"kind": "digit_cvae"` JSON of that time, and the conv autoencoder), what
//! `train_preset --config run.json` wrote at commit 5880b17: the checkpoint and
//! history after epoch 1 of 2, and the history of the same run trained to
//! epoch 2 without a stop (`expected_history.jsonl`). Resumed today, epoch 2
//! must come out as it did then.

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use vaekit::data::Mnist;
use vaekit::models::Model;
use vaekit::train::{
    read_history, CheckedRunConfig, RunConfig, Trainer, CHECKPOINT_FILE, HISTORY_FILE,
};

const RUNS: [&str; 6] = [
    "vae_mixture",
    "vae_vamp",
    "vae_bn",
    "cvae_predicted",
    "cvae_given",
    "ae",
];

fn fixture(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(run)
}

fn run_config(run: &str) -> CheckedRunConfig {
    let json = std::fs::read_to_string(fixture(run).join("run.json")).unwrap();
    RunConfig::from_json(&json).unwrap_or_else(|e| panic!("{run}: the run file reads: {e}"))
}

#[test]
#[cfg_attr(
    not(vaekit_fixtures),
    ignore = "needs the runs of tests/fixtures/legacy, which the published crate leaves out: run it from the repository"
)]
fn checkpoints_written_before_the_redesign_load_with_their_configs() {
    for run in RUNS {
        let model = Model::load(fixture(run).join(CHECKPOINT_FILE), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{run}: {e}"));
        // The old `digit_cvae` JSON reads as a VAE with a conditioning, in
        // the file and in the run file alike.
        assert_eq!(model.config(), run_config(run).model.get(), "{run}");
        let conditioned = run.starts_with("cvae");
        assert_eq!(model.classes().is_some(), conditioned, "{run}");
    }
}

#[test]
#[cfg_attr(
    not(vaekit_fixtures),
    ignore = "needs the runs of tests/fixtures/legacy, which the published crate leaves out: run it from the repository"
)]
fn runs_written_before_the_redesign_resume_bit_for_bit() {
    let digits = Mnist::bundled().unwrap();
    for run in RUNS {
        let dir = common::temp_dir(&format!("legacy-{run}"));
        for file in [CHECKPOINT_FILE, HISTORY_FILE] {
            std::fs::copy(fixture(run).join(file), dir.join(file)).unwrap();
        }
        let config = run_config(run);
        let model = Model::new(&config.model, &Device::Cpu, config.train.seed).unwrap();
        let mut trainer = Trainer::new(config.train.clone()).unwrap().output_dir(&dir);
        trainer
            .resume(&model, &digits.train, &digits.test)
            .unwrap_or_else(|e| panic!("{run}: {e}"));
        let got = read_history(dir.join(HISTORY_FILE)).unwrap();
        let want = read_history(fixture(run).join("expected_history.jsonl")).unwrap();
        assert_eq!(got.len(), 2, "{run}");
        for (epoch, (g, w)) in got.iter().zip(&want).enumerate() {
            let mut keys: Vec<&String> = w.keys().collect();
            keys.sort();
            for key in keys {
                if key == "seconds" || key == "images_per_s" {
                    continue;
                }
                assert_eq!(
                    g.get(key),
                    w.get(key),
                    "{run}: epoch {}: `{key}`",
                    epoch + 1
                );
            }
            assert_eq!(g.len(), w.len(), "{run}: epoch {}: the fields", epoch + 1);
        }
    }
}
