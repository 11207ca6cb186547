//! vaekit: autoencoder building blocks on candle.
#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod train;

pub use error::{Error, Result};
pub mod latent;
pub mod losses;
pub mod models;
pub mod nets;
pub mod params;
