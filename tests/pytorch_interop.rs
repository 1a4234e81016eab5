//! Importing the reference PyTorch checkpoints, exporting them back, and folding BatchNorm.
//!
//! The checkpoints and `expected.json` in `tests/data/interop/` were written by
//! `scripts/gen_interop.py` (PyTorch, the reference `BNLeNet` and `MLPWithBN` classes,
//! 2 epochs of SGD on Fashion-MNIST): eval-mode logits of the first 16 test images and the
//! eval-mode accuracy on all 10,000. CI checks the copies equal the shared originals.

use std::path::{Path, PathBuf};

use bn_models::pytorch::{load_state_dict, save_safetensors, state_dict_shapes};
use bn_models::{
    BnLeNet, BnLeNetConfig, Classify, FoldBatchNorm, InteropError, MlpWithBn, MlpWithBnConfig,
    PytorchStateDict,
};
use bn_train::data::{FashionMnist, Split, locate};
use bn_train::evaluate;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde_json::Value;

fn interop(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/interop")
        .join(name)
}

fn expected(model: &str) -> Value {
    let text = std::fs::read_to_string(interop("expected.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json["models"][model].clone()
}

/// A fresh BN-LeNet on flex with the weights of `file` (from `tests/data/interop/`).
fn bn_lenet(file: &str) -> Result<BnLeNet, InteropError> {
    load_state_dict(BnLeNetConfig::new().init(&Device::flex()), &interop(file))
}

/// A fresh MLPWithBN on flex with the weights of `file` (from `tests/data/interop/`).
fn mlp(file: &str) -> Result<MlpWithBn, InteropError> {
    load_state_dict(MlpWithBnConfig::new().init(&Device::flex()), &interop(file))
}

fn test_split() -> FashionMnist {
    let dir = locate(None).expect("Fashion-MNIST (apt-get install dataset-fashion-mnist)");
    FashionMnist::load(&dir, Split::Test).unwrap()
}

/// Checks the logits to 1e-4 and the accuracy exactly (as a count of correct images).
fn assert_matches_pytorch<M: Classify<Input = Tensor<4>>>(model: &M, name: &str, device: &Device) {
    let expected = expected(name);
    let eval = evaluate(model, &test_split(), 500, 16, device);
    let want_correct = (expected["eval_test_accuracy"].as_f64().unwrap() * 10_000.0).round();
    assert_eq!(eval.correct as f64, want_correct, "{name}: accuracy");
    let want = expected["eval_logits_first16"].as_array().unwrap();
    assert_eq!(
        (eval.first_logits.len(), want.len()),
        (16, 16),
        "{name}: 16 rows"
    );
    for (row, (got, want)) in eval.first_logits.iter().zip(want).enumerate() {
        for (class, (g, w)) in got.iter().zip(want.as_array().unwrap()).enumerate() {
            let w = w.as_f64().unwrap();
            assert!(
                (*g as f64 - w).abs() < 1e-4,
                "{name}: logit [{row}][{class}] = {g}, PyTorch {w}"
            );
        }
    }
}

#[test]
fn bn_lenet_pt_and_safetensors_match_pytorch() {
    for file in ["bn_lenet.pt", "bn_lenet.safetensors"] {
        assert_matches_pytorch(&bn_lenet(file).unwrap(), "bn_lenet", &Device::flex());
    }
}

#[test]
fn mlp_with_bn_pt_and_safetensors_match_pytorch() {
    for file in ["mlp_with_bn.pt", "mlp_with_bn.safetensors"] {
        assert_matches_pytorch(&mlp(file).unwrap(), "mlp_with_bn", &Device::flex());
    }
}

#[test]
fn a_state_dict_inside_a_training_checkpoint_is_found() {
    // scripts/gen_wrapped_checkpoint.py: the same weights under "model_state_dict.module.",
    // next to an optimizer state with momentum buffers.
    let model = bn_lenet("bn_lenet_training_checkpoint.pt").unwrap();
    assert_matches_pytorch(&model, "bn_lenet", &Device::flex());
}

#[test]
fn num_batches_tracked_comes_along() {
    // 2 epochs of 469 batches (60,000 / 128, the last one of 96 images).
    let model = bn_lenet("bn_lenet.safetensors").unwrap();
    let bn_models::Norm::Batch(bn) = model.norm1.as_ref().unwrap() else {
        panic!("BnLeNetConfig::new() uses our BatchNorm")
    };
    assert_eq!(bn.num_batches_tracked(), Some(938));
}

#[test]
fn state_dict_keys_and_shapes_are_pytorchs() {
    let device = Device::flex();
    for (name, keys) in [
        (
            "bn_lenet",
            state_dict_shapes(&BnLeNetConfig::new().init(&device)),
        ),
        (
            "mlp_with_bn",
            state_dict_shapes(&MlpWithBnConfig::new().init(&device)),
        ),
    ] {
        let expected = expected(name)["state_dict_keys"].clone();
        let expected = expected.as_object().unwrap();
        assert_eq!(keys.len(), expected.len(), "{name}");
        for (key, shape) in keys {
            let want: Vec<usize> = serde_json::from_value(expected[&key].clone()).unwrap();
            assert_eq!(shape, want, "{name}: {key}");
        }
    }
}

/// Every float and int tensor of a module, in visiting order, as f64.
fn all_values<M: Module>(module: &M) -> Vec<Vec<f64>> {
    struct Values(Vec<Vec<f64>>);
    fn as_f64(data: TensorData) -> Vec<f64> {
        data.convert::<f64>().try_to_vec().unwrap()
    }
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(as_f64(param.val().into_data()));
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            self.0.push(as_f64(param.val().into_data()));
        }
    }
    let mut values = Values(Vec::new());
    module.visit(&mut values);
    values.0
}

