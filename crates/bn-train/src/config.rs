//! What a training run is: the recipe, saved as `config.json` in the artifact directory.

use bn_models::NormKind;
use burn::config::Config;
use burn::optim::lr_scheduler::composed::ComposedLrSchedulerConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use serde::{Deserialize, Serialize};

use crate::data::{Examples, TrainTest};
use crate::rules;

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Stochastic gradient descent (optionally with momentum, no dampening).
    Sgd,
    /// Adam with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8).
    Adam,
}

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// `lr` throughout (the reference recipe).
    Constant,
    /// Cosine annealing from `lr` to 0 over all the run's steps (PyTorch's
    /// `CosineAnnealingLR`).
    Cosine,
}

impl OptimizerKind {
    /// Every optimizer, in the order above.
    pub const ALL: [OptimizerKind; 2] = [OptimizerKind::Sgd, OptimizerKind::Adam];

    /// The lower-case name command lines use (`sgd`, `adam`).
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        }
    }
}

impl LrSchedule {
    /// Every schedule, in the order above.
    pub const ALL: [LrSchedule; 2] = [LrSchedule::Constant, LrSchedule::Cosine];

    /// The lower-case name command lines use (`constant`, `cosine`).
    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        }
    }
}

/// The one of `all` named `text`, or an error listing the names (`what`: "optimizer").
fn by_name<T: Copy>(
    what: &str,
    text: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|&kind| name(kind) == text)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|&kind| name(kind)).collect();
            format!(
                "unknown {what} '{text}', expected one of: {}",
                names.join(", ")
            )
        })
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        by_name("optimizer", text, &Self::ALL, Self::name)
    }
}

impl std::str::FromStr for LrSchedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        by_name("schedule", text, &Self::ALL, Self::name)
    }
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The training recipe. Defaults: SGD with momentum 0.9, lr 0.1 annealed to 0 along a
/// cosine, batch 128, 10 epochs. The reference recipe (`scripts/train_lenet.py`, D2L's) is `momentum = 0`, `schedule = Constant`.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// Number of epochs. Default: 10.
    #[config(default = 10)]
    pub epochs: usize,
    /// Mini-batch size. Default: 128.
    #[config(default = 128)]
    pub batch_size: usize,
    /// Learning rate. Default: 0.1.
    #[config(default = 0.1)]
    pub lr: f64,
    /// The optimizer. Default: SGD.
    #[config(default = "OptimizerKind::Sgd")]
    pub optimizer: OptimizerKind,
    /// SGD momentum; 0 for plain SGD. Default: 0.9.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// The learning-rate schedule. Default: cosine annealing.
    #[config(default = "LrSchedule::Cosine")]
    pub schedule: LrSchedule,
    /// The normalization layer of the model. Default: [`NormKind::Batch`].
    #[config(default = "NormKind::Batch")]
    pub norm: NormKind,
    /// Seed of the shuffling; the examples also seed the device with it before building the
    /// model, which fixes the weight initialization. Default: 0.
    #[config(default = 0)]
    pub seed: u64,
    /// Train on the first N training images only.
    pub limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    pub limit_test: Option<usize>,
    /// Background threads that prepare batches. Default: 2.
    #[config(default = 2)]
    pub num_workers: usize,
    /// Mini-batches whose gradients are summed before each optimizer step ("virtual batch
    /// size" `batch_size × grad_accumulation`). Batch normalization still sees each
    /// mini-batch alone. Default: 1.
    #[config(default = 1)]
    pub grad_accumulation: usize,
    /// Data-parallel replicas, each given a slice of every batch (PyTorch's
    /// `DistributedDataParallel`, in threads); `batch_size` stays the global batch. 1 trains
    /// on burn-train's `Learner`. Default: 1.
    #[config(default = 1)]
    pub devices: usize,
    /// Synchronize BatchNorm's batch statistics across the replicas (`SyncBatchNorm`), so
    /// `devices` replicas train like one device at the global batch. Default: false.
    #[config(default = false)]
    pub sync_bn: bool,
}

impl TrainConfig {
    /// `data` cut to `limit_train` training and `limit_test` test examples, where set.
    pub fn limit<S: Examples>(&self, data: TrainTest<S>) -> TrainTest<S> {
        let TrainTest { train, test } = data;
        TrainTest {
            train: match self.limit_train {
                Some(n) => train.take(n),
                None => train,
            },
            test: match self.limit_test {
                Some(n) => test.take(n),
                None => test,
            },
        }
    }

