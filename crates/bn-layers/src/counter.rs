//! `num_batches_tracked`: an integer buffer that a forward pass can bump through `&self`.

use std::sync::{Arc, Mutex, MutexGuard};

use burn::module::{
    Content, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor, Param,
    ParamId,
};
use burn::tensor::{Device, Int, Tensor};

/// PyTorch's `num_batches_tracked`: how many training forwards updated the running statistics.
///
/// A one-element integer tensor, saved with the module record like any buffer. Like Burn's
/// [`RunningState`](burn::module::RunningState) it is shared between clones of a module, so a
/// forward pass on `&self` can advance it; [`Module::valid`] takes a snapshot.
#[derive(Clone, Debug)]
pub struct BatchCounter {
    id: ParamId,
    value: Arc<Mutex<Tensor<1, Int>>>,
}

impl BatchCounter {
    /// A counter starting at `count`.
    pub fn new(count: i64, device: &Device) -> Self {
        Self::from_tensor(ParamId::new(), Tensor::from_data([count], device))
    }

    fn from_tensor(id: ParamId, value: Tensor<1, Int>) -> Self {
        Self {
            id,
            value: Arc::new(Mutex::new(value)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tensor<1, Int>> {
        // A panic while holding the lock leaves a valid tensor behind; keep using it.
        self.value
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The counter as a one-element tensor, on the device it lives on.
    pub fn value(&self) -> Tensor<1, Int> {
        self.lock().clone()
    }

    /// The count, read back to the host.
    pub fn count(&self) -> i64 {
        self.value().into_scalar::<i64>()
    }

    /// Adds one and returns the new value (still on the device: no host round trip).
    pub(crate) fn increment(&self) -> Tensor<1, Int> {
        let mut value = self.lock();
        *value = value.clone().add_scalar(1);
        value.clone()
    }
}

impl Module for BatchCounter {
    fn collect_devices(&self, mut devices: Vec<Device>) -> Vec<Device> {
        let device = self.lock().device();
        if !devices.contains(&device) {
            devices.push(device);
        }
        devices
    }

    fn fork(self, device: &Device) -> Self {
        self.to_device(device)
    }

    fn to_device(self, device: &Device) -> Self {
        let moved = self.lock().clone().to_device(device);
        Self::from_tensor(self.id, moved)
    }

    fn train(self) -> Self {
        let value = self.value();
        Self::from_tensor(self.id, Tensor::from_inner(value))
    }

    fn valid(&self) -> Self {
        Self::from_tensor(self.id, self.value().without_autodiff())
    }

    fn materialize(self) -> Self {
        self
    }

    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        visitor.visit_int(&Param::initialized(self.id, self.value()));
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        let mapped = mapper.map_int(Param::initialized(self.id, self.value()));
        let (id, value, _) = mapped.consume();
        Self::from_tensor(id, value)
    }
}

impl ModuleDisplayDefault for BatchCounter {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_formatted(&"BatchCounter").optional()
    }
}

impl ModuleDisplay for BatchCounter {}
