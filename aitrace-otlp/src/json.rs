//! OTLP/JSON of both requests, as the protobuf JSON mapping writes them:
//! lowerCamelCase names, 64-bit integers as strings, ids as hex, bytes as
//! base64, enums as numbers.

use std::io::Write as _;

use base64::Engine as _;

use crate::attributes::{
    Attrs, Extra, Field, MAX_DEPTH_TEXT, SpanAttrs, non_finite, object_fields,
};
use crate::convert::{groups, ids};
use crate::ids::{hex, write_hex};
use crate::semconv::severity;
use crate::span::SpanParts;
use aitrace_model::Record;
use aitrace_model::{Value, wire::MAX_VALUE_DEPTH};

fn json_str(buf: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

/// An id's bytes (at most 16) as a JSON string of lower-case hex digits.
fn json_hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    let mut digits = [0u8; 32];
    let digits = &mut digits[..(2 * bytes.len()).min(32)];
    write_hex(bytes, digits);
    buf.push(b'"');
    buf.extend_from_slice(digits);
    buf.push(b'"');
}

fn json_any(buf: &mut Vec<u8>, value: &Value, depth: usize) {
    match value {
        Value::Null => buf.extend_from_slice(b"{}"),
        Value::Bool(b) => {
            let _ = write!(buf, "{{\"boolValue\":{b}}}");
        }
        Value::I64(n) => {
            buf.extend_from_slice(b"{\"intValue\":\"");
            put_decimal(buf, n.unsigned_abs(), *n < 0);
            buf.extend_from_slice(b"\"}");
        }
        Value::U64(n) if *n <= i64::MAX as u64 => {
            buf.extend_from_slice(b"{\"intValue\":\"");
            put_decimal(buf, *n, false);
            buf.extend_from_slice(b"\"}");
        }
        Value::U64(n) => {
            let _ = write!(buf, "{{\"stringValue\":\"{n}\"}}");
        }
        Value::F64(f) if f.is_finite() => {
            buf.extend_from_slice(b"{\"doubleValue\":");
            // serde_json writes the shortest text that reads back exactly.
            let _ = serde_json::to_writer(&mut *buf, f);
            buf.push(b'}');
        }
        Value::F64(f) => {
            let _ = write!(buf, "{{\"stringValue\":\"{}\"}}", non_finite(*f));
        }
        Value::Str(s) => {
            buf.extend_from_slice(b"{\"stringValue\":");
            json_str(buf, s);
            buf.push(b'}');
        }
        Value::Bytes(b) => {
            buf.extend_from_slice(b"{\"bytesValue\":\"");
            buf.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            );
            buf.extend_from_slice(b"\"}");
        }
        _ if depth >= MAX_VALUE_DEPTH => {
            let _ = write!(buf, "{{\"stringValue\":\"{MAX_DEPTH_TEXT}\"}}");
        }
        Value::Array(items) => {
            buf.extend_from_slice(b"{\"arrayValue\":{\"values\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                json_any(buf, item, depth + 1);
            }
            buf.extend_from_slice(b"]}}");
        }
        Value::Object(entries) => {
            buf.extend_from_slice(b"{\"kvlistValue\":{\"values\":[");
            for (i, (k, v)) in object_fields(entries).into_iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                json_key_value(buf, k, v, depth + 1);
            }
            buf.extend_from_slice(b"]}}");
        }
        // A shape added to `Value` after this crate: an empty `AnyValue`.
        _ => buf.extend_from_slice(b"{}"),
    }
}

fn json_key_value(buf: &mut Vec<u8>, key: &str, value: &Value, depth: usize) {
    buf.extend_from_slice(b"{\"key\":");
    json_str(buf, key);
    buf.extend_from_slice(b",\"value\":");
    json_any(buf, value, depth);
    buf.push(b'}');
}

impl Extra<'_> {
    /// Writes it as an OTLP/JSON `KeyValue`.
    fn json(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"{\"key\":\"");
        buf.extend_from_slice(self.key().as_bytes()); // plain ASCII
        buf.extend_from_slice(b"\",\"value\":{");
        match self {
            Extra::Str(_, s) => {
                buf.extend_from_slice(b"\"stringValue\":");
                json_str(buf, s);
            }
            Extra::Int(_, n) => {
                buf.extend_from_slice(b"\"intValue\":\"");
                put_decimal(buf, n.unsigned_abs(), *n < 0);
                buf.push(b'"');
            }
            Extra::Hex(_, id) => {
                buf.extend_from_slice(b"\"stringValue\":\"");
                buf.extend_from_slice(&hex::<16>(&id.to_be_bytes()));
                buf.push(b'"');
            }
        }
        buf.extend_from_slice(b"}}");
    }
}

/// Writes `n` in decimal (with a `-` when `negative`), without `fmt`.
fn put_decimal(buf: &mut Vec<u8>, mut n: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[i..]);
}

fn json_attributes(buf: &mut Vec<u8>, attrs: &Attrs<'_>, flat: &[Field<'_>]) {
    let mut first = true;
    let mut comma = |buf: &mut Vec<u8>| {
        if first {
            buf.extend_from_slice(b",\"attributes\":[");
            first = false;
        } else {
            buf.push(b',');
        }
    };
    for (k, v) in attrs.fields(flat) {
        comma(buf);
        json_key_value(buf, k, v, 0);
    }
    for extra in attrs.extras() {
        comma(buf);
        extra.json(buf);
    }
    if !first {
        buf.push(b']');
    }
}

