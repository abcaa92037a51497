//! What becomes of each record in OTLP: events are log records, a span's
//! `.start`/`.end` pair is one span, with span events on each event is
//! also an event of its span, and each logger is an instrumentation scope.
//! And the span starts and events waiting for their ends.

use std::collections::{HashMap, VecDeque};

use crate::span::SpanParts;
use crate::wire::DURATION_FIELD;
use aitrace_model::Value;
use aitrace_model::{Record, RecordKind};

/// The most span starts remembered while their `.end` has not come.
const MAX_OPEN_SPANS: usize = 16_384;
/// The most events one span carries (the OpenTelemetry SDK's default
/// limit); the rest are counted in its `dropped_events_count`.
pub(crate) const MAX_EVENTS_PER_SPAN: usize = 128;

/// Whether a record is a span's `NAME.start`.
pub(crate) fn is_span_start(record: &Record) -> bool {
    record.kind() == RecordKind::SpanStart && record.span_context().is_some()
}

/// Whether a record is a span's `NAME.end`, as its frontend marked it.
pub(crate) fn is_span_end(record: &Record) -> bool {
    record.kind() == RecordKind::SpanEnd && record.span_context().is_some()
}

fn span_key(record: &Record) -> Option<u64> {
    record
        .span_context()
        .map(|cx| u64::from_be_bytes(cx.span_id().to_bytes()))
}

/// What a span's `.start` said, kept until its `.end` comes.
#[derive(Debug)]
struct Start {
    time: u64,
    fields: Vec<(String, Value)>,
    /// About how much memory it holds.
    bytes: usize,
}

/// Span starts seen and not yet ended, bounded in number and bytes: the
/// oldest is forgotten first (its span is still exported at its end, with
/// the end's fields only and a start time from its duration). And the ids of
/// the spans exported lately, so a batch sent again after its logs request
/// failed does not send its spans twice.
/// With span events on, also the events whose span has not ended, bounded
/// the same way.
#[derive(Debug, Default)]
pub(crate) struct OpenSpans {
    starts: HashMap<u64, Start>,
    order: VecDeque<u64>,
    bytes: usize,
    exported: std::collections::HashSet<u64>,
    exported_order: VecDeque<u64>,
    waiting: HashMap<u64, Waiting>,
    waiting_order: VecDeque<u64>,
    waiting_bytes: usize,
}

/// The events of a span that has not ended yet.
#[derive(Debug, Default)]
struct Waiting {
    records: Vec<Record>,
    /// Events past [`MAX_EVENTS_PER_SPAN`], counted only.
    dropped: u32,
    bytes: usize,
}

/// What to make of one batch: its finished spans (each with its events),
/// their ids, and the log records that could not go on a span.
pub(crate) struct Plan<'a> {
    pub(crate) spans: Vec<SpanParts<'a>>,
    pub(crate) ids: Vec<u64>,
    /// Indexes of events whose span has not ended: remembered for it by
    /// [`OpenSpans::wait`] once the batch is sent.
    pub(crate) wait: Vec<usize>,
    /// How many log records went on no span (no span, or one exported in
    /// an earlier batch); 0 with span events off.
    pub(crate) unattached: usize,
    /// How many of this batch's log records were past
    /// [`MAX_EVENTS_PER_SPAN`] on their span (counted in its
    /// `dropped_events_count`, not sent).
    pub(crate) capped: usize,
}

/// The most bytes of span-start fields kept.
const MAX_OPEN_SPAN_BYTES: usize = 16 << 20;
/// How many exported span ids are remembered.
const MAX_EXPORTED: usize = 65_536;

/// Whether a record of a batch is a log record: all of them with `spans`
/// off, else all but span lifecycle records.
fn is_log_record(record: &Record, spans: bool) -> bool {
    !spans || !(is_span_start(record) || is_span_end(record))
}

/// The records of a batch that go as log records.
pub(crate) fn log_records(records: &[Record], spans: bool) -> Vec<&Record> {
    records.iter().filter(|r| is_log_record(r, spans)).collect()
}

