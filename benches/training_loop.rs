//! The main job's training epoch without burn-train's `Learner`: the same model, data order,
//! loss, optimizer and schedule in a bare loop, to measure what the `Learner` costs per
//! step. `benches/learner_overhead.sh` runs it next to the main job.
//!
//! ```text
//! cargo bench --bench training_loop -- [--epochs N]
//! ```
//! Plain `main`, the system allocator, flex. The reference recipe (`scripts/train_lenet.py`): SGD lr 0.1 without momentum,
//! a constant rate, batch 128. Prints the training loop's images/s.

// A benchmark binary: its items are not a public API.
#![allow(missing_docs)]

use std::time::Instant;

use bn_models::BnLeNetConfig;
use bn_train::data::{EpochLoader, ImageBatcher, TrainTest, locate};
use bn_train::{Classifier, LrSchedule, TrainConfig};
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use burn::train::TrainStep;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Training epochs.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    // As the main job: the loop runs the CPU kernels with rayon's pool.
    burn_batchnorm::run_on_cpu_pool();
    let config = TrainConfig::new()
        .with_momentum(0.0)
        .with_schedule(LrSchedule::Constant)
        .with_epochs(args.epochs);
    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let data =
        TrainTest::load(&locate(None).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let images = data.train.len();
    let loader = EpochLoader::shuffled(
        data.train,
        ImageBatcher,
        config.batch_size,
        config.num_workers,
        config.seed,
        0,
    )
    .to_device(&device);
    let mut model = Classifier::new(BnLeNetConfig::new().init(&device));
    let mut optimizer = config.optimizer();
    let mut schedule = config.lr_schedule(images.div_ceil(config.batch_size) * config.epochs)?;
    let started = Instant::now();
    for _ in 0..config.epochs {
        for batch in loader.iter() {
            let output = TrainStep::step(&model, batch.map_err(|e| e.to_string())?);
            model = optimizer.step(schedule.step(), model, output.grads);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "bare loop: {} epoch(s) in {seconds:.1} s, {:.0} images/s",
        config.epochs,
        (images * config.epochs) as f64 / seconds
    );
    Ok(())
}
