//! The records held per trace, and the decisions about them.
//!
//! A trace is followed from the first span of it opened in this process.
//! Its *local roots* are its spans whose parent is not a span of this
//! process (none, or a remote parent from a `traceparent`); the trace is
//! decided when the last open local root ends, so that two requests of one
//! trace handled at once are decided together, as one trace. After that,
//! the decision is remembered for a while (a bounded list), so that records
//! the trace's context still produces (a task that outlives the request)
//! follow it. Lifecycle records are never held: the span tree on the wire
//! stays whole.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::{Kept, RETENTION_FIELD, Resolved};
use crate::ids::{SpanId, TraceId};
use crate::level::Level;
use crate::record::{Record, RecordKind, SpanContext};
use crate::stats::RetentionCounts as Counts;
use crate::wire::DURATION_FIELD;

/// Traces are spread over this many locks, by trace id.
const SHARDS: usize = 16;
/// How often, at most, held traces are checked for their maximum hold.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How many decided traces are remembered, per shard, for the records
/// their context produces after their roots ended.
const REMEMBERED: usize = 1024;

/// One trace being followed.
struct Trace {
    /// Its local roots still open.
    roots: Vec<SpanId>,
    /// When its current hold began (a record's timestamp, nanoseconds
    /// since the epoch): the clock retention reads is the records'.
    started: u64,
    records: Vec<Record>,
    bytes: usize,
    failed: bool,
    /// The `sampled` flag of a remote parent, when the trace came with one.
    upstream: Option<bool>,
    /// Its key in the eviction order, while it holds records.
    queued: Option<(u64, TraceId)>,
}

#[derive(Default)]
struct Shard {
    traces: HashMap<TraceId, Trace>,
    /// Decided traces, newest last: whether their records ship.
    decided: HashMap<TraceId, bool>,
    decided_order: VecDeque<TraceId>,
}

impl Shard {
    fn remember(&mut self, trace: TraceId, keep: bool) {
        if self.decided.insert(trace, keep).is_none() {
            self.decided_order.push_back(trace);
            if self.decided_order.len() > REMEMBERED {
                if let Some(old) = self.decided_order.pop_front() {
                    self.decided.remove(&old);
                }
            }
        }
    }
}

/// Retention's state: the held traces, their memory, and the counters.
pub(crate) struct Holder {
    settings: Resolved,
    shards: Box<[Mutex<Shard>]>,
    /// Traces holding records, oldest first: what eviction takes.
    order: Mutex<BTreeSet<(u64, TraceId)>>,
    held_bytes: AtomicUsize,
    held: AtomicU64,
    /// Records the holder took (held, or discarded at once): with
    /// `released`, what makes `Stats::captured` count each record once,
    /// independently of where it went.
    taken: AtomicU64,
    /// Taken records it gave to the buffer later.
    released: AtomicU64,
    shipped: AtomicU64,
    sampled_out: AtomicU64,
    evicted: AtomicU64,
    evicted_dropped: AtomicU64,
    /// The record timestamp of the last maximum-hold sweep.
    last_sweep: AtomicU64,
}

impl Holder {
    pub(crate) fn new(settings: Resolved) -> Self {
        if settings.head_sampling {
            crate::propagation::set_head_keep_below(settings.keep_below);
        }
        Holder {
            settings,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            order: Mutex::default(),
            held_bytes: AtomicUsize::new(0),
            held: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            released: AtomicU64::new(0),
            shipped: AtomicU64::new(0),
            sampled_out: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            evicted_dropped: AtomicU64::new(0),
            last_sweep: AtomicU64::new(0),
        }
    }

    fn shard(&self, trace: TraceId) -> &Mutex<Shard> {
        // Trace ids are random: their low bits spread well.
        &self.shards[(trace.to_bytes()[15] as usize) % SHARDS]
    }

    /// Whether a span is a local root: no parent, or a remote one.
    fn local_root(context: &SpanContext) -> (bool, Option<bool>) {
        match context.parent_span_id() {
            None => (true, None),
            Some(parent) => {
                match crate::propagation::remote_parent_sampled(context.trace_id(), parent) {
                    Some(sampled) => (true, Some(sampled)),
                    None => (false, None),
                }
            }
        }
    }

