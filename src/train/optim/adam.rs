//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`).

use super::*;

/// One Adam / AdamW update of `slot`'s variable at its step `slot.steps + 1`;
/// `decoupled_decay` is AdamW's `lr · weight_decay` factor (0 for Adam), `l2`
/// Adam's weight decay (0 for AdamW).
fn adam_update(
    slot: &mut Slot,
    grad: &Tensor,
    lr: f64,
    (beta1, beta2): (f64, f64),
    eps: f64,
    l2: f64,
    decoupled_decay: f64,
) -> candle_core::Result<()> {
    let t = slot.steps + 1;
    let bias1 = 1.0 - beta1.powf(t as f64);
    let bias2 = 1.0 - beta2.powf(t as f64);
    let theta = slot.var.as_detached_tensor();
    let grad = l2_grad(grad.detach(), &theta, l2)?;
    if adam_kernel::applies(&theta, &grad, &slot.buffers) {
        // The same arithmetic in three in-place passes (see `kernels::adam`).
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
        return adam_kernel::adam(&theta, &grad, m, v, beta1, beta2, update);
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
    Ok(())
}

/// The two moment buffers of Adam and AdamW.
const MOMENTS: [&str; 2] = ["exp_avg", "exp_avg_sq"];

/// [`UpdateRule`] for Adam's and AdamW's parameters, which differ only in
/// their prefix and in how the weight decay enters (`l2`, `decoupled`).
macro_rules! adam_rule {
    ($params:ty, $prefix:literal, |$p:ident| ($l2:expr, $decoupled:expr)) => {
        impl UpdateRule for $params {
            const PREFIX: &'static str = $prefix;

            fn check(&self) -> Result<()> {
                self.validate()
            }

            fn buffer_names(&self) -> Vec<&'static str> {
                MOMENTS.to_vec()
            }

            fn rate(&self) -> f64 {
                self.lr
            }

            fn set_rate(&mut self, lr: f64) {
                self.lr = lr;
            }

            fn update(&self, slot: &mut Slot, grad: &Tensor) -> candle_core::Result<()> {
                let $p = self;
                let betas = ($p.beta1, $p.beta2);
                adam_update(slot, grad, $p.lr, betas, $p.eps, $l2, $decoupled)
            }
        }
    };
}

adam_rule!(AdamParams, "adam", |p| (p.weight_decay, 0.0));
adam_rule!(AdamWParams, "adamw", |p| (0.0, p.lr * p.weight_decay));

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

optimizer_from_rule!(Adam, AdamParams);

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

optimizer_from_rule!(AdamW, AdamWParams);
