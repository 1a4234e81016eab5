//! How the layers print: one line in PyTorch's terms, as burn-nn's norm layers print, e.g.
//! `BatchNorm {num_features: 3, eps: 0.00001, momentum: 0.1, affine: true,
//! track_running_stats: true, params: 12}`.

use burn::module::{Content, DisplaySettings, ModuleDisplay};

use crate::training::TrainingMode;

/// burn-nn's settings for its norm layers: every attribute on one line.
pub(crate) fn one_line() -> Option<DisplaySettings> {
    DisplaySettings::new()
        .with_new_line_after_attribute(false)
        .optional()
}

/// The attributes of a layer with running statistics (BatchNorm, InstanceNorm), then
/// `training: disabled` when its training mode is off (after `valid()`).
pub(crate) fn with_running_stats(
    content: Content,
    num_features: usize,
    eps: f64,
    momentum: &impl ModuleDisplay,
    affine: bool,
    track_running_stats: bool,
    training: &TrainingMode,
) -> Option<Content> {
    let content = content
        .add("num_features", &num_features)
        .add("eps", &eps)
        .add("momentum", momentum)
        .add("affine", &affine)
        .add("track_running_stats", &track_running_stats);
    match training.is_enabled() {
        true => content.optional(),
        false => content.add("training", &training.enabled).optional(),
    }
}
