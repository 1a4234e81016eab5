//! A group of replicas in one process (threads) that sum small vectors across its members.
//!
//! Every member calls [`Replica::all_reduce_sum`] with its vector; each call returns once all
//! members have called, with the element-wise sum over members, added in rank order (so every
//! member gets the same bits, run after run). Only these vectors cross replicas: per-channel
//! statistics and their gradients, never activations. A group fails fast ([`ReplicaGroup`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a member waits for the others by default ([`ReplicaGroup::with_patience`]).
const PATIENCE: Duration = Duration::from_secs(600);

/// The members of one synchronization group. Create it once with the number of replicas and
/// hand [`member`](Self::member)`(rank)` to the replica of each rank.
///
/// A group fails fast. A member that panics (its thread unwinding drops its handles), that
/// fails before a reduction ([`Replica::fail`]), that reduces another site or length than its
/// peers, or that waits longer than the group's patience marks the group failed, and every
/// member waiting or arriving later panics at once with the first failure's reason. A failed
/// group stays failed: build a new one to start again.
#[derive(Debug, Clone)]
pub struct ReplicaGroup {
    shared: Arc<Shared>,
}

/// One member of a [`ReplicaGroup`]: what a replica's [`SyncBatchNorm`](super::SyncBatchNorm)
/// layers synchronize through.
#[derive(Debug, Clone)]
pub struct Replica {
    shared: Arc<Shared>,
    rank: usize,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    round: Mutex<Round>,
    done: Condvar,
    /// Per rank, the next reduction site [`Replica::next_site`] hands out.
    next_sites: Vec<AtomicU64>,
    /// How long a member waits for the others before the group fails.
    patience: Duration,
}

/// The reduction in progress: who has contributed what, and the last finished result.
#[derive(Debug, Default)]
struct Round {
    /// Counts finished reductions; a member waits for it to move past the one it joined.
    generation: u64,
    site: Option<u64>,
    contributions: Vec<Option<Vec<f64>>>,
    result: Arc<Vec<f64>>,
    /// Why the group failed, once it has: every later reduction panics with it.
    failure: Option<String>,
}

impl ReplicaGroup {
    /// A group of `size` replicas whose members wait up to ten minutes for each other.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn new(size: usize) -> Self {
        Self::with_patience(size, PATIENCE)
    }

    /// A group of `size` replicas whose members wait up to `patience` for each other; a
    /// member that waits longer fails the group, naming the reduction site and the replicas
    /// that did not arrive.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn with_patience(size: usize, patience: Duration) -> Self {
        assert!(size > 0, "a replica group needs at least one member");
        Self {
            shared: Arc::new(Shared {
                size,
                round: Mutex::new(Round {
                    contributions: vec![None; size],
                    ..Round::default()
                }),
                done: Condvar::new(),
                next_sites: (0..size).map(|_| AtomicU64::new(0)).collect(),
                patience,
            }),
        }
    }

    /// The number of replicas.
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// The member of rank `rank`.
    ///
    /// # Panics
    /// If `rank >= size`.
    pub fn member(&self, rank: usize) -> Replica {
        assert!(
            rank < self.shared.size,
            "rank {rank} outside a group of {}",
            self.shared.size
        );
        Replica {
            shared: self.shared.clone(),
            rank,
        }
    }

    /// Every member, ranks `0..size`.
    pub fn members(&self) -> Vec<Replica> {
        (0..self.size()).map(|rank| self.member(rank)).collect()
    }
}

impl Replica {
    /// This member's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of replicas in the group.
    pub fn world_size(&self) -> usize {
        self.shared.size
    }

    /// A fresh reduction site for one synchronized layer of this member: 0, 1, 2, … in the
    /// order the member's layers are built. Every replica builds the same model, so its `k`-th
    /// layer gets the same site on every rank; a replica that builds one layer more or fewer
    /// than the others is out of step, and its first reduction says so.
    pub fn next_site(&self) -> u64 {
        self.shared.next_sites[self.rank].fetch_add(1, Ordering::Relaxed)
    }

