//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`).

use super::*;

/// One Adam / AdamW update of every variable with a gradient; `decoupled_decay` is AdamW's
/// `lr · weight_decay` factor (0 for Adam), `l2` Adam's weight decay (0 for AdamW).
#[allow(clippy::too_many_arguments)]
pub(super) fn adam_step(
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