fn round_trip<M: PytorchStateDict>(fresh: impl Fn() -> M, file: &str) {
    let imported = load_state_dict(fresh(), &interop(file)).unwrap();
    let dir = tempdir();
    let exported = dir.join(format!("{file}.safetensors"));
    save_safetensors(&imported, &exported).unwrap();
    let reimported = load_state_dict(fresh(), &exported).unwrap();
    assert_eq!(all_values(&imported), all_values(&reimported), "{file}");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_export_right_after_training_steps_keeps_the_last_steps_statistics() {
    // Burn's RunningState keeps the last update on this thread pending until a sync; the
    // export must not miss it.
    let device = Device::flex().autodiff();
    let model = BnLeNetConfig::new().init(&device);
    let images = Tensor::<4>::random([4, 1, 28, 28], Distribution::Default, &device);
    model.classify(images.clone());
    model.classify(images.mul_scalar(2.0));
    let path = tempdir().join("after_training_steps.safetensors");
    save_safetensors(&model, &path).unwrap();
    let loaded = load_state_dict(BnLeNetConfig::new().init(&Device::flex()), &path).unwrap();
    assert_eq!(all_values(&loaded.valid()), all_values(&model.valid()));
}

#[test]
fn export_then_import_gives_identical_tensors() {
    let device = Device::flex();
    round_trip(|| BnLeNetConfig::new().init(&device), "bn_lenet.pt");
    round_trip(
        || MlpWithBnConfig::new().init(&device),
        "mlp_with_bn.safetensors",
    );
}

#[test]
fn exported_header_has_pytorchs_keys_dtypes_and_shapes() {
    // The original safetensors file was written by PyTorch: ours must declare every one of its
    // tensors under the same key with the same dtype (I64 for num_batches_tracked) and shape
    // (0-d for num_batches_tracked, [out, in] for Linear weights). The values are checked by
    // the round trip above and by scripts/check_pytorch_export.py in PyTorch itself.
    let model = mlp("mlp_with_bn.pt").unwrap();
    let exported = tempdir().join("mlp_export_check.safetensors");
    save_safetensors(&model, &exported).unwrap();
    let ours = std::fs::read(&exported).unwrap();
    let theirs = std::fs::read(interop("mlp_with_bn.safetensors")).unwrap();
    let (ours, theirs) = (safetensors_header(&ours), safetensors_header(&theirs));
    for (key, entry) in theirs.as_object().unwrap() {
        if key == "__metadata__" {
            continue;
        }
        assert_eq!(ours[key]["shape"], entry["shape"], "{key}");
        assert_eq!(ours[key]["dtype"], entry["dtype"], "{key}");
    }
}

/// The JSON header of a safetensors file (8-byte little-endian length, then the JSON).
fn safetensors_header(bytes: &[u8]) -> Value {
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + len]).unwrap()
}

