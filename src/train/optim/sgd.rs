//! SGD with momentum, dampening and Nesterov (`torch.optim.SGD`).

use super::*;

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
