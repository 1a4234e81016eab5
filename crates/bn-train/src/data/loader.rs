//! A data loader whose batch order is a function of the seed and the epoch alone, so a run
//! resumed from a checkpoint sees the same batches, in the same order, as one that never
//! stopped, with any number of worker threads.
//!
//! burn's own loader keeps one random-number generator that advances with every epoch (so a
//! resumed run reshuffles from epoch 1) and, with several workers, yields batches in the order
//! the workers finish them. Here epoch `e` replays the generator `e` times from the seed, and
//! worker `w` builds batches `w, w + W, w + 2W, ...` that are handed out strictly in turn.
//! The permutations are burn's: with one worker, `DataLoaderBuilder::shuffle(seed)` yields
//! exactly the same batches epoch after epoch (tested below).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::transform::{PartialDataset, ShuffledDataset};
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::Device;
use rand::distr::{Distribution, StandardUniform};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Batches a worker may build ahead of the training loop.
const PREFETCH: usize = 2;

/// How the items are ordered in each epoch.
#[derive(Debug, Clone)]
enum Order {
    /// `0, 1, 2, ...` every epoch (evaluation).
    Sequential,
    /// A fresh permutation per epoch, a function of `(seed, epoch)`.
    Shuffled(u64),
}

/// A [`DataLoader`] whose batch order is a function of the seed and the epoch alone: a run
/// resumed from a checkpoint sees the batches, in order, of one that never stopped.
pub struct EpochLoader<I, O> {
    dataset: Arc<dyn Dataset<I>>,
    batcher: Arc<dyn Batcher<I, O>>,
    batch_size: usize,
    workers: usize,
    order: Order,
    device: Device,
    /// The epoch the next `iter()` call serves, counted from 0.
    next_epoch: Arc<AtomicUsize>,
}

impl<I, O> EpochLoader<I, O>
where
    I: Send + Sync + Clone + 'static,
    O: Send + 'static,
{
    /// A loader that reshuffles `dataset` every epoch; its first `iter()` serves epoch
    /// `first_epoch` (0 for a fresh run, the checkpoint's epoch for a resumed one).
    /// `workers` threads build batches ahead (0: built on the caller's thread).
    pub fn shuffled(
        dataset: impl Dataset<I> + 'static,
        batcher: impl Batcher<I, O> + 'static,
        batch_size: usize,
        workers: usize,
        seed: u64,
        first_epoch: usize,
    ) -> Self {
        Self::new(dataset, batcher, batch_size, workers, Order::Shuffled(seed))
            .starting_at(first_epoch)
    }

    /// A loader that serves `dataset` in order every epoch.
    pub fn sequential(
        dataset: impl Dataset<I> + 'static,
        batcher: impl Batcher<I, O> + 'static,
        batch_size: usize,
        workers: usize,
    ) -> Self {
        Self::new(dataset, batcher, batch_size, workers, Order::Sequential)
    }

    fn new(
        dataset: impl Dataset<I> + 'static,
        batcher: impl Batcher<I, O> + 'static,
        batch_size: usize,
        workers: usize,
        order: Order,
    ) -> Self {
        assert!(batch_size > 0, "a batch holds at least one item");
        Self {
            dataset: Arc::new(dataset),
            batcher: Arc::new(batcher),
            batch_size,
            workers,
            order,
            device: Device::default(),
            next_epoch: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn starting_at(self, epoch: usize) -> Self {
        self.next_epoch.store(epoch, Ordering::SeqCst);
        self
    }

    fn with(&self, dataset: Arc<dyn Dataset<I>>, device: Device) -> Self {
        Self {
            dataset,
            batcher: self.batcher.clone(),
            batch_size: self.batch_size,
            workers: self.workers,
            order: self.order.clone(),
            device,
            next_epoch: Arc::new(AtomicUsize::new(self.next_epoch.load(Ordering::SeqCst))),
        }
    }

    /// The item indices of epoch `epoch`, in the order they are served.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let len = self.dataset.len();
        match self.order {
            Order::Sequential => (0..len).collect(),
            Order::Shuffled(seed) => shuffled_order(len, seed, epoch),
        }
    }
}

/// The dataset `0, 1, ..., len - 1`, to read a permutation off burn's shuffling wrappers.
struct Indices(usize);

impl Dataset<usize> for Indices {
    fn get(&self, index: usize) -> Result<usize, DatasetError> {
        Ok(index)
    }

    fn len(&self) -> usize {
        self.0
    }
}

/// The order burn's one-worker loader built with `.shuffle(seed)` serves in epoch `epoch`
/// (counted from 0): its seed is drawn from `StdRng::seed_from_u64(seed)`; the data set is
/// shuffled once with it, and each epoch shuffles again with a generator that advances
/// epoch by epoch (replayed here from the start).
fn shuffled_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut builder_rng = StdRng::seed_from_u64(seed);
    let mut loader_seed = <StdRng as SeedableRng>::Seed::default();
    builder_rng.fill_bytes(&mut loader_seed);

    // burn hands each shuffle a fork of its generator (`From<&mut StdRng> for RngSource`).
    let once = ShuffledDataset::new(Indices(len), StdRng::from_seed(loader_seed).fork());
    let once: Arc<dyn Dataset<usize>> = Arc::new(PartialDataset::new(once, 0, len));
    let worker_seed: u64 = StandardUniform.sample(&mut StdRng::from_seed(loader_seed));
    let mut worker_rng = StdRng::seed_from_u64(worker_seed);
    for _ in 0..epoch {
        // Each epoch's shuffle forks the generator once.
        worker_rng.fork();
    }
    let this_epoch = ShuffledDataset::new(once, worker_rng.fork());
    (0..len)
        .map(|i| this_epoch.get(i).expect("a permutation of 0..len"))
        .collect()
}

