//! How a value is held against PyTorch's: the error of one element and of a quantity, and the
//! tolerances a case is checked within.

use crate::TensorValue;

/// Error of a quantity: the largest [`element_error`] over its values.
pub(crate) fn error(got: &[f64], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| element_error(g, w))
        .fold(0.0, f64::max)
}

/// `|got - want| / max(1, |want|)` between finite values. A NaN matches a NaN and an
/// infinity the same infinity (error 0); any other pairing with a non-finite value is an
/// infinite error, so a NaN where PyTorch has a number fails, and so does a number where
/// PyTorch has a NaN.
fn element_error(got: f64, want: f64) -> f64 {
    if got.is_finite() && want.is_finite() {
        (got - want).abs() / want.abs().max(1.0)
    } else if (got.is_nan() && want.is_nan()) || got == want {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The smallest float32 allowance, 2^-16 (128 units in the last place of an f32 at 1).
/// PyTorch accumulates its CPU sums in f64 and lands within half a unit; a sum of a few
/// thousand f32 values in f32 (Burn's reductions, which the composed path and the backends
/// without a kernel use) is good to tens of units. Below this an error is rounding; the
/// precision cases are about cancellation, where errors run to 1e-4 and beyond.
pub const F32_FLOOR: f64 = 128.0 * f32::EPSILON as f64;

/// The allowed error of a half-precision case, relative as [`RunOptions::tolerance`](crate::RunOptions::tolerance):
/// bfloat16 carries 8 significant bits, so PyTorch's output and ours, both rounded from f32
/// arithmetic, can land a unit in the last place apart (2^-7 relative).
pub const HALF_TOLERANCE: f64 = 1e-2;

/// `None` when `got` matches `want` within tolerance, else what is wrong.
pub(crate) fn compare(
    got: Option<&[f64]>,
    want: Option<&TensorValue>,
    tolerance: f64,
) -> Option<String> {
    let (got, want) = match (got, want) {
        (None, None) => return None,
        (Some(_), None) => return Some("the layer has a value, PyTorch has none".into()),
        (None, Some(_)) => return Some("missing: PyTorch has a value, the layer none".into()),
        (Some(got), Some(want)) => (got, want),
    };
    if got.len() != want.data.len() {
        return Some(format!(
            "{} values, expected {} (shape {:?})",
            got.len(),
            want.data.len(),
            want.shape
        ));
    }
    let worst = got
        .iter()
        .zip(&want.data)
        .enumerate()
        .map(|(i, (&g, &w))| (i, g, w, element_error(g, w)))
        .max_by(|a, b| a.3.total_cmp(&b.3).then(std::cmp::Ordering::Greater))?;
    let (index, g, w, err) = worst;
    (err > tolerance).then(|| {
        format!("error {err:.2e} > {tolerance:.0e} at index {index} (got {g}, expected {w})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_match_only_their_own_kind() {
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        assert_eq!(element_error(nan, nan), 0.0);
        assert_eq!(element_error(inf, inf), 0.0);
        assert_eq!(element_error(-inf, -inf), 0.0);
        for (got, want) in [
            (nan, 1.0),
            (1.0, nan),
            (inf, -inf),
            (inf, nan),
            (1e308, inf),
        ] {
            assert_eq!(element_error(got, want), inf, "{got} against {want}");
        }
        assert_eq!(element_error(3.0, 2.0), 0.5);
        assert_eq!(element_error(0.5, 0.25), 0.25);
        let want = TensorValue {
            shape: vec![2],
            data: vec![nan, 1.0],
        };
        assert_eq!(compare(Some(&[nan, 1.0]), Some(&want), 1e-9), None);
        let problem = compare(Some(&[0.0, 1.0]), Some(&want), 1e-9).unwrap();
        assert!(
            problem.contains("index 0 (got 0, expected NaN)"),
            "{problem}"
        );
    }
}
