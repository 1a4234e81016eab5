//! Running statistics and `num_batches_tracked` are part of the module record: they survive
//! a save to a burnpack file and a load into a freshly built layer.

use bn_layers::{BatchNormConfig, InstanceNormConfig};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

#[test]
fn batch_norm_statistics_survive_save_and_load() {
    let device = Device::flex().autodiff();
    let bn = BatchNormConfig::new_1d(3).with_momentum(None).init(&device);
    for shift in [0.0f32, 1.0, 5.0] {
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 + shift).collect();
        bn.forward(Tensor::<2>::from_data(
            TensorData::new(values, [4, 3]),
            &device,
        ));
    }
    let (mean, var) = bn.running_stats().unwrap();
    let (mean, var) = (host(mean), host(var));
    // Hand computation: channel k of batch `shift` holds 0.5 * (k, k+3, k+6, k+9) + shift,
    // mean 0.5 * (k + 4.5) + shift, unbiased variance 0.25 * 15 = 3.75 in every batch.
    assert!((mean[0] - (2.25 + 2.0)).abs() < 1e-5, "{mean:?}");
    assert!((var[1] - 3.75).abs() < 1e-5, "{var:?}");

    let dir = std::env::temp_dir().join(format!("bn-layers-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bn.bpk");
    bn.clone().save_file(&file).expect("save");

    let fresh = BatchNormConfig::new_1d(3).with_momentum(None).init(&device);
    assert_eq!(fresh.num_batches_tracked(), Some(0));
    let loaded = fresh.load_file(&file);
    assert_eq!(loaded.num_batches_tracked(), Some(3));
    let (lmean, lvar) = loaded.running_stats().unwrap();
    assert_eq!(host(lmean), mean);
    assert_eq!(host(lvar), var);
    // The loaded counter keeps counting: the cumulative average continues where it stopped.
    loaded.forward(Tensor::<2>::zeros([4, 3], &device));
    assert_eq!(loaded.num_batches_tracked(), Some(4));
    let (after, _) = loaded.running_stats().unwrap();
    assert!((host(after)[0] - mean[0] * 3.0 / 4.0).abs() < 1e-5);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn instance_norm_running_statistics_survive_save_and_load() {
    let device = Device::flex().autodiff();
    let layer = InstanceNormConfig::new_1d(2)
        .with_track_running_stats(true)
        .init(&device);
    let values: Vec<f32> = (0..12).map(|i| (i * i) as f32 * 0.1).collect();
    layer.forward(Tensor::<3>::from_data(
        TensorData::new(values, [2, 2, 3]),
        &device,
    ));
    let (mean, var) = layer.running_stats().unwrap();

    let dir = std::env::temp_dir().join(format!("bn-layers-in-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("in.bpk");
    layer.clone().save_file(&file).expect("save");
    let loaded = InstanceNormConfig::new_1d(2)
        .with_track_running_stats(true)
        .init(&device)
        .load_file(&file);
    let (lmean, lvar) = loaded.running_stats().unwrap();
    assert_eq!(host(lmean), host(mean));
    assert_eq!(host(lvar), host(var));
    assert_eq!(
        loaded.num_batches_tracked(),
        Some(0),
        "InstanceNorm never counts"
    );
    std::fs::remove_dir_all(dir).ok();
}
