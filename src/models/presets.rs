//! The tutorials' architectures as named presets with their defaults.
//!
//! | preset | tutorial | model |
//! |---|---|---|
//! | `cvae-tf` | TensorFlow 2 CVAE | conv VAE, logits, latent 2, Monte Carlo ELBO, Glorot init |
//! | `conv-vae-bn` | PyTorch CVAE | conv VAE with batch norm, sigmoid, latent 32, PyTorch init |
//! | `dense-vae` | TF1 dense VAE | 784→256→2, linear output, `0.5·Σ(x̂−x)²` + KL |
//! | `digit-cvae` | digit-conditioned VAE | dense 128 sigmoid, z 10, classifier, σ = 0.5 |
//! | `conv-ae` | Keras conv autoencoder | 8-filter convs, up-sampling decoder, code 10, MSE |
//! | `conv-ae-2d` | Keras conv autoencoder | the same with a 2-D code |
//!
//! [`vanilla_vae`] builds PyTorch-VAE's `VanillaVAE` for colour images of 32×32,
//! 64×64 or any multiple of 32 a side; [`vq_vae`] the VQ-VAE of van den Oord
//! et al. (2017) for any image whose sides are multiples of 4, with
//! [`vq_vae_digits`] (28×28 grey) and [`vq_vae_colour`] (32×32 RGB) as its
//! two presets; [`gumbel_vae_digits`] the categorical VAE of Jang et al.
//! (2017). They are functions rather than [`Preset`]s, which are the MNIST
//! tutorials, each with a whole-model PyTorch fixture.
//!
//! Parameter names follow each preset's PyTorch equivalent in
//! `tests/fixtures/make_fixtures.py`; `docs/architecture.md` maps them to the
//! tutorials' own layer names.

use serde::{Deserialize, Serialize};

use crate::losses::Reduction;
use crate::nets::{
    Activation, ConvBlockConfig, ConvDecoderConfig, ConvEncoderConfig, DenseDecoderConfig,
    DenseEncoderConfig, ImageShape, MlpConfig, Norm, OutputKind, ResidualDecoderConfig,
    ResidualEncoderConfig, ResidualStackConfig, UpBlockConfig, Upsampling,
};
use crate::params::InitScheme;
use crate::{Error, Result};

use super::autoencoder::{AeLoss, AeLossConfig};
use super::conditioning::Conditioning;
use super::config::{
    AutoencoderConfig, ConditioningConfig, DecoderConfig, EncoderConfig, GumbelVaeConfig,
    ModelConfig, VaeConfig, VqVaeConfig,
};
use super::gumbel_vae::{CategoricalLatentConfig, GumbelLossConfig};
use super::vq_vae::VqLossConfig;
use crate::latent::{
    CodebookUpdate, EmaConfig, PosteriorParam, PriorConfig, QuantizerConfig, RestartConfig,
};
use crate::losses::{KlEstimator, Likelihood, VaeLossConfig};

/// A tutorial architecture with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Preset {
    /// The TensorFlow CVAE tutorial.
    CvaeTf,
    /// The PyTorch conv VAE with batch norm.
    ConvVaeBn,
    /// The TF1 dense VAE with a 2-D latent.
    DenseVae,
    /// The digit-conditioned VAE.
    DigitCvae,
    /// The Keras convolutional autoencoder (code 10).
    ConvAe,
    /// The Keras convolutional autoencoder with a 2-D code.
    ConvAe2d,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 6] = [
        Preset::CvaeTf,
        Preset::ConvVaeBn,
        Preset::DenseVae,
        Preset::DigitCvae,
        Preset::ConvAe,
        Preset::ConvAe2d,
    ];

    /// The preset's name, as accepted by [`str::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Preset::CvaeTf => "cvae-tf",
            Preset::ConvVaeBn => "conv-vae-bn",
            Preset::DenseVae => "dense-vae",
            Preset::DigitCvae => "digit-cvae",
            Preset::ConvAe => "conv-ae",
            Preset::ConvAe2d => "conv-ae-2d",
        }
    }

    /// The preset's model config, for MNIST-sized images.
    pub fn config(self) -> ModelConfig {
        match self {
            Preset::CvaeTf => cvae_tf(2),
            Preset::ConvVaeBn => conv_vae_bn(32),
            Preset::DenseVae => dense_vae(2),
            Preset::DigitCvae => digit_cvae(10, Conditioning::Predicted),
            Preset::ConvAe => conv_ae(10),
            Preset::ConvAe2d => conv_ae(2),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                Error::config(
                    "preset",
                    format!("unknown preset `{s}`; expected one of {}", names.join(", ")),
                )
            })
    }
}

