//! What every optimizer shares: per-variable slots (step count and state
//! buffers), saving and restoring them, and the update arithmetic in
//! PyTorch's order.

use super::*;

/// One trainable variable with its step count and state buffers.
pub(super) struct Slot {
    /// Position of the variable in the `Vec<Var>` the optimizer was built from.
    pub(super) index: usize,
    pub(super) var: Var,
    /// Updates applied to this variable so far.
    pub(super) steps: u64,
    /// Detached state tensors, in the order of [`Slots::buffer_names`]. Adam's are written
    /// in place on the CPU, so [`OptimizerState::state`] hands out copies.
    pub(super) buffers: Vec<Tensor>,
}

/// The variables of one optimizer and their state.
pub(super) struct Slots {
    /// `adam`, `adamw`, `sgd` or `rmsprop`.
    pub(super) prefix: &'static str,
    /// Number of vars given, including the non-float ones that are not trained.
    pub(super) given: usize,
    pub(super) buffer_names: Vec<&'static str>,
    pub(super) slots: Vec<Slot>,
}

impl Slots {
    /// Keeps the float variables (as candle's optimizers do) with zeroed buffers.
    pub(super) fn new(
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

    pub(super) fn step_name(&self) -> String {
        format!("{}.step", self.prefix)
    }

    pub(super) fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
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

    pub(super) fn load_state(
        &mut self,
        state: &HashMap<String, Tensor>,
    ) -> candle_core::Result<()> {
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

    pub(super) fn debug(
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
pub(super) fn representable(dtype: DType, x: f64) -> bool {
    let max = match dtype {
        DType::F16 => 65504.0,
        DType::BF16 | DType::F32 => f64::from(f32::MAX),
        _ => f64::MAX,
    };
    x.is_finite() && x.abs() <= max
}

/// `θ - step_size · num / (sqrt(sq) · inv_root + eps)`: PyTorch's
/// `param.addcdiv_(num, sqrt(sq) / root + eps, value=-step_size)` with `eps` outside the root.
pub(super) fn sub_ratio_sqrt(
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
pub(super) fn ratio_coefficients(
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
pub(super) fn l2_grad(
    grad: Tensor,
    theta: &Tensor,
    weight_decay: f64,
) -> candle_core::Result<Tensor> {
    if weight_decay == 0.0 {
        Ok(grad)
    } else {
        theta.affine(weight_decay, 0.0)?.add(&grad)
    }
}

/// `m + w · (g - m)`: PyTorch's `m.lerp_(g, w)`.
pub(super) fn lerp(m: &Tensor, g: &Tensor, w: f64) -> candle_core::Result<Tensor> {
    g.sub(m)?.affine(w, 0.0)?.add(m)
}

/// `v · decay + (1 - decay) · g²`: PyTorch's `v.mul_(decay).addcmul_(g, g, value=1 - decay)`.
pub(super) fn ema_sq(v: &Tensor, g: &Tensor, decay: f64) -> candle_core::Result<Tensor> {
    v.affine(decay, 0.0)?
        .add(&g.sqr()?.affine(1.0 - decay, 0.0)?)
}