impl<I, O> DataLoader<O> for EpochLoader<I, O>
where
    I: Send + Sync + Clone + 'static,
    O: Send + 'static,
{
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        let order = Arc::new(self.epoch_order(epoch));
        let batches = order.len().div_ceil(self.batch_size);
        let build = BatchBuilder {
            dataset: self.dataset.clone(),
            batcher: self.batcher.clone(),
            order,
            batch_size: self.batch_size,
            device: self.device.clone(),
        };
        let source = match self.workers {
            0 => Source::Inline(build),
            workers => Source::Workers(spawn_workers(build, workers.min(batches.max(1)))),
        };
        Box::new(EpochIter {
            source,
            next_batch: 0,
            batches,
            items_done: 0,
            items_total: self.dataset.len(),
            batch_size: self.batch_size,
        })
    }

    fn num_items(&self) -> usize {
        self.dataset.len()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<O>> {
        Arc::new(self.with(self.dataset.clone(), device.clone()))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<O>> {
        let part = PartialDataset::new(self.dataset.clone(), start, end);
        Arc::new(self.with(Arc::new(part), self.device.clone()))
    }
}

/// Everything needed to build batch `b` of one epoch, on any thread.
struct BatchBuilder<I, O> {
    dataset: Arc<dyn Dataset<I>>,
    batcher: Arc<dyn Batcher<I, O>>,
    order: Arc<Vec<usize>>,
    batch_size: usize,
    device: Device,
}

impl<I, O> BatchBuilder<I, O> {
    fn build(&self, batch: usize) -> Result<O, DatasetError> {
        let start = batch * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let items = self.order[start..end]
            .iter()
            .map(|&index| self.dataset.get(index))
            .collect::<Result<Vec<I>, _>>()?;
        Ok(self.batcher.batch(items, &self.device))
    }
}

/// Where batches come from: built on demand, or by workers in turn.
enum Source<I, O> {
    Inline(BatchBuilder<I, O>),
    Workers(Vec<Receiver<Result<O, DatasetError>>>),
}

/// Worker `w` of `count` builds batches `w, w + count, ...` into its own bounded channel; a
/// worker stops when its receiver is gone (the epoch was abandoned).
fn spawn_workers<I, O>(
    build: BatchBuilder<I, O>,
    count: usize,
) -> Vec<Receiver<Result<O, DatasetError>>>
where
    I: Send + Sync + Clone + 'static,
    O: Send + 'static,
{
    let build = Arc::new(build);
    let batches = build.order.len().div_ceil(build.batch_size);
    (0..count)
        .map(|worker| {
            let (sender, receiver) = sync_channel(PREFETCH);
            let build = build.clone();
            std::thread::Builder::new()
                .name(format!("epoch-loader-{worker}"))
                .spawn(move || {
                    for batch in (worker..batches).step_by(count) {
                        if sender.send(build.build(batch)).is_err() {
                            break;
                        }
                    }
                })
                .expect("the OS can start a data loader thread");
            receiver
        })
        .collect()
}

/// A worker thread ended before sending its batch (it panicked).
#[derive(Debug, thiserror::Error)]
#[error("a data loader thread stopped before building its batch")]
struct WorkerStopped;

struct EpochIter<I, O> {
    source: Source<I, O>,
    next_batch: usize,
    batches: usize,
    items_done: usize,
    items_total: usize,
    batch_size: usize,
}

impl<I, O> Iterator for EpochIter<I, O> {
    type Item = Result<O, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_batch == self.batches {
            return None;
        }
        let batch = self.next_batch;
        let item = match &self.source {
            Source::Inline(build) => build.build(batch),
            Source::Workers(receivers) => receivers[batch % receivers.len()]
                .recv()
                .unwrap_or_else(|_| Err(DatasetError::new(WorkerStopped))),
        };
        self.next_batch += 1;
        self.items_done = (self.items_done + self.batch_size).min(self.items_total);
        Some(item)
    }
}

