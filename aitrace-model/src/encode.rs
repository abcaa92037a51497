//! Encoding records as the JSON the aitrace tools read (WIRE_FORMAT.md §1).

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::ids::hex;
use crate::location;
use crate::record::Record;
use crate::value::Encode;
use crate::wire::{self, FLAT_KEYS, META_KEY, RENAMED_KEY_PREFIX, TIMESTAMP};

/// How a record is laid out as JSON.
///
/// # Examples
///
/// ```
/// use aitrace_model::{Layout, Level, Record};
///
/// let record = Record::builder(Level::Info, "hello").field("n", 1).build();
/// let json = Layout::Namespaced.to_json(&record);
/// assert!(json.starts_with(r#"{"n":1,"__tracer_meta__":{"timestamp":""#));
/// let flat = Layout::Flat.to_json(&record);
/// assert!(flat.contains(r#""event":"hello""#) && flat.contains(r#""n":1"#));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// User data at the top level, tracer metadata under `__tracer_meta__`
    /// (the default; version 2 of the format).
    #[default]
    Namespaced,
    /// Metadata keys at the top level next to user data (version 1).
    Flat,
    /// Namespaced, with `timestamp` also at the top level for indexers.
    Compat,
}

impl Layout {
    /// Encodes one record as a JSON object.
    pub fn to_json(self, record: &Record) -> String {
        let mut out = Vec::with_capacity(256);
        self.write(&mut out, record);
        // The serializer only ever writes UTF-8.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends one record's JSON object to `out`, without a newline.
    pub fn write(self, out: &mut Vec<u8>, record: &Record) {
        if self == Layout::Namespaced {
            return write_namespaced(out, record);
        }
        self.write_with_serde(out, record);
    }

    /// The general path, through `serde`: every layout.
    fn write_with_serde(self, out: &mut Vec<u8>, record: &Record) {
        let mut ser = serde_json::Serializer::new(&mut *out);
        // Writing to a Vec cannot fail and every value has an infallible
        // representation, so an error here would be a bug in this module.
        let result = LayoutRecord {
            layout: self,
            record,
        }
        .serialize(&mut ser);
        debug_assert!(result.is_ok(), "encoding failed: {result:?}");
    }

    /// Appends `records` to `out` as a JSON array.
    pub fn write_array<'a>(self, out: &mut Vec<u8>, records: impl IntoIterator<Item = &'a Record>) {
        out.push(b'[');
        for (i, record) in records.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.write(out, record);
        }
        out.push(b']');
    }

    /// Appends `records` to `out` as JSON Lines, each ending in `\n`.
    pub fn write_lines<'a>(self, out: &mut Vec<u8>, records: impl IntoIterator<Item = &'a Record>) {
        for record in records {
            self.write(out, record);
            out.push(b'\n');
        }
    }

    fn reserved(self, key: &str) -> bool {
        match self {
            Layout::Namespaced => key == META_KEY,
            Layout::Compat => key == META_KEY || key == TIMESTAMP,
            Layout::Flat => FLAT_KEYS.contains(&key),
        }
    }

    fn reserved_or_renamed(self, key: &str) -> bool {
        self.reserved(key)
            || key
                .strip_prefix(RENAMED_KEY_PREFIX)
                .is_some_and(|rest| self.reserved(rest))
    }
}

struct LayoutRecord<'a> {
    layout: Layout,
    record: &'a Record,
}

impl Serialize for LayoutRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let LayoutRecord { layout, record } = *self;
        let mut map = s.serialize_map(None)?;
        if layout == Layout::Flat {
            Meta(record).write_entries(&mut map)?;
        }
        if layout == Layout::Compat {
            map.serialize_entry(TIMESTAMP, &Timestamp(record))?;
        }
        write_user_fields(layout, record, &mut map)?;
        if layout != Layout::Flat {
            map.serialize_entry(META_KEY, &Meta(record))?;
        }
        map.end()
    }
}

/// Writes user fields: reserved keys renamed, a repeated key written once
/// with its last value.
fn write_user_fields<M: SerializeMap>(
    layout: Layout,
    record: &Record,
    map: &mut M,
) -> Result<(), M::Error> {
    let mut result = Ok(());
    for_each_user_field(layout, record, |key, value| {
        if result.is_ok() {
            result = map.serialize_entry(key, &Encode { value, depth: 0 });
        }
    });
    result
}

