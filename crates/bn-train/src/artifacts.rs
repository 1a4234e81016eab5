//! A run's directory, the same for both step engines: `config.json` (the recipe, checked on
//! `--resume`), `checkpoint/`, `metrics.csv`, `curves.svg` (with the `plots` feature) and
//! `report.json`.

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, ModuleDisplay};
use burn::tensor::Device;

use crate::checkpoint::last_checkpoint;
use crate::classifier::Classifier;
use crate::config::TrainConfig;
use crate::report::{EpochMetrics, Report, write_metrics_csv};
use crate::train::{TrainError, io};

/// What an engine hands back: the trained model and what it measured.
pub(crate) struct EngineRun<M: Module + ModuleDisplay> {
    /// The trained classifier, in evaluation mode.
    pub model: Classifier<M>,
    /// Every epoch's metrics, those of a resumed run's earlier epochs included.
    pub epochs: Vec<EpochMetrics>,
    /// The loss of every training step of this invocation, in order.
    pub step_losses: Vec<f64>,
    /// Training images per epoch.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Wall time of this invocation's epochs, test evaluations included, in seconds.
    pub wall_time_s: f64,
}

/// Creates the artifact directory, writes `config.json` and returns the epoch to resume from
/// (0 for a fresh run, whose old logs and checkpoints are removed).
pub(crate) fn prepare(
    config: &TrainConfig,
    artifacts: &Path,
    resume: bool,
) -> Result<usize, TrainError> {
    std::fs::create_dir_all(artifacts).map_err(io(artifacts))?;
    let config_path = artifacts.join("config.json");
    let start = if resume {
        let saved = load_saved_recipe(&config_path).map_err(|err| {
            TrainError::Resume(format!("no readable {} ({err})", config_path.display()))
        })?;
        let same_recipe = TrainConfig {
            epochs: config.epochs,
            ..saved.clone()
        };
        if same_recipe.to_string() != config.to_string() {
            return Err(TrainError::Resume(format!(
                "the flags differ from the recipe saved in {} (only --epochs may change):\n  \
                 saved: {saved}\n  given: {config}",
                config_path.display()
            )));
        }
        let epoch = last_checkpoint(artifacts).ok_or_else(|| {
            TrainError::Resume(format!(
                "no checkpoint in {}",
                artifacts.join("checkpoint").display()
            ))
        })?;
        if epoch >= config.epochs {
            return Err(TrainError::Resume(format!(
                "the checkpoint is at epoch {epoch} already; pass --epochs above {epoch}"
            )));
        }
        remove_logs_after(artifacts, epoch)?;
        epoch
    } else {
        for stale in ["checkpoint", "train", "valid"] {
            let path = artifacts.join(stale);
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
        0
    };
    config.save(&config_path).map_err(io(&config_path))?;
    Ok(start)
}

/// The recipe saved in `config.json`. Files written before data-parallel runs kept one have
/// no `devices` and `sync_bn`: those runs trained on one device, which the defaults say.
fn load_saved_recipe(path: &Path) -> Result<TrainConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
    let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|err| err.to_string())?;
    if let Some(fields) = json.as_object_mut() {
        fields.entry("devices").or_insert(1.into());
        fields.entry("sync_bn").or_insert(false.into());
    }
    serde_json::from_value(json).map_err(|err| err.to_string())
}

/// Removes burn-train's metric logs of the epochs after `epoch` (written by a run that was
/// stopped before checkpointing them), so the resumed run's logs replace them.
fn remove_logs_after(artifacts: &Path, epoch: usize) -> Result<(), TrainError> {
    for split in ["train", "valid"] {
        let dir = artifacts.join(split);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let logged = name
                .to_str()
                .and_then(|n| n.strip_prefix("epoch-"))
                .and_then(|n| n.parse::<usize>().ok());
            if logged.is_some_and(|logged| logged > epoch) {
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        }
    }
    Ok(())
}

/// Writes `metrics.csv`, `curves.svg` (with the `plots` feature) and `report.json` for a run
/// that started at `start_epoch`, and returns the report. `trainable_params` is counted on
/// the model before training (on its autodiff device).
pub(crate) fn finish<M: Module + ModuleDisplay + bn_models::Classify>(
    run: &EngineRun<M>,
    model_name: &str,
    trainable_params: usize,
    config: &TrainConfig,
    start_epoch: usize,
    device: &Device,
    artifacts: &Path,
) -> Result<Report, TrainError> {
    let csv = artifacts.join("metrics.csv");
    write_metrics_csv(&csv, &run.epochs).map_err(io(&csv))?;
    #[cfg(feature = "plots")]
    crate::plot::draw_curves(&artifacts.join("curves.svg"), model_name, &run.epochs)
        .map_err(|err| TrainError::Plot(err.to_string()))?;
    let last = run
        .epochs
        .last()
        .ok_or_else(|| TrainError::Logs("no epoch was logged".into()))?;
    // `prepare` refuses to resume at or past the last epoch.
    let epochs_run = config.epochs - start_epoch;
    let first_norm = run.model.first_norm_affine();
    let report = Report {
        model: model_name.to_string(),
        norm: config.norm.name().to_string(),
        backend: format!("{device:?}"),
        trainable_params,
        epochs: last.epoch,
        epochs_this_run: epochs_run,
        train_images: run.train_images,
        test_images: run.test_images,
        final_train_loss: last.train_loss,
        final_train_accuracy: last.train_accuracy,
        final_test_loss: last.test_loss,
        final_test_accuracy: last.test_accuracy,
        wall_time_s: run.wall_time_s,
        seconds_per_epoch: run.wall_time_s / epochs_run as f64,
        images_per_second: (run.train_images * epochs_run) as f64 / run.wall_time_s,
        first_norm_gamma: first_norm.as_ref().map(|(g, _)| g.clone()),
        first_norm_beta: first_norm.map(|(_, b)| b),
    };
    let report_path = artifacts.join("report.json");
    let json = serde_json::to_string_pretty(&report).expect("a report serializes");
    std::fs::write(&report_path, json).map_err(io(&report_path))?;
    Ok(report)
}
