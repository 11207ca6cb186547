//! Parameter storage: the trainable weights and buffers of a model, seeded
//! initialisation, checkpoints on disk, and PyTorch `state_dict` import.
//!
//! A [`ParamStore`] wraps a candle [`VarMap`]. Layers are built through the
//! [`VarBuilder`] it hands out; every weight created that way is drawn from a
//! seeded [`rand`] generator, so the same seed gives the same initial model bit for
//! bit on the CPU (candle's own CPU generator cannot be seeded).
//!
//! ## Importing a PyTorch `state_dict`
//!
//! [`ParamStore::load_state_dict`] loads a PyTorch model's weights into a vaekit
//! model in one call. It reads the file ([`import_state_dict`]: what
//! `torch.save(model.state_dict(), path)` writes, or a safetensors file), renames
//! its tensors with a [`RenameMap`], and assigns them
//! ([`StateDict::assign_to`]). PyTorch's separate mean and log-variance heads
//! are stacked into vaekit's encoder output layer (mean rows over log-variance
//! rows) by [`RenameMap::stack_rows`]; float16, bfloat16 and float64 tensors
//! become float32. Nothing is written unless every tensor fits, and a
//! `state_dict` that does not fit is refused with [`Error::StateDict`], whose
//! [`ImportReport`] names every missing, unused and mis-shaped tensor at once
//! (mis-shaped ones with both shapes). Batch norm's `num_batches_tracked`
//! counters are ignored quietly (vaekit's batch norm has none) and listed in
//! [`ImportReport::ignored`].
//!
//! Ready-made maps cover the reference PyTorch versions of the five tutorials:
//! [`RenameMap::dense_vae`], [`cvae_tf`](RenameMap::cvae_tf),
//! [`conv_vae_bn`](RenameMap::conv_vae_bn), [`digit_cvae`](RenameMap::digit_cvae)
//! and [`conv_ae`](RenameMap::conv_ae); build your own from exact renames,
//! prefix renames, row stacks and ignore rules.
//!
//! ```
//! use std::collections::BTreeMap;
//! use vaekit::params::{write_checkpoint, RenameMap};
//! use vaekit::prelude::*;
//!
//! let dir = std::env::temp_dir().join(format!("vaekit-doc-import-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("dense_vae.safetensors");
//!
//! // A state_dict in the names of the PyTorch dense VAE (`enc`, `fc_mu`,
//! // `fc_logvar`, `dec1`, `dec2`), made here from a vaekit model's weights; in
//! // practice it comes from `torch.save(model.state_dict(), "dense_vae.pt")`.
//! let trained = Model::from_preset(Preset::DenseVae, &Device::Cpu, 1)?;
//! let w = trained.params().snapshot();
//! let mut state_dict = BTreeMap::new();
//! for (torch, ours) in [("enc", "encoder.hidden.0"), ("dec1", "decoder.hidden.0"), ("dec2", "decoder.out")] {
//!     for p in ["weight", "bias"] {
//!         state_dict.insert(format!("{torch}.{p}"), w[&format!("{ours}.{p}")].clone());
//!     }
//! }
//! for (head, rows) in [("fc_mu", 0), ("fc_logvar", 2)] {
//!     for p in ["weight", "bias"] {
//!         state_dict.insert(format!("{head}.{p}"), w[&format!("encoder.out.{p}")].narrow(0, rows, 2)?);
//!     }
//! }
//! write_checkpoint(&path, &state_dict, &BTreeMap::new())?;
//!
//! // One call loads it into a fresh preset model.
//! let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 2)?;
//! let report = model.params().load_state_dict(&path, &RenameMap::dense_vae())?;
//! assert!(report.is_ok());
//! let x = Tensor::rand(0f32, 1f32, (2, 1, 28, 28), &Device::Cpu)?;
//! let diff = (model.encode(&x)? - trained.encode(&x)?)?.abs()?.max_all()?;
//! assert_eq!(diff.to_scalar::<f32>()?, 0.0);
//!
//! // A state_dict that does not fit names every problem.
//! state_dict.remove("fc_logvar.bias");
//! state_dict.insert("extra.weight".into(), Tensor::zeros(3, DType::F32, &Device::Cpu)?);
//! write_checkpoint(&path, &state_dict, &BTreeMap::new())?;
//! let err = model.params().load_state_dict(&path, &RenameMap::dense_vae()).expect_err("misfit");
//! assert!(err.to_string().contains("`encoder.out.bias` (the file has no `fc_logvar.bias`)"));
//! assert!(err.to_string().contains("1 unused: `extra.weight`"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoint;
mod init;
mod rename;
mod state_dict;

pub use checkpoint::{read_checkpoint, write_checkpoint, Checkpoint, CheckpointFile};
pub use init::InitScheme;
pub use rename::{Destination, RenameMap};
pub use state_dict::{
    import_state_dict, ImportReport, MissingTensor, SourceTensor, StateDict, TensorMismatch,
};

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::{Error, Result};

/// Last name segments of parameters that are buffers (running statistics), not
/// trainable weights.
const BUFFER_NAMES: [&str; 2] = ["running_mean", "running_var"];

