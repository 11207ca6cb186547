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
