//! How a kernel's work is split across threads: into a few shares per thread, taken in turn
//! by the calling thread and by rayon's workers (OpenMP's dynamic schedule).
//!
//! A parallel iterator called from outside rayon's pool (a user's `main`) hands all its work
//! to the pool and puts the caller to sleep until the pool is done: each kernel then pays for
//! waking the workers and for waking the caller again, which at the tens of microseconds a
//! small evaluation takes is a good part of its time. Here the caller works too, and a share
//! goes to whichever thread is free first, so a thread the machine preempts holds no one up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::MIN_TASK;

/// Shares per thread: enough for a thread that falls behind to be made up by the others.
const SHARES_PER_THREAD: usize = 4;

/// One share's values of a kernel's input `x` and of `dy`, and its part of the output.
pub(crate) type Part<'a, E> = (&'a [E], Option<&'a [E]>, &'a mut [E]);

/// A split of `units` equal units of work (runs or rows of `unit` values) into contiguous
/// shares of `per_share` units, the last one shorter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shares {
    unit: usize,
    per_share: usize,
}

impl Shares {
    /// A few shares per rayon thread, each of at least [`MIN_TASK`] values (below that a
    /// second thread costs more than it saves).
    pub(crate) fn new(units: usize, unit: usize) -> Self {
        Self::for_threads(units, unit, rayon::current_num_threads())
    }

    fn for_threads(units: usize, unit: usize, threads: usize) -> Self {
        let min_units = (MIN_TASK / unit.max(1)).max(1);
        let shares = (threads * SHARES_PER_THREAD).max(1);
        Self {
            unit,
            per_share: units.div_ceil(shares).max(min_units),
        }
    }

    /// Values per share.
    pub(crate) fn len(self) -> usize {
        (self.unit * self.per_share).max(1)
    }

    /// The index of share `share`'s first unit.
    pub(crate) fn first_unit(self, share: usize) -> usize {
        share * self.per_share
    }

    /// `out` cut into shares, each with the same values of `x` and of `dy` (both as long as
    /// `out`).
    pub(crate) fn split<'a, E>(
        self,
        out: &'a mut [E],
        x: &'a [E],
        dy: Option<&'a [E]>,
    ) -> Vec<Part<'a, E>> {
        let len = self.len();
        (out.chunks_mut(len).enumerate())
            .map(|(i, out)| {
                let values = i * len..i * len + out.len();
                (&x[values.clone()], dy.map(|dy| &dy[values]), out)
            })
            .collect()
    }
}

/// Runs `work(i, share)` on every share and returns the results in order. The calling thread
/// and up to one rayon worker per further thread take the shares in turn.
pub(crate) fn on_threads<W: Send, R: Send>(
    shares: Vec<W>,
    work: impl Fn(usize, W) -> R + Sync,
) -> Vec<R> {
    let count = shares.len();
    let shares: Vec<Mutex<Option<W>>> = shares.into_iter().map(|w| Mutex::new(Some(w))).collect();
    let results: Vec<Mutex<Option<R>>> = shares.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let take_shares = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(share) = shares.get(i) else { break };
            let share = share.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(share) = share {
                let result = work(i, share);
                *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            }
        }
    };
    let helpers = rayon::current_num_threads().min(count).saturating_sub(1);
    rayon::in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| take_shares());
        }
        take_shares();
    });
    // The scope returns once every share has run (a panic in one is resumed here).
    (results.into_iter())
        .filter_map(|r| r.into_inner().unwrap_or_else(PoisonError::into_inner))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_a_few_per_thread_but_never_below_the_minimum_task() {
        // 2,003 runs of 300 values on 2 threads: 8 shares of 251 runs (≥ 218, the minimum),
        // the last one shorter.
        let shares = Shares::for_threads(2003, 300, 2);
        assert_eq!((shares.len(), shares.first_unit(1)), (251 * 300, 251));
        // 10 runs of 300 values: one share of at least MIN_TASK / 300 = 218 runs.
        assert_eq!(Shares::for_threads(10, 300, 2).first_unit(1), 218);
        // An empty input still gets a chunk length `chunks` accepts.
        assert_eq!(Shares::for_threads(0, 0, 2).len(), 1);
    }

    #[test]
    fn every_share_runs_once_and_results_keep_their_order() {
        let results = on_threads((0..7).collect(), |i, v: usize| {
            assert_eq!(i, v);
            v * 10
        });
        assert_eq!(results, [0, 10, 20, 30, 40, 50, 60]);
        assert!(on_threads(Vec::<usize>::new(), |_, v| v).is_empty());
    }
}
