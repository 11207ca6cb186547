//! The optimizers' hyper-parameters, with PyTorch's defaults, and their checks.

use super::*;

/// Hyper-parameters of [`Adam`] (`torch.optim.Adam`); `Default` gives PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AdamParams {
    /// Learning rate, > 0. Default 1e-3.
    pub lr: f64,
    /// Decay rate of the first-moment estimate, in [0, 1). Default 0.9.
    pub beta1: f64,
    /// Decay rate of the second-moment estimate, in [0, 1). Default 0.999.
    pub beta2: f64,
    /// Added to the denominator outside the square root, >= 0. Default 1e-8.
    pub eps: f64,
    /// L2 penalty added to the gradient (`g + weight_decay * θ`), >= 0. Default 0.
    pub weight_decay: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

crate::setters::with_setters!(AdamParams {
    with_lr(lr: f64),
    with_beta1(beta1: f64),
    with_beta2(beta2: f64),
    with_eps(eps: f64),
    with_weight_decay(weight_decay: f64),
});

impl AdamParams {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`adam.lr`, `adam.beta1`, …) that is out of range.
    pub fn validate(&self) -> Result<()> {
        check_lr("adam", self.lr)?;
        check_unit("adam", "beta1", self.beta1)?;
        check_unit("adam", "beta2", self.beta2)?;
        check_non_negative("adam", "eps", self.eps)?;
        check_non_negative("adam", "weight_decay", self.weight_decay)
    }
}

/// Hyper-parameters of [`AdamW`] (`torch.optim.AdamW`); `Default` gives PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AdamWParams {
    /// Learning rate, > 0. Default 1e-3.
    pub lr: f64,
    /// Decay rate of the first-moment estimate, in [0, 1). Default 0.9.
    pub beta1: f64,
    /// Decay rate of the second-moment estimate, in [0, 1). Default 0.999.
    pub beta2: f64,
    /// Added to the denominator outside the square root, >= 0. Default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay (`θ ← θ (1 - lr · weight_decay)` before the Adam update), >= 0.
    /// Default 0.01.
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

crate::setters::with_setters!(AdamWParams {
    with_lr(lr: f64),
    with_beta1(beta1: f64),
    with_beta2(beta2: f64),
    with_eps(eps: f64),
    with_weight_decay(weight_decay: f64),
});

impl AdamWParams {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`adamw.lr`, `adamw.beta1`, …) that is out of range.
    pub fn validate(&self) -> Result<()> {
        check_lr("adamw", self.lr)?;
        check_unit("adamw", "beta1", self.beta1)?;
        check_unit("adamw", "beta2", self.beta2)?;
        check_non_negative("adamw", "eps", self.eps)?;
        check_non_negative("adamw", "weight_decay", self.weight_decay)
    }
}

/// Hyper-parameters of [`Sgd`] (`torch.optim.SGD`); `Default` gives PyTorch's defaults.
///
/// `nesterov` keeps PyTorch's name and type so configurations carry over one to one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SgdParams {
    /// Learning rate, > 0. Default 1e-3.
    pub lr: f64,
    /// Momentum factor, >= 0; 0 turns momentum off. Default 0.
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer, in [0, 1]. Default 0.
    pub dampening: f64,
    /// L2 penalty added to the gradient (`g + weight_decay * θ`), >= 0. Default 0.
    pub weight_decay: f64,
    /// Nesterov momentum; needs `momentum > 0` and `dampening == 0`. Default false.
    pub nesterov: bool,
}

impl Default for SgdParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

crate::setters::with_setters!(SgdParams {
    with_lr(lr: f64),
    with_momentum(momentum: f64),
    with_dampening(dampening: f64),
    with_weight_decay(weight_decay: f64),
    with_nesterov(nesterov: bool),
});

impl SgdParams {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`sgd.lr`, `sgd.momentum`, …) that is out of range,
    /// or `sgd.nesterov` when it is set without momentum or with dampening.
    pub fn validate(&self) -> Result<()> {
        check_lr("sgd", self.lr)?;
        check_non_negative("sgd", "momentum", self.momentum)?;
        if !(0.0..=1.0).contains(&self.dampening) {
            return Err(Error::config(
                "sgd.dampening",
                format!("must be in [0, 1], got {}", self.dampening),
            ));
        }
        check_non_negative("sgd", "weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::config(
                "sgd.nesterov",
                format!(
                    "Nesterov momentum needs momentum > 0 and dampening 0, got momentum {} \
                     and dampening {}",
                    self.momentum, self.dampening
                ),
            ));
        }
        Ok(())
    }
}

/// Hyper-parameters of [`Rmsprop`] (`torch.optim.RMSprop`); `Default` gives PyTorch's
/// defaults.
///
/// `centered` keeps PyTorch's name and type so configurations carry over one to one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RmspropParams {
    /// Learning rate, > 0. Default 1e-2.
    pub lr: f64,
    /// Decay rate of the running average of squared gradients, in [0, 1). Default 0.99.
    pub alpha: f64,
    /// Added to the denominator outside the square root, >= 0. Default 1e-8.
    pub eps: f64,
    /// L2 penalty added to the gradient (`g + weight_decay * θ`), >= 0. Default 0.
    pub weight_decay: f64,
    /// Momentum factor, >= 0; 0 turns momentum off. Default 0.
    pub momentum: f64,
    /// Normalise by the estimated variance of the gradient (the running mean of squares minus
    /// the square of the running mean) instead of the raw mean of squares. Default false.
    pub centered: bool,
}

impl Default for RmspropParams {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

crate::setters::with_setters!(RmspropParams {
    with_lr(lr: f64),
    with_alpha(alpha: f64),
    with_eps(eps: f64),
    with_weight_decay(weight_decay: f64),
    with_momentum(momentum: f64),
    with_centered(centered: bool),
});

impl RmspropParams {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`rmsprop.lr`, `rmsprop.alpha`, …) that is out of
    /// range.
    pub fn validate(&self) -> Result<()> {
        check_lr("rmsprop", self.lr)?;
        check_unit("rmsprop", "alpha", self.alpha)?;
        check_non_negative("rmsprop", "eps", self.eps)?;
        check_non_negative("rmsprop", "weight_decay", self.weight_decay)?;
        check_non_negative("rmsprop", "momentum", self.momentum)
    }
}

pub(super) fn check_lr(optimizer: &str, lr: f64) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            format!("{optimizer}.lr"),
            format!("must be positive and finite, got {lr}"),
        ))
    }
}

/// `x` in [0, 1).
pub(super) fn check_unit(optimizer: &str, field: &str, x: f64) -> Result<()> {
    if (0.0..1.0).contains(&x) {
        Ok(())
    } else {
        Err(Error::config(
            format!("{optimizer}.{field}"),
            format!("must be in [0, 1), got {x}"),
        ))
    }
}

pub(super) fn check_non_negative(optimizer: &str, field: &str, x: f64) -> Result<()> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            format!("{optimizer}.{field}"),
            format!("must be non-negative and finite, got {x}"),
        ))
    }
}

/// vaekit's error as a candle error with the same message, for [`Optimizer::new`].
pub(super) fn to_candle(err: Error) -> candle_core::Error {
    candle_core::Error::Msg(err.to_string())
}
