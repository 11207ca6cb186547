//! Your own images: `C×H×W` datasets with optional labels, the image-folder
//! reader (recursive, classes from sub-folders, centre crop and resize, grey or
//! RGB, alpha on a background, unreadable files skipped or refused, never a
//! panic), held versus streamed data visited in the same seeded order, and the
//! trainer on unlabelled colour images. Every image is drawn here, into a
//! temporary folder, except one CMYK JPEG (292 bytes, made with ImageMagick:
//! `image` cannot write CMYK).
#![cfg(feature = "image-folder")]

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::{ImageBuffer, Luma, LumaA, Rgb, RgbImage, Rgba, RgbaImage};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vaekit::data::{
    Augmentation, Channels, Dataset, ImageFolder, ImageFolderOptions, ImageSource, Labels,
    LastBatch, Shuffle, Unreadable,
};
use vaekit::models::{Model, ModelConfig, Preset};
use vaekit::nets::ImageShape;
use vaekit::train::{Binarization, TrainConfig, Trainer};
use vaekit::Error;

/// A fresh, empty folder for one test.
fn temp(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("images")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test folder");
    dir
}

/// A `w × h` picture: background `bg`, and a filled disc (`circle`) or square
/// of colour `fg` centred, with radius / half-side `r`.
fn shape(w: u32, h: u32, bg: [u8; 3], fg: [u8; 3], circle: bool, r: f32) -> RgbImage {
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let inside = if circle {
            dx * dx + dy * dy <= r * r
        } else {
            dx.abs() <= r && dy.abs() <= r
        };
        Rgb(if inside { fg } else { bg })
    })
}

fn save(img: &RgbImage, path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
    img.save(path).expect("write image");
}

fn options(size: usize, channels: Channels) -> ImageFolderOptions {
    ImageFolderOptions::square(size, channels).with_unreadable(Unreadable::Skip)
}

/// The pixels `[c, h, w]` of the one image of a folder holding only `file`.
fn load_one(dir: &Path, opts: &ImageFolderOptions) -> Vec<f32> {
    let set = ImageFolder::scan(dir, opts)
        .expect("scan")
        .load()
        .expect("load");
    assert_eq!(set.len(), 1, "one image in {}", dir.display());
    set.dataset()
        .expect("held")
        .image(0)
        .expect("image 0")
        .to_vec()
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "value {i}: {g} vs {w} (±{tol})");
    }
}

/// `value` repeated `n` times per channel, channel-major.
fn planes(values: &[f32], n: usize) -> Vec<f32> {
    values
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, n))
        .collect()
}

// ---------------------------------------------------------------------------
// Datasets of any shape, labels optional.

