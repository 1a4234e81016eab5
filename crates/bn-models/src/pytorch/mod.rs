//! PyTorch state_dicts of the reference PyTorch models (`scripts/gen_interop.py`): import from `.pt`/`.safetensors`, export to
//! `.safetensors` with PyTorch's key names.
//!
//! A model that implements [`PytorchStateDict`] names, for each of its top-level layers, the
//! state_dict prefix of the same layer in the PyTorch class (`fc1` ↔ `net.9` in `BNLeNet`).
//! Everything else follows from that table and the layer kind:
//!
//! | PyTorch | here | conversion |
//! |---|---|---|
//! | `Linear.weight` `[out, in]` | `Linear.weight` `[in, out]` | transpose |
//! | `BatchNorm*.weight` / `.bias` | `BatchNorm.gamma` / `.beta` | rename |
//! | `running_mean`, `running_var` | `running.mean`, `running.var` | rename (both store the unbiased variance) |
//! | `num_batches_tracked` (0-d int64) | `running.num_batches_tracked` (`[1]` int) | rename, reshape |
//! | `Conv2d.weight`, `.bias` | same | none |
//!
//! Files are read with burn-store's readers ([`PytorchStore`](burn::store::PytorchStore),
//! [`SafetensorsStore`]); keys are
//! checked against the model before anything is loaded, so a missing key, an unexpected key,
//! a wrong shape or a checkpoint of another class is an [`InteropError`] that names it.

mod error;
mod read;

pub use error::InteropError;
use read::{read_tensors, unwrap_state_dict};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use bn_layers::publish_running_state;
use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleAdapter, ModuleContext, ModuleSnapshot, SafetensorsStore, bridge};
use burn::tensor::{DType, TensorData};

/// What a top-level layer of the model is, which decides how its tensors convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `nn.Conv2d` ↔ `burn::nn::conv::Conv2d`: same names, same layout.
    Conv,
    /// `nn.Linear` ↔ `burn::nn::Linear`: the weight is transposed.
    Linear,
    /// `nn.BatchNorm1d/2d` ↔ [`bn_layers::BatchNorm`]: `weight`/`bias` are `gamma`/`beta`.
    BatchNorm,
}

/// A model whose weights correspond one to one to a PyTorch class's state_dict.
pub trait PytorchStateDict: Module + Sized {
    /// The PyTorch class name (`"BNLeNet"`), used in messages.
    const CLASS: &'static str;

    /// `(field here, state_dict prefix there, kind)` for every top-level layer with weights.
    const LAYERS: &'static [(&'static str, &'static str, LayerKind)];
}

/// How a tensor changes on its way from PyTorch to here (and back, reversed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    Same,
    /// `[out, in]` there, `[in, out]` here.
    Transpose,
    /// A 0-d tensor there, `[1]` here.
    Scalar,
}

/// One state_dict entry and the parameter it fills.
#[derive(Debug, Clone)]
struct Entry {
    /// The PyTorch key (`net.1.weight`).
    key: String,
    /// Our parameter path without enum variants (`norm1.gamma`).
    path: String,
    /// The PyTorch shape.
    shape: Vec<usize>,
    /// Our parameter's dtype.
    dtype: DType,
    conversion: Conversion,
}

/// The state_dict keys and PyTorch shapes of `model`, in the model's parameter order.
pub fn state_dict_shapes<M: PytorchStateDict>(model: &M) -> Vec<(String, Vec<usize>)> {
    entries(model)
        .into_iter()
        .map(|entry| (entry.key, entry.shape))
        .collect()
}

/// The running statistics of every BatchNorm in `model` under their state_dict keys
/// (`net.1.running_mean`, `net.1.running_var`, `net.1.num_batches_tracked`), in the model's
/// order, as f64 values.
pub fn running_statistics<M: PytorchStateDict>(model: &M) -> Vec<(String, Vec<f64>)> {
    publish_running_state(model);
    model
        .collect(None, None, true)
        .into_iter()
        .zip(entries(model))
        .filter(|(_, entry)| {
            ["running_mean", "running_var", "num_batches_tracked"]
                .iter()
                .any(|name| entry.key.ends_with(name))
        })
        .map(|(snapshot, entry)| {
            let data = bridge::into_data(snapshot).expect("a parameter of a live model has data");
            (entry.key, data.iter::<f64>().collect())
        })
        .collect()
}