const MNIST: ImageShape = ImageShape::MNIST;

fn conv(
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    norm: Norm,
    activation: Activation,
) -> ConvBlockConfig {
    ConvBlockConfig::new(out_channels, kernel, stride, padding)
        .with_norm(norm)
        .with_activation(activation)
}

fn up(
    upsampling: Upsampling,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    activation: Activation,
) -> UpBlockConfig {
    UpBlockConfig::new(upsampling, out_channels, kernel, stride, padding)
        .with_activation(activation)
}

/// The TensorFlow CVAE: Conv(32,3,s2)+ReLU, Conv(64,3,s2)+ReLU, Dense(2·latent);
/// Dense(7·7·32)+ReLU, ConvT(64,3,s2)+ReLU, ConvT(32,3,s2)+ReLU, ConvT(1,3,s1)
/// giving logits; single-sample Monte Carlo ELBO; Glorot-uniform init.
pub fn cvae_tf(latent_dim: usize) -> ModelConfig {
    use Activation::{Identity, Relu};
    let init = InitScheme::GlorotUniform;
    let t = Upsampling::Transposed { output_padding: 1 };
    ModelConfig::Vae(VaeConfig {
        latent_dim,
        encoder: EncoderConfig::Conv(ConvEncoderConfig {
            input: MNIST,
            blocks: vec![
                conv(32, 3, 2, 0, Norm::None, Relu),
                conv(64, 3, 2, 0, Norm::None, Relu),
            ],
            output_dim: 2 * latent_dim,
            init,
        }),
        decoder: DecoderConfig::Conv(ConvDecoderConfig {
            input_dim: latent_dim,
            start: ImageShape::new(32, 7, 7),
            fc_activation: Relu,
            blocks: vec![
                up(t, 64, 3, 2, 1, Relu),
                up(t, 32, 3, 2, 1, Relu),
                up(
                    Upsampling::Transposed { output_padding: 0 },
                    1,
                    3,
                    1,
                    1,
                    Identity,
                ),
            ],
            output: MNIST,
            output_kind: OutputKind::Logits,
            init,
        }),
        prior: PriorConfig::StandardNormal,
        posterior: PosteriorParam::LogVariance,
        loss: VaeLossConfig {
            likelihood: Likelihood::Bernoulli,
            kl: KlEstimator::SingleSample,
            beta: 1.0,
            reduction: Reduction::BatchMean,
            ..VaeLossConfig::default()
        },
        conditioning: None,
    })
}

/// The PyTorch conv VAE: Conv(64,4,s2,p1)+BN+LeakyReLU(0.2),
/// Conv(128,4,s2,p1)+BN+LeakyReLU, Conv(128,3,s1,p1)+BN+LeakyReLU,
/// Linear(6272→2·latent); Linear(latent→6272), ConvT(64,4,s2,p1)+ReLU,
/// ConvT(1,4,s2,p1)+Sigmoid; BCE (sum) + analytic KL; PyTorch init.
pub fn conv_vae_bn(latent_dim: usize) -> ModelConfig {
    use Activation::{Identity, LeakyRelu, Relu};
    let init = InitScheme::PyTorch;
    let t = Upsampling::Transposed { output_padding: 0 };
    let lrelu = LeakyRelu(0.2);
    ModelConfig::Vae(VaeConfig {
        latent_dim,
        encoder: EncoderConfig::Conv(ConvEncoderConfig {
            input: MNIST,
            blocks: vec![
                conv(64, 4, 2, 1, Norm::Batch, lrelu),
                conv(128, 4, 2, 1, Norm::Batch, lrelu),
                conv(128, 3, 1, 1, Norm::Batch, lrelu),
            ],
            output_dim: 2 * latent_dim,
            init,
        }),
        decoder: DecoderConfig::Conv(ConvDecoderConfig {
            input_dim: latent_dim,
            start: ImageShape::new(128, 7, 7),
            fc_activation: Identity,
            blocks: vec![up(t, 64, 4, 2, 1, Relu), up(t, 1, 4, 2, 1, Identity)],
            output: MNIST,
            output_kind: OutputKind::Probabilities,
            init,
        }),
        prior: PriorConfig::StandardNormal,
        posterior: PosteriorParam::LogVariance,
        loss: VaeLossConfig {
            likelihood: Likelihood::Bernoulli,
            kl: KlEstimator::Analytic,
            beta: 1.0,
            reduction: Reduction::Sum,
            ..VaeLossConfig::default()
        },
        conditioning: None,
    })
}

