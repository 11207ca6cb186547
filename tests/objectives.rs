//! The objectives as the papers define them: free bits per dimension or per
//! group for both KL estimators (Kingma et al. 2016), β schedules per epoch
//! and per step (Sønderby et al. 2016, Bowman et al. 2016, Fu et al. 2019),
//! the Monte Carlo error of the importance-sampled likelihood, and weights
//! that load whatever objective the network is trained or scored with.

mod common;

use std::cell::RefCell;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vaekit::data::{Batch, Mnist};
use vaekit::eval::{
    dataset_log_likelihood, importance_noise, importance_sampled_log_likelihood,
    ImportanceSampling, LatentModel,
};
use vaekit::latent::{DiagonalGaussian, MixtureConfig, PriorConfig};
use vaekit::models::{
    Condition, ConditioningConfig, DenseVae, KlEstimator, LossTerms, Mode, Model, ModelConfig,
    Objective, Preset, StepContext, Trainable, TrainableExt, VaeConfig, VaeLossConfig,
};
use vaekit::nets::{Activation, EncoderConfig, ImageShape, OutputKind};
use vaekit::params::{CheckpointFile, ParamStore};
use vaekit::train::{
    read_history, BetaSchedule, Progress, TrainConfig, Trainer, CHECKPOINT_FILE, HISTORY_FILE,
};
use vaekit::{Error, Result};

use common::{head, load_fixture, scalar, temp_dir, values};

const SHAPE: ImageShape = ImageShape::new(1, 4, 4);

/// A dense VAE over 4×4 images (8 hidden units).
fn small_vae(
    latent: usize,
    loss: VaeLossConfig,
    seed: u64,
    encoder_name: &str,
) -> Result<DenseVae> {
    common::dense_vae_under(
        encoder_name,
        SHAPE,
        &[8],
        latent,
        OutputKind::Logits,
        loss,
        seed,
    )
}

/// `b` images of 4×4 pixels in `[0, 1]` and `b × latent` noise, seeded.
fn images_and_noise(b: usize, latent: usize, seed: u64) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let px: Vec<f32> = (0..b * 16).map(|_| rng.random::<f32>()).collect();
    let eps: Vec<f32> = (0..b * latent)
        .map(|_| rng.random::<f32>() * 4.0 - 2.0)
        .collect();
    (
        Tensor::from_vec(px, (b, 1, 4, 4), &Device::Cpu).unwrap(),
        Tensor::from_vec(eps, (b, latent), &Device::Cpu).unwrap(),
    )
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

/// The KL per image and dimension, computed here in `f64` from the
/// posterior's mean and log-variance and the `z` the decoder saw: the closed
/// form `−½ (1 + lv − μ² − e^{lv})`, or the single-sample
/// `log N(z; μ, e^{lv}) − log N(z; 0, 1) = −½ ((z − μ)² e^{−lv} + lv − z²)`.
fn kl_by_hand(q: &DiagonalGaussian, z: &Tensor, kl: KlEstimator) -> Vec<Vec<f64>> {
    let (mu, lv, z) = (rows(q.mean()), rows(q.logvar()), rows(z));
    (0..mu.len())
        .map(|b| {
            (0..mu[b].len())
                .map(|d| {
                    let (m, l, z) = (mu[b][d], lv[b][d], z[b][d]);
                    match kl {
                        KlEstimator::SingleSample => {
                            -0.5 * ((z - m).powi(2) * (-l).exp() + l - z * z)
                        }
                        _ => -0.5 * (1.0 + l - m * m - l.exp()),
                    }
                })
                .collect()
        })
        .collect()
}

/// `Σ_j max(λ, mean_b Σ_{d ∈ group j} KL_{b,d})` over `groups` equal groups.
fn free_bits_by_hand(kl: &[Vec<f64>], lambda: f64, groups: usize) -> f64 {
    group_means(kl, groups).iter().map(|g| g.max(lambda)).sum()
}

/// The batch mean of each group's KL.
fn group_means(kl: &[Vec<f64>], groups: usize) -> Vec<f64> {
    let size = kl[0].len() / groups;
    (0..groups)
        .map(|j| {
            kl.iter()
                .map(|row| row[j * size..(j + 1) * size].iter().sum::<f64>())
                .sum::<f64>()
                / kl.len() as f64
        })
        .collect()
}

/// The KL part of a VAE's total, `total − reconstruction`, at fixed noise,
/// with what it was computed from.
fn kl_part(vae: &DenseVae, xs: &Tensor, eps: &Tensor) -> (f64, DiagonalGaussian, Tensor) {
    let out = vae
        .forward_with_eps(xs, Condition::None, eps, false)
        .unwrap();
    let elbo = vae
        .loss(
            &out,
            xs,
            &mut ChaCha8Rng::seed_from_u64(0),
            vae.loss_config().beta,
        )
        .unwrap();
    (
        scalar(&elbo.total) - scalar(&elbo.reconstruction),
        out.posterior,
        out.z,
    )
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
        "{what}: {got} vs {want} by hand"
    );
}