impl<I, O> DataLoaderIterator<O> for EpochIter<I, O> {
    fn progress(&self) -> Progress {
        Progress::new(self.items_done, self.items_total, Some("items".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use burn::data::dataloader::DataLoaderBuilder;

    use super::*;

    /// Keeps the item indices of a batch.
    #[derive(Clone)]
    struct Keep;

    impl Batcher<usize, Vec<usize>> for Keep {
        fn batch(&self, items: Vec<usize>, _: &Device) -> Vec<usize> {
            items
        }
    }

    fn epochs(loader: &dyn DataLoader<Vec<usize>>, count: usize) -> Vec<Vec<Vec<usize>>> {
        (0..count)
            .map(|_| loader.iter().map(|batch| batch.unwrap()).collect())
            .collect()
    }

    #[test]
    fn serves_burns_one_worker_order_with_any_number_of_workers() {
        let burn = DataLoaderBuilder::new(Keep)
            .batch_size(7)
            .shuffle(42)
            .num_workers(1)
            .build(Indices(50));
        let expected = epochs(burn.as_ref(), 4);
        assert_ne!(expected[0], expected[1], "each epoch is reshuffled");
        for workers in [0, 1, 3] {
            let ours = EpochLoader::shuffled(Indices(50), Keep, 7, workers, 42, 0);
            assert_eq!(epochs(&ours, 4), expected, "{workers} worker(s)");
        }
    }

    #[test]
    fn a_loader_started_at_epoch_two_serves_epoch_two() {
        let fresh = EpochLoader::shuffled(Indices(30), Keep, 4, 2, 7, 0);
        let resumed = EpochLoader::shuffled(Indices(30), Keep, 4, 2, 7, 2);
        assert_eq!(epochs(&fresh, 3)[2], epochs(&resumed, 1)[0]);
    }

    #[test]
    fn progress_reaches_the_total_on_the_last_batch() {
        let loader = EpochLoader::sequential(Indices(10), Keep, 4, 2);
        let mut iter = loader.iter();
        let mut seen = Vec::new();
        while let Some(batch) = iter.next() {
            seen.extend(batch.unwrap());
            seen.push(usize::MAX);
            let progress = iter.progress();
            seen.push(progress.items_processed);
        }
        assert_eq!(
            seen,
            [
                0,
                1,
                2,
                3,
                usize::MAX,
                4,
                4,
                5,
                6,
                7,
                usize::MAX,
                8,
                8,
                9,
                usize::MAX,
                10
            ]
        );
        assert!(iter.progress().is_completed());
    }
}