/// Calls `f` with each user field as written: reserved keys renamed, a
/// repeated key once with its last value, in first-to-last order.
fn for_each_user_field(layout: Layout, record: &Record, mut f: impl FnMut(&str, &crate::Value)) {
    let fields = record.raw_fields();
    let any_renamed = fields.iter().any(|(k, _)| layout.reserved_or_renamed(k));
    fn key_of(layout: Layout, k: &str) -> Cow<'_, str> {
        if layout.reserved(k) {
            Cow::Owned(format!("{RENAMED_KEY_PREFIX}{k}"))
        } else {
            Cow::Borrowed(k)
        }
    }
    if fields.len() <= 16 && !any_renamed {
        for (i, (key, value)) in fields.iter().enumerate() {
            if fields[i + 1..].iter().any(|(later, _)| later == key) {
                continue;
            }
            f(key, value);
        }
        return;
    }
    let keys: Vec<Cow<'_, str>> = fields.iter().map(|(k, _)| key_of(layout, k)).collect();
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        last.insert(key.as_ref(), i);
    }
    for (i, (key, (_, value))) in keys.iter().zip(fields).enumerate() {
        if last.get(key.as_ref()) == Some(&i) {
            f(key, value);
        }
    }
}

/// The namespaced layout written by hand: the metadata's keys are constants
/// and its ids and timestamp never need escaping, so only free text goes
/// through `serde_json`. The output is byte-for-byte what the `serde` path
/// writes (a test checks it); this one is the hot path of every HTTP batch.
/// Its byte literals spell the [`wire`] keys the `serde` path names, which
/// is how that test ties them to the wire module.
fn write_namespaced(out: &mut Vec<u8>, r: &Record) {
    // Room for a typical record at once, not a capacity check per piece.
    out.reserve(512);
    out.push(b'{');
    let mut first = true;
    for_each_user_field(Layout::Namespaced, r, |key, value| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(out, key);
        out.push(b':');
        write_value(out, value);
    });
    if !first {
        out.push(b',');
    }
    out.extend_from_slice(b"\"__tracer_meta__\":{\"timestamp\":\"");
    write_timestamp(out, r.timestamp_nanos());
    out.extend_from_slice(b"\",\"event\":");
    write_json_str(out, r.event());
    out.extend_from_slice(b",\"level\":\"");
    out.extend_from_slice(r.level().as_str().as_bytes());
    out.push(b'"');
    if let Some(logger) = r.logger() {
        out.extend_from_slice(b",\"logger\":");
        write_json_str(out, logger);
    }
    if let Some(ctx) = r.span_context() {
        out.extend_from_slice(b",\"trace_id\":\"");
        out.extend_from_slice(hex_id::<32>(&ctx.trace_id().to_bytes()).as_bytes());
        out.extend_from_slice(b"\",\"span_id\":\"");
        out.extend_from_slice(hex_id::<16>(&ctx.span_id().to_bytes()).as_bytes());
        match ctx.parent_span_id() {
            Some(parent) => {
                out.extend_from_slice(b"\",\"parent_span_id\":\"");
                out.extend_from_slice(hex_id::<16>(&parent.to_bytes()).as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"\",\"parent_span_id\":null"),
        }
    }
    let loc = r.location();
    if let Some(file) = loc.file() {
        out.extend_from_slice(b",\"file\":");
        write_json_str(out, &location::display_path(file));
    }
    if let Some(line) = loc.line() {
        out.extend_from_slice(b",\"line\":");
        out.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
    }
    if let Some(function) = loc.function() {
        out.extend_from_slice(b",\"function\":");
        write_json_str(out, function);
    }
    if r.is_provisional() {
        out.extend_from_slice(b",\"provisional\":true");
    }
    if let Some(id) = r.record_id() {
        out.extend_from_slice(b",\"record_id\":\"");
        out.extend_from_slice(hex_id::<16>(&id.get().to_be_bytes()).as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}}");
}

