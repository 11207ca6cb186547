//! The examples' command line: bad flags end with one readable error line
//! naming the flag and exit status 2 — never a panic, never a backtrace — and
//! an `--out` that holds a run is never overwritten unless asked. (`cargo test`
//! builds the examples next to the test binaries; these tests run them.)

#[path = "../examples/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use vaekit::data::Mnist;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/cli-… → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let exe = profile_dir.join("examples").join(name);
    assert!(
        exe.exists(),
        "{} is not built; run the tests with `cargo test`",
        exe.display()
    );
    exe
}

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vaekit-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs example `name` with `args` and `RUST_BACKTRACE=1`.
fn run(name: &str, args: &[&OsStr]) -> Output {
    Command::new(example(name))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

/// Asserts that `out` is exit status 2 with exactly one line on stderr, `error: …`
/// containing every one of `expect`.
#[track_caller]
fn assert_one_line_error(what: &str, out: &Output, expect: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: status {:?}, stderr {stderr}",
        out.status
    );
    assert!(stderr.starts_with("error: "), "{what}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{what}: not one line: {stderr}"
    );
    for e in expect {
        assert!(stderr.contains(e), "{what}: expected `{e}` in {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Runs `name` with `args` (plus `--out` into a scratch folder for the tutorial
/// examples, unless `args` names one) and expects a one-line error.
#[track_caller]
fn run_fails(name: &str, args: &[&str], expect: &str) {
    let mut all = args.to_vec();
    let out_dir = scratch("fails");
    let out_dir = out_dir.to_str().unwrap();
    if !["bench", "evaluate"].contains(&name) && !args.iter().any(|a| a.starts_with("--out")) {
        // Keep the tutorial examples' outputs out of the source tree.
        all.extend(["--out", out_dir]);
    }
    assert_one_line_error(
        &format!("{name} {args:?}"),
        &run(name, &os(&all)),
        &[expect],
    );
}

#[test]
fn bad_flags_name_the_flag() {
    run_fails("train_preset", &["--epochs", "0"], "'--epochs <N>'");
    run_fails(
        "train_preset",
        &["--epochs", "-3"],
        "`-3` is not a positive",
    );
    run_fails("train_preset", &["--epochs=0"], "`0` is not a positive");
    run_fails(
        "train_preset",
        &["--epochs"],
        "a value is required for '--epochs",
    );
    run_fails("train_preset", &["--device", "tpu"], "unknown device `tpu`");
    run_fails("train_preset", &["--device=tpu"], "unknown device `tpu`");
    run_fails(
        "train_preset",
        &["--preset", "nope"],
        "unknown preset `nope`",
    );
    run_fails("train_preset", &["--seed", "x"], "'--seed <N>'");
    run_fails("train_preset", &["--batch-size", "0"], "'--batch-size <N>'");
    run_fails(
        "train_preset",
        &["--frobnicate", "1"],
        "unexpected argument '--frobnicate'",
    );
    run_fails(
        "train_preset",
        &["--data", "/nonexistent/vaekit"],
        "/nonexistent/vaekit",
    );
    for example in [
        "cvae_tf",
        "conv_vae_bn",
        "dense_vae_2d",
        "digit_cvae",
        "conv_autoencoder",
    ] {
        run_fails(example, &["--epochs=zero"], "'--epochs <N>'");
        run_fails(
            example,
            &["--preset", "x"],
            "unexpected argument '--preset'",
        );
    }
    run_fails("bench", &["--workload", "nope"], "unknown workload `nope`");
    run_fails("bench", &["--steps", "0"], "'--steps <N>'");
    run_fails("bench", &["--warmup=-1"], "'--warmup <N>'");
}

#[test]
fn an_empty_or_non_utf8_argument_is_an_error() {
    run_fails(
        "train_preset",
        &["--out", ""],
        "invalid value '' for '--out <DIR>'",
    );
    run_fails("train_preset", &["--out="], "an empty path");
    run_fails(
        "train_preset",
        &["--data", ""],
        "invalid value '' for '--data <DIR>'",
    );
    let bad = OsStr::from_bytes(b"caf\xe9");
    for (name, args) in [
        ("train_preset", vec![OsStr::new("--out"), bad]),
        ("train_preset", vec![OsStr::new("--preset"), bad]),
        ("dense_vae_2d", vec![bad]),
        ("bench", vec![OsStr::new("--workload"), bad]),
    ] {
        let out = run(name, &args);
        assert_one_line_error(name, &out, &["is not valid UTF-8", "caf\u{fffd}"]);
    }
}

#[test]
fn help_prints_every_flag_and_exits_0() {
    let out = run("train_preset", &os(&["--help"]));
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--epochs",
        "--data",
        "--out",
        "--device",
        "--seed",
        "--resume",
        "--overwrite",
        "--preset",
        "--batch-size",
        "--list",
    ] {
        assert!(help.contains(flag), "{flag} missing from {help}");
    }
    assert!(help.contains("[default: out/train_preset]"), "{help}");
    let out = run("train_preset", &os(&["--list"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("conv-vae-bn"));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_says_how_to_get_it() {
    run_fails("train_preset", &["--device", "cuda"], "--features cuda");
    let err = vaekit::device_from_name("cuda").unwrap_err();
    assert!(matches!(err, vaekit::Error::Device(_)), "{err}");
}

#[test]
fn device_names() {
    assert!(vaekit::device_from_name("cpu").unwrap().is_cpu());
    for bad in ["", "gpu", "cuda:", "cuda:x", "CPU"] {
        match vaekit::device_from_name(bad) {
            Err(vaekit::Error::Config { field, .. }) => assert_eq!(field, "device"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn errors_with_a_backtrace_are_printed_on_one_line() {
    // What candle returns when RUST_BACKTRACE is set: the message, then the frames.
    let inner = candle_core::Error::Msg("narrow invalid args".into());
    let with_bt = candle_core::Error::WithBacktrace {
        inner: Box::new(inner),
        backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
    };
    let text = vaekit::Error::from(with_bt).to_string();
    assert!(text.lines().count() > 3, "no backtrace in {text}");
    assert_eq!(common::one_line(&text), "narrow invalid args");
    // candle's context lines are kept, joined.
    let ctx = candle_core::Error::Msg("shape mismatch".into()).context("in the decoder");
    assert_eq!(
        common::one_line(&ctx.to_string()),
        "in the decoder: shape mismatch"
    );
}

// ---------------------------------------------------------------------------
// Runs in --out: refused, resumed or overwritten, never silently replaced.

/// Writes `n` images and labels from `images`/`labels` (values in [0, 1]) as raw IDX.
fn write_idx(
    dir: &Path,
    stem_images: &str,
    stem_labels: &str,
    set: &vaekit::data::Dataset,
    n: usize,
) {
    let mut images = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        images.extend(d.to_be_bytes());
    }
    images.extend(
        set.images()[..n * 784]
            .iter()
            .map(|p| (p * 255.0).round() as u8),
    );
    std::fs::write(dir.join(stem_images), images).unwrap();
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((n as u32).to_be_bytes());
    labels.extend(&set.labels().unwrap()[..n]);
    std::fs::write(dir.join(stem_labels), labels).unwrap();
}

/// A folder of 200 training and 100 test digits in the MNIST layout, one per
/// test (`name`), since tests run in parallel and `scratch` empties a folder.
fn small_digits(name: &str) -> PathBuf {
    let dir = scratch(&format!("digits-{name}"));
    let mnist = Mnist::bundled().unwrap();
    write_idx(
        &dir,
        vaekit::data::TRAIN_IMAGES,
        vaekit::data::TRAIN_LABELS,
        &mnist.train,
        200,
    );
    write_idx(
        &dir,
        vaekit::data::TEST_IMAGES,
        vaekit::data::TEST_LABELS,
        &mnist.test,
        100,
    );
    dir
}

/// Trains dense-vae on the small digits into `out`; returns the process output.
fn train(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--preset",
        "dense-vae",
        "--batch-size=50",
        "--seed",
        "7",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let epochs = format!("--epochs={epochs}");
    args.push(&epochs);
    args.extend(extra);
    run("train_preset", &os(&args))
}

#[track_caller]
fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn history_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .count()
}

/// Every tensor of a checkpoint file, as raw bits.
fn tensor_bits(path: &Path) -> Vec<(String, Vec<u32>)> {
    let ckpt = vaekit::params::read_checkpoint(path, &Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<u32>)> = ckpt
        .tensors
        .iter()
        .map(|(k, t)| {
            let v = t
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            (k.clone(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect();
    out.sort();
    out
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    [
        "history.jsonl",
        "checkpoint.safetensors",
        "best.safetensors",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
    .collect()
}

#[test]
fn a_finished_run_is_refused_resumed_bit_identically_or_overwritten() {
    let data = small_digits("a");
    // Two epochs straight.
    let straight = scratch("straight");
    assert_ok("straight", &train(&data, &straight, "2", &[]));
    assert_eq!(history_lines(&straight), 2);
    let before = files(&straight);

    // Running again into it is refused, and nothing is touched.
    let out = train(&data, &straight, "2", &[]);
    assert_one_line_error(
        "rerun",
        &out,
        &[
            straight.to_str().unwrap(),
            "already holds a run",
            "--resume",
            "--overwrite",
        ],
    );
    assert!(
        files(&straight) == before,
        "a refused run changed the folder"
    );
    let out = train(&data, &straight, "2", &["--resume", "--overwrite"]);
    assert_one_line_error(
        "both",
        &out,
        &["'--resume' cannot be used with '--overwrite'"],
    );
    assert!(files(&straight) == before);

    // One epoch, then resumed to two: the same weights, optimizer state and
    // best model, bit for bit.
    let resumed = scratch("resumed");
    assert_ok("first epoch", &train(&data, &resumed, "1", &[]));
    assert_eq!(history_lines(&resumed), 1);
    let first = std::fs::read_to_string(resumed.join("history.jsonl")).unwrap();
    let out = train(&data, &resumed, "2", &["--resume"]);
    assert_ok("resume", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("resuming the run in"));
    // Epoch 1 was kept (its line, timings included), not trained again.
    let history = std::fs::read_to_string(resumed.join("history.jsonl")).unwrap();
    assert!(
        history.starts_with(&first),
        "epoch 1 was redone:\n{first}\n{history}"
    );
    assert_eq!(history_lines(&resumed), 2);
    for file in ["checkpoint.safetensors", "best.safetensors"] {
        let (a, b) = (
            tensor_bits(&straight.join(file)),
            tensor_bits(&resumed.join(file)),
        );
        assert!(a.len() > 4, "{file}: {} tensors", a.len());
        assert!(
            a == b,
            "{file}: the resumed run differs from the straight one"
        );
    }

    // A run killed before its first epoch (an empty history) holds nothing
    // to lose: a new run may start there.
    let killed = scratch("killed");
    std::fs::write(killed.join("history.jsonl"), "").unwrap();
    assert_ok("after a kill in epoch 1", &train(&data, &killed, "1", &[]));

    // --overwrite starts anew: one epoch in the history, not three.
    assert_ok("overwrite", &train(&data, &straight, "1", &["--overwrite"]));
    assert_eq!(history_lines(&straight), 1);
}

#[test]
fn resume_needs_a_checkpoint() {
    let empty = scratch("resume-empty");
    let out = run(
        "train_preset",
        &os(&["--resume", "--out", empty.to_str().unwrap()]),
    );
    assert_one_line_error(
        "empty",
        &out,
        &["holds no checkpoint.safetensors to resume from"],
    );
    // A history without a checkpoint cannot be resumed either.
    std::fs::write(empty.join("history.jsonl"), "{\"epoch\":1}\n").unwrap();
    let out = run(
        "train_preset",
        &os(&["--resume", "--out", empty.to_str().unwrap()]),
    );
    assert_one_line_error("history only", &out, &["holds no checkpoint.safetensors"]);
    // The conv autoencoder's two runs live in ae10/ and ae2/: both are checked.
    let two = scratch("two-runs");
    std::fs::create_dir_all(two.join("ae2")).unwrap();
    std::fs::write(two.join("ae2/history.jsonl"), "{\"epoch\":1}\n").unwrap();
    let out = run("conv_autoencoder", &os(&["--out", two.to_str().unwrap()]));
    let ae2 = two.join("ae2");
    assert_one_line_error(
        "conv_autoencoder",
        &out,
        &[ae2.to_str().unwrap(), "already holds a run (history.jsonl)"],
    );
    let out = run(
        "conv_autoencoder",
        &os(&["--resume", "--out", two.to_str().unwrap()]),
    );
    assert_one_line_error(
        "conv_autoencoder --resume",
        &out,
        &["holds no checkpoint.safetensors"],
    );
}

#[test]
fn custom_model_trains_saves_pictures_and_reloads() {
    let data = small_digits("b");
    let out = scratch("custom-model");
    let result = run(
        "custom_model",
        &os(&[
            "--epochs=1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
    );
    assert_ok("custom_model", &result);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.contains("bit for bit"), "{stdout}");
    assert_eq!(history_lines(&out), 1);
    for file in [
        "checkpoint.safetensors",
        "best.safetensors",
        "model.safetensors",
        "samples.png",
        "latent_scatter.png",
    ] {
        let len = std::fs::metadata(out.join(file)).map_or(0, |m| m.len());
        assert!(len > 0, "{file} missing or empty");
    }
    // The same folder again needs --resume or --overwrite.
    let again = run(
        "custom_model",
        &os(&[
            "--epochs=1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
    );
    assert_one_line_error("custom_model again", &again, &["--resume", "--overwrite"]);
}

#[test]
fn train_preset_trains_a_run_file_and_names_a_bad_field() {
    let data = small_digits("c");
    let dir = scratch("run-file");
    let printed = run(
        "train_preset",
        &os(&["--preset", "dense-vae", "--print-config"]),
    );
    assert_ok("--print-config", &printed);
    let mut run_file: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    // A new architecture without writing Rust: a mixture prior, a wider encoder.
    run_file["model"]["prior"] = serde_json::json!({
        "type": "gaussian_mixture", "components": 4, "spread": 1.0, "sigma": 0.5,
        "learn_means": true, "learn_variances": false
    });
    run_file["model"]["encoder"]["hidden"] = serde_json::json!([300]);
    run_file["train"]["batch_size"] = serde_json::json!(50);
    let path = dir.join("run.json");
    std::fs::write(&path, run_file.to_string()).unwrap();
    let out = dir.join("out");
    let args = [
        "--config",
        path.to_str().unwrap(),
        "--epochs=1",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    assert_ok("--config", &run("train_preset", &os(&args)));
    assert_eq!(history_lines(&out), 1);
    let model = vaekit::models::Model::load(out.join("best.safetensors"), &Device::Cpu).unwrap();
    let names: Vec<String> = model
        .params()
        .named_vars()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"prior.means".to_string()), "{names:?}");
    assert!(
        names.contains(&"prior.fixed_logvars".to_string()),
        "{names:?}"
    );
    assert_eq!(
        model
            .params()
            .get("encoder.hidden.0.weight")
            .unwrap()
            .dims(),
        [300, 784]
    );

    run_file["model"]["encoder"]["hidden"] = serde_json::json!([300, "wide"]);
    std::fs::write(&path, run_file.to_string()).unwrap();
    let bad_out = dir.join("bad");
    let args = [
        "--config",
        path.to_str().unwrap(),
        "--out",
        bad_out.to_str().unwrap(),
    ];
    let result = run("train_preset", &os(&args));
    assert_one_line_error("bad run file", &result, &["model.encoder.hidden[1]"]);
    assert!(!bad_out.exists(), "nothing is written for a bad run file");
}

#[test]
fn evaluate_prints_one_json_object_for_a_conv_vae_bn_checkpoint() {
    use vaekit::models::{Model, Preset};
    let dir = scratch("evaluate");
    let ckpt = dir.join("conv_vae_bn.safetensors");
    Model::from_preset(Preset::ConvVaeBn, &Device::Cpu, 0)
        .unwrap()
        .save(&ckpt)
        .unwrap();
    let pictures = dir.join("pictures");
    let args = [
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--importance-samples",
        "20",
        "--limit",
        "12",
        "--pairs-per-pass",
        "50",
        "--pictures",
        pictures.to_str().unwrap(),
    ];
    let out = run("evaluate", &os(&args));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim_end().lines().count(),
        1,
        "not one line: {stdout}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["importance_samples"], 20);
    assert_eq!(v["test_images"], 12);
    assert_eq!(v["latent_dim"], 32);
    let num = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    let (nll, elbo) = (num("nll"), num("negative_elbo"));
    // Untrained: both near 784 · ln 2 ≈ 543 nats; the estimate below −ELBO.
    assert!(nll > 300.0 && nll <= elbo, "nll {nll}, −ELBO {elbo}");
    assert!((num("bits_per_dim") - nll / (784.0 * std::f64::consts::LN_2)).abs() < 1e-9);
    assert!(num("seconds") >= 0.0);
    let au = v["active_units"].as_u64().unwrap();
    assert!(au <= 32);
    assert_eq!(v["kl_per_dim"].as_array().unwrap().len(), 32);
    assert!(pictures.join("active_units.png").is_file());
    assert!(pictures.join("traversal.png").is_file());
    // The same seed gives the same numbers.
    let again = run("evaluate", &os(&args[..8]));
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(w["nll"], v["nll"]);

    // An autoencoder has no likelihood: one line naming the file.
    let ae = dir.join("ae.safetensors");
    Model::from_preset(Preset::ConvAe, &Device::Cpu, 0)
        .unwrap()
        .save(&ae)
        .unwrap();
    let out = run(
        "evaluate",
        &os(&[
            "--checkpoint",
            ae.to_str().unwrap(),
            "--importance-samples",
            "2",
        ]),
    );
    assert_one_line_error("autoencoder", &out, &["holds no VAE"]);
    run_fails(
        "evaluate",
        &[
            "--checkpoint",
            ae.to_str().unwrap(),
            "--importance-samples",
            "0",
        ],
        "--importance-samples",
    );
}

/// A folder of 24 coloured discs and squares, 40×40 PNG, in two sub-folders.
#[cfg(feature = "image-folder")]
fn drawn_folder(name: &str) -> PathBuf {
    let dir = scratch(name);
    for i in 0..24u32 {
        let class = if i % 2 == 0 { "discs" } else { "squares" };
        let fg = [(i * 10) as u8, 200 - (i * 5) as u8, 60];
        let img = image::RgbImage::from_fn(40, 40, |x, y| {
            let (dx, dy) = (x as i32 - 20, y as i32 - 20);
            let inside = if i % 2 == 0 {
                dx * dx + dy * dy <= 144
            } else {
                dx.abs() <= 10 && dy.abs() <= 10
            };
            image::Rgb(if inside { fg } else { [20, 20, 80] })
        });
        std::fs::create_dir_all(dir.join(class)).unwrap();
        img.save(dir.join(class).join(format!("{i:02}.png")))
            .unwrap();
    }
    dir
}

#[cfg(all(feature = "pictures", feature = "image-folder"))]
#[test]
fn image_folder_trains_on_a_folder_and_writes_colour_pictures() {
    let images = drawn_folder("image-folder");
    let out = scratch("image-folder-out");
    let out_str = out.to_str().unwrap();
    let result = run(
        "image_folder",
        &os(&[
            "--images",
            images.to_str().unwrap(),
            "--size",
            "32",
            "--epochs",
            "2",
            "--latent",
            "2",
            "--labels",
            "--batch-size",
            "8",
            "--flip",
            "--out",
            out_str,
        ]),
    );
    assert_ok("image_folder", &result);
    assert_eq!(history_lines(&out), 2);
    for file in [
        "reconstructions.png",
        "samples.png",
        "samples.gif",
        "loss_curves.png",
        "manifold.png",
        "latent_scatter.png",
        "explorer.html",
        "checkpoint.safetensors",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    for picture in ["reconstructions.png", "samples.png", "manifold.png"] {
        let img = image::open(out.join(picture)).unwrap();
        assert_eq!(
            img.color(),
            image::ColorType::Rgb8,
            "{picture} is in colour"
        );
    }
    // Grey works too; bad settings are one-line errors.
    let grey = scratch("image-folder-grey");
    let result = run(
        "image_folder",
        &os(&[
            "--images",
            images.to_str().unwrap(),
            "--size",
            "32",
            "--channels",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            grey.to_str().unwrap(),
        ]),
    );
    assert_ok("image_folder --channels 1", &result);
    let img = image::open(grey.join("reconstructions.png")).unwrap();
    assert_eq!(img.color(), image::ColorType::L8);
    let empty = scratch("image-folder-empty");
    for (args, expect) in [
        (
            vec!["--images", empty.to_str().unwrap()],
            "holds no PNG or JPEG image",
        ),
        (
            vec!["--images", images.to_str().unwrap(), "--size", "48"],
            "multiples of 32",
        ),
        (
            vec!["--images", images.to_str().unwrap(), "--channels", "2"],
            "--channels",
        ),
    ] {
        run_fails("image_folder", &args, expect);
    }
}

#[cfg(all(feature = "pictures", feature = "image-folder"))]
#[test]
fn image_folder_warns_about_files_it_skips_and_trains_on_the_rest() {
    let images = drawn_folder("image-folder-broken");
    std::fs::write(images.join("discs").join("broken.png"), b"").unwrap();
    std::fs::write(
        images.join("squares").join("cut.png"),
        &b"\x89PNG\r\n\x1a\n"[..],
    )
    .unwrap();
    let out = scratch("image-folder-broken-out");
    let result = run(
        "image_folder",
        &os(&[
            "--images",
            images.to_str().unwrap(),
            "--size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            out.to_str().unwrap(),
        ]),
    );
    assert_ok("image_folder with broken files", &result);
    let stderr = String::from_utf8_lossy(&result.stderr);
    let warning: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warning.len(), 1, "one warning line: {stderr}");
    assert!(warning[0].contains("skipped 2 of "), "{}", warning[0]);
    assert!(
        warning[0].contains("broken.png") && warning[0].contains("cut.png"),
        "{}",
        warning[0]
    );
    assert_eq!(history_lines(&out), 1);
}

// ---------------------------------------------------------------------------
// Bad input, round three: a failed --overwrite loses nothing, flags override a
// run file only when given, requests too large are refused at once, and a
// closed pipe is no panic.

/// A made-up finished run in `dir` (an example that fails a check never reads
/// it); returns its files.
fn finished_run(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir).unwrap();
    for f in [
        "history.jsonl",
        "checkpoint.safetensors",
        "best.safetensors",
    ] {
        std::fs::write(dir.join(f), format!("the finished run's {f}\n")).unwrap();
    }
    files(dir)
}

/// Asserts that `dir` still holds the run `before`, byte for byte, and no
/// backup folder.
#[track_caller]
fn assert_run_kept(what: &str, dir: &Path, before: &[(String, Vec<u8>)]) {
    assert!(files(dir) == before, "{what}: the finished run changed");
    let backups: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with(vaekit::train::BACKUP_PREFIX)
                .then_some(name)
        })
        .collect();
    assert!(backups.is_empty(), "{what}: {backups:?} left");
}

/// The four MNIST files, each with a bad magic number.
fn bad_magic_folder() -> PathBuf {
    let dir = scratch("bad-magic");
    for name in [
        vaekit::data::TRAIN_IMAGES,
        vaekit::data::TRAIN_LABELS,
        vaekit::data::TEST_IMAGES,
        vaekit::data::TEST_LABELS,
    ] {
        std::fs::write(dir.join(name), [b'X'; 64]).unwrap();
    }
    dir
}

#[test]
fn an_overwrite_that_fails_a_check_keeps_the_finished_run() {
    let bad = bad_magic_folder();
    let missing = std::env::temp_dir().join("vaekit-cli-no-such-data-folder");
    let cases = [
        (bad.to_str().unwrap(), "bad magic number"),
        (missing.to_str().unwrap(), "vaekit-cli-no-such-data-folder"),
    ];
    for example in [
        "train_preset",
        "cvae_tf",
        "dense_vae_2d",
        "conv_vae_bn",
        "digit_cvae",
        "custom_model",
        "denoising",
        "conv_autoencoder",
    ] {
        for (i, (data, expect)) in cases.iter().enumerate() {
            let out = scratch(&format!("kept-{example}-{i}"));
            // The conv autoencoder's runs live in ae10/ and ae2/.
            let run_dir = if example == "conv_autoencoder" {
                out.join("ae2")
            } else {
                out.clone()
            };
            let before = finished_run(&run_dir);
            let args = [
                "--epochs=1",
                "--overwrite",
                "--data",
                data,
                "--out",
                out.to_str().unwrap(),
            ];
            let what = format!("{example} --data {data}");
            assert_one_line_error(&what, &run(example, &os(&args)), &[expect]);
            assert_run_kept(&what, &run_dir, &before);
        }
    }
    // A run file with a typo: refused before the folder is touched.
    let out = scratch("kept-run-file");
    let before = finished_run(&out);
    let printed = run(
        "train_preset",
        &os(&["--preset", "dense-vae", "--print-config"]),
    );
    let mut run_file: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    run_file["model"]["loss"]["free_bit"] = serde_json::json!(0.5);
    let path = out.join("run.json");
    std::fs::write(&path, run_file.to_string()).unwrap();
    let args = [
        "--config",
        path.to_str().unwrap(),
        "--overwrite",
        "--out",
        out.to_str().unwrap(),
    ];
    assert_one_line_error(
        "a typo in the run file",
        &run("train_preset", &os(&args)),
        &["model.loss", "unknown field `free_bit`"],
    );
    assert_run_kept("a typo in the run file", &out, &before);
}

#[cfg(feature = "image-folder")]
#[test]
fn image_folder_checks_the_model_before_it_touches_a_run_or_an_image() {
    let images = drawn_folder("kept-images");
    let images = images.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        // 10^7 latent units: too large before any image is decoded.
        (&["--latent", "10000000"], "batch_size"),
        // 205 M parameters, under the parameter cap, but tens of GiB a step.
        (&["--size", "1024"], "of activations"),
        // Every image would be enlarged to 16384² first: now refused at once.
        (&["--size", "16384"], "encoder.input"),
        (&["--images", "/nonexistent/vaekit-images"], "/nonexistent"),
    ];
    for (i, (extra, expect)) in cases.iter().enumerate() {
        let out = scratch(&format!("kept-image-folder-{i}"));
        let before = finished_run(&out);
        let mut args = vec!["--overwrite", "--out", out.to_str().unwrap()];
        if !extra.contains(&"--images") {
            args.extend(["--images", images]);
        }
        args.extend(extra.iter());
        let what = format!("image_folder {extra:?}");
        let started = std::time::Instant::now();
        assert_one_line_error(&what, &run("image_folder", &os(&args)), &[expect]);
        assert!(
            started.elapsed().as_secs() < 20,
            "{what}: {:?}",
            started.elapsed()
        );
        assert_run_kept(&what, &out, &before);
    }
}

#[test]
fn a_successful_overwrite_leaves_no_backup() {
    let data = small_digits("overwrite-backup");
    let out = scratch("overwrite-backup");
    finished_run(&out);
    assert_ok("overwrite", &train(&data, &out, "1", &["--overwrite"]));
    assert_eq!(history_lines(&out), 1);
    let after = files(&out);
    assert!(!after[0].1.starts_with(b"the finished run"));
    assert_run_kept("after the new run", &out, &after);
}

#[test]
fn a_run_files_seed_is_kept_unless_seed_is_given() {
    let data = small_digits("seed");
    let dir = scratch("seed");
    let printed = run(
        "train_preset",
        &os(&["--preset", "dense-vae", "--print-config"]),
    );
    let mut run_file: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    run_file["train"]["seed"] = serde_json::json!(42);
    run_file["train"]["batch_size"] = serde_json::json!(50);
    let path = dir.join("run.json");
    std::fs::write(&path, run_file.to_string()).unwrap();
    let train_into = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = vec![
            "--epochs=1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        assert_ok(name, &run("train_preset", &os(&args)));
        tensor_bits(&out.join("checkpoint.safetensors"))
    };
    let config = path.to_str().unwrap();
    let from_file = train_into("file", &["--config", config]);
    let flag_42 = train_into("flag-42", &["--config", config, "--seed", "42"]);
    let flag_0 = train_into("flag-0", &["--config", config, "--seed", "0"]);
    assert!(from_file == flag_42, "the run file's seed 42 was not used");
    assert!(from_file != flag_0, "--seed 0 did not override the file");
}

#[test]
fn evaluate_refuses_pass_sizes_and_sample_counts_it_cannot_serve() {
    use vaekit::models::{Model, Preset};
    let dir = scratch("evaluate-bounds");
    let ckpt = dir.join("dense.safetensors");
    Model::from_preset(Preset::DenseVae, &Device::Cpu, 0)
        .unwrap()
        .save(&ckpt)
        .unwrap();
    let ckpt = ckpt.to_str().unwrap();
    let max = usize::MAX.to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--importance-samples",
                "10000000",
                "--pairs-per-pass",
                "10000000",
            ],
            "samples",
        ),
        (
            &["--importance-samples", &max, "--pairs-per-pass", &max],
            "samples",
        ),
        (
            &["--importance-samples", "1000000000", "--limit", "1"],
            "samples",
        ),
        (
            &[
                "--pairs-per-pass",
                "1000000",
                "--importance-samples",
                "1000000",
            ],
            "pairs_per_pass",
        ),
    ];
    for (extra, expect) in cases {
        let mut args = vec!["--checkpoint", ckpt];
        args.extend(extra);
        let started = std::time::Instant::now();
        assert_one_line_error(
            &format!("evaluate {extra:?}"),
            &run("evaluate", &os(&args)),
            &[expect],
        );
        assert!(started.elapsed().as_secs() < 20, "{extra:?}");
    }
}

#[test]
fn help_into_a_closed_pipe_is_no_panic() {
    for name in ["image_folder", "train_preset", "evaluate", "cvae_tf"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // every write to the pipe fails with EPIPE
        let out = Command::new(example(name))
            .arg("--help")
            .env("RUST_BACKTRACE", "1")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{name}: {stderr}");
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{name}: {:?}",
            out.status
        );
    }
}

/// The run files in `examples/runs`.
fn run_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join("runs")
        .join(name)
}

#[cfg(all(feature = "pictures", feature = "image-folder"))]
#[test]
fn vq_vae_trains_on_digits_a_folder_and_a_run_file_of_either_discrete_family() {
    let data = small_digits("vq-vae");
    let out = scratch("vq-vae-out");
    let result = run(
        "vq_vae",
        &os(&[
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1",
            "--prior-epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]),
    );
    assert_ok("vq_vae", &result);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.contains("perplexity"), "{stdout}");
    assert!(
        stdout.contains("independent prior over 7×7 grids of 128 codes: test NLL"),
        "{stdout}"
    );
    assert!(stdout.contains("PixelCNN prior: test NLL"), "{stdout}");
    for file in [
        "reconstructions.png",
        "samples_independent.png",
        "samples_pixel_cnn.png",
        "curves.png",
        "explorer.html",
        "model.safetensors",
        "pixel_cnn.safetensors",
        "checkpoint.safetensors",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let page = std::fs::read_to_string(out.join("explorer.html")).unwrap();
    assert!(
        page.contains("<title>vaekit code explorer</title>")
            && page.contains("a grid of 7×7 codes from a codebook of 128"),
        "the code explorer of the VQ-VAE"
    );
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert!(history.contains("\"test_codes_used\""), "{history}");
    // The saved model carries the fitted prior: not uniform any more.
    let model = vaekit::models::Model::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    let log_probs = model.as_vq_vae().unwrap().prior().log_probs();
    let spread = log_probs.max_all().unwrap().to_scalar::<f32>().unwrap()
        - log_probs.min_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(spread > 1.0, "{spread}");

    // A folder of colour images.
    let images = drawn_folder("vq-vae-folder");
    let colour = scratch("vq-vae-colour");
    let result = run(
        "vq_vae",
        &os(&[
            "--images",
            images.to_str().unwrap(),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--prior-epochs",
            "1",
            "--out",
            colour.to_str().unwrap(),
        ]),
    );
    assert_ok("vq_vae --images", &result);
    let img = image::open(colour.join("samples_pixel_cnn.png")).unwrap();
    assert_eq!(img.color(), image::ColorType::Rgb8);
    let page = std::fs::read_to_string(colour.join("explorer.html")).unwrap();
    assert!(page.contains("a grid of 8×8 codes from a codebook of 512"));

    // The two run files select the two discrete families.
    for (file, family) in [
        ("vq_vae_digits.json", "VQ-VAE"),
        ("gumbel_vae_digits.json", "Gumbel-softmax VAE"),
    ] {
        let dir = scratch(&format!("vq-vae-{family}"));
        let result = run(
            "vq_vae",
            &os(&[
                "--config",
                run_file(file).to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--epochs",
                "1",
                "--prior-epochs",
                "1",
                "--out",
                dir.to_str().unwrap(),
            ]),
        );
        assert_ok(file, &result);
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(stdout.starts_with(family), "{stdout}");
        let samples = if family == "VQ-VAE" {
            "samples_pixel_cnn.png"
        } else {
            "samples.png"
        };
        assert!(dir.join(samples).is_file(), "{samples}");
        let page = std::fs::read_to_string(dir.join("explorer.html")).unwrap();
        let codes = if family == "VQ-VAE" {
            "a grid of 7×7 codes from a codebook of 128"
        } else {
            "30 categorical variables of 10 classes"
        };
        assert!(page.contains(codes), "the code explorer of the {family}");
    }
    run_fails(
        "vq_vae",
        &["--images", images.to_str().unwrap(), "--channels", "2"],
        "--channels",
    );
    run_fails(
        "vq_vae",
        &[
            "--images",
            images.to_str().unwrap(),
            "--config",
            run_file("gumbel_vae_digits.json").to_str().unwrap(),
        ],
        "the model takes 1×28×28 images, the data are 3×32×32",
    );
}
