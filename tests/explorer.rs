//! The latent explorer in a real browser: headless Chromium loads the page from
//! disk, moves the sliders (the page's `?test=1` mode dispatches their input
//! event and a click on the latent plane), and the pixels its JavaScript
//! decoder produced must match vaekit's own decoder within 1e-4. The code
//! explorer likewise: the codes of a test image (or a given grid) decoded in
//! the page must match vaekit's decode of the same codes, and a click on a
//! cell must change that cell's code, and the image to vaekit's decode of the
//! new codes.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`); set
//! `VAEKIT_CHROMIUM` to use another binary. Without a browser the tests fail,
//! unless `VAEKIT_SKIP_BROWSER=1`, which skips them with a message.
#![cfg(feature = "pictures")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use common::values;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use vaekit::data::{Batch, LastBatch, Mnist, Shuffle};
use vaekit::models::presets::{cvae_tf, digit_cvae, gumbel_vae_digits, vanilla_vae, vq_vae_digits};
use vaekit::models::{Condition, StepContext};
use vaekit::models::{Conditioning, DecoderConfig, Likelihood, Model, ModelConfig, Preset};
use vaekit::models::{Mode, Trainable};
use vaekit::nets::{Activation, ImageShape, Norm};
use vaekit::pictures::{
    write_code_explorer, write_latent_explorer, CodeExplorerOptions, CodeSpace, ExplorerOptions,
    SliderRange,
};

/// The Chromium binary, or `None` (after saying so) when the browser tests are
/// skipped with `VAEKIT_SKIP_BROWSER=1`.
///
/// # Panics
///
/// When there is no browser and the tests are not skipped.
fn chromium() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("VAEKIT_CHROMIUM") {
        return Some(PathBuf::from(bin));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    match found {
        Some(bin) => Some(bin),
        None if std::env::var("VAEKIT_SKIP_BROWSER").as_deref() == Ok("1") => {
            println!("skipped: no `chromium` on PATH and VAEKIT_SKIP_BROWSER=1");
            None
        }
        None => panic!(
            "the latent-explorer tests need a headless browser, but `chromium` is not on PATH. \
             Install it (Debian/Ubuntu: `apt-get update && apt-get install -y chromium`), point \
             VAEKIT_CHROMIUM at a Chromium binary, or set VAEKIT_SKIP_BROWSER=1 to skip these tests"
        ),
    }
}

/// A fresh, empty folder for one test.
fn out_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("explorer")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test output folder");
    dir
}

