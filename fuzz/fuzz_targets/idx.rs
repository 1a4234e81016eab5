//! Fuzzes `bn_train::data::parse_idx`: any byte string, parsed as an IDX array of ranks 0 to 4,
//! must give a self-consistent array or an error, never a panic.
//!
//! The parser's file is compiled here on its own (it needs only `std`), so fuzzing does not
//! build Burn with coverage instrumentation.

#![no_main]

#[path = "../../crates/bn-train/src/data/idx_format.rs"]
#[allow(dead_code)]
mod idx_format;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for rank in 0..=4 {
        if let Ok(array) = idx_format::parse_idx(bytes, rank) {
            assert_eq!(array.dims.len(), usize::from(rank));
            let count = array
                .dims
                .iter()
                .try_fold(1_usize, |t, &d| t.checked_mul(d));
            assert_eq!(count, Some(array.data.len()));
        }
    }
});