    /// The recipe's optimizer (SGD momentum without dampening, as PyTorch's default).
    pub fn optimizer(&self) -> ModuleOptimizer {
        match self.optimizer {
            OptimizerKind::Sgd => SgdConfig::new()
                .with_momentum((self.momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(self.momentum)
                        .with_dampening(0.0)
                }))
                .init(),
            OptimizerKind::Adam => AdamConfig::new().init(),
        }
    }

    /// The recipe's learning-rate schedule over `steps` optimizer steps.
    ///
    /// # Errors
    /// When burn refuses the schedule (a message naming why).
    pub fn lr_schedule(&self, steps: usize) -> Result<ModuleLrScheduler, String> {
        match self.schedule {
            LrSchedule::Constant => Ok(ModuleLrScheduler::new(self.lr)),
            // lr × (a cosine from 1 to 0): burn's cosine scheduler alone refuses a peak above 1.
            LrSchedule::Cosine => ComposedLrSchedulerConfig::new()
                .constant(self.lr)
                .cosine(CosineAnnealingLrSchedulerConfig::new(1.0, steps))
                .init(),
        }
    }

    /// Whether the run takes data-parallel steps (several replicas, or synchronized BatchNorm)
    /// rather than burn-train's `Learner` on one device.
    pub fn data_parallel(&self) -> bool {
        self.devices > 1 || self.sync_bn
    }

    fn check_parallelism(&self) -> Result<(), String> {
        let n = self.devices;
        if self.sync_bn && self.norm != NormKind::Batch {
            return Err(format!(
                "--sync-bn synchronizes BatchNorm (--norm batch); --norm {} has nothing to \
                 synchronize",
                self.norm
            ));
        }
        if self.data_parallel() && self.grad_accumulation > 1 {
            return Err(
                "--grad-accumulation runs on one device only, not with --devices or \
                        --sync-bn"
                    .into(),
            );
        }
        if self.batch_size < n {
            return Err(format!(
                "--batch-size {} is smaller than --devices {n}: every replica needs an image",
                self.batch_size
            ));
        }
        if n > 1 && !self.sync_bn && self.batch_size < 2 * n {
            return Err(format!(
                "--devices {n} with --batch-size {}: every replica needs a slice of at least 2 \
                 images for its own batch statistics (or use --sync-bn)",
                self.batch_size
            ));
        }
        Ok(())
    }

    /// Checks the recipe, naming the flag at fault.
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn validate(&self) -> Result<(), String> {
        let flag = |name: &str, value: &dyn std::fmt::Display, why: &str| {
            format!("--{name} {why}, got {value}")
        };
        rules::at_least_one(self.epochs).map_err(|why| flag("epochs", &self.epochs, why))?;
        rules::batch_size(self.batch_size)
            .map_err(|why| flag("batch-size", &self.batch_size, why))?;
        rules::learning_rate(self.lr).map_err(|why| flag("lr", &self.lr, why))?;
        rules::at_least_one(self.grad_accumulation)
            .map_err(|why| flag("grad-accumulation", &self.grad_accumulation, why))?;
        rules::unit_interval(self.momentum).map_err(|why| flag("momentum", &self.momentum, why))?;
        for (name, limit) in [
            ("limit-train", self.limit_train),
            ("limit-test", self.limit_test),
        ] {
            if let Some(limit) = limit {
                rules::at_least_one(limit).map_err(|why| flag(name, &limit, why))?;
            }
        }
        rules::at_least_one(self.devices).map_err(|why| flag("devices", &self.devices, why))?;
        self.check_parallelism()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimizers_and_schedules_parse_their_own_names() {
        for kind in OptimizerKind::ALL {
            assert_eq!(kind.to_string().parse(), Ok(kind));
        }
        for schedule in LrSchedule::ALL {
            assert_eq!(schedule.to_string().parse(), Ok(schedule));
        }
        assert_eq!(
            "rmsprop".parse::<OptimizerKind>(),
            Err("unknown optimizer 'rmsprop', expected one of: sgd, adam".to_string())
        );
        assert_eq!(
            "Cosine".parse::<LrSchedule>(),
            Err("unknown schedule 'Cosine', expected one of: constant, cosine".to_string())
        );
    }

    #[test]
    fn data_parallel_recipes_are_checked_before_training() {
        let refused = |config: TrainConfig| config.validate().unwrap_err();
        assert!(refused(TrainConfig::new().with_devices(0)).starts_with("--devices must be"));
        let group = TrainConfig::new()
            .with_norm(NormKind::Group)
            .with_sync_bn(true);
        assert!(refused(group).contains("--norm group has nothing to synchronize"));
        let accumulate = TrainConfig::new().with_devices(2).with_grad_accumulation(2);
        assert!(refused(accumulate).contains("--grad-accumulation runs on one device"));
        let tiny = TrainConfig::new()
            .with_batch_size(3)
            .with_devices(4)
            .with_sync_bn(true);
        assert!(refused(tiny).contains("smaller than --devices 4"));
        let plain = TrainConfig::new().with_batch_size(6).with_devices(4);
        assert!(refused(plain).contains("at least 2 images"));
        // Synchronized, one image per replica is enough: the statistics are the batch's.
        let synced = TrainConfig::new()
            .with_batch_size(4)
            .with_devices(4)
            .with_sync_bn(true);
        assert_eq!(synced.validate(), Ok(()));
        assert!(synced.data_parallel() && !TrainConfig::new().data_parallel());
    }

    #[test]
    fn configs_saved_before_0_2_still_name_their_norm() {
        // 0.1 wrote `"norm": "Ours"` and `"norm": "Burn"` into config.json.
        let read = |name: &str| serde_json::from_str::<NormKind>(&format!("\"{name}\""));
        assert_eq!(read("Ours").unwrap(), NormKind::Batch);
        assert_eq!(read("Burn").unwrap(), NormKind::BurnBatch);
        assert_eq!(read("BurnBatch").unwrap(), NormKind::BurnBatch);
        assert!(read("Instance").is_err());
    }
}
