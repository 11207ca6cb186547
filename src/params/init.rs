//! Initialisation schemes: which distribution each layer's weights start from.

use candle_nn::Init;
use serde::{Deserialize, Serialize};

/// How a layer's parameters are initialised.
///
/// The two schemes are those of the frameworks the tutorials were written in, so a
/// preset starts from the same distribution as its tutorial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InitScheme {
    /// PyTorch's defaults: weights and biases `U(−1/√fan_in, 1/√fan_in)`, where a
    /// transposed convolution takes its fan-in from the weight's second dimension
    /// (`out_channels · k · k`), as PyTorch does.
    #[default]
    PyTorch,
    /// Keras/TensorFlow's defaults: weights Glorot-uniform,
    /// `U(±√(6 / (fan_in + fan_out)))`, biases zero.
    GlorotUniform,
}

impl InitScheme {
    /// The weight and bias initialisers for a layer with the given fans.
    ///
    /// `torch_fan_in` is the fan-in PyTorch computes for the layer (different from
    /// the true fan-in only for transposed convolutions).
    pub(crate) fn hints(self, fan_in: usize, fan_out: usize, torch_fan_in: usize) -> (Init, Init) {
        match self {
            InitScheme::PyTorch => {
                let bound = 1.0 / (torch_fan_in.max(1) as f64).sqrt();
                let u = Init::Uniform {
                    lo: -bound,
                    up: bound,
                };
                (u, u)
            }
            InitScheme::GlorotUniform => {
                let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
                (
                    Init::Uniform {
                        lo: -limit,
                        up: limit,
                    },
                    Init::Const(0.0),
                )
            }
        }
    }
}
