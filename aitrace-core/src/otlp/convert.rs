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

/// Whether a record is a span's `NAME.end` (it carries `duration_ms`).
pub(crate) fn is_span_end(record: &Record) -> bool {
    record.span_context().is_some()
        && record.event().ends_with(".end")
        && record.field(DURATION_FIELD).is_some()
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
}

/// Span starts seen and not yet ended, bounded: the oldest is forgotten
/// first (its span is still exported at its end, with the end's fields only
/// and a start time from its duration).
#[derive(Debug, Default)]
pub(crate) struct OpenSpans {
    starts: HashMap<u64, Start>,
    order: VecDeque<u64>,
}

/// A batch split by signal.
pub(crate) struct Split<'a> {
    pub(crate) logs: Vec<&'a Record>,
    pub(crate) spans: Vec<SpanParts<'a>>,
    /// The span ids to forget once the spans are delivered.
    pub(crate) ended: Vec<u64>,
}

impl OpenSpans {
    /// Remembers a `.start` record (again, harmlessly, when a batch is retried).
    fn start(&mut self, record: &Record) {
        let Some(id) = span_key(record) else {
            return;
        };
        if self.starts.contains_key(&id) {
            return;
        }
        while self.starts.len() >= MAX_OPEN_SPANS {
            match self.order.pop_front() {
                Some(old) => {
                    self.starts.remove(&old);
                }
                None => break,
            }
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
            },
        );
        self.order.push_back(id);
    }

    /// Forgets the starts of spans that were exported.
    pub(crate) fn ended(&mut self, span_ids: &[u64]) {
        if span_ids.is_empty() {
            return;
        }
        for id in span_ids {
            self.starts.remove(id);
        }
        let starts = &self.starts;
        self.order.retain(|id| starts.contains_key(id));
    }

    /// Splits a batch into log records and spans: with `spans` off, every
    /// record is a log record. Span starts are remembered first, so a batch
    /// holding both ends of a span exports it whole.
    pub(crate) fn split<'a>(&'a mut self, records: &'a [Record], spans: bool) -> Split<'a> {
        if !spans {
            return Split {
                logs: records.iter().collect(),
                spans: Vec::new(),
                ended: Vec::new(),
            };
        }
        for record in records.iter().filter(|r| is_span_start(r)) {
            self.start(record);
        }
        let mut split = Split {
            logs: Vec::with_capacity(records.len()),
            spans: Vec::new(),
            ended: Vec::new(),
        };
        for record in records {
            if is_span_start(record) {
                continue;
            }
            if !is_span_end(record) {
                split.logs.push(record);
                continue;
            }
            let id = span_key(record).expect("a span end has a context");
            let start = self.starts.get(&id);
            let end_time = record.timestamp_nanos();
            let start_time = match start {
                Some(start) => start.time.min(end_time),
                None => end_time.saturating_sub(duration_nanos(record)),
            };
            split.spans.push(SpanParts {
                end: record,
                name: record
                    .event()
                    .strip_suffix(".end")
                    .unwrap_or(record.event()),
                start_time,
                start_fields: start.map_or(&[], |s| &s.fields[..]),
            });
            split.ended.push(id);
        }
        split
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