impl OpenSpans {
    /// Remembers a `.start` record (again, harmlessly, when a batch is retried).
    fn start(&mut self, record: &Record) {
        let Some(id) = span_key(record) else {
            return;
        };
        if self.starts.contains_key(&id) || self.exported.contains(&id) {
            return;
        }
        let bytes = record.memory_size();
        while !self.order.is_empty()
            && (self.starts.len() >= MAX_OPEN_SPANS || self.bytes + bytes > MAX_OPEN_SPAN_BYTES)
        {
            if let Some(old) = self.order.pop_front() {
                if let Some(start) = self.starts.remove(&old) {
                    self.bytes -= start.bytes;
                }
            }
        }
        if bytes > MAX_OPEN_SPAN_BYTES {
            return; // its span goes out with its end's fields only
        }
        let fields = record
            .fields()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        self.starts.insert(
            id,
            Start {
                time: record.timestamp_nanos(),
                fields,
                bytes,
            },
        );
        self.bytes += bytes;
        self.order.push_back(id);
    }

    /// Spans `span_ids` were exported: their starts are forgotten and their
    /// ids remembered for a while.
    pub(crate) fn exported(&mut self, span_ids: &[u64]) {
        if span_ids.is_empty() {
            return;
        }
        for id in span_ids {
            if let Some(start) = self.starts.remove(id) {
                self.bytes -= start.bytes;
            }
            if let Some(waiting) = self.waiting.remove(id) {
                self.waiting_bytes -= waiting.bytes;
            }
            if self.exported.insert(*id) {
                self.exported_order.push_back(*id);
            }
        }
        while self.exported_order.len() > MAX_EXPORTED {
            if let Some(old) = self.exported_order.pop_front() {
                self.exported.remove(&old);
            }
        }
        let starts = &self.starts;
        self.order.retain(|id| starts.contains_key(id));
        let waiting = &self.waiting;
        self.waiting_order.retain(|id| waiting.contains_key(id));
    }

    /// Remembers the events of a sent batch whose spans have not ended
    /// ([`Plan::wait`]), for those spans' ends. Past the bounds the events
    /// of the span waiting longest are forgotten, with one line on stderr.
    pub(crate) fn wait(&mut self, records: &[Record], wait: &[usize]) {
        for &i in wait {
            let record = &records[i];
            let Some(id) = span_key(record) else {
                continue;
            };
            if self.exported.contains(&id) {
                continue;
            }
            let bytes = record.memory_size();
            let mut forgotten = 0;
            while !self.waiting_order.is_empty()
                && (self.waiting.len() >= MAX_OPEN_SPANS
                    || self.waiting_bytes + bytes > MAX_OPEN_SPAN_BYTES)
                && !self.waiting.contains_key(&id)
            {
                if let Some(old) = self.waiting_order.pop_front() {
                    if let Some(w) = self.waiting.remove(&old) {
                        self.waiting_bytes -= w.bytes;
                        forgotten += w.records.len();
                    }
                }
            }
            if forgotten > 0 {
                crate::diagnostics::say_once("otlp-span-events", || {
                    format!(
                        "forgot {forgotten} span events of spans that have not ended \
                         (more than {MAX_OPEN_SPANS} spans or {} MiB waiting); \
                         they were sent as log records unless OTEL_LOGS_EXPORTER=none",
                        MAX_OPEN_SPAN_BYTES >> 20
                    )
                });
            }
            let entry = self.waiting.entry(id).or_insert_with(|| {
                self.waiting_order.push_back(id);
                Waiting::default()
            });
            if entry.records.len() >= MAX_EVENTS_PER_SPAN {
                entry.dropped = entry.dropped.saturating_add(1);
                continue;
            }
            entry.records.push(record.clone());
            entry.bytes += bytes;
            self.waiting_bytes += bytes;
        }
    }

