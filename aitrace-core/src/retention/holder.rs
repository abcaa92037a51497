//! The records held per trace, and the decisions about them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::{Decision, Kept, RETENTION_FIELD, Resolved};
use crate::ids::{SpanId, TraceId};
use crate::record::{Record, RecordKind};
use crate::stats::RetentionCounts as Counts;
use crate::wire::{DURATION_FIELD, ERROR_FIELD};

/// Traces are spread over this many locks, by trace id.
const SHARDS: usize = 16;
/// How often, at most, held traces are checked for their maximum hold.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// One trace being held.
struct Trace {
    /// The span whose end decides: the first span of the trace seen here.
    root: SpanId,
    /// When its first span started (the record's timestamp, nanoseconds
    /// since the epoch): the clock retention reads is the records'.
    started: u64,
    records: Vec<Record>,
    bytes: usize,
    failed: bool,
    /// The `sampled` flag of a remote parent, when the trace came with one.
    upstream: Option<bool>,
    /// Set when the trace was decided before its root ended (its maximum
    /// hold, an eviction): what later records of it follow.
    decided: Option<bool>,
}

/// Retention's state: the held traces, their memory, and the counters.
pub(crate) struct Holder {
    settings: Resolved,
    shards: Box<[Mutex<HashMap<TraceId, Trace>>]>,
    held_bytes: AtomicUsize,
    held: AtomicU64,
    shipped: AtomicU64,
    sampled_out: AtomicU64,
    evicted: AtomicU64,
    evicted_dropped: AtomicU64,
    /// The record timestamp (nanoseconds since the epoch) of the last
    /// maximum-hold sweep.
    last_sweep: AtomicU64,
}

impl Holder {
    pub(crate) fn new(settings: Resolved) -> Self {
        crate::propagation::set_head_keep_below(settings.keep_below);
        Holder {
            settings,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            held_bytes: AtomicUsize::new(0),
            held: AtomicU64::new(0),
            shipped: AtomicU64::new(0),
            sampled_out: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            evicted_dropped: AtomicU64::new(0),
            last_sweep: AtomicU64::new(0),
        }
    }

    fn shard(&self, trace: TraceId) -> &Mutex<HashMap<TraceId, Trace>> {
        // Trace ids are random: their low bits spread well.
        &self.shards[(trace.to_bytes()[15] as usize) % SHARDS]
    }

