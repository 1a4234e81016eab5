//! What every example does around its work: announce the device, run an experiment's
//! training runs, write its figure and numbers to its artifact directory, and exit with a
//! clear error.

use std::path::Path;
use std::process::ExitCode;

use bn_models::Classify;
use bn_train::data::TrainTest;
use bn_train::{Panel, RunOptions, TrainConfig, TrainOutcome, draw_panels, train};
use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Device, Tensor};

use crate::BackendKind;

/// An example's exit: success, or the error printed as `error: ...` with exit status 2.
pub fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// The device of `backend` (or of the feature-selected backend), printed as the first line
/// of output as every example does.
///
/// # Errors
/// When the backend's cargo feature is not compiled in.
pub fn announce_device(backend: Option<BackendKind>) -> Result<Device, String> {
    let backend = backend.unwrap_or_else(BackendKind::from_features);
    let device = backend.device()?;
    println!("backend: {backend}, device: {device:?}");
    Ok(device)
}

/// One training run of an experiment: announces it as `== name`, trains with the pipeline of
/// the main job into `dir` (a fresh run, not a resume), and turns a failure into its message.
///
/// # Errors
/// The training error's message.
pub fn train_run<M>(
    model: M,
    name: &str,
    config: &TrainConfig,
    data: &TrainTest,
    device: &Device,
    dir: &Path,
) -> Result<TrainOutcome<M>, String>
where
    M: Module + ModuleDisplay + Classify<Input = Tensor<4>> + Send + Sync + 'static,
{
    println!("\n== {name}");
    train(
        model,
        name,
        config,
        data.clone(),
        device,
        dir,
        RunOptions::default(),
    )
    .map_err(|e| e.to_string())
}

/// Writes `<stem>.svg` (the panels under `title`) and `<stem>.json` (`numbers`) into `dir`,
/// creating it, and prints both paths.
///
/// # Errors
/// A message naming the file that could not be written.
pub fn write_outputs(
    dir: &Path,
    stem: &str,
    title: &str,
    panels: &[Panel],
    numbers: &serde_json::Value,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let svg = dir.join(format!("{stem}.svg"));
    draw_panels(&svg, title, panels).map_err(|e| format!("{}: {e}", svg.display()))?;
    let json = dir.join(format!("{stem}.json"));
    write_json(&json, numbers)?;
    println!("wrote {} and {}", svg.display(), json.display());
    Ok(())
}

/// Writes `value` as pretty-printed JSON to `path`.
///
/// # Errors
/// A message naming the file that could not be written.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    std::fs::write(path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
