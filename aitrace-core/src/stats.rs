//! Delivery counters a service can read at any time to monitor itself.

/// What a logger has done since it was built. Read with
/// [`BufferedLogger::stats`](crate::BufferedLogger::stats).
///
/// Every record is accounted for at every instant, per output (a snapshot is
/// taken under the lock the delivery thread moves records under):
///
/// ```text
/// captured + recovered == delivered + dropped + discarded
///                         + buffered + in_flight + spool_pending
///                         + held + sampled_out
/// ```
///
/// where `recovered` is what an earlier process left in the spool,
/// `dropped` includes the buffer's overflow drops (and held records evicted
/// and discarded), and `held` and `sampled_out` are
/// [retention](crate::retention)'s (0 without it). With one output the
/// top-level counters satisfy it; with several, each [`OutputStats`] does
/// ([`Stats::is_balanced`] checks every one). Output counters are summed over
/// all outputs at the top level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Records accepted for capture (after level filtering), the buffer's own
    /// `aitrace.dropped` reports included.
    pub captured: u64,
    /// Records dropped: on buffer overflow, refused for good by an output,
    /// evicted from a full spool, damaged on disk, or lost at a shutdown with
    /// no spool.
    pub dropped: u64,
    /// Of `dropped`, those dropped because the buffer was full.
    pub dropped_overflow: u64,
    /// Records thrown away on purpose by [`BufferedLogger::clear`](crate::BufferedLogger::clear)
    /// (and `trace_context`, which clears first).
    pub discarded: u64,
    /// Records a [`before_send`](crate::Builder::before_send) hook dropped,
    /// or panicked on. They were never captured, so they are outside the
    /// balance, like records below the level filter.
    pub before_send_dropped: u64,
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
    /// Records found in the spool folder at start, left by an earlier process.
    pub recovered: u64,
    /// Spool files found damaged and moved to `corrupt/`.
    pub corrupt_files: u64,
    /// Records taken from the buffer and not yet delivered, spooled or dropped.
    pub in_flight: u64,
    /// Batches an output failed to deliver (after retries).
    pub failed_flushes: u64,
    /// Of `dropped`, records the receiver refused: whole batches refused for
    /// good (a 4xx other than 408 and 429, an OTLP non-retryable status),
    /// and records of an accepted request it refused itself (an OTLP
    /// `partialSuccess`).
    pub rejected: u64,
    /// Records in the buffer now.
    pub buffered: u64,
    /// Records held now by [retention by outcome](crate::retention), waiting
    /// for their trace's decision (0 without retention).
    pub held: u64,
    /// The memory the held records take, in bytes (`Record::memory_size`).
    pub held_bytes: u64,
    /// Held records that shipped: their trace failed, was slow or is
    /// sampled (or was decided so at eviction or shutdown).
    pub shipped_on_outcome: u64,
    /// Held records discarded because their trace ended well and is not
    /// sampled: a decision the user configured, not a loss (outside
    /// `dropped`).
    pub sampled_out: u64,
    /// Held records decided early because the held records reached their
    /// memory bound (shipped or discarded, as `Retention::on_evict` says).
    pub evicted: u64,
    /// Of `dropped`, evicted held records that were discarded.
    pub dropped_evicted: u64,
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
    /// Records given up on (not counting the buffer's overflow drops).
    pub dropped: u64,
    /// Repeated send attempts.
    pub retried: u64,
    /// Records written to the spool.
    pub spooled: u64,
    /// Records delivered from the spool.
    pub replayed: u64,
    /// Records in spool files waiting to be replayed.
    pub spool_pending: u64,
    /// Records found in the spool at start, left by an earlier process.
    pub recovered: u64,
    /// Spool files found damaged and moved to `corrupt/`.
    pub corrupt_files: u64,
    /// Records on their way to this output: queued, being sent, waiting for
    /// a retry, or kept for the next flush after a failure.
    pub in_flight: u64,
    /// Batches that failed after retries.
    pub failed_flushes: u64,
    /// Of `dropped`, records the receiver refused: whole batches refused for
    /// good, and records of an accepted request (an OTLP `partialSuccess`).
    pub rejected: u64,
    /// What the receiver said the last time it refused records.
    pub last_rejection: Option<String>,
    /// Whether the circuit breaker is open (the output is not being called).
    pub breaker_open: bool,
}

