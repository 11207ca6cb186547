//! vaekit's error type for construction, validation, data and file I/O.
//!
//! Forward and loss code returns [`candle_core::Result`] (candle's traits demand
//! it); everything a user configures or loads returns [`Result`] with this
//! [`Error`], whose messages name the field, tensor or file at fault.

use std::path::PathBuf;

/// Everything that can go wrong outside a forward pass.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value that cannot work; `field` names it.
    #[error("invalid config `{field}`: {reason}")]
    Config {
        /// Dotted path of the offending field, e.g. `encoder.latent_dim`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor in a checkpoint is missing, or has the wrong shape or dtype.
    #[error("checkpoint tensor `{name}`: {reason}")]
    Tensor {
        /// The parameter name, e.g. `encoder.blocks.0.conv.weight`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint file that cannot be read as a vaekit checkpoint.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A PyTorch `state_dict` that does not fit the model it is imported into:
    /// the report names every tensor that is missing, unused or of the wrong
    /// shape (see [`crate::params::import_state_dict`]).
    #[error("state_dict {path}: {report}")]
    StateDict {
        /// The file.
        path: PathBuf,
        /// Every tensor that does not fit.
        report: Box<crate::params::ImportReport>,
    },
    /// A data file (IDX images or labels) that cannot be used.
    #[error("data file {path}: {reason}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Training stopped because a loss term was not finite.
    #[error("non-finite loss at epoch {epoch}, step {step}: `{term}` = {value}")]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The loss term that went non-finite.
        term: String,
        /// Its value.
        value: f64,
    },
    /// A device that cannot be used (e.g. `cuda` without the feature).
    #[error("device: {0}")]
    Device(String),
    /// An operating-system I/O error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error raised by candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with vaekit's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A [`Error::Config`] for `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A [`Error::Tensor`] for the parameter `name`.
    pub fn tensor(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Tensor {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// A [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