/// Prefix of a last name segment that marks a fixed buffer (saved and loaded
/// with the model, never trained), e.g. `prior.fixed_means`.
pub const FIXED_PREFIX: &str = "fixed_";

/// Prefix of a last name segment that marks a buffer a layer updates itself
/// in training mode by an exponential moving average, as batch norm updates
/// its running statistics: the vector quantiser's EMA codebook and counts
/// (`quantizer.ema_codebook`, `quantizer.ema_cluster_size`, …).
pub const EMA_PREFIX: &str = "ema_";

/// Whether the parameter `name` is a buffer rather than a trainable weight: a
/// batch-norm running statistic (`….running_mean`, `….running_var`), a fixed
/// tensor whose last segment starts with [`FIXED_PREFIX`] (`….fixed_means`),
/// or a moving average whose last segment starts with [`EMA_PREFIX`]
/// (`….ema_cluster_size`). Buffers are saved and loaded with the weights but
/// never given to an optimizer.
pub fn is_buffer(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    BUFFER_NAMES.contains(&last) || last.starts_with(FIXED_PREFIX) || last.starts_with(EMA_PREFIX)
}

/// The weights and buffers of one model, by PyTorch-style dotted name.
#[derive(Clone)]
pub struct ParamStore {
    varmap: VarMap,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamStore")
            .field("tensors", &self.len())
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .finish()
    }
}

impl ParamStore {
    /// An empty store whose tensors live on `device`. On the CPU this also
    /// tunes the system allocator for candle's buffers, once per process
    /// ([`tune_system_allocator`](crate::memory::tune_system_allocator)).
    pub fn new(device: &Device) -> Self {
        Self::with_dtype(device, DType::F32)
    }

    /// An empty store whose tensors are created in `dtype` ([`new`](Self::new)
    /// uses `f32`, which every vaekit model trains in). Initial values are
    /// drawn in `f32` and converted, so a `f64` store built with the same seed
    /// holds the same weights as a `f32` one; vaekit's CPU kernels compute in
    /// `f64` end to end, which the PyTorch parity tests use as their reference.
    pub fn with_dtype(device: &Device, dtype: DType) -> Self {
        if device.is_cpu() {
            crate::memory::tune_system_allocator();
        }
        Self {
            varmap: VarMap::new(),
            device: device.clone(),
            dtype,
        }
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype new tensors are created in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// A [`VarBuilder`] that creates each missing tensor from its initialiser, drawing
    /// from a [`ChaCha8Rng`] seeded with `seed`, and stores it here.
    ///
    /// Tensors are drawn in the order the layers ask for them, so building the same
    /// architecture with the same seed gives the same weights.
    pub fn var_builder(&self, seed: u64) -> VarBuilder<'static> {
        let backend = SeededInit {
            varmap: self.varmap.clone(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        };
        VarBuilder::from_backend(Box::new(backend), self.dtype, self.device.clone())
    }

    /// A [`VarBuilder`] over the store's existing tensors as untracked views of
    /// the same storage: layers built from it compute with the current weights
    /// (updates made through the store show through) but record no autograd
    /// graph, so their results keep no intermediates alive. Batch-norm running
    /// statistics stay variables, so that layers can update them in place.
    ///
    /// Asking it for a tensor the store does not hold is an error.
    pub fn untracked_var_builder(&self) -> VarBuilder<'static> {
        let tensors: HashMap<String, Tensor> = self
            .named_vars()
            .into_iter()
            .map(|(name, var)| {
                let t = if is_buffer(&name) {
                    var.as_tensor().clone()
                } else {
                    var.as_detached_tensor()
                };
                (name, t)
            })
            .collect();
        VarBuilder::from_tensors(tensors, self.dtype, &self.device)
    }

