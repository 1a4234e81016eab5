//! SyncBatchNorm on flex (and ndarray) in f32: 2 and 4 replicas equal BatchNorm on the whole
//! batch to 1e-5.
//! (f64 to 1e-10 is `sync_batch_norm_f64.rs`, its own process because it sets flex's float
//! dtype.) See `sync/mod.rs` for the method.

mod sync;

use burn::tensor::Device;

#[test]
fn replicas_match_batch_norm_on_the_whole_batch_in_f32() {
    sync::assert_all_cases(&Device::flex().autodiff(), 1e-5);
}

#[test]
fn a_global_batch_of_one_value_per_channel_is_refused() {
    sync::assert_global_count_of_one_is_refused(&Device::flex().autodiff());
}

#[cfg(feature = "ndarray")]
#[test]
#[allow(deprecated)] // burn's ndarray backend: deprecated upstream, still supported here.
fn replicas_match_batch_norm_on_the_whole_batch_on_ndarray() {
    sync::assert_all_cases(&Device::ndarray().autodiff(), 1e-5);
}
