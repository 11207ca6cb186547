//! Helpers shared by the integration tests: fixture loading, tolerant tensor
//! comparison, scratch directories and dataset slices.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// Path of a file in `tests/fixtures`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Every tensor of a fixture file, on `device`.
pub fn load_fixture(name: &str, device: &Device) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_path(name), device)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The tensors under `prefix.`, with the prefix removed.
pub fn with_prefix(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    let p = format!("{prefix}.");
    all.iter()
        .filter_map(|(k, v)| k.strip_prefix(&p).map(|n| (n.to_string(), v.clone())))
        .collect()
}

/// A tensor's values as `f64`, flattened.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("tensor to f64")
}

/// Asserts `actual ≈ expected` elementwise:
/// `|a − e| ≤ rel · |e| + rel · 0.1 · max(max|e|, floor)`.
///
/// That is 1e-4 relative for every element that is not tiny next to the tensor's
/// largest (`rel = 1e-4`), with an absolute allowance of a tenth of that relative
/// to the tensor's scale for near-zero entries, whose float32 rounding no
/// relative bound can hold.
pub fn assert_close(what: &str, actual: &Tensor, expected: &Tensor, rel: f64, floor: f64) {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shape");
    let a = values(actual);
    let e = values(expected);
    let scale = e.iter().fold(floor, |m, v| m.max(v.abs()));
    let mut worst = (0.0f64, 0usize);
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        assert!(x.is_finite(), "{what}[{i}] is not finite: {x}");
        let tol = rel * y.abs() + rel * 0.1 * scale;
        let err = (x - y).abs();
        if err / tol > worst.0 {
            worst = (err / tol, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 1.0,
        "{what}: element {i} is {} but the reference has {} (error {:.3}× the tolerance)",
        a[i],
        e[i],
        worst.0
    );
}

/// The scalar value of a 0-dim or 1-element tensor.
pub fn scalar(t: &Tensor) -> f64 {
    values(t)[0]
}

/// A fresh, empty scratch directory `vaekit-{name}-{pid}` in the system's
/// temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vaekit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// The first `n` images of `d`, with their labels.
pub fn head(d: &vaekit::data::Dataset, n: usize) -> vaekit::data::Dataset {
    let px = d.height() * d.width();
    vaekit::data::Dataset::new(
        d.images()[..n * px].to_vec(),
        d.labels().expect("MNIST has labels")[..n].to_vec(),
        d.height(),
        d.width(),
    )
    .expect("a slice of a dataset is a dataset")
}

/// A dense VAE over `shape` images (hidden widths `hidden`, latent `latent`,
/// decoder output `kind`), its encoder's tensors under `encoder_name`.
pub fn dense_vae_under(
    encoder_name: &str,
    shape: vaekit::nets::ImageShape,
    hidden: &[usize],
    latent: usize,
    kind: vaekit::nets::OutputKind,
    loss: vaekit::models::VaeLossConfig,
    seed: u64,
) -> vaekit::Result<vaekit::models::DenseVae> {
    use vaekit::nets::{DenseDecoder, DenseDecoderConfig, DenseEncoder, DenseEncoderConfig};
    let params = vaekit::params::ParamStore::new(&Device::Cpu);
    let vb = params.var_builder(seed);
    let encoder = DenseEncoder::new(
        &DenseEncoderConfig::new(shape, hidden, 2 * latent),
        vb.pp(encoder_name),
    )?;
    let mut dc = DenseDecoderConfig::new(latent, hidden, shape);
    dc.output_kind = kind;
    let decoder = DenseDecoder::new(&dc, vb.pp("decoder"))?;
    vaekit::models::Vae::new(
        &params,
        encoder,
        decoder,
        vaekit::latent::StandardNormal::new(latent),
        vaekit::latent::PosteriorParam::LogVariance,
        loss,
    )
}

/// [`dense_vae_under`] with the encoder under `encoder`.
pub fn dense_vae(
    shape: vaekit::nets::ImageShape,
    hidden: &[usize],
    latent: usize,
    kind: vaekit::nets::OutputKind,
    loss: vaekit::models::VaeLossConfig,
    seed: u64,
) -> vaekit::models::DenseVae {
    dense_vae_under("encoder", shape, hidden, latent, kind, loss, seed).expect("a dense VAE")
}

/// `max |actual − truth| / scale`, infinite when a value of `actual` is not
/// finite: the error measure of the PyTorch float64 fixtures.
pub fn error_against(actual: &Tensor, truth: &Tensor, scale: f64) -> f64 {
    assert_eq!(actual.dims(), truth.dims(), "shape");
    values(actual)
        .iter()
        .zip(values(truth))
        .map(|(a, t)| {
            if a.is_finite() {
                (a - t).abs()
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
        / scale
}

/// The tolerance of a PyTorch float64 fixture: 1e-9 for vaekit in `f64`; in
/// `f32`, 10× PyTorch's own float32 error on the tensor (`torch_f32_error`),
/// but no tighter than float32's machine epsilon and no looser than 1e-4.
pub fn fixture_tolerance(dtype: DType, torch_f32_error: f64) -> f64 {
    match dtype {
        DType::F64 => 1e-9,
        _ => (10.0 * torch_f32_error).clamp(f32::EPSILON as f64, 1e-4),
    }
}
