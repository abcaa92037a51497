//! W3C Trace Context across processes: the `traceparent` and `tracestate`
//! HTTP headers (Trace Context Level 1).
//!
//! A caller sends the header of its current span ([`TraceParent::current`]);
//! the callee parses it ([`TraceParent::parse`]) and starts its span with
//! that remote parent ([`SpanBuilder::remote_parent`](crate::SpanBuilder::remote_parent)).
//! The remote trace's flags and `tracestate` are not part of a
//! [`SpanContext`]: they are kept per trace id while a span that continues
//! the remote trace is open (a [`RemoteTraceGuard`] each), so every span,
//! thread and task of that trace passes them on.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use crate::context;
use crate::error::{ParseError, Result};
use crate::ids::{SpanId, TraceId};
use crate::record::SpanContext;

/// The `sampled` trace flag, the only one Trace Context Level 1 defines.
const SAMPLED: u8 = 0x01;
/// The length of a version `00` `traceparent`.
const TRACEPARENT_LEN: usize = 55;
/// The longest `tracestate` kept; longer ones lose list members (the spec's
/// rule: members over 128 characters first, then from the end).
const MAX_TRACE_STATE_LEN: usize = 512;
/// The most list members a `tracestate` may have.
const MAX_TRACE_STATE_MEMBERS: usize = 32;
/// How much of a bad header an error message quotes.
const QUOTED_LEN: usize = 64;

/// A span's W3C trace context as it travels between processes: the
/// `traceparent` header (trace id, span id, trace flags) and the optional
/// `tracestate`.
///
/// Parsed from the headers a request brought, it is the remote parent of
/// the span that handles the request
/// ([`SpanBuilder::remote_parent`](crate::SpanBuilder::remote_parent)).
/// Taken from the current span ([`TraceParent::current`]), it is what to send
/// with an outgoing request. Its [`Display`](fmt::Display) is the
/// `traceparent` header value.
///
/// # Examples
///
/// ```
/// use aitrace_core::{BufferedLogger, TraceParent};
///
/// // A server: the request's headers start the handler's span.
/// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?
///     .with_trace_state("congo=t61rcWkgMzE");
/// let log = BufferedLogger::builder().target("-")?.build();
/// log.span("handle_request").remote_parent(&parent).in_scope(|span| {
///     assert_eq!(span.context().trace_id(), parent.trace_id());
///     assert_eq!(span.context().parent_span_id(), Some(parent.span_id()));
///
///     // A client inside it: the headers of the current span, same trace.
///     let outgoing = TraceParent::current().unwrap();
///     assert_eq!(
///         outgoing.to_string(),
///         format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", span.context().span_id())
///     );
///     assert_eq!(outgoing.trace_state(), Some("congo=t61rcWkgMzE"));
/// });
/// # log.clear();
/// # Ok::<(), aitrace_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: TraceId,
    span_id: SpanId,
    flags: u8,
    trace_state: Option<Arc<str>>,
}

impl TraceParent {
    /// Parses a `traceparent` header value as W3C Trace Context Level 1
    /// says: `VERSION-TRACEID-SPANID-FLAGS` in lower-case hex, version `00`
    /// exactly 55 characters, version `ff` invalid, a higher version
    /// accepted when its first 55 characters parse and are followed by `-`
    /// or nothing. All-zero ids are invalid. Spaces and tabs around the
    /// value (HTTP's optional whitespace) are ignored.
    ///
    /// # Errors
    ///
    /// A [`ParseError`]
    /// ([`InvalidTraceContext`](crate::ErrorKind::InvalidTraceContext))
    /// saying what is wrong. A server should then start a new trace, as the
    /// spec asks.
    pub fn parse(traceparent: &str) -> Result<Self, ParseError> {
        parse_traceparent(traceparent).map_err(|reason| {
            ParseError::invalid_trace_context(format!(
                "invalid traceparent {:?}: {reason}",
                quoted(traceparent)
            ))
        })
    }

