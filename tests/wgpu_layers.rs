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

/// Three replicas with SyncBatchNorm on wgpu, two given one of the two images each and the
/// third an empty slice (it joins every reduction with zeros): outputs and input gradients
/// equal BatchNorm on both images (the reduction op runs on Cube too).
#[test]
fn sync_batch_norm_on_wgpu_matches_batch_norm_on_the_whole_batch() {
    use bn_layers::{ReplicaGroup, SyncBatchNorm};

    let gpu = BackendKind::Wgpu.device().unwrap().autodiff();
    let whole = input(&gpu).require_grad();
    let reference = BatchNormConfig::new_2d(3).init(&gpu);
    let weights = input(&gpu).sin();
    let y = reference.forward(whole.clone());
    let grads = (y.clone() * weights.clone()).sum().backward();
    let want_y = host(y);
    let want_grad = host(whole.grad(&grads).unwrap());

    let group = ReplicaGroup::new(3);
    let per_replica: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = group
            .members()
            .into_iter()
            .map(|replica| {
                let gpu = gpu.clone();
                let weights = host(weights.clone());
                scope.spawn(move || {
                    let rank = replica.rank();
                    let layer = SyncBatchNorm::new(BatchNormConfig::new_2d(3).init(&gpu), replica);
                    // Image `rank`: none for the third replica.
                    let slice =
                        |values: &[f32]| values.chunks(48).nth(rank).unwrap_or(&[]).to_vec();
                    let mine = slice(&host(input(&gpu)));
                    let n = mine.len() / 48;
                    let x = Tensor::<4>::from_data(TensorData::new(mine, [n, 3, 4, 4]), &gpu)
                        .require_grad();
                    let w = Tensor::<4>::from_data(
                        TensorData::new(slice(&weights), [n, 3, 4, 4]),
                        &gpu,
                    );
                    let y = layer.forward(x.clone());
                    let grads = (y.clone() * w).sum().backward();
                    (host(y), host(x.grad(&grads).unwrap()))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let got_y: Vec<f32> = per_replica.iter().flat_map(|(y, _)| y.clone()).collect();
    let got_grad: Vec<f32> = per_replica.iter().flat_map(|(_, g)| g.clone()).collect();
    for (a, b) in got_y.iter().zip(&want_y) {
        assert!((a - b).abs() < 1e-4, "output {a} vs {b}");
    }
    for (a, b) in got_grad.iter().zip(&want_grad) {
        assert!((a - b).abs() < 1e-4, "input gradient {a} vs {b}");
    }
}
