//! Reading a record back from its wire JSON (WIRE_FORMAT.md §1), for tools
//! that resend, convert or render records written earlier.

use std::num::NonZeroU64;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json};

use crate::error::{ParseError, Result};
use crate::ids::{SpanId, TraceId};
use crate::level::Level;
use crate::record::{Record, SpanContext};
use crate::value::Value;
use crate::wire::{self, FLAT_KEYS, META_KEY};

impl Record {
    /// Reads one record from its JSON object in any layout the wire format
    /// allows: namespaced (metadata under `__tracer_meta__`), compat (the
    /// same with a top-level `timestamp`, which is dropped) or flat (metadata
    /// keys at the top level).
    ///
    /// `timestamp`, `event` and `level` are required; `trace_id` and
    /// `span_id` come together or not at all. Levels are read leniently
    /// (`warn` and `WARNING` are [`Level::Warn`]), ids in either case.
    /// Unknown metadata keys are ignored. User keys are kept as written,
    /// `user.`-prefixed ones included, so encoding the record again in the
    /// layout it was read from gives the same keys.
    ///
    /// Fails with a [`ParseError`]
    /// ([`InvalidRecord`](crate::ErrorKind::InvalidRecord)) and a message
    /// naming the offending key.
    ///
    /// # Examples
    ///
    /// ```
    /// use aitrace_model::{Layout, Level, Record};
    ///
    /// let line = r#"{"user_id":"u2","__tracer_meta__":{"timestamp":"2026-11-27T10:15:02.316023Z","event":"checkout_started","level":"info","trace_id":"7902f7b02e9e2b9ce0c11a928f3e2153","span_id":"c945084284bd5c4f","parent_span_id":null}}"#;
    /// let record = Record::from_json(line).unwrap();
    /// assert_eq!(record.level(), Level::Info);
    /// assert_eq!(record.event(), "checkout_started");
    /// assert_eq!(Layout::Namespaced.to_json(&record), line);
    /// ```
    pub fn from_json(text: &str) -> Result<Record, ParseError> {
        let json: Json = serde_json::from_str(text)
            .map_err(|e| invalid(format!("not JSON: {e}")).caused_by(e))?;
        match json {
            Json::Object(object) => from_object(object),
            other => Err(invalid(format!(
                "a record is a JSON object, not {}",
                json_type(&other)
            ))),
        }
    }
}

/// The records of JSON Lines (a spool file's), one per non-empty line, and
/// how many lines could not be read, with the first reason.
pub fn records_from_lines(lines: &[u8]) -> (Vec<Record>, Option<(usize, String)>) {
    let mut records = Vec::new();
    let mut unreadable: Option<(usize, String)> = None;
    for (i, line) in lines.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let read = std::str::from_utf8(line)
            .map_err(|e| invalid(format!("not UTF-8: {e}")))
            .and_then(Record::from_json);
        match read {
            Ok(record) => records.push(record),
            Err(e) => match &mut unreadable {
                Some((count, _)) => *count += 1,
                None => unreadable = Some((1, format!("line {}: {e}", i + 1))),
            },
        }
    }
    (records, unreadable)
}

fn invalid(message: String) -> ParseError {
    ParseError::invalid_record(message)
}

