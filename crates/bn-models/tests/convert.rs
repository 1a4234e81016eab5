//! `convert_batchnorm` on a model pair the crate has never seen: a user's network built with
//! burn-nn's `BatchNorm`, trained a few steps, then carried into the same network built with
//! `bn_layers::BatchNorm`. Expected values by hand from burn-nn's own statistics.

use bn_models::convert::convert_batchnorm;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
struct TheirBlock {
    fc: Linear,
    bn: burn::nn::BatchNorm,
}

#[derive(Module, Debug)]
struct TheirNet {
    block: TheirBlock,
    head: burn::nn::BatchNorm,
}

#[derive(Module, Debug)]
struct OurBlock {
    fc: Linear,
    bn: bn_layers::BatchNorm,
}

#[derive(Module, Debug)]
struct OurNet {
    block: OurBlock,
    head: bn_layers::BatchNorm,
}

fn values(t: Tensor<1>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

#[test]
fn a_users_network_keeps_its_weights_and_gets_unbiased_running_variances() {
    let device = Device::flex().autodiff();
    let theirs = TheirNet {
        block: TheirBlock {
            fc: LinearConfig::new(3, 4).init(&device),
            bn: burn::nn::BatchNormConfig::new(4).init(&device),
        },
        head: burn::nn::BatchNormConfig::new(4).init(&device),
    };
    // Three training steps on batches of 5 samples.
    for step in 0..3 {
        let x = Tensor::<2>::random([5, 3], burn::tensor::Distribution::Default, &device)
            .add_scalar(step as f64);
        theirs
            .head
            .forward(theirs.block.bn.forward(theirs.block.fc.forward(x)));
    }
    let ours = OurNet {
        block: OurBlock {
            fc: LinearConfig::new(3, 4).init(&device),
            bn: bn_layers::BatchNormConfig::new_1d(4).init(&device),
        },
        head: bn_layers::BatchNormConfig::new_1d(4).init(&device),
    };
    // The head's batches are known (5 values per channel); the block's are not.
    let (ours, report) =
        convert_batchnorm(&theirs, ours, |layer| (layer == "head").then_some(5)).unwrap();
    assert_eq!(report.layers, ["block.bn", "head"]);
    assert_eq!(report.variance_left_biased, ["block.bn"]);

    assert_eq!(
        values(ours.block.fc.weight.val().flatten(0, 1)),
        values(theirs.block.fc.weight.val().flatten(0, 1))
    );
    assert_eq!(
        values(ours.head.gamma.as_ref().unwrap().val()),
        values(theirs.head.gamma.val())
    );
    let (mean, var) = ours.head.running_stats().unwrap();
    assert_eq!(values(mean), values(theirs.head.running_mean.value_sync()));
    for (got, biased) in values(var)
        .iter()
        .zip(values(theirs.head.running_var.value_sync()))
    {
        assert!(
            (got - biased * 5.0 / 4.0).abs() < 1e-6,
            "{got} vs {biased} · 5/4"
        );
    }
    let (_, var) = ours.block.bn.running_stats().unwrap();
    assert_eq!(
        values(var),
        values(theirs.block.bn.running_var.value_sync())
    );
    assert_eq!(ours.head.num_batches_tracked(), Some(0));
}

#[test]
fn another_architecture_is_refused_with_the_paths_that_do_not_fit() {
    let device = Device::flex();
    let theirs = burn::nn::BatchNormConfig::new(4).init(&device);
    let ours = bn_layers::BatchNormConfig::new_1d(3).init(&device);
    let err = convert_batchnorm(&theirs, ours, |_| None).unwrap_err();
    assert!(!err.errors.is_empty(), "{err}");
    assert!(err.to_string().contains("do not fit"), "{err}");
}
