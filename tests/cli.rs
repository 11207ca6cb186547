//! Bad flags given to the examples end with one readable error line naming the
//! flag, and exit status 2 — never a panic. (`cargo test` builds the examples
//! next to the test binaries.)

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/cli-… → target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    profile_dir.join("examples").join(name)
}

fn run_fails(name: &str, args: &[&str], expect: &str) {
    let exe = example(name);
    assert!(
        exe.exists(),
        "{} is not built; run the tests with `cargo test`",
        exe.display()
    );
    let out_dir = std::env::temp_dir().join(format!("vaekit-cli-{}", std::process::id()));
    let mut cmd = Command::new(&exe);
    cmd.args(args);
    if name != "bench" {
        // Keep the tutorial examples' outputs out of the source tree.
        cmd.args(["--out", out_dir.to_str().unwrap()]);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{name} {args:?}: status {:?}, stderr {stderr}",
        out.status
    );
    assert!(stderr.starts_with("error: "), "{name} {args:?}: {stderr}");
    assert!(
        stderr.contains(expect),
        "{name} {args:?}: expected `{expect}` in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_flags_name_the_flag() {
    run_fails("train_preset", &["--epochs", "0"], "epochs");
    run_fails("train_preset", &["--epochs", "-3"], "epochs");
    run_fails("train_preset", &["--epochs"], "needs a value");
    run_fails("train_preset", &["--device", "tpu"], "unknown device `tpu`");
    run_fails(
        "train_preset",
        &["--preset", "nope"],
        "unknown preset `nope`",
    );
    run_fails("train_preset", &["--seed", "x"], "seed");
    run_fails("train_preset", &["--batch-size", "0"], "batch-size");
    run_fails("train_preset", &["--frobnicate", "1"], "unknown flag");
    run_fails(
        "train_preset",
        &["--data", "/nonexistent/vaekit"],
        "/nonexistent/vaekit",
    );
    run_fails("bench", &["--workload", "nope"], "unknown workload `nope`");
    run_fails("bench", &["--steps", "0"], "steps");
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
