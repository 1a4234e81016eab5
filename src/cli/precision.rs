//! The `--dtype` flag: the float type a model is built in, and what it holds afterwards.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, FloatDType, Tensor};
use clap::ValueEnum;

/// A model's float type. `f16` and `bf16` make a half model: parameters, inputs and
/// activations in half, the BatchNorms' running statistics in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FloatArg {
    /// 32-bit floats (the default).
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl FloatArg {
    /// Burn's dtype.
    pub fn dtype(self) -> FloatDType {
        match self {
            FloatArg::F32 => FloatDType::F32,
            FloatArg::F16 => FloatDType::F16,
            FloatArg::Bf16 => FloatDType::BF16,
        }
    }

    /// The flag's own spelling: `f32`, `f16`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            FloatArg::F32 => "f32",
            FloatArg::F16 => "f16",
            FloatArg::Bf16 => "bf16",
        }
    }

    /// Makes this the float type of every tensor `device` creates from now on (nothing to do
    /// for `f32`, the default). Call it before building the model.
    ///
    /// # Errors
    /// When the device cannot compute in the type (wgpu has no bf16), or has created tensors
    /// already.
    pub fn configure(self, device: &mut Device) -> Result<(), String> {
        if self == FloatArg::F32 {
            return Ok(());
        }
        let dtype = self.dtype();
        if !device.supports_dtype(dtype) {
            return Err(format!(
                "--dtype {}: the device cannot compute in it",
                self.name()
            ));
        }
        device.configure(dtype).map_err(|err| {
            format!(
                "--dtype {}: the device cannot switch to it: {err:?}",
                self.name()
            )
        })
    }
}

/// How many float values `model` holds in each dtype, parameters and running statistics
/// together: `{"BF16": 44878, "F32": 452}` for a half BN-LeNet.
pub fn values_by_dtype<M: Module>(model: &M) -> BTreeMap<String, usize> {
    #[derive(Default)]
    struct Count(BTreeMap<String, usize>);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            let values = tensor.shape().num_elements();
            *self.0.entry(format!("{:?}", tensor.dtype())).or_default() += values;
        }
    }
    let mut count = Count::default();
    model.visit(&mut count);
    count.0
}
