//! What the examples share: their flag parsers ([`flags`]) and what each does around its
//! work ([`output`]): announce the device, train an experiment's runs, write its figure and
//! numbers, exit with a clear error.

pub mod flags;
pub mod output;

pub use flags::{at_least_one, batch_size, existing_dir, learning_rate, unit_interval};
pub use output::{announce_device, exit_code, train_run, write_json, write_outputs};
