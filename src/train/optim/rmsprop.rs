//! RMSprop, plain, with momentum, or centered (`torch.optim.RMSprop`).

use super::*;

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
}

impl RmspropParams {
    /// Buffer indices of the momentum buffer and the running gradient average,
    /// when kept: `square_avg` comes first, then these in this order.
    fn buffer_indices(&self) -> (Option<usize>, Option<usize>) {
        let momentum = (self.momentum > 0.0).then_some(1);
        let grad_avg = self.centered.then_some(1 + usize::from(momentum.is_some()));
        (momentum, grad_avg)
    }
}

impl UpdateRule for RmspropParams {
    const PREFIX: &'static str = "rmsprop";

    fn check(&self) -> Result<()> {
        self.validate()
    }

    fn buffer_names(&self) -> Vec<&'static str> {
        let (momentum, grad_avg) = self.buffer_indices();
        let mut names = vec!["square_avg"];
        names.extend(momentum.map(|_| "momentum_buffer"));
        names.extend(grad_avg.map(|_| "grad_avg"));
        names
    }

    fn rate(&self) -> f64 {
        self.lr
    }

    fn set_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn update(&self, slot: &mut Slot, grad: &Tensor) -> candle_core::Result<()> {
        let (momentum_buffer, grad_avg) = self.buffer_indices();
        let theta = slot.var.as_detached_tensor();
        let grad = l2_grad(grad.detach(), &theta, self.weight_decay)?;
        let square_avg = ema_sq(&slot.buffers[0], &grad, self.alpha)?;
        let variance = match grad_avg {
            Some(i) => {
                let grad_avg = lerp(&slot.buffers[i], &grad, 1.0 - self.alpha)?;
                let variance = square_avg.sub(&grad_avg.sqr()?)?;
                slot.buffers[i] = grad_avg;
                variance
            }
            None => square_avg.clone(),
        };
        let theta = match momentum_buffer {
            Some(i) => {
                let denom = variance.sqrt()?.affine(1.0, self.eps)?;
                let buffer = slot.buffers[i]
                    .affine(self.momentum, 0.0)?
                    .add(&grad.div(&denom)?)?;
                let theta = theta.sub(&buffer.affine(self.lr, 0.0)?)?;
                slot.buffers[i] = buffer;
                theta
            }
            None => sub_ratio_sqrt(&theta, &grad, &variance, 1.0, self.eps, self.lr)?,
        };
        slot.var.set(&theta)?;
        slot.buffers[0] = square_avg;
        Ok(())
    }
}

optimizer_from_rule!(Rmsprop, RmspropParams);
