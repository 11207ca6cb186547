//! A multi-layer perceptron: hidden linear layers with one activation, then a
//! linear output layer.

use candle_core::{Result, Tensor};
use candle_nn::{Module, VarBuilder};
use serde::{Deserialize, Serialize};

use super::checks::at_most;
use super::layers::{linear, Linear};
use super::{Activation, MAX_WIDTH};
use crate::params::InitScheme;
use crate::{Error, Result as VResult};

/// Layout of an [`Mlp`]: `in_dim → hidden[0] → … → out_dim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MlpConfig {
    /// Input width.
    pub in_dim: usize,
    /// Widths of the hidden layers (may be empty).
    pub hidden: Vec<usize>,
    /// Output width.
    pub out_dim: usize,
    /// Activation after each hidden layer.
    pub activation: Activation,
    /// Activation after the output layer.
    pub out_activation: Activation,
    /// How the weights start.
    pub init: InitScheme,
}

crate::setters::with_setters!(MlpConfig {
    with_in_dim(in_dim: usize),
    with_hidden(hidden: Vec<usize>),
    with_out_dim(out_dim: usize),
    with_activation(activation: Activation),
    with_out_activation(out_activation: Activation),
    with_init(init: InitScheme),
});

impl MlpConfig {
    /// A perceptron from `in_dim` through ReLU hidden layers of widths `hidden`
    /// to a linear output of `out_dim`, with PyTorch's initialisation.
    pub fn new(in_dim: usize, hidden: &[usize], out_dim: usize) -> Self {
        Self {
            in_dim,
            hidden: hidden.to_vec(),
            out_dim,
            activation: Activation::Relu,
            out_activation: Activation::Identity,
            init: InitScheme::PyTorch,
        }
    }

    /// Checks every width is positive; `field` prefixes the field names in errors.
    pub fn validate(&self, field: &str) -> VResult<()> {
        if self.in_dim == 0 {
            return Err(Error::config(format!("{field}.in_dim"), "must be positive"));
        }
        at_most(self.in_dim, MAX_WIDTH, &format!("{field}.in_dim"))?;
        at_most(self.out_dim, MAX_WIDTH, &format!("{field}.out_dim"))?;
        for (i, &h) in self.hidden.iter().enumerate() {
            at_most(h, MAX_WIDTH, &format!("{field}.hidden[{i}]"))?;
        }
        if self.out_dim == 0 {
            return Err(Error::config(
                format!("{field}.out_dim"),
                "must be positive",
            ));
        }
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            return Err(Error::config(
                format!("{field}.hidden[{i}]"),
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// A multi-layer perceptron with parameters `hidden.{i}.*` and `out.*`.
#[derive(Debug, Clone)]
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
    activation: Activation,
    out_activation: Activation,
    in_dim: usize,
    out_dim: usize,
}

/// Builds an [`Mlp`] from `config`, creating its weights in `vb`.
pub fn mlp(config: &MlpConfig, vb: VarBuilder) -> Result<Mlp> {
    let mut hidden = Vec::with_capacity(config.hidden.len());
    let mut width = config.in_dim;
    for (i, &h) in config.hidden.iter().enumerate() {
        hidden.push(linear(width, h, config.init, vb.pp("hidden").pp(i))?);
        width = h;
    }
    let out = linear(width, config.out_dim, config.init, vb.pp("out"))?;
    Ok(Mlp {
        hidden,
        out,
        activation: config.activation,
        out_activation: config.out_activation,
        in_dim: config.in_dim,
        out_dim: config.out_dim,
    })
}

impl Mlp {
    /// Builds an MLP from `config`, creating its weights in `vb`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a zero width.
    pub fn new(config: &MlpConfig, vb: VarBuilder) -> VResult<Self> {
        config.validate("mlp")?;
        Ok(mlp(config, vb)?)
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

impl Mlp {
    /// Every tensor, by its name under the MLP's path (`hidden.{i}.weight|bias`,
    /// `out.weight|bias`).
    pub(crate) fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, layer) in self.hidden.iter().enumerate() {
            out.extend(layer.named_tensors(&format!("hidden.{i}")));
        }
        out.extend(self.out.named_tensors("out"));
        out
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match xs.dims() {
            [_, d] if *d == self.in_dim => {}
            dims => candle_core::bail!("mlp: expected [batch, {}], got {dims:?}", self.in_dim),
        }
        let mut h = xs.clone();
        for layer in &self.hidden {
            h = self.activation.apply(&layer.forward(&h)?)?; // [batch, hidden_i]
        }
        self.out_activation.apply(&self.out.forward(&h)?) // [batch, out_dim]
    }
}
