//! The error of PyTorch import and export: every way a file or a model can fail to convert,
//! each naming the file, key or shape at fault.

use std::path::PathBuf;

use burn::tensor::DType;
use thiserror::Error;

/// Why a state_dict could not be imported or exported.
#[derive(Debug, Error)]
pub enum InteropError {
    /// The file's extension says neither PyTorch nor safetensors.
    #[error(
        "{path}: unknown checkpoint format; expected a .pt/.pth (torch.save) or .safetensors file"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read as a checkpoint of its format.
    #[error("{path}: cannot read the checkpoint: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reader's explanation.
        message: String,
    },
    /// The file holds the state_dict of another known class.
    #[error("{path}: this is a {found} state_dict (keys {keys}), not a {expected} one")]
    WrongModel {
        /// The file.
        path: PathBuf,
        /// The class the model expects.
        expected: &'static str,
        /// The class the keys belong to.
        found: &'static str,
        /// A few of the file's keys.
        keys: String,
    },
    /// Keys the model needs are absent, or the file has keys the model does not know.
    #[error(
        "{path}: the state_dict does not fit {class}: missing keys {missing:?}, unexpected keys {unexpected:?}"
    )]
    KeyMismatch {
        /// The file.
        path: PathBuf,
        /// The class the model expects.
        class: &'static str,
        /// Keys the model needs that the file lacks.
        missing: Vec<String>,
        /// Keys in the file that the model has no place for.
        unexpected: Vec<String>,
    },
    /// A tensor has another shape than the model's parameter.
    #[error(
        "{path}: size mismatch for {key}: the checkpoint has shape {found:?}, the model expects {expected:?}"
    )]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The state_dict key.
        key: String,
        /// The PyTorch shape the model expects.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor holds integers where the model has floats, or the other way round.
    #[error("{path}: {key} has dtype {found:?}, the model expects {expected}")]
    DTypeMismatch {
        /// The file.
        path: PathBuf,
        /// The state_dict key.
        key: String,
        /// What the model expects, in words.
        expected: &'static str,
        /// The dtype in the file.
        found: DType,
    },
    /// Writing the safetensors file failed.
    #[error("{path}: cannot write the safetensors file: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The writer's explanation.
        message: String,
    },
}
