//! Numbers to report about a trained VAE: the importance-sampled
//! log-likelihood (Burda et al. 2016) in nats per image and bits per
//! dimension, and latent diagnostics — the KL per dimension, active units and
//! traversals.
//!
//! Everything takes a [`LatentModel`]: any [`Vae`](crate::models::Vae)
//! (whatever its encoder, decoder, prior and conditioning), a
//! [`Model`](crate::models::Model) holding one, or a model of your own that
//! gives a posterior, log importance weights and a decoder. A conditioned
//! model is scored on `log p(x | c)`, its condition given as a
//! [`Condition`](crate::models::Condition) (a dataset's labels).

mod diagnostics;
mod likelihood;

pub use diagnostics::{
    latent_statistics, latent_traversal, LatentStatistics, ACTIVE_UNIT_THRESHOLD,
};
pub use likelihood::{
    dataset_log_likelihood, importance_noise, importance_sampled_log_likelihood, log_mean_exp,
    ImportanceSampling, LikelihoodEstimate, MAX_IMPORTANCE_SAMPLES, MAX_PASS_VALUES, MAX_PER_PASS,
};

pub use crate::models::LatentModel;
