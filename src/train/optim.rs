//! Optimizers for training: PyTorch's Adam, AdamW, SGD (with momentum) and RMSprop on candle.
//!
//! Each optimizer implements [`candle_nn::Optimizer`] and follows the update rule of its
//! `torch.optim` namesake step for step (the algorithm boxes in PyTorch's documentation), so
//! hyper-parameters and training curves carry over from PyTorch code unchanged:
//!
//! | vaekit      | PyTorch                  | defaults                                          |
//! |-------------|--------------------------|---------------------------------------------------|
//! | [`Adam`]    | `torch.optim.Adam`       | lr 1e-3, betas (0.9, 0.999), eps 1e-8, decay 0    |
//! | [`AdamW`]   | `torch.optim.AdamW`      | lr 1e-3, betas (0.9, 0.999), eps 1e-8, decay 0.01 |
//! | [`Sgd`]     | `torch.optim.SGD`        | lr 1e-3, momentum 0, dampening 0, decay 0         |
//! | [`Rmsprop`] | `torch.optim.RMSprop`    | lr 1e-2, alpha 0.99, eps 1e-8, decay 0, momentum 0|
//!
//! Like PyTorch, every optimizer counts steps per variable: a variable that has no gradient in
//! a [`GradStore`] is left alone, and its step count (which drives Adam's bias correction and
//! SGD's momentum-buffer start) does not advance.
//!
//! Optimizer state is saved and restored with [`OptimizerState`], bit for bit, so a training
//! run resumed from a checkpoint continues exactly as if it had never stopped.
//! [`OptimizerConfig`] names one optimizer with its hyper-parameters (and reads from and
//! writes to JSON with serde); its [`build`](OptimizerConfig::build) returns a
//! `Box<dyn TrainOptimizer>`, the object-safe face of the optimizers that a trainer holds.
//!
//! Updates run on detached tensors, so they never grow an autograd graph, and the new
//! values are written into the variables in place with [`Var::set`].
//!
//! # Example
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use vaekit::train::optim::{AdamParams, OptimizerConfig};
//!
//! # fn main() -> vaekit::Result<()> {
//! // Minimise (w - 3)^2 with Adam.
//! let w = Var::new(&[0f32], &Device::Cpu)?;
//! let config = OptimizerConfig::Adam(AdamParams { lr: 0.1, ..Default::default() });
//! let mut optimizer = config.build(vec![w.clone()])?;
//! for _ in 0..200 {
//!     let loss = (w.as_tensor() - 3.0)?.sqr()?.sum_all()?;
//!     optimizer.backward_step(&loss)?;
//! }
//! let w = w.as_tensor().to_vec1::<f32>()?[0];
//! assert!((w - 3.0).abs() < 0.05, "w = {w}");
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use serde::{Deserialize, Serialize};

use crate::kernels::adam as adam_kernel;
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Traits
// ---------------------------------------------------------------------------------------------

/// Saving and restoring an optimizer's state (moment estimates, momentum buffers, step counts)
/// for training checkpoints.
///
/// State tensors are named `<optimizer>.<buffer>.<i>`, where `<optimizer>` is `adam`, `adamw`,
/// `sgd` or `rmsprop`, `<buffer>` is PyTorch's name for it (`exp_avg`, `exp_avg_sq`,
/// `momentum_buffer`, `square_avg`, `grad_avg`) and `i` is the position of the variable in
/// the `Vec<Var>` the optimizer was built from. `<optimizer>.step` is an `i64` tensor of shape
/// `[number of vars]` holding each variable's step count. The names can share a safetensors
/// file with the model's parameters.
pub trait OptimizerState {
    /// The optimizer's state, as named tensors.
    ///
    /// The tensors are snapshots: later steps do not change them.
    ///
    /// # Errors
    ///
    /// If a tensor cannot be created (the step counts are built on the CPU).
    fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>>;

