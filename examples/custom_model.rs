//! Bring your own model: an encoder written in this file, vaekit's conv
//! decoder and a learnable Gaussian-mixture prior, assembled into a `Vae` and
//! trained with vaekit's `Trainer` — history, checkpoints, pictures and all.
//!
//! Writes into `--out` (default `out/custom_model`): `history.jsonl`,
//! `checkpoint.safetensors`, `best.safetensors`, `model.safetensors`,
//! `samples.png` (64 draws from the learnt mixture prior, decoded) and
//! `latent_scatter.png` (the test digits' posterior means). Then it builds a
//! fresh model, loads `model.safetensors` into it with one call, and checks
//! that it reconstructs the test digits exactly as the trained one does.
//!
//! ```text
//! cargo run --release --example custom_model -- --epochs 5
//! ```

#[path = "common/mod.rs"]
mod common;

use vaekit::candle_nn::{linear, Linear};
use vaekit::latent::{gaussian_mixture_prior, MixtureConfig};
use vaekit::nets::{Activation, Norm, UpBlockConfig, Upsampling};
use vaekit::params::InitScheme;
use vaekit::pictures::{self, GridStyle};
use vaekit::prelude::*;

/// Width of the latent space: 2, so the latent space can be drawn.
const LATENT: usize = 2;

/// An encoder of the user's own: flatten, a 512-unit ReLU layer, and a linear
/// layer giving the posterior's `[mean | log-variance]`.
struct MlpEncoder {
    hidden: Linear,
    out: Linear,
}

impl MlpEncoder {
    fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            hidden: linear(ImageShape::MNIST.numel(), 512, vb.pp("hidden"))?,
            out: linear(512, 2 * LATENT, vb.pp("out"))?,
        })
    }
}

impl ModuleT for MlpEncoder {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let h = self.hidden.forward(&xs.flatten_from(1)?)?.relu()?; // [b, 512]
        self.out.forward(&h) // [b, 2·latent]
    }
}

impl Encoder for MlpEncoder {
    fn input_shape(&self) -> ImageShape {
        ImageShape::MNIST
    }
    fn output_dim(&self) -> usize {
        2 * LATENT
    }
}

/// vaekit's conv decoder: linear to 32×7×7, two stride-2 transposed
/// convolutions to 28×28, Bernoulli logits.
fn decoder_config() -> ConvDecoderConfig {
    let up = |out_channels, stride, activation| {
        let transposed = Upsampling::Transposed {
            output_padding: stride - 1,
        };
        UpBlockConfig::new(transposed, out_channels, 3, stride, 1)
            .with_norm(Norm::None)
            .with_activation(activation)
    };
    let blocks = vec![
        up(64, 2, Activation::Relu),
        up(32, 2, Activation::Relu),
        up(1, 1, Activation::Identity),
    ];
    ConvDecoderConfig::new(LATENT, ImageShape::new(32, 7, 7), blocks, ImageShape::MNIST)
        .with_fc_activation(Activation::Relu)
        .with_output_kind(OutputKind::Logits)
        .with_init(InitScheme::PyTorch)
}

type CustomVae = Vae<MlpEncoder, ConvDecoder, GaussianMixturePrior>;

/// Builds the model with fresh weights drawn from `seed`.
fn build(device: &Device, seed: u64) -> Result<CustomVae> {
    let params = ParamStore::new(device);
    let vb = params.var_builder(seed);
    let encoder = MlpEncoder::new(vb.pp("encoder"))?;
    let decoder = ConvDecoder::new(&decoder_config(), vb.pp("decoder"))?;
    let mixture = MixtureConfig::default()
        .with_components(10)
        .with_spread(1.5)
        .with_sigma(0.5)
        .with_learn_means(true)
        .with_learn_variances(true);
    let prior = gaussian_mixture_prior(LATENT, &mixture, vb.pp("prior"))?;
    Vae::new(
        &params,
        encoder,
        decoder,
        prior,
        PosteriorParam::LogVariance,
        VaeLossConfig::default(), // Bernoulli pixels, KL estimated, batch mean
    )
}

fn main() {
    common::run(custom_model);
}

fn custom_model() -> Result<()> {
    let args = common::Args::parse(
        "out/custom_model",
        &[],
        "Your own encoder with vaekit's conv decoder and a Gaussian-mixture prior.",
    )?;
    let digits = args.digits()?;
    let model = build(&args.device, args.seed())?;
    let config = TrainConfig::default()
        .with_epochs(args.epochs.unwrap_or(10))
        .with_batch_size(128)
        .with_seed(args.seed());
    println!(
        "custom VAE (MLP encoder, conv decoder, 10-component mixture prior, latent {LATENT}): {} parameters, {} epochs",
        model.params().num_trainable(),
        config.epochs
    );
    let mut trainer = Trainer::new(config)?
        .run_folder(args.run_folder(&[], &args.out)?)
        .allow_data_change(args.allow_data_change)
        .on_epoch(|report| {
            common::print_epoch(report);
            Ok(())
        });
    args.fit_or_resume(&mut trainer, &args.out, &model, &digits)?;
    let saved = args.out.join("model.safetensors");
    model.save(&saved)?;

    // Pictures: prior samples, and the test digits in latent space.
    let mut rng = Generator::seed_from_u64(args.seed());
    let samples = model.sample(64, &mut rng, &args.device)?; // [64, 1, 28, 28]
    let style = GridStyle::default()
        .with_scale(2)
        .with_padding(2)
        .with_background(255);
    pictures::save_png(
        &pictures::image_grid(&samples, 8, style)?,
        args.out.join("samples.png"),
    )?;
    let test = common::first_images(&digits.test, digits.test.len(), &args.device)?;
    let means = model.posterior(&test.images, false)?.mean().clone(); // [n, 2]
    pictures::latent_scatter(
        &common::points_2d(&means)?,
        common::labels_of(&digits.test)?,
        args.out.join("latent_scatter.png"),
        "test digits: posterior means under a mixture prior",
    )?;

    // A fresh model (other initial weights) takes the saved ones in one call.
    let reloaded = build(&args.device, args.seed().wrapping_add(1))?;
    reloaded.load_weights(&saved)?;
    let originals = test.images.narrow(0, 0, test.indices.len().min(64))?;
    let a = model
        .reconstruct(&originals, Condition::None)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let b = reloaded
        .reconstruct(&originals, Condition::None)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if a.iter().zip(&b).any(|(x, y)| x.to_bits() != y.to_bits()) {
        return Err(Error::config(
            "reload",
            "the reloaded model reconstructs differently from the trained one",
        ));
    }
    println!(
        "reloaded {} into a fresh model: the same reconstructions, bit for bit",
        saved.display()
    );
    println!(
        "pictures, history and checkpoints in {}",
        args.out.display()
    );
    Ok(())
}