/// Loads a PyTorch state_dict (`.pt`/`.pth` from `torch.save`, or `.safetensors`) into `model`.
///
/// Every key of the model must be in the file with PyTorch's shape, and the file may hold no
/// other key (PyTorch's `load_state_dict(strict=True)`). A state_dict saved inside a training
/// checkpoint (`{"model_state_dict": ..., "optimizer_state_dict": ...}` or `"state_dict"`)
/// or from an `nn.DataParallel` model (keys `module.*`) is found under its prefix, as
/// `model.load_state_dict(checkpoint["model_state_dict"])` would take it. Running statistics and
/// `num_batches_tracked` are loaded with the weights. Tensors keep the model's float dtype.
///
/// # Errors
/// [`InteropError`] naming the file and, where one is at fault, the key and the shapes.
pub fn load_state_dict<M: PytorchStateDict>(mut model: M, path: &Path) -> Result<M, InteropError> {
    let entries = entries(&model);
    let mut tensors = unwrap_state_dict(read_tensors(path)?, &entries);
    check_keys::<M>(path, &entries, &tensors)?;

    let mut converted = Vec::with_capacity(entries.len());
    for entry in &entries {
        let tensor = tensors.remove(&entry.key).expect("keys were checked");
        converted.push(import_tensor(path, entry, tensor)?);
    }
    let result = model.apply(converted, None, None, true);
    assert!(
        result.errors.is_empty() && result.missing.is_empty() && result.unused.is_empty(),
        "the state_dict table of {} disagrees with its module: {result}",
        M::CLASS
    );
    Ok(model)
}

/// Writes `model` as a safetensors file with PyTorch's key names and layouts, so that
/// `model.load_state_dict(safetensors.torch.load_file(path))` works for the PyTorch class.
///
/// # Errors
/// [`InteropError::Write`] when the file cannot be written.
pub fn save_safetensors<M: PytorchStateDict>(model: &M, path: &Path) -> Result<(), InteropError> {
    publish_running_state(model);
    let by_path = entries(model)
        .into_iter()
        .map(|entry| (entry.path.clone(), entry))
        .collect();
    let mut store = SafetensorsStore::from_file(path)
        .skip_enum_variants(true)
        .overwrite(true)
        .metadata("format", "pt")
        .with_to_adapter(ToPytorch { by_path });
    model
        .save_into(&mut store)
        .map_err(|err| InteropError::Write {
            path: path.to_path_buf(),
            message: err.to_string(),
        })
}

/// The table of `model`, derived from its parameters and [`PytorchStateDict::LAYERS`].
fn entries<M: PytorchStateDict>(model: &M) -> Vec<Entry> {
    model
        .collect(None, None, true)
        .into_iter()
        .map(|tensor| {
            let (field, param) = tensor
                .name
                .split_once('.')
                .expect("every parameter sits inside a layer");
            let &(_, prefix, kind) = M::LAYERS
                .iter()
                .find(|(name, _, _)| *name == field)
                .unwrap_or_else(|| panic!("{}: no PyTorch prefix for field {field}", M::CLASS));
            let (name, conversion) = match (kind, param) {
                (LayerKind::Linear, "weight") => ("weight", Conversion::Transpose),
                (LayerKind::BatchNorm, "gamma") => ("weight", Conversion::Same),
                (LayerKind::BatchNorm, "beta") => ("bias", Conversion::Same),
                (LayerKind::BatchNorm, "running.mean") => ("running_mean", Conversion::Same),
                (LayerKind::BatchNorm, "running.var") => ("running_var", Conversion::Same),
                (LayerKind::BatchNorm, "running.num_batches_tracked") => {
                    ("num_batches_tracked", Conversion::Scalar)
                }
                (_, other) => (other, Conversion::Same),
            };
            let shape = tensor.shape.to_vec();
            let shape = match conversion {
                Conversion::Same => shape,
                Conversion::Transpose => vec![shape[1], shape[0]],
                Conversion::Scalar => Vec::new(),
            };
            Entry {
                key: format!("{prefix}.{name}"),
                path: tensor.name.clone(),
                shape,
                dtype: tensor.dtype,
                conversion,
            }
        })
        .collect()
}

/// The known classes and a key that only their state_dicts have.
const KNOWN_CLASSES: [(&str, &str); 2] = [("BNLeNet", "net.0.weight"), ("MLPWithBN", "fc1.weight")];