#[test]
fn free_bits_apply_to_the_chosen_kl_estimator_per_dimension_and_per_group() {
    let (xs, eps) = images_and_noise(6, 4, 1);
    for kl in [KlEstimator::Analytic, KlEstimator::SingleSample] {
        let base = VaeLossConfig::default().with_kl(kl);
        let plain = small_vae(4, base, 3, "encoder").unwrap();
        let (plain_part, q, z) = kl_part(&plain, &xs, &eps);
        let by_hand = kl_by_hand(&q, &z, kl);
        // Without free bits the KL part is the batch mean of the estimator.
        let mean_kl = by_hand.iter().map(|r| r.iter().sum::<f64>()).sum::<f64>() / 6.0;
        close(&format!("{kl:?}: no free bits"), plain_part, mean_kl);
        for groups in [None, Some(2), Some(1)] {
            let k = groups.unwrap_or(4);
            let means = group_means(&by_hand, k);
            // λ between the groups' KLs (or above the single group's), so
            // some are raised and some are not.
            let lambda = if k == 1 {
                means[0] + 0.75
            } else {
                means.iter().sum::<f64>() / k as f64
            };
            if k > 1 {
                assert!(
                    means.iter().any(|&m| m < lambda) && means.iter().any(|&m| m > lambda),
                    "{kl:?}: λ = {lambda} should split the groups {means:?}"
                );
            }
            for (beta, reduction) in [
                (1.0, vaekit::losses::Reduction::BatchMean),
                (0.5, vaekit::losses::Reduction::Sum),
            ] {
                let loss = base
                    .with_free_bits(Some(lambda))
                    .with_free_bits_groups(groups)
                    .with_beta(beta)
                    .with_reduction(reduction);
                let vae = small_vae(4, loss, 3, "encoder").unwrap();
                let (part, _, _) = kl_part(&vae, &xs, &eps);
                let scale = match reduction {
                    vaekit::losses::Reduction::Sum => 6.0,
                    _ => 1.0,
                };
                close(
                    &format!("{kl:?}, λ = {lambda}, groups {groups:?}, β = {beta}, {reduction:?}"),
                    part,
                    beta * scale * free_bits_by_hand(&by_hand, lambda, k),
                );
            }
        }
    }
}

#[test]
fn the_single_sample_kl_with_free_bits_is_not_the_analytic_one() {
    // λ = 0 keeps every dimension whose batch-mean KL is positive: the
    // single-sample total is then the Monte Carlo KL, not the closed form
    // that free bits used to put in its place.
    let (xs, eps) = images_and_noise(6, 4, 2);
    let loss = VaeLossConfig::default()
        .with_kl(KlEstimator::SingleSample)
        .with_free_bits(Some(0.0));
    let vae = small_vae(4, loss, 5, "encoder").unwrap();
    let (part, q, z) = kl_part(&vae, &xs, &eps);
    let single = free_bits_by_hand(&kl_by_hand(&q, &z, KlEstimator::SingleSample), 0.0, 4);
    let analytic = free_bits_by_hand(&kl_by_hand(&q, &z, KlEstimator::Analytic), 0.0, 4);
    close("single-sample free bits", part, single);
    assert!(
        (single - analytic).abs() > 1e-2,
        "the test needs noise where the two differ: {single} vs {analytic}"
    );
}

#[test]
fn free_bits_settings_that_cannot_work_are_refused_naming_the_field() {
    let field = |e: Error| match e {
        Error::Config { field, .. } => field,
        other => panic!("expected a config error, got {other:?}"),
    };
    let kind = OutputKind::Logits;
    let groups_alone = VaeLossConfig::default().with_free_bits_groups(Some(2));
    assert_eq!(
        field(groups_alone.validate("loss", kind).unwrap_err()),
        "loss.free_bits_groups"
    );
    let zero = groups_alone
        .with_free_bits(Some(0.5))
        .with_free_bits_groups(Some(0));
    assert_eq!(
        field(zero.validate("loss", kind).unwrap_err()),
        "loss.free_bits_groups"
    );
    let iwae = VaeLossConfig::default()
        .with_free_bits(Some(0.5))
        .with_objective(Objective::Iwae { samples: 5 });
    assert_eq!(
        field(iwae.validate("loss", kind).unwrap_err()),
        "loss.free_bits"
    );
    // 3 groups do not split 4 dimensions.
    let uneven = VaeLossConfig::default()
        .with_free_bits(Some(0.5))
        .with_free_bits_groups(Some(3));
    assert_eq!(
        field(small_vae(4, uneven, 0, "encoder").unwrap_err()),
        "loss.free_bits_groups"
    );
    assert!(small_vae(4, uneven.with_free_bits_groups(Some(2)), 0, "encoder").is_ok());

    // From a config: the same checks, and a prior without a KL per dimension.
    let with_loss = |f: &dyn Fn(&mut vaekit::models::VaeConfig)| {
        let mut config = Preset::DenseVae.config();
        if let ModelConfig::Vae(c) = &mut config {
            f(c);
        }
        config.check()
    };
    let err = with_loss(&|c| c.loss.free_bits_groups = Some(3)).unwrap_err();
    assert_eq!(field(err), "loss.free_bits_groups");
    let err = with_loss(&|c| {
        c.loss.free_bits = Some(0.5);
        c.prior = PriorConfig::GaussianMixture(MixtureConfig::default());
    })
    .unwrap_err();
    assert_eq!(field(err), "loss.free_bits");
    assert!(with_loss(&|c| c.loss.free_bits = Some(0.5)).is_ok());
}