/// The JSON type of a value, for messages.
fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn from_object(mut object: Map<String, Json>) -> Result<Record, ParseError> {
    let (meta, user) = match object.shift_remove(META_KEY) {
        Some(Json::Object(meta)) => {
            // Compat: the top-level timestamp duplicates the meta one.
            if object.get(wire::TIMESTAMP).is_some()
                && object.get(wire::TIMESTAMP) == meta.get(wire::TIMESTAMP)
            {
                object.shift_remove(wire::TIMESTAMP);
            }
            (meta, object)
        }
        Some(other) => {
            return Err(invalid(format!(
                "{META_KEY} must be an object, not {}",
                json_type(&other)
            )));
        }
        None => {
            let mut meta = Map::new();
            for key in FLAT_KEYS {
                if let Some(value) = object.shift_remove(*key) {
                    meta.insert((*key).to_owned(), value);
                }
            }
            (meta, object)
        }
    };
    let text = |key: &str| -> Result<Option<&str>, ParseError> {
        match meta.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(format!(
                "{key} must be a string, not {}",
                json_type(other)
            ))),
        }
    };
    let timestamp = text(wire::TIMESTAMP)?.ok_or_else(|| invalid("no timestamp".into()))?;
    let timestamp = parse_timestamp(timestamp)?;
    let event = text(wire::EVENT)?.ok_or_else(|| invalid("no event".into()))?;
    let level = text(wire::LEVEL)?.ok_or_else(|| invalid("no level".into()))?;
    let level: Level = level
        .parse()
        .map_err(|_| invalid(format!("unknown level {level:?}")))?;
    let mut builder = Record::builder(level, event.to_owned()).timestamp(timestamp);
    if let Some(logger) = text(wire::LOGGER)? {
        builder = builder.logger(logger.to_owned());
    }
    let trace_id = text(wire::TRACE_ID)?;
    let span_id = text(wire::SPAN_ID)?;
    match (trace_id, span_id) {
        (Some(trace), Some(span)) => {
            let trace = TraceId::from_hex(trace)
                .ok_or_else(|| invalid(format!("trace_id {trace:?} is not 32 hex digits")))?;
            let span = parse_span_id(wire::SPAN_ID, span)?;
            let parent = text(wire::PARENT_SPAN_ID)?
                .map(|p| parse_span_id(wire::PARENT_SPAN_ID, p))
                .transpose()?;
            builder = builder.span_context(SpanContext::new(trace, span, parent));
        }
        (None, None) => {}
        (Some(_), None) => return Err(invalid("trace_id without span_id".into())),
        (None, Some(_)) => return Err(invalid("span_id without trace_id".into())),
    }
    if let Some(file) = text(wire::FILE)? {
        builder = builder.file(file.to_owned());
    }
    match meta.get(wire::LINE) {
        None | Some(Json::Null) => {}
        Some(Json::Number(n)) => {
            let line = n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid(format!("line {n} is not a line number")))?;
            builder = builder.line(line);
        }
        Some(other) => {
            return Err(invalid(format!(
                "line must be an integer, not {}",
                json_type(other)
            )));
        }
    }
    if let Some(function) = text(wire::FUNCTION)? {
        builder = builder.function(function.to_owned());
    }
    match meta.get(wire::PROVISIONAL) {
        None | Some(Json::Null) => {}
        Some(Json::Bool(b)) => builder = builder.provisional(*b),
        Some(other) => {
            return Err(invalid(format!(
                "provisional must be a boolean, not {}",
                json_type(other)
            )));
        }
    }
    if let Some(id) = text(wire::RECORD_ID)? {
        let id = u64::from_str_radix(id, 16)
            .ok()
            .filter(|_| id.len() == 16)
            .and_then(NonZeroU64::new)
            .ok_or_else(|| invalid(format!("record_id {id:?} is not 16 hex digits")))?;
        builder = builder.record_id(id);
    }
    let builder = builder
        .reserve_fields(user.len())
        .fields(user.into_iter().map(|(k, v)| (k, Value::from(v))));
    let mut record = builder.build();
    // The wire format has no marker for a span's end: a record named
    // `….end` with a span and a duration is taken for one.
    if record.span_context().is_some()
        && matches!(wire::lifecycle(record.event()), Some((_, wire::Phase::End)))
        && record.field(wire::DURATION_FIELD).is_some()
    {
        record.mark_span_end();
    }
    Ok(record)
}

fn parse_span_id(key: &str, hex: &str) -> Result<SpanId, ParseError> {
    SpanId::from_hex(hex).ok_or_else(|| invalid(format!("{key} {hex:?} is not 16 hex digits")))
}

/// RFC 3339 in UTC (`Z`), any fraction of a second, from 1970 to
/// [`LATEST_TIMESTAMP`]: a record holds nanoseconds since the Unix epoch in
/// 64 bits, and a time outside is refused rather than moved.
fn parse_timestamp(text: &str) -> Result<SystemTime, ParseError> {
    let time = humantime::parse_rfc3339(text)
        .map_err(|e| invalid(format!("timestamp {text:?} is not RFC 3339 UTC: {e}")))?;
    let fits = time
        .duration_since(UNIX_EPOCH)
        .is_ok_and(|since| u64::try_from(since.as_nanos()).is_ok());
    if !fits {
        return Err(invalid(format!(
            "timestamp {text:?} is outside what a record holds \
             (1970-01-01T00:00:00Z to {LATEST_TIMESTAMP})"
        )));
    }
    Ok(time)
}

