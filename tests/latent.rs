//! The latent distributions of `vaekit::latent`: the diagonal-Gaussian posterior
//! against hand-written formulas, analytic KL identities, the Monte Carlo KL
//! converging to the analytic one at the rate its variance predicts, the
//! Gaussian-mixture prior, seeded noise, and object safety of [`LatentPrior`].

mod common;

use candle_core::{Device, Tensor, Var};
use common::values;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vaekit::latent::{
    log_sum_exp, monte_carlo_kl, standard_normal, DiagonalGaussian, GaussianMixturePrior,
    LatentPrior, StandardNormal, LN_2PI,
};

fn tensor(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).expect("tensor")
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A posterior of 3 rows × 4 latent dimensions with varied means and spreads.
const MEAN: [f32; 12] = [
    0.5, -1.0, 0.0, 2.0, //
    -0.3, 0.8, 1.5, -0.7, //
    0.0, 0.0, -2.0, 0.4,
];
const LOGVAR: [f32; 12] = [
    0.0, -1.0, 0.7, -0.2, //
    -2.0, 0.3, 0.0, 1.0, //
    -0.5, -0.5, 0.2, -1.5,
];

fn posterior() -> DiagonalGaussian {
    DiagonalGaussian::new(tensor(&MEAN, &[3, 4]), tensor(&LOGVAR, &[3, 4])).unwrap()
}

/// Analytic `KL(N(μ, e^{lv}) ‖ N(0, I))` per row, in `f64`.
fn analytic_kl(mean: &[f32], logvar: &[f32], d: usize) -> Vec<f64> {
    mean.chunks(d)
        .zip(logvar.chunks(d))
        .map(|(m, lv)| {
            m.iter()
                .zip(lv)
                .map(|(&m, &lv)| {
                    let (m, lv) = (m as f64, lv as f64);
                    -0.5 * (1.0 + lv - m * m - lv.exp())
                })
                .sum()
        })
        .collect()
}

/// Exact variance of one Monte Carlo term `L = log q(z) − log p(z)`, `z ~ q`,
/// per row. With `z = μ + σε`, `L = Σ_d ½(μ² + 2μσε + (σ² − 1)ε² − ln σ²)`, and
/// with `Var ε = 1`, `Var ε² = 2`, `E ε³ = 0`:
/// `Var L = Σ_d (μ²σ² + ½(σ² − 1)²)`.
fn mc_term_variance(mean: &[f32], logvar: &[f32], d: usize) -> Vec<f64> {
    mean.chunks(d)
        .zip(logvar.chunks(d))
        .map(|(m, lv)| {
            m.iter()
                .zip(lv)
                .map(|(&m, &lv)| {
                    let (m, s2) = (m as f64, (lv as f64).exp());
                    m * m * s2 + 0.5 * (s2 - 1.0).powi(2)
                })
                .sum()
        })
        .collect()
}

// ------------------------------------------------------------ DiagonalGaussian