    /// Number of tensors (weights and buffers).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trainable variables, sorted by name (buffers excluded).
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.named_vars()
            .into_iter()
            .filter(|(n, _)| !is_buffer(n))
            .map(|(_, v)| v)
            .collect()
    }

    /// Every variable with its name, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let map = self.lock();
        let mut v: Vec<(String, Var)> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every tensor's shape, by name: what [`StateDict::check`] compares a
    /// `state_dict` with.
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.dims().to_vec()))
            .collect()
    }

    /// The variable called `name`, if any.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.lock().get(name).cloned()
    }

    /// Number of trainable scalars.
    pub fn num_trainable(&self) -> usize {
        self.trainable_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Every tensor, by name, detached from the autograd graph. The tensors
    /// share storage with the parameters, so later updates show through them:
    /// copy (`Tensor::copy`) what must outlive the next training step.
    pub fn snapshot(&self) -> BTreeMap<String, Tensor> {
        self.named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_detached_tensor()))
            .collect()
    }

    /// Overwrites every variable with the tensor of the same name in `tensors`.
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] naming the first variable that is missing from `tensors` or
    /// whose shape or dtype differs. Nothing is written unless every tensor fits.
    pub fn assign(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let vars = self.named_vars();
        for (name, var) in &vars {
            let t = tensors
                .get(name)
                .ok_or_else(|| Error::tensor(name, "missing"))?;
            if t.dims() != var.dims() {
                return Err(Error::tensor(
                    name,
                    format!("shape {:?}, expected {:?}", t.dims(), var.dims()),
                ));
            }
            if t.dtype() != var.dtype() {
                return Err(Error::tensor(
                    name,
                    format!("dtype {:?}, expected {:?}", t.dtype(), var.dtype()),
                ));
            }
            if !all_finite(t)? {
                return Err(Error::tensor(name, "holds NaN or infinite values"));
            }
        }
        for (name, var) in &vars {
            if let Some(t) = tensors.get(name) {
                var.set(&t.to_device(&self.device)?)?;
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Var>> {
        // A poisoned lock only means another thread panicked while holding it; the
        // map itself is still consistent (inserts are single operations).
        self.varmap
            .data()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The shapes of the tensors a model would create, found without creating
/// them: layers built from [`ShapeProbe::var_builder`] get one-element tensors
/// broadcast to the shape they ask for, so building even a huge architecture
/// allocates almost nothing. vaekit uses it to check a config's parameter
/// count, and a checkpoint's tensors, before building anything.
#[derive(Debug, Clone, Default)]
pub struct ShapeProbe {
    shapes: std::sync::Arc<Mutex<BTreeMap<String, Vec<usize>>>>,
}

impl ShapeProbe {
    /// A probe with no shape recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// A [`VarBuilder`] that records every tensor asked for (on the CPU).
    pub fn var_builder(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, Device::Cpu)
    }

    /// Every tensor asked for, by name, with its shape.
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.shapes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The number of values in all the tensors asked for, or `None` if it
    /// overflows 64 bits.
    pub fn values(&self) -> Option<u64> {
        self.shapes().values().try_fold(0u64, |acc, dims| {
            let n = dims
                .iter()
                .try_fold(1u64, |p, &d| p.checked_mul(u64::try_from(d).ok()?))?;
            acc.checked_add(n)
        })
    }
}

impl candle_nn::var_builder::SimpleBackend for ShapeProbe {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.shapes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), s.dims().to_vec());
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("shape probe: `{name}` asked for without a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.shapes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }
}

/// Whether every value of the float tensor `t` is finite (one pass).
fn all_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() || t.elem_count() == 0 {
        return Ok(true);
    }
    // x − x is 0 for a finite x and NaN for ±∞ or NaN; NaN ≠ NaN.
    let z = t
        .sub(t)?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(z == 0.0)
}

/// A [`candle_nn::var_builder::SimpleBackend`] that draws missing tensors from a
/// seeded generator and records them in a [`VarMap`].
struct SeededInit {
    varmap: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

impl SeededInit {
    fn draw(&self, shape: &Shape, init: Init, device: &Device) -> candle_core::Result<Tensor> {
        let n = shape.elem_count();
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let data: Vec<f32> = match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => {
                if lo == up {
                    vec![lo as f32; n]
                } else {
                    let d = Uniform::new(lo as f32, up as f32).map_err(candle_core::Error::wrap)?;
                    (0..n).map(|_| d.sample(&mut *rng)).collect()
                }
            }
            Init::Randn { mean, stdev } => {
                let d = Normal::new(mean as f32, stdev as f32).map_err(candle_core::Error::wrap)?;
                (0..n).map(|_| d.sample(&mut *rng)).collect()
            }
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let dims = shape.dims();
                let receptive: usize = dims.iter().skip(2).product();
                let fan_v = match fan {
                    candle_nn::init::FanInOut::FanIn => dims.get(1).copied().unwrap_or(1),
                    candle_nn::init::FanInOut::FanOut => dims.first().copied().unwrap_or(1),
                } * receptive.max(1);
                let std = non_linearity.gain() / (fan_v.max(1) as f64).sqrt();
                match dist {
                    candle_nn::init::NormalOrUniform::Uniform => {
                        let b = (3f64.sqrt() * std) as f32;
                        let d = Uniform::new(-b, b).map_err(candle_core::Error::wrap)?;
                        (0..n).map(|_| d.sample(&mut *rng)).collect()
                    }
                    candle_nn::init::NormalOrUniform::Normal => {
                        let d = Normal::new(0f32, std as f32).map_err(candle_core::Error::wrap)?;
                        (0..n).map(|_| d.sample(&mut *rng)).collect()
                    }
                }
            }
        };
        Tensor::from_vec(data, shape.clone(), device)
    }
}

impl candle_nn::var_builder::SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.varmap.data();
        let mut map = data.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = map.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "parameter `{name}` exists with shape {:?}, asked for {:?}",
                    v.shape(),
                    s
                );
            }
            return Ok(v.as_tensor().clone());
        }
        let t = self.draw(&s, h, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let t = var.as_tensor().clone();
        map.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let data = self.varmap.data();
        let map = data.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("parameter `{name}` has no initialiser"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let data = self.varmap.data();
        let map = data.lock().unwrap_or_else(|p| p.into_inner());
        map.contains_key(name)
    }
}
