//! Reading a state_dict's tensors: the file formats, the refusal of compressed `.pt`
//! entries, and the prefixes training scripts save a state_dict under.

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleStore, PytorchStore, SafetensorsStore};

use super::{Entry, InteropError};

/// The tensors of a `.pt`/`.pth`/`.bin` (torch.save) or `.safetensors` file, by key.
pub(super) fn read_tensors(path: &Path) -> Result<BTreeMap<String, PackTensor>, InteropError> {
    let read_error = |message: String| InteropError::Read {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(read_error("no such file".into()));
    }
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("pt" | "pth" | "bin") => {
            refuse_compressed_entries(path).map_err(read_error)?;
            PytorchStore::from_file(path)
                .map_indices_contiguous(false)
                .get_all_tensors()
                .cloned()
                .map_err(|err| read_error(err.to_string()))
        }
        Some("safetensors") => SafetensorsStore::from_file(path)
            .get_all_tensors()
            .cloned()
            .map_err(|err| read_error(err.to_string())),
        _ => Err(InteropError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// torch.save stores the entries of its ZIP archives uncompressed. A compressed entry can
/// declare far more bytes than the file holds (`tests/data/hostile/deflated_storage.pt`: 256
/// MiB in 434 KB) and the reader would inflate it whole, so a `.pt` archive with one is
/// refused before anything is read. Files that are not ZIP archives (the legacy and plain
/// pickle layouts, or a truncated archive, which the reader then refuses) pass.
fn refuse_compressed_entries(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|err| err.to_string())?;
    let Ok(mut archive) = zip::ZipArchive::new(file) else {
        return Ok(());
    };
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|err| err.to_string())?;
        if entry.compression() != zip::CompressionMethod::Stored {
            return Err(format!(
                "entry {:?} is compressed ({:?}): torch.save stores its entries uncompressed, \
                 and a compressed entry can declare far more data than the file holds",
                entry.name().unwrap_or_default(),
                entry.compression()
            ));
        }
    }
    Ok(())
}

/// Prefixes under which training scripts commonly save a state_dict.
const WRAPPERS: [&str; 5] = [
    "module.",
    "model_state_dict.",
    "state_dict.",
    "model_state_dict.module.",
    "state_dict.module.",
];

/// The tensors themselves when any key is the model's, else the first wrapper prefix under
/// which some are, with the prefix removed and everything outside it dropped.
pub(super) fn unwrap_state_dict(
    tensors: BTreeMap<String, PackTensor>,
    entries: &[Entry],
) -> BTreeMap<String, PackTensor> {
    let wanted = |key: &str| entries.iter().any(|entry| entry.key == key);
    if tensors.keys().any(|key| wanted(key)) {
        return tensors;
    }
    let Some(prefix) = WRAPPERS.iter().find(|prefix| {
        tensors
            .keys()
            .any(|key| key.strip_prefix(**prefix).is_some_and(wanted))
    }) else {
        return tensors;
    };
    tensors
        .into_iter()
        .filter_map(|(key, tensor)| Some((key.strip_prefix(prefix)?.to_string(), tensor)))
        .collect()
}