/// A JSON string: copied between quotes when nothing in it needs escaping
/// (keys, names, paths, most values), else escaped by `serde_json`.
#[inline]
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    if !needs_escape(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Whether some byte of `text` has to be escaped in JSON (a control
/// character, `"` or `\\`), looked at eight bytes at a time (exact: a
/// borrow only runs on from a byte that matches).
#[inline]
fn needs_escape(text: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below `n` (n <= 0x80) borrows into its own top bit.
    let below = |w: u64, n: u8| w.wrapping_sub(u64::from(n) * ONES) & !w & HIGH;
    let has = |w: u64| {
        below(w, 0x20)
            | below(w ^ (u64::from(b'"') * ONES), 1)
            | below(w ^ (u64::from(b'\\') * ONES), 1)
            != 0
    };
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        if has(u64::from_le_bytes(word)) {
            return true;
        }
    }
    (chunks.remainder().iter()).any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A field value: scalars and strings written here, the rest (floats,
/// bytes, nested values, the fallbacks) by `serde_json` through [`Encode`],
/// byte for byte the same as the `serde` path.
#[inline]
fn write_value(out: &mut Vec<u8>, value: &crate::value::Value) {
    use crate::value::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::Str(text) => write_json_str(out, text),
        _ => {
            let _ = serde_json::to_writer(&mut *out, &Encode { value, depth: 0 });
        }
    }
}

/// The RFC 3339 UTC time, to the microsecond, of `nanos` since the epoch:
/// the date and time of day formatted by `humantime` once per second per
/// thread, the microseconds appended here (a batch's records mostly share
/// their second).
fn write_timestamp(out: &mut Vec<u8>, nanos: u64) {
    thread_local! {
        /// The last second formatted, and its `YYYY-MM-DDTHH:MM:SS`.
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let (secs, micros) = (nanos / 1_000_000_000, (nanos % 1_000_000_000) / 1000);
    let prefix = SECOND
        .try_with(|cell| {
            let (known, text) = cell.get();
            if known == secs {
                return Some(text);
            }
            let text = second_text(secs)?;
            cell.set((secs, text));
            Some(text)
        })
        .ok()
        .flatten();
    match prefix {
        Some(prefix) => {
            out.extend_from_slice(&prefix);
            let mut tail = *b".000000Z";
            let mut left = micros;
            for digit in tail[1..7].iter_mut().rev() {
                *digit = b'0' + (left % 10) as u8;
                left /= 10;
            }
            out.extend_from_slice(&tail);
        }
        None => {
            // Not reached (a record's time ends in 2554, long before
            // humantime's text changes shape), but written whole if it is.
            let mut text = StackStr::<40>::new();
            let time = UNIX_EPOCH + Duration::from_nanos(nanos);
            let _ = write!(text, "{}", humantime::format_rfc3339_micros(time));
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a whole second since the epoch, by `humantime`
/// (`None` when it is not 19 bytes long).
fn second_text(secs: u64) -> Option<[u8; 19]> {
    let mut text = StackStr::<32>::new();
    let time = UNIX_EPOCH + Duration::from_secs(secs);
    write!(text, "{}", humantime::format_rfc3339_seconds(time)).ok()?;
    // `…SSZ`: the 19 bytes before the zone.
    let bytes = text.as_bytes();
    (bytes.len() == 20)
        .then(|| bytes[..19].try_into().ok())
        .flatten()
}

struct Timestamp<'a>(&'a Record);

impl Serialize for Timestamp<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = StackStr::<32>::new();
        let _ = write!(
            text,
            "{}",
            humantime::format_rfc3339_micros(self.0.timestamp())
        );
        s.serialize_str(text.as_str())
    }
}

/// A small string formatted on the stack, so short values (timestamps, ids)
/// reach the serializer as one `&str` instead of through `collect_str`.
struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    fn new() -> Self {
        StackStr {
            buf: [0; N],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so this cannot fail.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> std::fmt::Write for StackStr<N> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        if end > N {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Lower-case hex of id bytes, on the stack.
fn hex_id<const N: usize>(bytes: &[u8]) -> StackStr<N> {
    StackStr {
        buf: hex(bytes),
        len: (2 * bytes.len()).min(N),
    }
}

struct Meta<'a>(&'a Record);

impl Meta<'_> {
    fn write_entries<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let r = self.0;
        map.serialize_entry(wire::TIMESTAMP, &Timestamp(r))?;
        map.serialize_entry(wire::EVENT, r.event())?;
        map.serialize_entry(wire::LEVEL, r.level().as_str())?;
        if let Some(logger) = r.logger() {
            map.serialize_entry(wire::LOGGER, logger)?;
        }
        if let Some(ctx) = r.span_context() {
            map.serialize_entry(
                wire::TRACE_ID,
                hex_id::<32>(&ctx.trace_id().to_bytes()).as_str(),
            )?;
            map.serialize_entry(
                wire::SPAN_ID,
                hex_id::<16>(&ctx.span_id().to_bytes()).as_str(),
            )?;
            match ctx.parent_span_id() {
                Some(parent) => map.serialize_entry(
                    wire::PARENT_SPAN_ID,
                    hex_id::<16>(&parent.to_bytes()).as_str(),
                )?,
                None => map.serialize_entry(wire::PARENT_SPAN_ID, &())?,
            }
        }
        let loc = r.location();
        if let Some(file) = loc.file() {
            map.serialize_entry(wire::FILE, &location::display_path(file))?;
        }
        if let Some(line) = loc.line() {
            map.serialize_entry(wire::LINE, &line)?;
        }
        if let Some(function) = loc.function() {
            map.serialize_entry(wire::FUNCTION, function)?;
        }
        if r.is_provisional() {
            map.serialize_entry(wire::PROVISIONAL, &true)?;
        }
        if let Some(id) = r.record_id() {
            map.serialize_entry(
                wire::RECORD_ID,
                hex_id::<16>(&id.get().to_be_bytes()).as_str(),
            )?;
        }
        Ok(())
    }
}

impl Serialize for Meta<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.write_entries(&mut map)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Level, SpanContext, Value};
    use serde_json::json;

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    fn sample() -> Record {
        let ctx = SpanContext::new(
            crate::TraceId::from_hex("7902f7b02e9e2b9ce0c11a928f3e2153").unwrap(),
            crate::SpanId::from_hex("c945084284bd5c4f").unwrap(),
            crate::SpanId::from_hex("f4c85b034aaea034"),
        );
        Record::builder(Level::Info, "checkout_started")
            .timestamp(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_774_502_316_023),
            )
            .logger("shop::checkout")
            .span_context(ctx)
            .file("examples/checkout.rs")
            .line(111)
            .function("simulate_checkout")
            .field("user_id", "u2")
            .field("items", 3)
            .field("total", 469.74)
            .build()
    }

    #[test]
    fn namespaced_matches_the_wire_format_example() {
        let got = parse(&Layout::Namespaced.to_json(&sample()));
        assert_eq!(
            got,
            json!({
                "user_id": "u2", "items": 3, "total": 469.74,
                "__tracer_meta__": {
                    "timestamp": "2026-11-27T10:15:02.316023Z",
                    "event": "checkout_started", "level": "info",
                    "logger": "shop::checkout",
                    "trace_id": "7902f7b02e9e2b9ce0c11a928f3e2153",
                    "span_id": "c945084284bd5c4f",
                    "parent_span_id": "f4c85b034aaea034",
                    "file": "examples/checkout.rs", "line": 111,
                    "function": "simulate_checkout"
                }
            })
        );
    }

    #[test]
    fn flat_and_compat_layouts() {
        let flat = parse(&Layout::Flat.to_json(&sample()));
        assert_eq!(flat["event"], "checkout_started");
        assert_eq!(flat["span_id"], "c945084284bd5c4f");
        assert_eq!(flat["user_id"], "u2");
        assert!(flat.get(META_KEY).is_none());
        let compat = parse(&Layout::Compat.to_json(&sample()));
        assert_eq!(compat["timestamp"], "2026-11-27T10:15:02.316023Z");
        assert_eq!(compat[META_KEY]["timestamp"], compat["timestamp"]);
    }

    #[test]
    fn record_without_span_has_no_ids_and_root_has_null_parent() {
        let plain = parse(&Layout::Namespaced.to_json(&Record::builder(Level::Warn, "x").build()));
        let meta = plain[META_KEY].as_object().unwrap();
        assert_eq!(meta["level"], "warning");
        for key in [
            "trace_id",
            "span_id",
            "parent_span_id",
            "file",
            "line",
            "provisional",
        ] {
            assert!(!meta.contains_key(key), "{key}");
        }
        let root = Record::builder(Level::Info, "job.start")
            .span_context(SpanContext::new_root())
            .provisional(true)
            .build();
        let meta = parse(&Layout::Namespaced.to_json(&root))[META_KEY].clone();
        assert_eq!(meta["parent_span_id"], serde_json::Value::Null);
        assert_eq!(meta["provisional"], true);
    }

    #[test]
    fn colliding_and_repeated_user_keys_stay_valid_and_distinct() {
        let record = Record::builder(Level::Info, "real_event")
            .field("event", "user event")
            .field(META_KEY, "sneaky")
            .field("timestamp", 5)
            .field("dup", 1)
            .field("dup", 2)
            .build();
        let ns = parse(&Layout::Namespaced.to_json(&record));
        assert_eq!(ns["event"], "user event");
        assert_eq!(ns["user.__tracer_meta__"], "sneaky");
        assert_eq!(ns[META_KEY]["event"], "real_event");
        assert_eq!(ns["dup"], 2);
        let flat = parse(&Layout::Flat.to_json(&record));
        assert_eq!(flat["event"], "real_event");
        assert_eq!(flat["user.event"], "user event");
        assert_eq!(flat["user.timestamp"], 5);
        let compat = parse(&Layout::Compat.to_json(&record));
        assert_eq!(compat["user.timestamp"], 5);
        assert!(compat["timestamp"].is_string());
        let text = Layout::Namespaced.to_json(&record);
        assert_eq!(text.matches("\"dup\"").count(), 1);
    }

    #[test]
    fn bad_values_still_make_valid_json() {
        let huge = "x".repeat(5 << 20);
        let record = Record::builder(Level::Error, "bad\u{0}\"event")
            .field("nan", f64::NAN)
            .field("inf", f64::INFINITY)
            .field("bytes", &b"\xff\xfe"[..])
            .field("lossy", Value::from_utf8_lossy(b"\xc3\x28"))
            .field("huge", huge.as_str())
            .field("", "empty key")
            .field("quote\"key\n", "ctl\u{1}")
            .build();
        for layout in [Layout::Namespaced, Layout::Flat, Layout::Compat] {
            let v = parse(&layout.to_json(&record));
            assert_eq!(v["nan"], "NaN");
            assert_eq!(v["inf"], "Infinity");
            assert_eq!(v["bytes"], "fffe");
            assert_eq!(v["lossy"], "\u{fffd}(");
            assert_eq!(v["huge"].as_str().unwrap().len(), huge.len());
            assert_eq!(v[""], "empty key");
            assert_eq!(v["quote\"key\n"], "ctl\u{1}");
        }
    }

    #[test]
    fn the_hand_written_namespaced_writer_matches_serde_byte_for_byte() {
        let mut records = vec![sample(), Record::builder(Level::Warn, "plain").build()];
        records.push(
            Record::builder(Level::Error, "tricky \"event\"\n\u{1}é")
                .logger("a\\b")
                .span_context(SpanContext::new_root())
                .file("/abs/path with \"quote\".rs")
                .line(u32::MAX)
                .function("f<T>")
                .provisional(true)
                .field("event", "user")
                .field(META_KEY, 1)
                .field("dup", 1)
                .field("dup", 2)
                .field("nan", f64::NAN)
                .field(
                    "nested",
                    Value::from_iter([("k\"", vec![Value::Null, Value::Bool(true)])]),
                )
                .build(),
        );
        let mut with_id = sample();
        with_id.assign_id();
        records.push(with_id);
        for record in &records {
            let (mut fast, mut reference) = (Vec::new(), Vec::new());
            write_namespaced(&mut fast, record);
            Layout::Namespaced.write_with_serde(&mut reference, record);
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(reference).unwrap()
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_hand_written_writer_matches_serde_for_any_fields_and_time(
            event in ".{0,12}",
            key in ".{0,8}",
            text in "(.|[\\x00-\\x1f\"\\\\\\x7f]){0,24}",
            n in proptest::prelude::any::<i64>(),
            u in proptest::prelude::any::<u64>(),
            f in proptest::prelude::any::<f64>(),
            flag in proptest::prelude::any::<bool>(),
            secs in 0u64..20_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let record = Record::builder(Level::Info, event)
                .timestamp(UNIX_EPOCH + Duration::new(secs, nanos))
                .field(key, text.as_str())
                .field("n", n)
                .field("u", u)
                .field("f", f)
                .field("flag", flag)
                .field("null", Value::Null)
                .build();
            let (mut fast, mut reference) = (Vec::new(), Vec::new());
            write_namespaced(&mut fast, &record);
            Layout::Namespaced.write_with_serde(&mut reference, &record);
            proptest::prop_assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(reference).unwrap()
            );
        }
    }

    #[test]
    fn needs_escape_finds_every_byte_that_needs_it_at_every_position() {
        for byte in 0..=u8::MAX {
            let must = byte < 0x20 || byte == b'"' || byte == b'\\';
            for at in 0..17 {
                let mut text = vec![b'a'; 17];
                text[at] = byte;
                assert_eq!(needs_escape(&text), must, "byte {byte:#x} at {at}");
            }
        }
        assert!(!needs_escape("naïve ünïcode ✓".as_bytes()));
    }

    #[test]
    fn stack_formatting_matches_display() {
        let id = crate::TraceId::random();
        assert_eq!(hex_id::<32>(&id.to_bytes()).as_str(), id.to_string());
        let span = crate::SpanId::random();
        assert_eq!(hex_id::<16>(&span.to_bytes()).as_str(), span.to_string());
        let mut small = StackStr::<4>::new();
        assert!(write!(small, "toolong").is_err());
    }

    #[test]
    fn array_and_lines() {
        let records = [sample(), sample()];
        let mut out = Vec::new();
        Layout::Namespaced.write_array(&mut out, &records);
        assert_eq!(
            parse(std::str::from_utf8(&out).unwrap())
                .as_array()
                .unwrap()
                .len(),
            2
        );
        out.clear();
        Layout::Flat.write_lines(&mut out, &records);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().map(parse).count(), 2);
    }
}