fn check_keys<M: PytorchStateDict>(
    path: &Path,
    entries: &[Entry],
    tensors: &BTreeMap<String, PackTensor>,
) -> Result<(), InteropError> {
    let wanted: BTreeSet<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
    let found: BTreeSet<&str> = tensors.keys().map(String::as_str).collect();
    if wanted == found {
        return Ok(());
    }
    let other_class = KNOWN_CLASSES
        .iter()
        .find(|(class, key)| *class != M::CLASS && found.contains(key) && !wanted.contains(key));
    if let Some((class, _)) = other_class {
        let keys: Vec<&str> = found.iter().take(4).copied().collect();
        return Err(InteropError::WrongModel {
            path: path.to_path_buf(),
            expected: M::CLASS,
            found: class,
            keys: format!("{}, ...", keys.join(", ")),
        });
    }
    Err(InteropError::KeyMismatch {
        path: path.to_path_buf(),
        class: M::CLASS,
        missing: wanted
            .difference(&found)
            .map(|key| key.to_string())
            .collect(),
        unexpected: found
            .difference(&wanted)
            .map(|key| key.to_string())
            .collect(),
    })
}

/// Checks one tensor against its entry and converts it to our layout, name and dtype.
fn import_tensor(
    path: &Path,
    entry: &Entry,
    tensor: PackTensor,
) -> Result<PackTensor, InteropError> {
    let found = tensor.shape.to_vec();
    if found != entry.shape {
        return Err(InteropError::ShapeMismatch {
            path: path.to_path_buf(),
            key: entry.key.clone(),
            expected: entry.shape.clone(),
            found,
        });
    }
    let (want_float, found_float) = (entry.dtype.is_float(), tensor.dtype.is_float());
    if want_float != found_float {
        return Err(InteropError::DTypeMismatch {
            path: path.to_path_buf(),
            key: entry.key.clone(),
            expected: if want_float {
                "a float tensor"
            } else {
                "an integer tensor"
            },
            found: tensor.dtype,
        });
    }
    let data = bridge::into_data(tensor).map_err(|err| InteropError::Read {
        path: path.to_path_buf(),
        message: format!("{}: {err}", entry.key),
    })?;
    let data = convert(data, entry.conversion, vec![1]).convert_dtype(entry.dtype);
    Ok(bridge::from_data(data, entry.path.clone(), None))
}

/// Applies `conversion` (its own inverse); `scalar_shape` is the shape a `Scalar` counter
/// takes on the other side (`[1]` here, `[]` in PyTorch).
fn convert(data: TensorData, conversion: Conversion, scalar_shape: Vec<usize>) -> TensorData {
    match conversion {
        Conversion::Same => data,
        Conversion::Transpose => transpose(data),
        Conversion::Scalar => {
            let value: Vec<i64> = data
                .convert::<i64>()
                .try_to_vec()
                .expect("converted to i64");
            TensorData::new(value, scalar_shape)
        }
    }
}

/// A row-major 2-D transpose, in the data's own dtype.
fn transpose(data: TensorData) -> TensorData {
    let [rows, cols] = [data.shape()[0], data.shape()[1]];
    let dtype = data.dtype();
    let values: Vec<f64> = data
        .convert::<f64>()
        .try_to_vec()
        .expect("converted to f64");
    let transposed: Vec<f64> = (0..cols)
        .flat_map(|c| (0..rows).map(move |r| (r, c)))
        .map(|(r, c)| values[r * cols + c])
        .collect();
    TensorData::new(transposed, [cols, rows]).convert_dtype(dtype)
}

/// Renames and reshapes each collected tensor into its PyTorch form while the store writes.
#[derive(Clone)]
struct ToPytorch {
    by_path: HashMap<String, Entry>,
}

impl ModuleAdapter for ToPytorch {
    fn adapt(&self, tensor: PackTensor, _ctx: ModuleContext<'_>) -> PackTensor {
        let entry = self
            .by_path
            .get(&tensor.name)
            .unwrap_or_else(|| panic!("no state_dict entry for {}", tensor.name))
            .clone();
        let dtype = match entry.conversion {
            Conversion::Scalar => DType::I64,
            _ => tensor.dtype,
        };
        bridge::map_data(
            tensor,
            entry.key.clone(),
            dtype,
            entry.shape.clone().into(),
            move |data| convert(data, entry.conversion, Vec::new()),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}
