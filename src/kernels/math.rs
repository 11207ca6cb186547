//! Elementary functions written so that the compiler vectorises the loops
//! that call them: no branches, no calls, integer tricks for the exponent.

/// `e^x` in `f32`, within 2 units in the last place of the correctly
/// rounded value for `x` in `[−87.3, 88.3]` (checked against `f64` in the
/// tests); the argument is clamped to `[−87.34, 88.38]`, so large negative
/// `x` give about `1.2e−38` rather than a subnormal or zero, and large
/// positive ones about `2.4e38` rather than infinity. NaN stays NaN.
///
/// Cody–Waite range reduction `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, a degree-5
/// polynomial for `e^r` (Cephes' `expf` coefficients), and `2^n` built in
/// the exponent bits.
#[inline(always)]
pub(super) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n · LN2_HI is exact for the n that occur.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2^23 rounds to an integer, which lands in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.336_55, 88.376_26);
    // Plain products and sums, not `mul_add`: without the FMA target feature
    // that is a libm call, which stops vectorisation.
    let t = x * LOG2E + ROUND;
    let n = t - ROUND; // round(x / ln 2)
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // The integer n sits in t's low mantissa bits (two's complement).
    let bits = (t.to_bits().wrapping_sub(ROUND.to_bits()) as i32).wrapping_add(127) << 23;
    er * f32::from_bits(bits as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units in the last place between `got` and the exact `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
        ((got as f64) - want).abs() / ulp
    }

    #[test]
    fn exp_is_within_two_ulps_over_its_range() {
        let mut worst: f64 = 0.0;
        let n = 2_000_000;
        for i in 0..=n {
            let x = -87.0 + 175.3 * (i as f32) / (n as f32);
            let e = ulps(exp_f32(x), (x as f64).exp());
            worst = worst.max(e);
        }
        for x in [0.0f32, -0.0, 1.0, -1.0, 0.5, 1e-8, -1e-8, 88.3, -87.3] {
            worst = worst.max(ulps(exp_f32(x), (x as f64).exp()));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn exp_clamps_and_keeps_nan() {
        assert!(exp_f32(1000.0).is_finite() && exp_f32(1000.0) > 2.3e38);
        assert!(exp_f32(-1000.0) > 0.0 && exp_f32(-1000.0) < 1.3e-38);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(f32::INFINITY) > 2.3e38);
    }
}