#[test]
fn from_params_splits_mean_then_logvar() {
    // [2, 6] → mean = columns 0..3, logvar = columns 3..6.
    let p: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let q = DiagonalGaussian::from_params(&tensor(&p, &[2, 6])).unwrap();
    assert_eq!(q.latent_dim(), 3);
    assert_eq!(q.mean().dims(), [2, 3]);
    assert_eq!(values(q.mean()), [0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
    assert_eq!(values(q.logvar()), [3.0, 4.0, 5.0, 9.0, 10.0, 11.0]);
    // Odd widths, rank 1, and mismatched shapes are errors that say the shape.
    let err = DiagonalGaussian::from_params(&tensor(&[0.0; 10], &[2, 5]))
        .expect_err("odd width")
        .to_string();
    assert!(err.contains("[2, 5]"), "{err}");
    assert!(DiagonalGaussian::from_params(&tensor(&[0.0; 4], &[4])).is_err());
    let err = DiagonalGaussian::new(tensor(&[0.0; 4], &[2, 2]), tensor(&[0.0; 6], &[2, 3]))
        .expect_err("mean and logvar differ")
        .to_string();
    assert!(err.contains("[2, 2]") && err.contains("[2, 3]"), "{err}");
}

#[test]
fn std_variance_and_sample_with_follow_the_reparameterisation() {
    let q = posterior();
    let eps: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.3).collect();
    let z = values(&q.sample_with(&tensor(&eps, &[3, 4])).unwrap());
    let std = values(&q.std().unwrap());
    let var = values(&q.variance().unwrap());
    for i in 0..12 {
        let s = (0.5 * LOGVAR[i] as f64).exp();
        assert!((std[i] - s).abs() <= 1e-6 * s, "std[{i}]");
        assert!((var[i] - s * s).abs() <= 1e-6 * s * s, "variance[{i}]");
        let expected = MEAN[i] as f64 + eps[i] as f64 * s;
        assert!(
            (z[i] - expected).abs() <= 1e-6 * expected.abs().max(1.0),
            "z[{i}] = {}, mean + eps·std = {expected}",
            z[i]
        );
    }
    let err = q
        .sample_with(&tensor(&[0.0; 4], &[1, 4]))
        .expect_err("noise of the wrong shape")
        .to_string();
    assert!(err.contains("[1, 4]") && err.contains("[3, 4]"), "{err}");
}

#[test]
fn rsample_uses_the_callers_generator() {
    // rsample(rng) = sample_with(standard_normal(shape, same rng state)).
    let q = posterior();
    let a = q.rsample(&mut rng(11)).unwrap();
    let eps = standard_normal((3, 4), &mut rng(11), &Device::Cpu).unwrap();
    let b = q.sample_with(&eps).unwrap();
    assert_eq!(values(&a), values(&b));
    let c = q.rsample(&mut rng(12)).unwrap();
    assert_ne!(values(&a), values(&c));
}

#[test]
fn log_prob_matches_the_hand_formula() {
    // log q(z) = Σ_d −½((z − μ)² e^{−lv} + lv + ln 2π), per row.
    let q = posterior();
    let z: Vec<f32> = (0..12).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.4).collect();
    let got = values(&q.log_prob(&tensor(&z, &[3, 4])).unwrap());
    assert_eq!(got.len(), 3);
    for (row, got) in got.iter().enumerate() {
        let expected: f64 = (0..4)
            .map(|d| {
                let i = 4 * row + d;
                let (z, m, lv) = (z[i] as f64, MEAN[i] as f64, LOGVAR[i] as f64);
                -0.5 * ((z - m).powi(2) * (-lv).exp() + lv + LN_2PI)
            })
            .sum();
        assert!(
            (got - expected).abs() <= 1e-5 * expected.abs(),
            "row {row}: {got} vs {expected}"
        );
    }
}

#[test]
fn kl_standard_normal_matches_the_hand_formula() {
    let got = values(&posterior().kl_standard_normal().unwrap());
    let expected = analytic_kl(&MEAN, &LOGVAR, 4);
    for row in 0..3 {
        assert!(
            (got[row] - expected[row]).abs() <= 1e-5 * expected[row].abs(),
            "row {row}: {} vs {}",
            got[row],
            expected[row]
        );
    }
}

// ------------------------------------------------------------ KL identities