/// The books of every output, changed only under one lock, by the thread
/// that moves records (the delivery thread, or a flush on the calling
/// thread), so a snapshot is consistent.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    outputs: parking_lot::Mutex<Vec<OutputStats>>,
}

impl Ledger {
    pub(crate) fn new(names: impl IntoIterator<Item = String>) -> Self {
        Ledger {
            outputs: parking_lot::Mutex::new(
                names
                    .into_iter()
                    .map(|output| OutputStats {
                        output,
                        ..OutputStats::default()
                    })
                    .collect(),
            ),
        }
    }

    /// Holds the books for one step; whatever moves records between the
    /// buffer and the books does it while holding this.
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, Vec<OutputStats>> {
        self.outputs.lock()
    }
}

impl OutputStats {
    /// Records moved from in flight to delivered.
    pub(crate) fn deliver(&mut self, n: u64, replayed: bool) {
        if replayed {
            self.spool_pending -= n.min(self.spool_pending);
            self.replayed += n;
        } else {
            self.in_flight -= n.min(self.in_flight);
        }
        self.delivered += n;
    }

    /// An acknowledgement of `n` records of which the server refused
    /// `rejected` (counted as dropped), with what it said.
    pub(crate) fn acknowledge(
        &mut self,
        n: u64,
        rejected: u64,
        replayed: bool,
        rejection: Option<&str>,
    ) {
        let rejected = rejected.min(n);
        self.deliver(n - rejected, replayed);
        if rejected > 0 {
            if replayed {
                self.drop_spooled(rejected);
            } else {
                self.drop_in_flight(rejected);
            }
            self.rejected += rejected;
        }
        if let Some(message) = rejection {
            self.last_rejection = Some(message.to_owned());
        }
    }

    /// Records the receiver refused for good (a whole batch), with what it
    /// said: dropped, and counted as rejected.
    pub(crate) fn refuse(&mut self, n: u64, replayed: bool, why: &str) {
        if replayed {
            self.drop_spooled(n);
        } else {
            self.drop_in_flight(n);
        }
        self.rejected += n;
        self.last_rejection = Some(why.to_owned());
    }

    /// Records moved from in flight to dropped.
    pub(crate) fn drop_in_flight(&mut self, n: u64) {
        self.in_flight -= n.min(self.in_flight);
        self.dropped += n;
    }

    /// Records moved from in flight to the spool.
    pub(crate) fn spool(&mut self, n: u64) {
        self.in_flight -= n.min(self.in_flight);
        self.spooled += n;
        self.spool_pending += n;
    }

    /// Records that left the spool without being delivered.
    pub(crate) fn drop_spooled(&mut self, n: u64) {
        self.spool_pending -= n.min(self.spool_pending);
        self.dropped += n;
    }

    /// Whether this output accounts for every record (see [`Stats`]).
    fn balanced(&self, top: &Stats) -> bool {
        top.captured + self.recovered
            == self.delivered
                + self.dropped
                + top.dropped_overflow
                + top.dropped_evicted
                + top.discarded
                + top.buffered
                + top.held
                + top.sampled_out
                + self.in_flight
                + self.spool_pending
    }
}

