//! Records in any layout (namespaced, flat, compat), read leniently for
//! display: anything missing or malformed shows as missing; nothing here
//! fails. The HTML report and the `aitrace` command line read through it.

use aitrace_model::wire::{self, DURATION_FIELD, ERROR_FIELD, FLAT_KEYS, META_KEY, Phase};
use serde_json::{Map, Value as Json};

/// The metadata of a record in any layout: its `_meta` object when it has
/// one, else the record itself (flat and compat layouts).
pub fn meta_of(record: &Map<String, Json>) -> &Map<String, Json> {
    match record.get(META_KEY) {
        Some(Json::Object(meta)) => meta,
        _ => record,
    }
}

/// The levels in order, as the wire format writes them.
pub const LEVELS: [&str; 5] = ["trace", "debug", "info", "warning", "error"];

/// A level's rank in [`LEVELS`]; unknown levels rank as `info`.
pub fn level_rank(level: &str) -> usize {
    match level.to_ascii_lowercase().as_str() {
        "trace" => 0,
        "debug" => 1,
        "warn" | "warning" => 3,
        "error" | "critical" | "fatal" => 4,
        _ => 2,
    }
}

/// One record as the viewer sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Rec {
    /// Order of arrival.
    pub seq: usize,
    /// The timestamp as written.
    pub timestamp: Option<String>,
    /// The timestamp as microseconds since the epoch, when it reads as RFC 3339.
    pub micros: Option<i128>,
    /// The event name (`""` when missing).
    pub event: String,
    /// The level's rank in [`LEVELS`] ([`level_rank`]).
    pub level: usize,
    /// The trace id.
    pub trace_id: Option<String>,
    /// The span id.
    pub span_id: Option<String>,
    /// The parent span id.
    pub parent_span_id: Option<String>,
    /// The user fields, in order.
    pub fields: Vec<(String, Json)>,
    /// The record's JSON text, for `--grep`.
    pub text: String,
}

impl Rec {
    /// The record `object`, the `seq`-th read, whose JSON text is `text`.
    pub fn new(seq: usize, object: &Map<String, Json>, text: &str) -> Rec {
        let namespaced = matches!(object.get(META_KEY), Some(Json::Object(_)));
        let meta = meta_of(object);
        let string = |key: &str| meta.get(key).and_then(Json::as_str).map(str::to_owned);
        let timestamp = string(wire::TIMESTAMP);
        let fields = object
            .iter()
            .filter(|(k, v)| {
                if namespaced {
                    k.as_str() != META_KEY
                        && !(k.as_str() == wire::TIMESTAMP && meta.get(wire::TIMESTAMP) == Some(v))
                } else {
                    !FLAT_KEYS.contains(&k.as_str())
                }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Rec {
            seq,
            micros: timestamp.as_deref().and_then(micros),
            timestamp,
            event: string(wire::EVENT).unwrap_or_default(),
            level: level_rank(
                meta.get(wire::LEVEL)
                    .and_then(Json::as_str)
                    .unwrap_or("info"),
            ),
            trace_id: string(wire::TRACE_ID),
            span_id: string(wire::SPAN_ID),
            parent_span_id: string(wire::PARENT_SPAN_ID),
            fields,
            text: text.to_owned(),
        }
    }

    /// The user field `key` (the last one, when repeated).
    pub fn field(&self, key: &str) -> Option<&Json> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// `Some(name)` for `NAME.start`.
    pub fn span_start(&self) -> Option<&str> {
        self.span_id.as_ref()?;
        self.lifecycle(Phase::Start)
    }

    /// `Some(name)` for `NAME.end`.
    pub fn span_end(&self) -> Option<&str> {
        self.span_id.as_ref()?;
        self.lifecycle(Phase::End)
    }

    /// The span name, when the event is that phase's lifecycle event.
    fn lifecycle(&self, phase: Phase) -> Option<&str> {
        wire::lifecycle(&self.event).and_then(|(name, p)| (p == phase).then_some(name))
    }

    /// A span end's `duration_ms`.
    pub fn duration_ms(&self) -> Option<f64> {
        self.field(DURATION_FIELD).and_then(Json::as_f64)
    }

    /// The error of a failed span's `.end` (or of any record with an `error` field).
    pub fn error(&self) -> Option<String> {
        self.field(ERROR_FIELD).map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// User fields as `key=value`, values shortened.
    pub fn compact_fields(&self, skip: &[&str]) -> String {
        let mut out = String::new();
        for (k, v) in &self.fields {
            if skip.contains(&k.as_str()) {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            let value = match v {
                Json::String(s) if !s.is_empty() && !s.contains([' ', '"', '=']) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(k);
            out.push('=');
            if value.chars().count() > 60 {
                out.extend(value.chars().take(59));
                out.push('…');
            } else {
                out.push_str(&value);
            }
        }
        out
    }
}

/// Microseconds since the epoch of an RFC 3339 timestamp.
pub fn micros(text: &str) -> Option<i128> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    let d = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i128::try_from(d.as_micros()).ok()
}