    /// Adds the `tracestate` header that came with the `traceparent`,
    /// whitespace around its list members removed. A value that breaks the
    /// spec's rules (keys, values, at most 32 unique members) is dropped
    /// rather than failing the whole context; one longer than 512
    /// characters loses list members until it fits (those over 128
    /// characters first, then from the end). An empty value clears it.
    pub fn with_trace_state(mut self, tracestate: &str) -> Self {
        self.trace_state = parse_trace_state(tracestate).map(Arc::from);
        self
    }

    /// The headers of the span current on this thread
    /// ([`context::current`]): its trace id and span id, the flags and
    /// `tracestate` inherited from a remote parent of its trace if there is
    /// one, else the `sampled` flag and no `tracestate` (aitrace keeps every
    /// record). `None` when no span is current.
    pub fn current() -> Option<Self> {
        context::current().map(Self::of)
    }

    /// The headers to send for `span`, like [`current`](Self::current) for
    /// a span handed over from another thread.
    pub fn of(span: SpanContext) -> Self {
        let (flags, trace_state) = REMOTE_TRACES
            .inherited(span.trace_id())
            .unwrap_or_else(|| (head_flags(span.trace_id()), None));
        TraceParent {
            trace_id: span.trace_id(),
            span_id: span.span_id(),
            flags,
            trace_state,
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span id: the sender's span (the header's `parent-id`), parent of
    /// a span started with it as remote parent.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The trace flags as received (bit `0x01`: sampled). Headers made from
    /// them carry only the flags Level 1 defines.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the sender sampled the trace (flag `0x01`). aitrace keeps
    /// every record either way; the flag is passed on for other tracers.
    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The `tracestate` header value, if there is one to send.
    pub fn trace_state(&self) -> Option<&str> {
        self.trace_state.as_deref()
    }

    /// A child of the remote span: same trace, a new span id, the remote
    /// span as parent.
    fn new_child(&self) -> SpanContext {
        SpanContext::new(self.trace_id, SpanId::random(), Some(self.span_id))
    }
}

impl fmt::Display for TraceParent {
    /// The `traceparent` header value, version `00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// Starts a span as the child of a remote parent; see
/// [`adapter::remote_child`](crate::adapter::remote_child).
pub(crate) fn remote_child(parent: &TraceParent) -> (SpanContext, RemoteTraceGuard) {
    let guard = REMOTE_TRACES.hold(parent);
    (parent.new_child(), guard)
}

/// Keeps a remote parent's trace flags and `tracestate` for the spans of
/// its trace while the span that continues it is open; see
/// [`adapter::remote_child`](crate::adapter::remote_child). Dropping it
/// when that span ends forgets them once no other span holds them.
#[derive(Debug)]
#[must_use = "the remote trace's flags and tracestate are forgotten when the guard drops"]
pub struct RemoteTraceGuard {
    trace_id: TraceId,
}

impl Drop for RemoteTraceGuard {
    fn drop(&mut self) {
        REMOTE_TRACES.release(self.trace_id);
    }
}

/// The head decision a logger with retention by outcome made for traces
/// that start here: their ids below this are sampled (`u64::MAX`, without
/// retention: every trace, as aitrace keeps every record).
static HEAD_KEEP_BELOW: AtomicU64 = AtomicU64::new(u64::MAX);

/// Sets the share of locally started traces whose headers say `sampled`
/// (the kept ratio of retention by outcome).
pub(crate) fn set_head_keep_below(keep_below: u64) {
    HEAD_KEEP_BELOW.store(keep_below, Ordering::Relaxed);
}

/// The flags sent for a trace that started here: `sampled` when retention
/// keeps it whole by its id (or when there is no retention).
fn head_flags(trace_id: TraceId) -> u8 {
    let keep_below = HEAD_KEEP_BELOW.load(Ordering::Relaxed);
    if in_ratio(trace_id, keep_below) {
        SAMPLED
    } else {
        0
    }
}

/// Whether a trace id falls in the kept share: its last 8 bytes, as a
/// number, below the threshold (the same answer in every service).
pub(crate) fn in_ratio(trace_id: TraceId, keep_below: u64) -> bool {
    if keep_below == u64::MAX {
        return true;
    }
    let bytes = trace_id.to_bytes();
    let low = u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes"));
    low < keep_below
}

/// When `parent` is the remote parent of a span of `trace_id` (a span
/// started from a `traceparent` that is still open): its `sampled` flag.
pub(crate) fn remote_parent_sampled(trace_id: TraceId, parent: SpanId) -> Option<bool> {
    if REMOTE_TRACES.held.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let traces = REMOTE_TRACES.traces.lock();
    let held = traces.get(&trace_id)?;
    held.parents
        .contains(&parent)
        .then_some(held.flags & SAMPLED != 0)
}

/// The flags and `tracestate` of each remote trace that an open span
/// continues, with how many such spans hold it and the remote parents'
/// span ids. Touched when such a span starts or ends, by
/// [`TraceParent::current`], and with retention by outcome when a span's
/// `.start` is captured (is its parent remote?), never for an event.
struct RemoteTraces {
    /// How many traces are held: lets `current` skip the lock when none is.
    held: AtomicUsize,
    traces: LazyLock<Mutex<HashMap<TraceId, Held>>>,
}

struct Held {
    holders: usize,
    flags: u8,
    trace_state: Option<Arc<str>>,
    /// The remote span ids the open spans continue (usually one).
    parents: Vec<SpanId>,
}

static REMOTE_TRACES: RemoteTraces = RemoteTraces {
    held: AtomicUsize::new(0),
    traces: LazyLock::new(Mutex::default),
};

impl RemoteTraces {
    fn hold(&self, parent: &TraceParent) -> RemoteTraceGuard {
        let mut traces = self.traces.lock();
        // The latest remote parent of a trace says what to pass on.
        let held = traces.entry(parent.trace_id).or_insert_with(|| {
            self.held.fetch_add(1, Ordering::Relaxed);
            Held {
                holders: 0,
                flags: 0,
                trace_state: None,
                parents: Vec::new(),
            }
        });
        held.holders += 1;
        if !held.parents.contains(&parent.span_id) {
            held.parents.push(parent.span_id);
        }
        held.flags = parent.flags & SAMPLED;
        held.trace_state = parent.trace_state.clone();
        RemoteTraceGuard {
            trace_id: parent.trace_id,
        }
    }