/// Runs headless Chromium with `args` on `url`, with a fresh profile in `dir`,
/// and returns its standard output.
fn run_chromium(bin: &Path, dir: &Path, args: &[String], url: &str) -> String {
    let profile = dir.join(format!("profile-{}", args.len()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("profile folder");
    let stdout_path = dir.join("chromium.stdout");
    let stderr_path = dir.join("chromium.stderr");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait().expect("wait for chromium") {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 120 s on {url}");
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}): {stderr}");
    std::fs::read_to_string(&stdout_path).expect("chromium output")
}

/// The JSON the page wrote into `<pre id="result">` in its test mode.
fn page_result(bin: &Path, dir: &Path, page: &Path, query: &str) -> Value {
    let url = format!("file://{}?test=1&{query}", page.display());
    let dom = run_chromium(
        bin,
        dir,
        &["--virtual-time-budget=5000".into(), "--dump-dom".into()],
        &url,
    );
    let start = dom
        .find("<pre id=\"result\">")
        .map(|i| i + "<pre id=\"result\">".len())
        .unwrap_or_else(|| panic!("no result element in the dumped DOM of {url}"));
    let end = start
        + dom[start..]
            .find("</pre>")
            .expect("end of the result element");
    let text = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    assert!(!text.is_empty(), "the page wrote no result for {url}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("result is not JSON ({e}): {text}"))
}

fn numbers(v: &Value, what: &str) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("`{what}` is not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("`{what}` holds {x}")))
        .collect()
}

/// vaekit's pixels for the code `z` (and `digit`).
fn decode(model: &Model, z: &[f64], digit: Option<u32>) -> Vec<f64> {
    let device = model.device();
    let z = Tensor::new(&[[z[0] as f32, z[1] as f32]], device).expect("z");
    let condition = digit.map_or(Condition::None, Condition::Class);
    values(&model.decode(&z, condition).expect("decode"))
}

fn assert_pixels_match(what: &str, page: &[f64], vaekit: &[f64]) {
    assert_eq!(page.len(), vaekit.len(), "{what}: pixel count");
    let (worst, at) = page
        .iter()
        .zip(vaekit)
        .enumerate()
        .map(|(i, (a, b))| ((a - b).abs(), i))
        .fold((0.0, 0), |m, x| if x.0 > m.0 { x } else { m });
    assert!(
        worst <= 1e-4,
        "{what}: pixel {at} differs by {worst} (page {}, vaekit {})",
        page[at],
        vaekit[at]
    );
    // Not a constant picture: the comparison means something.
    let (lo, hi) = vaekit
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(hi - lo > 0.05, "{what}: decoded image is flat ({lo}..{hi})");
}

/// Test-set codes and labels of `model` for the scatter.
fn scatter(model: &Model, n: usize) -> (Vec<(f32, f32)>, Vec<u8>) {
    let mnist = Mnist::bundled().expect("bundled MNIST");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let batch = mnist
        .test
        .batches(
            n,
            Shuffle::Seeded(&mut rng),
            LastBatch::Drop,
            model.device(),
        )
        .expect("batches")
        .next()
        .expect("one batch")
        .expect("batch");
    let z = model.encode(&batch.images).expect("encode");
    let points = z
        .to_vec2::<f32>()
        .expect("codes")
        .into_iter()
        .map(|p| (p[0], p[1]))
        .collect();
    let labels = batch
        .labels
        .expect("MNIST has labels")
        .to_vec1::<u32>()
        .expect("labels")
        .into_iter()
        .map(|l| l as u8)
        .collect();
    (points, labels)
}

/// Writes the explorer of `model`, moves its sliders to `z` in Chromium, clicks
/// the plane at `click`, and checks the page's pixels against vaekit's.
fn check_explorer(
    test: &str,
    model: &Model,
    with_scatter: bool,
    z: (f64, f64),
    click: (f64, f64),
    digit: Option<u32>,
) {
    let Some(bin) = chromium() else { return };
    let dir = out_dir(test);
    let page = dir.join("explorer.html");
    let data = with_scatter.then(|| scatter(model, 300));
    // An autoencoder's codes have no prior: its sliders span the scatter.
    let range = if model.as_autoencoder().is_some() {
        SliderRange::Scatter
    } else {
        SliderRange::Prior
    };
    let options = ExplorerOptions::default()
        .with_scatter(data.as_ref().map(|(p, l)| (p.as_slice(), l.as_slice())))
        .with_range(range)
        .with_classes(model.classes().unwrap_or(0));
    write_latent_explorer(model.decoder(), &options, &page).expect("write the explorer");
    let html = std::fs::read_to_string(&page).expect("read the page");
    assert!(!html.contains("://"), "the page must not load anything");
    assert!(!html.contains("<script src"), "no external script");

    let mut query = format!("z1={}&z2={}&click={},{}", z.0, z.1, click.0, click.1);
    if let Some(d) = digit {
        query.push_str(&format!("&digit={d}"));
    }
    let result = page_result(&bin, &dir, &page, &query);
    assert_eq!(result["error"], "", "page error: {}", result["error"]);
    let shape = numbers(&result["shape"], "shape");
    let want = model.input_shape();
    assert_eq!(
        shape,
        [want.channels, want.height, want.width].map(|d| d as f64)
    );

    let z_used = numbers(&result["z"], "z");
    assert!(
        (z_used[0] - z.0).abs() < 0.006 && (z_used[1] - z.1).abs() < 0.006,
        "sliders at {z_used:?}, asked for {z:?}"
    );
    let vaekit_pixels = decode(model, &z_used, digit);
    let slider_pixels = numbers(&result["pixels"], "pixels");
    assert_pixels_match(
        &format!("{test} after the slider input"),
        &slider_pixels,
        &vaekit_pixels,
    );
    assert_eq!(result["pixels"], result["direct"], "vaekitDecode agrees");

    // Mouse events carry whole CSS pixels: one pixel of the plane is about 0.024
    // of z for the [−4, 4] range.
    let after = numbers(&result["after_click"], "after_click");
    assert!(
        (after[0] - click.0).abs() < 0.035 && (after[1] - click.1).abs() < 0.035,
        "a click at {click:?} set the sliders to {after:?}"
    );
    let clicked = decode(model, &after, digit);
    assert_pixels_match(
        &format!("{test} after the click"),
        &numbers(&result["click_pixels"], "click_pixels"),
        &clicked,
    );
}

/// Multiplies the parameter `name` by `factor`: an untrained decoder's pixels
/// hardly vary, and a larger last layer spreads them so that agreeing to 1e-4
/// means something.
fn scale_weight(model: &Model, name: &str, factor: f64) {
    let var = model.params().get(name).expect("parameter");
    let scaled = var.as_tensor().affine(factor, 0.0).expect("scale");
    var.set(&scaled).expect("set");
}

#[test]
fn dense_vae_explorer_decodes_like_vaekit() {
    let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 11).expect("model");
    check_explorer("dense-vae", &model, true, (1.37, -2.05), (-0.8, 0.6), None);
}

#[test]
fn cvae_tf_explorer_decodes_like_vaekit() {
    // Transposed convolutions with output padding, logits.
    let model = Model::from_preset(Preset::CvaeTf, &Device::Cpu, 12).expect("model");
    // Untrained, its pixels all sit within 0.02 of 0.5.
    scale_weight(&model, "decoder.blocks.2.conv.weight", 30.0);
    check_explorer("cvae-tf", &model, false, (-2.5, 3.1), (1.5, -1.25), None);
}

#[test]
fn conv_ae_2d_explorer_decodes_like_vaekit() {
    // Nearest up-sampling and convolutions, sigmoid; the sliders span the scatter.
    let model = Model::from_preset(Preset::ConvAe2d, &Device::Cpu, 13).expect("model");
    // Untrained, its pixels all sit within 1e-3 of 0.5.
    scale_weight(&model, "decoder.blocks.2.conv.weight", 1000.0);
    let (points, _) = scatter(&model, 300);
    let (x, y) = (f64::from(points[0].0), f64::from(points[0].1));
    let (x2, y2) = (f64::from(points[1].0), f64::from(points[1].1));
    let round = |v: f64| (v * 100.0).round() / 100.0;
    check_explorer(
        "conv-ae-2d",
        &model,
        true,
        (round(x), round(y)),
        (x2, y2),
        None,
    );
}

#[test]
fn batch_norm_conv_decoder_explorer_decodes_like_vaekit() {
    // A conv-vae-bn-like decoder: batch norm (running statistics moved away from
    // 0 and 1 by training-mode passes), leaky ReLU, tanh, a sigmoid fc.
    let mut config = cvae_tf(2);
    if let ModelConfig::Vae(c) = &mut config {
        if let DecoderConfig::Conv(d) = &mut c.decoder {
            d.fc_activation = Activation::Sigmoid;
            d.blocks[0].norm = Norm::Batch;
            d.blocks[0].activation = Activation::LeakyRelu(0.2);
            d.blocks[1].norm = Norm::Batch;
            d.blocks[1].activation = Activation::Tanh;
        }
    }
    let device = Device::Cpu;
    let model = Model::new(&config, &device, 14).expect("model");
    let mnist = Mnist::bundled().expect("bundled MNIST");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batches = mnist
        .train
        .batches(64, Shuffle::Seeded(&mut rng), LastBatch::Drop, &device)
        .expect("batches");
    for batch in batches.take(3) {
        let batch = batch.expect("batch");
        model
            .batch_loss(&batch, &mut rng, &StepContext::of(Mode::Train))
            .expect("training-mode pass");
    }
    let mean = model
        .params()
        .get("decoder.blocks.0.bn.running_mean")
        .expect("batch-norm buffer");
    let moved = mean
        .as_tensor()
        .abs()
        .and_then(|t| t.max_all())
        .and_then(|t| t.to_scalar::<f32>())
        .expect("running mean");
    assert!(moved > 1e-3, "the running mean did not move: {moved}");
    check_explorer("conv-bn", &model, false, (0.75, -0.33), (-3.0, 2.0), None);
}

#[test]
fn colour_vanilla_vae_explorer_decodes_rgb_like_vaekit() {
    // PyTorch-VAE's VanillaVAE for 3×32×32 with a 2-D latent: five transposed
    // convolutions with batch norm and leaky ReLU, a final convolution to three
    // channels; the page must decode every channel as vaekit does.
    let config = vanilla_vae(ImageShape::new(3, 32, 32), 2, Likelihood::Bernoulli).expect("config");
    let device = Device::Cpu;
    let model = Model::new(&config, &device, 16).expect("model");
    // Training-mode passes on a fixed colour pattern move the running statistics.
    let n = 8 * 3 * 32 * 32;
    let pattern: Vec<f32> = (0..n)
        .map(|i| 0.5 + 0.5 * (i as f32 * 0.37).sin())
        .collect();
    let images = Tensor::from_vec(pattern, (8, 3, 32, 32), &device).expect("images");
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for _ in 0..2 {
        model
            .batch_loss(
                &Batch::new(images.clone(), None),
                &mut rng,
                &StepContext::of(Mode::Train),
            )
            .expect("training-mode pass");
    }
    scale_weight(&model, "decoder.blocks.5.conv.weight", 30.0);
    check_explorer("vanilla-rgb", &model, false, (0.5, -1.2), (2.0, 1.0), None);
}

#[test]
fn digit_conditioned_explorer_decodes_the_chosen_digit() {
    let model = Model::new(&digit_cvae(2, Conditioning::Given), &Device::Cpu, 15).expect("model");
    check_explorer(
        "digit-cvae-2d",
        &model,
        true,
        (0.4, 0.9),
        (-1.0, -1.0),
        Some(3),
    );
}

#[test]
fn explorer_screenshot_shows_the_page() {
    let Some(bin) = chromium() else { return };
    let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 11).expect("model");
    let dir = out_dir("screenshot");
    let page = dir.join("explorer.html");
    let (points, labels) = scatter(&model, 500);
    let options = ExplorerOptions::default().with_scatter(Some((&points, &labels)));
    write_latent_explorer(model.decoder(), &options, &page).expect("write");
    let shot = dir.join("explorer.png");
    let url = format!("file://{}?test=1&z1=1.2&z2=-0.6", page.display());
    run_chromium(
        &bin,
        &dir,
        &[
            "--virtual-time-budget=5000".into(),
            format!("--screenshot={}", shot.display()),
            "--window-size=1000,640".into(),
        ],
        &url,
    );
    let img = image::open(&shot).expect("a PNG screenshot").to_rgb8();
    assert_eq!(img.dimensions(), (1000, 640));
    // The decoded image (black background), the tab10 scatter and text.
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "only {} colours", colours.len());
    let black = img.pixels().filter(|p| p.0 == [0, 0, 0]).count();
    assert!(
        black > 1000,
        "no decoded image on the page ({black} black pixels)"
    );
    println!("screenshot: {}", shot.display());
}

