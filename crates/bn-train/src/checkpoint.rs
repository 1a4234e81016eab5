//! Checkpoints that a kill cannot corrupt, and the checks `--resume` makes before trusting one.
//!
//! burn-train writes a model, an optimizer and a learning-rate-scheduler record per epoch
//! (`checkpoint/{model,optim,scheduler}-EPOCH.bpk`). [`AtomicCheckpointer`] writes each to
//! `NAME-EPOCH.bpk.tmp`, syncs it to disk and renames it into place, so a file under its
//! final name is always complete; an epoch counts as checkpointed once all three are there.
//! `metrics.csv` is written the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

/// The three records burn-train keeps per epoch.
const RECORDS: [&str; 3] = ["model", "optim", "scheduler"];

/// Writes burn-train's checkpoint records atomically (temporary file, sync, rename).
pub struct AtomicCheckpointer {
    directory: PathBuf,
    name: &'static str,
}

impl AtomicCheckpointer {
    /// A checkpointer for `NAME-EPOCH.bpk` files in `directory` (created if missing).
    ///
    /// # Errors
    /// When `directory` cannot be created.
    pub fn new(directory: &Path, name: &'static str) -> std::io::Result<Self> {
        std::fs::create_dir_all(directory)?;
        Ok(Self {
            directory: directory.to_path_buf(),
            name,
        })
    }

    fn path(&self, epoch: usize) -> PathBuf {
        record_path(&self.directory, self.name, epoch)
    }
}

fn record_path(directory: &Path, name: &str, epoch: usize) -> PathBuf {
    directory.join(format!("{name}-{epoch}.bpk"))
}

impl<R: Checkpoint> Checkpointer<R> for AtomicCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let bytes = record
            .checkpoint_into_bytes()
            .map_err(CheckpointerError::Record)?;
        write_atomically(&self.path(epoch), &bytes).map_err(CheckpointerError::IOError)
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        match std::fs::remove_file(self.path(epoch)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointerError::IOError(err))
            }
            _ => Ok(()),
        }
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(epoch))
    }
}

/// Writes `bytes` to `path.tmp`, syncs it, renames it to `path` and syncs the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // A bare file name's parent is "": the current directory.
    if let Some(directory) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::File::open(directory)?.sync_all()?;
    }
    Ok(())
}

/// The last epoch with all three records (model, optimizer, scheduler) in
/// `artifacts/checkpoint`. Temporary files of interrupted writes are ignored.
pub fn last_checkpoint(artifacts: &Path) -> Option<usize> {
    let dir = artifacts.join("checkpoint");
    std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse()
                .ok()
        })
        .filter(|&epoch: &usize| {
            RECORDS
                .iter()
                .all(|name| record_path(&dir, name, epoch).is_file())
        })
        .max()
}

/// Reads the three records of `epoch` and applies the model record to `model`, so that
/// burn-train (which panics on a bad record) is only handed checkpoints that load.
///
/// A model record written before the running statistics became one submodule
/// ([`bn_models::record`]) is rewritten in today's layout, atomically, before burn-train
/// reads it; the result is how many of its tensors were renamed (0 for today's layout).
///
/// # Errors
/// A message naming the file and what is wrong with it.
pub fn check_checkpoint<M: Module>(
    model: &M,
    artifacts: &Path,
    epoch: usize,
) -> Result<usize, String> {
    let dir = artifacts.join("checkpoint");
    let unreadable = |path: &Path, err: &dyn std::fmt::Display| {
        format!(
            "{} is not a readable checkpoint ({err}); delete it to resume from an earlier \
             epoch, or start afresh without --resume",
            path.display()
        )
    };
    let path = record_path(&dir, "model", epoch);
    let (record, renamed) =
        bn_models::record::load_record(model, &path).map_err(|err| unreadable(&path, &err))?;
    model
        .clone()
        .try_load_record(record.clone())
        .map_err(|err| {
            format!(
                "{} does not fit this model ({err}); was it written by another --norm or model?",
                path.display()
            )
        })?;
    if renamed > 0 {
        let rewrite = |err: &dyn std::fmt::Display| {
            format!(
                "{}: cannot rewrite it in today's layout: {err}",
                path.display()
            )
        };
        let bytes = record.into_bytes().map_err(|err| rewrite(&err))?;
        write_atomically(&path, &bytes).map_err(|err| rewrite(&err))?;
    }
    let path = record_path(&dir, "optim", epoch);
    OptimizerRecord::load(&path).map_err(|err| unreadable(&path, &err))?;
    let path = record_path(&dir, "scheduler", epoch);
    LrSchedulerRecord::load(&path).map_err(|err| unreadable(&path, &err))?;
    Ok(renamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bn-ckpt-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(dir.join("checkpoint")).unwrap();
        dir
    }

    #[test]
    fn an_epoch_counts_only_with_all_three_complete_records() {
        let dir = temp_dir("last");
        let ckpt = dir.join("checkpoint");
        assert_eq!(last_checkpoint(&dir), None);
        for name in RECORDS {
            write_atomically(&record_path(&ckpt, name, 1), b"x").unwrap();
        }
        write_atomically(&record_path(&ckpt, "model", 2), b"x").unwrap();
        write_atomically(&record_path(&ckpt, "optim", 2), b"x").unwrap();
        std::fs::write(ckpt.join("scheduler-2.bpk.tmp"), b"half").unwrap();
        assert_eq!(last_checkpoint(&dir), Some(1));
        assert!(!ckpt.join("model-1.bpk.tmp").exists(), "renamed into place");
        std::fs::remove_dir_all(&dir).ok();
    }
}
