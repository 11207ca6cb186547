//! The Gaussian-mixture prior and the VampPrior: `log_prob` against an
//! independent numpy computation (`tests/fixtures/make_prior_fixtures.py`),
//! sampling against the mixtures' analytic moments, gradients to the learnable
//! tensors, and VAEs with these priors built from configs.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use common::{assert_close, values};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use vaekit::data::Batch;
use vaekit::latent::{
    gaussian_mixture_prior, GaussianMixturePrior, LatentPrior, MixtureConfig, PosteriorParam,
    PriorConfig, VampConfig, VampPrior,
};
use vaekit::models::StepContext;
use vaekit::models::{Mode, Model, ModelConfig, Preset, Trainable};
use vaekit::nets::{DenseEncoder, DenseEncoderConfig, Encoder, ImageShape};
use vaekit::params::{is_buffer, ParamStore};
use vaekit::Error;

fn fixture() -> Value {
    let text = std::fs::read_to_string(common::fixture_path("priors.json")).expect("priors.json");
    serde_json::from_str(&text).expect("JSON")
}

/// A JSON array of arrays (of arrays) of numbers as an f32 tensor.
fn tensor(v: &Value) -> Tensor {
    fn flatten(v: &Value, out: &mut Vec<f32>, dims: &mut Vec<usize>, depth: usize) {
        match v {
            Value::Array(items) => {
                if dims.len() == depth {
                    dims.push(items.len());
                }
                for item in items {
                    flatten(item, out, dims, depth + 1);
                }
            }
            Value::Number(n) => out.push(n.as_f64().expect("number") as f32),
            other => panic!("not a number: {other}"),
        }
    }
    let (mut data, mut dims) = (Vec::new(), Vec::new());
    flatten(v, &mut data, &mut dims, 0);
    Tensor::from_vec(data, dims, &Device::Cpu).expect("tensor")
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn mixture_log_prob_matches_numpy() {
    let f = &fixture()["mixture"];
    let prior =
        GaussianMixturePrior::from_tensors(tensor(&f["means"]), tensor(&f["logvars"])).unwrap();
    let got = prior.log_prob(&tensor(&f["z"])).unwrap();
    assert_close(
        "mixture log p(z)",
        &got,
        &tensor(&f["log_prob"]),
        1e-5,
        1e-6,
    );
}

/// The fixture's dense encoder of 1×2×3 images, with its weights.
fn fixture_encoder(f: &Value) -> DenseEncoder {
    let weights: HashMap<String, Tensor> = f["weights"]
        .as_object()
        .expect("weights")
        .iter()
        .map(|(k, v)| (k.clone(), tensor(v)))
        .collect();
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    let config = DenseEncoderConfig::new(ImageShape::new(1, 2, 3), &[5], 4);
    DenseEncoder::new(&config, vb).unwrap()
}

/// The fixture's VampPrior over [`fixture_encoder`].
fn fixture_vamp() -> (VampPrior<DenseEncoder>, Value) {
    let f = fixture()["vamp"].clone();
    let prior = VampPrior::new(
        fixture_encoder(&f),
        tensor(&f["pseudo_inputs"]),
        PosteriorParam::LogVariance,
    )
    .unwrap();
    (prior, f)
}

#[test]
fn vamp_prior_matches_numpy() {
    let (prior, f) = fixture_vamp();
    assert_eq!((prior.components(), prior.latent_dim()), (4, 2));
    let q = prior.component_posteriors().unwrap();
    assert_close(
        "component means",
        q.mean(),
        &tensor(&f["component_means"]),
        1e-5,
        1e-6,
    );
    assert_close(
        "component logvars",
        q.logvar(),
        &tensor(&f["component_logvars"]),
        1e-5,
        1e-6,
    );
    let got = prior.log_prob(&tensor(&f["z"])).unwrap();
    assert_close(
        "VampPrior log p(z)",
        &got,
        &tensor(&f["log_prob"]),
        1e-5,
        1e-6,
    );
}

/// Mean and per-dimension variance of `n` draws `[n, d]`.
fn moments(samples: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = samples.dims2().unwrap();
    let v = values(samples);
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| v[i * d + j]).sum::<f64>() / n as f64)
        .collect();
    let var: Vec<f64> = (0..d)
        .map(|j| {
            (0..n)
                .map(|i| (v[i * d + j] - mean[j]).powi(2))
                .sum::<f64>()
                / n as f64
        })
        .collect();
    (mean, var)
}

