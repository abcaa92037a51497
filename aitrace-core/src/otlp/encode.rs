//! Records straight to OTLP request bodies, protobuf or JSON, into a buffer
//! the sender reuses.
//!
//! Building the `opentelemetry-proto` structs first and encoding them cost
//! an allocation per attribute key and string value and a free for each
//! afterwards: a profile of the delivery bench showed the allocator as the
//! largest cost of the OTLP sender. So the messages are written from the
//! records themselves here, field numbers and JSON names as in
//! `opentelemetry/proto/{common,resource,logs,trace}/v1`, and the crate's
//! types are kept to read answers and, in tests, to decode every byte
//! written here.

use std::io::Write as _;

use base64::Engine as _;

use std::borrow::Cow;

use super::convert::{CODE_FILE, CODE_FUNCTION, CODE_LINE, RECORD_ID, severity, span_shape};
use crate::record::Record;
use crate::scratch::{Scratch, with_scratch};
use crate::value::{MAX_VALUE_DEPTH, Value};
use crate::wire::{DURATION_FIELD, ERROR_FIELD};

/// A field of a message: its key and value, borrowed.
pub(crate) type Field<'a> = (&'a str, &'a Value);

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

/// Whether field `i` of `keys` is followed by another of the same key (the
/// last one wins, as in the wire format). `mask` is filled for long lists.
fn shadowed(keys: &[&str], i: usize, mask: &[bool]) -> bool {
    if !mask.is_empty() {
        return mask[i];
    }
    keys[i + 1..].contains(&keys[i])
}

/// For lists longer than this, repeated keys are found with a map.
const QUADRATIC_LIMIT: usize = 16;

fn shadow_mask(keys: &[&str]) -> Vec<bool> {
    if keys.len() <= QUADRATIC_LIMIT {
        return Vec::new();
    }
    let mut last = std::collections::HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        last.insert(*k, i);
    }
    keys.iter().enumerate().map(|(i, k)| last[k] != i).collect()
}

/// Removes from `out[start..]` the entries shadowed by a later one of the
/// same key, and those named in `skip`.
fn dedupe_tail(out: &mut Vec<Field<'_>>, start: usize, skip: &[Option<&str>]) {
    let n = out.len() - start;
    let mask = if n > QUADRATIC_LIMIT {
        let keys: Vec<&str> = out[start..].iter().map(|(k, _)| *k).collect();
        shadow_mask(&keys)
    } else {
        Vec::new()
    };
    let mut kept = start;
    for i in start..out.len() {
        let (key, value) = out[i];
        let repeated = if mask.is_empty() {
            out[i + 1..].iter().any(|(k, _)| *k == key)
        } else {
            mask[i - start]
        };
        if repeated || skip.contains(&Some(key)) {
            continue;
        }
        out[kept] = (key, value);
        kept += 1;
    }
    out.truncate(kept);
}

// ---------------------------------------------------------------- protobuf

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, u64::from(field << 3 | u32::from(wire)));
}

fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

/// The size of a length-delimited field whose payload is `n` bytes.
fn len_field(field: u32, n: usize) -> usize {
    key_len(field) + varint_len(n as u64) + n
}

#[inline]
fn put_len(buf: &mut Vec<u8>, field: u32, n: usize) {
    // Key and length gathered on the stack, then appended at once (not a
    // capacity check per byte).
    let mut bytes = [0u8; 15];
    let mut at = 0;
    for mut v in [u64::from(field << 3 | u32::from(LEN)), n as u64] {
        while v >= 0x80 {
            bytes[at] = (v as u8) | 0x80;
            v >>= 7;
            at += 1;
        }
        bytes[at] = v as u8;
        at += 1;
    }
    buf.extend_from_slice(&bytes[..at]);
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_len(buf, field, bytes.len());
    buf.extend_from_slice(bytes);
}

fn put_fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    put_key(buf, field, FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    put_key(buf, field, FIXED32);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A non-finite float's wire-format name.
fn non_finite(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// The size of an `AnyValue` message holding `value`.
fn any_size(value: &Value, depth: usize) -> usize {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 2,
        Value::I64(n) => 1 + varint_len(*n as u64),
        Value::U64(n) if *n <= i64::MAX as u64 => 1 + varint_len(*n),
        Value::U64(n) => len_field(1, decimal_len(*n)),
        Value::F64(f) if f.is_finite() => 9,
        Value::F64(f) => len_field(1, non_finite(*f).len()),
        Value::Str(s) => len_field(1, s.len()),
        Value::Bytes(b) => len_field(7, b.len()),
        _ if depth >= MAX_VALUE_DEPTH => len_field(1, MAX_DEPTH_TEXT.len()),
        Value::Array(items) => len_field(5, array_size(items, depth)),
        Value::Object(entries) => len_field(6, kvlist_size(entries, depth)),
    }
}

const MAX_DEPTH_TEXT: &str = "[max depth]";

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn array_size(items: &[Value], depth: usize) -> usize {
    items
        .iter()
        .map(|v| len_field(1, any_size(v, depth + 1)))
        .sum()
}

fn object_fields(entries: &[(String, Value)]) -> Vec<Field<'_>> {
    let mut fields: Vec<Field<'_>> = entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
    if fields.len() > 1 {
        let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        let mask = shadow_mask(&keys);
        let mut i = 0;
        fields.retain(|_| {
            let keep = !shadowed(&keys, i, &mask);
            i += 1;
            keep
        });
    }
    fields
}

