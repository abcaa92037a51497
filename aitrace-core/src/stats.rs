//! Delivery counters a service can read at any time to monitor itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a logger has done since it was built. Read with
/// [`BufferedLogger::stats`](crate::BufferedLogger::stats).
///
/// With one output, once everything captured has been flushed and any spool
/// replayed, `captured == delivered + dropped` exactly. While an outage lasts,
/// the difference is in `buffered`, in flight, or spooled and not yet
/// replayed (`spool_pending`). Output counters are summed over all outputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Records accepted for capture (after level filtering).
    pub captured: u64,
    /// Records dropped: on buffer overflow, refused for good by an output,
    /// evicted from a full spool, or lost at a shutdown that timed out.
    pub dropped: u64,
    /// Of `dropped`, those dropped because the buffer was full.
    pub dropped_overflow: u64,
    /// Records an output acknowledged (replayed ones included).
    pub delivered: u64,
    /// Send attempts repeated after a transient failure.
    pub retried: u64,
    /// Records written to a spool folder.
    pub spooled: u64,
    /// Records delivered from a spool folder.
    pub replayed: u64,
    /// Records in spool files waiting to be replayed.
    pub spool_pending: u64,
    /// Batches an output failed to deliver (after retries).
    pub failed_flushes: u64,
    /// Records in the buffer now.
    pub buffered: u64,
    /// The same counters, per output.
    pub outputs: Vec<OutputStats>,
}

/// Delivery counters of one output; see [`Stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputStats {
    /// The output, as its `Display` shows it.
    pub output: String,
    /// Records acknowledged.
    pub delivered: u64,
    /// Records given up on.
    pub dropped: u64,
    /// Repeated send attempts.
    pub retried: u64,
    /// Records written to the spool.
    pub spooled: u64,
    /// Records delivered from the spool.
    pub replayed: u64,
    /// Records in spool files waiting to be replayed.
    pub spool_pending: u64,
    /// Batches that failed after retries.
    pub failed_flushes: u64,
    /// Whether the circuit breaker is open (the output is not being called).
    pub breaker_open: bool,
}

/// Live counters of one output, written only by the thread delivering to it.
#[derive(Debug, Default)]
pub(crate) struct OutputCounters {
    pub(crate) delivered: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) spool_pending: AtomicU64,
    pub(crate) failed_flushes: AtomicU64,
    pub(crate) breaker_open: AtomicBool,
}

impl OutputCounters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, output: String) -> OutputStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OutputStats {
            output,
            delivered: get(&self.delivered),
            dropped: get(&self.dropped),
            retried: get(&self.retried),
            spooled: get(&self.spooled),
            replayed: get(&self.replayed),
            spool_pending: get(&self.spool_pending),
            failed_flushes: get(&self.failed_flushes),
            breaker_open: self.breaker_open.load(Ordering::Relaxed),
        }
    }
}

impl Stats {
    pub(crate) fn new(
        captured: u64,
        dropped_overflow: u64,
        buffered: u64,
        outputs: Vec<OutputStats>,
    ) -> Self {
        let sum = |f: fn(&OutputStats) -> u64| outputs.iter().map(f).sum::<u64>();
        Stats {
            captured,
            dropped: dropped_overflow + sum(|o| o.dropped),
            dropped_overflow,
            delivered: sum(|o| o.delivered),
            retried: sum(|o| o.retried),
            spooled: sum(|o| o.spooled),
            replayed: sum(|o| o.replayed),
            spool_pending: sum(|o| o.spool_pending),
            failed_flushes: sum(|o| o.failed_flushes),
            buffered,
            outputs,
        }
    }
}
