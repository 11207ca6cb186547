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

impl UpdateRule for SgdParams {
    const PREFIX: &'static str = "sgd";

    fn check(&self) -> Result<()> {
        self.validate()
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        if self.momentum > 0.0 {
            vec!["momentum_buffer"]
        } else {
            vec![]
        }
    }

    fn rate(&self) -> f64 {
        self.lr
    }

    fn set_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn update(&self, slot: &mut Slot, grad: &Tensor) -> candle_core::Result<()> {
        let theta = slot.var.as_detached_tensor();
        let mut grad = l2_grad(grad.detach(), &theta, self.weight_decay)?;
        if self.momentum > 0.0 {
            let buffer = if slot.steps == 0 {
                // A private copy, as PyTorch's `clone`: `grad` may share storage.
                grad.copy()?
            } else if self.dampening == 0.0 {
                slot.buffers[0].affine(self.momentum, 0.0)?.add(&grad)?
            } else {
                slot.buffers[0]
                    .affine(self.momentum, 0.0)?
                    .add(&grad.affine(1.0 - self.dampening, 0.0)?)?
            };
            grad = if self.nesterov {
                buffer.affine(self.momentum, 0.0)?.add(&grad)?
            } else {
                buffer.clone()
            };
            slot.buffers[0] = buffer;
        }
        slot.var.set(&theta.sub(&grad.affine(self.lr, 0.0)?)?)
    }
}

optimizer_from_rule!(Sgd, SgdParams);
