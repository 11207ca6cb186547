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
//! | [`train`] | the trainer and PyTorch-exact optimizers (Adam, AdamW, SGD, RMSprop) |
//! | [`params`] | seeded initialisation and safetensors checkpoints |
//!
//! ## Example
//!
//! Build the dense VAE, run a batch of real digits through it, and take one
//! optimizer step:
//!
//! ```
//! use candle_core::Device;
//! use rand::SeedableRng;
//! use vaekit::data::{LastBatch, Mnist, Shuffle};
//! use vaekit::models::{Model, Preset};
//! use vaekit::train::OptimizerConfig;
//!
//! let device = Device::Cpu;
//! let digits = Mnist::bundled()?;
//! let model = Model::from_preset(Preset::DenseVae, &device, 42)?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
//! let batch = digits
//!     .train
//!     .batches(128, Shuffle::Seeded(&mut rng), LastBatch::Keep, &device)?
//!     .next()
//!     .expect("8,000 digits make at least one batch")?;
//!
//! let loss = model.loss(&batch.images, Some(&batch.labels), &mut rng, true)?;
//! let mut optimizer = OptimizerConfig::default().build(model.params().trainable_vars())?;
//! optimizer.backward_step(&loss.total)?;
//! assert_eq!(loss.terms[0].0, "reconstruction");
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
pub mod error;
pub mod latent;
pub mod losses;
pub mod models;
pub mod nets;
pub mod params;
#[cfg(feature = "pictures")]
pub mod pictures;
pub mod train;

pub use device::device_from_name;
pub use error::{Error, Result};