/// The analytic mean and per-dimension variance of an equal-weight mixture.
fn mixture_moments(means: &[Vec<f64>], logvars: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let k = means.len() as f64;
    let d = means[0].len();
    let mean: Vec<f64> = (0..d)
        .map(|j| means.iter().map(|m| m[j]).sum::<f64>() / k)
        .collect();
    let var: Vec<f64> = (0..d)
        .map(|j| {
            means
                .iter()
                .zip(logvars)
                .map(|(m, l)| l[j].exp() + m[j] * m[j])
                .sum::<f64>()
                / k
                - mean[j] * mean[j]
        })
        .collect();
    (mean, var)
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let (_, d) = t.dims2().unwrap();
    values(t).chunks(d).map(<[f64]>::to_vec).collect()
}

#[test]
fn mixture_and_vamp_samples_have_the_mixtures_moments() {
    let f = fixture();
    let mixture = GaussianMixturePrior::from_tensors(
        tensor(&f["mixture"]["means"]),
        tensor(&f["mixture"]["logvars"]),
    )
    .unwrap();
    let (vamp, v) = fixture_vamp();
    let cases: [(&str, &dyn LatentPrior, Tensor, Tensor); 2] = [
        (
            "mixture",
            &mixture,
            tensor(&f["mixture"]["means"]),
            tensor(&f["mixture"]["logvars"]),
        ),
        (
            "vamp",
            &vamp,
            tensor(&v["component_means"]),
            tensor(&v["component_logvars"]),
        ),
    ];
    let n = 200_000;
    for (name, prior, means, logvars) in cases {
        let samples = prior.sample(n, &mut rng(3), &Device::Cpu).unwrap();
        assert_eq!(samples.dims(), [n, 2]);
        let (mean, var) = moments(&samples);
        let (want_mean, want_var) = mixture_moments(&rows(&means), &rows(&logvars));
        for j in 0..2 {
            // Standard errors at n = 200,000: ≈ σ/450 for the mean, ≈ σ²/300
            // for the variance; allow five of them.
            let se_mean = (want_var[j] / n as f64).sqrt();
            assert!(
                (mean[j] - want_mean[j]).abs() < 5.0 * se_mean,
                "{name}: mean[{j}] {} vs {}",
                mean[j],
                want_mean[j]
            );
            assert!(
                (var[j] - want_var[j]).abs() < 0.02 * want_var[j],
                "{name}: var[{j}] {} vs {}",
                var[j],
                want_var[j]
            );
        }
        // The same generator state gives the same draws, another state others.
        let draw = |seed| values(&prior.sample(5, &mut rng(seed), &Device::Cpu).unwrap());
        assert_eq!(draw(4), draw(4), "{name}");
        assert_ne!(draw(4), draw(5), "{name}");
    }
}

