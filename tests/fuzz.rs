//! Property-based fuzzing of the two readers of untrusted files: the IDX reader
//! and the checkpoint loader. Every input — random bytes, and real files with
//! random bytes changed, cut or appended — must give `Ok` or a clear error,
//! never a panic. The case counts are fixed so CI runs a bounded amount.

use std::io::Write;

use candle_core::Device;
use proptest::prelude::*;
use vaekit::data::idx::{parse_images, parse_labels};
use vaekit::models::{Condition, Model, Preset};

/// Cases per property (six properties: 6 × CASES inputs in all).
const CASES: u32 = 256;

/// The first 40 real test images (a valid IDX file, uncompressed).
fn real_images() -> Vec<u8> {
    let mnist = vaekit::data::Mnist::bundled().unwrap();
    let n = 40usize;
    let mut v = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend(
        mnist.test.images()[..n * 784]
            .iter()
            .map(|p| (p * 255.0).round() as u8),
    );
    v
}

fn real_labels() -> Vec<u8> {
    let mnist = vaekit::data::Mnist::bundled().unwrap();
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&40u32.to_be_bytes());
    v.extend_from_slice(&mnist.test.labels().unwrap()[..40]);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A real checkpoint of a small model, as bytes.
fn real_checkpoint() -> Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(make_checkpoint).clone()
}

fn make_checkpoint() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("vaekit-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    Model::from_preset(Preset::ConvAe2d, &Device::Cpu, 0)
        .unwrap()
        .save(&path)
        .unwrap();
    std::fs::read(path).unwrap()
}

/// Applies random edits: overwrite bytes, then cut or extend.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>, extra: &[u8]) -> Vec<u8> {
    for &(pos, val) in edits {
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = val;
        }
    }
    if let Some(c) = cut {
        bytes.truncate(c % (bytes.len() + 1));
    }
    bytes.extend_from_slice(extra);
    bytes
}

/// Loads `bytes` as a checkpoint file. A load that does not return within a
/// minute ends the test process with the input saved for the report: a hang
/// is a failure to find, not one to wait out (the damaged config once sent a
/// JSON scanner into an endless loop), and proptest cannot shrink it.
fn load_checkpoint_bytes(bytes: &[u8], tag: u64) -> Result<Model, vaekit::Error> {
    let dir = std::env::temp_dir().join(format!("vaekit-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("case-{tag}.safetensors"));
    std::fs::write(&path, bytes).unwrap();
    let (sent, received) = std::sync::mpsc::channel();
    let loading = path.clone();
    std::thread::spawn(move || {
        let _ = sent.send(Model::load(&loading, &Device::Cpu));
    });
    match received.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(r) => {
            let _ = std::fs::remove_file(&path);
            r
        }
        Err(e) => {
            // Straight to stderr: the harness's capture of eprintln! is lost
            // when the process exits.
            let _ = writeln!(
                std::io::stderr(),
                "Model::load did not return ({e:?}) on the input kept at {}",
                path.display()
            );
            std::process::exit(1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn idx_reader_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_images(&bytes, "fuzz-images");
        let _ = parse_labels(&bytes, "fuzz-labels");
        let _ = parse_images(&gzip(&bytes), "fuzz-images.gz");
    }

    #[test]
    fn idx_reader_survives_damaged_real_files(
        edits in proptest::collection::vec((0usize..64, any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
        compress in any::<bool>(),
    ) {
        let images = mutate(real_images(), &edits, cut, &extra);
        let labels = mutate(real_labels(), &edits, cut, &extra);
        let (images, labels) = if compress { (gzip(&images), gzip(&labels)) } else { (images, labels) };
        if let Ok(parsed) = parse_images(&images, "images") {
            // Whatever parses is self-consistent.
            prop_assert_eq!(parsed.pixels().len(), parsed.count() * parsed.rows() * parsed.cols());
        }
        if let Ok(parsed) = parse_labels(&labels, "labels") {
            prop_assert!(parsed.len() <= labels.len());
        }
    }

    #[test]
    fn idx_errors_name_the_file(edits in proptest::collection::vec((0usize..16, any::<u8>()), 1..4)) {
        let images = mutate(real_images(), &edits, None, &[]);
        if let Err(e) = parse_images(&images, "named-file.idx") {
            prop_assert!(e.to_string().contains("named-file.idx"), "{}", e);
        }
    }

    #[test]
    fn checkpoint_loader_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024), tag in any::<u64>()) {
        prop_assert!(load_checkpoint_bytes(&bytes, tag).is_err());
    }

    #[test]
    fn checkpoint_loader_survives_damaged_real_checkpoints(
        // The header (JSON with names, shapes, offsets and the config) is
        // the interesting part: edit mostly there.
        edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..4),
        cut in proptest::option::of(any::<usize>()),
        tag in any::<u64>(),
    ) {
        let bytes = mutate(real_checkpoint(), &edits, cut, &[]);
        match load_checkpoint_bytes(&bytes, tag) {
            Ok(model) => {
                // A load that succeeds gives a usable model.
                let z = candle_core::Tensor::zeros((1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
                prop_assert!(model.decode(&z, Condition::None).is_ok());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn checkpoint_loader_survives_byte_flips_anywhere(
        pos in any::<usize>(),
        val in any::<u8>(),
        tag in any::<u64>(),
    ) {
        let bytes = mutate(real_checkpoint(), &[(pos, val)], None, &[]);
        // A flip in the weights loads (other weights, same shapes); a flip in
        // the header is an error. Either way no panic, and the outcome is usable.
        match load_checkpoint_bytes(&bytes, tag) {
            Ok(model) => prop_assert_eq!(model.latent_dim(), 2),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// The case CI found: a config whose array holds a stray closer where an
/// element should be (`"blocks":[}`) is an error, and returns.
#[test]
fn a_config_with_a_stray_closer_in_an_array_is_an_error() {
    let mut bytes = real_checkpoint();
    let at = bytes
        .windows(12)
        .position(|w| w == b"\\\"blocks\\\":[")
        .expect("the config has blocks")
        + 12;
    assert_eq!(bytes[at], b'{');
    bytes[at] = b'}';
    let err = load_checkpoint_bytes(&bytes, 0).unwrap_err();
    assert!(err.to_string().contains("config"), "{err}");
}