    /// Restores the state saved by [`state`](OptimizerState::state) into an optimizer built
    /// with the same configuration over variables of the same shapes and order.
    ///
    /// Tensors are copied (and moved to each variable's device); entries of `state` that do
    /// not start with this optimizer's prefix are ignored, so a whole checkpoint can be passed.
    /// Nothing changes unless every tensor checks out.
    ///
    /// # Errors
    ///
    /// Naming the tensor at fault: a tensor is missing, has the wrong shape or dtype, a step
    /// count is not a non-negative integer, or an unexpected tensor carries this optimizer's
    /// prefix (a checkpoint made with more variables or another configuration).
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> candle_core::Result<()>;
}

/// The object-safe optimizer interface a trainer holds: [`candle_nn::Optimizer`]'s stepping
/// and learning-rate methods plus [`OptimizerState`].
///
/// Every type that implements both [`candle_nn::Optimizer`] and [`OptimizerState`] implements
/// it, so `Box<dyn TrainOptimizer>` works for vaekit's optimizers and your own alike.
/// (With both traits in scope, call a concrete optimizer's methods as
/// `Optimizer::step(&mut opt, &grads)` to pick one.)
pub trait TrainOptimizer: OptimizerState {
    /// Applies one update to every variable that has a gradient in `grads`.
    ///
    /// # Errors
    ///
    /// If a gradient's shape or dtype does not match its variable's.
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()>;

    /// Back-propagates `loss` and applies one update.
    ///
    /// # Errors
    ///
    /// As [`Tensor::backward`] and [`step`](TrainOptimizer::step).
    fn backward_step(&mut self, loss: &Tensor) -> candle_core::Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// The current learning rate.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate (for schedules); the value is not validated.
    fn set_learning_rate(&mut self, lr: f64);
}

impl<T: Optimizer + OptimizerState> TrainOptimizer for T {
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        Optimizer::step(self, grads)
    }

    fn learning_rate(&self) -> f64 {
        Optimizer::learning_rate(self)
    }

    fn set_learning_rate(&mut self, lr: f64) {
        Optimizer::set_learning_rate(self, lr)
    }
}

// ---------------------------------------------------------------------------------------------
// Hyper-parameters
// ---------------------------------------------------------------------------------------------

/// Hyper-parameters of [`Adam`] (`torch.optim.Adam`); `Default` gives PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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

