//! Hostile PyTorch checkpoints through `load_state_dict`: truncated at every 64th byte,
//! bit-flipped, declaring a 4 GiB tensor over 40 bytes, or pickling a call to `os.system`.
//! None may panic, allocate what the file declares rather than what it holds, or run code;
//! every refusal is an [`InteropError`] whose message names the file.
//!
//! Clean inputs: `tests/data/interop/bn_lenet.{pt,safetensors}` (`scripts/gen_interop.py`).
//! Hostile ones: `tests/data/hostile/` (`scripts/gen_hostile_checkpoints.py`, which also
//! checks that PyTorch's own `torch.load` refuses the huge shape).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use bn_models::pytorch::load_state_dict;
use bn_models::{BnLeNet, BnLeNetConfig, InteropError};
use burn::tensor::Device;
use proptest::prelude::*;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// A scratch directory of this test binary's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-hostile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `path` into a fresh BN-LeNet; a panic is turned into a failure naming the file.
fn load(path: &Path) -> Result<BnLeNet, InteropError> {
    let model = BnLeNetConfig::new().init(&Device::flex());
    catch_unwind(AssertUnwindSafe(|| load_state_dict(model, path)))
        .unwrap_or_else(|_| panic!("loading {} panicked", path.display()))
}

/// `load(path)` must fail, with the file in its message.
fn assert_refused(path: &Path) -> InteropError {
    let err = match load(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(err) => err,
    };
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the error does not name the file: {message}"
    );
    err
}

#[test]
fn every_truncation_is_refused_with_the_file_named() {
    let dir = scratch("truncated");
    for name in ["bn_lenet.pt", "bn_lenet.safetensors"] {
        let bytes = std::fs::read(data("interop").join(name)).unwrap();
        let cut_file = dir.join(name);
        for cut in (0..bytes.len()).step_by(64) {
            std::fs::write(&cut_file, &bytes[..cut]).unwrap();
            assert_refused(&cut_file);
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_huge_declared_shape_is_refused() {
    for name in ["huge_shape.pt", "huge_shape.safetensors"] {
        let err = assert_refused(&data("hostile").join(name));
        assert!(
            matches!(
                err,
                InteropError::Read { .. } | InteropError::ShapeMismatch { .. }
            ),
            "{name}: {err}"
        );
    }
}

/// Set by [`huge_shapes_allocate_nothing_of_their_size`] in the child it runs.
const CHILD: &str = "BN_HOSTILE_MEMORY_LIMITED_CHILD";

/// The child of [`huge_shapes_allocate_nothing_of_their_size`]: under a 2 GiB address-space
/// limit, an allocation of the declared 4 GiB would abort the process.
#[test]
#[ignore = "run by huge_shapes_allocate_nothing_of_their_size in a memory-limited child"]
fn load_huge_shapes_in_this_process() {
    assert!(
        std::env::var_os(CHILD).is_some(),
        "run through its parent test"
    );
    for name in ["huge_shape.pt", "huge_shape.safetensors"] {
        assert_refused(&data("hostile").join(name));
    }
}

#[test]
fn huge_shapes_allocate_nothing_of_their_size() {
    let exe = std::env::current_exe().unwrap();
    // `ulimit -v` in KiB: 2 GiB, half the declared tensor and far above the process's needs.
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 2097152 && exec "$0" "$@""#)
        .arg(&exe)
        .args([
            "load_huge_shapes_in_this_process",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the memory-limited child failed: {status}"
    );
}

#[test]
fn a_compressed_archive_is_refused_before_it_is_inflated() {
    // 434 KB on disk declaring a 256 MiB storage: torch.save never compresses its entries.
    let err = assert_refused(&data("hostile").join("deflated_storage.pt"));
    assert!(err.to_string().contains("compressed"), "{err}");
}

#[test]
fn a_pickle_that_would_run_code_builds_nothing_and_runs_nothing() {
    let marker = Path::new("/tmp/burn-batchnorm-pickle-ran");
    std::fs::remove_file(marker).ok();
    for name in ["code_execution.pt", "code_execution_plain.pt"] {
        // The reader builds tensors and nothing else: the value that would have called
        // os.system is dropped, so its key is simply missing.
        let err = assert_refused(&data("hostile").join(name));
        let InteropError::KeyMismatch { missing, .. } = &err else {
            panic!("{name}: {err}")
        };
        assert!(
            missing.iter().any(|key| key == "net.0.weight"),
            "{name}: {err}"
        );
    }
    assert!(!marker.exists(), "the pickle's os.system call ran");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A few flipped bits anywhere: the file loads (a flip in a weight's bytes is a valid
    /// checkpoint with another weight) or is refused naming the file; it never panics.
    #[test]
    fn flipped_bits_load_or_are_refused_naming_the_file(
        safetensors in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0..8u8), 1..6),
    ) {
        let name = if safetensors { "bn_lenet.safetensors" } else { "bn_lenet.pt" };
        let mut bytes = std::fs::read(data("interop").join(name)).unwrap();
        for (at, bit) in &flips {
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        let dir = scratch("flipped");
        let flipped = dir.join(name);
        std::fs::write(&flipped, &bytes).unwrap();
        let result = load(&flipped);
        std::fs::remove_dir_all(&dir).ok();
        if let Err(err) = result {
            let message = err.to_string();
            prop_assert!(message.contains(&flipped.display().to_string()), "{}", message);
        }
    }
}