    /// Takes `record` (to hold, or to count as discarded: `None`) or gives
    /// it back to go on as it would without retention (`Some`); records
    /// released by a decision (this record's trace, a trace past its
    /// maximum hold, an evicted one) go to `ship` first, in order. `ship`
    /// is never called with a lock held.
    pub(crate) fn offer(&self, mut record: Record, ship: &mut dyn FnMut(Record)) -> Option<Record> {
        let now = record.timestamp_nanos();
        self.sweep_if_due(now, ship);
        let Some(context) = record.span_context().copied() else {
            return Some(record); // outside any span: never held
        };
        let kind = record.kind();
        let level = record.level();
        let below = level < self.settings.ship_level && kind == RecordKind::Event;
        // The common case, decided without a lock: an event that ships and
        // says nothing about its trace's outcome.
        if kind == RecordKind::Event && !below && level < Level::Error {
            return Some(record);
        }
        let trace_id = context.trace_id();
        let mut guard = self.shard(trace_id).lock();
        let shard = &mut *guard;
        if !shard.traces.contains_key(&trace_id) {
            // A decided trace: its later records follow the decision, and a
            // span opened in it does not start a new one.
            if let Some(&keep) = shard.decided.get(&trace_id) {
                if below && !keep {
                    self.take_discarded(1);
                    return None;
                }
                return Some(record);
            }
            if kind != RecordKind::SpanStart {
                return Some(record); // not a trace followed here
            }
            shard.traces.insert(
                trace_id,
                Trace {
                    roots: Vec::new(),
                    started: now,
                    records: Vec::new(),
                    bytes: 0,
                    failed: false,
                    upstream: None,
                    queued: None,
                },
            );
        }
        let trace = shard.traces.get_mut(&trace_id).expect("inserted above");
        if level >= Level::Error {
            trace.failed = true;
        }
        match kind {
            RecordKind::SpanStart => {
                let (is_root, upstream) = Self::local_root(&context);
                if is_root {
                    trace.roots.push(context.span_id());
                    trace.upstream = trace.upstream.or(upstream);
                }
                Some(record)
            }
            RecordKind::SpanEnd => {
                let before = trace.roots.len();
                trace.roots.retain(|&root| root != context.span_id());
                if trace.roots.len() == before || !trace.roots.is_empty() {
                    return Some(record); // not the last local root
                }
                let trace = shard.traces.remove(&trace_id).expect("found above");
                let duration = duration_of(&record)
                    .unwrap_or_else(|| Duration::from_nanos(now.saturating_sub(trace.started)));
                let kept = self.decide(trace_id, &trace, duration);
                shard.remember(trace_id, kept.is_some());
                drop(guard);
                self.unqueue(&trace);
                let records = self.unhold(trace);
                match kept {
                    Some(kept) => {
                        self.ship_released(records, ship);
                        record.set_field(RETENTION_FIELD, kept.as_str());
                    }
                    None => self.discard(records.len()),
                }
                Some(record)
            }
            // A kind added to the model later: not held.
            _ if !below => Some(record),
            _ => {
                let size = record.memory_size();
                trace.records.push(record);
                trace.bytes += size;
                // Counted under the trace's lock, so that its end (which
                // takes them off) never sees them uncounted.
                self.taken.fetch_add(1, Ordering::Relaxed);
                self.held.fetch_add(1, Ordering::Relaxed);
                let total = self.held_bytes.fetch_add(size, Ordering::Relaxed) + size;
                if trace.queued.is_none() {
                    let key = (trace.started, trace_id);
                    trace.queued = Some(key);
                    self.order.lock().insert(key);
                }
                drop(guard);
                if total > self.settings.max_bytes {
                    self.evict(ship);
                }
                None
            }
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
        let upstream = trace.upstream.filter(|_| self.settings.parent_based);
        let sampled = upstream
            .unwrap_or_else(|| crate::propagation::in_ratio(trace_id, self.settings.keep_below));
        sampled.then_some(Kept::Sampled)
    }

    /// A trace's held records, taken off the books of what is held.
    fn unhold(&self, trace: Trace) -> Vec<Record> {
        self.held
            .fetch_sub(trace.records.len() as u64, Ordering::Relaxed);
        self.held_bytes.fetch_sub(trace.bytes, Ordering::Relaxed);
        trace.records
    }

    fn unqueue(&self, trace: &Trace) {
        if let Some(key) = trace.queued {
            self.order.lock().remove(&key);
        }
    }

    fn ship_released(&self, records: Vec<Record>, ship: &mut dyn FnMut(Record)) {
        let n = records.len() as u64;
        self.shipped.fetch_add(n, Ordering::Relaxed);
        self.released.fetch_add(n, Ordering::Relaxed);
        records.into_iter().for_each(ship);
    }

    fn discard(&self, n: usize) {
        self.sampled_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A record taken and discarded at once (its trace was decided).
    fn take_discarded(&self, n: u64) {
        self.taken.fetch_add(n, Ordering::Relaxed);
        self.sampled_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes the held records of the oldest traces, as `on_evict` says,
    /// until the held records fit their bound again. The traces stay
    /// followed and undecided: their later records are held, and a later
    /// failure ships those.
    fn evict(&self, ship: &mut dyn FnMut(Record)) {
        while self.held_bytes.load(Ordering::Relaxed) > self.settings.max_bytes {
            let Some((started, trace_id)) = self.order.lock().pop_first() else {
                return;
            };
            let records = {
                let mut shard = self.shard(trace_id).lock();
                let Some(trace) = shard.traces.get_mut(&trace_id) else {
                    continue;
                };
                if trace.queued != Some((started, trace_id)) {
                    continue;
                }
                trace.queued = None;
                let records = std::mem::take(&mut trace.records);
                let bytes = std::mem::take(&mut trace.bytes);
                self.held.fetch_sub(records.len() as u64, Ordering::Relaxed);
                self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
                records
            };
            self.evicted
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            if self.settings.on_evict == super::Decision::Ship {
                self.ship_released(records, ship);
            } else {
                self.evicted_dropped
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// Decides the held records of traces held longer than the maximum
    /// hold, at most once every [`SWEEP_EVERY`].
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

    /// For every trace held longer than the maximum hold: its held records
    /// are decided as if its root ended now, and a new hold begins (a
    /// long-running root keeps holding, and a later failure ships what it
    /// holds then).
    fn sweep(&self, now: u64, ship: &mut dyn FnMut(Record)) {
        for shard in self.shards.iter() {
            let mut released = Vec::new();
            let mut discarded = 0;
            let mut requeue = Vec::new();
            {
                let mut shard = shard.lock();
                for (id, trace) in shard.traces.iter_mut() {
                    let held_for = Duration::from_nanos(now.saturating_sub(trace.started));
                    if held_for < self.settings.max_hold {
                        continue;
                    }
                    let kept = self.decide(*id, trace, held_for);
                    let records = std::mem::take(&mut trace.records);
                    let bytes = std::mem::take(&mut trace.bytes);
                    self.held.fetch_sub(records.len() as u64, Ordering::Relaxed);
                    self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
                    if let Some(key) = trace.queued.take() {
                        requeue.push(key);
                    }
                    trace.started = now;
                    trace.failed = false;
                    if kept.is_some() {
                        released.extend(records);
                    } else {
                        discarded += records.len();
                    }
                }
            }
            if !requeue.is_empty() {
                let mut order = self.order.lock();
                for key in requeue {
                    order.remove(&key);
                }
            }
            self.discard(discarded);
            self.ship_released(released, ship);
        }
    }

    /// At shutdown: every trace still followed is decided, a failed one
    /// shipped, the others as `at_shutdown` says, and forgotten.
    pub(crate) fn drain(&self, ship: &mut dyn FnMut(Record)) {
        for shard in self.shards.iter() {
            let traces = std::mem::take(&mut shard.lock().traces);
            for trace in traces.into_values() {
                self.unqueue(&trace);
                let failed = trace.failed;
                let records = self.unhold(trace);
                if failed || self.settings.at_shutdown == super::Decision::Ship {
                    self.ship_released(records, ship);
                } else {
                    self.discard(records.len());
                }
            }
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            held: self.held.load(Ordering::Relaxed),
            held_bytes: self.held_bytes.load(Ordering::Relaxed) as u64,
            taken: self.taken.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            shipped: self.shipped.load(Ordering::Relaxed),
            sampled_out: self.sampled_out.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            evicted_dropped: self.evicted_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if self.settings.head_sampling {
            crate::propagation::set_head_keep_below(u64::MAX);
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

/// A span end's `duration_ms`.
fn duration_of(record: &Record) -> Option<Duration> {
    let ms = match record.field(DURATION_FIELD)? {
        crate::value::Value::F64(ms) => *ms,
        crate::value::Value::I64(ms) => *ms as f64,
        crate::value::Value::U64(ms) => *ms as f64,
        _ => return None,
    };
    ms.is_finite()
        .then(|| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
}