/// The counters every output keeps and [`Stats`] sums over the outputs:
/// the one list of them (`summed_counters_are_the_counters_both_have`
/// checks it against both structs).
macro_rules! summed_counters {
    ($total:ident += $output:ident) => {
        summed_counters!(@add $total, $output;
            delivered, dropped, retried, spooled, replayed, spool_pending,
            recovered, corrupt_files, in_flight, failed_flushes, rejected)
    };
    (@add $total:ident, $output:ident; $($counter:ident),*) => {
        $( $total.$counter += $output.$counter; )*
    };
}

/// Retention's counters (`retention::Holder`), for [`Stats`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RetentionCounts {
    pub(crate) held: u64,
    pub(crate) held_bytes: u64,
    /// Records retention took (held, or discarded at once).
    pub(crate) taken: u64,
    /// Taken records it later gave to the buffer.
    pub(crate) released: u64,
    pub(crate) shipped: u64,
    pub(crate) sampled_out: u64,
    pub(crate) evicted: u64,
    /// Evicted and discarded: counted as dropped.
    pub(crate) evicted_dropped: u64,
}

impl Stats {
    /// The stats of a logger from its buffer's tally, retention's counters
    /// and each output's books.
    pub(crate) fn new(
        captured: u64,
        dropped_overflow: u64,
        discarded: u64,
        before_send_dropped: u64,
        buffered: u64,
        retention: RetentionCounts,
        outputs: Vec<OutputStats>,
    ) -> Self {
        let mut stats = Stats {
            // Every record once, wherever it went: the buffer counts what it
            // was given (released ones too), retention what it took.
            captured: captured + retention.taken - retention.released,
            dropped: dropped_overflow + retention.evicted_dropped,
            dropped_overflow,
            discarded,
            before_send_dropped,
            buffered,
            held: retention.held,
            held_bytes: retention.held_bytes,
            shipped_on_outcome: retention.shipped,
            sampled_out: retention.sampled_out,
            evicted: retention.evicted,
            dropped_evicted: retention.evicted_dropped,
            ..Stats::default()
        };
        for output in &outputs {
            summed_counters!(stats += output);
        }
        stats.outputs = outputs;
        stats
    }

    /// Whether every output accounts for every record captured: delivered,
    /// dropped (and why), discarded, still buffered, in flight or spooled.
    /// Holds at every instant; a `false` is a bug worth reporting.
    pub fn is_balanced(&self) -> bool {
        self.outputs.iter().all(|o| o.balanced(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `name: value` pairs of a struct's `Debug`, nested lists left out.
    fn fields(debug: &str) -> Vec<(String, String)> {
        let inner = &debug[debug.find('{').unwrap() + 1..debug.rfind('}').unwrap()];
        inner
            .split(", ")
            .filter_map(|pair| pair.split_once(": "))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// Every counter both structs have is summed: a counter added to both
    /// but not to `summed_counters!` fails here (the literal below lists
    /// every field, so adding one to `OutputStats` breaks this test's build
    /// until it is set).
    #[test]
    fn summed_counters_are_the_counters_both_have() {
        let output = OutputStats {
            output: "a".into(),
            delivered: 1,
            dropped: 1,
            retried: 1,
            spooled: 1,
            replayed: 1,
            spool_pending: 1,
            recovered: 1,
            corrupt_files: 1,
            in_flight: 1,
            failed_flushes: 1,
            rejected: 1,
            last_rejection: None,
            breaker_open: false,
        };
        let stats = Stats::new(
            0,
            0,
            0,
            0,
            0,
            RetentionCounts::default(),
            vec![output.clone(), output.clone()],
        );
        let per_output: Vec<String> = fields(&format!("{output:?}"))
            .into_iter()
            .filter(|(_, v)| v == "1")
            .map(|(k, _)| k)
            .collect();
        assert_eq!(per_output.len(), 11, "{per_output:?}");
        let top = fields(&format!(
            "{:?}",
            Stats {
                outputs: vec![],
                ..stats
            }
        ));
        for name in &per_output {
            let value = top.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            assert_eq!(value, Some("2"), "{name} is not summed over the outputs");
        }
    }
}
