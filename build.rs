//! Tells the test suite whether the large PyTorch fixtures are present: the
//! published crate leaves them out (they would pass crates.io's size limit), so
//! the tests that need them are reported as ignored there, with the reason,
//! instead of failing or passing silently.
//!
//! Each fixture file is watched on its own: a folder's modification time does
//! not change when a file in it is replaced, so watching the folder could keep
//! a stale answer in a shared target folder.

const LARGE: [&str; 6] = [
    "conv_vae_bn",
    "dense_vae",
    "digit_cvae",
    "digit_cvae_given",
    "state_dict_conv_vae_bn",
    // One file of the runs in `legacy/`, which are left out as a whole.
    "legacy/ae/checkpoint",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(vaekit_fixtures)");
    let paths = LARGE.map(|f| format!("tests/fixtures/{f}.safetensors"));
    for p in &paths {
        println!("cargo::rerun-if-changed={p}");
    }
    if paths.iter().all(|p| std::path::Path::new(p).is_file()) {
        println!("cargo::rustc-cfg=vaekit_fixtures");
    }
}
