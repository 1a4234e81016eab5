//! SyncBatchNorm on flex in f64: 2 and 4 replicas equal BatchNorm on the whole batch to
//! 1e-10, and a global batch of one value per channel is refused. One test, because the
//! float dtype is set once per process. See `sync/mod.rs` for the method.

mod sync;

use burn::tensor::{Device, FloatDType};

#[test]
fn replicas_match_batch_norm_on_the_whole_batch_in_f64() {
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("flex supports f64");
    let device = device.autodiff();
    sync::assert_all_cases(&device, 1e-10);
    sync::assert_global_count_of_one_is_refused(&device);
}
