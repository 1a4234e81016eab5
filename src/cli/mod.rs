//! What the examples share: their flag parsers ([`flags`]), the `--dtype` flag
//! ([`precision`]) and what each does around its work ([`output`]): announce the device,
//! train an experiment's runs, write its figure and numbers, exit with a clear error.

pub mod flags;
pub mod output;
pub mod precision;

pub use flags::{
    at_least_one, at_least_two, batch_size, directory_path, existing_dir, learning_rate,
    unit_interval,
};

/// The batch size of `--recalibrate` (`import_pytorch`, the main job), as in
/// `scripts/gen_recalibration.py`.
pub const RECALIBRATION_BATCH: usize = 128;
pub use output::{announce_device, exit_code, train_run, write_json, write_outputs};
pub use precision::{FloatArg, values_by_dtype};
