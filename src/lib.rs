//! burn-batchnorm: PyTorch-exact batch normalization and its relatives for Burn, with the
//! models, training pipeline and experiments that show what batch normalization does.
//!
//! The layers live in [`bn_layers`], the models in [`bn_models`], training in [`bn_train`].
//! This root package chooses the backend from its cargo features ([`select_device`]) and
//! holds what its examples share ([`cli`]). The PyTorch conformance runner behind the
//! `conformance` example and tests is the workspace's `bn-conformance` crate.

#[cfg(not(any(feature = "flex", feature = "ndarray", feature = "wgpu")))]
compile_error!("enable at least one backend feature: flex (default), ndarray or wgpu");

mod backend;
pub mod cli;

pub use backend::{BackendKind, run_on_cpu_pool, select_device};

/// The README's Rust example, compiled and run as a doctest so it stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
