//! The latent manifold: decoded images over a grid of 2-D codes, and the grid
//! coordinates (evenly spaced, or evenly spaced in probability through the
//! inverse normal CDF, as the Keras and TF1 tutorials do).

// AS241's coefficients below are kept digit for digit as published (20
// significant digits, more than an f64 holds).
#![allow(clippy::excessive_precision)]

use candle_core::Tensor;

use super::decode_codes;
use crate::nets::Decoder;
use crate::{Error, Result};

/// AS241 coefficients, numerator for |p − 0.5| ≤ 0.425, constant term first.
const A: [f64; 8] = [
    3.3871328727963666080e0,
    1.3314166789178437745e2,
    1.9715909503065514427e3,
    1.3731693765509461125e4,
    4.5921953931549871457e4,
    6.7265770927008700853e4,
    3.3430575583588128105e4,
    2.5090809287301226727e3,
];
/// AS241 coefficients, denominator for |p − 0.5| ≤ 0.425, constant term first.
const B: [f64; 8] = [
    1.0,
    4.2313330701600911252e1,
    6.8718700749205790830e2,
    5.3941960214247511077e3,
    2.1213794301586595867e4,
    3.9307895800092710610e4,
    2.8729085735721942674e4,
    5.2264952788528545610e3,
];
/// AS241 coefficients, numerator for r = √(−ln min(p, 1 − p)) ≤ 5, constant term first.
const C: [f64; 8] = [
    1.42343711074968357734e0,
    4.63033784615654529590e0,
    5.76949722146069140550e0,
    3.64784832476320460504e0,
    1.27045825245236838258e0,
    2.41780725177450611770e-1,
    2.27238449892691845833e-2,
    7.74545014278341407640e-4,
];
/// AS241 coefficients, denominator for r ≤ 5, constant term first.
const D: [f64; 8] = [
    1.0,
    2.05319162663775882187e0,
    1.67638483018380384940e0,
    6.89767334985100004550e-1,
    1.48103976427480074590e-1,
    1.51986665636164571966e-2,
    5.47593808499534494600e-4,
    1.05075007164441684324e-9,
];
/// AS241 coefficients, numerator for r > 5, constant term first.
const E: [f64; 8] = [
    6.65790464350110377720e0,
    5.46378491116411436990e0,
    1.78482653991729133580e0,
    2.96560571828504891230e-1,
    2.65321895265761230930e-2,
    1.24266094738807843860e-3,
    2.71155556874348757815e-5,
    2.01033439929228813265e-7,
];
/// AS241 coefficients, denominator for r > 5, constant term first.
const F: [f64; 8] = [
    1.0,
    5.99832206555887937690e-1,
    1.36929880922735805310e-1,
    1.48753612908506148525e-2,
    7.86869131145613259100e-4,
    1.84631831751005468180e-5,
    1.42151175831644588870e-7,
    2.04426310338993978564e-15,
];

/// `c[0] + c[1]·r + … + c[7]·r⁷` by Horner's rule.
fn poly(c: &[f64; 8], r: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &k| acc * r + k)
}

/// The inverse of the standard normal CDF, `Φ⁻¹(p)`: the `x` with
/// `P(Z ≤ x) = p` for `Z ~ N(0, 1)`.
///
/// Wichura's algorithm AS241 (`PPND16`, Applied Statistics 37(3), 1988): rational
/// approximations in three ranges of `p`, accurate to about 1 part in 10¹⁶ —
/// the algorithm of Python's `statistics.NormalDist.inv_cdf`.
/// `p ≤ 0` gives −∞, `p ≥ 1` gives +∞ and NaN gives NaN.
///
/// ```
/// let x = vaekit::pictures::inverse_normal_cdf(0.975);
/// assert!((x - 1.959963984540054).abs() < 1e-12);
/// ```
pub fn inverse_normal_cdf(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    let r = (-(if q < 0.0 { p } else { 1.0 - p }).ln()).sqrt();
    let x = if r <= 5.0 {
        poly(&C, r - 1.6) / poly(&D, r - 1.6)
    } else {
        poly(&E, r - 5.0) / poly(&F, r - 5.0)
    };
    if q < 0.0 {
        -x
    } else {
        x
    }
}

/// `n` evenly spaced values from `lo` to `hi`, both included (NumPy's
/// `linspace(lo, hi, n)`; `n = 1` gives `[lo]`).
///
/// # Errors
///
/// [`Error::Config`] if `n` is 0, a bound is not finite, or `lo ≥ hi`.
pub fn linear_grid(n: usize, lo: f64, hi: f64) -> Result<Vec<f64>> {
    if n == 0 {
        return Err(Error::config("n", "a grid needs at least one point"));
    }
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::config(
            "lo, hi",
            format!("need finite lo < hi, got {lo} and {hi}"),
        ));
    }
    if n == 1 {
        return Ok(vec![lo]);
    }
    let step = (hi - lo) / (n - 1) as f64;
    Ok((0..n)
        .map(|i| if i + 1 == n { hi } else { lo + step * i as f64 })
        .collect())
}