#[test]
fn gradients_reach_the_learnable_tensors_and_never_the_fixed_ones() {
    for learn in [true, false] {
        let params = ParamStore::new(&Device::Cpu);
        let config = MixtureConfig::default()
            .with_components(3)
            .with_learn_means(learn)
            .with_learn_variances(learn);
        let prior = gaussian_mixture_prior(2, &config, params.var_builder(1).pp("prior")).unwrap();
        let names: Vec<String> = params.named_vars().into_iter().map(|(n, _)| n).collect();
        let want = if learn {
            ["prior.logvars", "prior.means"]
        } else {
            ["prior.fixed_logvars", "prior.fixed_means"]
        };
        assert_eq!(names, want);
        assert_eq!(names.iter().all(|n| is_buffer(n)), !learn);
        assert_eq!(params.trainable_vars().len(), if learn { 2 } else { 0 });
        let z = Tensor::new(&[[0.3f32, -0.2], [1.0, 0.5]], &Device::Cpu).unwrap();
        let grads = prior
            .log_prob(&z)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in params.trainable_vars() {
            let g = values(grads.get(var.as_tensor()).expect("a gradient"));
            assert!(g.iter().any(|v| *v != 0.0) && g.iter().all(|v| v.is_finite()));
        }
    }

    // The VampPrior's pseudo-inputs are trained through the encoder.
    let (fixed, f) = fixture_vamp();
    let u = Var::from_tensor(&fixed.pseudo_inputs().copy().unwrap()).unwrap();
    let prior = VampPrior::new(
        fixture_encoder(&f),
        u.as_tensor().clone(),
        PosteriorParam::LogVariance,
    )
    .unwrap();
    let grads = prior
        .log_prob(&tensor(&f["z"]))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = values(grads.get(u.as_tensor()).expect("pseudo-input gradient"));
    // Pixels clamped away (outside [0, 1]) get no gradient; the others do.
    let px = values(u.as_tensor());
    for (gi, pi) in g.iter().zip(&px) {
        if !(0.0..=1.0).contains(pi) {
            assert_eq!(*gi, 0.0, "a clamped pixel ({pi}) got gradient {gi}");
        }
    }
    assert!(
        g.iter().any(|v| *v != 0.0),
        "no gradient reached the pseudo-inputs"
    );
}

fn with_prior(prior: PriorConfig) -> ModelConfig {
    match Preset::DenseVae.config() {
        ModelConfig::Vae(mut c) => {
            c.prior = prior;
            ModelConfig::Vae(c)
        }
        _ => unreachable!("dense-vae is a VAE"),
    }
}

#[test]
fn configs_build_train_save_and_load_every_prior() {
    let digits = vaekit::data::Mnist::bundled().unwrap();
    let batch = digits
        .train
        .batch(&(0..64).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap();
    let dir = common::temp_dir("priors-roundtrip");
    let priors = [
        PriorConfig::GaussianMixture(MixtureConfig::default()),
        PriorConfig::GaussianMixture(
            MixtureConfig::default()
                .with_learn_means(false)
                .with_learn_variances(false),
        ),
        PriorConfig::Vamp(VampConfig::default().with_components(8)),
    ];
    for (i, prior) in priors.into_iter().enumerate() {
        let config = with_prior(prior.clone());
        // The config survives JSON.
        assert_eq!(
            ModelConfig::from_json(&config.to_json()).unwrap().get(),
            &config
        );
        let model = Model::new(&config, &Device::Cpu, 4).unwrap();
        let prior_vars: Vec<String> = model
            .params()
            .named_vars()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("prior."))
            .collect();
        assert!(
            !prior_vars.is_empty(),
            "{prior:?}: the prior's tensors live in the model"
        );
        // Samples come from the prior, not from N(0, I).
        let vae = model.as_vae().unwrap();
        let z = vae.prior().sample(4, &mut rng(0), &Device::Cpu).unwrap();
        assert_eq!(z.dims(), [4, 2]);
        assert_eq!(model.sample(4, &mut rng(0)).unwrap().dims(), [4, 1, 28, 28]);
        // A few optimizer steps move exactly the trainable prior tensors.
        let before = model.params().snapshot();
        let before: HashMap<String, Vec<f64>> = before
            .iter()
            .map(|(n, t)| (n.clone(), values(&t.copy().unwrap())))
            .collect();
        let mut opt = vaekit::train::OptimizerConfig::default()
            .build(model.params().trainable_vars())
            .unwrap();
        let mut losses = Vec::new();
        for step in 0..20 {
            let terms = model
                .batch_loss(&batch, &mut rng(step), &StepContext::of(Mode::Train))
                .unwrap();
            losses.push(common::scalar(&terms.total));
            opt.backward_step(&terms.total).unwrap();
        }
        assert!(
            losses.iter().all(|l| l.is_finite()),
            "{prior:?}: {losses:?}"
        );
        assert!(losses[19] < losses[0], "{prior:?}: {losses:?}");
        for name in &prior_vars {
            let now = values(
                &model
                    .params()
                    .get(name)
                    .unwrap()
                    .as_tensor()
                    .copy()
                    .unwrap(),
            );
            let moved = now != before[name];
            assert_eq!(moved, !is_buffer(name), "{prior:?}: {name} moved = {moved}");
        }
        // Save and load: the same prior tensors and the same log-density.
        let path = dir.join(format!("{i}.safetensors"));
        model.save(&path).unwrap();
        let loaded = Model::load(&path, &Device::Cpu).unwrap();
        let z = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.1]], &Device::Cpu).unwrap();
        let a = values(&model.as_vae().unwrap().prior().log_prob(&z).unwrap());
        let b = values(&loaded.as_vae().unwrap().prior().log_prob(&z).unwrap());
        assert_eq!(a, b, "{prior:?}");
    }
}