#[test]
fn run_files_with_free_bits_as_a_number_keep_loading_and_meaning_the_same() {
    let json = r#"{"likelihood": "bernoulli", "kl": "analytic", "beta": 1.0,
                   "reduction": "batch_mean", "free_bits": 0.5}"#;
    let loss: VaeLossConfig = serde_json::from_str(json).unwrap();
    assert_eq!(
        loss,
        VaeLossConfig::default().with_free_bits(Some(0.5)),
        "a number is λ per dimension, as before"
    );
    let out = serde_json::to_string(&loss).unwrap();
    assert!(
        out.contains(r#""free_bits":0.5"#) && !out.contains("groups"),
        "{out}"
    );
    let grouped: VaeLossConfig = serde_json::from_str(&json.replace(
        r#""free_bits": 0.5"#,
        r#""free_bits": 0.5, "free_bits_groups": 2"#,
    ))
    .unwrap();
    assert_eq!(grouped.free_bits_groups, Some(2));
}

#[test]
fn the_digit_conditioned_vae_applies_free_bits_and_the_iwae_bound_as_the_vae_does() {
    let with_loss = |f: &dyn Fn(VaeLossConfig) -> VaeLossConfig| {
        let mut config = Preset::DigitCvae.config();
        if let ModelConfig::Vae(c) = &mut config {
            c.loss = f(c.loss);
        }
        Model::new(&config, &Device::Cpu, 4)
    };
    let digits = Mnist::bundled().unwrap();
    let batch = digits
        .test
        .batch(&(0..8).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap();
    let labels = batch.labels.clone().unwrap();
    let (_, eps) = images_and_noise(8, 10, 3);
    let lambda = 0.4;
    let model = with_loss(&|l| {
        l.with_free_bits(Some(lambda))
            .with_free_bits_groups(Some(5))
    })
    .unwrap();
    let cvae = model.as_vae().unwrap();
    let class_weight = match model.config() {
        ModelConfig::Vae(VaeConfig {
            conditioning: Some(ConditioningConfig::Classifier(c)),
            ..
        }) => c.class_weight,
        other => panic!("not the digit-conditioned VAE: {other:?}"),
    };
    let out = cvae
        .forward_with_eps(&batch.images, Condition::Labels(&labels), &eps, false)
        .unwrap();
    let loss = cvae
        .loss_terms(
            &out,
            &batch.images,
            Some(&labels),
            &mut ChaCha8Rng::seed_from_u64(0),
            &StepContext::eval(),
        )
        .unwrap();
    let ce = scalar(loss.term("classification").unwrap());
    let part =
        scalar(&loss.total) - scalar(loss.term("reconstruction").unwrap()) - class_weight * ce;
    let by_hand = kl_by_hand(&out.posterior, &out.z, KlEstimator::Analytic);
    let means = group_means(&by_hand, 5);
    assert!(
        means.iter().any(|&m| m < lambda),
        "λ should raise a group: {means:?}"
    );
    close(
        "digit cvae free bits",
        part,
        free_bits_by_hand(&by_hand, lambda, 5),
    );

    // The IWAE bound with one sample is the single-sample ELBO, the
    // classifier's term added to both alike.
    let iwae = |k| with_loss(&|l| l.with_objective(Objective::Iwae { samples: k })).unwrap();
    let elbo = with_loss(&|l| l.with_kl(KlEstimator::SingleSample)).unwrap();
    let score = |m: &Model| {
        let terms = m
            .evaluate(
                &batch,
                &mut ChaCha8Rng::seed_from_u64(5),
                &StepContext::eval(),
            )
            .unwrap();
        assert!(terms.term("classification").is_some());
        assert!(terms.term("accuracy").is_some());
        scalar(&terms.total)
    };
    close("digit cvae IWAE-1 = ELBO", score(&iwae(1)), score(&elbo));
    assert!(score(&iwae(20)) < score(&iwae(1)));
}

/// Records the β of every training step of the model it wraps.
struct BetaRecorder<'a> {
    model: &'a DenseVae,
    seen: RefCell<Vec<f64>>,
}

