//! The one trait every optimizer implements — its update rule — and the
//! plumbing built once on top of it: construction, stepping every variable
//! that has a gradient, the learning rate, state and `Debug`.

use super::*;

/// What makes one optimizer itself: its hyper-parameters (the implementing
/// type), the state it keeps per variable and the update of one variable.
/// Everything else is shared ([`step_all`], [`optimizer_from_rule!`]).
pub(super) trait UpdateRule: fmt::Debug {
    /// The state tensors' prefix: `adam`, `adamw`, `sgd` or `rmsprop`.
    const PREFIX: &'static str;

    /// Checks the hyper-parameters.
    fn check(&self) -> Result<()>;

    /// PyTorch's names of the state buffers kept per variable, in order.
    fn buffer_names(&self) -> Vec<&'static str>;

    /// The learning rate.
    fn rate(&self) -> f64;

    /// Sets the learning rate.
    fn set_rate(&mut self, lr: f64);

    /// Updates `slot`'s variable (and its buffers) with `grad`, at the
    /// variable's step `slot.steps + 1`; the caller then counts the step.
    fn update(&self, slot: &mut Slot, grad: &Tensor) -> candle_core::Result<()>;
}

/// One step of `rule` over every variable with a gradient in `grads`; the
/// others, and their step counts, are left alone (as PyTorch does).
pub(super) fn step_all<R: UpdateRule>(
    rule: &R,
    slots: &mut Slots,
    grads: &GradStore,
) -> candle_core::Result<()> {
    for slot in &mut slots.slots {
        let Some(grad) = grads.get(&slot.var) else {
            continue;
        };
        rule.update(slot, grad)?;
        slot.steps += 1;
    }
    Ok(())
}

/// `new_checked`, `params`, [`Optimizer`], [`OptimizerState`] and `Debug` for
/// an optimizer struct `{ slots: Slots, params: $params }` whose `$params`
/// implements [`UpdateRule`].
macro_rules! optimizer_from_rule {
    ($name:ident, $params:ty) => {
        impl $name {
            /// Builds the optimizer over `vars` (non-float vars are skipped, as
            /// candle does) after validating `params`.
            ///
            /// # Errors
            ///
            /// [`Error::Config`] naming an out-of-range field; [`Error::Candle`]
            /// if the state buffers cannot be allocated.
            pub fn new_checked(vars: Vec<Var>, params: $params) -> Result<Self> {
                UpdateRule::check(&params)?;
                let slots =
                    Slots::new(<$params as UpdateRule>::PREFIX, vars, params.buffer_names())?;
                Ok(Self { slots, params })
            }

            /// The hyper-parameters (with the current learning rate).
            pub fn params(&self) -> &$params {
                &self.params
            }
        }

        impl Optimizer for $name {
            type Config = $params;

            fn new(vars: Vec<Var>, params: $params) -> candle_core::Result<Self> {
                Self::new_checked(vars, params).map_err(to_candle)
            }

            fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
                step_all(&self.params, &mut self.slots, grads)
            }

            fn learning_rate(&self) -> f64 {
                self.params.rate()
            }

            fn set_learning_rate(&mut self, lr: f64) {
                self.params.set_rate(lr);
            }
        }

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