fn kvlist_size(entries: &[(String, Value)], depth: usize) -> usize {
    object_fields(entries)
        .iter()
        .map(|(k, v)| len_field(1, key_value_size(k, v, depth + 1)))
        .sum()
}

fn key_value_size(key: &str, value: &Value, depth: usize) -> usize {
    len_field(1, key.len()) + len_field(2, any_size(value, depth))
}

fn put_any(buf: &mut Vec<u8>, value: &Value, depth: usize) {
    match value {
        Value::Null => {}
        Value::Bool(b) => {
            put_key(buf, 2, VARINT);
            buf.push(u8::from(*b));
        }
        Value::I64(n) => {
            put_key(buf, 3, VARINT);
            put_varint(buf, *n as u64);
        }
        Value::U64(n) if *n <= i64::MAX as u64 => {
            put_key(buf, 3, VARINT);
            put_varint(buf, *n);
        }
        Value::U64(n) => {
            put_len(buf, 1, decimal_len(*n));
            let _ = write!(buf, "{n}");
        }
        Value::F64(f) if f.is_finite() => put_fixed64(buf, 4, f.to_bits()),
        Value::F64(f) => put_bytes(buf, 1, non_finite(*f).as_bytes()),
        Value::Str(s) => put_bytes(buf, 1, s.as_bytes()),
        Value::Bytes(b) => put_bytes(buf, 7, b),
        _ if depth >= MAX_VALUE_DEPTH => put_bytes(buf, 1, MAX_DEPTH_TEXT.as_bytes()),
        Value::Array(items) => {
            put_len(buf, 5, array_size(items, depth));
            for item in items.iter() {
                put_len(buf, 1, any_size(item, depth + 1));
                put_any(buf, item, depth + 1);
            }
        }
        Value::Object(entries) => {
            let fields = object_fields(entries);
            let size: usize = fields
                .iter()
                .map(|(k, v)| len_field(1, key_value_size(k, v, depth + 1)))
                .sum();
            put_len(buf, 6, size);
            for (k, v) in fields {
                put_key_value(buf, 1, k, v, depth + 1);
            }
        }
    }
}

fn put_key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value, depth: usize) {
    let any = any_size(value, depth);
    put_len(buf, field, len_field(1, key.len()) + len_field(2, any));
    put_bytes(buf, 1, key.as_bytes());
    put_len(buf, 2, any);
    put_any(buf, value, depth);
}

/// An attribute aitrace adds to a record's own fields: the code location
/// and the record id, borrowed.
#[derive(Clone, Copy)]
enum Extra<'a> {
    Str(&'static str, &'a str),
    Int(&'static str, i64),
    /// A record id, written as 16 hex digits.
    Hex(&'static str, u64),
}

impl Extra<'_> {
    fn key(&self) -> &'static str {
        match self {
            Extra::Str(k, _) | Extra::Int(k, _) | Extra::Hex(k, _) => k,
        }
    }

    /// The size of the `AnyValue` it holds.
    fn any_size(&self) -> usize {
        match self {
            Extra::Str(_, s) => len_field(1, s.len()),
            Extra::Int(_, n) => 1 + varint_len(*n as u64),
            Extra::Hex(..) => len_field(1, 16),
        }
    }

    fn size(&self, field: u32) -> usize {
        len_field(
            field,
            len_field(1, self.key().len()) + len_field(2, self.any_size()),
        )
    }

    fn put(&self, buf: &mut Vec<u8>, field: u32) {
        let any = self.any_size();
        put_len(
            buf,
            field,
            len_field(1, self.key().len()) + len_field(2, any),
        );
        put_bytes(buf, 1, self.key().as_bytes());
        put_len(buf, 2, any);
        match self {
            Extra::Str(_, s) => put_bytes(buf, 1, s.as_bytes()),
            Extra::Int(_, n) => {
                put_key(buf, 3, VARINT);
                put_varint(buf, *n as u64);
            }
            Extra::Hex(_, id) => {
                put_len(buf, 1, 16);
                buf.extend_from_slice(&hex16(*id));
            }
        }
    }

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
                buf.extend_from_slice(&hex16(*id));
                buf.push(b'"');
            }
        }
        buf.extend_from_slice(b"}}");
    }
}

