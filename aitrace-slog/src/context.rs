//! `CaptureContext`: the logging thread's span, carried in the record to a
//! drain that runs on another thread (`slog-async`).

use std::fmt;

use aitrace_core::{SpanContext, SpanId, TraceId, context};
use slog::{BorrowedKV, Drain, Key, OwnedKVList, Record, RecordStatic, SingleKV};

/// The record key under which [`CaptureContext`] carries the span current on
/// the logging thread: `TRACE_ID-SPAN_ID` or `TRACE_ID-SPAN_ID-PARENT_SPAN_ID`
/// in lower-case hex, or an empty string when no span was current.
/// [`AitraceDrain`](crate::AitraceDrain) reads it instead of its own
/// thread's span and does not write it as a user field; other drains see it
/// as a string.
pub const CONTEXT_KEY: &str = "aitrace.context";

/// The record key under which [`CaptureContext`] carries the time of the
/// logging call, in nanoseconds since the Unix epoch (a `u64`).
/// [`AitraceDrain`](crate::AitraceDrain) stamps the record with it instead
/// of the time its worker thread got to it, and does not write it as a
/// user field; other drains see it as a number.
pub const TIME_KEY: &str = "aitrace.time";

/// A drain that adds the span current on the logging thread, and the time
/// of the call, to each record, for an [`AitraceDrain`](crate::AitraceDrain)
/// that captures records on another thread.
///
/// `slog-async` (or any drain that hands records to another thread) calls
/// the drains behind it on its worker thread, where no span is current and
/// the time is later (often after the span ended). Put `CaptureContext` in
/// front of it: it runs on the logging thread and puts the span's ids and
/// the time in the record's own key-values (under [`CONTEXT_KEY`] and
/// [`TIME_KEY`]), which `slog-async` copies on the logging thread.
///
/// ```
/// use aitrace_core::BufferedLogger;
/// use aitrace_slog::{AitraceDrain, CaptureContext};
/// use slog::{Drain, o};
///
/// let log = BufferedLogger::new();
/// let worker = slog_async::Async::new(AitraceDrain::new(log.clone()).fuse()).build().fuse();
/// let root = slog::Logger::root(CaptureContext::new(worker).fuse(), o!());
/// log.span("job").in_scope(|_| slog::info!(root, "inside")); // carries the span's ids
/// drop(root); // joins slog-async's worker thread
/// let inside = log.records().into_iter().find(|r| r.event() == "inside").unwrap();
/// assert!(inside.span_id().is_some());
/// # log.clear();
/// ```
#[derive(Clone, Debug)]
pub struct CaptureContext<D> {
    drain: D,
}

impl<D> CaptureContext<D> {
    /// Wraps `drain`, usually `slog_async::Async` in front of an
    /// [`AitraceDrain`](crate::AitraceDrain).
    pub fn new(drain: D) -> Self {
        CaptureContext { drain }
    }

    /// The wrapped drain.
    pub fn into_inner(self) -> D {
        self.drain
    }
}

impl<D: Drain> Drain for CaptureContext<D> {
    type Ok = D::Ok;
    type Err = D::Err;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<D::Ok, D::Err> {
        let now = aitrace_core::adapter::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let kv = (
            (record.kv(), SingleKV(TIME_KEY, now)),
            SingleKV(CONTEXT_KEY, Carried(context::current())),
        );
        let rstatic = RecordStatic {
            location: record.location(),
            tag: record.tag(),
            level: record.level(),
        };
        self.drain.log(
            &Record::new(&rstatic, record.msg(), BorrowedKV(&kv)),
            values,
        )
    }

    fn is_enabled(&self, level: slog::Level) -> bool {
        self.drain.is_enabled(level)
    }
}

/// The span of the logging thread, as a record value.
struct Carried(Option<SpanContext>);

impl slog::Value for Carried {
    fn serialize(
        &self,
        _record: &Record<'_>,
        key: Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        serializer.emit_arguments(key, &format_args!("{self}"))
    }
}

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(context) = self.0 else {
            return Ok(());
        };
        write!(f, "{}-{}", context.trace_id(), context.span_id())?;
        if let Some(parent) = context.parent_span_id() {
            write!(f, "-{parent}")?;
        }
        Ok(())
    }
}

/// Reads a [`CONTEXT_KEY`] value: `Some(None)` for "no span", `None` when
/// the text is not one (a user's own value under that key).
pub(crate) fn parse_carried(text: &str) -> Option<Option<SpanContext>> {
    if text.is_empty() {
        return Some(None);
    }
    let mut parts = text.split('-');
    let trace_id = TraceId::from_hex(parts.next()?)?;
    let span_id = SpanId::from_hex(parts.next()?)?;
    let parent = match parts.next() {
        Some(hex) => Some(SpanId::from_hex(hex)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Some(SpanContext::new(trace_id, span_id, parent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_text_round_trips() {
        let root = SpanContext::new_root();
        let child = root.new_child();
        for context in [None, Some(root), Some(child)] {
            let text = Carried(context).to_string();
            assert_eq!(parse_carried(&text), Some(context), "{text}");
        }
    }

    #[test]
    fn other_text_is_not_a_carried_span() {
        let root = SpanContext::new_root();
        let text = Carried(Some(root.new_child())).to_string();
        for bad in [
            "x".to_owned(),
            "-".to_owned(),
            format!("{text}-"),
            format!("{text}-{}", root.span_id()),
            text.to_uppercase().replace('-', "+"),
            format!("{}-0000000000000000", root.trace_id()),
            format!("{}-{}", "0".repeat(32), root.span_id()),
        ] {
            assert_eq!(parse_carried(&bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_under_the_key_is_a_span_none_or_a_user_value(
            text in "[0-9a-f-]{0,70}|.{0,70}"
        ) {
            // Whatever it gives must be what `Carried` would write for it.
            if let Some(carried) = parse_carried(&text) {
                proptest::prop_assert_eq!(Carried(carried).to_string(), text.to_ascii_lowercase());
            }
        }
    }
}
