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
//! let config = OptimizerConfig::Adam(AdamParams::default().with_lr(0.1));
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

mod slots;
#[macro_use]
mod rule;
mod adam;
mod config;
mod params;
mod rmsprop;
mod sgd;

pub use adam::*;
pub use config::*;
pub use params::*;
pub use rmsprop::*;
use rule::*;
pub use sgd::*;
use slots::*;

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