/// The TF1 dense VAE: 784→256 ReLU→(mean, log σ²); latent→256 ReLU→784 linear;
/// loss `0.5·Σ(x̂ − x)²` + analytic KL, averaged over the batch; Glorot init.
pub fn dense_vae(latent_dim: usize) -> ModelConfig {
    let init = InitScheme::GlorotUniform;
    ModelConfig::Vae(VaeConfig {
        latent_dim,
        encoder: EncoderConfig::Dense(DenseEncoderConfig {
            input: MNIST,
            hidden: vec![256],
            activation: Activation::Relu,
            output_dim: 2 * latent_dim,
            init,
        }),
        decoder: DecoderConfig::Dense(DenseDecoderConfig {
            input_dim: latent_dim,
            hidden: vec![256],
            activation: Activation::Relu,
            output: MNIST,
            output_kind: OutputKind::Linear,
            init,
        }),
        prior: PriorConfig::StandardNormal,
        posterior: PosteriorParam::LogVariance,
        loss: VaeLossConfig {
            likelihood: Likelihood::SquaredError { scale: 0.5 },
            kl: KlEstimator::Analytic,
            beta: 1.0,
            reduction: Reduction::BatchMean,
            ..VaeLossConfig::default()
        },
        conditioning: None,
    })
}

/// The digit-conditioned VAE: dense 128-unit sigmoid encoder, decoder and
/// classifier; variance `1e-5 + exp(·)`; decoder input `[z | class vector]`;
/// Gaussian likelihood with σ = 0.5; classifier weight 10; Glorot init.
pub fn digit_cvae(latent_dim: usize, conditioning: Conditioning) -> ModelConfig {
    let init = InitScheme::GlorotUniform;
    let classes = 10;
    ModelConfig::Vae(VaeConfig {
        latent_dim,
        encoder: EncoderConfig::Dense(DenseEncoderConfig {
            input: MNIST,
            hidden: vec![128],
            activation: Activation::Sigmoid,
            output_dim: 2 * latent_dim,
            init,
        }),
        decoder: DecoderConfig::Dense(DenseDecoderConfig {
            input_dim: latent_dim + classes,
            hidden: vec![128],
            activation: Activation::Sigmoid,
            output: MNIST,
            output_kind: OutputKind::Probabilities,
            init,
        }),
        prior: PriorConfig::StandardNormal,
        posterior: PosteriorParam::ExpWithFloor { floor: 1e-5 },
        loss: VaeLossConfig {
            likelihood: Likelihood::Gaussian { sigma: 0.5 },
            kl: KlEstimator::Analytic,
            beta: 1.0,
            reduction: Reduction::BatchMean,
            ..VaeLossConfig::default()
        },
        conditioning: Some(ConditioningConfig::classes(
            conditioning,
            classes,
            MlpConfig {
                in_dim: MNIST.numel(),
                hidden: vec![128],
                out_dim: classes,
                activation: Activation::Sigmoid,
                out_activation: Activation::Identity,
                init,
            },
            10.0,
        )),
    })
}