/// The first test digit, `[1, 1, 28, 28]`.
fn test_digit(model: &Model) -> Tensor {
    let mnist = Mnist::bundled().expect("bundled MNIST");
    mnist
        .test
        .batches(1, Shuffle::None, LastBatch::Drop, model.device())
        .expect("batches")
        .next()
        .expect("one batch")
        .expect("batch")
        .images
}

/// Writes the code explorer of `model` starting from `start`, sets the codes
/// `codes` (or keeps the start), chooses the code `pick` and clicks `cell` in
/// Chromium, and checks the page's pixels before and after the click against
/// `vaekit_decode` of the same codes.
fn check_code_explorer(
    test: &str,
    model: &Model,
    start: &[u32],
    codes: Option<&[u32]>,
    (pick, cell): (u32, usize),
    vaekit_decode: impl Fn(&[u32]) -> Vec<f64>,
) {
    let Some(bin) = chromium() else { return };
    let dir = out_dir(test);
    let page = dir.join("codes.html");
    let space = CodeSpace::of(model).expect("discrete codes");
    let options = CodeExplorerOptions::default().with_start(Some(start));
    write_code_explorer(model.decoder(), &space, &options, &page).expect("write the explorer");
    let html = std::fs::read_to_string(&page).expect("read the page");
    assert!(!html.contains("://"), "the page must not load anything");
    assert!(!html.contains("<script src"), "no external script");

    let join = |c: &[u32]| c.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let mut query = format!("pick={pick}&click={cell}");
    if let Some(c) = codes {
        query.push_str(&format!("&codes={}", join(c)));
    }
    let result = page_result(&bin, &dir, &page, &query);
    assert_eq!(result["error"], "", "page error: {}", result["error"]);
    let want = model.input_shape();
    assert_eq!(
        numbers(&result["shape"], "shape"),
        [want.channels, want.height, want.width].map(|d| d as f64)
    );
    let as_codes = |v: &Value, what: &str| -> Vec<u32> {
        numbers(v, what).into_iter().map(|c| c as u32).collect()
    };
    let shown = as_codes(&result["codes"], "codes");
    assert_eq!(shown, codes.unwrap_or(start), "the page shows the codes");
    let pixels = numbers(&result["pixels"], "pixels");
    assert_pixels_match(&format!("{test} codes"), &pixels, &vaekit_decode(&shown));
    assert_eq!(
        result["pixels"], result["direct"],
        "vaekitDecodeCodes agrees"
    );

    assert_ne!(shown[cell], pick, "the click must change the cell");
    let after = as_codes(&result["after_click"], "after_click");
    let mut clicked = shown.clone();
    clicked[cell] = pick;
    assert_eq!(
        after, clicked,
        "codes after a click on cell {cell} with {pick} chosen"
    );
    let click_pixels = numbers(&result["click_pixels"], "click_pixels");
    assert_pixels_match(
        &format!("{test} after the click"),
        &click_pixels,
        &vaekit_decode(&after),
    );
    let change = pixels
        .iter()
        .zip(&click_pixels)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        change > 1e-2,
        "the click hardly changed the image: {change}"
    );
}

