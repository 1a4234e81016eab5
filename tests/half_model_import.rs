//! The committed PyTorch BN-LeNet (`tests/data/interop/bn_lenet.safetensors`, written by
//! `scripts/gen_interop.py`) imported as a bfloat16 model, as `import_pytorch --dtype bf16`
//! does: the parameters become bf16, every BatchNorm's running statistics stay f32, and the
//! half model agrees with PyTorch's float32 one (`expected.json`; after recalibration,
//! `recalibrated.json` of `scripts/gen_recalibration.py`) to what 8 significant bits allow:
//! accuracy within half a point, logits within 0.15. The flex device's float type is global
//! to the process, so this file holds one test.

use std::path::{Path, PathBuf};

use bn_models::pytorch::{load_state_dict, running_statistics};
use bn_models::{BnLeNetConfig, FoldBatchNorm};
use bn_train::data::{FashionMnist, Split, locate};
use bn_train::{evaluate, recalibrate_on};
use burn::module::Module;
use burn::tensor::Device;
use burn_batchnorm::cli::{FloatArg, values_by_dtype};
use serde_json::Value;

fn interop(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/interop")
        .join(name)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(interop(name)).unwrap()).unwrap()
}

fn split(split: Split) -> FashionMnist {
    let dir = locate(None).expect("Fashion-MNIST (apt-get install dataset-fashion-mnist)");
    FashionMnist::load(&dir, split).unwrap()
}

#[track_caller]
fn assert_accuracy_near(got: f64, pytorch: &Value, what: &str) {
    let want = pytorch.as_f64().unwrap();
    assert!(
        (got - want).abs() <= 0.005,
        "{what}: {got:.4} in bf16, PyTorch's float32 {want:.4}"
    );
}

#[test]
fn a_bf16_bn_lenet_keeps_f32_statistics_and_pytorchs_accuracy() {
    let mut device = Device::flex();
    FloatArg::Bf16.configure(&mut device).unwrap();
    let model = load_state_dict(
        BnLeNetConfig::new().init(&device),
        &interop("bn_lenet.safetensors"),
    )
    .unwrap()
    .valid();

    // BN-LeNet's BatchNorms track 6 + 16 + 120 + 84 channels: a mean and a variance each.
    let dtypes = values_by_dtype(&model);
    assert_eq!(
        dtypes.get("F32"),
        Some(&(2 * (6 + 16 + 120 + 84))),
        "{dtypes:?}"
    );
    assert_eq!(dtypes.len(), 2, "everything else is bf16: {dtypes:?}");
    assert!(dtypes.contains_key("BF16"), "{dtypes:?}");

    let expected = &json("expected.json")["models"]["bn_lenet"];
    let test = split(Split::Test);
    let eval = evaluate(&model, &test, 500, 16, &device);
    assert_accuracy_near(eval.accuracy(), &expected["eval_test_accuracy"], "imported");
    let want = expected["eval_logits_first16"].as_array().unwrap();
    for (row, (got, want)) in eval.first_logits.iter().zip(want).enumerate() {
        for (class, (g, w)) in got.iter().zip(want.as_array().unwrap()).enumerate() {
            let w = w.as_f64().unwrap();
            assert!(
                (*g as f64 - w).abs() <= 0.15,
                "logit [{row}][{class}]: {g} in bf16, PyTorch's float32 {w}"
            );
        }
    }

    let folded = model.fold_batchnorm().unwrap();
    let folded_accuracy = evaluate(&folded, &test, 500, 0, &device).accuracy();
    assert_accuracy_near(folded_accuracy, &expected["eval_test_accuracy"], "folded");

    // `update_bn` over the first 1,000 training images, batches of 128: the statistics,
    // computed in f32 from bf16 activations, within 2% of PyTorch's.
    let recalibration = json("recalibrated.json");
    let pytorch = &recalibration["models"]["bn_lenet"];
    let model = recalibrate_on(model, &split(Split::Train), 1000, 128, &device);
    let after = evaluate(&model, &test, 500, 0, &device).accuracy();
    assert_accuracy_near(after, &pytorch["eval_test_accuracy_after"], "recalibrated");
    let mut compared = 0;
    for (key, got) in running_statistics(&model) {
        let (prefix, stat) = key.rsplit_once('.').unwrap();
        let want = &pytorch["batchnorms"][prefix][stat];
        let want: Vec<f64> = match want {
            Value::Array(values) => values.iter().map(|v| v.as_f64().unwrap()).collect(),
            number => vec![number.as_f64().expect(&key)],
        };
        assert_eq!(got.len(), want.len(), "{key}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 2e-2 * w.abs().max(1.0),
                "{key}[{i}]: {g} in bf16, {w} in PyTorch's float32"
            );
        }
        compared += 1;
    }
    assert_eq!(
        compared,
        3 * 4,
        "running mean, variance and count of 4 BatchNorms"
    );
}
