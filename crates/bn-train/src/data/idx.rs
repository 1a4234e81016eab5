//! Reading IDX files from disk, gunzipping `.gz` ones; the byte format is in `idx_format`.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::DataError;
use super::idx_format::{IdxArray, parse_idx};

/// The most a `.gz` file may decompress to (Fashion-MNIST's largest file is 47 MB): a damaged
/// or hostile stream that inflates without end is refused instead of filling memory.
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Reads an unsigned-byte IDX file of rank `rank`, gunzipping it when its name ends in `.gz`.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; [`DataError::Corrupt`] when the gzip stream
/// is damaged, the magic number is not an unsigned-byte array of rank `rank`, or the file is
/// shorter or longer than its dimensions say.
pub fn read_idx(path: &Path, rank: u8) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = if path.extension().is_some_and(|ext| ext == "gz") {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|err| corrupt(path, format!("not a valid gzip stream: {err}")))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(corrupt(
                path,
                format!("decompresses to more than {MAX_DECOMPRESSED} bytes"),
            ));
        }
        out
    } else {
        raw
    };
    parse_idx(&bytes, rank).map_err(|reason| corrupt(path, reason))
}

fn corrupt(path: &Path, reason: String) -> DataError {
    DataError::Corrupt {
        path: PathBuf::from(path),
        reason,
    }
}
