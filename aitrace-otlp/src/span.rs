//! A finished span as a traces request carries it ([`SpanParts`]), and its
//! name, kind and status read from its `.end` and `.start` records
//! ([`span_shape`]).

use std::borrow::Cow;

use crate::fields::{span_kind, status_code};
use crate::semconv::{OTEL_KIND, OTEL_NAME, OTEL_STATUS_CODE, OTEL_STATUS_MESSAGE};
use crate::wire::{self, ERROR_FIELD, Phase};
use aitrace_model::Level;
use aitrace_model::Record;
use aitrace_model::Value;

/// A finished span, as a traces request carries it.
pub(crate) struct SpanParts<'a> {
    pub(crate) end: &'a Record,
    pub(crate) name: &'a str,
    /// `SpanKind`: internal unless `otel.kind` says otherwise.
    pub(crate) kind: i32,
    /// `Status` `(code, message)`; `None` is unset.
    pub(crate) status: Option<(i32, Cow<'a, str>)>,
    /// The `otel.*` fields used for name, kind and status: not attributes.
    pub(crate) used: [Option<&'static str>; 4],
    pub(crate) start_time: u64,
    /// The fields of its `.start`, when that was seen.
    pub(crate) start_fields: &'a [(String, Value)],
    /// Its log records, as span events (span events on).
    pub(crate) events: Vec<&'a Record>,
    /// Its events past the limit, counted only.
    pub(crate) dropped_events: u32,
}

impl<'a> SpanParts<'a> {
    pub(crate) fn new(
        end: &'a Record,
        start_time: u64,
        start_fields: &'a [(String, Value)],
    ) -> Self {
        let shape = span_shape(end, start_fields);
        SpanParts {
            end,
            name: shape.name,
            kind: shape.kind,
            status: shape.status,
            used: shape.used,
            start_time,
            start_fields,
            events: Vec::new(),
            dropped_events: 0,
        }
    }
}

/// The last value of `key` in a span's end, else in its start.
fn span_field<'a>(end: &'a Record, start: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    end.field(key)
        .or_else(|| start.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v))
}

/// The name, kind and status of a span, from its `.end` record, its
/// `otel.*` fields (tracing-opentelemetry's, which win) and its `error`
/// field; and the special fields used, so they are not also attributes.
/// A special field that cannot be read (`otel.kind = "sideways"`) stays an
/// attribute and changes nothing.
struct SpanShape<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: i32,
    /// `(code, message)`; `None` is `STATUS_CODE_UNSET`.
    pub(crate) status: Option<(i32, Cow<'a, str>)>,
    pub(crate) used: [Option<&'static str>; 4],
}

fn span_shape<'a>(end: &'a Record, start: &'a [(String, Value)]) -> SpanShape<'a> {
    let text = |key| span_field(end, start, key).and_then(Value::as_str);
    let mut used = [None; 4];
    let name = match text(OTEL_NAME).filter(|n| !n.is_empty()) {
        Some(name) => {
            used[0] = Some(OTEL_NAME);
            name
        }
        None => match wire::lifecycle(end.event()) {
            Some((name, Phase::End)) => name,
            _ => end.event(),
        },
    };
    let kind = match text(OTEL_KIND).map(str::to_ascii_lowercase).as_deref() {
        Some("internal") => Some(span_kind::INTERNAL),
        Some("server") => Some(span_kind::SERVER),
        Some("client") => Some(span_kind::CLIENT),
        Some("producer") => Some(span_kind::PRODUCER),
        Some("consumer") => Some(span_kind::CONSUMER),
        _ => None,
    };
    if kind.is_some() {
        used[1] = Some(OTEL_KIND);
    }
    let message = text(OTEL_STATUS_MESSAGE);
    let failed = || match end.field(ERROR_FIELD) {
        Some(Value::Str(s)) => Some(Cow::Borrowed(&**s)),
        Some(other) => Some(Cow::Owned(format!("{other:?}"))),
        None if end.level() == Level::Error => Some(Cow::Borrowed("")),
        None => None,
    };
    let code = text(OTEL_STATUS_CODE).map(str::to_ascii_lowercase);
    let status = match code.as_deref() {
        Some("ok") => Some(Some((status_code::OK, Cow::Borrowed("")))),
        Some("error") => Some(Some((status_code::ERROR, failed().unwrap_or_default()))),
        Some("unset") => Some(None),
        _ => None,
    };
    if status.is_some() {
        used[2] = Some(OTEL_STATUS_CODE);
    }
    let mut status = status.unwrap_or_else(|| failed().map(|m| (status_code::ERROR, m)));
    if let (Some((status_code::ERROR, m)), Some(message)) = (&mut status, message) {
        *m = Cow::Borrowed(message);
        used[3] = Some(OTEL_STATUS_MESSAGE);
    }
    SpanShape {
        name,
        kind: kind.unwrap_or(span_kind::INTERNAL),
        status,
        used,
    }
}
