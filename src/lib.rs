//! # vaekit
//!
//! Autoencoder building blocks on [candle](https://github.com/huggingface/candle):
//! pick or assemble an [`Encoder`](nets::Encoder), a [`Decoder`](nets::Decoder)
//! and a [`LatentPrior`](latent::LatentPrior), train on your images on the CPU or
//! CUDA, and get the numbers and pictures that tell you how the model does.
//!
//! The five tutorial architectures vaekit grew from are [`Preset`](models::Preset)s:
//! the TensorFlow CVAE with its Monte Carlo ELBO, the PyTorch conv VAE with batch
//! norm, the dense VAE with a 2-D latent, the digit-conditioned VAE, and the
//! convolutional autoencoder. Each matches its PyTorch equivalent to 1e-4 in
//! outputs, loss terms and gradients (see `tests/parity.rs`).
//!
//! | module | what it holds |
//! |---|---|
//! | [`nets`] | the `Encoder`/`Decoder` traits; dense and conv networks |
//! | [`latent`] | the diagonal-Gaussian posterior; `LatentPrior` and its priors |
//! | [`losses`] | BCE (logits, probabilities), MSE, Gaussian NLL, KL, ELBO |
//! | [`models`] | autoencoder, VAE, digit-conditioned VAE; configs, presets, save/load |
//! | [`data`] | IDX reader, datasets, seeded batches, the bundled MNIST digits |
//! | [`train`] | the trainer, β schedules, input corruption, PyTorch-exact optimizers (Adam, AdamW, SGD, RMSprop) |
//! | [`eval`] | importance-sampled log-likelihood, KL per dimension, active units, traversals |
//! | [`params`] | seeded initialisation, safetensors checkpoints, PyTorch `state_dict` import |
//! | [`memory`] | the system allocator tuned for candle's per-step buffers |
//!
//! ## Example
//!
//! Build the dense VAE, run a batch of real digits through it, and take one
//! optimizer step:
//!
//! ```
//! use vaekit::prelude::*;
//! use vaekit::train::OptimizerConfig;
//!
//! let device = Device::Cpu;
//! let digits = Mnist::bundled()?;
//! let model = Model::from_preset(Preset::DenseVae, &device, 42)?;
//! let mut rng = Generator::seed_from_u64(42);
//! let batch = digits
//!     .train
//!     .batches(128, Shuffle::Seeded(&mut rng), LastBatch::Keep, &device)?
//!     .next()
//!     .expect("8,000 digits make at least one batch")?;
//!
//! let loss = model.batch_loss(&batch, &mut rng, &StepContext::train())?;
//! let mut optimizer = OptimizerConfig::default().build(model.params().trainable_vars())?;
//! optimizer.backward_step(&loss.total)?;
//! assert_eq!(loss.terms[0].name, "reconstruction");
//! assert!(loss.total.to_scalar::<f32>()?.is_finite());
//! # Ok::<(), vaekit::Error>(())
//! ```
//!
//! Training end to end is [`train::Trainer`]; the `examples/` folder has one
//! runnable program per tutorial.
//!
//! ## Features
//!
//! - `bundled-mnist` (default): 10,000 real MNIST digits embedded in the crate.
//! - `cuda`, `cudnn`: candle's CUDA back end.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod data;
pub mod device;
mod difference;
pub mod error;
pub mod eval;
pub mod kernels;
pub mod latent;
pub mod losses;
pub mod memory;
pub mod models;
pub mod nets;
pub mod params;
#[cfg(feature = "pictures")]
pub mod pictures;
mod setters;
mod tagged;
pub mod train;

/// The README's code blocks, compiled as doctests: its dependency lines
/// (`vaekit` alone) must be enough for every block.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use device::device_from_name;
pub use error::{Error, Result};

/// candle's tensor library, re-exported so a user needs no separate dependency.
pub use candle_core;
/// candle's layers and `VarBuilder`, re-exported for writing your own encoder or
/// decoder.
pub use candle_nn;
/// The random-number traits (`SeedableRng`, `RngCore`, …) of the version vaekit
/// uses: a generator passed to vaekit must implement these.
pub use rand;

/// The seeded generator vaekit draws every random number from (ChaCha with 8
/// rounds): `Generator::seed_from_u64(seed)`.
pub type Generator = rand_chacha::ChaCha8Rng;

/// What most programs need, in one `use vaekit::prelude::*;`.
pub mod prelude {
    pub use crate::candle_core::{DType, Device, Module, ModuleT, Tensor};
    pub use crate::candle_nn::VarBuilder;
    pub use crate::data::{Batch, Dataset, LastBatch, Mnist, Shuffle};
    pub use crate::latent::{
        DiagonalGaussian, GaussianMixturePrior, LatentPrior, PosteriorParam, PriorConfig,
        StandardNormal, VampPrior,
    };
    pub use crate::models::{
        AnyModel, Autoencoder, ClassConditioning, Condition, KlEstimator, Likelihood, LossTerms,
        Mode, Model, ModelConfig, Per, Preset, StepContext, Term, Trainable, TrainableExt, Vae,
        VaeLossConfig,
    };
    pub use crate::nets::{
        ConvDecoder, ConvDecoderConfig, ConvEncoder, ConvEncoderConfig, Decoder, DenseDecoder,
        DenseDecoderConfig, DenseEncoder, DenseEncoderConfig, Encoder, ImageShape, OutputKind,
    };
    pub use crate::params::ParamStore;
    pub use crate::rand::{RngCore, SeedableRng};
    pub use crate::train::{TrainConfig, Trainer};
    pub use crate::{Error, Generator, Result};
}
