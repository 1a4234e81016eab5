//! Fashion-MNIST data, training ([`train`]: burn-train's `Learner` on one device, or
//! data-parallel replicas with optional `SyncBatchNorm`), and the artifacts of a run:
//! `config.json`, checkpoints, `metrics.csv`, `curves.svg` and `report.json`.
//!
//! Features, both on by default: `plots` (the SVG plots, `curves.svg` among the artifacts)
//! and `tui` (burn-train's terminal dashboard on a terminal; plain progress lines without it).

mod artifacts;
mod checkpoint;
mod classifier;
mod config;
pub mod data;
mod divergence;
mod evaluate;
mod learner;
mod loss;
mod parallel;
#[cfg(feature = "plots")]
mod plot;
mod progress;
mod recalibration;
mod report;
pub mod rules;
mod train;

pub use checkpoint::{AtomicCheckpointer, check_checkpoint, last_checkpoint};
pub use classifier::Classifier;
pub use config::{LrSchedule, OptimizerKind, TrainConfig};
pub use divergence::{Divergence, DivergenceGuard};
pub use evaluate::{Evaluation, evaluate};
pub use loss::{correct_predictions, cross_entropy};
#[cfg(feature = "plots")]
pub use plot::{Line, Panel, draw_curves, draw_panels};
pub use progress::PlainProgress;
pub use recalibration::recalibrate_on;
pub use report::{EpochMetrics, Report, metrics_table, read_metrics_csv, write_metrics_csv};
pub use train::{RunOptions, TrainError, TrainOutcome, train};
