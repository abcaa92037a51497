//! What becomes of each record in OTLP: events are log records, a span's
//! `.start`/`.end` pair is one span. The severity mapping, the attribute
//! names of the code location, and the span starts waiting for their ends.

use std::collections::{HashMap, VecDeque};

use super::encode::SpanParts;
use crate::level::Level;
use crate::record::Record;
use crate::value::Value;
use crate::wire::DURATION_FIELD;

/// Semantic-convention names of the code location (semconv 1.30 and later).
pub(crate) const CODE_FILE: &str = "code.file.path";
pub(crate) const CODE_LINE: &str = "code.line.number";
pub(crate) const CODE_FUNCTION: &str = "code.function.name";
/// The record id of [`Builder::record_ids`](crate::Builder::record_ids), for
/// dropping duplicates of at-least-once delivery.
pub(crate) const RECORD_ID: &str = "aitrace.record_id";

/// The most span starts remembered while their `.end` has not come.
const MAX_OPEN_SPANS: usize = 16_384;

/// OpenTelemetry's severity number for a level (the log data model's
/// TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17) and its short name.
pub(crate) fn severity(level: Level) -> (i32, &'static str) {
    match level {
        Level::Trace => (1, "TRACE"),
        Level::Debug => (5, "DEBUG"),
        Level::Info => (9, "INFO"),
        Level::Warn => (13, "WARN"),
        Level::Error => (17, "ERROR"),
    }
}

/// Whether a record is a span's `NAME.start`.
pub(crate) fn is_span_start(record: &Record) -> bool {
    record.is_provisional() && record.span_context().is_some() && record.event().ends_with(".start")
}

/// Whether a record is a span's `NAME.end`, as its frontend marked it.
pub(crate) fn is_span_end(record: &Record) -> bool {
    record.is_span_end() && record.span_context().is_some()
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
#[derive(Debug, Default)]
pub(crate) struct OpenSpans {
    starts: HashMap<u64, Start>,
    order: VecDeque<u64>,
    bytes: usize,
    exported: std::collections::HashSet<u64>,
    exported_order: VecDeque<u64>,
}

/// The most bytes of span-start fields kept.
const MAX_OPEN_SPAN_BYTES: usize = 16 << 20;
/// How many exported span ids are remembered.
const MAX_EXPORTED: usize = 65_536;

/// The records of a batch that go as log records: all of them with `spans`
/// off, else all but span lifecycle records.
pub(crate) fn log_records(records: &[Record], spans: bool) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| !spans || !(is_span_start(r) || is_span_end(r)))
        .collect()
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
    }

    /// The spans a batch ends, not exported yet, and their ids. Span starts
    /// are remembered first, so a batch holding both ends of a span exports
    /// it whole. With `spans` off there are none.
    pub(crate) fn spans<'a>(
        &'a mut self,
        records: &'a [Record],
        spans: bool,
    ) -> (Vec<SpanParts<'a>>, Vec<u64>) {
        if !spans {
            return (Vec::new(), Vec::new());
        }
        for record in records.iter().filter(|r| is_span_start(r)) {
            self.start(record);
        }
        let this = &*self;
        let mut parts = Vec::new();
        let mut ids = Vec::new();
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
            parts.push(SpanParts {
                end: record,
                name: record
                    .event()
                    .strip_suffix(".end")
                    .unwrap_or(record.event()),
                start_time,
                start_fields: start.map_or(&[], |s| &s.fields[..]),
            });
            ids.push(id);
        }
        (parts, ids)
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