impl Trainable for BetaRecorder<'_> {
    fn params(&self) -> &ParamStore {
        self.model.params()
    }
    fn batch_loss(
        &self,
        batch: &Batch,
        rng: &mut dyn RngCore,
        ctx: &StepContext,
    ) -> candle_core::Result<LossTerms> {
        if ctx.mode == Mode::Train {
            let configured = self.model.loss_config().beta;
            self.seen.borrow_mut().push(ctx.beta_or(configured));
        }
        self.model.batch_loss(batch, rng, ctx)
    }
    fn beta(&self) -> Option<f64> {
        Trainable::beta(self.model)
    }
}

/// A dense VAE over MNIST digits (32 hidden units, latent 4).
fn mnist_vae(seed: u64) -> DenseVae {
    common::dense_vae(
        ImageShape::MNIST,
        &[32],
        4,
        OutputKind::Logits,
        VaeLossConfig::default(),
        seed,
    )
}

#[test]
fn per_step_schedules_change_beta_within_an_epoch_and_resume_bit_identically() {
    let digits = Mnist::bundled().unwrap();
    let (train, test) = (head(&digits.train, 300), head(&digits.test, 100));
    // 300 images in batches of 50: 6 steps per epoch; cycles of 4 steps.
    let cyclical = BetaSchedule::CyclicalPerStep {
        period: 4,
        ratio: 0.5,
        max: 1.0,
    };
    let config = |epochs, schedule| {
        TrainConfig::default()
            .with_epochs(epochs)
            .with_batch_size(50)
            .with_progress(Progress::Hidden)
            .with_beta_schedule(Some(schedule))
    };
    let vae = mnist_vae(8);
    let recorder = BetaRecorder {
        model: &vae,
        seen: RefCell::new(Vec::new()),
    };
    let dir = temp_dir("objectives-per-step");
    Trainer::new(config(2, cyclical))
        .unwrap()
        .output_dir(&dir)
        .fit(&recorder, &train, &test)
        .unwrap();
    // Global steps 1–12: τ = ((t − 1) mod 4) / 4, β = min(1, τ / 0.5).
    assert_eq!(
        *recorder.seen.borrow(),
        [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    );
    // The history records each epoch's mean β: 3 / 6 and 4.5 / 6.
    let betas: Vec<f64> = read_history(dir.join(HISTORY_FILE))
        .unwrap()
        .iter()
        .map(|h| h["beta"].as_f64().unwrap())
        .collect();
    assert_eq!(betas, [0.5, 0.75]);

    // Bowman's sigmoid: a straight run of 3 epochs against 2 + a resumed 1.
    let sigmoid = BetaSchedule::Sigmoid {
        k: 0.5,
        x0: 9.0,
        max: 1.0,
    };
    let weights = |vae: &DenseVae| -> Vec<Vec<u32>> {
        vae.params()
            .snapshot()
            .into_values()
            .map(|t| {
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            })
            .collect()
    };
    let straight_dir = temp_dir("objectives-sigmoid-straight");
    let straight = mnist_vae(9);
    let straight_rec = BetaRecorder {
        model: &straight,
        seen: RefCell::new(Vec::new()),
    };
    Trainer::new(config(3, sigmoid))
        .unwrap()
        .output_dir(&straight_dir)
        .fit(&straight_rec, &train, &test)
        .unwrap();
    let seen = straight_rec.seen.borrow().clone();
    let expected: Vec<f64> = (1..=18)
        .map(|t| 1.0 / (1.0 + (-0.5 * (t as f64 - 9.0)).exp()))
        .collect();
    assert_eq!(seen, expected, "β at every global step");

    let resumed_dir = temp_dir("objectives-sigmoid-resumed");
    let first = mnist_vae(9);
    Trainer::new(config(2, sigmoid))
        .unwrap()
        .output_dir(&resumed_dir)
        .fit(&first, &train, &test)
        .unwrap();
    let resumed = mnist_vae(9);
    let resumed_rec = BetaRecorder {
        model: &resumed,
        seen: RefCell::new(Vec::new()),
    };
    Trainer::new(config(3, sigmoid))
        .unwrap()
        .output_dir(&resumed_dir)
        .resume(&resumed_rec, &train, &test)
        .unwrap();
    assert_eq!(
        *resumed_rec.seen.borrow(),
        expected[12..],
        "the resumed epoch's β"
    );
    assert!(
        weights(&resumed) == weights(&straight),
        "resumed weights differ"
    );
    let history = |d: &std::path::Path| read_history(d.join(HISTORY_FILE)).unwrap();
    let (a, b) = (history(&straight_dir), history(&resumed_dir));
    assert_eq!(a.len(), 3);
    for key in ["beta", "test_loss", "train_loss"] {
        let col = |h: &[std::collections::HashMap<String, serde_json::Value>]| {
            h.iter().map(|r| r[key].clone()).collect::<Vec<_>>()
        };
        assert_eq!(col(&a), col(&b), "{key}");
    }
}

#[test]
fn weights_load_whatever_the_objective_and_a_different_network_is_refused_naming_it() {
    let dir = temp_dir("objectives-load");
    let saved = Model::from_preset(Preset::DenseVae, &Device::Cpu, 1).unwrap();
    let path = dir.join("elbo.safetensors");
    saved.save(&path).unwrap();
    let meta = CheckpointFile::open(&path).unwrap().metadata().clone();
    assert!(meta["vaekit.loss"].contains(r#""beta":1.0"#), "{meta:?}");

    let with = |f: &dyn Fn(&mut vaekit::models::VaeConfig)| {
        let mut config = Preset::DenseVae.config();
        if let ModelConfig::Vae(c) = &mut config {
            f(c);
        }
        Model::new(&config, &Device::Cpu, 2).unwrap()
    };
    let digits = Mnist::bundled().unwrap();
    let batch = digits
        .test
        .batch(&(0..10).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap();
    let bits = |m: &Model| -> Vec<Vec<u32>> {
        m.params()
            .snapshot()
            .into_values()
            .map(|t| values(&t).iter().map(|v| (*v as f32).to_bits()).collect())
            .collect()
    };
    for (what, model) in [
        (
            "IWAE",
            with(&|c| c.loss.objective = Objective::Iwae { samples: 5 }),
        ),
        (
            "β = 4 with free bits in groups",
            with(&|c| {
                c.loss.beta = 4.0;
                c.loss.free_bits = Some(0.5);
                c.loss.free_bits_groups = Some(1);
            }),
        ),
        (
            "single-sample KL",
            with(&|c| c.loss.kl = KlEstimator::SingleSample),
        ),
    ] {
        assert_ne!(bits(&model), bits(&saved), "{what}: other initial weights");
        model
            .load_weights(&path)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(bits(&model), bits(&saved), "{what}: the saved weights");
        let loss = model
            .evaluate(
                &batch,
                &mut ChaCha8Rng::seed_from_u64(0),
                &StepContext::eval(),
            )
            .unwrap();
        assert!(scalar(&loss.total).is_finite(), "{what}: scores");
    }
    // Loaded, a network scores with its own objective: the IWAE bound on 50
    // samples is tighter than on 1.
    let iwae = |k| {
        let m = with(&|c| c.loss.objective = Objective::Iwae { samples: k });
        m.load_weights(&path).unwrap();
        m
    };
    let mean = |m: &Model| {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        (0..10)
            .map(|_| {
                scalar(
                    &m.evaluate(&batch, &mut rng, &StepContext::eval())
                        .unwrap()
                        .total,
                )
            })
            .sum::<f64>()
            / 10.0
    };
    let (k50, k1) = (mean(&iwae(50)), mean(&iwae(1)));
    assert!(k50 < k1, "IWAE-50 {k50} vs IWAE-1 {k1}");

    // Another tensor shape: refused naming the tensor.
    let wider = with(&|c| {
        if let EncoderConfig::Dense(e) = &mut c.encoder {
            e.hidden = vec![128];
        }
    });
    match wider.load_weights(&path) {
        Err(Error::Tensor { name, reason }) => {
            assert_eq!(name, "encoder.hidden.0.bias");
            assert!(
                reason.contains("[256]") && reason.contains("[128]"),
                "{reason}"
            );
        }
        other => panic!("expected a tensor error, got {other:?}"),
    }
    // The same tensors but another activation: refused naming the field.
    let tanh = with(&|c| {
        if let EncoderConfig::Dense(e) = &mut c.encoder {
            e.activation = Activation::Tanh;
        }
    });
    match tanh.load_weights(&path) {
        Err(Error::Checkpoint { reason, .. }) => {
            assert!(reason.contains("`encoder.activation`"), "{reason}")
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
    // Another tensor name, in a model assembled by hand.
    let hand = dir.join("hand.safetensors");
    small_vae(2, VaeLossConfig::default(), 1, "encoder")
        .unwrap()
        .save(&hand)
        .unwrap();
    let renamed = small_vae(2, VaeLossConfig::default(), 1, "enc").unwrap();
    match renamed.load_weights(&hand) {
        Err(Error::Tensor { name, reason }) => {
            assert_eq!(
                (name.as_str(), reason.as_str()),
                ("enc.hidden.0.bias", "missing")
            )
        }
        other => panic!("expected a tensor error, got {other:?}"),
    }
    let iwae_hand = small_vae(
        2,
        VaeLossConfig::default().with_objective(Objective::Iwae { samples: 3 }),
        7,
        "encoder",
    )
    .unwrap();
    iwae_hand.load_weights(&hand).unwrap();
}

#[test]
fn resuming_stays_strict_and_says_what_differs() {
    let digits = Mnist::bundled().unwrap();
    let (train, test) = (head(&digits.train, 100), head(&digits.test, 50));
    let dir = temp_dir("objectives-resume");
    let config = |batch| {
        TrainConfig::default()
            .with_epochs(2)
            .with_batch_size(batch)
            .with_progress(Progress::Hidden)
    };
    let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0).unwrap();
    Trainer::new(config(50).with_epochs(1))
        .unwrap()
        .output_dir(&dir)
        .fit(&model, &train, &test)
        .unwrap();
    let mut other = Preset::DenseVae.config();
    if let ModelConfig::Vae(c) = &mut other {
        c.loss.beta = 4.0;
    }
    let beta4 = Model::new(&other, &Device::Cpu, 0).unwrap();
    let reason = |e: Error| match e {
        Error::Checkpoint { reason, .. } => reason,
        other => panic!("expected a checkpoint error, got {other:?}"),
    };
    let err = Trainer::new(config(50))
        .unwrap()
        .output_dir(&dir)
        .resume(&beta4, &train, &test)
        .unwrap_err();
    assert!(reason(err).contains("`loss.beta`: 1.0 in the file, 4.0 here"));
    let err = Trainer::new(config(25))
        .unwrap()
        .output_dir(&dir)
        .resume(&model, &train, &test)
        .unwrap_err();
    assert!(reason(err).contains("`batch_size`: 50 in the file, 25 here"));
    // The run's checkpoint (with the optimizer's state) still loads into the
    // β = 4 network, to be fine-tuned as a new run.
    beta4.load_weights(dir.join(CHECKPOINT_FILE)).unwrap();
    Trainer::new(config(50))
        .unwrap()
        .output_dir(&dir)
        .resume(&model, &train, &test)
        .unwrap();
}

/// Log weights `[k, b]` from images and noise `[k, b, latent]`.
type LogWeightsFn = dyn Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>;

/// A latent model whose log weights are given by a function of the images
/// and the noise `[k, b, latent]`; its posterior is `N(0, I)`.
struct KnownWeights {
    width: usize,
    log_weights: Box<LogWeightsFn>,
}

impl LatentModel for KnownWeights {
    fn latent_dim(&self) -> usize {
        self.width
    }
    fn posterior_of(&self, images: &Tensor) -> candle_core::Result<DiagonalGaussian> {
        let zeros = Tensor::zeros((images.dim(0)?, self.width), DType::F32, images.device())?;
        DiagonalGaussian::new(zeros.clone(), zeros)
    }
    fn log_weights(
        &self,
        _q: &DiagonalGaussian,
        images: &Tensor,
        _condition: Condition<'_>,
        eps: &Tensor,
    ) -> candle_core::Result<Tensor> {
        (self.log_weights)(images, eps)
    }
    fn kl_per_dim(&self, _q: &DiagonalGaussian) -> candle_core::Result<Option<Tensor>> {
        Ok(None)
    }
    fn decode_pixels(&self, _z: &Tensor, _c: Condition<'_>) -> candle_core::Result<Tensor> {
        candle_core::bail!("nothing to decode")
    }
}

/// Image `i` carries `a_i / 4` as its one pixel, and
/// `log w_j = a_i · ε_j − a_i² / 2` (in `f64`) for the first coordinate of
/// its noise `ε_j`: log-normal weights with mean 1, so `p(x) = 1`, and
/// `E[w²] = e^{a²}`.
fn log_normal_weights() -> KnownWeights {
    KnownWeights {
        width: 2,
        log_weights: Box::new(|images, eps| {
            let a = (images.flatten_all()?.to_dtype(DType::F64)? * 4.0)?; // [b]
            let e = eps.narrow(2, 0, 1)?.squeeze(2)?.to_dtype(DType::F64)?; // [k, b]
            e.broadcast_mul(&a)?.broadcast_sub(&(a.sqr()? * 0.5)?)
        }),
    }
}

/// Importance weights read from a table `[k, b]`, whatever the noise.
fn table_weights(table: Tensor) -> KnownWeights {
    KnownWeights {
        width: 3,
        log_weights: Box::new(move |_images, eps| {
            let (k, b, _) = eps.dims3()?;
            if table.dims() != [k, b] {
                candle_core::bail!("the table is {:?}, asked for [{k}, {b}]", table.dims());
            }
            Ok(table.clone())
        }),
    }
}

/// Images of one pixel `a / 4` each, for [`log_normal_weights`].
fn one_pixel_images(a: &[f64]) -> vaekit::data::Dataset {
    let pixels = a.iter().map(|v| (v / 4.0) as f32).collect();
    vaekit::data::Dataset::from_pixels(pixels, a.len(), ImageShape::new(1, 1, 1), None).unwrap()
}

/// The `a` that [`log_normal_weights`] reads from an image made of `a`.
fn a_seen(a: f64) -> f64 {
    (a / 4.0) as f32 as f64 * 4.0
}

/// `(Σ w)² / Σ w²` of log weights, directly (two passes, max-shifted).
fn ess_directly(lw: &[f64]) -> f64 {
    let m = lw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let s1: f64 = lw.iter().map(|v| (v - m).exp()).sum();
    let s2: f64 = lw.iter().map(|v| (2.0 * (v - m)).exp()).sum();
    s1 * s1 / s2
}

#[test]
fn effective_sample_size_and_monte_carlo_error_match_a_direct_computation() {
    let a = [0.0, 0.3, 0.8, 1.5, 2.5];
    let data = one_pixel_images(&a);
    let k = 400;
    let settings = ImportanceSampling::default().with_samples(k).with_seed(11);
    let est =
        dataset_log_likelihood(&log_normal_weights(), &data, &settings, &Device::Cpu).unwrap();
    let mut total_var = 0.0;
    for (i, &ai) in a.iter().enumerate() {
        let noise = importance_noise(11, i, k, 2);
        let lw: Vec<f64> = (0..k)
            .map(|j| {
                let (ai, e) = (a_seen(ai), noise[2 * j] as f64);
                e * ai - ai * ai * 0.5
            })
            .collect();
        let ess = ess_directly(&lw);
        let got = est.effective_sample_size[i];
        assert!(
            (got - ess).abs() <= 1e-9 * ess,
            "image {i}: ESS {got} vs {ess}"
        );
        // Var[log p̂] ≈ Var[w] / (k · w̄²) with the weights' sample variance.
        let m = lw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = lw.iter().map(|v| (v - m).exp()).collect();
        let mean = w.iter().sum::<f64>() / k as f64;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / k as f64;
        let delta = var / (k as f64 * mean * mean);
        let v = est.log_px_monte_carlo_variance()[i];
        assert!(
            (v - delta).abs() <= 1e-9 * delta + 1e-15,
            "image {i}: {v} vs {delta}"
        );
        total_var += delta;
    }
    // All weights equal (a = 0): k_eff = k and no Monte Carlo error.
    assert!((est.effective_sample_size[0] - k as f64).abs() < 1e-9);
    assert!(est.log_px_monte_carlo_variance()[0] < 1e-12);
    // A heavier tail, a smaller k_eff.
    assert!(est.effective_sample_size.windows(2).all(|p| p[1] < p[0]));
    let se = est.nll_monte_carlo_standard_error();
    assert!((se - total_var.sqrt() / 5.0).abs() <= 1e-9 * se, "{se}");
    // The spread over images is another quantity: here every log p(x) is 0
    // in truth, and the images differ only by their noise.
    assert!(est.nll_standard_error_over_images().is_finite());
}

#[test]
fn the_monte_carlo_error_predicts_the_spread_of_the_estimate_and_k_eff_its_limit() {
    // 400 images with the same a = 0.5: their log p̂ differ only through the
    // noise, around log p(x) = 0; the delta method predicts their variance
    // (e^{a²} − 1) / k, and k_eff → k · e^{−a²}.
    let (n, k, a) = (400, 1000, 0.5f64);
    let data = one_pixel_images(&vec![a; n]);
    let settings = ImportanceSampling::default().with_samples(k).with_seed(3);
    let est =
        dataset_log_likelihood(&log_normal_weights(), &data, &settings, &Device::Cpu).unwrap();
    let predicted = ((a * a).exp() - 1.0) / k as f64;
    let mean_var = est.log_px_monte_carlo_variance().iter().sum::<f64>() / n as f64;
    assert!(
        (mean_var / predicted - 1.0).abs() < 0.05,
        "estimated {mean_var} vs analytic {predicted}"
    );
    let mean_ess = est.effective_sample_size.iter().sum::<f64>() / n as f64;
    let analytic_ess = k as f64 * (-a * a).exp();
    assert!(
        (mean_ess / analytic_ess - 1.0).abs() < 0.05,
        "{mean_ess} vs {analytic_ess}"
    );
    // The observed spread of the estimates agrees (a sample variance of 400
    // values is good to about ±7%, and the mean is ≈ −variance / 2).
    let m = est.log_px.iter().sum::<f64>() / n as f64;
    let observed = est.log_px.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    assert!(
        (observed / predicted - 1.0).abs() < 0.25,
        "observed {observed} vs predicted {predicted}"
    );
    // Here the standard error over images is the Monte Carlo error itself.
    let over_images = est.nll_standard_error_over_images();
    let monte_carlo = est.nll_monte_carlo_standard_error();
    assert!(
        (over_images / monte_carlo - 1.0).abs() < 0.15,
        "{over_images} vs {monte_carlo}"
    );
}

#[test]
fn effective_sample_size_of_the_pytorch_iwae_fixture_log_weights() {
    // The log weights PyTorch computed for three images and 64 samples
    // (tests/fixtures/make_iwae_fixture.py), fed through the estimator.
    let fx = load_fixture("iwae.safetensors", &Device::Cpu);
    for kind in ["logits", "probabilities", "gaussian"] {
        let table = &fx[&format!("log_w.{kind}")]; // [64, 3]
        let lw = rows(table);
        let images = &fx["x"];
        let settings = ImportanceSampling::default().with_samples(64);
        let est = importance_sampled_log_likelihood(
            &table_weights(table.clone()),
            images,
            Condition::None,
            &[0, 1, 2],
            &settings,
        )
        .unwrap();
        let log_px = values(&fx[&format!("log_px.{kind}")]);
        for i in 0..3 {
            let col: Vec<f64> = lw.iter().map(|r| r[i]).collect();
            let ess = ess_directly(&col);
            let got = est.effective_sample_size[i];
            assert!(
                (got - ess).abs() <= 1e-9 * ess,
                "{kind}[{i}]: {got} vs {ess}"
            );
            assert!((1.0..=64.0).contains(&got), "{kind}[{i}]: {got}");
            assert!((est.log_px[i] - log_px[i]).abs() <= 1e-9 * log_px[i].abs());
            let var = 1.0 / ess - 1.0 / 64.0;
            assert!((est.log_px_monte_carlo_variance()[i] - var).abs() <= 1e-9);
        }
    }
}

#[test]
fn effective_sample_size_does_not_depend_on_batching() {
    let a: Vec<f64> = (0..30).map(|i| 0.1 * i as f64).collect();
    let data = one_pixel_images(&a);
    let run = |images, pairs| {
        let s = ImportanceSampling::default()
            .with_samples(50)
            .with_seed(5)
            .with_images_per_pass(images)
            .with_pairs_per_pass(pairs);
        dataset_log_likelihood(&log_normal_weights(), &data, &s, &Device::Cpu).unwrap()
    };
    let (one, many) = (run(30, 8192), run(7, 33));
    assert_eq!(one.effective_sample_size, many.effective_sample_size);
    assert_eq!(one.log_px, many.log_px);
    assert_eq!(
        one.nll_monte_carlo_standard_error(),
        many.nll_monte_carlo_standard_error()
    );

    // A VAE too: its weights change with the decoder's batching by float
    // rounding only.
    let vae = mnist_vae(2);
    let test = head(&Mnist::bundled().unwrap().test, 20).binarize_static();
    let run = |images, pairs| {
        let s = ImportanceSampling::default()
            .with_samples(40)
            .with_seed(5)
            .with_images_per_pass(images)
            .with_pairs_per_pass(pairs);
        dataset_log_likelihood(&vae, &test, &s, &Device::Cpu).unwrap()
    };
    let (one, many) = (run(20, 8192), run(6, 25));
    for (x, y) in one
        .effective_sample_size
        .iter()
        .zip(&many.effective_sample_size)
    {
        assert!((x - y).abs() <= 1e-3 * x, "{x} vs {y}");
    }
}

/// The digit-conditioned VAE is a VAE with a conditioning: from a run file it
/// trains on the IWAE bound, with a mixture prior, and is scored by
/// importance sampling on `log p(x | y)`.
#[test]
fn a_conditioned_vae_trains_with_the_iwae_objective_from_a_run_file() {
    let mut run: serde_json::Value = serde_json::from_str(
        &vaekit::train::RunConfig::for_preset(Preset::DigitCvae).to_json_pretty(),
    )
    .unwrap();
    run["model"]["loss"]["objective"] = serde_json::json!({"type": "iwae", "samples": 5});
    run["model"]["prior"] = serde_json::json!({"type": "gaussian_mixture", "components": 4,
        "spread": 2.0, "sigma": 0.5, "learn_means": true, "learn_variances": true});
    run["train"]["epochs"] = serde_json::json!(2);
    run["train"]["progress"] = serde_json::json!("hidden");
    let run = vaekit::train::RunConfig::from_json(&run.to_string()).unwrap();
    let digits = Mnist::bundled().unwrap();
    let (train, test) = (head(&digits.train, 1000), head(&digits.test, 200));
    let model = Model::new(&run.model, &Device::Cpu, 0).unwrap();
    let dir = temp_dir("conditioned-iwae");
    let summary = Trainer::new(run.train.clone())
        .unwrap()
        .output_dir(&dir)
        .fit(&model, &train, &test)
        .unwrap();
    let (first, last) = (&summary.history[0], &summary.history[1]);
    assert!(last.test_loss() < first.test_loss(), "{first:?} → {last:?}");
    for name in ["classification", "accuracy"] {
        assert!(last.test_metric(name).is_some(), "{name}");
    }
    // Scored on log p(x | y) with the test labels.
    let settings = ImportanceSampling::default().with_samples(20);
    let est = dataset_log_likelihood(&model, &test, &settings, &Device::Cpu).unwrap();
    assert!(est.nll().is_finite() && est.nll() <= est.negative_elbo() + 1e-6);
}
