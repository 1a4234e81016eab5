//! What a training recipe's numbers must be, each rule and its wording in one place:
//! [`TrainConfig::validate`](crate::TrainConfig::validate) and the examples' flag parsers
//! both ask here. Each function returns the value when it is allowed, else why it is not,
//! phrased to follow the flag's name (`--batch-size must be at least 2 ...`).

/// A count of at least 1: epochs, gradient accumulation, image limits, seeds.
///
/// # Errors
/// When `n` is 0.
pub fn at_least_one(n: usize) -> Result<usize, &'static str> {
    match n {
        0 => Err("must be at least 1"),
        n => Ok(n),
    }
}

/// A number of samples to take batch statistics over (`--recalibrate`'s images): at least 2.
///
/// # Errors
/// When `n` is 0 or 1.
pub fn at_least_two(n: usize) -> Result<usize, &'static str> {
    match n {
        0 | 1 => Err("must be at least 2 (batch statistics need more than one sample)"),
        n => Ok(n),
    }
}

/// A training batch size: at least 2, since batch normalization needs more than one sample.
///
/// # Errors
/// When `n` is 0 or 1.
pub fn batch_size(n: usize) -> Result<usize, &'static str> {
    match n {
        0 | 1 => {
            Err("must be at least 2 (batch normalization needs more than one sample per batch)")
        }
        n => Ok(n),
    }
}

/// A learning rate: positive and finite.
///
/// # Errors
/// When `lr` is zero, negative, NaN or infinite.
pub fn learning_rate(lr: f64) -> Result<f64, &'static str> {
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err("must be positive and finite")
    }
}

/// SGD momentum (and any other rate of the same kind, such as dropout): in `[0, 1)`.
///
/// # Errors
/// When `value` is outside `[0, 1)` or NaN.
pub fn unit_interval(value: f64) -> Result<f64, &'static str> {
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be in [0, 1)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_refuses_its_edge_and_keeps_the_first_allowed_value() {
        assert_eq!(at_least_one(0), Err("must be at least 1"));
        assert_eq!(at_least_one(1), Ok(1));
        assert!(batch_size(1).unwrap_err().starts_with("must be at least 2"));
        assert_eq!(batch_size(2), Ok(2));
        for bad in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            assert_eq!(
                learning_rate(bad),
                Err("must be positive and finite"),
                "{bad}"
            );
        }
        assert_eq!(learning_rate(1e-3), Ok(1e-3));
        for bad in [-0.5, 1.0, f64::NAN] {
            assert_eq!(unit_interval(bad), Err("must be in [0, 1)"), "{bad}");
        }
        assert_eq!(unit_interval(0.0), Ok(0.0));
    }
}