/// `n` codes evenly spaced in probability under `N(0, 1)`: `Φ⁻¹` of
/// [`linear_grid(n, lo, hi)`](linear_grid) — SciPy's
/// `norm.ppf(np.linspace(lo, hi, n))`, the tutorials' manifold axis with
/// `lo = 0.05`, `hi = 0.95`. The grid is increasing and, for `lo = 1 − hi`,
/// symmetric about 0.
///
/// # Errors
///
/// [`Error::Config`] if `n` is 0 or not `0 < lo < hi < 1`.
pub fn normal_quantile_grid(n: usize, lo: f64, hi: f64) -> Result<Vec<f64>> {
    if !(lo > 0.0 && hi < 1.0) {
        return Err(Error::config(
            "lo, hi",
            format!("need probabilities 0 < lo < hi < 1, got {lo} and {hi}"),
        ));
    }
    Ok(linear_grid(n, lo, hi)?
        .into_iter()
        .map(inverse_normal_cdf)
        .collect())
}

/// The 2-D codes of the manifold over `coords` (length `n`), in the order
/// [`manifold`] decodes them: `n · n` pairs `(z1, z2)`, row-major, where entry
/// `r · n + c` is `(coords[c], coords[n − 1 − r])`.
///
/// Laid out as an image grid of `n` columns, `z1` grows to the right and `z2`
/// grows upwards, like a plot: the top-left tile is
/// `(coords[0], coords[n − 1])` and the bottom-right one `(coords[n − 1], coords[0])`.
pub fn manifold_codes(coords: &[f64]) -> Vec<(f64, f64)> {
    let n = coords.len();
    (0..n)
        .flat_map(|r| (0..n).map(move |c| (coords[c], coords[n - 1 - r])))
        .collect()
}

/// How many codes [`manifold`] decodes at once.
const CHUNK: usize = 256;

/// Decodes the `n × n` grid of 2-D codes over `coords` (length `n`) with
/// `decoder` (evaluation mode, its weights on `device`): pixels `[n · n, c, h, w]` in `[0, 1]`, image
/// `r · n + c` decoded from `z = (coords[c], coords[n − 1 − r])` (see
/// [`manifold_codes`]). Passed to [`image_grid`](super::image_grid) with `n`
/// columns, the picture reads like a plot: `z1` increases to the right, `z2`
/// upwards.
///
/// A decoder that takes a condition after the code (the digit-conditioned
/// VAE's `[z | class vector]`) gets it as `condition`, the same for every code
/// ([`Vae::class_vector`](crate::models::Vae::class_vector)).
///
/// ```
/// use candle_core::Device;
/// use vaekit::models::{Model, Preset};
/// use vaekit::pictures::{manifold, normal_quantile_grid};
///
/// let model = Model::from_preset(Preset::DenseVae, &Device::Cpu, 0)?;
/// let coords = normal_quantile_grid(5, 0.05, 0.95)?;
/// assert_eq!(manifold(model.decoder(), &coords, None, model.device())?.dims(), &[25, 1, 28, 28]);
/// # Ok::<(), vaekit::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Config`] if the decoder does not take 2-D codes (plus the
/// condition), `coords` is empty or holds a non-finite value;
/// [`Error::Candle`] if decoding fails.
pub fn manifold<D: Decoder + ?Sized>(
    decoder: &D,
    coords: &[f64],
    condition: Option<&[f32]>,
    device: &candle_core::Device,
) -> Result<Tensor> {
    let k = condition.map_or(0, <[f32]>::len);
    if decoder.input_dim() != 2 + k {
        return Err(Error::config(
            "decoder.input_dim",
            format!(
                "the manifold needs a 2-D latent space: the decoder takes {} values, not 2 + {k} (condition)",
                decoder.input_dim()
            ),
        ));
    }
    if coords.is_empty() {
        return Err(Error::config("coords", "need at least one coordinate"));
    }
    if let Some(i) = coords.iter().position(|c| !c.is_finite()) {
        return Err(Error::config(
            format!("coords[{i}]"),
            format!("{} is not finite", coords[i]),
        ));
    }
    let codes: Vec<f32> = manifold_codes(coords)
        .into_iter()
        .flat_map(|(a, b)| [a as f32, b as f32])
        .collect();
    let n = codes.len() / 2;
    let z = Tensor::from_vec(codes, (n, 2), device)?; // [n², 2]
    let mut parts = Vec::with_capacity(n.div_ceil(CHUNK));
    for start in (0..n).step_by(CHUNK) {
        let len = CHUNK.min(n - start);
        let zs = z.narrow(0, start, len)?; // [len, 2]
        let cond = match condition {
            Some(c) => Some(
                Tensor::from_slice(c, (1, k), device)?.repeat((len, 1))?, // [len, k]
            ),
            None => None,
        };
        parts.push(decode_codes(decoder, &zs, cond.as_ref())?); // [len, c, h, w]
    }
    let pixels = Tensor::cat(&parts, 0)?; // [n², c, h, w]
    Ok(pixels)
}