/// The Keras conv autoencoder: Conv(8,3,s2), Conv(8,3,s1), Conv(8,3,s2),
/// Conv(8,3,s1), all ReLU, Dense(code); Dense(7·7·64)+ReLU, Conv(64)+ReLU,
/// up-sample 2×, Conv(32)+ReLU, up-sample 2×, Conv(1)+sigmoid; MSE; Glorot init.
pub fn conv_ae(latent_dim: usize) -> ModelConfig {
    use Activation::{Identity, Relu};
    let init = InitScheme::GlorotUniform;
    let near = Upsampling::NearestConv { scale: 2 };
    ModelConfig::Autoencoder(AutoencoderConfig {
        latent_dim,
        encoder: EncoderConfig::Conv(ConvEncoderConfig {
            input: MNIST,
            blocks: vec![
                conv(8, 3, 2, 1, Norm::None, Relu),
                conv(8, 3, 1, 1, Norm::None, Relu),
                conv(8, 3, 2, 1, Norm::None, Relu),
                conv(8, 3, 1, 1, Norm::None, Relu),
            ],
            output_dim: latent_dim,
            init,
        }),
        decoder: DecoderConfig::Conv(ConvDecoderConfig {
            input_dim: latent_dim,
            start: ImageShape::new(64, 7, 7),
            fc_activation: Relu,
            blocks: vec![
                up(Upsampling::Conv, 64, 3, 1, 1, Relu),
                up(near, 32, 3, 1, 1, Relu),
                up(near, 1, 3, 1, 1, Identity),
            ],
            output: MNIST,
            output_kind: OutputKind::Probabilities,
            init,
        }),
        loss: AeLossConfig {
            loss: AeLoss::Mse,
            reduction: Reduction::Mean,
        },
    })
}

/// PyTorch-VAE's `VanillaVAE` for colour (or grey) images of `image` — 32×32
/// and 64×64 RGB are its usual sizes; any height and width that are multiples
/// of 32 work. Encoder: five Conv(k3, s2, p1) + BN + LeakyReLU(0.01) blocks of
/// 32, 64, 128, 256 and 512 channels (each halving the size), Linear to
/// `2 · latent` (μ rows over log σ² rows). Decoder: Linear(latent → 512 ·
/// h/32 · w/32), four ConvT(k3, s2, p1, output padding 1) + BN + LeakyReLU
/// blocks of 256, 128, 64 and 32 channels, the final ConvT(32) + BN + LeakyReLU,
/// and Conv(k3, p1) to the image's channels giving logits. PyTorch init,
/// standard-normal prior, analytic KL, per-image sums averaged over the batch.
///
/// `likelihood` is [`Likelihood::Bernoulli`] (binary cross-entropy on the
/// logits, the usual choice for pixels in `[0, 1]`) or
/// [`Likelihood::Gaussian`] around `sigmoid(logits)`; PyTorch-VAE's own loss
/// is a mean squared error on `tanh` outputs in `[−1, 1]`, which vaekit's
/// `[0, 1]` pixels replace. The original's latent is 128.
///
/// Not one of the [`Preset`]s, which are MNIST-sized tutorials.
///
/// ```
/// use vaekit::models::{presets::vanilla_vae, Likelihood, Model};
/// use vaekit::nets::ImageShape;
///
/// let config = vanilla_vae(ImageShape::new(3, 64, 64), 128, Likelihood::Bernoulli)?;
/// let model = Model::new(&config, &candle_core::Device::Cpu, 0)?;
/// assert_eq!(model.input_shape(), ImageShape::new(3, 64, 64));
/// # Ok::<(), vaekit::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Config`] if `image` has no channel, or a side that is not a
/// positive multiple of 32, or `latent_dim` is 0.
pub fn vanilla_vae(
    image: ImageShape,
    latent_dim: usize,
    likelihood: Likelihood,
) -> Result<ModelConfig> {
    use Activation::{Identity, LeakyRelu};
    const HIDDEN: [usize; 5] = [32, 64, 128, 256, 512];
    let side = |n: usize| n > 0 && n.is_multiple_of(32);
    if image.channels == 0 || !side(image.height) || !side(image.width) {
        return Err(Error::config(
            "image",
            format!(
                "{}×{}×{}: the VanillaVAE halves each side five times, so it needs a channel and sides that are positive multiples of 32",
                image.channels, image.height, image.width
            ),
        ));
    }
    if latent_dim == 0 {
        return Err(Error::config("latent_dim", "must be positive"));
    }
    let init = InitScheme::PyTorch;
    let lrelu = LeakyRelu(0.01);
    let transposed = |out_channels| UpBlockConfig {
        upsampling: Upsampling::Transposed { output_padding: 1 },
        out_channels,
        kernel: 3,
        stride: 2,
        padding: 1,
        norm: Norm::Batch,
        activation: lrelu,
    };
    let mut blocks: Vec<UpBlockConfig> = HIDDEN[..4].iter().rev().map(|&c| transposed(c)).collect();
    blocks.push(transposed(HIDDEN[0]));
    blocks.push(UpBlockConfig {
        upsampling: Upsampling::Conv,
        out_channels: image.channels,
        kernel: 3,
        stride: 1,
        padding: 1,
        norm: Norm::None,
        activation: Identity,
    });
    Ok(ModelConfig::Vae(VaeConfig {
        latent_dim,
        encoder: EncoderConfig::Conv(ConvEncoderConfig {
            input: image,
            blocks: HIDDEN
                .iter()
                .map(|&c| conv(c, 3, 2, 1, Norm::Batch, lrelu))
                .collect(),
            output_dim: 2 * latent_dim,
            init,
        }),
        decoder: DecoderConfig::Conv(ConvDecoderConfig {
            input_dim: latent_dim,
            start: ImageShape::new(HIDDEN[4], image.height / 32, image.width / 32),
            fc_activation: Identity,
            blocks,
            output: image,
            output_kind: OutputKind::Logits,
            init,
        }),
        prior: PriorConfig::StandardNormal,
        posterior: PosteriorParam::LogVariance,
        loss: VaeLossConfig {
            likelihood,
            kl: KlEstimator::Analytic,
            beta: 1.0,
            reduction: Reduction::BatchMean,
            ..VaeLossConfig::default()
        },
        conditioning: None,
    }))
}