fn check_lr(optimizer: &str, lr: f64) -> Result<()> {
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
fn check_unit(optimizer: &str, field: &str, x: f64) -> Result<()> {
    if (0.0..1.0).contains(&x) {
        Ok(())
    } else {
        Err(Error::config(
            format!("{optimizer}.{field}"),
            format!("must be in [0, 1), got {x}"),
        ))
    }
}

fn check_non_negative(optimizer: &str, field: &str, x: f64) -> Result<()> {
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
fn to_candle(err: Error) -> candle_core::Error {
    candle_core::Error::Msg(err.to_string())
}

// ---------------------------------------------------------------------------------------------
// Per-variable state shared by all optimizers
// ---------------------------------------------------------------------------------------------

/// One trainable variable with its step count and state buffers.
struct Slot {
    /// Position of the variable in the `Vec<Var>` the optimizer was built from.
    index: usize,
    var: Var,
    /// Updates applied to this variable so far.
    steps: u64,
    /// Detached state tensors, in the order of [`Slots::buffer_names`]. Adam's are written
    /// in place on the CPU, so [`OptimizerState::state`] hands out copies.
    buffers: Vec<Tensor>,
}

/// The variables of one optimizer and their state.
struct Slots {
    /// `adam`, `adamw`, `sgd` or `rmsprop`.
    prefix: &'static str,
    /// Number of vars given, including the non-float ones that are not trained.
    given: usize,
    buffer_names: Vec<&'static str>,
    slots: Vec<Slot>,
}

/// `OptimizerState` and `Debug` for an optimizer whose state lives in its
/// `slots: Slots` and whose hyper-parameters are `params`.
macro_rules! state_and_debug_from_slots {
    ($name:ident) => {
        impl OptimizerState for $name {
            fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
                self.slots.state()
            }

            fn load_state(&mut self, state: &HashMap<String, Tensor>) -> candle_core::Result<()> {
                self.slots.load_state(state)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.slots.debug(f, stringify!($name), &self.params)
            }
        }
    };
}

impl Slots {
    /// Keeps the float variables (as candle's optimizers do) with zeroed buffers.
    fn new(
        prefix: &'static str,
        vars: Vec<Var>,
        buffer_names: Vec<&'static str>,
    ) -> candle_core::Result<Self> {
        let given = vars.len();
        let slots = vars
            .into_iter()
            .enumerate()
            .filter(|(_, var)| var.dtype().is_float())
            .map(|(index, var)| {
                let buffers = buffer_names
                    .iter()
                    .map(|_| var.zeros_like())
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Ok(Slot {
                    index,
                    var,
                    steps: 0,
                    buffers,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            prefix,
            given,
            buffer_names,
            slots,
        })
    }

    fn step_name(&self) -> String {
        format!("{}.step", self.prefix)
    }

    fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut steps = vec![0i64; self.given];
        for slot in &self.slots {
            steps[slot.index] = i64::try_from(slot.steps).unwrap_or(i64::MAX);
        }
        let mut state = Vec::with_capacity(1 + self.slots.len() * self.buffer_names.len());
        state.push((
            self.step_name(),
            Tensor::from_vec(steps, self.given, &Device::Cpu)?,
        ));
        for slot in &self.slots {
            for (name, buffer) in self.buffer_names.iter().zip(&slot.buffers) {
                state.push((
                    format!("{}.{name}.{}", self.prefix, slot.index),
                    buffer.copy()?,
                ));
            }
        }
        Ok(state)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let bad = |name: &str, reason: String| to_candle(Error::tensor(name, reason));

        // Check and copy everything first, so that a bad checkpoint changes nothing.
        let step_name = self.step_name();
        let step = state
            .get(&step_name)
            .ok_or_else(|| bad(&step_name, "missing from the optimizer state".into()))?;
        if step.dims() != [self.given] {
            return Err(bad(
                &step_name,
                format!(
                    "expected shape [{}] (one count per var), got {:?}",
                    self.given,
                    step.dims()
                ),
            ));
        }
        let counts = step
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        let mut steps = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let count = counts[slot.index];
            if !(count.is_finite() && count >= 0.0 && count.fract() == 0.0) {
                return Err(bad(
                    &step_name,
                    format!(
                        "entry {} must be a non-negative integer, got {count}",
                        slot.index
                    ),
                ));
            }
            steps.push(count as u64);
        }

        let mut expected = Vec::with_capacity(1 + self.slots.len() * self.buffer_names.len());
        expected.push(step_name);
        let mut buffers = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let mut slot_buffers = Vec::with_capacity(self.buffer_names.len());
            for name in &self.buffer_names {
                let name = format!("{}.{name}.{}", self.prefix, slot.index);
                let tensor = state
                    .get(&name)
                    .ok_or_else(|| bad(&name, "missing from the optimizer state".into()))?;
                if tensor.dims() != slot.var.dims() {
                    return Err(bad(
                        &name,
                        format!(
                            "expected shape {:?} (var {}), got {:?}",
                            slot.var.dims(),
                            slot.index,
                            tensor.dims()
                        ),
                    ));
                }
                if tensor.dtype() != slot.var.dtype() {
                    return Err(bad(
                        &name,
                        format!(
                            "expected dtype {:?} (var {}), got {:?}",
                            slot.var.dtype(),
                            slot.index,
                            tensor.dtype()
                        ),
                    ));
                }
                // A private copy: the caller's tensor may share storage with a `Var`.
                slot_buffers.push(tensor.detach().to_device(slot.var.device())?.copy()?);
                expected.push(name);
            }
            buffers.push(slot_buffers);
        }
        let prefix = format!("{}.", self.prefix);
        if let Some(extra) = state
            .keys()
            .filter(|key| key.starts_with(&prefix))
            .find(|key| !expected.contains(key))
        {
            return Err(bad(
                extra,
                format!(
                    "not part of this optimizer's state ({} vars, buffers {:?})",
                    self.given, self.buffer_names
                ),
            ));
        }

        for ((slot, steps), buffers) in self.slots.iter_mut().zip(steps).zip(buffers) {
            slot.steps = steps;
            slot.buffers = buffers;
        }
        Ok(())
    }

    fn debug(
        &self,
        f: &mut fmt::Formatter<'_>,
        name: &str,
        params: &dyn fmt::Debug,
    ) -> fmt::Result {
        f.debug_struct(name)
            .field("params", params)
            .field("vars", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// Whether `x` is a finite number in `dtype`.
fn representable(dtype: DType, x: f64) -> bool {
    let max = match dtype {
        DType::F16 => 65504.0,
        DType::BF16 | DType::F32 => f64::from(f32::MAX),
        _ => f64::MAX,
    };
    x.is_finite() && x.abs() <= max
}

/// `θ - step_size · num / (sqrt(sq) · inv_root + eps)`: PyTorch's
/// `param.addcdiv_(num, sqrt(sq) / root + eps, value=-step_size)` with `eps` outside the root.
fn sub_ratio_sqrt(
    theta: &Tensor,
    num: &Tensor,
    sq: &Tensor,
    inv_root: f64,
    eps: f64,
    step_size: f64,
) -> candle_core::Result<Tensor> {
    let root = sq.sqrt()?;
    let (mul, add, step) = ratio_coefficients(theta.dtype(), inv_root, eps, step_size);
    let ratio = num.div(&root.affine(mul, add)?)?;
    match step {
        None => theta.sub(&ratio),
        Some(step) => theta.sub(&ratio.affine(step, 0.0)?),
    }
}

/// How [`sub_ratio_sqrt`] computes `step_size · num / (sqrt(sq) · inv_root + eps)`: as
/// `num / (sqrt(sq) · mul + add)` with the step size folded into the denominator (one
/// tensor op fewer) when that is representable, else with `step` applied after.
fn ratio_coefficients(
    dtype: DType,
    inv_root: f64,
    eps: f64,
    step_size: f64,
) -> (f64, f64, Option<f64>) {
    let (mul, add) = (inv_root / step_size, eps / step_size);
    if step_size != 0.0 && representable(dtype, mul) && representable(dtype, add) {
        (mul, add, None)
    } else {
        (inv_root, eps, Some(step_size))
    }
}

/// `g + weight_decay · θ`, or `g` itself when there is no decay.
fn l2_grad(grad: Tensor, theta: &Tensor, weight_decay: f64) -> candle_core::Result<Tensor> {
    if weight_decay == 0.0 {
        Ok(grad)
    } else {
        theta.affine(weight_decay, 0.0)?.add(&grad)
    }
}

/// `m + w · (g - m)`: PyTorch's `m.lerp_(g, w)`.
fn lerp(m: &Tensor, g: &Tensor, w: f64) -> candle_core::Result<Tensor> {
    g.sub(m)?.affine(w, 0.0)?.add(m)
}

/// `v · decay + (1 - decay) · g²`: PyTorch's `v.mul_(decay).addcmul_(g, g, value=1 - decay)`.
fn ema_sq(v: &Tensor, g: &Tensor, decay: f64) -> candle_core::Result<Tensor> {
    v.affine(decay, 0.0)?
        .add(&g.sqr()?.affine(1.0 - decay, 0.0)?)
}

// ---------------------------------------------------------------------------------------------
// Adam and AdamW
// ---------------------------------------------------------------------------------------------

/// One Adam / AdamW update of every variable with a gradient; `decoupled_decay` is AdamW's
/// `lr · weight_decay` factor (0 for Adam), `l2` Adam's weight decay (0 for AdamW).
#[allow(clippy::too_many_arguments)]
fn adam_step(
    slots: &mut Slots,
    grads: &GradStore,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    l2: f64,
    decoupled_decay: f64,
) -> candle_core::Result<()> {
    for slot in &mut slots.slots {
        let Some(grad) = grads.get(&slot.var) else {
            continue;
        };
        let t = slot.steps + 1;
        let bias1 = 1.0 - beta1.powf(t as f64);
        let bias2 = 1.0 - beta2.powf(t as f64);
        let theta = slot.var.as_detached_tensor();
        let grad = l2_grad(grad.detach(), &theta, l2)?;
        if adam_kernel::applies(&theta, &grad, &slot.buffers) {
            // The same arithmetic in three in-place passes (see `fused`).
            let (mul, add, step) =
                ratio_coefficients(theta.dtype(), 1.0 / bias2.sqrt(), eps, lr / bias1);
            let update = adam_kernel::Update {
                keep: (decoupled_decay != 0.0).then_some(1.0 - decoupled_decay),
                mul,
                add,
                step,
            };
            let [m, v] = &slot.buffers[..] else {
                candle_core::bail!("Adam keeps two moment buffers per variable");
            };
            adam_kernel::adam(&theta, &grad, m, v, beta1, beta2, update)?;
            slot.steps = t;
            continue;
        }
        let m = lerp(&slot.buffers[0], &grad, 1.0 - beta1)?;
        let v = ema_sq(&slot.buffers[1], &grad, beta2)?;
        let theta = if decoupled_decay == 0.0 {
            theta
        } else {
            theta.affine(1.0 - decoupled_decay, 0.0)?
        };
        let theta = sub_ratio_sqrt(&theta, &m, &v, 1.0 / bias2.sqrt(), eps, lr / bias1)?;
        slot.var.set(&theta)?;
        slot.buffers = vec![m, v];
        slot.steps = t;
    }
    Ok(())
}

/// Adam with L2 weight decay, as `torch.optim.Adam` (without `amsgrad`).
///
/// For each variable θ with gradient g at its step t:
///
/// ```text
/// g ← g + weight_decay · θ
/// m ← β1 m + (1 - β1) g
/// v ← β2 v + (1 - β2) g²
/// θ ← θ - lr · (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)
/// ```
///
/// State: `adam.step`, `adam.exp_avg.<i>`, `adam.exp_avg_sq.<i>`.
pub struct Adam {
    slots: Slots,
    params: AdamParams,
}

impl Adam {
    /// Builds the optimizer over `vars` (non-float vars are skipped, as candle does) after
    /// validating `params`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming an out-of-range field; [`Error::Candle`] if the state buffers
    /// cannot be allocated.
    pub fn new_checked(vars: Vec<Var>, params: AdamParams) -> Result<Self> {
        params.validate()?;
        let slots = Slots::new("adam", vars, vec!["exp_avg", "exp_avg_sq"])?;
        Ok(Self { slots, params })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn params(&self) -> &AdamParams {
        &self.params
    }
}

impl Optimizer for Adam {
    type Config = AdamParams;

    fn new(vars: Vec<Var>, params: AdamParams) -> candle_core::Result<Self> {
        Self::new_checked(vars, params).map_err(to_candle)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let p = &self.params;
        adam_step(
            &mut self.slots,
            grads,
            p.lr,
            p.beta1,
            p.beta2,
            p.eps,
            p.weight_decay,
            0.0,
        )
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

state_and_debug_from_slots!(Adam);

/// Adam with decoupled weight decay, as `torch.optim.AdamW` (without `amsgrad`).
///
/// For each variable θ with gradient g at its step t:
///
/// ```text
/// θ ← θ (1 - lr · weight_decay)
/// m ← β1 m + (1 - β1) g
/// v ← β2 v + (1 - β2) g²
/// θ ← θ - lr · (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)
/// ```
///
/// State: `adamw.step`, `adamw.exp_avg.<i>`, `adamw.exp_avg_sq.<i>`.
pub struct AdamW {
    slots: Slots,
    params: AdamWParams,
}

impl AdamW {
    /// Builds the optimizer over `vars` (non-float vars are skipped, as candle does) after
    /// validating `params`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming an out-of-range field; [`Error::Candle`] if the state buffers
    /// cannot be allocated.
    pub fn new_checked(vars: Vec<Var>, params: AdamWParams) -> Result<Self> {
        params.validate()?;
        let slots = Slots::new("adamw", vars, vec!["exp_avg", "exp_avg_sq"])?;
        Ok(Self { slots, params })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn params(&self) -> &AdamWParams {
        &self.params
    }
}

impl Optimizer for AdamW {
    type Config = AdamWParams;

    fn new(vars: Vec<Var>, params: AdamWParams) -> candle_core::Result<Self> {
        Self::new_checked(vars, params).map_err(to_candle)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let p = &self.params;
        adam_step(
            &mut self.slots,
            grads,
            p.lr,
            p.beta1,
            p.beta2,
            p.eps,
            0.0,
            p.lr * p.weight_decay,
        )
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

state_and_debug_from_slots!(AdamW);

// ---------------------------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------------------------

/// Stochastic gradient descent with momentum, as `torch.optim.SGD`.
///
/// For each variable θ with gradient g (μ = momentum, τ = dampening):
///
/// ```text
/// g ← g + weight_decay · θ
/// b ← g at the variable's first step, μ b + (1 - τ) g after      (if μ > 0)
/// g ← g + μ b if nesterov, else b                                 (if μ > 0)
/// θ ← θ - lr · g
/// ```
///
/// State: `sgd.step`, and `sgd.momentum_buffer.<i>` when momentum > 0 (zeros until the
/// variable's first step).
pub struct Sgd {
    slots: Slots,
    params: SgdParams,
}

impl Sgd {
    /// Builds the optimizer over `vars` (non-float vars are skipped, as candle does) after
    /// validating `params`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming an out-of-range field; [`Error::Candle`] if the momentum
    /// buffers cannot be allocated.
    pub fn new_checked(vars: Vec<Var>, params: SgdParams) -> Result<Self> {
        params.validate()?;
        let buffers = if params.momentum > 0.0 {
            vec!["momentum_buffer"]
        } else {
            vec![]
        };
        let slots = Slots::new("sgd", vars, buffers)?;
        Ok(Self { slots, params })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn params(&self) -> &SgdParams {
        &self.params
    }
}

impl Optimizer for Sgd {
    type Config = SgdParams;

    fn new(vars: Vec<Var>, params: SgdParams) -> candle_core::Result<Self> {
        Self::new_checked(vars, params).map_err(to_candle)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let p = &self.params;
        for slot in &mut self.slots.slots {
            let Some(grad) = grads.get(&slot.var) else {
                continue;
            };
            let theta = slot.var.as_detached_tensor();
            let mut grad = l2_grad(grad.detach(), &theta, p.weight_decay)?;
            if p.momentum > 0.0 {
                let buffer = if slot.steps == 0 {
                    // A private copy, as PyTorch's `clone`: `grad` may share storage.
                    grad.copy()?
                } else if p.dampening == 0.0 {
                    slot.buffers[0].affine(p.momentum, 0.0)?.add(&grad)?
                } else {
                    slot.buffers[0]
                        .affine(p.momentum, 0.0)?
                        .add(&grad.affine(1.0 - p.dampening, 0.0)?)?
                };
                grad = if p.nesterov {
                    buffer.affine(p.momentum, 0.0)?.add(&grad)?
                } else {
                    buffer.clone()
                };
                slot.buffers[0] = buffer;
            }
            slot.var.set(&theta.sub(&grad.affine(p.lr, 0.0)?)?)?;
            slot.steps += 1;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

state_and_debug_from_slots!(Sgd);

// ---------------------------------------------------------------------------------------------
// RMSprop
// ---------------------------------------------------------------------------------------------

/// RMSprop, as `torch.optim.RMSprop`.
///
/// For each variable θ with gradient g (α = alpha, μ = momentum):
///
/// ```text
/// g ← g + weight_decay · θ
/// v ← α v + (1 - α) g²
/// a ← α a + (1 - α) g ,   v' ← v - a²      if centered, else v' ← v
/// b ← μ b + g / (sqrt(v') + eps) ,   θ ← θ - lr · b      if μ > 0
/// θ ← θ - lr · g / (sqrt(v') + eps)                     otherwise
/// ```
///
/// State: `rmsprop.step`, `rmsprop.square_avg.<i>`, `rmsprop.momentum_buffer.<i>` when
/// momentum > 0 and `rmsprop.grad_avg.<i>` when centered.
pub struct Rmsprop {
    slots: Slots,
    params: RmspropParams,
    /// Buffer index of the momentum buffer, if any.
    momentum_buffer: Option<usize>,
    /// Buffer index of the running gradient average, if centered.
    grad_avg: Option<usize>,
}

impl Rmsprop {
    /// Builds the optimizer over `vars` (non-float vars are skipped, as candle does) after
    /// validating `params`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming an out-of-range field; [`Error::Candle`] if the state buffers
    /// cannot be allocated.
    pub fn new_checked(vars: Vec<Var>, params: RmspropParams) -> Result<Self> {
        params.validate()?;
        let mut buffers = vec!["square_avg"];
        let mut index = |name| {
            buffers.push(name);
            Some(buffers.len() - 1)
        };
        let momentum_buffer = if params.momentum > 0.0 {
            index("momentum_buffer")
        } else {
            None
        };
        let grad_avg = if params.centered {
            index("grad_avg")
        } else {
            None
        };
        let slots = Slots::new("rmsprop", vars, buffers)?;
        Ok(Self {
            slots,
            params,
            momentum_buffer,
            grad_avg,
        })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn params(&self) -> &RmspropParams {
        &self.params
    }
}

impl Optimizer for Rmsprop {
    type Config = RmspropParams;

    fn new(vars: Vec<Var>, params: RmspropParams) -> candle_core::Result<Self> {
        Self::new_checked(vars, params).map_err(to_candle)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let p = &self.params;
        for slot in &mut self.slots.slots {
            let Some(grad) = grads.get(&slot.var) else {
                continue;
            };
            let theta = slot.var.as_detached_tensor();
            let grad = l2_grad(grad.detach(), &theta, p.weight_decay)?;
            let square_avg = ema_sq(&slot.buffers[0], &grad, p.alpha)?;
            let variance = match self.grad_avg {
                Some(i) => {
                    let grad_avg = lerp(&slot.buffers[i], &grad, 1.0 - p.alpha)?;
                    let variance = square_avg.sub(&grad_avg.sqr()?)?;
                    slot.buffers[i] = grad_avg;
                    variance
                }
                None => square_avg.clone(),
            };
            let theta = match self.momentum_buffer {
                Some(i) => {
                    let denom = variance.sqrt()?.affine(1.0, p.eps)?;
                    let buffer = slot.buffers[i]
                        .affine(p.momentum, 0.0)?
                        .add(&grad.div(&denom)?)?;
                    let theta = theta.sub(&buffer.affine(p.lr, 0.0)?)?;
                    slot.buffers[i] = buffer;
                    theta
                }
                None => sub_ratio_sqrt(&theta, &grad, &variance, 1.0, p.eps, p.lr)?,
            };
            slot.var.set(&theta)?;
            slot.buffers[0] = square_avg;
            slot.steps += 1;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

state_and_debug_from_slots!(Rmsprop);

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

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
///     OptimizerConfig::Sgd(SgdParams { lr: 0.1, momentum: 0.9, ..Default::default() })
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
