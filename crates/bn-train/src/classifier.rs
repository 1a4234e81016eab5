//! The glue between a model and burn-train's `Learner`: the training and inference steps of a
//! classifier with cross-entropy loss.

use bn_models::{Classify, Norm};
use burn::module::{Module, ModuleDisplay};
use burn::tensor::Tensor;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};

use crate::data::Batch;
use crate::divergence::DivergenceGuard;
use crate::loss::cross_entropy;

/// Wraps any [`Classify`] model so burn-train can train it.
#[derive(Module, Debug)]
pub struct Classifier<M: Module + ModuleDisplay> {
    /// The wrapped model.
    pub model: M,
    /// Stops training at a non-finite loss (not part of the model's record).
    #[module(skip)]
    guard: Option<DivergenceGuard>,
}

impl<M: Module + ModuleDisplay + Classify> Classifier<M> {
    /// Wraps `model`.
    pub fn new(model: M) -> Self {
        Self { model, guard: None }
    }

    /// Has every training step report its loss to `guard`, which stops the run at the first
    /// NaN or infinite loss.
    pub fn with_guard(self, guard: DivergenceGuard) -> Self {
        Self {
            guard: Some(guard),
            ..self
        }
    }

    /// Logits and mean cross-entropy loss for a batch.
    pub fn forward_classification(&self, batch: Batch<M::Input>) -> ClassificationOutput {
        let logits = self.model.classify(batch.inputs);
        let loss = cross_entropy(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }

    /// The first normalization layer's learned `γ` and `β`, read back to the host.
    pub fn first_norm_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let host = |t: Tensor<1>| t.into_data().iter::<f32>().collect();
        let (gamma, beta) = self.model.first_norm().and_then(Norm::affine)?;
        Some((host(gamma), host(beta)))
    }
}

impl<M> TrainStep for Classifier<M>
where
    M: Module + ModuleDisplay + Classify<Input: Send + 'static> + 'static,
{
    type Input = Batch<M::Input>;
    type Output = ClassificationOutput;

    fn step(&self, batch: Batch<M::Input>) -> TrainOutput<ClassificationOutput> {
        let item = self.forward_classification(batch);
        if let Some(guard) = &self.guard {
            guard.observe(item.loss.clone().into_scalar::<f64>());
        }
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl<M> InferenceStep for Classifier<M>
where
    M: Module + ModuleDisplay + Classify<Input: Send + 'static> + 'static,
{
    type Input = Batch<M::Input>;
    type Output = ClassificationOutput;

    fn step(&self, batch: Batch<M::Input>) -> ClassificationOutput {
        self.forward_classification(batch)
    }
}
