//! Which prior a model built from a config uses.

use serde::Serialize;

use super::{MixtureConfig, VampConfig};
use crate::Result;

/// The prior of a VAE built from a config, tagged by `type` in JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PriorConfig {
    /// `N(0, I)`, with a closed-form KL.
    #[default]
    StandardNormal,
    /// A Gaussian mixture with fixed or learnable means and variances
    /// ([`GaussianMixturePrior`](super::GaussianMixturePrior)).
    GaussianMixture(MixtureConfig),
    /// The VampPrior ([`VampPrior`](super::VampPrior)): learnable pseudo-inputs
    /// passed through the encoder.
    Vamp(VampConfig),
}

crate::tagged::tagged_deserialize!(PriorConfig, "type", {
    "standard_normal" => StandardNormal,
    "gaussian_mixture" => GaussianMixture(MixtureConfig),
    "vamp" => Vamp(VampConfig),
});

impl PriorConfig {
    /// Checks the values; errors name the field under `field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) naming the first field that cannot work.
    pub fn validate(&self, field: &str) -> Result<()> {
        match self {
            PriorConfig::StandardNormal => Ok(()),
            PriorConfig::GaussianMixture(c) => c.validate(field),
            PriorConfig::Vamp(c) => c.validate(field),
        }
    }
}