#[test]
fn bad_prior_settings_name_the_field() {
    let cases = [
        (
            PriorConfig::GaussianMixture(MixtureConfig::default().with_components(0)),
            "prior.components",
        ),
        (
            PriorConfig::GaussianMixture(MixtureConfig::default().with_sigma(-1.0)),
            "prior.sigma",
        ),
        (
            PriorConfig::Vamp(VampConfig::default().with_init_std(f64::NAN)),
            "prior.init_std",
        ),
    ];
    for (prior, field) in cases {
        match Model::new(&with_prior(prior), &Device::Cpu, 0) {
            Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let json = with_prior(PriorConfig::GaussianMixture(MixtureConfig::default()))
        .to_json()
        .replace("\"learn_means\":true", "\"learn_means\":\"yes\"");
    match ModelConfig::from_json(&json) {
        Err(Error::Config { field, .. }) => assert_eq!(field, "prior.learn_means"),
        other => panic!("{other:?}"),
    }
    let batch = Batch::new(
        Tensor::zeros((1, 1, 28, 28), DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros(1, DType::U32, &Device::Cpu).unwrap(),
    );
    assert_eq!(batch.len(), 1);
}

/// An encoder of the user's that is not `Debug`: the VampPrior over it is still
/// a `LatentPrior` (it once needed `E: Debug`, which no doc said).
struct PlainEncoder(DenseEncoder);

impl candle_nn::ModuleT for PlainEncoder {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.0.forward_t(xs, train)
    }
}

impl Encoder for PlainEncoder {
    fn input_shape(&self) -> ImageShape {
        self.0.input_shape()
    }
    fn output_dim(&self) -> usize {
        self.0.output_dim()
    }
}

#[test]
fn a_vamp_prior_over_an_encoder_that_is_not_debug_is_a_latent_prior() {
    let f = fixture()["vamp"].clone();
    let plain = VampPrior::new(
        PlainEncoder(fixture_encoder(&f)),
        tensor(&f["pseudo_inputs"]),
        PosteriorParam::LogVariance,
    )
    .unwrap();
    let boxed: Box<dyn LatentPrior> = Box::new(plain);
    let (same, _) = fixture_vamp();
    let z = tensor(&f["z"]);
    let a = boxed.log_prob(&z).unwrap().to_vec1::<f32>().unwrap();
    let b = same.log_prob(&z).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b);
    let shown = format!("{boxed:?}");
    assert!(
        shown.contains("PlainEncoder") && shown.contains("latent_dim: 2"),
        "{shown}"
    );
}
