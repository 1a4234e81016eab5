//! Training versus evaluation: decided per call, as burn-nn decides it, and switched for a
//! whole model as PyTorch's `model.train(mode)`.

use burn::module::{Flag, Module, ModuleMapper, Param};
use burn::tensor::Device;

/// The training mode of a layer with batch (or instance) statistics, decided at each forward
/// as burn-nn's `BatchNorm` decides it: a forward **trains** (batch statistics, running
/// statistics updated) when `enabled` is on and the input is on an autodiff device, and
/// evaluates (running statistics) otherwise. A layer can therefore be built on a plain device,
/// moved to an autodiff one, and trained.
///
/// [`Module::valid`] turns both flags off (PyTorch's `model.eval()`) and
/// [`Module::train`] turns them back to what they were; [`set_training`] sets them for a
/// whole model. `without_autodiff` is PyTorch's `model.train()` under `torch.no_grad()`:
/// training forwards on a plain device, which only `set_training(model, true)` turns on.
#[derive(Module, Debug)]
pub struct TrainingMode {
    /// On when built: forwards on an autodiff device train.
    pub enabled: Param<Flag>,
    /// Off when built: forwards on a plain device train too when this and `enabled` are on.
    pub without_autodiff: Param<Flag>,
}

impl TrainingMode {
    /// A new layer's mode: training wherever a backward is possible.
    pub(crate) fn new() -> Self {
        Self {
            enabled: Param::from_bool(true),
            without_autodiff: Param::from_bool(false),
        }
    }

    /// Whether a forward with its input on `device` trains.
    pub fn trains_on(&self, device: &Device) -> bool {
        self.enabled.is_enabled() && (device.is_autodiff() || self.without_autodiff.is_enabled())
    }

    /// Whether training is enabled (a forward on an autodiff device trains).
    pub fn is_enabled(&self) -> bool {
        self.enabled.is_enabled()
    }
}

/// Sets every training flag in `module` (normalization layers, dropout, ...) to `training`.
///
/// Burn's [`Module::valid`] also turns training off, and moves the module off autodiff;
/// use this where the module must stay on its device: evaluation-mode forwards whose
/// gradients you still want, or training-mode forwards on a plain (non-autodiff) device,
/// which PyTorch allows under `torch.no_grad()` ([`TrainingMode`]).
pub fn set_training<M: Module>(module: M, training: bool) -> M {
    struct SetFlags(bool);
    impl ModuleMapper for SetFlags {
        fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
            flag.with_value(self.0)
        }
    }
    module.map(&mut SetFlags(training))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_mode_trains_on_autodiff_devices_only() {
        let mode = TrainingMode::new();
        assert!(mode.trains_on(&Device::flex().autodiff()));
        assert!(!mode.trains_on(&Device::flex()));
    }

    #[test]
    fn valid_train_and_set_training_switch_both_flags() {
        let (plain, autodiff) = (Device::flex(), Device::flex().autodiff());
        let eval = TrainingMode::new().valid();
        assert!(!eval.trains_on(&autodiff) && !eval.trains_on(&plain));
        let back = eval.train();
        assert!(back.trains_on(&autodiff) && !back.trains_on(&plain));
        let no_grad = set_training(back, true);
        assert!(no_grad.trains_on(&autodiff) && no_grad.trains_on(&plain));
        let off = set_training(no_grad, false);
        assert!(!off.trains_on(&autodiff) && !off.trains_on(&plain));
    }
}