#[test]
fn wrong_model_is_named() {
    let err = bn_lenet("mlp_with_bn.pt").unwrap_err();
    assert!(
        matches!(
            err,
            InteropError::WrongModel {
                found: "MLPWithBN",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not a BNLeNet"), "{err}");
}

#[test]
fn missing_and_unexpected_keys_are_listed() {
    let device = Device::flex();
    let no_bias = MlpWithBnConfig::new().with_hidden_bias(false);
    let err = load_state_dict(no_bias.init(&device), &interop("mlp_with_bn.pt")).unwrap_err();
    let InteropError::KeyMismatch {
        missing,
        unexpected,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(missing.is_empty(), "{err}");
    assert_eq!(unexpected, &["fc1.bias", "fc2.bias"], "{err}");

    // The other way round: a checkpoint without hidden biases into the default MLP.
    let exported = tempdir().join("mlp_no_bias.safetensors");
    save_safetensors(&no_bias.init(&device), &exported).unwrap();
    let err = load_state_dict(MlpWithBnConfig::new().init(&device), &exported).unwrap_err();
    let InteropError::KeyMismatch {
        missing,
        unexpected,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(missing, &["fc1.bias", "fc2.bias"], "{err}");
    assert!(unexpected.is_empty(), "{err}");
}

#[test]
fn wrong_shape_names_key_and_both_shapes() {
    // Rewrite the header of PyTorch's own file: net.15.bias [10] -> [2, 5] (same bytes).
    let bytes = std::fs::read(interop("bn_lenet.safetensors")).unwrap();
    let mut header = safetensors_header(&bytes);
    header["net.15.bias"]["shape"] = serde_json::json!([2, 5]);
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut text = serde_json::to_string(&header).unwrap();
    while text.len() < len {
        text.push(' ');
    }
    assert_eq!(text.len(), len, "the edited header must keep its length");
    let mut edited = bytes[..8].to_vec();
    edited.extend_from_slice(text.as_bytes());
    edited.extend_from_slice(&bytes[8 + len..]);
    let path = tempdir().join("bn_lenet_bad_shape.safetensors");
    std::fs::write(&path, edited).unwrap();

    let device = Device::flex();
    let err = load_state_dict(BnLeNetConfig::new().init(&device), &path).unwrap_err();
    assert!(
        err.to_string().contains(
            "size mismatch for net.15.bias: the checkpoint has shape [2, 5], the model expects [10]"
        ),
        "{err}"
    );
}

#[test]
fn unreadable_files_are_refused_with_their_path() {
    let device = Device::flex();
    let model = || BnLeNetConfig::new().init(&device);
    let missing = load_state_dict(model(), Path::new("no/such/file.pt")).unwrap_err();
    assert!(missing.to_string().contains("no/such/file.pt"), "{missing}");
    let garbage = tempdir().join("garbage.pt");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    let err = load_state_dict(model(), &garbage).unwrap_err();
    assert!(matches!(err, InteropError::Read { .. }), "{err}");
    let text = tempdir().join("weights.txt");
    std::fs::write(&text, b"1 2 3").unwrap();
    let err = load_state_dict(model(), &text).unwrap_err();
    assert!(matches!(err, InteropError::UnknownFormat { .. }), "{err}");
}

#[test]
fn folded_networks_match_to_1e5_and_keep_pytorchs_accuracy() {
    let device = Device::flex();
    let lenet = bn_lenet("bn_lenet.pt").unwrap();
    let mlp = mlp("mlp_with_bn.pt").unwrap();
    let test = test_split().take(1_000);
    let images = bn_train::data::ImageBatcher;
    let items: Vec<_> = (0..256)
        .map(|i| burn::data::dataset::Dataset::get(&test, i).unwrap())
        .collect();
    let batch = burn::data::dataloader::batcher::Batcher::batch(&images, items, &device);
    let check = |plain: Tensor<2>, folded: Tensor<2>, name: &str| {
        let diff = (plain - folded).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "{name}: folded logits differ by {diff}");
    };
    check(
        lenet.classify(batch.inputs.clone()),
        lenet
            .fold_batchnorm()
            .unwrap()
            .classify(batch.inputs.clone()),
        "BNLeNet",
    );
    check(
        mlp.classify(batch.inputs.clone()),
        mlp.fold_batchnorm().unwrap().classify(batch.inputs),
        "MLPWithBN",
    );
    assert!(lenet.fold_batchnorm().unwrap().norm1.is_none());
}

#[test]
fn folding_a_training_model_is_an_error() {
    let device = Device::flex().autodiff();
    let model = BnLeNetConfig::new().init(&device);
    let err = model.fold_batchnorm().unwrap_err();
    assert_eq!(err.kind(), "NotFoldable");
    assert!(model.valid().fold_batchnorm().is_ok());
}
