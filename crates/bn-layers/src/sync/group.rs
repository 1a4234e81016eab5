//! A group of replicas in one process (threads) that sum small vectors across its members.
//!
//! Every member calls [`Replica::all_reduce_sum`] with its vector; each call returns once all
//! members have called, with the element-wise sum over members, added in rank order (so every
//! member gets the same bits, run after run). Only these vectors cross replicas: per-channel
//! statistics and their gradients, never activations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long a member waits for the others before giving up with a panic naming the site:
/// a replica that died or took another branch would otherwise hang the rest forever.
const PATIENCE: Duration = Duration::from_secs(600);

/// The members of one synchronization group. Create it once with the number of replicas and
/// hand [`member`](Self::member)`(rank)` to the replica of each rank.
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
}

/// The reduction in progress: who has contributed what, and the last finished result.
#[derive(Debug, Default)]
struct Round {
    /// Counts finished reductions; a member waits for it to move past the one it joined.
    generation: u64,
    site: Option<u64>,
    contributions: Vec<Option<Vec<f64>>>,
    result: Arc<Vec<f64>>,
}

impl ReplicaGroup {
    /// A group of `size` replicas.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn new(size: usize) -> Self {
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
    /// If the members reduce different sites or lengths, or the others do not arrive within
    /// ten minutes.
    pub fn all_reduce_sum(&self, site: u64, values: Vec<f64>) -> Vec<f64> {
        let shared = &*self.shared;
        if shared.size == 1 {
            return values;
        }
        // A member can only leave a round once it is complete, so its slot is free here.
        let mut round = self.lock();
        match round.site {
            None => round.site = Some(site),
            Some(current) => assert_eq!(
                current, site,
                "replica {} reduces site {site:#x} while others reduce {current:#x}: the \
                 replicas' forward or backward passes are out of step",
                self.rank
            ),
        }
        round.contributions[self.rank] = Some(values);
        let joined = round.generation;
        if round.contributions.iter().all(Option::is_some) {
            let mut parts = round.contributions.iter_mut().map(|c| c.take().unwrap());
            let mut sum = parts.next().unwrap();
            for part in parts {
                assert_eq!(
                    part.len(),
                    sum.len(),
                    "replicas reduce vectors of different lengths at site {site:#x}"
                );
                sum.iter_mut().zip(part).for_each(|(s, p)| *s += p);
            }
            round.result = Arc::new(sum);
            round.site = None;
            round.generation += 1;
            shared.done.notify_all();
        }
        while round.generation == joined {
            round = self.wait(round, site);
        }
        round.result.as_ref().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        self.shared
            .round
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait<'a>(&self, round: MutexGuard<'a, Round>, site: u64) -> MutexGuard<'a, Round> {
        let (round, timeout) = self
            .shared
            .done
            .wait_timeout(round, PATIENCE)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(
            !timeout.timed_out(),
            "replica {} waited {} s at site {site:#x} for the other replicas",
            self.rank,
            PATIENCE.as_secs()
        );
        round
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
