//! Names the wire format gives meaning to (WIRE_FORMAT.md): the meta keys,
//! the reserved key and event names, the span lifecycle convention
//! (`NAME.start` / `NAME.end`) and the documented fallbacks' limits.
//!
//! Everything that reads or writes records asks this module: the encoder
//! and decoder, the HTML report, OTLP, the command-line tool and the
//! adapters. It depends on nothing else in the crate.
//!
//! # Examples
//!
//! ```
//! use aitrace_model::wire::{self, Phase};
//!
//! assert_eq!(wire::lifecycle("checkout.start"), Some(("checkout", Phase::Start)));
//! assert_eq!(wire::lifecycle("checkout.end"), Some(("checkout", Phase::End)));
//! assert_eq!(wire::lifecycle("checkout_started"), None);
//! assert_eq!(wire::lifecycle_event("checkout", Phase::End), "checkout.end");
//! ```

/// The reserved key under which the namespaced layout puts tracer metadata.
pub const META_KEY: &str = "__tracer_meta__";

/// Meta key: the record's time, RFC 3339 in UTC with microseconds.
pub const TIMESTAMP: &str = "timestamp";
/// Meta key: the event name (`NAME.start` / `NAME.end` for a span's lifecycle).
pub const EVENT: &str = "event";
/// Meta key: the level, lower case (`warning`, not `warn`).
pub const LEVEL: &str = "level";
/// Meta key: the logger, target or module that produced the record.
pub const LOGGER: &str = "logger";
/// Meta key: 32 lower-case hex digits of the W3C trace id.
pub const TRACE_ID: &str = "trace_id";
/// Meta key: 16 lower-case hex digits of the span id.
pub const SPAN_ID: &str = "span_id";
/// Meta key: the enclosing span's id, `null` for a root span.
pub const PARENT_SPAN_ID: &str = "parent_span_id";
/// Meta key: the call site's source file.
pub const FILE: &str = "file";
/// Meta key: the call site's 1-based line.
pub const LINE: &str = "line";
/// Meta key: the call site's function or module path.
pub const FUNCTION: &str = "function";
/// Meta key: `true` only on `NAME.start` records.
pub const PROVISIONAL: &str = "provisional";
/// Meta key: the record's random id (16 hex digits), when the logger gives one.
pub const RECORD_ID: &str = "record_id";

/// The metadata keys, in the order they are written (the flat layout writes
/// them at the top level).
pub const FLAT_KEYS: &[&str] = &[
    TIMESTAMP,
    EVENT,
    LEVEL,
    LOGGER,
    TRACE_ID,
    SPAN_ID,
    PARENT_SPAN_ID,
    FILE,
    LINE,
    FUNCTION,
    PROVISIONAL,
    RECORD_ID,
];

/// The prefix given to a user key that would collide with a key the layout
/// reserves (`__tracer_meta__`, and in the flat and compat layouts the meta
/// keys such as `event` or `timestamp`).
pub const RENAMED_KEY_PREFIX: &str = "user.";

/// The user field on a `.end` record that holds the span's duration.
pub const DURATION_FIELD: &str = "duration_ms";
/// A span's `duration_ms` from its `.start` and `.end` stamps (nanoseconds
/// since the Unix epoch): the difference of the two as the wire writes them,
/// to the microsecond, so a reader that subtracts the timestamps finds the
/// duration exactly. 0 when the end is not after the start.
///
/// ```
/// use aitrace_model::wire::duration_ms;
/// // 10:00:00.000001_999 to 10:00:00.000171_000 is written .000001 to .000171.
/// assert_eq!(duration_ms(1_999, 171_000), 0.17);
/// ```
pub fn duration_ms(start_nanos: u64, end_nanos: u64) -> f64 {
    let micros = (end_nanos / 1_000).saturating_sub(start_nanos / 1_000);
    micros as f64 / 1_000.0
}

/// The user field on a failed span's `.end` record that holds the error.
pub const ERROR_FIELD: &str = "error";
/// The user field on a local root span's `.end` record that says why
/// retention by outcome kept the trace whole: `"failed"`, `"slow"` or
/// `"sampled"`. Absent when retention is off or the trace was not held.
pub const RETENTION_FIELD: &str = "aitrace.retention";

/// The event of the record that says how many records the buffer dropped.
pub const DROPPED_EVENT: &str = "aitrace.dropped";

/// The suffix of a span's opening record's event (`NAME.start`).
pub const START_SUFFIX: &str = ".start";
/// The suffix of a span's closing record's event (`NAME.end`).
pub const END_SUFFIX: &str = ".end";

/// The placeholder replaced by the start time in a file target.
pub const TIMESTAMP_PLACEHOLDER: &str = "<YYYYMMDD_HHMMSS>";

/// The string written in place of a redacted value or part of a value.
pub const REDACTED: &str = "[REDACTED]";