#[test]
fn kl_of_a_posterior_equal_to_the_prior_is_exactly_zero() {
    // q = N(0, I): −½(1 + 0 − 0 − e⁰) = 0 in every dimension, exactly.
    let q = DiagonalGaussian::new(
        Tensor::zeros((5, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros((5, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    )
    .unwrap();
    let prior = StandardNormal::new(3);
    assert!(prior.has_closed_form_kl());
    let kl = prior.kl(&q, &mut rng(0)).unwrap();
    assert_eq!(kl.dims(), [5]);
    assert_eq!(values(&kl), [0.0; 5]);
    // Every single Monte Carlo term log q(z) − log p(z) is zero too (the two
    // densities are the same function), up to f32 rounding of ~1e-6 relative
    // to the terms (|log p| ≈ 3 here).
    let mc = values(&monte_carlo_kl(&prior, &q, 7, &mut rng(1)).unwrap());
    for v in mc {
        assert!(v.abs() < 1e-5, "MC KL(p ‖ p) = {v}");
    }
}

#[test]
fn standard_normal_kl_is_the_analytic_kl_and_positive() {
    let q = posterior();
    let kl = values(&StandardNormal::new(4).kl(&q, &mut rng(0)).unwrap());
    let expected = analytic_kl(&MEAN, &LOGVAR, 4);
    for row in 0..3 {
        assert!(kl[row] > 0.0);
        assert!((kl[row] - expected[row]).abs() <= 1e-5 * expected[row]);
    }
}

/// Monte Carlo KL with `n` samples from `seed`, minus the analytic KL, in units
/// of its standard error `√(Var L / n)`, per row.
fn mc_errors_in_standard_errors(n: usize, seed: u64) -> Vec<f64> {
    let q = posterior();
    let mc = values(&monte_carlo_kl(&StandardNormal::new(4), &q, n, &mut rng(seed)).unwrap());
    let exact = analytic_kl(&MEAN, &LOGVAR, 4);
    let var = mc_term_variance(&MEAN, &LOGVAR, 4);
    (0..3)
        .map(|r| (mc[r] - exact[r]) / (var[r] / n as f64).sqrt())
        .collect()
}

#[test]
fn monte_carlo_kl_is_the_mean_of_log_q_minus_log_p_over_the_callers_draws() {
    // With 3 samples from a given generator state: the mean over 3 successive
    // reparameterised draws z ~ q of log q(z) − log p(z), computed by hand from
    // the same stream (exactly what its doc says, normalisation included).
    let q = posterior();
    let prior = StandardNormal::new(4);
    let got = values(&monte_carlo_kl(&prior, &q, 3, &mut rng(21)).unwrap());
    let mut g = rng(21);
    let mut by_hand = [0.0f64; 3];
    for _ in 0..3 {
        let z = q.rsample(&mut g).unwrap();
        let lq = values(&q.log_prob(&z).unwrap());
        let lp = values(&prior.log_prob(&z).unwrap());
        for r in 0..3 {
            by_hand[r] += (lq[r] - lp[r]) / 3.0;
        }
    }
    for r in 0..3 {
        assert!(
            (got[r] - by_hand[r]).abs() <= 1e-5 * by_hand[r].abs().max(1.0),
            "row {r}: {} vs {}",
            got[r],
            by_hand[r]
        );
    }
}

#[test]
fn monte_carlo_kl_converges_to_the_analytic_kl() {
    // With n = 20 000 samples the estimate's standard error is √(Var L / n),
    // Var L from the closed form in `mc_term_variance` (4.6 to 6.4 here, so
    // the standard error is 0.015 to 0.018 against KLs of 2.6 to 3.0). The
    // tolerance is 5 standard errors per row (≈ 0.08–0.09, about 3% of the KL):
    // by the central limit theorem a correct estimator misses it with
    // probability ~6e-7 (and the run is seeded, so the outcome is fixed), while
    // an estimator biased by 4% of the KL would fail it.
    let n = 20_000;
    let errs = mc_errors_in_standard_errors(n, 42);
    for (row, e) in errs.iter().enumerate() {
        assert!(
            e.abs() <= 5.0,
            "row {row}: MC KL is {e:.2} standard errors from the analytic KL"
        );
    }
    // And the estimate is not trivially exact: it carries sampling noise.
    assert!(errs.iter().any(|e| *e != 0.0));
}

#[test]
fn monte_carlo_kl_error_shrinks_with_more_samples() {
    // The RMS error over the 3 rows and 8 seeds (24 estimates) falls as 1/√n:
    // from n = 16 to n = 4096 by a factor 16. Asserting a factor of at least 4
    // leaves wide room for the sampling spread of an RMS over 24 estimates.
    let rms = |n: usize| -> f64 {
        let exact = analytic_kl(&MEAN, &LOGVAR, 4);
        let q = posterior();
        let mut sq = 0.0;
        let mut count = 0.0;
        for seed in 0..8 {
            let mc =
                values(&monte_carlo_kl(&StandardNormal::new(4), &q, n, &mut rng(seed)).unwrap());
            for r in 0..3 {
                sq += (mc[r] - exact[r]).powi(2);
                count += 1.0;
            }
        }
        (sq / count).sqrt()
    };
    let (coarse, fine) = (rms(16), rms(4096));
    assert!(
        fine < coarse / 4.0,
        "RMS error {coarse:.4} at 16 samples, {fine:.4} at 4096: expected ~16× smaller"
    );
    // The RMS at n samples is near √(mean Var L / n), i.e. the estimator's
    // spread is what the closed-form variance predicts (within a factor 2).
    let var = mc_term_variance(&MEAN, &LOGVAR, 4);
    let predicted = (var.iter().sum::<f64>() / 3.0 / 4096.0).sqrt();
    assert!(
        fine > predicted / 2.0 && fine < predicted * 2.0,
        "RMS {fine:.5} vs predicted {predicted:.5}"
    );
}

#[test]
fn monte_carlo_kl_rejects_zero_samples() {
    let err = monte_carlo_kl(&StandardNormal::new(4), &posterior(), 0, &mut rng(0))
        .expect_err("no samples")
        .to_string();
    assert!(err.contains("samples"), "{err}");
}

// --------------------------------------------------------- GaussianMixturePrior

#[test]
fn one_component_mixture_at_zero_with_unit_sigma_is_the_standard_normal() {
    let mix = GaussianMixturePrior::new(
        Tensor::zeros((1, 4), candle_core::DType::F32, &Device::Cpu).unwrap(),
        1.0,
    )
    .unwrap();
    assert_eq!(mix.latent_dim(), 4);
    assert!(!mix.has_closed_form_kl());
    let z: Vec<f32> = (0..20)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.45)
        .collect();
    let z = tensor(&z, &[5, 4]);
    let a = mix.log_prob(&z).unwrap();
    let b = StandardNormal::new(4).log_prob(&z).unwrap();
    common::assert_close("mixture vs standard normal", &a, &b, 1e-6, 0.0);
}

#[test]
fn mixture_log_prob_matches_log_sum_exp_by_hand() {
    // Two components at (±2, 0) with σ = 0.7, equal weights:
    // log p(z) = log ½ Σ_k N(z; c_k, σ² I).
    let centres = [2.0f32, 0.0, -2.0, 0.0];
    let sigma = 0.7f64;
    let mix = GaussianMixturePrior::new(tensor(&centres, &[2, 2]), sigma).unwrap();
    let z = [0.0f32, 0.0, 2.1, -0.3, -5.0, 4.0, 30.0, -30.0];
    let got = values(&mix.log_prob(&tensor(&z, &[4, 2])).unwrap());
    for row in 0..4 {
        let comps: Vec<f64> = (0..2)
            .map(|k| {
                let sq: f64 = (0..2)
                    .map(|d| (z[2 * row + d] as f64 - centres[2 * k + d] as f64).powi(2))
                    .sum();
                -sq / (2.0 * sigma * sigma) - (LN_2PI + 2.0 * sigma.ln())
            })
            .collect();
        let m = comps[0].max(comps[1]);
        let expected = m + ((comps[0] - m).exp() + (comps[1] - m).exp()).ln() - 2f64.ln();
        assert!(got[row].is_finite(), "row {row} is finite even far away");
        assert!(
            (got[row] - expected).abs() <= 1e-5 * expected.abs().max(1.0),
            "row {row}: {} vs {expected}",
            got[row]
        );
    }
}

#[test]
fn monte_carlo_kl_against_a_mixture_is_finite_and_sensible() {
    let mix = GaussianMixturePrior::new(
        tensor(&[1.5, 0.0, 0.0, 0.0, -1.5, 0.0, 0.0, 0.0], &[2, 4]),
        0.8,
    )
    .unwrap();
    let q = posterior();
    let kl = values(&monte_carlo_kl(&mix, &q, 2000, &mut rng(3)).unwrap());
    assert_eq!(kl.len(), 3);
    for v in &kl {
        assert!(v.is_finite(), "{kl:?}");
    }
    // A KL is ≥ 0; with 2000 samples the estimates are well away from 0 here.
    assert!(kl.iter().all(|v| *v > 0.0), "{kl:?}");
    // The trait's default kl is a finite single-sample estimate.
    let single = values(&mix.kl(&q, &mut rng(4)).unwrap());
    assert!(single.iter().all(|v| v.is_finite()), "{single:?}");
}

#[test]
fn mixture_samples_come_from_its_components() {
    // Two far-apart components (±10 on the first axis, σ = 0.5): every draw lies
    // within 3.5σ of one of them (miss chance ~5e-4 per draw, seeded), and both
    // are picked about equally often.
    let mix = GaussianMixturePrior::new(tensor(&[10.0, 0.0, -10.0, 0.0], &[2, 2]), 0.5).unwrap();
    let n = 2000;
    let s = mix.sample(n, &mut rng(5), &Device::Cpu).unwrap();
    assert_eq!(s.dims(), [n, 2]);
    let v = values(&s);
    let mut positive = 0;
    for i in 0..n {
        let (x, y) = (v[2 * i], v[2 * i + 1]);
        let near = ((x - 10.0).powi(2) + y * y)
            .sqrt()
            .min(((x + 10.0).powi(2) + y * y).sqrt());
        assert!(
            near < 0.5 * 4.0,
            "draw {i} = ({x}, {y}) is far from both centres"
        );
        if x > 0.0 {
            positive += 1;
        }
    }
    // Binomial(2000, ½): sd ≈ 22; allow 5 sd.
    assert!(
        (positive as i64 - 1000).abs() < 110,
        "{positive} of {n} at +10"
    );
}

#[test]
fn mixture_refuses_bad_parameters() {
    assert!(GaussianMixturePrior::new(tensor(&[0.0, 0.0], &[1, 2]), 0.0).is_err());
    assert!(GaussianMixturePrior::new(tensor(&[0.0, 0.0], &[1, 2]), f64::NAN).is_err());
    assert!(GaussianMixturePrior::new(tensor(&[0.0, 0.0], &[2]), 1.0).is_err());
    let mix = GaussianMixturePrior::new(tensor(&[0.0, 0.0], &[1, 2]), 1.0).unwrap();
    let err = mix
        .log_prob(&tensor(&[0.0; 3], &[1, 3]))
        .expect_err("z of the wrong width")
        .to_string();
    assert!(err.contains("[1, 3]"), "{err}");
}

// --------------------------------------------------------------------- noise

#[test]
fn standard_normal_is_reproducible_from_the_seed() {
    let dev = Device::Cpu;
    let a = standard_normal((64, 8), &mut rng(7), &dev).unwrap();
    let b = standard_normal((64, 8), &mut rng(7), &dev).unwrap();
    let c = standard_normal((64, 8), &mut rng(8), &dev).unwrap();
    assert_eq!(a.dims(), [64, 8]);
    assert_eq!(values(&a), values(&b), "same seed, same tensor bit for bit");
    let (va, vc) = (values(&a), values(&c));
    let same = va.iter().zip(&vc).filter(|(x, y)| x == y).count();
    assert_eq!(same, 0, "different seeds share {same} of 512 draws");
    // Draws continue the generator's stream: two half draws ≠ one repeated half.
    let mut g = rng(7);
    let first = standard_normal(256, &mut g, &dev).unwrap();
    let second = standard_normal(256, &mut g, &dev).unwrap();
    assert_ne!(values(&first), values(&second));
    assert_eq!(
        [values(&first), values(&second)].concat(),
        va,
        "the same stream, in row-major order"
    );
}

#[test]
fn standard_normal_draws_have_mean_zero_and_unit_std() {
    // 100 000 draws: the sample mean has standard error 1/√n = 0.0032 and the
    // sample std ≈ 1/√(2n) = 0.0022; allow 5 standard errors.
    let n = 100_000;
    let v = values(&standard_normal(n, &mut rng(2024), &Device::Cpu).unwrap());
    let mean = v.iter().sum::<f64>() / n as f64;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    assert!(mean.abs() < 5.0 / (n as f64).sqrt(), "mean {mean}");
    assert!(
        (std - 1.0).abs() < 5.0 / (2.0 * n as f64).sqrt(),
        "std {std}"
    );
    // The tails are Gaussian too: about 4.55% of draws beyond ±2
    // (binomial sd 0.066%; allow 5 sd).
    let beyond = v.iter().filter(|x| x.abs() > 2.0).count() as f64 / n as f64;
    assert!((beyond - 0.0455).abs() < 0.0033, "{beyond}");
}

#[test]
fn standard_normal_prior_samples_and_log_prob() {
    let p = StandardNormal::new(3);
    let s = p.sample(4, &mut rng(9), &Device::Cpu).unwrap();
    assert_eq!(s.dims(), [4, 3]);
    let eps = standard_normal((4, 3), &mut rng(9), &Device::Cpu).unwrap();
    assert_eq!(values(&s), values(&eps), "its samples are the seeded noise");
    // log p(z) = Σ −½(z² + ln 2π).
    let z = [0.0f32, 1.0, -2.0];
    let lp = common::scalar(&p.log_prob(&tensor(&z, &[1, 3])).unwrap());
    let expected = -0.5 * (0.0 + 1.0 + 4.0 + 3.0 * LN_2PI);
    assert!((lp - expected).abs() < 1e-5, "{lp} vs {expected}");
    let err = p
        .log_prob(&tensor(&[0.0; 2], &[1, 2]))
        .expect_err("wrong width")
        .to_string();
    assert!(err.contains("[1, 2]"), "{err}");
}

// ------------------------------------------------------------- object safety

#[test]
fn latent_prior_is_object_safe() {
    let priors: Vec<Box<dyn LatentPrior>> = vec![
        Box::new(StandardNormal::new(4)),
        Box::new(
            GaussianMixturePrior::new(
                Tensor::zeros((1, 4), candle_core::DType::F32, &Device::Cpu).unwrap(),
                1.0,
            )
            .unwrap(),
        ),
    ];
    let q = posterior();
    let z = q.mean().clone();
    let reference = values(&StandardNormal::new(4).log_prob(&z).unwrap());
    for (i, p) in priors.iter().enumerate() {
        assert_eq!(p.latent_dim(), 4);
        // Both are N(0, I) in disguise, so every method agrees on the density.
        let lp = values(&p.log_prob(&z).unwrap());
        for (a, b) in lp.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-5, "prior {i}: {a} vs {b}");
        }
        let mut g: Box<dyn RngCore> = Box::new(rng(1));
        let s = p.sample(6, &mut *g, &Device::Cpu).unwrap();
        assert_eq!(s.dims(), [6, 4]);
        let kl = values(&p.kl(&q, &mut *g).unwrap());
        assert_eq!(kl.len(), 3);
        assert!(kl.iter().all(|v| v.is_finite()));
        // The Box forwards to the inner prior, and monte_carlo_kl takes a `dyn`.
        assert_eq!(p.has_closed_form_kl(), i == 0);
        let mc = values(&monte_carlo_kl(p.as_ref(), &q, 4000, &mut rng(2)).unwrap());
        let mc_boxed = values(&monte_carlo_kl(p, &q, 4000, &mut rng(2)).unwrap());
        assert_eq!(mc, mc_boxed);
        let exact = analytic_kl(&MEAN, &LOGVAR, 4);
        let var = mc_term_variance(&MEAN, &LOGVAR, 4);
        for r in 0..3 {
            let se = (var[r] / 4000.0).sqrt();
            assert!(
                (mc[r] - exact[r]).abs() < 5.0 * se,
                "prior {i}, row {r}: {} vs {}",
                mc[r],
                exact[r]
            );
        }
    }
    // The analytic prior through the box is exact.
    let kl = values(&priors[0].kl(&q, &mut rng(0)).unwrap());
    let exact = analytic_kl(&MEAN, &LOGVAR, 4);
    for r in 0..3 {
        assert!((kl[r] - exact[r]).abs() < 1e-5 * exact[r]);
    }
}

/// The public log-sum-exp: exact against f64 on moderate values, finite where
/// the naive sum overflows or underflows, and its gradient is the softmax.
#[test]
fn log_sum_exp_is_stable_and_its_gradient_is_the_softmax() {
    let rows: [[f64; 3]; 3] = [
        [0.5, -1.25, 2.0],
        [1000.0, 1000.0, 990.0],
        [-1000.0, -1001.0, -1e4],
    ];
    let x = Var::new(&rows.map(|r| r.map(|v| v as f32)), &Device::Cpu).unwrap();
    let lse = log_sum_exp(x.as_tensor(), 1).unwrap();
    assert_eq!(lse.dims(), &[3]);
    let got = lse.to_vec1::<f32>().unwrap();
    for (row, g) in rows.iter().zip(&got) {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let want = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        assert!(
            (f64::from(*g) - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{g} vs {want}"
        );
    }
    // Gradient of Σ_rows lse: each row's softmax.
    let grads = lse.sum_all().unwrap().backward().unwrap();
    let g = grads.get(&x).unwrap().to_vec2::<f32>().unwrap();
    for (row, gr) in rows.iter().zip(&g) {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for (v, gv) in row.iter().zip(gr) {
            assert!((f64::from(*gv) - (v - m).exp() / z).abs() < 1e-6, "{gv}");
        }
    }
    // Along the first dimension, and refusing one that does not exist.
    let cols = log_sum_exp(x.as_tensor(), 0).unwrap();
    assert_eq!(cols.dims(), &[3]);
    assert!(log_sum_exp(x.as_tensor(), 2).is_err());
    assert!((LN_2PI - (2.0 * std::f64::consts::PI).ln()).abs() < 1e-15);
}
