//! Properties that hold for any input: normalized statistics, the identities between the
//! layers (GroupNorm with 1 group is LayerNorm over `[C, ...]`; with `C` groups it is
//! InstanceNorm), and agreement of the fused and composed compute paths, gradients included.

use bn_layers::{
    BatchNormConfig, ComputePath, GroupNormConfig, InstanceNormConfig, LayerNormConfig,
};
use burn::tensor::{Device, Tensor, TensorData};
use proptest::prelude::*;

fn device() -> Device {
    Device::flex().autodiff()
}

/// A `[n, c, s]` input with values in `[-10, 10)` plus a per-channel offset.
fn input() -> impl Strategy<Value = (usize, usize, usize, Vec<f32>)> {
    (2usize..6, 1usize..5, 1usize..7).prop_flat_map(|(n, c, s)| {
        proptest::collection::vec(-10.0f32..10.0, n * c * s).prop_map(move |mut v| {
            for (i, x) in v.iter_mut().enumerate() {
                *x += ((i / s) % c) as f32 * 3.0;
            }
            (n, c, s, v)
        })
    })
}

fn tensor(shape: [usize; 3], values: &[f32]) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &device())
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn assert_all_close(a: &[f32], b: &[f32], tol: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        prop_assert!(
            (x - y).abs() <= tol * y.abs().max(1.0),
            "index {}: {} vs {}",
            i,
            x,
            y
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn batch_norm_training_output_has_zero_mean_unit_variance((n, c, s, v) in input()) {
        let bn = BatchNormConfig::new(c).init(&device());
        let y = bn.forward(tensor([n, c, s], &v));
        let per_channel = y.swap_dims(0, 1).reshape([c, n * s]);
        let (var, mean) = per_channel.var_mean_bias(1);
        let mean = host(mean);
        let var = host(var);
        for ch in 0..c {
            prop_assert!(mean[ch].abs() < 1e-4, "channel {} mean {}", ch, mean[ch]);
            // A constant channel normalizes to 0 (variance 0); any other to variance ~1.
            prop_assert!(var[ch] < 1e-6 || (var[ch] - 1.0).abs() < 1e-2, "channel {} var {}", ch, var[ch]);
        }
    }

    #[test]
    fn group_norm_with_one_group_is_layer_norm_over_channels((n, c, s, v) in input()) {
        let x = tensor([n, c, s], &v);
        let gn = GroupNormConfig::new(1, c).with_affine(false).init(&device());
        let ln = LayerNormConfig::new(vec![c, s]).with_elementwise_affine(false).init(&device());
        assert_all_close(&host(gn.forward(x.clone())), &host(ln.forward(x)), 1e-4)?;
    }

    #[test]
    fn group_norm_with_one_channel_per_group_is_instance_norm((n, c, s, v) in input()) {
        prop_assume!(s > 1);
        let x = tensor([n, c, s], &v);
        let gn = GroupNormConfig::new(c, c).with_affine(false).init(&device());
        let inorm = InstanceNormConfig::new(c).init(&device());
        assert_all_close(&host(gn.forward(x.clone())), &host(inorm.forward(x)), 1e-4)?;
    }

    #[test]
    fn composed_and_fused_batch_norm_agree_with_gradients((n, c, s, v) in input()) {
        let run = |path| {
            let bn = BatchNormConfig::new(c).with_path(path).init(&device());
            let x = tensor([n, c, s], &v).require_grad();
            let y = bn.forward(x.clone());
            let weights = Tensor::<3>::from_data(
                TensorData::new((0..n * c * s).map(|i| (i % 7) as f32 - 3.0).collect(), [n, c, s]),
                &device(),
            );
            let grads = (y.clone() * weights).sum().backward();
            let gx = host(x.grad(&grads).unwrap());
            let gg = host(bn.gamma.as_ref().unwrap().grad(&grads).unwrap());
            let (mean, var) = bn.running_stats().unwrap();
            (host(y), gx, gg, host(mean), host(var))
        };
        let fused = run(ComputePath::Fused);
        let composed = run(ComputePath::Composed);
        assert_all_close(&fused.0, &composed.0, 1e-4)?;
        assert_all_close(&fused.1, &composed.1, 1e-3)?;
        assert_all_close(&fused.2, &composed.2, 1e-3)?;
        assert_all_close(&fused.3, &composed.3, 1e-5)?;
        assert_all_close(&fused.4, &composed.4, 1e-4)?;
    }

    #[test]
    fn composed_and_fused_layer_group_instance_norm_agree((n, c, s, v) in input()) {
        prop_assume!(s > 1);
        let x = tensor([n, c, s], &v);
        for (fused, composed) in [
            (
                LayerNormConfig::new(vec![s]).init(&device()).forward(x.clone()),
                LayerNormConfig::new(vec![s]).with_path(ComputePath::Composed).init(&device()).forward(x.clone()),
            ),
            (
                GroupNormConfig::new(1, c).init(&device()).forward(x.clone()),
                GroupNormConfig::new(1, c).with_path(ComputePath::Composed).init(&device()).forward(x.clone()),
            ),
            (
                InstanceNormConfig::new(c).init(&device()).forward(x.clone()),
                InstanceNormConfig::new(c).with_path(ComputePath::Composed).init(&device()).forward(x.clone()),
            ),
        ] {
            assert_all_close(&host(fused), &host(composed), 1e-4)?;
        }
    }
}