/// How deep a value may nest (arrays and objects) before it is cut.
///
/// Deeper parts are written as the string `"[max depth]"`, so a pathological
/// value can neither overflow the encoder's stack nor produce JSON that common
/// readers (`serde_json`, Python's `json`) refuse to parse.
pub const MAX_VALUE_DEPTH: usize = 32;

/// Which lifecycle record of a span an event names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `NAME.start`, written when the span opens.
    Start,
    /// `NAME.end`, written when it closes.
    End,
}

impl Phase {
    /// The suffix this phase gives an event: `.start` or `.end`.
    pub const fn suffix(self) -> &'static str {
        match self {
            Phase::Start => START_SUFFIX,
            Phase::End => END_SUFFIX,
        }
    }
}

/// The span name and phase of a lifecycle event (`checkout.start` is
/// `("checkout", Phase::Start)`), `None` for any other event. The one parser
/// of the `.start`/`.end` convention: the name alone does not make a record
/// a span's (a span's records also carry ids; see `Record::kind`).
#[inline]
pub fn lifecycle(event: &str) -> Option<(&str, Phase)> {
    if let Some(name) = event.strip_suffix(START_SUFFIX) {
        Some((name, Phase::Start))
    } else {
        event
            .strip_suffix(END_SUFFIX)
            .map(|name| (name, Phase::End))
    }
}

/// [`lifecycle_event`] for a span name that is a `&'static str`, made once
/// per name and phase and then borrowed: no allocation per span. The names
/// are kept for the life of the process (a program has as many as its code
/// writes; a name made at run time goes through [`lifecycle_event`]).
///
/// ```
/// use aitrace_model::wire::{Phase, lifecycle_event_static};
/// let first = lifecycle_event_static("checkout", Phase::Start);
/// assert_eq!(first, "checkout.start");
/// assert!(std::ptr::eq(first, lifecycle_event_static("checkout", Phase::Start)));
/// ```
pub fn lifecycle_event_static(name: &'static str, phase: Phase) -> &'static str {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    /// Each name's two events, made once for the process.
    static NAMES: OnceLock<Mutex<HashMap<&'static str, [&'static str; 2]>>> = OnceLock::new();
    /// Hashes the address and length of a name: they are the whole key.
    #[derive(Default)]
    struct AddressHasher(u64);
    impl std::hash::Hasher for AddressHasher {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.write_u64(u64::from(b));
            }
        }
        fn write_usize(&mut self, n: usize) {
            self.write_u64(n as u64);
        }
        fn write_u64(&mut self, n: u64) {
            // Fibonacci hashing: spreads addresses that differ in few bits.
            self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    type Seen =
        HashMap<(usize, usize), [&'static str; 2], std::hash::BuildHasherDefault<AddressHasher>>;
    thread_local! {
        /// This thread's copy, keyed by where the name lives: no lock, no
        /// string comparison, on the usual path.
        static SEEN: RefCell<Seen> = RefCell::new(Seen::default());
    }
    let key = (name.as_ptr() as usize, name.len());
    let index = match phase {
        Phase::Start => 0,
        Phase::End => 1,
    };
    let local = SEEN
        .try_with(|seen| seen.borrow().get(&key).copied())
        .ok()
        .flatten();
    if let Some(events) = local {
        return events[index];
    }
    let events = {
        let mut names = NAMES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *names.entry(name).or_insert_with(|| {
            [Phase::Start, Phase::End]
                .map(|phase| &*Box::leak(lifecycle_event(name, phase).into_boxed_str()))
        })
    };
    let _ = SEEN.try_with(|seen| seen.borrow_mut().insert(key, events));
    events[index]
}

/// The event of a span's lifecycle record: `NAME.start` or `NAME.end`.
pub fn lifecycle_event(name: &str, phase: Phase) -> String {
    let suffix = phase.suffix();
    let mut event = String::with_capacity(name.len() + suffix.len());
    event.push_str(name);
    event.push_str(suffix);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_parses_both_suffixes_and_nothing_else() {
        assert_eq!(lifecycle("a.b.start"), Some(("a.b", Phase::Start)));
        assert_eq!(lifecycle(".end"), Some(("", Phase::End)));
        assert_eq!(lifecycle("started"), None);
        assert_eq!(lifecycle("x.ending"), None);
        for phase in [Phase::Start, Phase::End] {
            assert_eq!(
                lifecycle(&lifecycle_event("job", phase)),
                Some(("job", phase))
            );
        }
    }

    #[test]
    fn the_flat_keys_are_the_meta_keys_in_order() {
        assert_eq!(FLAT_KEYS.len(), 12);
        assert_eq!(FLAT_KEYS[0], "timestamp");
        assert_eq!(FLAT_KEYS[11], "record_id");
    }
}
