//! Protobuf of `ExportTraceServiceRequest`: each finished span a `Span`,
//! with its events and status.

use crate::attributes::{Attrs, Field, SpanAttrs};
use crate::convert::groups;
use crate::fields::{
    FLAGS_SAMPLED, export_trace_service_request, resource_spans, scope_spans, span, span_event,
    status,
};
use crate::proto_common::{Framing, put_request};
use crate::protobuf::{
    VARINT, fixed32_field, fixed64_field, key_len, len_field, put_bytes, put_fixed32, put_fixed64,
    put_key, put_len, put_varint, small_varint_field, varint_len,
};
use crate::span::SpanParts;
use aitrace_model::Record;

/// How a traces request frames its spans.
pub(crate) const FRAMING: Framing = Framing {
    resource_items: export_trace_service_request::RESOURCE_SPANS,
    resource: resource_spans::RESOURCE,
    scope_items: resource_spans::SCOPE_SPANS,
    scope: scope_spans::SCOPE,
    items: scope_spans::SPANS,
};

/// The size of a span event (`Span.Event`) without its key and length.
fn event_size(record: &Record, attrs: &Attrs<'_>, flat: &[Field<'_>]) -> usize {
    let mut n =
        fixed64_field(span_event::TIME_UNIX_NANO) + attrs.size(flat, span_event::ATTRIBUTES);
    if !record.event().is_empty() {
        n += len_field(span_event::NAME, record.event().len());
    }
    n
}

fn span_size(span: &SpanParts<'_>, attrs: &SpanAttrs<'_>, flat: &[Field<'_>]) -> usize {
    let cx = span.end.span_context().expect("a span end has a context");
    let mut n = len_field(span::TRACE_ID, 16) + len_field(span::SPAN_ID, 8);
    if cx.parent_span_id().is_some() {
        n += len_field(span::PARENT_SPAN_ID, 8);
    }
    n += len_field(span::NAME, span.name.len())
        + small_varint_field(span::KIND)
        + fixed64_field(span::START_TIME_UNIX_NANO)
        + fixed64_field(span::END_TIME_UNIX_NANO);
    n += attrs.own.size(flat, span::ATTRIBUTES);
    for (record, event) in span.events.iter().zip(&attrs.events) {
        n += len_field(span::EVENTS, event_size(record, event, flat));
    }
    if span.dropped_events > 0 {
        n += key_len(span::DROPPED_EVENTS_COUNT) + varint_len(u64::from(span.dropped_events));
    }
    if let Some((code, message)) = &span.status {
        n += len_field(span::STATUS, status_size(*code, message));
    }
    n + fixed32_field(span::FLAGS)
}

fn status_size(code: i32, message: &str) -> usize {
    let mut n = 0;
    if code != 0 {
        n += small_varint_field(status::CODE);
    }
    if !message.is_empty() {
        n += len_field(status::MESSAGE, message.len());
    }
    n
}

fn put_span(buf: &mut Vec<u8>, span: &SpanParts<'_>, attrs: &SpanAttrs<'_>, flat: &[Field<'_>]) {
    let cx = span.end.span_context().expect("a span end has a context");
    put_bytes(buf, span::TRACE_ID, &cx.trace_id().to_bytes());
    put_bytes(buf, span::SPAN_ID, &cx.span_id().to_bytes());
    if let Some(parent) = cx.parent_span_id() {
        put_bytes(buf, span::PARENT_SPAN_ID, &parent.to_bytes());
    }
    put_bytes(buf, span::NAME, span.name.as_bytes());
    put_key(buf, span::KIND, VARINT);
    put_varint(buf, span.kind as u64);
    put_fixed64(buf, span::START_TIME_UNIX_NANO, span.start_time);
    put_fixed64(buf, span::END_TIME_UNIX_NANO, span.end.timestamp_nanos());
    attrs.own.put(flat, buf, span::ATTRIBUTES);
    for (record, event) in span.events.iter().zip(&attrs.events) {
        put_len(buf, span::EVENTS, event_size(record, event, flat));
        put_fixed64(buf, span_event::TIME_UNIX_NANO, record.timestamp_nanos());
        if !record.event().is_empty() {
            put_bytes(buf, span_event::NAME, record.event().as_bytes());
        }
        event.put(flat, buf, span_event::ATTRIBUTES);
    }
    if span.dropped_events > 0 {
        put_key(buf, span::DROPPED_EVENTS_COUNT, VARINT);
        put_varint(buf, u64::from(span.dropped_events));
    }
    if let Some((code, message)) = &span.status {
        put_len(buf, span::STATUS, status_size(*code, message));
        if !message.is_empty() {
            put_bytes(buf, status::MESSAGE, message.as_bytes());
        }
        put_key(buf, status::CODE, VARINT);
        put_varint(buf, *code as u64);
    }
    put_fixed32(buf, span::FLAGS, FLAGS_SAMPLED);
}

/// `ExportTraceServiceRequest` of `spans` as protobuf into `buf`.
pub(crate) fn traces_protobuf(spans: &[SpanParts<'_>], resource: &[u8], buf: &mut Vec<u8>) {
    let mut flat = Vec::new();
    let attrs: Vec<SpanAttrs<'_>> = spans.iter().map(|s| SpanAttrs::of(s, &mut flat)).collect();
    let sizes: Vec<usize> = spans
        .iter()
        .zip(&attrs)
        .map(|(s, a)| span_size(s, a, &flat))
        .collect();
    let groups = groups(spans.iter().map(|s| s.end.logger()));
    put_request(buf, &FRAMING, resource, &groups, &sizes, |buf, i| {
        put_span(buf, &spans[i], &attrs[i], &flat);
    });
}