#[test]
fn rgb_datasets_batch_channel_major_with_or_without_labels() {
    let shape = ImageShape::new(3, 2, 2);
    // Value = image·100 + channel·10 + pixel, scaled into [0, 1].
    let px: Vec<f32> = (0..3)
        .flat_map(|i| {
            (0..3).flat_map(move |c| (0..4).map(move |p| (i * 100 + c * 10 + p) as f32 / 300.0))
        })
        .collect();
    let labelled = Dataset::from_pixels(px.clone(), 3, shape, Some(vec![7, 8, 9])).unwrap();
    let plain = Dataset::from_pixels(px.clone(), 3, shape, None).unwrap();
    assert_eq!((plain.channels(), plain.height(), plain.width()), (3, 2, 2));
    assert_eq!(plain.image(1).unwrap(), &px[12..24]);
    assert!(plain.image(3).is_none());
    let b = labelled.batch(&[2, 0], &Device::Cpu).unwrap();
    assert_eq!(b.images.dims(), &[2, 3, 2, 2]);
    let got = b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(&got[..12], &px[24..36]);
    assert_eq!(&got[12..], &px[..12]);
    let labels = b.labels.expect("labelled").to_vec1::<u32>().unwrap();
    assert_eq!(labels, [9, 7]);
    assert!(plain.batch(&[0], &Device::Cpu).unwrap().labels.is_none());
    assert_eq!(labelled.clone().without_labels(), plain);
    // Wrong counts and shapes are refused with the field named.
    for (result, field) in [
        (
            Dataset::from_pixels(px.clone(), 3, shape, Some(vec![1])),
            "labels",
        ),
        (Dataset::from_pixels(px.clone(), 2, shape, None), "images"),
        (
            Dataset::from_pixels(px, 3, ImageShape::new(0, 2, 2), None),
            "shape",
        ),
    ] {
        match result {
            Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected a config error on `{field}`, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Reading folders.

/// `root/circles/*.png` (red discs on blue) and `root/squares/*.png` (yellow
/// squares on black, in a nested folder), plus files that are not images.
fn shapes_folder(test: &str, per_class: usize) -> PathBuf {
    let root = temp(test);
    for i in 0..per_class {
        let r = 8.0 + i as f32;
        save(
            &shape(48, 48, [0, 0, 255], [255, 0, 0], true, r),
            &root.join(format!("circles/c{i:02}.png")),
        );
        save(
            &shape(48, 48, [0, 0, 0], [255, 255, 0], false, r),
            &root.join(format!("squares/deeper/s{i:02}.PNG")),
        );
    }
    std::fs::write(root.join("circles/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("squares/.hidden.png"), "hidden: never read").unwrap();
    root
}

#[test]
fn a_folder_of_shapes_loads_in_colour_with_classes_from_sub_folders() {
    let root = shapes_folder("classes", 4);
    let opts = options(16, Channels::Rgb).with_labels(Labels::SubFolders);
    let folder = ImageFolder::scan(&root, &opts).unwrap();
    assert_eq!(folder.len(), 8, "{:?}", folder.files());
    assert_eq!(folder.classes(), ["circles", "squares"]);
    assert_eq!(folder.labels().unwrap(), [0, 0, 0, 0, 1, 1, 1, 1]);
    let set = folder.load().unwrap();
    assert!(set.skipped().is_empty());
    assert!(!set.is_streamed());
    let data = set.dataset().unwrap();
    assert_eq!((data.len(), data.shape()), (8, ImageShape::new(3, 16, 16)));
    // Image 0: a red disc on blue. Its centre is red, its corner blue.
    let img = data.image(0).unwrap();
    let at = |c: usize, y: usize, x: usize| img[(c * 16 + y) * 16 + x];
    assert_eq!([at(0, 8, 8), at(1, 8, 8), at(2, 8, 8)], [1.0, 0.0, 0.0]);
    assert_eq!([at(0, 0, 0), at(1, 0, 0), at(2, 0, 0)], [0.0, 0.0, 1.0]);
    // Image 4: a yellow square on black.
    let img = data.image(4).unwrap();
    let at = |c: usize, y: usize, x: usize| img[(c * 16 + y) * 16 + x];
    assert_eq!([at(0, 8, 8), at(1, 8, 8), at(2, 8, 8)], [1.0, 1.0, 0.0]);
    assert_eq!([at(0, 0, 0), at(1, 0, 0), at(2, 0, 0)], [0.0, 0.0, 0.0]);
    // A batch carries the labels.
    let b = data.batch(&[3, 4], &Device::Cpu).unwrap();
    assert_eq!(b.labels.unwrap().to_vec1::<u32>().unwrap(), [0, 1]);
}

#[test]
fn images_are_centre_cropped_then_resized_and_greyed_by_bt709() {
    let dir = temp("crop");
    // 40×20: red quarter, green half, blue quarter. The centred square is the
    // green half.
    let wide = RgbImage::from_fn(40, 20, |x, _| match x {
        0..=9 => Rgb([255, 0, 0]),
        10..=29 => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    });
    save(&wide, &dir.join("wide.png"));
    let rgb = load_one(&dir, &options(8, Channels::Rgb));
    assert_eq!(rgb, planes(&[0.0, 1.0, 0.0], 64));
    // The same as grey: 0.7152 (BT.709 green weight), rounded by the bytes.
    let grey = load_one(&dir, &options(8, Channels::Grey));
    assert_close(&grey, &[0.7152; 64], 1e-6);
    // A tall image keeps its middle rows; a wide target keeps the middle band.
    std::fs::remove_file(dir.join("wide.png")).unwrap();
    let tall = RgbImage::from_fn(10, 30, |_, y| {
        Rgb(if (10..20).contains(&y) {
            [9, 9, 9]
        } else {
            [200, 0, 0]
        })
    });
    save(&tall, &dir.join("tall.png"));
    let opts = options(4, Channels::Rgb).with_height(4).with_width(4);
    assert_eq!(load_one(&dir, &opts), vec![9.0 / 255.0; 48]);
    let band = options(4, Channels::Rgb).with_height(2).with_width(6);
    // A 10×30 image cropped to 6:2 keeps rows 13..17, all grey 9.
    assert_eq!(load_one(&dir, &band), vec![9.0 / 255.0; 36]);
}

#[test]
fn alpha_is_composited_on_the_background_at_any_bit_depth() {
    let dir = temp("alpha");
    let bg = [0, 0, 255];
    let opts = options(4, Channels::Rgb).with_background(bg);
    // RGBA 8-bit: red at alpha 51/255 = 0.2 over blue → (51, 0, 204).
    RgbaImage::from_pixel(4, 4, Rgba([255, 0, 0, 51]))
        .save(dir.join("rgba.png"))
        .unwrap();
    assert_eq!(
        load_one(&dir, &opts),
        planes(&[51.0 / 255.0, 0.0, 204.0 / 255.0], 16)
    );
    std::fs::remove_file(dir.join("rgba.png")).unwrap();
    // Grey + alpha: white at alpha 0 shows only the background.
    ImageBuffer::<LumaA<u8>, _>::from_pixel(4, 4, LumaA([255, 0]))
        .save(dir.join("la.png"))
        .unwrap();
    assert_eq!(load_one(&dir, &opts), planes(&[0.0, 0.0, 1.0], 16));
    std::fs::remove_file(dir.join("la.png")).unwrap();
    // 16-bit RGBA, fully opaque: the 16-bit value 0x8080 is the byte 0x80.
    ImageBuffer::<Rgba<u16>, _>::from_pixel(4, 4, Rgba([0x8080, 0, 0xffff, 0xffff]))
        .save(dir.join("rgba16.png"))
        .unwrap();
    assert_eq!(
        load_one(&dir, &opts),
        planes(&[128.0 / 255.0, 0.0, 1.0], 16)
    );
    std::fs::remove_file(dir.join("rgba16.png")).unwrap();
    // 16-bit grey; and a 1×1 image fills the whole target.
    ImageBuffer::<Luma<u16>, _>::from_pixel(1, 1, Luma([0xffff]))
        .save(dir.join("grey16-1x1.png"))
        .unwrap();
    assert_eq!(load_one(&dir, &opts), vec![1.0; 48]);
}

#[test]
fn a_cmyk_jpeg_reads_as_its_rgb_colour() {
    let dir = temp("cmyk");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/cmyk-8x8.jpg");
    std::fs::copy(&fixture, dir.join("cmyk.jpg")).unwrap();
    // ImageMagick made it from sRGB (200, 40, 60) and reads it back as
    // (200, 40, 61); JPEG rounding allows a few levels either way.
    let px = load_one(&dir, &options(8, Channels::Rgb));
    assert_close(
        &px,
        &planes(&[200.0 / 255.0, 40.0 / 255.0, 61.0 / 255.0], 64),
        4.0 / 255.0,
    );
}

/// A folder with 3 good PNGs, one good JPEG and broken files of every kind.
fn broken_folder(test: &str) -> (PathBuf, Vec<&'static str>) {
    let root = temp(test);
    for i in 0..3 {
        save(
            &shape(12, 12, [10, 20, 30], [200, 100, 0], i % 2 == 0, 4.0),
            &root.join(format!("good{i}.png")),
        );
    }
    save(
        &shape(12, 12, [10, 20, 30], [200, 100, 0], true, 4.0),
        &root.join("good.jpg"),
    );
    let mut png = Vec::new();
    shape(64, 64, [1, 2, 3], [4, 5, 6], true, 20.0)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(root.join("empty.png"), b"").unwrap();
    std::fs::write(root.join("truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(root.join("header-only.png"), &png[..20]).unwrap();
    std::fs::write(root.join("text.jpg"), b"this is not a JPEG").unwrap();
    // A PNG header declaring 1,000,000 × 1,000,000 pixels: refused by the limits
    // before anything of that size is allocated.
    let mut huge = png[..33].to_vec();
    huge[16..20].copy_from_slice(&1_000_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&1_000_000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&huge[12..29]); // the IHDR chunk's type and data
    huge[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    std::fs::write(root.join("huge.png"), &huge).unwrap();
    std::fs::create_dir(root.join("folder.png")).unwrap();
    (
        root,
        vec![
            "empty.png",
            "header-only.png",
            "huge.png",
            "text.jpg",
            "truncated.png",
        ],
    )
}

#[test]
fn unreadable_files_are_skipped_and_counted_or_refused_never_a_panic() {
    let (root, broken) = broken_folder("broken");
    let folder = ImageFolder::scan(&root, &options(8, Channels::Rgb)).unwrap();
    assert_eq!(folder.len(), 9, "folder.png is a folder, not a file");
    let set = folder.load().unwrap();
    assert_eq!(set.len(), 4);
    let mut skipped: Vec<String> = set
        .skipped()
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    skipped.sort();
    assert_eq!(skipped, broken);
    let reason = |name: &str| {
        set.skipped()
            .iter()
            .find(|s| s.path.ends_with(name))
            .map(|s| s.reason.clone())
            .unwrap()
    };
    assert_eq!(reason("empty.png"), "empty file");
    assert!(
        reason("huge.png").to_lowercase().contains("limit"),
        "{}",
        reason("huge.png")
    );
    // The good images are intact after the gaps are closed: every one has the
    // background (10, 20, 30) in its corner.
    let data = set.dataset().unwrap();
    // (The JPEG, image 0, within its compression error.)
    for i in 0..4 {
        let img = data.image(i).unwrap();
        let tol = if i == 0 { 8.0 / 255.0 } else { 0.0 };
        assert_close(
            &[img[0], img[64], img[128]],
            &[10.0 / 255.0, 20.0 / 255.0, 30.0 / 255.0],
            tol,
        );
    }

    // Strict: the load fails, naming the first unreadable file and the count.
    let strict = options(8, Channels::Rgb).with_unreadable(Unreadable::Fail);
    match ImageFolder::scan(&root, &strict).unwrap().load() {
        Err(Error::Data { path, reason }) => {
            assert!(path.ends_with("empty.png"), "{}", path.display());
            assert!(reason.contains("5 of the 9 image files"), "{reason}");
        }
        other => panic!("expected a data error, got {other:?}"),
    }
    // The same files streamed (budget 0) are checked at load too.
    let streamed = options(8, Channels::Rgb).with_memory_budget(0);
    let set = ImageFolder::scan(&root, &streamed).unwrap().load().unwrap();
    assert!(set.is_streamed());
    assert_eq!((set.len(), set.skipped().len()), (4, 5));
}

#[test]
fn a_folder_without_readable_images_is_a_clear_error() {
    let root = temp("no-images");
    std::fs::write(root.join("readme.txt"), "hello").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    let err = ImageFolder::scan(&root, &options(8, Channels::Rgb))
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no PNG or JPEG image"), "{err}");
    // Only broken images: the load names the root and says none can be read.
    std::fs::write(root.join("sub/a.png"), b"").unwrap();
    std::fs::write(root.join("sub/b.jpg"), b"junk").unwrap();
    let err = ImageFolder::scan(&root, &options(8, Channels::Rgb))
        .unwrap()
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("none of the 2 image files can be read"),
        "{err}"
    );
    // Not a folder, and a missing one.
    let file = root.join("readme.txt");
    assert!(ImageFolder::scan(&file, &options(8, Channels::Rgb))
        .unwrap_err()
        .to_string()
        .contains("not a folder"));
    assert!(matches!(
        ImageFolder::scan(root.join("missing"), &options(8, Channels::Rgb)),
        Err(Error::Io { .. })
    ));
    // Labels from sub-folders need every image in one.
    save(
        &shape(4, 4, [0; 3], [9; 3], true, 1.0),
        &root.join("top.png"),
    );
    let labelled = options(8, Channels::Rgb).with_labels(Labels::SubFolders);
    let err = ImageFolder::scan(&root, &labelled).unwrap_err().to_string();
    assert!(
        err.contains("top.png") && err.contains("sub-folder"),
        "{err}"
    );
    // Options that cannot work.
    let zero = options(8, Channels::Rgb).with_workers(0);
    assert!(
        matches!(ImageFolder::scan(&root, &zero), Err(Error::Config { field, .. }) if field == "workers")
    );
}

// ---------------------------------------------------------------------------
// Held and streamed, split, trained on.

/// One batch as plain data: pixels, labels and dataset indices.
type PlainBatch = (Vec<f32>, Option<Vec<u32>>, Vec<usize>);

/// Every batch of one seeded epoch.
fn epoch(set: &dyn ImageSource, batch: usize, seed: u64) -> Vec<PlainBatch> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    set.batches(
        batch,
        Shuffle::Seeded(&mut rng),
        LastBatch::Keep,
        &Device::Cpu,
    )
    .unwrap()
    .map(|b| {
        let b = b.unwrap();
        (
            b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.labels.map(|l| l.to_vec1::<u32>().unwrap()),
            b.indices,
        )
    })
    .collect()
}

#[test]
fn streamed_images_yield_the_held_batches_in_the_same_seeded_order() {
    let root = shapes_folder("streamed", 6);
    let held_opts = options(12, Channels::Rgb).with_labels(Labels::SubFolders);
    let held = ImageFolder::scan(&root, &held_opts)
        .unwrap()
        .load()
        .unwrap();
    // 12 images of 3×12×12 f32 take 20,736 bytes: a budget one byte short streams.
    let streamed_opts = held_opts
        .clone()
        .with_memory_budget(12 * 3 * 12 * 12 * 4 - 1)
        .with_workers(3)
        .with_prefetch(2);
    let streamed = ImageFolder::scan(&root, &streamed_opts)
        .unwrap()
        .load()
        .unwrap();
    assert!(!held.is_streamed() && streamed.is_streamed());
    assert_eq!(
        (streamed.len(), streamed.shape(), streamed.has_labels()),
        (12, held.shape(), true)
    );
    let a = epoch(&held, 5, 3);
    let b = epoch(&streamed, 5, 3);
    assert_eq!(a.len(), 3, "12 images in batches of 5, the last one kept");
    assert_eq!(a, b, "same pixels, labels and order, bit for bit");
    // Another seed visits another order; an iterator dropped half-way stops its
    // threads (the test would hang otherwise).
    assert_ne!(epoch(&streamed, 5, 4)[0].2, b[0].2);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut it = streamed
        .batches(2, Shuffle::Seeded(&mut rng), LastBatch::Drop, &Device::Cpu)
        .unwrap();
    assert!(it.next().unwrap().is_ok());
    drop(it);

    // A streamed file deleted after the load fails its batch with its name.
    let victim = streamed.streamed().unwrap().files()[0].clone();
    std::fs::remove_file(&victim).unwrap();
    let err = streamed
        .batches(12, Shuffle::None, LastBatch::Keep, &Device::Cpu)
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    match err {
        Error::Data { path, reason } => {
            assert_eq!(path, victim);
            assert!(reason.contains("can no longer be read"), "{reason}");
        }
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn a_seeded_split_is_reproducible_disjoint_and_complete() {
    let root = shapes_folder("split", 5);
    let folder = ImageFolder::scan(&root, &options(8, Channels::Grey)).unwrap();
    let (train, test) = folder.split(0.3, 9).unwrap();
    assert_eq!((train.len(), test.len()), (7, 3));
    let (train2, test2) = folder.split(0.3, 9).unwrap();
    assert_eq!(
        (train.files(), test.files()),
        (train2.files(), test2.files())
    );
    let mut all: Vec<&PathBuf> = train.files().iter().chain(test.files()).collect();
    all.sort();
    assert_eq!(all, folder.files().iter().collect::<Vec<_>>());
    assert_ne!(folder.split(0.3, 10).unwrap().1.files(), test.files());
    assert!(folder.split(0.0, 1).is_err());
    assert!(folder.split(0.99, 1).is_err());
}

/// A small conv VAE for 3×16×16 images.
fn small_rgb_vae() -> ModelConfig {
    let mut config = vaekit::models::presets::vanilla_vae(
        ImageShape::new(3, 32, 32),
        8,
        vaekit::models::Likelihood::Bernoulli,
    )
    .unwrap();
    if let ModelConfig::Vae(v) = &mut config {
        if let (vaekit::models::EncoderConfig::Conv(e), vaekit::models::DecoderConfig::Conv(d)) =
            (&mut v.encoder, &mut v.decoder)
        {
            // Narrower channels keep the test quick; the layout is the preset's.
            for b in e.blocks.iter_mut() {
                b.out_channels /= 8;
            }
            let last = d.blocks.len() - 1;
            for b in d.blocks[..last].iter_mut() {
                b.out_channels /= 8;
            }
            d.start.channels /= 8;
        }
    }
    config
}

#[test]
fn the_trainer_learns_unlabelled_streamed_colour_images_and_refuses_what_cannot_work() {
    let root = temp("train");
    let colours = [[230, 40, 40], [40, 200, 60], [40, 80, 230], [240, 220, 30]];
    for i in 0..48 {
        let fg = colours[i % 4];
        let bg = [(i * 5) as u8, 20, 40];
        save(
            &shape(40, 40, bg, fg, i % 3 == 0, 6.0 + (i % 5) as f32 * 2.0),
            &root.join(format!("img{i:02}.png")),
        );
    }
    let opts = options(32, Channels::Rgb).with_memory_budget(0);
    let folder = ImageFolder::scan(&root, &opts).unwrap();
    let (train, test) = folder.split(0.25, 0).unwrap();
    let (train, test) = (train.load().unwrap(), test.load().unwrap());
    assert!(train.is_streamed() && !train.has_labels());
    let model = Model::new(&small_rgb_vae(), &Device::Cpu, 0).unwrap();
    let config = TrainConfig::default().with_epochs(12).with_batch_size(4);
    let summary = Trainer::new(config.clone())
        .unwrap()
        .fit(&model, &train, &test)
        .unwrap();
    // The Bernoulli NLL of an image is at least the entropy of its pixels
    // (reached when every predicted probability equals its pixel): the excess
    // over that floor must fall below 60 % of the first epoch's (it reaches
    // about 48 % in 12 epochs; a model that does not learn stays near 100 %).
    let mut floor = 0.0;
    for b in test
        .batches(16, Shuffle::None, LastBatch::Keep, &Device::Cpu)
        .unwrap()
    {
        for p in b
            .unwrap()
            .images
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
        {
            let p = f64::from(p).clamp(1e-12, 1.0 - 1e-12);
            floor -= p * p.ln() + (1.0 - p) * (1.0 - p).ln();
        }
    }
    floor /= test.len() as f64;
    let first = summary.history[0].test_loss() - floor;
    let last = summary.history.last().unwrap().test_loss() - floor;
    assert!(
        first > 0.0 && last > 0.0,
        "the floor {floor} is a lower bound"
    );
    assert!(
        last < 0.6 * first,
        "excess over the entropy floor {floor}: {first} → {last}"
    );

    // A model that needs labels is refused before the first step.
    let digit = Model::from_preset(Preset::DigitCvae, &Device::Cpu, 0).unwrap();
    match Trainer::new(config.clone())
        .unwrap()
        .fit(&digit, &train, &test)
    {
        Err(Error::Data { path, reason }) => {
            assert_eq!(path, PathBuf::from("training set"));
            assert!(reason.contains("has no labels"), "{reason}");
        }
        other => panic!("expected a data error, got {other:?}"),
    }
    // Binarization needs held images.
    let binarized = config.with_binarization(Binarization::Static);
    match Trainer::new(binarized).unwrap().fit(&model, &train, &test) {
        Err(Error::Config { field, .. }) => assert_eq!(field, "binarization"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Augmentation.

/// 16 images of 2×3×5 whose value encodes (image, channel, row, column).
fn ramp() -> (Tensor, Vec<f32>) {
    let (b, c, h, w) = (16, 2, 3, 5);
    let v: Vec<f32> = (0..b * c * h * w).map(|i| i as f32 / 1000.0).collect();
    (
        Tensor::from_vec(v.clone(), (b, c, h, w), &Device::Cpu).unwrap(),
        v,
    )
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn flips_mirror_some_images_and_crops_shift_by_at_most_the_padding() {
    let (images, v) = ramp();
    let (c, h, w) = (2, 3, 5);
    let at = |i: usize, ch: usize, y: usize, x: usize| v[((i * c + ch) * h + y) * w + x];
    // Nothing to do: the same tensor, and nothing drawn.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let same = Augmentation::default().apply(&images, &mut rng).unwrap();
    assert_eq!(values(&same), v);
    assert_eq!(
        rng,
        ChaCha8Rng::seed_from_u64(5),
        "no draw without augmentation"
    );

    // Flips only: each image is itself or its mirror, both occur, and the
    // coins are the generator's, in batch order.
    let flip = Augmentation::default()
        .with_horizontal_flip(true)
        .with_crop_padding(0);
    let out = values(
        &flip
            .apply(&images, &mut ChaCha8Rng::seed_from_u64(5))
            .unwrap(),
    );
    let mut coins = ChaCha8Rng::seed_from_u64(5);
    let mut flipped = 0;
    for i in 0..16 {
        let mirror = coins.random::<bool>();
        flipped += usize::from(mirror);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let sx = if mirror { w - 1 - x } else { x };
                    assert_eq!(out[((i * c + ch) * h + y) * w + x], at(i, ch, y, sx));
                }
            }
        }
    }
    assert!((1..16).contains(&flipped), "{flipped} of 16 flipped");

    // Crops only: every image is its shift by one (dx, dy) within ±2, edges
    // repeated, the same for every channel; the same seed gives the same crops.
    let crop = Augmentation::default()
        .with_horizontal_flip(false)
        .with_crop_padding(2);
    let out = values(
        &crop
            .apply(&images, &mut ChaCha8Rng::seed_from_u64(6))
            .unwrap(),
    );
    let again = values(
        &crop
            .apply(&images, &mut ChaCha8Rng::seed_from_u64(6))
            .unwrap(),
    );
    assert_eq!(out, again);
    let mut shifts = std::collections::BTreeSet::new();
    for i in 0..16 {
        let found = (-2isize..=2)
            .flat_map(|dy| (-2isize..=2).map(move |dx| (dx, dy)))
            .find(|&(dx, dy)| {
                (0..c).all(|ch| {
                    (0..h).all(|y| {
                        (0..w).all(|x| {
                            let sy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
                            let sx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
                            out[((i * c + ch) * h + y) * w + x] == at(i, ch, sy, sx)
                        })
                    })
                })
            });
        shifts.insert(found.unwrap_or_else(|| panic!("image {i} is no shift within ±2")));
    }
    assert!(shifts.len() > 3, "16 images, only shifts {shifts:?}");
}

#[test]
fn augmented_training_is_seeded_and_differs_from_plain_training() {
    let root = shapes_folder("augment", 4);
    let set = ImageFolder::scan(&root, &options(32, Channels::Rgb))
        .unwrap()
        .load()
        .unwrap();
    let data = set.dataset().unwrap();
    let run = |augmentation: Augmentation| {
        let model = Model::new(&small_rgb_vae(), &Device::Cpu, 3).unwrap();
        let config = TrainConfig::default()
            .with_epochs(2)
            .with_batch_size(4)
            .with_augmentation(augmentation)
            .with_progress(vaekit::train::Progress::Hidden);
        let summary = Trainer::new(config)
            .unwrap()
            .fit(&model, data, data)
            .unwrap();
        summary
            .history
            .iter()
            .map(|r| r.train_loss())
            .collect::<Vec<_>>()
    };
    let augment = Augmentation::default()
        .with_horizontal_flip(true)
        .with_crop_padding(3);
    let a = run(augment);
    assert_eq!(a, run(augment), "the same seed, the same run");
    assert_ne!(a, run(Augmentation::default()));
}

// ---------------------------------------------------------------------------
// Large images, small on disk: memory in proportion to what was asked for.

/// Where the child process finds the large images, and how many workers it
/// uses; passed through the environment.
const BIG_DIR_VAR: &str = "VAEKIT_BIG_IMAGES";
const BIG_WORKERS_VAR: &str = "VAEKIT_BIG_WORKERS";

/// CRC-32 (PNG's), bit by bit: the chunks written here are small.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &b in *part {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

/// Writes a valid `w × h` PNG of one repeated `pixel` (its bytes, for PNG
/// colour type `colour` at `depth` bits), compressed row by row: a 16000²
/// image takes a few hundred kilobytes and never its size in memory here.
fn uniform_png(path: &Path, w: u32, h: u32, colour: u8, depth: u8, pixel: &[u8]) {
    use std::io::Write;
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([depth, colour, 0, 0, 0]);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut row = vec![0u8]; // filter type 0
    for _ in 0..w {
        row.extend_from_slice(pixel);
    }
    for _ in 0..h {
        z.write_all(&row).unwrap();
    }
    let idat = z.finish().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", &ihdr), (b"IDAT", &idat), (b"IEND", &Vec::new())] {
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(kind);
        png.extend(data);
        png.extend(crc32(&[kind, data]).to_be_bytes());
    }
    std::fs::write(path, png).unwrap();
}

/// Child: loads the large images held, then streams one epoch of them.
#[test]
#[ignore = "child process of large_images_cost_memory_in_proportion_to_the_target"]
fn child_loads_large_images() {
    let dir = PathBuf::from(std::env::var(BIG_DIR_VAR).expect("run by the parent test"));
    let workers: usize = std::env::var(BIG_WORKERS_VAR).unwrap().parse().unwrap();
    let opts = options(32, Channels::Rgb)
        .with_unreadable(Unreadable::Fail)
        .with_workers(workers);
    let held = ImageFolder::scan(&dir, &opts).unwrap().load().unwrap();
    let set = held.dataset().expect("held");
    // Grey 100, grey 16-bit 0x8080 (128), and (200, 0, 0) at alpha 128 on
    // white: every pixel of the 32×32 results has the value of its source.
    let plane = 32 * 32;
    for (i, want) in [
        [100.0, 100.0, 100.0],
        [128.0, 128.0, 128.0],
        [227.5, 127.5, 127.5],
    ]
    .iter()
    .enumerate()
    {
        let px = set.image(i).unwrap();
        for (c, w) in want.iter().enumerate() {
            for v in &px[c * plane..(c + 1) * plane] {
                assert!((v * 255.0 - w).abs() <= 1.0, "image {i} channel {c}: {v}");
            }
        }
    }
    let streamed = ImageFolder::scan(&dir, &opts.clone().with_memory_budget(0))
        .unwrap()
        .load()
        .unwrap();
    assert!(streamed.is_streamed());
    let mut seen = 0;
    for b in streamed
        .batches(2, Shuffle::None, LastBatch::Keep, &Device::Cpu)
        .unwrap()
    {
        seen += b.unwrap().len();
    }
    assert_eq!(seen, 3);
}

/// Peak resident memory, in bytes, of the child `test` run with `envs`.
fn child_peak_rss(test: &str, envs: &[(&str, String)]) -> u64 {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", test, "--test-threads", "1"])
        .stdout(std::process::Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // Reaped by wait4 below, which reports the child's own peak memory.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 reaps only this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: status {status}"
    );
    usage.ru_maxrss as u64 * 1024 // KiB on Linux
}

/// A 16000² grey PNG of 249 KB cost 2.27 GB of resident memory (4.5 GB with
/// two workers, 6.8 GB with four): full-size crop, RGBA and RGB copies after
/// the decoder. Now the decoded image is the only full-size buffer, and the
/// threads share one decoding budget.
#[cfg(target_os = "linux")]
#[test]
fn large_images_cost_memory_in_proportion_to_the_target() {
    let dir = temp("large-images");
    uniform_png(&dir.join("a-grey.png"), 16_000, 16_000, 0, 8, &[100]);
    uniform_png(
        &dir.join("b-grey16.png"),
        11_000,
        11_000,
        0,
        16,
        &[0x80, 0x80],
    );
    uniform_png(
        &dir.join("c-rgba.png"),
        8_000,
        8_000,
        6,
        8,
        &[200, 0, 0, 128],
    );
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk < 4 << 20, "{on_disk} bytes on disk");
    // Four workers: before, each held its own full-size copies.
    let peak = child_peak_rss(
        "child_loads_large_images",
        &[
            (BIG_DIR_VAR, dir.display().to_string()),
            (BIG_WORKERS_VAR, "4".to_string()),
        ],
    );
    // The largest decoded image is 256 MB (16000² grey, 8000² RGBA).
    assert!(peak < 640 << 20, "peak RSS {} MiB", peak >> 20);
}
