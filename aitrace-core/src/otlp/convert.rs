//! Records to OTLP messages: events to `LogRecord`s, span lifecycles to
//! `Span`s, in the types of `opentelemetry-proto`.

use std::collections::{HashMap, VecDeque};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

use crate::level::Level;
use crate::record::Record;
use crate::value::Value;
use crate::wire::{DURATION_FIELD, ERROR_FIELD, MAX_VALUE_DEPTH};

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

/// A value as an `AnyValue`. Integers above `i64::MAX` and non-finite floats
/// become strings, as the aitrace wire format writes them; nesting deeper
/// than the wire format's limit becomes the string `[max depth]`.
pub(crate) fn any_value(value: &Value) -> AnyValue {
    any_value_at(value, 0)
}

fn any_value_at(value: &Value, depth: usize) -> AnyValue {
    use any_value::Value as V;
    let v = match value {
        Value::Null => None,
        Value::Bool(b) => Some(V::BoolValue(*b)),
        Value::I64(n) => Some(V::IntValue(*n)),
        Value::U64(n) => Some(match i64::try_from(*n) {
            Ok(n) => V::IntValue(n),
            Err(_) => V::StringValue(n.to_string()),
        }),
        Value::F64(f) if f.is_finite() => Some(V::DoubleValue(*f)),
        Value::F64(f) => Some(V::StringValue(
            if f.is_nan() {
                "NaN"
            } else if *f > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }
            .to_owned(),
        )),
        Value::Str(s) => Some(V::StringValue(s.to_string())),
        Value::Bytes(b) => Some(V::BytesValue(b.to_vec())),
        _ if depth >= MAX_VALUE_DEPTH => Some(V::StringValue("[max depth]".to_owned())),
        Value::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.iter().map(|v| any_value_at(v, depth + 1)).collect(),
        })),
        Value::Object(entries) => Some(V::KvlistValue(KeyValueList {
            values: unique_last(entries.iter().map(|(k, v)| (k.as_str(), v)))
                .into_iter()
                .map(|(k, v)| key_value(k, any_value_at(v, depth + 1)))
                .collect(),
        })),
    };
    AnyValue { value: v }
}

fn key_value(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..KeyValue::default()
    }
}

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    }
}

/// Entries with each key once, the last value of a repeated key winning, in
/// the order of their last occurrence (OTLP wants unique keys).
fn unique_last<'a, V>(entries: impl Iterator<Item = (&'a str, V)>) -> Vec<(&'a str, V)> {
    let all: Vec<(&str, V)> = entries.collect();
    if all.len() < 2 {
        return all;
    }
    let mut seen: Vec<&str> = Vec::with_capacity(all.len());
    let mut kept: Vec<(&str, V)> = Vec::with_capacity(all.len());
    for (k, v) in all.into_iter().rev() {
        if !seen.contains(&k) {
            seen.push(k);
            kept.push((k, v));
        }
    }
    kept.reverse();
    kept
}

/// The record's fields (each key once) and its code location, as attributes.
/// `skip` names fields that are not attributes (a span's `duration_ms`).
fn attributes(record: &Record, skip: &[&str], into: &mut Vec<KeyValue>) {
    let location = record.location();
    let reserved = [CODE_FILE, CODE_LINE, CODE_FUNCTION, RECORD_ID];
    for (key, value) in unique_last(record.fields()) {
        if skip.contains(&key) || reserved.contains(&key) {
            continue;
        }
        into.push(key_value(key, any_value(value)));
    }
    if let Some(file) = location.file() {
        into.push(key_value(CODE_FILE, string(file)));
    }
    if let Some(line) = location.line() {
        into.push(key_value(
            CODE_LINE,
            AnyValue {
                value: Some(any_value::Value::IntValue(i64::from(line))),
            },
        ));
    }
    if let Some(function) = location.function() {
        into.push(key_value(CODE_FUNCTION, string(function)));
    }
    if let Some(id) = record.record_id() {
        into.push(key_value(RECORD_ID, string(&format!("{:016x}", id.get()))));
    }
}

