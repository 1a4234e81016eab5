//! The layers on wgpu (lavapipe where there is no GPU): a training step agrees with flex,
//! `valid()`/`train()` switch modes, and running statistics survive a record round trip.
#![cfg(feature = "wgpu")]

use bn_layers::BatchNormConfig;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use burn_batchnorm::BackendKind;

fn input(device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..2 * 3 * 4 * 4)
        .map(|i| ((i * 37) % 23) as f32 * 0.3 - 2.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [2, 3, 4, 4]), device)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

#[test]
fn batch_norm_on_wgpu_matches_flex_and_round_trips() {
    let gpu = BackendKind::Wgpu.device().unwrap().autodiff();
    let cpu = Device::flex().autodiff();
    let on_gpu = BatchNormConfig::new_2d(3).init(&gpu);
    let on_cpu = BatchNormConfig::new_2d(3).init(&cpu);
    let y_gpu = host(on_gpu.forward(input(&gpu)));
    let y_cpu = host(on_cpu.forward(input(&cpu)));
    for (a, b) in y_gpu.iter().zip(&y_cpu) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let (mean_gpu, var_gpu) = on_gpu.running_stats().unwrap();
    let (mean_cpu, var_cpu) = on_cpu.running_stats().unwrap();
    for (a, b) in host(mean_gpu).iter().zip(host(mean_cpu)) {
        assert!((a - b).abs() < 1e-5);
    }
    let var_gpu = host(var_gpu);
    for (a, b) in var_gpu.iter().zip(host(var_cpu)) {
        assert!((a - b).abs() < 1e-4);
    }

    let eval = on_gpu.valid();
    assert!(!eval.is_training());
    eval.forward(input(&gpu.clone().without_autodiff()));
    assert_eq!(eval.num_batches_tracked(), Some(1));
    let back = eval.train();
    assert!(back.is_training());

    let file = std::env::temp_dir().join(format!("bn-wgpu-{}.bpk", std::process::id()));
    back.clone().save_file(&file).unwrap();
    let loaded = BatchNormConfig::new_2d(3).init(&gpu).load_file(&file);
    assert_eq!(loaded.num_batches_tracked(), Some(1));
    assert_eq!(host(loaded.running_stats().unwrap().1), var_gpu);
    std::fs::remove_file(file).ok();
}
