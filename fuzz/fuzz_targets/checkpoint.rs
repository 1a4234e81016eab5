//! Fuzzes the readers behind `bn_models::pytorch::load_state_dict`: burn-store reads `.pt`
//! files with `pytorch-reader` and `.safetensors` files with `safetensors`, and this target
//! runs both, at the versions burn-store 0.22.1 uses, on any byte string. Each must refuse
//! the bytes or hand back tensors whose data is exactly what their dtype and shape say,
//! never panic, and never allocate far beyond the input (CI runs it with `-rss_limit_mb`).
//!
//! The key checks and conversions of `load_state_dict` itself run on Burn tensors, so they
//! are exercised by `tests/hostile_checkpoints.rs` (truncations, bit flips, huge shapes,
//! code in a pickle) in the project's own build rather than here, where they would rebuild
//! Burn with coverage instrumentation.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pytorch_reader::PytorchReader;
use safetensors::SafeTensors;

/// The file the `.pt` reader opens (it reads ZIP and legacy containers from a path).
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("bn-fuzz-checkpoint-{}.pt", std::process::id()))
    })
}

fuzz_target!(|bytes: &[u8]| {
    std::fs::write(scratch(), bytes).expect("the scratch file is writable");
    if let Ok(reader) = PytorchReader::new(scratch()) {
        for tensor in reader.tensors().values() {
            if let Ok(data) = tensor.read() {
                assert_eq!(data.len(), tensor.byte_len(), "{}", tensor.name);
            }
        }
    }
    if let Ok(file) = SafeTensors::deserialize(bytes) {
        for (name, view) in file.tensors() {
            let bits: usize = view.shape().iter().product::<usize>() * view.dtype().bitsize();
            assert_eq!(view.data().len(), bits.div_ceil(8), "{name}");
        }
    }
});