#[test]
fn vq_vae_code_explorer_decodes_like_vaekit() {
    // The residual decoder (3×3 conv, residual blocks, transposed convs) of
    // the digit VQ-VAE, its codebook lookup per cell.
    let model = Model::new(&vq_vae_digits(), &Device::Cpu, 21).expect("model");
    // Untrained, its codes lie within ±1/128 and its pixels close together.
    scale_weight(&model, "quantizer.ema_codebook", 100.0);
    scale_weight(&model, "decoder.blocks.1.conv.weight", 30.0);
    let vq = model.as_vq_vae().expect("a VQ-VAE");
    let (h, w) = vq.grid();
    let start = vq
        .encode_indices(&test_digit(&model))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<u32>())
        .expect("the digit's codes");
    assert_eq!(start.len(), h * w);
    let decode = |codes: &[u32]| {
        let indices = Tensor::from_vec(codes.to_vec(), (1, h, w), model.device()).expect("grid");
        values(&vq.decode_indices(&indices).expect("decode"))
    };
    let pick = (start[24] + 37) % 128;
    check_code_explorer("vq-vae", &model, &start, None, (pick, 24), decode);
    // Any grid, not only an encoder's: codes spread over the codebook.
    let grid: Vec<u32> = (0..(h * w) as u32).map(|i| (i * 53 + 7) % 128).collect();
    check_code_explorer("vq-vae-grid", &model, &start, Some(&grid), (5, 9), decode);
}

