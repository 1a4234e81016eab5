//! A SyncBatchNorm group fails fast: a replica that panics, fails, falls out of step or never
//! arrives releases its peers at once (or after the group's patience), with a message naming
//! what happened; in evaluation a replica does not synchronize at all, as in PyTorch. Each
//! case takes well under a second.

use std::any::Any;
use std::time::{Duration, Instant};

use bn_layers::{BatchNormConfig, NormError, ReplicaGroup, SyncBatchNorm};
use burn::tensor::{Device, Tensor};

const C: usize = 3;

fn layer(replica: bn_layers::Replica, device: &Device) -> SyncBatchNorm {
    SyncBatchNorm::new(BatchNormConfig::new_1d(C).init(device), replica)
}

fn batch(n: usize, device: &Device) -> Tensor<2> {
    Tensor::arange(0..(n * C) as i64, device)
        .float()
        .reshape([n, C])
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    (payload.downcast_ref::<String>().cloned())
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `work(rank, replica)` on a thread per replica of a group of 2 (patience one minute
/// unless given) and returns each thread's result or panic message, and the time it took.
fn run_pair<T: Send>(
    patience: Duration,
    work: impl Fn(usize, bn_layers::Replica) -> T + Sync,
) -> (Vec<Result<T, String>>, Duration) {
    let group = ReplicaGroup::with_patience(2, patience);
    let started = Instant::now();
    let results = std::thread::scope(|scope| {
        let threads: Vec<_> = (group.members().into_iter())
            .map(|replica| scope.spawn(|| work(replica.rank(), replica)))
            .collect();
        (threads.into_iter())
            .map(|t| t.join().map_err(|payload| panic_message(&*payload)))
            .collect()
    });
    (results, started.elapsed())
}

#[test]
fn a_replica_that_panics_before_its_first_reduction_releases_its_peer_at_once() {
    let device = Device::flex().autodiff();
    let (results, took) = run_pair(Duration::from_secs(60), |rank, replica| {
        let bn = layer(replica, &device);
        if rank == 1 {
            panic!("replica 1 gives up");
        }
        bn.forward(batch(4, &device)).dims()
    });
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let message = results[0].as_ref().unwrap_err();
    assert!(message.contains("replica 1 panicked"), "{message}");
    assert!(results[1].is_err());
}

#[test]
fn a_replica_whose_forward_fails_releases_its_peer_with_the_reason() {
    let device = Device::flex().autodiff();
    let (results, took) = run_pair(Duration::from_secs(60), |rank, replica| {
        let bn = layer(replica, &device);
        // Replica 1's input has 4 channels where the layer has 3.
        let x = match rank {
            0 => batch(4, &device),
            _ => Tensor::zeros([4, C + 1], &device),
        };
        bn.try_forward(x).map(|y| y.dims())
    });
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // Replica 0 panics in the reduction, or returns an error if the group had already failed
    // when its forward began.
    let peer = match &results[0] {
        Err(panic) => panic.clone(),
        Ok(result) => result.as_ref().unwrap_err().to_string(),
    };
    assert!(
        peer.contains("replica 1 failed") && peer.contains("channels"),
        "{peer}"
    );
    let own = results[1].as_ref().unwrap().as_ref().unwrap_err();
    assert_eq!(own.kind(), "ChannelMismatch");
}

#[test]
fn replicas_out_of_step_both_stop_naming_the_sites() {
    let device = Device::flex().autodiff();
    let (results, took) = run_pair(Duration::from_secs(60), |rank, replica| {
        // Replica 0 built one synchronized layer more than replica 1 and runs its second, so
        // the two reduce different sites.
        let first = layer(replica.clone(), &device);
        let bn = if rank == 0 {
            layer(replica, &device)
        } else {
            first
        };
        bn.forward(batch(4, &device)).dims()
    });
    assert!(took < Duration::from_secs(1), "took {took:?}");
    for result in &results {
        let message = result.as_ref().unwrap_err();
        assert!(message.contains("out of step"), "{message}");
    }
    // After a failure the group stays failed: a new forward is refused without waiting.
    let group = ReplicaGroup::new(2);
    group.member(1).fail("it stopped");
    let err = layer(group.member(0), &device)
        .try_forward(batch(4, &device))
        .unwrap_err();
    assert!(
        matches!(&err, NormError::ReplicaGroupFailed { reason } if reason.contains("it stopped"))
    );
}

#[test]
fn a_replica_that_never_arrives_fails_the_group_after_its_patience() {
    let device = Device::flex().autodiff();
    let (results, took) = run_pair(Duration::from_millis(200), |rank, replica| {
        let bn = layer(replica, &device);
        // Replica 1 returns without a forward and without panicking.
        (rank == 0).then(|| bn.forward(batch(4, &device)).dims())
    });
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let message = results[0].as_ref().unwrap_err();
    assert!(message.contains("replicas [1] did not arrive"), "{message}");
    assert!(message.contains("site 0x0"), "{message}");
    assert_eq!(results[1], Ok(None));
}

#[test]
fn evaluation_does_not_synchronize_even_without_running_statistics() {
    // PyTorch's SyncBatchNorm synchronizes only in training: one replica evaluates alone while
    // its peer is elsewhere, and without running statistics it uses its own batch, as
    // BatchNorm does.
    let group = ReplicaGroup::with_patience(2, Duration::from_secs(60));
    let device = Device::flex();
    let config = BatchNormConfig::new_1d(C).with_track_running_stats(false);
    let sync = SyncBatchNorm::new(config.init(&device), group.member(0));
    let started = Instant::now();
    let y = sync.forward(batch(4, &device));
    assert!(started.elapsed() < Duration::from_secs(1));
    let alone = config.init(&device).forward(batch(4, &device));
    assert_eq!(y.into_data(), alone.into_data());
}
