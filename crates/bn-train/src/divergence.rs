//! Stops training at the first step whose loss is NaN or infinite, and remembers where.
//!
//! The training step checks its loss before the optimizer applies its gradients; on a
//! non-finite loss it asks burn-train's [`Interrupter`] to stop (the data-parallel engine
//! asks the guard itself before its optimizer step). The guard also keeps every step's loss. burn-train then ends the
//! epoch without validating or writing a checkpoint, so every checkpoint on disk was written
//! before the divergence.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burn::train::Interrupter;

/// Where the loss first stopped being a finite number.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The training batch within the epoch, counted from 1.
    pub batch: usize,
    /// The loss of that batch (NaN or ±inf).
    pub loss: f64,
}

/// Counts training steps and stops the run at the first non-finite loss. Clones share state.
#[derive(Clone)]
pub struct DivergenceGuard {
    interrupter: Interrupter,
    steps_per_epoch: usize,
    steps: Arc<AtomicUsize>,
    found: Arc<Mutex<Option<Divergence>>>,
    losses: Arc<Mutex<Vec<f64>>>,
}

impl std::fmt::Debug for DivergenceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DivergenceGuard")
            .field("steps", &self.steps.load(Ordering::SeqCst))
            .field("found", &self.divergence())
            .finish()
    }
}

impl DivergenceGuard {
    /// A guard for a run with `steps_per_epoch` training batches per epoch whose first step
    /// belongs to epoch `first_epoch + 1`; it stops training through `interrupter`.
    pub fn new(interrupter: Interrupter, steps_per_epoch: usize, first_epoch: usize) -> Self {
        Self {
            interrupter,
            steps_per_epoch,
            steps: Arc::new(AtomicUsize::new(first_epoch * steps_per_epoch)),
            found: Arc::new(Mutex::new(None)),
            losses: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Records one training step with loss `loss`; a NaN or infinite loss stops the run.
    pub fn observe(&self, loss: f64) {
        let step = self.steps.fetch_add(1, Ordering::SeqCst);
        self.losses
            .lock()
            .expect("the guard's lock is never poisoned")
            .push(loss);
        if loss.is_finite() {
            return;
        }
        let mut found = self
            .found
            .lock()
            .expect("the guard's lock is never poisoned");
        if found.is_none() {
            let divergence = Divergence {
                epoch: step / self.steps_per_epoch + 1,
                batch: step % self.steps_per_epoch + 1,
                loss,
            };
            self.interrupter.stop(Some(&format!(
                "the loss is {loss} at epoch {}, batch {}",
                divergence.epoch, divergence.batch
            )));
            *found = Some(divergence);
        }
    }

    /// Every loss observed, in order.
    pub fn losses(&self) -> Vec<f64> {
        self.losses
            .lock()
            .expect("the guard's lock is never poisoned")
            .clone()
    }

    /// The first non-finite loss seen, if any.
    pub fn divergence(&self) -> Option<Divergence> {
        self.found
            .lock()
            .expect("the guard's lock is never poisoned")
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_epoch_and_batch_of_the_first_bad_loss_and_stops() {
        let interrupter = Interrupter::new();
        // Resumed after 2 epochs of 5 batches: the first step is epoch 3, batch 1.
        let guard = DivergenceGuard::new(interrupter.clone(), 5, 2);
        for loss in [2.3, 1.9, 1.7] {
            guard.observe(loss);
        }
        assert!(!interrupter.should_stop());
        guard.observe(f64::NAN);
        guard.observe(f64::INFINITY);
        assert!(interrupter.should_stop());
        let found = guard.divergence().unwrap();
        assert_eq!((found.epoch, found.batch), (3, 4));
        assert!(found.loss.is_nan());
        assert_eq!(guard.losses().len(), 5);
        assert_eq!(guard.losses()[..3], [2.3, 1.9, 1.7]);
    }
}
