//! [`OptimizerConfig`]: one optimizer and its hyper-parameters, as serde data.

use super::*;

/// One of vaekit's optimizers with its hyper-parameters, for training configurations.
///
/// In JSON the optimizer is named by a `kind` field beside its parameters; missing parameters
/// take PyTorch's defaults and unknown ones are rejected:
///
/// ```
/// use vaekit::train::optim::{OptimizerConfig, SgdParams};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config: OptimizerConfig =
///     serde_json::from_str(r#"{"kind": "sgd", "lr": 0.1, "momentum": 0.9}"#)?;
/// assert_eq!(
///     config,
///     OptimizerConfig::Sgd(SgdParams::default().with_lr(0.1).with_momentum(0.9))
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum OptimizerConfig {
    /// [`Adam`] (`"kind": "adam"`).
    Adam(AdamParams),
    /// [`AdamW`] (`"kind": "adamw"`).
    AdamW(AdamWParams),
    /// [`Sgd`] (`"kind": "sgd"`).
    Sgd(SgdParams),
    /// [`Rmsprop`] (`"kind": "rmsprop"`).
    Rmsprop(RmspropParams),
}

crate::tagged::tagged_deserialize!(OptimizerConfig, "kind", {
    "adam" => Adam(AdamParams),
    "adamw" => AdamW(AdamWParams),
    "sgd" => Sgd(SgdParams),
    "rmsprop" => Rmsprop(RmspropParams),
});

impl Default for OptimizerConfig {
    /// Adam with PyTorch's defaults (lr 1e-3, no weight decay).
    fn default() -> Self {
        OptimizerConfig::Adam(AdamParams::default())
    }
}

impl OptimizerConfig {
    /// Checks the hyper-parameters.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field that is out of range, e.g. `adamw.beta2`.
    pub fn validate(&self) -> Result<()> {
        match self {
            OptimizerConfig::Adam(p) => p.validate(),
            OptimizerConfig::AdamW(p) => p.validate(),
            OptimizerConfig::Sgd(p) => p.validate(),
            OptimizerConfig::Rmsprop(p) => p.validate(),
        }
    }

    /// The configured learning rate.
    pub fn learning_rate(&self) -> f64 {
        match self {
            OptimizerConfig::Adam(p) => p.lr,
            OptimizerConfig::AdamW(p) => p.lr,
            OptimizerConfig::Sgd(p) => p.lr,
            OptimizerConfig::Rmsprop(p) => p.lr,
        }
    }

    /// Builds the configured optimizer over `vars`.
    ///
    /// # Errors
    ///
    /// As the optimizer's `new_checked`: [`Error::Config`] naming an out-of-range field.
    pub fn build(&self, vars: Vec<Var>) -> Result<Box<dyn TrainOptimizer>> {
        Ok(match self {
            OptimizerConfig::Adam(p) => Box::new(Adam::new_checked(vars, p.clone())?),
            OptimizerConfig::AdamW(p) => Box::new(AdamW::new_checked(vars, p.clone())?),
            OptimizerConfig::Sgd(p) => Box::new(Sgd::new_checked(vars, p.clone())?),
            OptimizerConfig::Rmsprop(p) => Box::new(Rmsprop::new_checked(vars, p.clone())?),
        })
    }
}

impl From<AdamParams> for OptimizerConfig {
    fn from(params: AdamParams) -> Self {
        OptimizerConfig::Adam(params)
    }
}

impl From<AdamWParams> for OptimizerConfig {
    fn from(params: AdamWParams) -> Self {
        OptimizerConfig::AdamW(params)
    }
}

impl From<SgdParams> for OptimizerConfig {
    fn from(params: SgdParams) -> Self {
        OptimizerConfig::Sgd(params)
    }
}

impl From<RmspropParams> for OptimizerConfig {
    fn from(params: RmspropParams) -> Self {
        OptimizerConfig::Rmsprop(params)
    }
}