    /// The spans a batch ends, not exported yet, and their ids. Span starts
    /// are remembered first, so a batch holding both ends of a span exports
    /// it whole. With `spans` off there are none. With `events` on, each
    /// log record of the batch goes on its span when that ends in this
    /// batch, waits for it ([`Plan::wait`]) when it has not ended, and is
    /// counted in [`Plan::unattached`] otherwise.
    pub(crate) fn plan<'a>(
        &'a mut self,
        records: &'a [Record],
        spans: bool,
        events: bool,
    ) -> Plan<'a> {
        let mut plan = Plan {
            spans: Vec::new(),
            ids: Vec::new(),
            wait: Vec::new(),
            unattached: 0,
            capped: 0,
        };
        if !spans {
            return plan;
        }
        for record in records.iter().filter(|r| is_span_start(r)) {
            self.start(record);
        }
        let this = &*self;
        for record in records.iter().filter(|r| is_span_end(r)) {
            let Some(id) = span_key(record) else {
                continue;
            };
            if this.exported.contains(&id) {
                continue; // sent with an earlier attempt of this batch
            }
            let start = this.starts.get(&id);
            let end_time = record.timestamp_nanos();
            let start_time = match start {
                Some(start) => start.time.min(end_time),
                None => end_time.saturating_sub(duration_nanos(record)),
            };
            let start_fields = start.map_or(&[][..], |s| &s.fields[..]);
            let mut parts = SpanParts::new(record, start_time, start_fields);
            if events {
                if let Some(waiting) = this.waiting.get(&id) {
                    parts.events.extend(&waiting.records);
                    parts.dropped_events = waiting.dropped;
                }
            }
            plan.spans.push(parts);
            plan.ids.push(id);
        }
        if !events {
            return plan;
        }
        let ending: HashMap<u64, usize> = plan
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        for (i, record) in records.iter().enumerate() {
            if !is_log_record(record, true) {
                continue;
            }
            match span_key(record) {
                Some(id) if ending.contains_key(&id) => {
                    let span = &mut plan.spans[ending[&id]];
                    if span.events.len() < MAX_EVENTS_PER_SPAN {
                        span.events.push(record);
                    } else {
                        span.dropped_events = span.dropped_events.saturating_add(1);
                        plan.capped += 1;
                    }
                }
                Some(id) if !this.exported.contains(&id) => plan.wait.push(i),
                _ => plan.unattached += 1,
            }
        }
        plan
    }

    /// [`plan`](Self::plan) without span events: the spans and their ids.
    #[cfg(test)]
    pub(crate) fn spans<'a>(
        &'a mut self,
        records: &'a [Record],
        spans: bool,
    ) -> (Vec<SpanParts<'a>>, Vec<u64>) {
        let plan = self.plan(records, spans, false);
        (plan.spans, plan.ids)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }
}

/// A `.end` record's `duration_ms` in nanoseconds (0 when unreadable).
fn duration_nanos(end: &Record) -> u64 {
    let ms = match end.field(DURATION_FIELD) {
        Some(Value::F64(ms)) => *ms,
        Some(Value::I64(ms)) => *ms as f64,
        Some(Value::U64(ms)) => *ms as f64,
        _ => 0.0,
    };
    if ms.is_finite() && ms > 0.0 {
        (ms * 1e6) as u64
    } else {
        0
    }
}

/// Groups item indexes by logger, in the order loggers first appear: a
/// scope (`ScopeLogs`, `ScopeSpans`) per logger.
pub(crate) fn groups<'a>(
    loggers: impl Iterator<Item = Option<&'a str>>,
) -> Vec<(Option<&'a str>, Vec<usize>)> {
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (i, name) in loggers.enumerate() {
        match groups.iter_mut().rev().find(|(n, _)| *n == name) {
            Some((_, members)) => members.push(i),
            None => groups.push((name, vec![i])),
        }
    }
    groups
}

/// A log record's trace and span ids, when it has a context.
#[inline]
pub(crate) fn ids(record: &Record) -> Option<([u8; 16], [u8; 8])> {
    record
        .span_context()
        .map(|cx| (cx.trace_id().to_bytes(), cx.span_id().to_bytes()))
}