fn hex16(v: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 16];
    for (i, b) in v.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
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

/// The extras of a record, in the order written.
fn extras(record: &Record) -> [Option<Extra<'_>>; 5] {
    let location = record.location();
    [
        location.file().map(|f| Extra::Str(CODE_FILE, f)),
        location.line().map(|l| Extra::Int(CODE_LINE, i64::from(l))),
        location.function().map(|f| Extra::Str(CODE_FUNCTION, f)),
        record.record_id().map(|id| Extra::Hex(RECORD_ID, id.get())),
        None,
    ]
}

/// The attribute naming a span event's level (a log record has its
/// severity instead), as tracing-opentelemetry writes it.
const LEVEL: &str = "level";

/// One record's attributes: a range of a list shared by the batch (its
/// fields, each key once) and its extras.
struct Attrs<'a> {
    start: usize,
    end: usize,
    extra: [Option<Extra<'a>>; 5],
}

impl<'a> Attrs<'a> {
    /// Appends an event's fields to `flat`: each key once, and not those
    /// an extra of the record has (the code location wins over a field of
    /// the same name).
    fn of_event(record: &'a Record, flat: &mut Vec<Field<'a>>) -> Self {
        let start = flat.len();
        let extra = extras(record);
        flat.extend(record.raw_fields().iter().map(|(k, v)| (k.as_ref(), v)));
        let skip = extra.map(|e| e.map(|e| e.key()));
        dedupe_tail(flat, start, &skip);
        Attrs {
            start,
            end: flat.len(),
            extra,
        }
    }

    /// A log record's attributes as a span event: its own, and its level
    /// as `level` unless a field has that name.
    fn of_span_event(record: &'a Record, flat: &mut Vec<Field<'a>>) -> Self {
        let mut attrs = Attrs::of_event(record, flat);
        if record.field(LEVEL).is_none() {
            attrs.extra[4] = Some(Extra::Str(LEVEL, severity(record.level()).1));
        }
        attrs
    }

    /// Appends a span's fields (its start's, then its end's) to `flat`.
    fn of_span(span: &'a SpanParts<'a>, flat: &mut Vec<Field<'a>>) -> Self {
        let start = flat.len();
        let end = span.end;
        let extra = extras(end);
        flat.extend(span.start_fields.iter().map(|(k, v)| (k.as_str(), v)));
        flat.extend(end.raw_fields().iter().map(|(k, v)| (k.as_ref(), v)));
        let [a, b, c, d, e] = extra.map(|e| e.map(|e| e.key()));
        let [o1, o2, o3, o4] = span.used;
        dedupe_tail(
            flat,
            start,
            &[
                Some(DURATION_FIELD),
                Some(ERROR_FIELD),
                a,
                b,
                c,
                d,
                e,
                o1,
                o2,
                o3,
                o4,
            ],
        );
        Attrs {
            start,
            end: flat.len(),
            extra,
        }
    }

    fn fields<'f>(&self, flat: &'f [Field<'a>]) -> &'f [Field<'a>] {
        &flat[self.start..self.end]
    }

    fn extras(&self) -> impl Iterator<Item = &Extra<'a>> {
        self.extra.iter().flatten()
    }

    fn size(&self, flat: &[Field<'a>], field: u32) -> usize {
        self.fields(flat)
            .iter()
            .map(|(k, v)| len_field(field, key_value_size(k, v, 0)))
            .sum::<usize>()
            + self.extras().map(|e| e.size(field)).sum::<usize>()
    }

    fn put(&self, flat: &[Field<'a>], buf: &mut Vec<u8>, field: u32) {
        for (k, v) in self.fields(flat) {
            put_key_value(buf, field, k, v, 0);
        }
        for extra in self.extras() {
            extra.put(buf, field);
        }
    }
}

fn ids(record: &Record) -> Option<([u8; 16], [u8; 8])> {
    record
        .span_context()
        .map(|cx| (cx.trace_id().to_bytes(), cx.span_id().to_bytes()))
}

fn put_log_record(buf: &mut Vec<u8>, record: &Record, attrs: &Attrs<'_>, flat: &[Field<'_>]) {
    let (number, text) = severity(record.level());
    let time = record.timestamp_nanos();
    put_fixed64(buf, 1, time);
    put_key(buf, 2, VARINT);
    put_varint(buf, number as u64);
    put_bytes(buf, 3, text.as_bytes());
    put_len(buf, 5, len_field(1, record.event().len()));
    put_bytes(buf, 1, record.event().as_bytes());
    attrs.put(flat, buf, 6);
    if let Some((trace, span)) = ids(record) {
        put_fixed32(buf, 8, 1); // sampled
        put_bytes(buf, 9, &trace);
        put_bytes(buf, 10, &span);
    }
    put_fixed64(buf, 11, time);
}

/// A span's attributes and those of each of its events, in `flat`.
struct SpanAttrs<'a> {
    own: Attrs<'a>,
    events: Vec<Attrs<'a>>,
}

