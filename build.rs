//! Tells the test suite whether the large PyTorch fixtures are present: the
//! published crate leaves them out (they would pass crates.io's size limit), so
//! the tests that need them are reported as ignored there, with the reason,
//! instead of failing or passing silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(vaekit_fixtures)");
    println!("cargo::rerun-if-changed=tests/fixtures");
    let large = [
        "conv_vae_bn",
        "dense_vae",
        "digit_cvae",
        "digit_cvae_given",
        "state_dict_conv_vae_bn",
    ];
    if large
        .iter()
        .all(|f| std::path::Path::new(&format!("tests/fixtures/{f}.safetensors")).is_file())
    {
        println!("cargo::rustc-cfg=vaekit_fixtures");
    }
}
