//! Switching a whole model between training and evaluation, as PyTorch's `model.train(mode)`.

use burn::module::{Flag, Module, ModuleMapper, Param};

/// Sets every training flag in `module` (normalization layers, dropout, ...) to `training`.
///
/// Burn's [`Module::valid`] also turns training off, and moves the module off autodiff;
/// use this where the module must stay on its device: evaluation-mode forwards whose
/// gradients you still want, or training-mode forwards on a plain (non-autodiff) device,
/// which PyTorch allows under `torch.no_grad()`.
pub fn set_training<M: Module>(module: M, training: bool) -> M {
    struct SetFlags(bool);
    impl ModuleMapper for SetFlags {
        fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
            flag.with_value(self.0)
        }
    }
    module.map(&mut SetFlags(training))
}