/// The VQ-VAE of van den Oord et al. (2017) for `image` (sides multiples of
/// 4), as its reference implementations build it: the encoder is
/// Conv(`hidden`/2, 4, s2, p1) + ReLU, Conv(`hidden`, 4, s2, p1) + ReLU,
/// Conv(`hidden`, 3, p1), two residual blocks (ReLU, 3×3 conv to
/// `residual_hidden`, ReLU, 1×1 conv back, added), a ReLU, and a 1×1
/// convolution to `code_dim` channels: an `h/4 × w/4` map of code vectors.
/// The quantiser has `codes` codes learned by moving averages (decay 0.99,
/// ε = 1e-5) with restarts of dead codes (threshold 1). The decoder mirrors
/// the encoder: 3×3 conv to `hidden`, two residual blocks, a ReLU,
/// ConvT(`hidden`/2, 4, s2, p1) + ReLU, ConvT(channels, 4, s2, p1) giving
/// linear values. The loss is their mean squared error plus `0.25 ·` the
/// commitment loss, both means over values. PyTorch init.
///
/// ```
/// use vaekit::models::{presets::vq_vae, Model};
/// use vaekit::nets::ImageShape;
///
/// let config = vq_vae(ImageShape::new(3, 32, 32), 128, 32, 512, 64)?;
/// let model = Model::new(&config, &candle_core::Device::Cpu, 0)?;
/// assert_eq!(model.latent_dim(), 64 * 8 * 8);
/// # Ok::<(), vaekit::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Config`] if `image` has no channel or a side that is not a
/// positive multiple of 4, or a width or count is 0.
pub fn vq_vae(
    image: ImageShape,
    hidden: usize,
    residual_hidden: usize,
    codes: usize,
    code_dim: usize,
) -> Result<ModelConfig> {
    let side = |n: usize| n > 0 && n.is_multiple_of(4);
    if image.channels == 0 || !side(image.height) || !side(image.width) {
        return Err(Error::config(
            "image",
            format!(
                "{image}: the VQ-VAE halves each side twice, so it needs a channel and sides that are positive multiples of 4"
            ),
        ));
    }
    for (v, field) in [
        (hidden, "hidden"),
        (residual_hidden, "residual_hidden"),
        (codes, "codes"),
        (code_dim, "code_dim"),
    ] {
        if v == 0 {
            return Err(Error::config(field, "must be positive"));
        }
    }
    Ok(vq_vae_unchecked(
        image,
        hidden,
        residual_hidden,
        codes,
        code_dim,
    ))
}