/// An event record as an OTLP log record.
pub(crate) fn log_record(record: &Record) -> LogRecord {
    let (severity_number, severity_text) = severity(record.level());
    let mut attrs = Vec::with_capacity(record.fields().len() + 3);
    attributes(record, &[], &mut attrs);
    let time = record.timestamp_nanos();
    let (trace_id, span_id, flags) = match record.span_context() {
        Some(cx) => (
            cx.trace_id().to_bytes().to_vec(),
            cx.span_id().to_bytes().to_vec(),
            1, // sampled: every span aitrace writes is recorded
        ),
        None => (Vec::new(), Vec::new(), 0),
    };
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        severity_number,
        severity_text: severity_text.to_owned(),
        body: Some(string(record.event())),
        attributes: attrs,
        flags,
        trace_id,
        span_id,
        ..LogRecord::default()
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

/// What a span's `.start` said, kept until its `.end` comes.
#[derive(Debug)]
struct Start {
    time: u64,
    attributes: Vec<KeyValue>,
}

/// Span starts seen and not yet ended, bounded: the oldest is forgotten
/// first (its span is still exported at its end, with the end's fields only).
#[derive(Debug, Default)]
pub(crate) struct OpenSpans {
    starts: HashMap<u64, Start>,
    order: VecDeque<u64>,
}

impl OpenSpans {
    /// Remembers a `.start` record (again, harmlessly, when a batch is retried).
    pub(crate) fn start(&mut self, record: &Record) {
        let Some(cx) = record.span_context() else {
            return;
        };
        let id = cx.span_id().to_bytes();
        let id = u64::from_be_bytes(id);
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
        let mut attrs = Vec::with_capacity(record.fields().len());
        for (key, value) in unique_last(record.fields()) {
            attrs.push(key_value(key, any_value(value)));
        }
        self.starts.insert(
            id,
            Start {
                time: record.timestamp_nanos(),
                attributes: attrs,
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

    /// A span's `.end` record as an OTLP span, with its start's fields when
    /// the start was seen.
    pub(crate) fn span(&self, end: &Record) -> Option<(u64, Span)> {
        let cx = end.span_context()?;
        let id = u64::from_be_bytes(cx.span_id().to_bytes());
        let name = end.event().strip_suffix(".end").unwrap_or(end.event());
        let end_time = end.timestamp_nanos();
        let start = self.starts.get(&id);
        let start_time = match start {
            Some(start) => start.time.min(end_time),
            None => {
                let ms = match end.field(DURATION_FIELD) {
                    Some(Value::F64(ms)) => *ms,
                    Some(Value::I64(ms)) => *ms as f64,
                    Some(Value::U64(ms)) => *ms as f64,
                    _ => 0.0,
                };
                let nanos = if ms.is_finite() && ms > 0.0 {
                    (ms * 1e6) as u64
                } else {
                    0
                };
                end_time.saturating_sub(nanos)
            }
        };
        let mut attrs = Vec::new();
        if let Some(start) = start {
            attrs.extend(start.attributes.iter().cloned());
        }
        let mut end_attrs = Vec::with_capacity(end.fields().len() + 3);
        attributes(end, &[DURATION_FIELD, ERROR_FIELD], &mut end_attrs);
        for kv in end_attrs {
            attrs.retain(|a: &KeyValue| a.key != kv.key);
            attrs.push(kv);
        }
        let status = match end.field(ERROR_FIELD) {
            Some(error) => Status {
                code: status::StatusCode::Error as i32,
                message: match error {
                    Value::Str(s) => s.to_string(),
                    other => format!("{other:?}"),
                },
            },
            None if end.level() == Level::Error => Status {
                code: status::StatusCode::Error as i32,
                message: String::new(),
            },
            None => Status::default(),
        };
        let span = Span {
            trace_id: cx.trace_id().to_bytes().to_vec(),
            span_id: cx.span_id().to_bytes().to_vec(),
            parent_span_id: cx
                .parent_span_id()
                .map(|p| p.to_bytes().to_vec())
                .unwrap_or_default(),
            name: name.to_owned(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: start_time,
            end_time_unix_nano: end_time,
            attributes: attrs,
            status: Some(status),
            flags: 1, // sampled
            ..Span::default()
        };
        Some((id, span))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }
}

/// The OTLP resource, from its attributes.
pub(crate) fn resource(attrs: &[(String, Value)]) -> Resource {
    Resource {
        attributes: attrs
            .iter()
            .map(|(k, v)| key_value(k, any_value(v)))
            .collect(),
        ..Resource::default()
    }
}

fn scope(name: Option<&str>) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.unwrap_or_default().to_owned(),
        ..InstrumentationScope::default()
    })
}

/// Groups items by their logger, keeping the order loggers first appear in.
fn by_scope<T>(items: Vec<(Option<&str>, T)>) -> Vec<(Option<&str>, Vec<T>)> {
    let mut groups: Vec<(Option<&str>, Vec<T>)> = Vec::new();
    for (name, item) in items {
        match groups.iter_mut().rev().find(|(n, _)| *n == name) {
            Some((_, group)) => group.push(item),
            None => groups.push((name, vec![item])),
        }
    }
    groups
}

/// One batch as the two OTLP requests, and the ids of the spans it ends.
pub(crate) struct Requests {
    pub(crate) logs: Option<ExportLogsServiceRequest>,
    pub(crate) traces: Option<ExportTraceServiceRequest>,
    pub(crate) ended: Vec<u64>,
}

/// Splits a batch into log records and spans. With `spans` off, every
/// record is a log record.
pub(crate) fn requests(
    records: &[Record],
    resource: &Resource,
    open: &mut OpenSpans,
    spans: bool,
) -> Requests {
    let mut logs = Vec::with_capacity(records.len());
    let mut ended = Vec::new();
    let mut span_list = Vec::new();
    for record in records {
        if spans && is_span_start(record) {
            open.start(record);
        } else if spans && is_span_end(record) {
            if let Some((id, span)) = open.span(record) {
                ended.push(id);
                span_list.push((record.logger(), span));
            }
        } else {
            logs.push((record.logger(), log_record(record)));
        }
    }
    let logs = (!logs.is_empty()).then(|| ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: by_scope(logs)
                .into_iter()
                .map(|(name, log_records)| ScopeLogs {
                    scope: scope(name),
                    log_records,
                    ..ScopeLogs::default()
                })
                .collect(),
            ..ResourceLogs::default()
        }],
    });
    let traces = (!span_list.is_empty()).then(|| ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: by_scope(span_list)
                .into_iter()
                .map(|(name, spans)| ScopeSpans {
                    scope: scope(name),
                    spans,
                    ..ScopeSpans::default()
                })
                .collect(),
            ..ResourceSpans::default()
        }],
    });
    Requests {
        logs,
        traces,
        ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SpanContext;
    use any_value::Value as V;

    #[test]
    fn values_map_to_typed_any_values() {
        assert_eq!(any_value(&Value::Null), AnyValue { value: None });
        assert_eq!(
            any_value(&Value::from(true)).value,
            Some(V::BoolValue(true))
        );
        assert_eq!(any_value(&Value::from(-3i64)).value, Some(V::IntValue(-3)));
        assert_eq!(
            any_value(&Value::U64(u64::MAX)).value,
            Some(V::StringValue(u64::MAX.to_string()))
        );
        assert_eq!(
            any_value(&Value::F64(f64::NAN)).value,
            Some(V::StringValue("NaN".into()))
        );
        assert_eq!(
            any_value(&Value::F64(f64::NEG_INFINITY)).value,
            Some(V::StringValue("-Infinity".into()))
        );
        assert_eq!(
            any_value(&Value::Bytes(vec![1, 2].into())).value,
            Some(V::BytesValue(vec![1, 2]))
        );
        let object = Value::Object(
            vec![
                ("a".to_owned(), Value::from(1)),
                ("b".to_owned(), Value::from("x")),
                ("a".to_owned(), Value::from(2)),
            ]
            .into(),
        );
        let Some(V::KvlistValue(list)) = any_value(&object).value else {
            panic!("not a kvlist");
        };
        let keys: Vec<_> = list.values.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(
            list.values[1].value.as_ref().unwrap().value,
            Some(V::IntValue(2))
        );
        let mut deep = Value::from(1);
        for _ in 0..100 {
            deep = Value::Array(vec![deep].into());
        }
        let mut v = any_value(&deep);
        let mut depth = 0;
        while let Some(V::ArrayValue(a)) = v.value {
            v = a.values.into_iter().next().unwrap();
            depth += 1;
        }
        assert_eq!(depth, MAX_VALUE_DEPTH);
        assert_eq!(v.value, Some(V::StringValue("[max depth]".into())));
    }

    #[test]
    fn a_span_is_built_from_its_end_and_its_start() {
        let cx = SpanContext::new_root();
        let start = Record::builder(Level::Info, "checkout.start")
            .span_context(cx)
            .provisional(true)
            .field("user", "u2")
            .build();
        let end = Record::builder(Level::Error, "checkout.end")
            .span_context(cx)
            .field("items", 3)
            .field(DURATION_FIELD, 12.5)
            .field(ERROR_FIELD, "card declined")
            .file("src/shop.rs")
            .line(7)
            .build();
        let mut open = OpenSpans::default();
        let req = requests(&[start, end.clone()], &resource(&[]), &mut open, true);
        assert!(req.logs.is_none());
        let span = &req.traces.unwrap().resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, "checkout");
        assert_eq!(span.span_id, cx.span_id().to_bytes());
        assert!(span.parent_span_id.is_empty());
        assert!(span.start_time_unix_nano <= span.end_time_unix_nano);
        let keys: Vec<_> = span.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["user", "items", CODE_FILE, CODE_LINE]);
        let status = span.status.as_ref().unwrap();
        assert_eq!(status.code, status::StatusCode::Error as i32);
        assert_eq!(status.message, "card declined");
        // Without its start (an earlier process), the duration gives the start.
        open.ended(&req.ended);
        assert_eq!(open.len(), 0);
        let (_, alone) = open.span(&end).unwrap();
        assert_eq!(
            alone.end_time_unix_nano - alone.start_time_unix_nano,
            12_500_000
        );
    }

    #[test]
    fn open_spans_are_bounded() {
        let mut open = OpenSpans::default();
        for _ in 0..MAX_OPEN_SPANS + 10 {
            let r = Record::builder(Level::Info, "s.start")
                .span_context(SpanContext::new_root())
                .provisional(true)
                .build();
            open.start(&r);
        }
        assert_eq!(open.len(), MAX_OPEN_SPANS);
    }
}