#[test]
fn gumbel_vae_code_explorer_decodes_like_vaekit() {
    // The dense decoder of 30 one-hot vectors of 10 classes.
    let model = Model::new(&gumbel_vae_digits(), &Device::Cpu, 22).expect("model");
    // Untrained, one variable moves its pixels by under 0.01.
    scale_weight(&model, "decoder.out.weight", 10.0);
    let gumbel = model.as_gumbel_vae().expect("a Gumbel-softmax VAE");
    let (n, k) = (gumbel.latent().variables, gumbel.latent().classes);
    let digit = test_digit(&model);
    let start = gumbel
        .encode_classes(&digit)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<u32>())
        .expect("the digit's classes");
    let one_hot = |codes: &[u32]| {
        let mut z = vec![0f32; n * k];
        for (i, &c) in codes.iter().enumerate() {
            z[i * k + c as usize] = 1.0;
        }
        Tensor::from_vec(z, (1, n * k), model.device()).expect("one-hot")
    };
    // The layout the page builds is the model's own: its one-hot latent.
    let encoded = gumbel
        .encode(&digit)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .expect("latent");
    assert_eq!(
        encoded,
        one_hot(&start)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    let decode = |codes: &[u32]| values(&gumbel.decode_pixels(&one_hot(codes)).expect("decode"));
    let pick = (start[17] + 4) % 10;
    check_code_explorer("gumbel-vae", &model, &start, None, (pick, 17), decode);
}