    /// Waits until every member has contributed a vector for `site` and returns their
    /// element-wise sum (added in rank order). `site` names the reduction (a layer and a
    /// phase); members that disagree on it are out of step, which is a bug in the caller.
    ///
    /// # Panics
    /// If the group has failed or fails while this member waits (see [`ReplicaGroup`]): a
    /// peer panicked or failed, the members reduce different sites or lengths, or a member
    /// waited longer than the group's patience.
    pub fn all_reduce_sum(&self, site: u64, values: Vec<f64>) -> Vec<f64> {
        let shared = &*self.shared;
        if shared.size == 1 {
            return values;
        }
        // A member can only leave a round once it is complete, so its slot is free here.
        let mut round = self.lock();
        self.check(&round, site);
        let out_of_step = match (round.site, round.contributions.iter().flatten().next()) {
            (Some(current), _) if current != site => Some(format!(
                "replica {} reduces site {site:#x} while others reduce {current:#x}: the \
                 replicas' forward or backward passes are out of step",
                self.rank
            )),
            (_, Some(other)) if other.len() != values.len() => Some(format!(
                "replica {} reduces {} values at site {site:#x}, others {}",
                self.rank,
                values.len(),
                other.len()
            )),
            _ => None,
        };
        if let Some(reason) = out_of_step {
            self.fail_round(&mut round, reason);
            self.check(&round, site);
        }
        round.site = Some(site);
        round.contributions[self.rank] = Some(values);
        let joined = round.generation;
        if round.contributions.iter().all(Option::is_some) {
            let mut parts = round.contributions.iter_mut().map(|c| c.take().unwrap());
            let mut sum = parts.next().unwrap();
            for part in parts {
                sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
            }
            round.result = Arc::new(sum);
            round.site = None;
            round.generation += 1;
            shared.done.notify_all();
        }
        let started = Instant::now();
        while round.generation == joined {
            let waited = started.elapsed();
            if waited >= shared.patience {
                let missing: Vec<usize> = (0..shared.size)
                    .filter(|&rank| round.contributions[rank].is_none())
                    .collect();
                let reason = format!(
                    "replica {} waited {:.1} s at site {site:#x}; replicas {missing:?} did not \
                     arrive",
                    self.rank,
                    waited.as_secs_f64()
                );
                self.fail_round(&mut round, reason);
            }
            self.check(&round, site);
            round = self.wait(round, shared.patience - waited.min(shared.patience));
        }
        round.result.as_ref().clone()
    }

    /// Fails the group: every member waiting or arriving later panics with `reason`. For a
    /// replica that cannot reach its next reduction (its forward failed), so that its peers
    /// do not wait for it.
    pub fn fail(&self, reason: &str) {
        let mut round = self.lock();
        self.fail_round(
            &mut round,
            format!("replica {} failed: {reason}", self.rank),
        );
    }

    /// The reason the group failed, if it has.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    fn fail_round(&self, round: &mut Round, reason: String) {
        round.failure.get_or_insert(reason);
        self.shared.done.notify_all();
    }

    /// Panics if the group has failed.
    fn check(&self, round: &Round, site: u64) {
        if let Some(failure) = &round.failure {
            panic!(
                "replica {} cannot reduce site {site:#x}: the replica group failed: {failure}",
                self.rank
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        self.shared
            .round
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait<'a>(&self, round: MutexGuard<'a, Round>, limit: Duration) -> MutexGuard<'a, Round> {
        self.shared
            .done
            .wait_timeout(round, limit)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0
    }
}

/// A replica's thread that panics drops its handles while unwinding: the group fails, so its
/// peers stop waiting for it.
impl Drop for Replica {
    fn drop(&mut self) {
        if std::thread::panicking() && self.shared.size > 1 {
            let mut round = self.lock();
            let reason = format!("replica {} panicked", self.rank);
            self.fail_round(&mut round, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_gets_the_sum_in_every_round() {
        let group = ReplicaGroup::new(3);
        let results: Vec<Vec<Vec<f64>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .members()
                .into_iter()
                .map(|member| {
                    scope.spawn(move || {
                        (0..50)
                            .map(|round| {
                                let r = member.rank() as f64;
                                member.all_reduce_sum(7, vec![r, round as f64, 1.0])
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for member in &results {
            for (round, sum) in member.iter().enumerate() {
                assert_eq!(sum, &[3.0, 3.0 * round as f64, 3.0]);
            }
        }
    }

    #[test]
    fn each_member_numbers_its_layers_from_zero() {
        let group = ReplicaGroup::new(2);
        let (first, second) = (group.member(0), group.member(1));
        assert_eq!([first.next_site(), first.next_site()], [0, 1]);
        // A clone is the same member; the other rank counts on its own.
        assert_eq!(first.clone().next_site(), 2);
        assert_eq!(second.next_site(), 0);
    }

    #[test]
    fn a_group_of_one_returns_its_own_values() {
        let member = ReplicaGroup::new(1).member(0);
        assert_eq!(member.all_reduce_sum(1, vec![2.5]), [2.5]);
    }
}
