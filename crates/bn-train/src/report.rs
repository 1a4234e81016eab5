//! What a run writes besides checkpoints: `metrics.csv` and `report.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::write_atomically;

/// One epoch's mean training loss and accuracy (training mode) and test loss and accuracy
/// (evaluation mode, running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy, 0 to 1.
    pub train_accuracy: f64,
    /// Test loss in evaluation mode.
    pub test_loss: f64,
    /// Test accuracy in evaluation mode, 0 to 1.
    pub test_accuracy: f64,
}

/// The summary of a run, written to `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The model trained.
    pub model: String,
    /// Its normalization layer.
    pub norm: String,
    /// The device it ran on.
    pub backend: String,
    /// Trainable parameters (running statistics not counted).
    pub trainable_params: usize,
    /// Epochs completed in all, including resumed ones.
    pub epochs: usize,
    /// Epochs trained by this invocation.
    pub epochs_this_run: usize,
    /// Training images per epoch.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Mean training loss of the last epoch.
    pub final_train_loss: f64,
    /// Training accuracy of the last epoch.
    pub final_train_accuracy: f64,
    /// Test loss after the last epoch, evaluation mode.
    pub final_test_loss: f64,
    /// Test accuracy after the last epoch, evaluation mode.
    pub final_test_accuracy: f64,
    /// Wall time of this invocation's training, test evaluations included, in seconds.
    pub wall_time_s: f64,
    /// `wall_time_s` per epoch trained.
    pub seconds_per_epoch: f64,
    /// Training images per second of wall time.
    pub images_per_second: f64,
    /// The first normalization layer's learned scale, if it has one.
    pub first_norm_gamma: Option<Vec<f32>>,
    /// The first normalization layer's learned shift, if it has one.
    pub first_norm_beta: Option<Vec<f32>>,
}

/// Writes `epoch,train_loss,train_accuracy,test_loss,test_accuracy` rows, atomically (a
/// temporary file, synced, then renamed): a run killed while writing leaves the previous
/// file, which the data-parallel engine reads back on `--resume`.
pub fn write_metrics_csv(path: &Path, epochs: &[EpochMetrics]) -> std::io::Result<()> {
    let mut text = String::from("epoch,train_loss,train_accuracy,test_loss,test_accuracy\n");
    for e in epochs {
        text.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6}\n",
            e.epoch, e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy
        ));
    }
    write_atomically(path, text.as_bytes())
}

/// Reads back what [`write_metrics_csv`] wrote (the data-parallel engine resumes its
/// metrics from it).
///
/// # Errors
/// When the file cannot be read, or a row is not five numbers.
pub fn read_metrics_csv(path: &Path) -> std::io::Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path)?;
    let bad = |line: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a row of metrics.csv: {line:?}"),
        )
    };
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let [epoch, train_loss, train_accuracy, test_loss, test_accuracy] = fields[..] else {
                return Err(bad(line));
            };
            let number = |field: &str| field.parse::<f64>().map_err(|_| bad(line));
            Ok(EpochMetrics {
                epoch: epoch.parse().map_err(|_| bad(line))?,
                train_loss: number(train_loss)?,
                train_accuracy: number(train_accuracy)?,
                test_loss: number(test_loss)?,
                test_accuracy: number(test_accuracy)?,
            })
        })
        .collect()
}

/// The per-epoch table printed at the end of a run.
pub fn metrics_table(epochs: &[EpochMetrics]) -> String {
    let mut table = String::from("epoch  train loss  train acc  test loss  test acc\n");
    for e in epochs {
        table.push_str(&format!(
            "{:>5}  {:>10.4}  {:>9.4}  {:>9.4}  {:>8.4}\n",
            e.epoch, e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_csv_reads_back_what_was_written() {
        let path = std::env::temp_dir().join(format!("bn-metrics-{}.csv", std::process::id()));
        let epochs = [
            EpochMetrics {
                epoch: 1,
                train_loss: 0.912345678,
                train_accuracy: 0.6,
                test_loss: f64::NAN,
                test_accuracy: 0.71,
            },
            EpochMetrics {
                epoch: 2,
                train_loss: 0.5,
                train_accuracy: 0.8,
                test_loss: 0.45,
                test_accuracy: 0.83,
            },
        ];
        write_metrics_csv(&path, &epochs).unwrap();
        let read = read_metrics_csv(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!((read[0].epoch, read[0].train_loss), (1, 0.912346));
        assert!(read[0].test_loss.is_nan());
        assert_eq!(read[1].test_accuracy, 0.83);
        // Written again, the rows are the same bytes: a resumed run's file matches.
        let first = std::fs::read(&path).unwrap();
        write_metrics_csv(&path, &read).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
        std::fs::write(&path, "epoch,a\n1,2,3\n").unwrap();
        assert!(
            read_metrics_csv(&path)
                .unwrap_err()
                .to_string()
                .contains("\"1,2,3\"")
        );
        std::fs::remove_file(path).ok();
    }
}