/// The latest instant a record holds: `u64::MAX` nanoseconds after the Unix
/// epoch.
const LATEST_TIMESTAMP: &str = "2554-07-21T23:34:33.709551615Z";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn lifecycle_records_read_back_keep_their_kind() {
        let root = crate::SpanContext::new_root();
        let start = Record::builder(crate::Level::Info, "job.start")
            .span_context(root)
            .provisional(true)
            .build();
        let no_duration = Record::builder(crate::Level::Info, "job.end")
            .span_context(root)
            .build();
        let lines = format!(
            "{}\n{}\n",
            Layout::Namespaced.to_json(&start),
            Layout::Namespaced.to_json(&no_duration)
        );
        let (records, unreadable) = records_from_lines(lines.as_bytes());
        assert!(unreadable.is_none());
        assert_eq!(records[0].kind(), crate::RecordKind::SpanStart);
        assert_eq!(
            records[1].kind(),
            crate::RecordKind::Event,
            "a `.end` without a duration is not taken for a span end"
        );
    }

    #[test]
    fn lines_that_cannot_be_read_back_are_counted_and_the_rest_kept() {
        let good = Layout::Namespaced.to_json(
            &Record::builder(crate::Level::Info, "ok")
                .span_context(crate::SpanContext::new_root())
                .build(),
        );
        let end = Layout::Namespaced.to_json(
            &Record::builder(crate::Level::Info, "job.end")
                .span_context(crate::SpanContext::new_root())
                .field(crate::wire::DURATION_FIELD, 1.0)
                .build(),
        );
        let lines = format!("{good}\nnot json\n\n{end}\n[1]\n");
        let (records, unreadable) = records_from_lines(lines.as_bytes());
        assert_eq!(records.len(), 2);
        assert!(!records[0].is_span_end());
        assert!(records[1].is_span_end(), "read back as a span end");
        assert_eq!(records[0].kind(), crate::RecordKind::Event);
        assert_eq!(records[1].kind(), crate::RecordKind::SpanEnd);
        let (count, why) = unreadable.unwrap();
        assert_eq!(count, 2);
        assert!(why.starts_with("line 2:"), "{why}");
    }
    use crate::Layout;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> Record {
        let ctx = SpanContext::new(
            TraceId::from_hex("7902f7b02e9e2b9ce0c11a928f3e2153").unwrap(),
            SpanId::from_hex("c945084284bd5c4f").unwrap(),
            SpanId::from_hex("f4c85b034aaea034"),
        );
        Record::builder(Level::Warn, "checkout_started")
            .timestamp(UNIX_EPOCH + Duration::from_micros(1_795_774_502_316_023))
            .logger("shop::checkout")
            .span_context(ctx)
            .file("examples/checkout.rs")
            .line(111)
            .function("simulate_checkout")
            .provisional(true)
            .record_id(NonZeroU64::new(0xabc).unwrap())
            .field("user_id", "u2")
            .field("items", vec![1, 2])
            .field("total", 469.74)
            .field("nested", Value::from(serde_json::json!({"a": {"b": null}})))
            .build()
    }

    #[test]
    fn every_layout_reads_back_to_the_same_record() {
        let record = sample();
        for layout in [Layout::Namespaced, Layout::Flat, Layout::Compat] {
            let json = layout.to_json(&record);
            let back = Record::from_json(&json).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
            assert_eq!(back, record, "{layout:?}");
            assert_eq!(layout.to_json(&back), json, "{layout:?}");
        }
    }

    #[test]
    fn a_record_without_ids_or_location_reads_back() {
        let record = Record::builder(Level::Info, "hello")
            .timestamp(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
            .build();
        let back = Record::from_json(&Layout::Namespaced.to_json(&record)).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.span_context(), None);
    }

    #[test]
    fn bad_records_are_errors_naming_the_key() {
        let ts = r#""timestamp":"2026-11-27T10:15:02.316023Z""#;
        let cases = [
            ("[1]".to_owned(), "not an array"),
            ("{".to_owned(), "not JSON"),
            (r#"{"__tracer_meta__":3}"#.to_owned(), "must be an object"),
            (r#"{"event":"e","level":"info"}"#.to_owned(), "no timestamp"),
            (
                r#"{"timestamp":"yesterday","event":"e","level":"info"}"#.to_owned(),
                "not RFC 3339",
            ),
            (format!(r#"{{{ts},"level":"info"}}"#), "no event"),
            (
                format!(r#"{{{ts},"event":"e","level":"loud"}}"#),
                "unknown level",
            ),
            (
                format!(r#"{{{ts},"event":5,"level":"info"}}"#),
                "event must be a string",
            ),
            (
                format!(
                    r#"{{{ts},"event":"e","level":"info","trace_id":"00000000000000000000000000000000","span_id":"c945084284bd5c4f"}}"#
                ),
                "trace_id",
            ),
            (
                format!(
                    r#"{{{ts},"event":"e","level":"info","trace_id":"7902f7b02e9e2b9ce0c11a928f3e2153"}}"#
                ),
                "trace_id without span_id",
            ),
            (
                format!(r#"{{{ts},"event":"e","level":"info","line":-1}}"#),
                "not a line number",
            ),
            (
                format!(r#"{{{ts},"event":"e","level":"info","provisional":"yes"}}"#),
                "provisional must be a boolean",
            ),
        ];
        for (text, expected) in cases {
            let err = Record::from_json(&text).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidRecord, "{text}");
            assert!(err.to_string().contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn the_compat_timestamp_is_dropped_but_a_different_user_timestamp_is_kept() {
        let meta = r#""__tracer_meta__":{"timestamp":"2026-11-27T10:15:02.316023Z","event":"e","level":"warning"}"#;
        let compat = format!(r#"{{"timestamp":"2026-11-27T10:15:02.316023Z",{meta}}}"#);
        assert_eq!(Record::from_json(&compat).unwrap().fields().len(), 0);
        let user = format!(r#"{{"timestamp":"tomorrow",{meta}}}"#);
        let record = Record::from_json(&user).unwrap();
        assert_eq!(record.field("timestamp"), Some(&Value::from("tomorrow")));
        assert_eq!(record.level(), Level::Warn);
    }
}
