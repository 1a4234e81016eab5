//! Flag parsers: a bad value is refused by clap, before any work, with the flag's name, the
//! value and what it must be (exit status 2). The rules themselves are bn-train's
//! ([`bn_train::rules`]), which `TrainConfig::validate` applies too.
//!
//! ```text
//! error: invalid value '0' for '--batch-size <BATCH_SIZE>': must be at least 2 (batch
//! normalization needs more than one sample per batch)
//! ```

use std::path::PathBuf;

use bn_train::rules;

/// A count of at least 1 (`--epochs`).
///
/// # Errors
/// When `value` is not a whole number of at least 1.
pub fn at_least_one(value: &str) -> Result<usize, String> {
    Ok(rules::at_least_one(whole_number(value)?)?)
}

/// A number of images to take batch statistics over (`--recalibrate`): at least 2.
///
/// # Errors
/// When `value` is not a whole number of at least 2.
pub fn at_least_two(value: &str) -> Result<usize, String> {
    Ok(rules::at_least_two(whole_number(value)?)?)
}

/// A training batch size: at least 2, since batch normalization needs more than one sample.
///
/// # Errors
/// When `value` is not a whole number of at least 2.
pub fn batch_size(value: &str) -> Result<usize, String> {
    Ok(rules::batch_size(whole_number(value)?)?)
}

/// A learning rate: a positive, finite number.
///
/// # Errors
/// When `value` is not a number, or is zero, negative, NaN or infinite.
pub fn learning_rate(value: &str) -> Result<f64, String> {
    let lr = value
        .parse()
        .map_err(|_| "must be a number such as 0.1 or 1e-3".to_string())?;
    Ok(rules::learning_rate(lr)?)
}

/// A rate in `[0, 1)`: SGD momentum (`--momentum`), a dropout probability (`--dropout`).
///
/// # Errors
/// When `value` is not a number in `[0, 1)`.
pub fn unit_interval(value: &str) -> Result<f64, String> {
    let rate = value
        .parse()
        .map_err(|_| "must be a number in [0, 1)".to_string())?;
    Ok(rules::unit_interval(rate)?)
}

/// An existing directory (`--data-dir`).
///
/// # Errors
/// When `value` does not exist or is not a directory.
pub fn existing_dir(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(path),
        Ok(_) => Err("is a file, not a directory".into()),
        Err(err) => Err(format!("cannot be opened as a directory ({err})")),
    }
}

/// A directory, or a path where one can be created (`--data-dir` with `--download`).
///
/// # Errors
/// When `value` exists and is not a directory.
pub fn directory_path(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    match std::fs::metadata(&path) {
        Ok(meta) if !meta.is_dir() => Err("is a file, not a directory".into()),
        _ => Ok(path),
    }
}

fn whole_number(value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| "must be a whole number such as 1 or 128".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_each_bad_value_with_its_reason() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert_eq!(at_least_one("0"), Err("must be at least 1".into()));
        assert!(at_least_one("-1").unwrap_err().contains("whole number"));
        assert_eq!(batch_size("2"), Ok(2));
        assert!(batch_size("1").unwrap_err().contains("at least 2"));
        assert!(batch_size("0").unwrap_err().contains("at least 2"));
        assert_eq!(learning_rate("1e-3"), Ok(1e-3));
        for bad in ["0", "-0.1", "NaN", "inf"] {
            assert_eq!(
                learning_rate(bad),
                Err("must be positive and finite".into()),
                "{bad}"
            );
        }
        assert!(learning_rate("fast").unwrap_err().contains("a number"));
        assert_eq!(unit_interval("0"), Ok(0.0));
        assert!(unit_interval("1").is_err() && unit_interval("-0.5").is_err());
        let file = std::env::current_exe().unwrap();
        let file = file.to_str().unwrap();
        assert_eq!(existing_dir(file), Err("is a file, not a directory".into()));
        assert!(
            existing_dir("/no/such/dir")
                .unwrap_err()
                .contains("cannot be opened")
        );
        assert!(existing_dir("/tmp").is_ok());
    }
}
