//! [`TrainableExt`]: what every [`Trainable`] can do from its parameters and
//! architecture (save, load, its device), and the metadata a saved model
//! carries.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;

use super::json::{architecture_difference, LossSettings};
use super::trainable::Trainable;
use crate::params::{write_checkpoint, CheckpointFile};
use crate::{Error, Result};

/// Metadata key holding the model config (JSON) in a checkpoint.
pub(crate) const CONFIG_KEY: &str = "vaekit.config";
/// Metadata key holding the vaekit version that wrote a checkpoint.
pub(crate) const VERSION_KEY: &str = "vaekit.version";
/// Metadata key holding the loss settings (JSON) a checkpoint's model was
/// trained with: for information, never compared.
pub(crate) const LOSS_KEY: &str = "vaekit.loss";

/// What every [`Trainable`] can do, from its parameters and architecture:
/// saving, loading, its device. Implemented for every `Trainable`; bring it
/// into scope (it is in the [prelude](crate::prelude)) to call it.
pub trait TrainableExt: Trainable {
    /// The device the parameters live on.
    fn device(&self) -> &Device {
        self.params().device()
    }

    /// Saves the weights and buffers (and the architecture, where there is one)
    /// to `path` as safetensors, atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_checkpoint(
            path.as_ref(),
            &self.params().snapshot(),
            &checkpoint_metadata(self),
        )
    }

    /// Overwrites the weights and buffers with those saved in `path` (by
    /// [`save`](Self::save), the trainer's checkpoints, or a PyTorch `state_dict`
    /// with the same names). Tensors the model does not have are ignored.
    ///
    /// What must agree is the network: every tensor's name and shape, and,
    /// when the file and the model both carry an
    /// [`architecture`](Trainable::architecture), the architecture without its
    /// loss settings. The objective, β and free bits may differ, so a model
    /// trained on the ELBO loads into the same network built with the IWAE
    /// objective, to be fine-tuned or scored.
    ///
    /// # Errors
    ///
    /// [`Error::Tensor`] naming a tensor that is missing, of the wrong shape
    /// or dtype, or not finite; [`Error::Checkpoint`] for an unreadable file,
    /// or one whose tensors fit but whose architecture differs (naming the
    /// first field that does). Nothing is changed then.
    fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let file = CheckpointFile::open(path)?;
        let shapes: BTreeMap<String, Vec<usize>> = self
            .params()
            .snapshot()
            .into_iter()
            .map(|(name, t)| (name, t.dims().to_vec()))
            .collect();
        file.check_shapes(&shapes)?;
        if let (Some(saved), Some(ours)) = (file.metadata().get(CONFIG_KEY), self.architecture()) {
            if let Some(difference) = architecture_difference(saved, &ours, LossSettings::Ignored) {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    reason: format!(
                        "it was saved from a model of another architecture: {difference}"
                    ),
                });
            }
        }
        self.params().assign(&file.load(self.device())?.tensors)
    }
}

impl<M: Trainable + ?Sized> TrainableExt for M {}

/// The metadata written with a model's weights: its architecture and loss
/// settings, where it has them, and vaekit's version.
pub(crate) fn checkpoint_metadata<M: Trainable + ?Sized>(model: &M) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::from([(
        VERSION_KEY.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )]);
    if let Some(arch) = model.architecture() {
        meta.insert(CONFIG_KEY.to_string(), arch);
    }
    if let Some(loss) = model.loss_settings() {
        meta.insert(LOSS_KEY.to_string(), loss);
    }
    meta
}
