//! Which attributes a record or span carries, whatever the encoding: its
//! fields, each key once (the last one wins, as in the wire format), and
//! the extras aitrace adds (code location, record id, a span event's
//! level). Also how a value OTLP has no type for is written as text.

use crate::semconv::{CODE_FILE, CODE_FUNCTION, CODE_LINE, LEVEL, RECORD_ID, severity};
use crate::span::SpanParts;
use crate::wire::{DURATION_FIELD, ERROR_FIELD};
use aitrace_model::Record;
use aitrace_model::Value;

/// A field of a message: its key and value, borrowed.
pub(crate) type Field<'a> = (&'a str, &'a Value);

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

pub(crate) fn object_fields(entries: &[(String, Value)]) -> Vec<Field<'_>> {
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

/// A non-finite float's wire-format name.
pub(crate) fn non_finite(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// What a value nested deeper than `MAX_VALUE_DEPTH` is written as.
pub(crate) const MAX_DEPTH_TEXT: &str = "[max depth]";

/// An attribute aitrace adds to a record's own fields: the code location,
/// the record id and a span event's level, borrowed.
#[derive(Clone, Copy)]
pub(crate) enum Extra<'a> {
    Str(&'static str, &'a str),
    Int(&'static str, i64),
    /// A record id, written as 16 hex digits.
    Hex(&'static str, u64),
}

impl Extra<'_> {
    #[inline]
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Extra::Str(k, _) | Extra::Int(k, _) | Extra::Hex(k, _) => k,
        }
    }
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

/// One record's attributes: a range of a list shared by the batch (its
/// fields, each key once) and its extras.
pub(crate) struct Attrs<'a> {
    start: usize,
    end: usize,
    extra: [Option<Extra<'a>>; 5],
}

impl<'a> Attrs<'a> {
    /// Appends an event's fields to `flat`: each key once, and not those
    /// an extra of the record has (the code location wins over a field of
    /// the same name).
    #[inline]
    pub(crate) fn of_event(record: &'a Record, flat: &mut Vec<Field<'a>>) -> Self {
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
    #[inline]
    pub(crate) fn of_span_event(record: &'a Record, flat: &mut Vec<Field<'a>>) -> Self {
        let mut attrs = Attrs::of_event(record, flat);
        if record.field(LEVEL).is_none() {
            attrs.extra[4] = Some(Extra::Str(LEVEL, severity(record.level()).1));
        }
        attrs
    }

    /// Appends a span's fields (its start's, then its end's) to `flat`.
    pub(crate) fn of_span(span: &'a SpanParts<'a>, flat: &mut Vec<Field<'a>>) -> Self {
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

    #[inline]
    pub(crate) fn fields<'f>(&self, flat: &'f [Field<'a>]) -> &'f [Field<'a>] {
        &flat[self.start..self.end]
    }

    #[inline]
    pub(crate) fn extras(&self) -> impl Iterator<Item = &Extra<'a>> {
        self.extra.iter().flatten()
    }
}

/// A span's attributes and those of each of its events, in `flat`.
pub(crate) struct SpanAttrs<'a> {
    pub(crate) own: Attrs<'a>,
    pub(crate) events: Vec<Attrs<'a>>,
}

impl<'a> SpanAttrs<'a> {
    pub(crate) fn of(span: &'a SpanParts<'a>, flat: &mut Vec<Field<'a>>) -> Self {
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