impl<'a> SpanAttrs<'a> {
    fn of(span: &'a SpanParts<'a>, flat: &mut Vec<Field<'a>>) -> Self {
        SpanAttrs {
            own: Attrs::of_span(span, flat),
            events: span
                .events
                .iter()
                .map(|r| Attrs::of_span_event(r, flat))
                .collect(),
        }
    }
}

/// The size of a span event (`Span.Event`) without its key and length.
fn event_size(record: &Record, attrs: &Attrs<'_>, flat: &[Field<'_>]) -> usize {
    let mut n = 9 + attrs.size(flat, 3); // time, attributes
    if !record.event().is_empty() {
        n += len_field(2, record.event().len());
    }
    n
}

fn span_size(span: &SpanParts<'_>, attrs: &SpanAttrs<'_>, flat: &[Field<'_>]) -> usize {
    let cx = span.end.span_context().expect("a span end has a context");
    let mut n = len_field(1, 16) + len_field(2, 8);
    if cx.parent_span_id().is_some() {
        n += len_field(4, 8);
    }
    n += len_field(5, span.name.len()) + 2 + 9 + 9; // name, kind, times
    n += attrs.own.size(flat, 9);
    for (record, event) in span.events.iter().zip(&attrs.events) {
        n += len_field(11, event_size(record, event, flat));
    }
    if span.dropped_events > 0 {
        n += 1 + varint_len(u64::from(span.dropped_events));
    }
    if let Some((code, message)) = &span.status {
        n += len_field(15, status_size(*code, message));
    }
    n + 6 // flags: field 16 is a two-byte key
}

fn status_size(code: i32, message: &str) -> usize {
    let mut n = 0;
    if code != 0 {
        n += 2;
    }
    if !message.is_empty() {
        n += len_field(2, message.len());
    }
    n
}

fn put_span(buf: &mut Vec<u8>, span: &SpanParts<'_>, attrs: &SpanAttrs<'_>, flat: &[Field<'_>]) {
    let cx = span.end.span_context().expect("a span end has a context");
    put_bytes(buf, 1, &cx.trace_id().to_bytes());
    put_bytes(buf, 2, &cx.span_id().to_bytes());
    if let Some(parent) = cx.parent_span_id() {
        put_bytes(buf, 4, &parent.to_bytes());
    }
    put_bytes(buf, 5, span.name.as_bytes());
    put_key(buf, 6, VARINT);
    put_varint(buf, span.kind as u64);
    put_fixed64(buf, 7, span.start_time);
    put_fixed64(buf, 8, span.end.timestamp_nanos());
    attrs.own.put(flat, buf, 9);
    for (record, event) in span.events.iter().zip(&attrs.events) {
        put_len(buf, 11, event_size(record, event, flat));
        put_fixed64(buf, 1, record.timestamp_nanos());
        if !record.event().is_empty() {
            put_bytes(buf, 2, record.event().as_bytes());
        }
        event.put(flat, buf, 3);
    }
    if span.dropped_events > 0 {
        put_key(buf, 12, VARINT);
        put_varint(buf, u64::from(span.dropped_events));
    }
    if let Some((code, message)) = &span.status {
        put_len(buf, 15, status_size(*code, message));
        if !message.is_empty() {
            put_bytes(buf, 2, message.as_bytes());
        }
        put_key(buf, 3, VARINT);
        put_varint(buf, *code as u64);
    }
    put_fixed32(buf, 16, 1); // sampled
}

/// The protobuf of the resource (its attributes), written once.
pub(crate) fn resource_protobuf(attrs: &[(String, Value)]) -> Vec<u8> {
    let mut buf = Vec::new();
    for (k, v) in attrs {
        put_key_value(&mut buf, 1, k, v, 0);
    }
    buf
}

/// Groups item indexes by logger, in the order loggers first appear.
fn groups<'a>(
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

fn scope_size(name: Option<&str>) -> usize {
    match name {
        Some(name) if !name.is_empty() => len_field(1, name.len()),
        _ => 0,
    }
}

fn put_scope(buf: &mut Vec<u8>, name: Option<&str>) {
    put_len(buf, 1, scope_size(name));
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        put_bytes(buf, 1, name.as_bytes());
    }
}

/// Writes a request's one `ResourceLogs`/`ResourceSpans`: the resource,
/// then a scope message per logger holding its items (field 2 at both
/// levels). `sizes[i]` is item `i`'s size; `put_item` writes it.
fn put_request(
    buf: &mut Vec<u8>,
    resource: &[u8],
    groups: &[(Option<&str>, Vec<usize>)],
    sizes: &[usize],
    mut put_item: impl FnMut(&mut Vec<u8>, usize),
) {
    let scopes: Vec<usize> = groups
        .iter()
        .map(|(name, members)| {
            len_field(1, scope_size(*name))
                + members
                    .iter()
                    .map(|&i| len_field(2, sizes[i]))
                    .sum::<usize>()
        })
        .collect();
    let total =
        len_field(1, resource.len()) + scopes.iter().map(|&n| len_field(2, n)).sum::<usize>();
    buf.reserve(len_field(1, total));
    put_len(buf, 1, total);
    put_bytes(buf, 1, resource);
    for ((name, members), size) in groups.iter().zip(&scopes) {
        put_len(buf, 2, *size);
        put_scope(buf, *name);
        for &i in members {
            put_len(buf, 2, sizes[i]);
            put_item(buf, i);
        }
    }
}

/// `ExportLogsServiceRequest` of `records` as protobuf into `buf`.
///
/// Each record is written once, into a scratch buffer kept by the thread,
/// and its size read off the result; then the request is framed around
/// them (a separate pass to size every attribute cost about as much as
/// writing it).
pub(crate) fn logs_protobuf(records: &[&Record], resource: &[u8], buf: &mut Vec<u8>) {
    /// The largest scratch buffer a thread keeps (a flush without a
    /// background sender encodes on the application's thread).
    const MAX_KEPT: usize = 1 << 20;
    thread_local! {
        static BODIES: Scratch = const { Scratch::new(Vec::new()) };
    }
    with_scratch(&BODIES, MAX_KEPT, |bodies| {
        put_logs(records, resource, buf, bodies);
    });
}

/// [`logs_protobuf`] with the record bodies written in `bodies` first.
fn put_logs(records: &[&Record], resource: &[u8], buf: &mut Vec<u8>, bodies: &mut Vec<u8>) {
    let mut flat = Vec::with_capacity(records.len() * 4);
    let attrs: Vec<Attrs<'_>> = records
        .iter()
        .map(|r| Attrs::of_event(r, &mut flat))
        .collect();
    let mut ends = Vec::with_capacity(records.len());
    for (record, attrs) in records.iter().zip(&attrs) {
        put_log_record(bodies, record, attrs, &flat);
        ends.push(bodies.len());
    }
    let sizes: Vec<usize> = ends
        .iter()
        .scan(0, |start, &end| Some(end - std::mem::replace(start, end)))
        .collect();
    let groups = groups(records.iter().map(|r| r.logger()));
    put_request(buf, resource, &groups, &sizes, |buf, i| {
        buf.extend_from_slice(&bodies[ends[i] - sizes[i]..ends[i]]);
    });
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
    put_request(buf, resource, &groups, &sizes, |buf, i| {
        put_span(buf, &spans[i], &attrs[i], &flat);
    });
}

// -------------------------------------------------------------------- JSON

fn json_str(buf: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

fn json_hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'"');
    for b in bytes {
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 15)]);
    }
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
    }
}