    fn release(&self, trace_id: TraceId) {
        let mut traces = self.traces.lock();
        if let Some(held) = traces.get_mut(&trace_id) {
            held.holders -= 1;
            if held.holders == 0 {
                traces.remove(&trace_id);
                self.held.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn inherited(&self, trace_id: TraceId) -> Option<(u8, Option<Arc<str>>)> {
        if self.held.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let traces = self.traces.lock();
        traces
            .get(&trace_id)
            .map(|held| (held.flags, held.trace_state.clone()))
    }

    #[cfg(test)]
    fn is_held(&self, trace_id: TraceId) -> bool {
        self.traces.lock().contains_key(&trace_id)
    }
}

/// At most [`QUOTED_LEN`] characters of a bad header, for an error message.
fn quoted(value: &str) -> String {
    let mut chars = value.chars();
    let mut shown: String = chars.by_ref().take(QUOTED_LEN).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

fn parse_traceparent(header: &str) -> Result<TraceParent, &'static str> {
    let value = header.trim_matches([' ', '\t']).as_bytes();
    if value.len() < TRACEPARENT_LEN {
        return Err("shorter than 55 characters");
    }
    let version = lower_hex(&value[0..2]).ok_or("the version is not 2 lower-case hex digits")?;
    if version == 0xff {
        return Err("version ff is invalid");
    }
    if version == 0 && value.len() != TRACEPARENT_LEN {
        return Err("version 00 is exactly 55 characters");
    }
    if version > 0 && value.len() > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != b'-' {
        return Err("a higher version's first 55 characters are followed by `-` or nothing");
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return Err("the fields are not separated by `-` at the right places");
    }
    let trace_id = lower_hex(&value[3..35])
        .ok_or("the trace id is not 32 lower-case hex digits")
        .and_then(|n| TraceId::from_bytes(n.to_be_bytes()).ok_or("the trace id is all zeros"))?;
    let span_id = lower_hex(&value[36..52])
        .ok_or("the parent id is not 16 lower-case hex digits")
        .and_then(|n| {
            let bytes = u64::try_from(n).map_or([0; 8], u64::to_be_bytes);
            SpanId::from_bytes(bytes).ok_or("the parent id is all zeros")
        })?;
    let flags = lower_hex(&value[53..55]).ok_or("the flags are not 2 lower-case hex digits")?;
    Ok(TraceParent {
        trace_id,
        span_id,
        flags: flags as u8, // two hex digits fit
        trace_state: None,
    })
}

/// The number written in `digits` (at most 32) lower-case hex digits.
fn lower_hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(digit))
    })
}

/// A `tracestate` without optional whitespace and empty members, cut to
/// [`MAX_TRACE_STATE_LEN`]; `None` when it breaks the spec or is empty.
fn parse_trace_state(header: &str) -> Option<String> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for member in header.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue; // empty members are allowed
        }
        // The limit first: a header of many members must not cost a scan
        // of them all for each (they came from another process).
        if members.len() == MAX_TRACE_STATE_MEMBERS {
            return None;
        }
        let (key, value) = member.split_once('=')?;
        if !is_trace_state_key(key)
            || !is_trace_state_value(value)
            || members.iter().any(|(k, _)| *k == key)
        {
            return None;
        }
        members.push((key, member));
    }
    let joined_len = |members: &[(&str, &str)]| {
        members.iter().map(|(_, m)| m.len() + 1).sum::<usize>() - usize::from(!members.is_empty())
    };
    while joined_len(&members) > MAX_TRACE_STATE_LEN {
        match members.iter().position(|(_, m)| m.len() > 128) {
            Some(i) => members.remove(i),
            None => members.pop()?,
        };
    }
    if members.is_empty() {
        return None;
    }
    let mut state = String::with_capacity(joined_len(&members));
    for (i, (_, member)) in members.iter().enumerate() {
        if i > 0 {
            state.push(',');
        }
        state.push_str(member);
    }
    Some(state)
}

