//! Reading burnpack records written by version 0.1 of this workspace.
//!
//! Version 0.2 changed two record paths:
//! - BatchNorm and InstanceNorm kept `running_mean`, `running_var` and `num_batches_tracked`
//!   as three fields of the layer (`bn1.running_mean`); they now sit in a
//!   [`RunningStats`](bn_layers::RunningStats) submodule, at `bn1.running.mean`,
//!   `bn1.running.var` and `bn1.running.num_batches_tracked`;
//! - [`Norm`](crate::Norm)'s variant for this workspace's BatchNorm was `Ours`, and is now
//!   `Batch`: `model.norm1.Ours.gamma` became `model.norm1.Batch.gamma`.
//!
//! Burn refuses to load an old record into a new model (the new paths are missing, the old
//! ones unused); [`load_record`] renames the old paths first.
//!
//! The renaming is decided by the model, not by the names alone: a path is renamed only when
//! the model has its new form and not the old one. Burn's own `BatchNorm` (`--norm burn`)
//! still names its buffers `running_mean` and `running_var`, and those are left alone.

use std::collections::HashSet;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::burn_pack::{Reader, Tensor as PackTensor, Writer};
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::{Bool, Int, Tensor};

/// The old field names of the running statistics and their paths inside the submodule.
const OLD_TO_NEW: [(&str, &str); 3] = [
    ("running_mean", "running.mean"),
    ("running_var", "running.var"),
    ("num_batches_tracked", "running.num_batches_tracked"),
];

/// Reads the burnpack record at `path` for `model`, renaming the running statistics of the
/// old layout (see the [module docs](self)). Returns the record, ready for
/// [`Module::try_load_record`], and how many tensors were renamed (0 for a record of
/// today's layout).
///
/// # Errors
/// [`RecordError::Io`] when the file cannot be read or is not a burnpack file.
pub fn load_record<M: Module>(
    model: &M,
    path: &Path,
) -> Result<(ModuleRecord, usize), RecordError> {
    let io = |err: &dyn std::fmt::Display| RecordError::Io(format!("{}: {err}", path.display()));
    let tensors = Reader::from_file(path)
        .and_then(Reader::into_tensors)
        .map_err(|err| io(&err))?;
    let (tensors, renamed) = upgrade(tensors, &paths(model));
    let bytes = Writer::new(tensors).into_bytes().map_err(|err| io(&err))?;
    Ok((ModuleRecord::from_bytes(bytes)?, renamed))
}

/// Renames every old-layout tensor whose new path `model_paths` has (and whose old path it
/// lacks); returns the tensors and how many were renamed.
fn upgrade(
    mut tensors: Vec<PackTensor>,
    model_paths: &HashSet<String>,
) -> (Vec<PackTensor>, usize) {
    let mut renamed = 0;
    for tensor in &mut tensors {
        if let Some(path) = new_path(&tensor.name, model_paths) {
            tensor.name = path;
            renamed += 1;
        }
    }
    (tensors, renamed)
}

/// The variant of [`Norm`](crate::Norm) renamed in 0.2, and its new name.
const OLD_VARIANT: (&str, &str) = ("Ours", "Batch");

/// `old`'s path in version 0.2 (`norm1.Ours.running_mean` → `norm1.Batch.running.mean`),
/// when the model has that path and not `old` itself.
fn new_path(old: &str, model_paths: &HashSet<String>) -> Option<String> {
    if model_paths.contains(old) {
        return None;
    }
    let mut segments: Vec<&str> = old.split('.').collect();
    for segment in &mut segments {
        if *segment == OLD_VARIANT.0 {
            *segment = OLD_VARIANT.1;
        }
    }
    if let Some(last) = segments.last_mut()
        && let Some((_, inside)) = OLD_TO_NEW.iter().find(|(name, _)| name == last)
    {
        *last = inside;
    }
    let new = segments.join(".");
    (new != old && model_paths.contains(&new)).then_some(new)
}

/// The record path of every tensor of `model` (its parameters and running state).
fn paths<M: Module>(model: &M) -> HashSet<String> {
    #[derive(Default)]
    struct Paths {
        current: Vec<String>,
        all: HashSet<String>,
    }
    impl Paths {
        fn add(&mut self) {
            self.all.insert(self.current.join("."));
        }
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.current.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.current.pop();
        }
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
            self.add();
        }
        fn visit_int<const D: usize>(&mut self, _: &Param<Tensor<D, Int>>) {
            self.add();
        }
        fn visit_bool<const D: usize>(&mut self, _: &Param<Tensor<D, Bool>>) {
            self.add();
        }
    }
    let mut paths = Paths::default();
    model.visit(&mut paths);
    paths.all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_paths(paths: &[&str]) -> HashSet<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn old_paths_move_into_the_running_submodule_only_where_the_model_has_it() {
        let ours = model_paths(&["bn1.gamma", "bn1.running.mean", "bn1.running.var"]);
        assert_eq!(
            new_path("bn1.running_mean", &ours).as_deref(),
            Some("bn1.running.mean")
        );
        assert_eq!(new_path("bn1.gamma", &ours), None, "today's path");
        assert_eq!(
            new_path("bn2.running_mean", &ours),
            None,
            "not in the model"
        );
        // Inside a model's `Norm`, the variant is renamed too.
        let lenet = model_paths(&[
            "norm1.Batch.gamma",
            "norm1.Batch.running.num_batches_tracked",
        ]);
        assert_eq!(
            new_path("norm1.Ours.gamma", &lenet).as_deref(),
            Some("norm1.Batch.gamma")
        );
        assert_eq!(
            new_path("norm1.Ours.num_batches_tracked", &lenet).as_deref(),
            Some("norm1.Batch.running.num_batches_tracked")
        );
        // Burn's own BatchNorm keeps `running_mean`: left alone.
        let burns = model_paths(&["bn1.running_mean", "bn1.running.mean"]);
        assert_eq!(new_path("bn1.running_mean", &burns), None);
    }
}
