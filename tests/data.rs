//! Tests of the data module: the IDX reader against the real bundled MNIST
//! bytes and damaged copies of them, the MNIST loaders, binarization, and the
//! seeded batch iterator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::{idx, DataLimits, Dataset, LastBatch, Mnist, Shuffle, MAX_DATASET_BYTES};
use vaekit::Error;

/// No size limit: only what the header declares and the bytes present bound a read.
fn unlimited() -> DataLimits {
    DataLimits::default().with_max_bytes(u64::MAX)
}

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The system allocator, recording the largest single request made by the
/// current thread, so a test can prove a parser never reserves what a header
/// merely claims.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`; `note` only touches a
// const-initialised thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k")
}

/// The compressed bytes of one shipped file.
fn gz_bytes(stem: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(format!("{stem}.gz"))).expect("shipped data file")
}

/// The decompressed (raw IDX) bytes of one shipped file, decompressed by the
/// test with flate2 directly, not through the code under test.
fn raw_bytes(stem: &str) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(gz_bytes(stem).as_slice())
        .read_to_end(&mut out)
        .expect("shipped file is valid gzip");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).expect("write to Vec");
    enc.finish().expect("finish gzip")
}

/// A fresh, empty folder under cargo's per-test-target temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vaekit-data-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Asserts that `result` is an `Error::Data` for `name` whose message contains `needle`.
#[track_caller]
fn assert_data_err<T: std::fmt::Debug>(result: vaekit::Result<T>, name: &str, needle: &str) {
    match result {
        Err(Error::Data { path, reason }) => {
            assert_eq!(path, Path::new(name), "wrong path in error: {reason}");
            assert!(
                reason.contains(needle),
                "error `{reason}` does not contain `{needle}`"
            );
            let shown = Error::Data { path, reason }.to_string();
            assert!(
                shown.contains(name),
                "message `{shown}` does not name the file"
            );
        }
        other => panic!("expected Error::Data containing `{needle}`, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The bundled digits.

/// Label counts per class and the first ten labels, computed independently
/// with Python's gzip module on the shipped files:
/// `collections.Counter(gzip.open(f).read()[8:])`.
const TRAIN_CLASS_COUNTS: [usize; 10] = [792, 897, 786, 846, 799, 673, 805, 860, 761, 781];
const TEST_CLASS_COUNTS: [usize; 10] = [209, 230, 205, 186, 181, 190, 209, 210, 183, 197];
const TRAIN_FIRST_LABELS: [u8; 10] = [9, 3, 7, 0, 9, 7, 7, 9, 6, 5];
const TEST_FIRST_LABELS: [u8; 10] = [0, 2, 2, 8, 4, 3, 1, 0, 8, 3];
/// Mean pixel (`sum(px) / len(px) / 255` in Python): 0.1311388 train, 0.1310735 test.
const TRAIN_MEAN: f64 = 0.131_138_8;
const TEST_MEAN: f64 = 0.131_073_5;

fn check_set(set: &Dataset, n: usize, counts: &[usize; 10], first: &[u8; 10], mean: f64) {
    assert_eq!(set.len(), n);
    assert_eq!((set.height(), set.width(), set.channels()), (28, 28, 1));
    assert_eq!(set.images().len(), n * 28 * 28);
    let mut seen = [0usize; 10];
    let labels = set.labels().expect("MNIST has labels");
    for &l in labels {
        assert!(l <= 9, "label {l} outside 0..=9");
        seen[usize::from(l)] += 1;
    }
    assert_eq!(&seen, counts);
    assert_eq!(&labels[..10], first);
    for &p in set.images() {
        assert!((0.0..=1.0).contains(&p));
        let byte = p * 255.0;
        assert!((byte - byte.round()).abs() < 1e-4, "{p} is not v/255");
    }
    let got = set.images().iter().map(|&p| f64::from(p)).sum::<f64>() / set.images().len() as f64;
    assert!(
        (got - mean).abs() < 1e-6,
        "mean pixel {got}, expected {mean}"
    );
    // Every image has ink and background.
    for i in 0..n {
        let img = set.image(i).expect("in range");
        assert!(img.iter().any(|&p| p > 0.9) && img.contains(&0.0));
    }
    assert!(set.image(n).is_none());
}

#[cfg(feature = "bundled-mnist")]
#[test]
fn bundled_has_8000_train_and_2000_test_digits_with_real_statistics() {
    let mnist = Mnist::bundled().expect("bundled data parses");
    check_set(
        &mnist.train,
        8_000,
        &TRAIN_CLASS_COUNTS,
        &TRAIN_FIRST_LABELS,
        TRAIN_MEAN,
    );
    check_set(
        &mnist.test,
        2_000,
        &TEST_CLASS_COUNTS,
        &TEST_FIRST_LABELS,
        TEST_MEAN,
    );
}

#[cfg(feature = "bundled-mnist")]
#[test]
fn load_dir_of_shipped_gz_files_equals_bundled() {
    let from_dir = Mnist::load_dir(data_dir()).expect("load data/mnist-10k");
    let bundled = Mnist::bundled().expect("bundled");
    assert_eq!(from_dir, bundled);
}

#[test]
fn load_dir_reads_raw_and_mixed_files() {
    let dir = temp_dir("raw");
    for stem in FILES {
        std::fs::write(dir.join(stem), raw_bytes(stem)).expect("write raw");
    }
    let raw = Mnist::load_dir(&dir).expect("raw files");
    check_set(
        &raw.train,
        8_000,
        &TRAIN_CLASS_COUNTS,
        &TRAIN_FIRST_LABELS,
        TRAIN_MEAN,
    );
    check_set(
        &raw.test,
        2_000,
        &TEST_CLASS_COUNTS,
        &TEST_FIRST_LABELS,
        TEST_MEAN,
    );

    let mixed = temp_dir("mixed");
    for (i, stem) in FILES.iter().enumerate() {
        if i % 2 == 0 {
            std::fs::write(mixed.join(stem), raw_bytes(stem)).expect("write raw");
        } else {
            std::fs::write(mixed.join(format!("{stem}.gz")), gz_bytes(stem)).expect("write gz");
        }
    }
    assert_eq!(Mnist::load_dir(&mixed).expect("mixed files"), raw);
}

#[test]
fn load_dir_names_each_missing_file() {
    for missing in FILES {
        let dir = temp_dir(&format!("missing-{missing}"));
        for stem in FILES.iter().filter(|&&s| s != missing) {
            std::fs::write(dir.join(format!("{stem}.gz")), gz_bytes(stem)).expect("write gz");
        }
        let name = dir.join(missing);
        assert_data_err(
            Mnist::load_dir(&dir),
            name.to_str().expect("utf-8 temp path"),
            &format!("missing: neither {missing} nor {missing}.gz exists"),
        );
    }
}

#[test]
fn load_dir_rejects_swapped_label_files() {
    let dir = temp_dir("swapped");
    std::fs::write(dir.join(FILES[0]), raw_bytes(FILES[0])).expect("write");
    // The test labels under the training name: 2,000 labels for 8,000 images.
    std::fs::write(dir.join(FILES[1]), raw_bytes(FILES[3])).expect("write");
    std::fs::write(dir.join(FILES[2]), raw_bytes(FILES[2])).expect("write");
    std::fs::write(dir.join(FILES[3]), raw_bytes(FILES[3])).expect("write");
    let name = dir.join(FILES[1]);
    assert_data_err(
        Mnist::load_dir(&dir),
        name.to_str().expect("utf-8 temp path"),
        "count mismatch: 2000 labels for 8000 images",
    );
}

#[test]
fn load_dir_reports_damaged_file_by_path() {
    let dir = temp_dir("damaged");
    for stem in FILES {
        std::fs::write(dir.join(stem), raw_bytes(stem)).expect("write raw");
    }
    let mut bad = raw_bytes(FILES[2]);
    bad.truncate(bad.len() - 1);
    std::fs::write(dir.join(FILES[2]), bad).expect("write");
    let name = dir.join(FILES[2]);
    assert_data_err(
        Mnist::load_dir(&dir),
        name.to_str().expect("utf-8 temp path"),
        "truncated data",
    );
}

#[test]
fn read_functions_report_missing_file_as_io_error() {
    let path = temp_dir("io").join("nope");
    match idx::read_images(&path) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    match Dataset::from_idx_files(&path, &path) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn parse_accepts_real_bytes_raw_and_gzip_alike() {
    let raw = raw_bytes("t10k-images-idx3-ubyte");
    let a = idx::parse_images(&raw, "raw").expect("raw");
    let b = idx::parse_images(&gz_bytes("t10k-images-idx3-ubyte"), "gz").expect("gz");
    assert_eq!(a, b);
    assert_eq!((a.count(), a.rows(), a.cols()), (2_000, 28, 28));
    assert_eq!(a.pixels(), &raw[16..]);
    let labels = idx::parse_labels(&raw_bytes("t10k-labels-idx1-ubyte"), "l").expect("labels");
    assert_eq!(labels.len(), 2_000);
    assert_eq!(labels[..10], TEST_FIRST_LABELS);
    // Concatenated gzip members are one valid gzip stream.
    let gz = gzip(&raw[..1000]);
    let mut two = gz.clone();
    two.extend(gzip(&raw[1000..]));
    assert_eq!(idx::parse_images(&two, "two").expect("two members"), a);
}

#[test]
fn generic_idx_labels_need_not_be_digits() {
    let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 200, 0, 255];
    assert_eq!(
        idx::parse_labels(&bytes, "l").expect("generic"),
        vec![200, 0, 255]
    );
    // Zero images is a valid, empty file.
    let empty = [0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28];
    let images = idx::parse_images(&empty, "e").expect("zero images");
    assert_eq!(images.count(), 0);
    let set = Dataset::from_idx(&images, Vec::new(), "l").expect("empty set");
    assert!(set.is_empty());
}

// ---------------------------------------------------------------------------
// Malformed files: every one is an Error::Data naming the file and the problem.

/// Checks `damaged` both raw and gzip-compressed.
#[track_caller]
fn assert_both(
    damaged: &[u8],
    parse: fn(&[u8], &str) -> vaekit::Result<usize>,
    needle_raw: &str,
    needle_gz: &str,
) {
    assert_data_err(parse(damaged, "file.idx"), "file.idx", needle_raw);
    assert_data_err(parse(&gzip(damaged), "file.gz"), "file.gz", needle_gz);
}

fn images(bytes: &[u8], name: &str) -> vaekit::Result<usize> {
    idx::parse_images(bytes, name).map(|i| i.count())
}

fn labels(bytes: &[u8], name: &str) -> vaekit::Result<usize> {
    idx::parse_labels(bytes, name).map(|l| l.len())
}

#[test]
fn empty_file_is_an_error() {
    assert_data_err(images(&[], "e"), "e", "empty file");
    assert_data_err(labels(&[], "e"), "e", "empty file");
    // An empty gzip stream decompresses to nothing: the header is missing.
    assert_data_err(images(&gzip(&[]), "g"), "g", "truncated header");
}

#[test]
fn truncation_at_every_header_offset_is_an_error() {
    for (stem, header_len, parse) in [
        ("t10k-images-idx3-ubyte", 16, images as fn(&[u8], &str) -> _),
        ("t10k-labels-idx1-ubyte", 8, labels as fn(&[u8], &str) -> _),
    ] {
        let real = raw_bytes(stem);
        for cut in 1..header_len {
            assert_both(
                &real[..cut],
                parse,
                &format!("ends after {cut} bytes"),
                "truncated header",
            );
        }
        assert_data_err(parse(&real[..0], "f"), "f", "empty file");
        // Exactly the header: all data missing.
        assert_both(
            &real[..header_len],
            parse,
            "only 0 follow",
            "truncated data",
        );
    }
}

#[test]
fn truncation_inside_the_data_is_an_error() {
    let real = raw_bytes("t10k-images-idx3-ubyte");
    for cut in [17, 16 + 784, 16 + 784 * 1000 + 5, real.len() - 1] {
        assert_both(
            &real[..cut],
            images,
            &format!(
                "header declares 2000×28×28 = 1568000 data bytes but only {} follow",
                cut - 16
            ),
            &format!("the decompressed stream has only {}", cut - 16),
        );
    }
    let real = raw_bytes("t10k-labels-idx1-ubyte");
    for cut in [9, 1000, real.len() - 1] {
        assert_both(&real[..cut], labels, "truncated data", "truncated data");
    }
}

#[test]
fn truncated_gzip_file_is_an_error() {
    let gz = gz_bytes("t10k-images-idx3-ubyte");
    // One byte is not yet the gzip magic, so it reads as a raw IDX file.
    assert_data_err(images(&gz[..1], "cut.gz"), "cut.gz", "ends after 1 bytes");
    for cut in [2, 5, 10, 20, gz.len() / 2, gz.len() - 4, gz.len() - 1] {
        assert_data_err(
            images(&gz[..cut], "cut.gz"),
            "cut.gz",
            "corrupt gzip stream",
        );
    }
}

#[test]
fn wrong_magic_is_an_error() {
    let mut bad = raw_bytes("t10k-images-idx3-ubyte");
    bad[0] = 0x01;
    assert_both(
        &bad,
        images,
        "bad magic number 0x01000803: not an IDX file (expected 0x00000803 for images)",
        "bad magic number 0x01000803",
    );
    let mut bad = raw_bytes("t10k-labels-idx1-ubyte");
    bad[1] = 0xff;
    assert_both(
        &bad,
        labels,
        "bad magic number 0x00ff0801",
        "bad magic number",
    );
    // Text that happens to be there instead of an IDX file.
    assert_data_err(images(b"hello, world", "t"), "t", "bad magic number");
}

#[test]
fn wrong_dtype_byte_is_an_error() {
    for (dtype, what) in [
        (0x09, "signed byte"),
        (0x0d, "f32"),
        (0x0e, "f64"),
        (0x42, "unknown"),
    ] {
        let mut bad = raw_bytes("t10k-images-idx3-ubyte");
        bad[2] = dtype;
        let needle = format!("unsupported dtype byte 0x{dtype:02x} ({what})");
        assert_both(&bad, images, &needle, &needle);
        let mut bad = raw_bytes("t10k-labels-idx1-ubyte");
        bad[2] = dtype;
        assert_both(&bad, labels, &needle, &needle);
    }
}

#[test]
fn wrong_number_of_dimensions_is_an_error() {
    for ndims in [0u8, 1, 2, 4, 255] {
        let mut bad = raw_bytes("t10k-images-idx3-ubyte");
        bad[3] = ndims;
        assert_both(
            &bad,
            images,
            &format!("wrong number of dimensions: magic 0x000008{ndims:02x} declares {ndims}, IDX images have 3"),
            "wrong number of dimensions",
        );
    }
    for ndims in [0u8, 2, 3] {
        let mut bad = raw_bytes("t10k-labels-idx1-ubyte");
        bad[3] = ndims;
        assert_both(
            &bad,
            labels,
            &format!("declares {ndims}, IDX labels have 1"),
            "wrong number of dimensions",
        );
    }
    // The two kinds of file swapped.
    assert_both(
        &raw_bytes("t10k-labels-idx1-ubyte"),
        images,
        "magic 0x00000801 declares 1, IDX images have 3",
        "wrong number of dimensions",
    );
    assert_both(
        &raw_bytes("t10k-images-idx3-ubyte"),
        labels,
        "magic 0x00000803 declares 3, IDX labels have 1",
        "wrong number of dimensions",
    );
}

/// The real images header with its three dimensions replaced.
fn header_with_dims(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut h = raw_bytes("t10k-images-idx3-ubyte")[..4].to_vec();
    for d in [count, rows, cols] {
        h.extend(d.to_be_bytes());
    }
    h
}

#[test]
fn dimensions_whose_product_overflows_are_an_error() {
    // (2^32 - 1)^3 overflows u64 (and so usize).
    let mut bad = header_with_dims(u32::MAX, u32::MAX, u32::MAX);
    bad.extend([0u8; 64]);
    assert_both(
        &bad,
        images,
        "dimensions 4294967295×4294967295×4294967295 overflow",
        "overflow",
    );
    let mut bad = header_with_dims(65_536, 65_536, 65_536); // 2^48: fits u64
    bad.extend([0u8; 64]);
    if usize::BITS < 64 {
        assert_both(&bad, images, "overflow", "overflow");
    } else {
        // Raw: the file is shorter than declared; gzip: the claim is refused
        // against the size limit before the stream is read.
        assert_both(&bad, images, "truncated data", "too large");
    }
}

#[test]
fn dimensions_larger_than_the_data_are_an_error_without_allocating_them() {
    // (2^32 - 1)^2 × 1 bytes ≈ 18 EB declared: must fail on the length check,
    // not on an allocation.
    let mut bad = header_with_dims(u32::MAX, u32::MAX, 1);
    bad.extend(raw_bytes("t10k-images-idx3-ubyte")[16..].iter().copied());
    assert_both(
        &bad,
        images,
        "header declares 4294967295×4294967295×1 = 18446744065119617025 data bytes but only 1568000 follow",
        "too large: 4294967295×4294967295×1 = 18446744065119617025 pixels",
    );
    // The parser never reserves what the header claims: raw bytes fail
    // before any data buffer; gzip stops at the header under the default limit.
    let (result, largest) = largest_allocation(|| images(&bad, "raw"));
    assert_data_err(result, "raw", "truncated data");
    assert!(largest < 4096, "raw parse allocated {largest} bytes");
    // With no size limit, a gzip claiming 2^32 − 1 images (13 TB as f32)
    // grows its buffer only with the 1.57 MB actually decompressed (at most
    // doubling it).
    let mut huge = header_with_dims(u32::MAX, 28, 28);
    huge.extend(raw_bytes("t10k-images-idx3-ubyte")[16..].iter().copied());
    let (result, largest) = largest_allocation(|| {
        idx::parse_images_with(&gzip(&huge), "gz", unlimited()).map(|i| i.count())
    });
    assert_data_err(result, "gz", "the decompressed stream has only 1568000");
    assert!(
        largest < 4 * 1_568_000,
        "gzip parse allocated {largest} bytes"
    );
    let gz = gzip(&bad);
    let (result, largest) = largest_allocation(|| images(&gz, "gz"));
    assert_data_err(result, "gz", "too large");
    assert!(largest < 64 << 10, "gzip parse allocated {largest} bytes");
    // A tiny gzip input claiming 4 GB of labels.
    let mut tiny = raw_bytes("t10k-labels-idx1-ubyte")[..8].to_vec();
    tiny[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    tiny.extend([1u8; 100]);
    let gz = gzip(&tiny);
    let (result, largest) =
        largest_allocation(|| idx::parse_labels_with(&gz, "tiny.gz", unlimited()).map(|l| l.len()));
    assert_data_err(result, "tiny.gz", "has only 100");
    assert!(largest < 1 << 20, "gzip parse allocated {largest} bytes");
    assert_data_err(
        labels(&gz, "tiny.gz"),
        "tiny.gz",
        "too large: 4294967295 labels, more than the 536870912 images",
    );

    // One image more than present.
    let mut bad = raw_bytes("t10k-images-idx3-ubyte");
    bad[4..8].copy_from_slice(&2001u32.to_be_bytes());
    assert_both(&bad, images, "2001×28×28", "truncated data");
    // Larger rows on real data.
    let mut bad = raw_bytes("t10k-images-idx3-ubyte");
    bad[8..12].copy_from_slice(&29u32.to_be_bytes());
    assert_both(&bad, images, "2000×29×28", "truncated data");
    // Labels: count larger than present.
    let mut bad = raw_bytes("t10k-labels-idx1-ubyte");
    bad[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_both(
        &bad,
        labels,
        "4294967295 = 4294967295 data bytes",
        "too large: 4294967295 labels",
    );
}

#[test]
fn zero_sized_images_are_an_error() {
    for (rows, cols) in [(0, 28), (28, 0), (0, 0)] {
        let bad = header_with_dims(5, rows, cols);
        assert_both(
            &bad,
            images,
            "rows and columns must be positive",
            "rows and columns must be positive",
        );
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let real = raw_bytes("t10k-images-idx3-ubyte");
    for extra in [1usize, 3, 784] {
        let mut bad = real.clone();
        bad.extend(std::iter::repeat_n(7u8, extra));
        let needle =
            format!("{extra} trailing bytes after the 1568000 data bytes declared by 2000×28×28");
        assert_both(&bad, images, &needle, &needle);
    }
    // One image fewer declared than present.
    let mut bad = real.clone();
    bad[4..8].copy_from_slice(&1999u32.to_be_bytes());
    assert_both(&bad, images, "784 trailing bytes", "784 trailing bytes");
    let mut bad = raw_bytes("t10k-labels-idx1-ubyte");
    bad.push(3);
    assert_both(&bad, labels, "1 trailing bytes", "1 trailing bytes");
}

#[test]
fn corrupt_gzip_is_an_error() {
    let real = gz_bytes("t10k-images-idx3-ubyte");
    // Damage the deflate data in the middle of the file.
    let mut bad = real.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    assert_data_err(images(&bad, "bad.gz"), "bad.gz", "corrupt gzip stream");
    // Damage the CRC-32 in the 8-byte trailer.
    let mut bad = real.clone();
    let crc = bad.len() - 8;
    bad[crc] ^= 0xff;
    assert_data_err(images(&bad, "crc.gz"), "crc.gz", "corrupt gzip stream");
    // Damage the gzip header's compression method byte.
    let mut bad = real.clone();
    bad[2] = 0x07;
    assert_data_err(images(&bad, "hdr.gz"), "hdr.gz", "corrupt gzip stream");
    // Garbage after a complete gzip member.
    let mut bad = real.clone();
    bad.extend(b"garbage!");
    assert_data_err(images(&bad, "tail.gz"), "tail.gz", "corrupt gzip stream");
    // The gzip magic with nothing valid behind it.
    assert_data_err(images(&[0x1f, 0x8b], "m.gz"), "m.gz", "corrupt gzip stream");
}

#[test]
fn count_mismatch_between_images_and_labels_is_an_error() {
    let images = gz_bytes("train-images-idx3-ubyte");
    let labels = gz_bytes("t10k-labels-idx1-ubyte");
    assert_data_err(
        Dataset::from_idx_bytes(&images, "train-images", &labels, "test-labels"),
        "test-labels",
        "count mismatch: 2000 labels for 8000 images",
    );
    // One label short, on raw bytes with the count field and length both cut.
    let mut labels = raw_bytes("t10k-labels-idx1-ubyte");
    labels.pop();
    labels[4..8].copy_from_slice(&1999u32.to_be_bytes());
    assert_data_err(
        Dataset::from_idx_bytes(&raw_bytes("t10k-images-idx3-ubyte"), "i", &labels, "l"),
        "l",
        "count mismatch: 1999 labels for 2000 images",
    );
    // A damaged images file is reported under its own name.
    assert_data_err(
        Dataset::from_idx_bytes(&[], "i", &labels, "l"),
        "i",
        "empty file",
    );
}

// ---------------------------------------------------------------------------
// Dataset construction, binarization and batching.

/// A small dataset whose pixel values encode their image index.
fn tiny(n: usize) -> Dataset {
    let (h, w) = (2, 3);
    let images = (0..n * h * w)
        .map(|i| (i / (h * w)) as f32 / n as f32)
        .collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::new(images, labels, h, w).expect("valid tiny dataset")
}

#[track_caller]
fn assert_config_err<T: std::fmt::Debug>(result: vaekit::Result<T>, field: &str, needle: &str) {
    match result {
        Err(Error::Config { field: f, reason }) => {
            assert_eq!(f, field);
            assert!(reason.contains(needle), "`{reason}` lacks `{needle}`");
        }
        other => panic!("expected Error::Config for `{field}`, got {other:?}"),
    }
}

#[test]
fn dataset_new_validates_its_input() {
    assert_config_err(
        Dataset::new(vec![0.0; 5], vec![0], 2, 3),
        "images",
        "5 values for 1 images of 1×2×3",
    );
    assert_config_err(
        Dataset::new(vec![0.0, 1.5], vec![0], 1, 2),
        "images",
        "value 1.5 at index 1 is outside [0, 1]",
    );
    assert_config_err(
        Dataset::new(vec![f32::NAN], vec![0], 1, 1),
        "images",
        "outside [0, 1]",
    );
    assert_config_err(
        Dataset::new(vec![], vec![0], 0, 3),
        "shape",
        "every dimension must be positive",
    );
    assert_config_err(
        Dataset::new(vec![], vec![0; 4], usize::MAX, 3),
        "images",
        "0 values",
    );
}

#[test]
fn static_binarization_thresholds_at_one_half() {
    let px = [0.0, 0.25, 127.0 / 255.0, 0.5, 128.0 / 255.0, 0.75, 1.0];
    let set = Dataset::new(px.to_vec(), vec![1], 1, 7).expect("valid");
    let bin = set.binarize_static();
    assert_eq!(bin.images(), &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    assert_eq!(bin.labels(), set.labels());
    assert_eq!(bin.binarize_static(), bin, "idempotent");
}

#[test]
fn static_binarization_of_real_digits_matches_byte_threshold() {
    let raw = raw_bytes("t10k-images-idx3-ubyte");
    let set = Dataset::from_idx_bytes(&raw, "i", &raw_bytes("t10k-labels-idx1-ubyte"), "l")
        .expect("real");
    let bin = set.binarize_static();
    for (&b, &byte) in bin.images().iter().zip(&raw[16..]) {
        assert_eq!(b, if byte >= 128 { 1.0 } else { 0.0 });
    }
    // 13.26 % of pixels are above 0.5 (Python: 0.13260140306122448).
    let ones = bin.images().iter().filter(|&&p| p == 1.0).count();
    assert_eq!(
        ones,
        (0.132_601_403_061_224_48_f64 * 1_568_000.0).round() as usize
    );
}

#[test]
fn dynamic_binarization_is_a_seeded_bernoulli_sample() {
    let raw = Dataset::from_idx_bytes(
        &gz_bytes("t10k-images-idx3-ubyte"),
        "i",
        &gz_bytes("t10k-labels-idx1-ubyte"),
        "l",
    )
    .expect("real");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let a = raw.binarize_dynamic(&mut rng);
    let b = raw.binarize_dynamic(&mut rng);
    assert_ne!(a, b, "each call draws a new sample");
    let again = raw.binarize_dynamic(&mut ChaCha8Rng::seed_from_u64(7));
    assert_eq!(a, again, "same seed, same sample");
    for (&p, (&x, &y)) in raw.images().iter().zip(a.images().iter().zip(b.images())) {
        assert!(x == 0.0 || x == 1.0);
        if p == 0.0 {
            assert_eq!((x, y), (0.0, 0.0));
        }
        if p == 1.0 {
            assert_eq!((x, y), (1.0, 1.0));
        }
    }
    // E[sample] = mean pixel; with 1.57M draws the standard error is < 3e-4.
    let mean = a.images().iter().map(|&x| f64::from(x)).sum::<f64>() / 1_568_000.0;
    assert!((mean - TEST_MEAN).abs() < 1.5e-3, "sample mean {mean}");
    assert_eq!(a.labels(), raw.labels());

    // One pixel at 0.3, resampled 100,000 times: frequency 0.3 ± 0.006 (4 σ).
    let one = Dataset::new(vec![0.3], vec![0], 1, 1).expect("valid");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let hits = (0..100_000)
        .filter(|_| one.binarize_dynamic(&mut rng).images()[0] == 1.0)
        .count();
    assert!((hits as f64 / 1e5 - 0.3).abs() < 0.006, "frequency {hits}");
}

#[test]
fn batch_size_zero_is_a_config_error() {
    let set = tiny(4);
    assert_config_err(
        set.batches(0, Shuffle::None, LastBatch::Keep, &Device::Cpu),
        "batch_size",
        "must be positive",
    );
}

#[test]
fn batches_that_would_yield_nothing_are_an_error() {
    // An empty dataset, whatever the batch size and last-batch rule.
    for last in [LastBatch::Keep, LastBatch::Drop] {
        for size in [1, 4] {
            assert_config_err(
                tiny(0).batches(size, Shuffle::None, last, &Device::Cpu),
                "dataset",
                "is empty",
            );
        }
    }
    // Dropping the last batch when it is the only one.
    assert_config_err(
        tiny(10).batches(11, Shuffle::None, LastBatch::Drop, &Device::Cpu),
        "batch_size",
        "11 is more than the 10 images of the dataset, and LastBatch::Drop drops the only, partial batch",
    );
    assert_config_err(
        tiny(1).batches(2, Shuffle::None, LastBatch::Drop, &Device::Cpu),
        "batch_size",
        "2 is more than the 1 images",
    );
    // At the boundary there is exactly one batch, and keeping works below it.
    assert_eq!(batch_sizes(&tiny(10), 10, LastBatch::Drop), [10]);
    assert_eq!(batch_sizes(&tiny(10), 11, LastBatch::Keep), [10]);
    assert_eq!(batch_sizes(&tiny(1), 64, LastBatch::Keep), [1]);
}

fn batch_sizes(set: &Dataset, batch_size: usize, last: LastBatch) -> Vec<usize> {
    let it = set
        .batches(batch_size, Shuffle::None, last, &Device::Cpu)
        .expect("valid batch size");
    let expected_len = it.len();
    let sizes: Vec<usize> = it.map(|b| b.expect("batch").indices.len()).collect();
    assert_eq!(sizes.len(), expected_len, "ExactSizeIterator::len");
    sizes
}

#[test]
fn last_batch_keep_and_drop_counts() {
    let set = tiny(10);
    assert_eq!(batch_sizes(&set, 3, LastBatch::Keep), [3, 3, 3, 1]);
    assert_eq!(batch_sizes(&set, 3, LastBatch::Drop), [3, 3, 3]);
    assert_eq!(batch_sizes(&set, 5, LastBatch::Keep), [5, 5]);
    assert_eq!(batch_sizes(&set, 5, LastBatch::Drop), [5, 5]);
    assert_eq!(batch_sizes(&set, 10, LastBatch::Drop), [10]);
    assert_eq!(batch_sizes(&set, 11, LastBatch::Keep), [10]);
    assert_eq!(batch_sizes(&set, 1, LastBatch::Drop).len(), 10);

    let real = Dataset::from_idx_bytes(
        &gz_bytes("t10k-images-idx3-ubyte"),
        "i",
        &gz_bytes("t10k-labels-idx1-ubyte"),
        "l",
    )
    .expect("real");
    let keep = batch_sizes(&real, 300, LastBatch::Keep);
    assert_eq!(keep.len(), 7);
    assert_eq!(keep[6], 200);
    assert_eq!(batch_sizes(&real, 300, LastBatch::Drop), [300; 6]);
}

#[test]
fn batches_hold_the_right_pixels_labels_and_shapes() {
    let set = tiny(7);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut seen = Vec::new();
    for batch in set
        .batches(3, Shuffle::Seeded(&mut rng), LastBatch::Keep, &Device::Cpu)
        .expect("batches")
    {
        let batch = batch.expect("batch");
        let b = batch.indices.len();
        assert_eq!(batch.images.dims(), &[b, 1, 2, 3]);
        assert_eq!(batch.images.dtype(), DType::F32);
        let labels = batch
            .labels
            .as_ref()
            .expect("labelled set, labelled batches");
        assert_eq!(labels.dims(), &[b]);
        assert_eq!(labels.dtype(), DType::U32);
        let pixels = batch
            .images
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("pixels");
        let labels = labels.to_vec1::<u32>().expect("labels");
        for (k, &i) in batch.indices.iter().enumerate() {
            assert_eq!(&pixels[k * 6..(k + 1) * 6], set.image(i).expect("in range"));
            assert_eq!(labels[k], u32::from(set.labels().expect("labelled")[i]));
        }
        seen.extend(batch.indices);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..7).collect::<Vec<_>>());

    assert_config_err(
        set.batch(&[0, 7], &Device::Cpu),
        "indices",
        "index 7 out of range",
    );
}

fn order(set: &Dataset, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    set.batches(64, Shuffle::Seeded(&mut rng), LastBatch::Keep, &Device::Cpu)
        .expect("batches")
        .order()
        .to_vec()
}

#[test]
fn seeded_shuffle_is_a_reproducible_permutation() {
    let set = tiny(1000);
    let a = order(&set, 42);
    assert_eq!(a, order(&set, 42), "same seed, same order");
    assert_ne!(a, order(&set, 43), "another seed, another order");
    let identity: Vec<usize> = (0..1000).collect();
    assert_ne!(a, identity, "shuffled");
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, identity, "a permutation");

    // It is exactly rand's Fisher–Yates `SliceRandom::shuffle` on 0..n.
    let mut expected = identity.clone();
    expected.shuffle(&mut ChaCha8Rng::seed_from_u64(42));
    assert_eq!(a, expected);

    // The iterator follows the order, and the RNG moves on between epochs.
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let epoch1: Vec<usize> = set
        .batches(64, Shuffle::Seeded(&mut rng), LastBatch::Keep, &Device::Cpu)
        .expect("batches")
        .flat_map(|b| b.expect("batch").indices)
        .collect();
    assert_eq!(epoch1, a);
    let epoch2 = set
        .batches(64, Shuffle::Seeded(&mut rng), LastBatch::Keep, &Device::Cpu)
        .expect("batches")
        .order()
        .to_vec();
    assert_ne!(epoch2, epoch1);

    // Unshuffled is dataset order; Drop cuts the shuffled order to whole batches.
    let plain = set
        .batches(64, Shuffle::None, LastBatch::Keep, &Device::Cpu)
        .expect("batches");
    assert_eq!(plain.order(), &identity[..]);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let dropped = set
        .batches(64, Shuffle::Seeded(&mut rng), LastBatch::Drop, &Device::Cpu)
        .expect("batches");
    assert_eq!(dropped.order(), &a[..960]);
}

// ---------------------------------------------------------------------------
// What a file may make the reader do: only regular files, only what the
// header declares, and no more than the limit.

/// Runs `f` on another thread and fails the test if it takes longer than
/// `secs` (a read that blocks on a FIFO would otherwise hang the suite).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what} did not return within {secs} s"))
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn only_regular_files_are_read() {
    let dir = temp_dir("special");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).expect("mkdir");
    let link = dir.join("zero-link");
    std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
    for (path, what) in [
        (fifo.clone(), "a FIFO"),
        (PathBuf::from("/dev/zero"), "a character device"),
        (link.clone(), "a character device"),
        (folder.clone(), "a folder"),
    ] {
        let name = path.to_str().expect("utf-8 path").to_string();
        let needle = format!("not a regular file ({what})");
        let p = path.clone();
        assert_data_err(
            within(10, &name, move || idx::read_images(&p).map(|i| i.count())),
            &name,
            &needle,
        );
        let p = path.clone();
        assert_data_err(
            within(10, &name, move || idx::read_labels(&p).map(|l| l.len())),
            &name,
            &needle,
        );
        let p = path.clone();
        assert_data_err(
            within(10, &name, move || {
                Dataset::from_idx_files(&p, &p).map(|d| d.len())
            }),
            &name,
            &needle,
        );
    }

    // A FIFO under a standard name in an otherwise valid folder.
    for (i, stem) in FILES.iter().enumerate() {
        let dir = temp_dir(&format!("special-{i}"));
        for other in FILES.iter().filter(|&&s| s != *stem) {
            std::fs::write(dir.join(format!("{other}.gz")), gz_bytes(other)).expect("write");
        }
        let fifo = dir.join(stem);
        mkfifo(&fifo);
        let name = fifo.to_str().expect("utf-8 path").to_string();
        assert_data_err(
            within(10, &name, move || {
                Mnist::load_dir(&dir).map(|m| m.train.len())
            }),
            &name,
            "not a regular file (a FIFO)",
        );
    }
}

/// The 16-byte header of an IDX images file of `count` 28×28 images.
fn images_header(count: u32) -> Vec<u8> {
    header_with_dims(count, 28, 28)
}

#[test]
fn a_gzip_bomb_claiming_gigabytes_fails_before_allocating_them() {
    // 2,739,138 images of 28×28 are 2 GiB of bytes (8 GiB as f32), followed by
    // only 16 MB of zeros: 16 KB of gzip.
    let declared = 2_739_138u32;
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(&images_header(declared)).expect("write");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..16 {
        enc.write_all(&zeros).expect("write");
    }
    let bomb = enc.finish().expect("finish");
    assert!(bomb.len() < 100_000, "the bomb is {} bytes", bomb.len());

    let started = std::time::Instant::now();
    let (result, largest) = largest_allocation(|| images(&bomb, "bomb.gz"));
    assert_data_err(
        result,
        "bomb.gz",
        "too large: 2739138×28×28 = 2147484192 pixels need 8589936768 bytes as f32, more than the limit of 2147483648 bytes",
    );
    // The inflate state (32 KiB window) is the largest allocation.
    assert!(
        largest < 64 << 10,
        "allocated {largest} bytes for a refused header"
    );
    assert!(
        started.elapsed().as_secs() < 2,
        "took {:?}",
        started.elapsed()
    );

    // Under a limit that allows the claim, the buffer still grows only with
    // the 16 MiB that really decompress (at most doubling them).
    let limits = DataLimits::default().with_max_bytes(16 << 30);
    let (result, largest) =
        largest_allocation(|| idx::parse_images_with(&bomb, "bomb.gz", limits).map(|i| i.count()));
    assert_data_err(result, "bomb.gz", "has only 16777216");
    assert!(largest <= 2 * (16 << 20), "allocated {largest} bytes");

    // The same through a file.
    let path = temp_dir("bomb").join("bomb.gz");
    std::fs::write(&path, &bomb).expect("write");
    let name = path.to_str().expect("utf-8").to_string();
    let (result, largest) = largest_allocation(|| idx::read_images(&path).map(|i| i.count()));
    assert_data_err(result, &name, "too large");
    assert!(largest < 64 << 10, "allocated {largest} bytes");
}

#[test]
fn an_honest_file_of_two_million_images_is_refused_with_the_size_it_needs() {
    // 2,000,000 × 28 × 28 = 1.568 GB of pixels, 6.272 GB as f32: a valid gzip
    // (20 members of 78.4 MB of zeros after the header), 1.5 MB compressed.
    let count = 2_000_000u32;
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(&vec![0u8; 78_400_000]).expect("write");
    let chunk = enc.finish().expect("finish");
    let mut honest = gzip(&images_header(count));
    for _ in 0..20 {
        honest.extend_from_slice(&chunk);
    }
    assert!(honest.len() < 2_000_000, "{} bytes of gzip", honest.len());
    let needle = "too large: 2000000×28×28 = 1568000000 pixels need 6272000000 bytes as f32, more than the limit of 2147483648 bytes (raise DataLimits::max_bytes";
    let started = std::time::Instant::now();
    let (result, largest) = largest_allocation(|| images(&honest, "honest.gz"));
    assert_data_err(result, "honest.gz", needle);
    assert!(largest < 64 << 10, "allocated {largest} bytes");
    assert!(
        started.elapsed().as_secs() < 2,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(MAX_DATASET_BYTES, 2 << 30);

    // As files: the gzip, and a raw file of the full length (sparse, so the
    // test writes only the header); neither is read past its header.
    let dir = temp_dir("honest");
    let gz = dir.join("honest.gz");
    std::fs::write(&gz, &honest).expect("write");
    let raw = dir.join("honest.idx");
    std::fs::write(&raw, images_header(count)).expect("write");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .and_then(|f| f.set_len(16 + 1_568_000_000))
        .expect("extend sparse file");
    for path in [gz, raw] {
        let name = path.to_str().expect("utf-8").to_string();
        let started = std::time::Instant::now();
        let (result, largest) = largest_allocation(|| idx::read_images(&path).map(|i| i.count()));
        assert_data_err(result, &name, needle);
        assert!(largest < 64 << 10, "{name}: allocated {largest} bytes");
        assert!(
            started.elapsed().as_secs() < 2,
            "{name}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn the_limit_counts_bytes_of_f32_pixels_and_can_be_raised() {
    // The 2,000 test images are 1,568,000 bytes, 6,272,000 bytes as f32.
    let images_gz = gz_bytes("t10k-images-idx3-ubyte");
    let labels_gz = gz_bytes("t10k-labels-idx1-ubyte");
    let at = |max_bytes: u64| DataLimits::default().with_max_bytes(max_bytes);
    assert_data_err(
        idx::parse_images_with(&images_gz, "i", at(6_271_999)).map(|i| i.count()),
        "i",
        "2000×28×28 = 1568000 pixels need 6272000 bytes as f32, more than the limit of 6271999 bytes",
    );
    assert_eq!(
        idx::parse_images_with(&images_gz, "i", at(6_272_000))
            .expect("at the limit")
            .count(),
        2_000
    );
    assert_data_err(
        Dataset::from_idx_bytes_with(&images_gz, "i", &labels_gz, "l", at(6_271_999)),
        "i",
        "too large",
    );
    let set = Dataset::from_idx_bytes_with(&images_gz, "i", &labels_gz, "l", at(6_272_000))
        .expect("at the limit");
    assert_eq!(set.images().len() * 4, 6_272_000);
    // Labels: at most max_bytes / 4 of them.
    assert_data_err(
        idx::parse_labels_with(&labels_gz, "l", at(7_999)).map(|l| l.len()),
        "l",
        "too large: 2000 labels, more than the 1999 images",
    );
    assert_eq!(
        idx::parse_labels_with(&labels_gz, "l", at(8_000))
            .expect("at the limit")
            .len(),
        2_000
    );
    // A folder: each set is checked, and the error names the file.
    let train_bytes = 8_000 * 784 * 4;
    let err = Mnist::load_dir_with(data_dir(), at(train_bytes - 1));
    let name = data_dir().join("train-images-idx3-ubyte.gz");
    assert_data_err(err, name.to_str().expect("utf-8"), "too large");
    let mnist = Mnist::load_dir_with(data_dir(), at(train_bytes)).expect("at the limit");
    assert_eq!((mnist.train.len(), mnist.test.len()), (8_000, 2_000));
}

#[test]
fn gigabytes_of_trailing_data_fail_after_a_bounded_read() {
    // A valid labels file followed by 1 GiB of zeros: 1 MB of gzip.
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(&raw_bytes("t10k-labels-idx1-ubyte"))
        .expect("write");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).expect("write");
    }
    let gz = enc.finish().expect("finish");
    let started = std::time::Instant::now();
    assert_data_err(
        labels(&gz, "tail.gz"),
        "tail.gz",
        "more than 1048576 trailing bytes after the 2000 data bytes",
    );
    // Decompressing the whole gigabyte takes seconds; the bounded scan does not.
    assert!(
        started.elapsed().as_millis() < 500,
        "took {:?}",
        started.elapsed()
    );
}