/// The JSON of the resource, written once: `{"attributes":[…]}`.
pub(crate) fn resource_json(attrs: &[(String, Value)]) -> Vec<u8> {
    let mut buf = b"{\"attributes\":[".to_vec();
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json_key_value(&mut buf, k, v, 0);
    }
    buf.extend_from_slice(b"]}");
    buf
}

fn json_scope(buf: &mut Vec<u8>, name: Option<&str>) {
    buf.extend_from_slice(b"{\"scope\":{");
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        buf.extend_from_slice(b"\"name\":");
        json_str(buf, name);
    }
    buf.push(b'}');
}

/// `ExportLogsServiceRequest` of `records` as OTLP JSON into `buf`.
pub(crate) fn logs_json(records: &[&Record], resource: &[u8], buf: &mut Vec<u8>) {
    let mut flat = Vec::new();
    buf.extend_from_slice(b"{\"resourceLogs\":[{\"resource\":");
    buf.extend_from_slice(resource);
    buf.extend_from_slice(b",\"scopeLogs\":[");
    for (g, (name, members)) in groups(records.iter().map(|r| r.logger()))
        .into_iter()
        .enumerate()
    {
        if g > 0 {
            buf.push(b',');
        }
        json_scope(buf, name);
        buf.extend_from_slice(b",\"logRecords\":[");
        for (n, i) in members.into_iter().enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            let record = records[i];
            let (number, text) = severity(record.level());
            let time = record.timestamp_nanos();
            buf.extend_from_slice(b"{\"timeUnixNano\":\"");
            put_decimal(buf, time, false);
            buf.extend_from_slice(b"\",\"observedTimeUnixNano\":\"");
            put_decimal(buf, time, false);
            buf.extend_from_slice(b"\",\"severityNumber\":");
            put_decimal(buf, number as u64, false);
            buf.extend_from_slice(b",\"severityText\":\"");
            buf.extend_from_slice(text.as_bytes());
            buf.extend_from_slice(b"\",\"body\":{\"stringValue\":");
            json_str(buf, record.event());
            buf.push(b'}');
            flat.clear();
            let attrs = Attrs::of_event(record, &mut flat);
            json_attributes(buf, &attrs, &flat);
            if let Some((trace, span)) = ids(record) {
                buf.extend_from_slice(b",\"flags\":1,\"traceId\":");
                json_hex(buf, &trace);
                buf.extend_from_slice(b",\"spanId\":");
                json_hex(buf, &span);
            }
            buf.push(b'}');
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"]}]}");
}

/// `ExportTraceServiceRequest` of `spans` as OTLP JSON into `buf`.
pub(crate) fn traces_json(spans: &[SpanParts<'_>], resource: &[u8], buf: &mut Vec<u8>) {
    let mut flat = Vec::new();
    buf.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":");
    buf.extend_from_slice(resource);
    buf.extend_from_slice(b",\"scopeSpans\":[");
    for (g, (name, members)) in groups(spans.iter().map(|s| s.end.logger()))
        .into_iter()
        .enumerate()
    {
        if g > 0 {
            buf.push(b',');
        }
        json_scope(buf, name);
        buf.extend_from_slice(b",\"spans\":[");
        for (n, i) in members.into_iter().enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            let span = &spans[i];
            let cx = span.end.span_context().expect("a span end has a context");
            buf.extend_from_slice(b"{\"traceId\":");
            json_hex(buf, &cx.trace_id().to_bytes());
            buf.extend_from_slice(b",\"spanId\":");
            json_hex(buf, &cx.span_id().to_bytes());
            if let Some(parent) = cx.parent_span_id() {
                buf.extend_from_slice(b",\"parentSpanId\":");
                json_hex(buf, &parent.to_bytes());
            }
            buf.extend_from_slice(b",\"flags\":1,\"name\":");
            json_str(buf, span.name);
            let _ = write!(
                buf,
                ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\"",
                span.kind,
                span.start_time,
                span.end.timestamp_nanos()
            );
            flat.clear();
            let attrs = SpanAttrs::of(span, &mut flat);
            json_attributes(buf, &attrs.own, &flat);
            if !span.events.is_empty() {
                buf.extend_from_slice(b",\"events\":[");
                for (e, (record, event)) in span.events.iter().zip(&attrs.events).enumerate() {
                    if e > 0 {
                        buf.push(b',');
                    }
                    buf.extend_from_slice(b"{\"timeUnixNano\":\"");
                    put_decimal(buf, record.timestamp_nanos(), false);
                    buf.extend_from_slice(b"\",\"name\":");
                    json_str(buf, record.event());
                    json_attributes(buf, event, &flat);
                    buf.push(b'}');
                }
                buf.push(b']');
            }
            if span.dropped_events > 0 {
                let _ = write!(buf, ",\"droppedEventsCount\":{}", span.dropped_events);
            }
            if let Some((code, message)) = &span.status {
                buf.extend_from_slice(b",\"status\":{");
                if !message.is_empty() {
                    buf.extend_from_slice(b"\"message\":");
                    json_str(buf, message);
                    buf.push(b',');
                }
                let _ = write!(buf, "\"code\":{code}}}");
            }
            buf.push(b'}');
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"]}]}");
}