/// `simple-key` or `tenant-id@system-id`.
fn is_trace_state_key(key: &str) -> bool {
    fn rest_ok(s: &[u8]) -> bool {
        s.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
        })
    }
    let key = key.as_bytes();
    match key.iter().position(|&b| b == b'@') {
        None => (1..=256).contains(&key.len()) && key[0].is_ascii_lowercase() && rest_ok(&key[1..]),
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            (1..=241).contains(&tenant.len())
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && rest_ok(&tenant[1..])
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && rest_ok(&system[1..])
        }
    }
}

/// Up to 256 printable ASCII characters but `,` and `=`, not ending in a
/// space.
fn is_trace_state_value(value: &str) -> bool {
    let value = value.as_bytes();
    (1..=256).contains(&value.len())
        && value
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && value.last() != Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn reason(header: &str) -> &'static str {
        parse_traceparent(header).expect_err(header)
    }

    #[test]
    fn a_valid_header_parses_and_prints_back() {
        let parent = TraceParent::parse(VALID).unwrap();
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parent.is_sampled());
        assert_eq!(parent.to_string(), VALID);
        assert_eq!(TraceParent::parse(&format!(" \t{VALID} ")).unwrap(), parent);
        let unsampled = VALID.replace("-01", "-00");
        assert!(!TraceParent::parse(&unsampled).unwrap().is_sampled());
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        assert_eq!(reason(""), "shorter than 55 characters");
        assert_eq!(reason(&VALID[..54]), "shorter than 55 characters");
        assert_eq!(
            reason(&format!("{VALID}-")),
            "version 00 is exactly 55 characters"
        );
        assert_eq!(
            reason(&VALID.replacen("00", "ff", 1)),
            "version ff is invalid"
        );
        assert_eq!(
            reason(&VALID.replacen("00", "0A", 1)),
            "the version is not 2 lower-case hex digits"
        );
        assert_eq!(
            reason(&VALID.to_uppercase()),
            "the trace id is not 32 lower-case hex digits"
        );
        assert_eq!(
            reason(&VALID.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32))),
            "the trace id is all zeros"
        );
        assert_eq!(
            reason(&VALID.replace("00f067aa0ba902b7", &"0".repeat(16))),
            "the parent id is all zeros"
        );
        assert_eq!(
            reason(&VALID.replace("00f067aa0ba902b7", "00f067aa0ba902bg")),
            "the parent id is not 16 lower-case hex digits"
        );
        assert_eq!(
            reason(&VALID.replace("-01", "-0x")),
            "the flags are not 2 lower-case hex digits"
        );
        assert_eq!(
            reason(&VALID.replacen('-', "_", 1)),
            "the fields are not separated by `-` at the right places"
        );
        // Multi-byte characters where digits belong are refused, not sliced.
        assert_eq!(
            reason(&VALID.replacen("4b", "é", 1)),
            "the trace id is not 32 lower-case hex digits"
        );
        let err = TraceParent::parse(&"x".repeat(1000)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidTraceContext);
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn higher_versions_parse_their_first_55_characters() {
        let v1 = VALID.replacen("00", "01", 1);
        assert!(TraceParent::parse(&v1).is_ok());
        assert_eq!(
            TraceParent::parse(&format!("{v1}-what-comes-later"))
                .unwrap()
                .to_string(),
            VALID
        );
        assert_eq!(
            reason(&format!("{v1}x")),
            "a higher version's first 55 characters are followed by `-` or nothing"
        );
    }

    #[test]
    fn trace_state_is_kept_trimmed_or_dropped() {
        let parent = TraceParent::parse(VALID).unwrap();
        let with = |s: &str| {
            parent
                .clone()
                .with_trace_state(s)
                .trace_state
                .map(|s| s.to_string())
        };
        assert_eq!(
            with(" rojo=00f067aa0ba902b7 ,\t, congo=t61rcWkgMzE "),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into())
        );
        assert_eq!(with("tenant@vendor=a b"), Some("tenant@vendor=a b".into()));
        assert_eq!(with(""), None);
        assert_eq!(with(" , "), None);
        for bad in [
            "Upper=1",
            "key",
            "k=",
            "k=a,k=b",
            "k=a=b",
            "k=\u{7f}",
            "@vendor=1",
            "tenant@=1",
            "tenant@toolongvendorname=1",
            "k=é",
        ] {
            assert_eq!(with(bad), None, "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(with(&many.join(",")), None);
        assert!(with(&many[..32].join(",")).is_some());
        // Too long: the member over 128 characters goes first, then the last ones.
        let long = format!("big={}", "x".repeat(200));
        let members: Vec<String> = (0..20)
            .map(|i| format!("k{i:02}={}", "v".repeat(20)))
            .collect();
        let cut = with(&format!("{},{long}", members.join(","))).unwrap();
        assert!(cut.len() <= MAX_TRACE_STATE_LEN);
        assert!(!cut.contains("big="));
        assert!(cut.starts_with("k00=") && cut.contains("k19="), "{cut}");
        let members: Vec<String> = (0..30)
            .map(|i| format!("k{i:02}={}", "v".repeat(30)))
            .collect();
        let cut = with(&members.join(",")).unwrap();
        assert_eq!(cut, members[..14].join(","), "the last members go");
    }

    #[test]
    fn a_remote_trace_is_held_while_a_guard_lives() {
        let parent = TraceParent::parse(VALID)
            .unwrap()
            .with_trace_state("congo=1");
        let (child, first) = remote_child(&parent);
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_eq!(child.parent_span_id(), Some(parent.span_id()));
        let (_, second) = remote_child(&parent);
        let sent = TraceParent::of(child);
        assert_eq!(sent.span_id(), child.span_id());
        assert_eq!(sent.trace_state(), Some("congo=1"));
        drop(first);
        assert!(REMOTE_TRACES.is_held(parent.trace_id()));
        drop(second);
        assert!(!REMOTE_TRACES.is_held(parent.trace_id()));
        assert_eq!(TraceParent::of(child).trace_state(), None);
        assert!(TraceParent::of(child).is_sampled());
    }
}
