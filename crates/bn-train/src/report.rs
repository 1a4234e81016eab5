//! What a run writes besides checkpoints: `metrics.csv` and `report.json`.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

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

/// Writes `epoch,train_loss,train_accuracy,test_loss,test_accuracy` rows.
pub fn write_metrics_csv(path: &Path, epochs: &[EpochMetrics]) -> std::io::Result<()> {
    let mut out = std::fs::File::create(path)?;
    writeln!(
        out,
        "epoch,train_loss,train_accuracy,test_loss,test_accuracy"
    )?;
    for e in epochs {
        writeln!(
            out,
            "{},{:.6},{:.6},{:.6},{:.6}",
            e.epoch, e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy
        )?;
    }
    Ok(())
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