fn json_key_value(buf: &mut Vec<u8>, key: &str, value: &Value, depth: usize) {
    buf.extend_from_slice(b"{\"key\":");
    json_str(buf, key);
    buf.extend_from_slice(b",\"value\":");
    json_any(buf, value, depth);
    buf.push(b'}');
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

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
    use prost::Message as _;

    use super::*;
    use crate::level::Level;
    use crate::otlp::convert::OpenSpans;
    use crate::record::SpanContext;

    fn resource() -> Vec<(String, Value)> {
        vec![
            ("service.name".to_owned(), Value::from("shop")),
            ("n".to_owned(), Value::from(3)),
        ]
    }

    /// Both encodings of a batch, decoded with the `opentelemetry-proto`
    /// types; they must agree.
    fn logs(records: &[Record]) -> ExportLogsServiceRequest {
        let refs: Vec<&Record> = records.iter().collect();
        let mut pb = Vec::new();
        logs_protobuf(&refs, &resource_protobuf(&resource()), &mut pb);
        let from_pb = ExportLogsServiceRequest::decode(&pb[..]).expect("protobuf");
        // Byte for byte what prost writes for the same message.
        assert_eq!(from_pb.encode_to_vec(), pb);
        let mut json = Vec::new();
        logs_json(&refs, &resource_json(&resource()), &mut json);
        let from_json: ExportLogsServiceRequest = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
        assert_eq!(from_pb, from_json, "{}", String::from_utf8_lossy(&json));
        from_pb
    }

    fn traces(records: &[Record]) -> ExportTraceServiceRequest {
        traces_with(records, false)
    }

    /// A traces request of `records`, with span events on or off, checked
    /// as [`logs`] is.
    fn traces_with(records: &[Record], events: bool) -> ExportTraceServiceRequest {
        let mut open = OpenSpans::default();
        let spans = open.plan(records, true, events).spans;
        let mut pb = Vec::new();
        traces_protobuf(&spans, &resource_protobuf(&resource()), &mut pb);
        let from_pb = ExportTraceServiceRequest::decode(&pb[..]).expect("protobuf");
        assert_eq!(from_pb.encode_to_vec(), pb);
        let mut json = Vec::new();
        traces_json(&spans, &resource_json(&resource()), &mut json);
        let from_json: ExportTraceServiceRequest = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
        assert_eq!(from_pb, from_json, "{}", String::from_utf8_lossy(&json));
        from_pb
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Av> {
        attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn s(text: &str) -> Av {
        Av::StringValue(text.to_owned())
    }

    #[test]
    fn values_are_typed_and_repeated_keys_written_once() {
        let cx = SpanContext::new_root();
        let record = Record::builder(Level::Warn, "checked")
            .logger("shop::pay")
            .span_context(cx)
            .field("a", 1)
            .field("neg", -5i64)
            .field("big", u64::MAX)
            .field("f", 0.1)
            .field("nan", f64::NAN)
            .field("inf", f64::NEG_INFINITY)
            .field("null", Value::Null)
            .field("raw", Value::Bytes(vec![0, 255].into()))
            .field(
                "obj",
                Value::Object(
                    vec![
                        ("k".to_owned(), Value::from(1)),
                        ("k".to_owned(), Value::from("last")),
                    ]
                    .into(),
                ),
            )
            .field("list", vec![true, false])
            .field("a", "again")
            .field(CODE_FILE, "user's own")
            .file("src/pay.rs")
            .line(7)
            .function("pay")
            .build();
        let request = logs(std::slice::from_ref(&record));
        let rl = &request.resource_logs[0];
        assert_eq!(
            attr(&rl.resource.as_ref().unwrap().attributes, "n"),
            Some(&Av::IntValue(3))
        );
        assert_eq!(rl.scope_logs[0].scope.as_ref().unwrap().name, "shop::pay");
        let log = &rl.scope_logs[0].log_records[0];
        assert_eq!(log.time_unix_nano, record.timestamp_nanos());
        assert_eq!(log.observed_time_unix_nano, record.timestamp_nanos());
        assert_eq!(
            (log.severity_number, log.severity_text.as_str()),
            (13, "WARN")
        );
        assert_eq!(log.body.as_ref().unwrap().value, Some(s("checked")));
        assert_eq!(log.trace_id, cx.trace_id().to_bytes());
        assert_eq!(log.span_id, cx.span_id().to_bytes());
        assert_eq!(log.flags, 1);
        let a = &log.attributes;
        let keys: Vec<&str> = a.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "neg",
                "big",
                "f",
                "nan",
                "inf",
                "null",
                "raw",
                "obj",
                "list",
                "a",
                CODE_FILE,
                CODE_LINE,
                CODE_FUNCTION
            ]
        );
        assert_eq!(attr(a, "a"), Some(&s("again")));
        assert_eq!(attr(a, "neg"), Some(&Av::IntValue(-5)));
        assert_eq!(attr(a, "big"), Some(&s("18446744073709551615")));
        assert_eq!(attr(a, "f"), Some(&Av::DoubleValue(0.1)));
        assert_eq!(attr(a, "nan"), Some(&s("NaN")));
        assert_eq!(attr(a, "inf"), Some(&s("-Infinity")));
        assert_eq!(attr(a, "null"), None);
        assert_eq!(attr(a, "raw"), Some(&Av::BytesValue(vec![0, 255])));
        let Some(Av::KvlistValue(obj)) = attr(a, "obj") else {
            panic!("{a:?}")
        };
        assert_eq!(obj.values.len(), 1);
        assert_eq!(attr(&obj.values, "k"), Some(&s("last")));
        let Some(Av::ArrayValue(list)) = attr(a, "list") else {
            panic!("{a:?}")
        };
        assert_eq!(
            list.values,
            [
                AnyValue {
                    value: Some(Av::BoolValue(true))
                },
                AnyValue {
                    value: Some(Av::BoolValue(false))
                }
            ]
        );
        assert_eq!(attr(a, CODE_FILE), Some(&s("src/pay.rs")));
        assert_eq!(attr(a, CODE_LINE), Some(&Av::IntValue(7)));
        assert_eq!(attr(a, CODE_FUNCTION), Some(&s("pay")));
    }

    #[test]
    fn loggers_are_scopes_in_order_of_appearance() {
        let records: Vec<Record> = ["a", "b", "a"]
            .iter()
            .map(|l| Record::builder(Level::Info, "e").logger(*l).build())
            .chain(std::iter::once(
                Record::builder(Level::Info, "none").build(),
            ))
            .collect();
        let request = logs(&records);
        let scopes: Vec<(String, usize)> = request.resource_logs[0]
            .scope_logs
            .iter()
            .map(|s| (s.scope.as_ref().unwrap().name.clone(), s.log_records.len()))
            .collect();
        assert_eq!(
            scopes,
            [("a".into(), 2), ("b".into(), 1), (String::new(), 1)]
        );
        let plain = &request.resource_logs[0].scope_logs[2].log_records[0];
        assert!(plain.trace_id.is_empty() && plain.span_id.is_empty() && plain.flags == 0);
    }

    #[test]
    fn a_span_is_built_from_its_end_and_its_start() {
        let root = SpanContext::new_root();
        let child = root.new_child();
        let start = Record::builder(Level::Info, "charge.start")
            .span_context(child)
            .provisional(true)
            .field("user", "u2")
            .field("items", 1)
            .build();
        let end = Record::builder(Level::Error, "charge.end")
            .span_context(child)
            .logger("shop")
            .field("items", 3)
            .field(DURATION_FIELD, 12.5)
            .span_end(true)
            .field(ERROR_FIELD, "card declined")
            .file("src/shop.rs")
            .build();
        let request = traces(&[start.clone(), end.clone()]);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, "charge");
        assert_eq!(span.trace_id, child.trace_id().to_bytes());
        assert_eq!(span.span_id, child.span_id().to_bytes());
        assert_eq!(span.parent_span_id, root.span_id().to_bytes());
        assert_eq!(span.kind, 1);
        assert_eq!(span.flags, 1);
        assert_eq!(span.start_time_unix_nano, start.timestamp_nanos());
        assert_eq!(span.end_time_unix_nano, end.timestamp_nanos());
        let keys: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["user", "items", CODE_FILE]);
        assert_eq!(attr(&span.attributes, "items"), Some(&Av::IntValue(3)));
        let status = span.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "card declined"));

        // Without its start (an earlier process), the duration gives the start.
        let request = traces(std::slice::from_ref(&end));
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            12_500_000
        );
        // A span that did not fail has no status.
        let ok = Record::builder(Level::Info, "ok.end")
            .span_context(root)
            .field(DURATION_FIELD, 1)
            .span_end(true)
            .build();
        let request = traces(&[ok]);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert!(span.status.is_none() && span.parent_span_id.is_empty());
    }

    #[test]
    fn span_events_kind_and_status_encode_as_prost_does() {
        let cx = SpanContext::new_root();
        let mut records = vec![
            Record::builder(Level::Info, "call.start")
                .span_context(cx)
                .provisional(true)
                .field("otel.kind", "Client")
                .field("otel.status_code", "ok")
                .build(),
        ];
        for i in 0..MAX_EVENTS + 2 {
            records.push(
                Record::builder(Level::Warn, if i == 0 { "" } else { "retry" })
                    .span_context(cx)
                    .field("i", i)
                    .file("src/call.rs")
                    .build(),
            );
        }
        records.push(
            Record::builder(Level::Info, "call.end")
                .span_context(cx)
                .field("otel.status_message", "not an error: kept")
                .field(DURATION_FIELD, 1)
                .span_end(true)
                .build(),
        );
        let request = traces_with(&records, true);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, 3);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(1));
        assert_eq!(span.events.len(), MAX_EVENTS);
        assert_eq!(span.dropped_events_count, 2);
        assert_eq!(span.events[0].name, "");
        assert_eq!(span.events[1].name, "retry");
        assert_eq!(span.events[1].time_unix_nano, records[2].timestamp_nanos());
        let a = &span.events[1].attributes;
        assert_eq!(attr(a, "i"), Some(&Av::IntValue(1)));
        assert_eq!(attr(a, "level"), Some(&s("WARN")));
        assert_eq!(attr(a, CODE_FILE), Some(&s("src/call.rs")));
        let keys: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["otel.status_message"]);
        // Off: no events.
        let request = traces_with(&records, false);
        assert!(
            request.resource_spans[0].scope_spans[0].spans[0]
                .events
                .is_empty()
        );
    }

    const MAX_EVENTS: usize = crate::otlp::convert::MAX_EVENTS_PER_SPAN;

    #[test]
    fn events_wait_for_a_span_that_ends_in_a_later_batch() {
        let cx = SpanContext::new_root();
        let first = vec![
            Record::builder(Level::Info, "job.start")
                .span_context(cx)
                .provisional(true)
                .build(),
            Record::builder(Level::Info, "step")
                .span_context(cx)
                .build(),
            Record::builder(Level::Info, "no span").build(),
        ];
        let mut open = OpenSpans::default();
        let plan = open.plan(&first, true, true);
        assert!(plan.spans.is_empty());
        assert_eq!((plan.wait.clone(), plan.unattached), (vec![1], 1));
        let wait = plan.wait;
        // Sent twice (a retry): remembered once.
        open.wait(&first, &wait);
        let end = vec![
            Record::builder(Level::Info, "job.end")
                .span_context(cx)
                .span_end(true)
                .build(),
            Record::builder(Level::Info, "last")
                .span_context(cx)
                .build(),
        ];
        let plan = open.plan(&end, true, true);
        let names: Vec<&str> = plan.spans[0].events.iter().map(|r| r.event()).collect();
        assert_eq!(names, ["step", "last"]);
        let ids = plan.ids;
        open.exported(&ids);
        // After its span went, an event of it goes on no span.
        let late = vec![
            Record::builder(Level::Info, "late")
                .span_context(cx)
                .build(),
        ];
        let plan = open.plan(&late, true, true);
        assert_eq!((plan.wait.len(), plan.unattached), (0, 1));
    }

    #[test]
    fn open_spans_are_bounded_and_forgotten_when_ended() {
        let mut open = OpenSpans::default();
        let starts: Vec<Record> = (0..16_384 + 10)
            .map(|_| {
                Record::builder(Level::Info, "s.start")
                    .span_context(SpanContext::new_root())
                    .provisional(true)
                    .build()
            })
            .collect();
        let (spans, ended) = open.spans(&starts, true);
        assert!(spans.is_empty() && ended.is_empty());
        assert_eq!(open.len(), 16_384);
        let end = Record::builder(Level::Info, "s.end")
            .span_context(*starts.last().unwrap().span_context().unwrap())
            .field(DURATION_FIELD, 1.0)
            .span_end(true)
            .build();
        let (_, ended) = open.spans(std::slice::from_ref(&end), true);
        open.exported(&ended);
        assert_eq!(open.len(), 16_383);
        // Sent once: a retry of the same batch leaves it out.
        let (again, _) = open.spans(std::slice::from_ref(&end), true);
        assert!(again.is_empty());
    }

    fn value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            any::<u64>().prop_map(Value::U64),
            any::<f64>().prop_map(Value::F64),
            ".{0,12}".prop_map(|s| Value::Str(s.into())),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Bytes(b.into())),
        ];
        leaf.prop_recursive(40, 96, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| Value::Array(v.into())),
                proptest::collection::vec(("[a-c]{1,2}", inner), 0..4)
                    .prop_map(|v| Value::Object(v.into())),
            ]
        })
    }

    proptest::proptest! {
        /// Any fields give requests that decode, the same in both encodings.
        #[test]
        fn any_record_encodes_the_same_in_both_encodings(
            fields in proptest::collection::vec(("[a-e]{1,3}|code\\.file\\.path|duration_ms", value()), 0..24),
            event in ".{0,20}",
            logger in proptest::option::of("[a-z:]{0,8}"),
            file in proptest::option::of("[a-z/]{1,10}"),
            id in proptest::option::of(1u64..),
            otel_key in "otel\\.(name|kind|status_code|status_message)",
            otel_value in "(?i:server|client|ok|error|unset|x?)",
        ) {
            let cx = SpanContext::new_root().new_child();
            let mut builder = Record::builder(Level::Info, event.clone()).span_context(cx);
            if let Some(logger) = logger {
                builder = builder.logger(logger);
            }
            if let Some(file) = file {
                builder = builder.file(file).line(3);
            }
            for (k, v) in fields {
                builder = builder.field(k, v);
            }
            if let Some(id) = id.and_then(std::num::NonZeroU64::new) {
                builder = builder.record_id(id);
            }
            let record = builder.build();
            let request = logs(std::slice::from_ref(&record));
            let log = &request.resource_logs[0].scope_logs[0].log_records[0];
            proptest::prop_assert_eq!(log.body.as_ref().unwrap().value.clone(), Some(s(&event)));
            let keys: Vec<&str> = log.attributes.iter().map(|kv| kv.key.as_str()).collect();
            let mut unique = keys.clone();
            unique.sort_unstable();
            unique.dedup();
            proptest::prop_assert_eq!(unique.len(), keys.len(), "unique keys: {:?}", keys);
            // The same record as a span's end: a span, encoded the same both ways.
            let end = Record::builder(Level::Error, format!("{event}x.end"))
                .span_context(cx)
                .span_end(true)
                .fields(record.fields().map(|(k, v)| (k.to_owned(), v.clone())))
                .field(DURATION_FIELD, 1.5)
                .build();
            let request = traces(std::slice::from_ref(&end));
            let span = &request.resource_spans[0].scope_spans[0].spans[0];
            proptest::prop_assert_eq!(&span.name, &format!("{event}x"));
            proptest::prop_assert!(span.attributes.iter().all(|kv| kv.key != DURATION_FIELD));
            // With the record as the span's event, and any `otel.*` fields.
            let special = Record::builder(Level::Info, "y.end")
                .span_context(cx.new_child())
                .span_end(true)
                .field(otel_key, otel_value)
                .build();
            let request = traces_with(&[record, end, special], true);
            let spans = &request.resource_spans[0].scope_spans[0].spans;
            proptest::prop_assert_eq!(spans.len(), 2);
            proptest::prop_assert_eq!(spans[0].events.len(), 1);
            proptest::prop_assert!(spans[1].events.is_empty());
        }
    }
}