    /// Takes `record` (to hold, or to count as discarded: `None`) or gives
    /// it back to go on as it would without retention (`Some`); records
    /// released by a decision (this record's trace, a trace past its
    /// maximum hold, an evicted one) go to `ship` first, in order.
    pub(crate) fn offer(&self, mut record: Record, ship: &mut dyn FnMut(Record)) -> Option<Record> {
        let now = record.timestamp_nanos();
        self.sweep_if_due(now, ship);
        let Some(context) = record.span_context().copied() else {
            return Some(record);
        };
        let trace_id = context.trace_id();
        let kind = record.kind();
        let below = record.level() < self.settings.ship_level;
        // The common case, decided without a lock: an event that ships and
        // says nothing about its trace's outcome.
        if !below && kind == RecordKind::Event && record.level() < crate::level::Level::Error {
            return Some(record);
        }
        let mut traces = self.shard(trace_id).lock();
        let trace = match traces.get_mut(&trace_id) {
            Some(trace) => trace,
            // Only a trace whose first span opened here is held: its root
            // is that span.
            None if kind == RecordKind::SpanStart => {
                traces.entry(trace_id).or_insert_with(|| Trace {
                    root: context.span_id(),
                    started: now,
                    records: Vec::new(),
                    bytes: 0,
                    failed: false,
                    upstream: crate::propagation::upstream_sampled(trace_id),
                    decided: None,
                })
            }
            None => return Some(record),
        };
        if record.level() >= crate::level::Level::Error
            || (kind == RecordKind::SpanEnd && record.field(ERROR_FIELD).is_some())
        {
            trace.failed = true;
        }
        let is_root_end = kind == RecordKind::SpanEnd && context.span_id() == trace.root;
        if is_root_end {
            let trace = traces.remove(&trace_id).expect("found above");
            drop(traces);
            if let Some(keep) = trace.decided {
                if below && !keep {
                    self.sampled_out.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                return Some(record);
            }
            let duration = record
                .field(DURATION_FIELD)
                .and_then(|v| match v {
                    crate::value::Value::F64(ms) => Some(*ms),
                    crate::value::Value::I64(ms) => Some(*ms as f64),
                    crate::value::Value::U64(ms) => Some(*ms as f64),
                    _ => None,
                })
                .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
                .unwrap_or_else(|| Duration::from_nanos(now.saturating_sub(trace.started)));
            let kept = self.decide(trace_id, &trace, duration);
            let held = self.release_books(&trace);
            match kept {
                Some(kept) => {
                    self.shipped.fetch_add(held, Ordering::Relaxed);
                    for held in trace.records {
                        ship(held);
                    }
                    record.set_field(RETENTION_FIELD, kept.as_str());
                    Some(record)
                }
                None => {
                    let discarded = held + u64::from(below);
                    self.sampled_out.fetch_add(discarded, Ordering::Relaxed);
                    if below { None } else { Some(record) }
                }
            }
        } else if !below {
            Some(record)
        } else if let Some(keep) = trace.decided {
            drop(traces);
            if keep {
                Some(record)
            } else {
                self.sampled_out.fetch_add(1, Ordering::Relaxed);
                None
            }
        } else {
            let size = record.memory_size();
            trace.records.push(record);
            trace.bytes += size;
            // Counted under the trace's lock, so that its end (which takes
            // them off) never sees them uncounted.
            self.held.fetch_add(1, Ordering::Relaxed);
            let total = self.held_bytes.fetch_add(size, Ordering::Relaxed) + size;
            drop(traces);
            if total > self.settings.max_bytes {
                self.evict(ship);
            }
            None
        }
    }

    /// Why a trace is kept whole, if it is.
    fn decide(&self, trace_id: TraceId, trace: &Trace, duration: Duration) -> Option<Kept> {
        if trace.failed {
            return Some(Kept::Failed);
        }
        if self.settings.latency.is_some_and(|at| duration >= at) {
            return Some(Kept::Slow);
        }
        let sampled = trace
            .upstream
            .unwrap_or_else(|| crate::propagation::in_ratio(trace_id, self.settings.keep_below));
        sampled.then_some(Kept::Sampled)
    }

    /// Takes a trace's records off the books of what is held; returns how
    /// many there were.
    fn release_books(&self, trace: &Trace) -> u64 {
        let n = trace.records.len() as u64;
        self.held.fetch_sub(n, Ordering::Relaxed);
        self.held_bytes.fetch_sub(trace.bytes, Ordering::Relaxed);
        n
    }

    /// Decides the oldest held traces, as `on_evict` says, until the held
    /// records fit their bound again.
    fn evict(&self, ship: &mut dyn FnMut(Record)) {
        while self.held_bytes.load(Ordering::Relaxed) > self.settings.max_bytes {
            let oldest = (self.shards.iter().enumerate())
                .filter_map(|(i, shard)| {
                    let traces = shard.lock();
                    traces
                        .iter()
                        .filter(|(_, t)| !t.records.is_empty())
                        .min_by_key(|(_, t)| t.started)
                        .map(|(id, t)| (t.started, i, *id))
                })
                .min_by_key(|(started, ..)| *started);
            let Some((_, shard, trace_id)) = oldest else {
                return;
            };
            let records = {
                let mut traces = self.shards[shard].lock();
                let Some(trace) = traces.get_mut(&trace_id) else {
                    continue;
                };
                let keep = self.settings.on_evict == Decision::Ship;
                trace.decided = Some(keep);
                let records = std::mem::take(&mut trace.records);
                let bytes = std::mem::take(&mut trace.bytes);
                self.held.fetch_sub(records.len() as u64, Ordering::Relaxed);
                self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
                records
            };
            let n = records.len() as u64;
            self.evicted.fetch_add(n, Ordering::Relaxed);
            if self.settings.on_evict == Decision::Ship {
                self.shipped.fetch_add(n, Ordering::Relaxed);
                records.into_iter().for_each(&mut *ship);
            } else {
                self.evicted_dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Decides the traces held longer than the maximum hold, at most once
    /// every [`SWEEP_EVERY`].
    fn sweep_if_due(&self, now: u64, ship: &mut dyn FnMut(Record)) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SWEEP_EVERY.as_nanos() as u64
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.sweep(now, ship);
    }

    /// Decides every trace held longer than the maximum hold, as if its
    /// root ended now; later records of it follow that decision.
    fn sweep(&self, now: u64, ship: &mut dyn FnMut(Record)) {
        for shard in self.shards.iter() {
            let mut released = Vec::new();
            {
                let mut traces = shard.lock();
                for (id, trace) in traces.iter_mut() {
                    let held_for = Duration::from_nanos(now.saturating_sub(trace.started));
                    if trace.decided.is_some() || held_for < self.settings.max_hold {
                        continue;
                    }
                    let kept = self.decide(*id, trace, held_for);
                    trace.decided = Some(kept.is_some());
                    let records = std::mem::take(&mut trace.records);
                    let bytes = std::mem::take(&mut trace.bytes);
                    self.held.fetch_sub(records.len() as u64, Ordering::Relaxed);
                    self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
                    if kept.is_some() {
                        self.shipped
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                        released.extend(records);
                    } else {
                        self.sampled_out
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                    }
                }
            }
            released.into_iter().for_each(&mut *ship);
        }
    }

    /// At shutdown: every trace still held is decided as `at_shutdown`
    /// says, and forgotten.
    pub(crate) fn drain(&self, ship: &mut dyn FnMut(Record)) {
        for shard in self.shards.iter() {
            let traces = std::mem::take(&mut *shard.lock());
            for trace in traces.into_values() {
                let n = self.release_books(&trace);
                if self.settings.at_shutdown == Decision::Ship {
                    self.shipped.fetch_add(n, Ordering::Relaxed);
                    trace.records.into_iter().for_each(&mut *ship);
                } else {
                    self.sampled_out.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            held: self.held.load(Ordering::Relaxed),
            held_bytes: self.held_bytes.load(Ordering::Relaxed) as u64,
            shipped: self.shipped.load(Ordering::Relaxed),
            sampled_out: self.sampled_out.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            evicted_dropped: self.evicted_dropped.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holder")
            .field("settings", &self.settings)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}