/// [`vq_vae`] without its checks (the model's constructors make them again).
fn vq_vae_unchecked(
    image: ImageShape,
    hidden: usize,
    residual_hidden: usize,
    codes: usize,
    code_dim: usize,
) -> ModelConfig {
    use Activation::{Identity, Relu};
    let half = hidden.div_ceil(2);
    let init = InitScheme::PyTorch;
    let residual = ResidualStackConfig::new(2, residual_hidden);
    let transposed = Upsampling::Transposed { output_padding: 0 };
    ModelConfig::VqVae(VqVaeConfig {
        encoder: EncoderConfig::Residual(ResidualEncoderConfig {
            input: image,
            blocks: vec![
                conv(half, 4, 2, 1, Norm::None, Relu),
                conv(hidden, 4, 2, 1, Norm::None, Relu),
                conv(hidden, 3, 1, 1, Norm::None, Identity),
            ],
            residual,
            latent_channels: code_dim,
            init,
        }),
        decoder: DecoderConfig::Residual(ResidualDecoderConfig {
            start: ImageShape::new(code_dim, image.height / 4, image.width / 4),
            channels: hidden,
            residual,
            blocks: vec![
                up(transposed, half, 4, 2, 1, Relu),
                up(transposed, image.channels, 4, 2, 1, Identity),
            ],
            output: image,
            output_kind: OutputKind::Linear,
            init,
        }),
        quantizer: QuantizerConfig {
            codes,
            code_dim,
            update: CodebookUpdate::Ema(EmaConfig::default()),
            restart: Some(RestartConfig::default()),
        },
        loss: VqLossConfig::default(),
    })
}

/// [`vq_vae`] for 28×28 grey digits: 64 hidden channels, 32 in the residual
/// blocks, 128 codes of width 16 on a 7×7 grid.
pub fn vq_vae_digits() -> ModelConfig {
    vq_vae_unchecked(MNIST, 64, 32, 128, 16)
}

/// [`vq_vae`] for 32×32 colour images, the reference implementation's
/// CIFAR-10 model: 128 hidden channels, 32 in the residual blocks, 512 codes
/// of width 64 on an 8×8 grid.
pub fn vq_vae_colour() -> ModelConfig {
    vq_vae_unchecked(ImageShape::new(3, 32, 32), 128, 32, 512, 64)
}

/// The categorical VAE of Jang et al. (2017) for 28×28 digits: 30 categorical
/// variables of 10 classes; a dense encoder 784 → 512 → 256 → 300 logits and
/// decoder 300 → 256 → 512 → 784 Bernoulli logits, ReLU, PyTorch init; the
/// relaxed Gumbel-softmax sample at τ = max(0.5, exp(−1e-4 · step)); binary
/// cross-entropy plus the KL to the uniform categorical, summed per image and
/// averaged over the batch.
pub fn gumbel_vae_digits() -> ModelConfig {
    let latent = CategoricalLatentConfig::new(30, 10);
    let width = latent.width();
    let init = InitScheme::PyTorch;
    ModelConfig::GumbelVae(GumbelVaeConfig {
        latent,
        encoder: EncoderConfig::Dense(DenseEncoderConfig {
            input: MNIST,
            hidden: vec![512, 256],
            activation: Activation::Relu,
            output_dim: width,
            init,
        }),
        decoder: DecoderConfig::Dense(DenseDecoderConfig {
            input_dim: width,
            hidden: vec![256, 512],
            activation: Activation::Relu,
            output: MNIST,
            output_kind: OutputKind::Logits,
            init,
        }),
        loss: GumbelLossConfig::default(),
    })
}
