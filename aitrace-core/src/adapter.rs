//! For authors of frontends: what an adapter between a logging library and
//! the core needs beyond [`BufferedLogger`] and
//! [`Record`](crate::Record).
//!
//! An adapter builds a [`Record`](crate::Record) from its frontend's event
//! and hands it to [`BufferedLogger::capture`] after checking
//! [`BufferedLogger::enabled_for`].
//! A frontend with its own span enter/exit calls (a `tracing` layer) keeps
//! the core's span stack in step with [`push_current`] and [`pop_current`],
//! so records from every frontend on the thread share the same ids.
//! One whose spans can start from a remote parent (a `traceparent` field)
//! uses [`remote_child`]; one that finds its setup wrong says so once with
//! [`diagnose`]. One whose spans can end in a panic names it with
//! [`panic_error`].

use crate::ids::SpanId;
use crate::level::Level;
use crate::logger::BufferedLogger;
use crate::propagation::TraceParent;
use crate::record::SpanContext;

pub use crate::lifecycle::Lifecycle;
pub use crate::lock::{ShortGuard, ShortLock};
pub use crate::propagation::RemoteTraceGuard;
pub use crate::reentrancy::is_sending;

/// The time a record made now would be stamped with (the core's clock),
/// for a frontend that captures records later or on another thread and
/// must stamp them with the time of the call instead (`aitrace-slog`'s
/// `CaptureContext`, in front of `slog-async`). Pass it to
/// [`RecordBuilder::timestamp`](crate::RecordBuilder::timestamp).
pub fn now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(crate::clock::now_nanos())
}

/// [`now`] as nanoseconds since the Unix epoch: what a frontend's span
/// keeps as its start, to stamp its `.start` record with
/// ([`RecordBuilder::set_timestamp_nanos`](crate::RecordBuilder::set_timestamp_nanos))
/// and take its `duration_ms` from
/// ([`wire::duration_ms`](crate::wire::duration_ms)), so the two agree.
#[inline]
pub fn now_nanos() -> u64 {
    crate::clock::now_nanos()
}

/// Makes `context` the current span on this thread, for a frontend whose
/// spans have their own enter/exit calls (a `tracing` layer's `on_enter`).
/// Pair each call with [`pop_current`]. Code that can hold a guard should
/// use [`context::attach`](crate::context::attach) instead.
pub fn push_current(context: SpanContext) {
    crate::context::push_current(context);
}

/// Removes the most recent entry [`push_current`] pushed for `span_id`
/// from this thread's span stack; `false` if there was none. Entries above it stay, so exits in an
/// unexpected order never unbalance the stack.
pub fn pop_current(span_id: SpanId) -> bool {
    crate::context::pop_current(span_id)
}

/// [`push_current`] for a frontend that knows its spans by a number of
/// its own (a `tracing` span's `Id`, never 0): [`pop_current_keyed`] then
/// finds the entry by that number, without looking the span up. `owner`
/// tells apart the frontends (or the instances of one) whose numbers can
/// be alike: a `tracing` `Id` is unique only within its registry, so a
/// layer passes a number of its own. Entries pushed with a key are never
/// popped by [`pop_current`] or a [`ContextGuard`](crate::context::ContextGuard),
/// nor entries pushed without one by [`pop_current_keyed`].
#[inline]
pub fn push_current_keyed(context: SpanContext, owner: u64, key: std::num::NonZeroU64) {
    crate::context::push_keyed(context, (owner, key.get()));
}

/// Removes the most recent entry [`push_current_keyed`] pushed with
/// `owner` and `key` from this thread's span stack; `false` if there was
/// none.
#[inline]
pub fn pop_current_keyed(owner: u64, key: std::num::NonZeroU64) -> bool {
    crate::context::pop_keyed((owner, key.get()))
}

/// Buffers the `.end` record of a frontend's span whose `.start` the
/// logger's filter kept, whatever the filter says now: the filter can change
/// while a span is open ([`BufferedLogger::set_min_level`]), and a span
/// writes both its lifecycle records or neither. Decide whether a span is
/// kept once, when it starts, and keep to it. The same holds for a `.start`
/// written later than that decision (a `tracing` span's, at its first
/// enter, so that fields recorded before it are on it): buffer it here too.
pub fn capture_span_end(logger: &BufferedLogger, record: crate::Record) {
    logger.capture_unfiltered(record);
}

/// Buffers a span's `.start` or `.end` record given in compact form, for a
/// span with no fields that did not fail (a record with fields, or an
/// `error`, goes through [`BufferedLogger::capture`] or
/// [`capture_span_end`] as a [`Record`](crate::Record)). Like
/// [`capture_span_end`] it does not ask the filter: decide whether a span
/// is kept once, when it starts ([`BufferedLogger::enabled_for`]), and
/// write both its records or neither.
///
/// What [`BufferedLogger::records`], a flush or an output later sees is
/// the record [`Lifecycle::to_record`] makes, as if that had been captured;
/// the buffer keeps the compact form until then, unless the logger has a
/// `before_send` hook, a redactor with value patterns (or one that redacts
/// `duration_ms`), or retention, which each read records as they come in.
#[inline]
pub fn capture_lifecycle(logger: &BufferedLogger, lifecycle: Lifecycle) {
    logger.capture_lifecycle(lifecycle);
}

/// Calls `watch` with the most verbose level `logger` keeps (`None`: none)
/// each time its filter changes ([`BufferedLogger::set_min_level`],
/// [`BufferedLogger::set_filter`]), so a frontend with a global level of its
/// own (`log::set_max_level`) can follow.
pub fn on_level_change(
    logger: &BufferedLogger,
    watch: impl Fn(Option<Level>) + Send + Sync + 'static,
) {
    logger.watch_level(Box::new(watch));
}

/// The context of a new span whose parent is `parent`, a span in another
/// process (a frontend's span with a `traceparent` field): the remote trace
/// id, a new span id, the remote span as parent. Keep the guard as long as
/// the span is open: while it lives, [`TraceParent::current`] in any span of
/// that trace passes on the remote parent's flags and `tracestate`. Core
/// spans do the same with
/// [`SpanBuilder::remote_parent`](crate::SpanBuilder::remote_parent).
pub fn remote_child(parent: &TraceParent) -> (SpanContext, RemoteTraceGuard) {
    crate::propagation::remote_child(parent)
}

/// Keeps [`panic_error`] right: installs, once per process, the panic hook
/// that keeps each thread's last panic message (it calls the hook set
/// before it; every panic overwrites the message, so a caught panic never
/// names a later one the hook sees), and forgets the message of an earlier
/// panic that was caught, for a later one the hook does not see (another
/// hook replaced it). Call it when the frontend is set up
/// (`AitraceLayer::new`) and when one of its spans is created
/// (`on_new_span`), not each time one is entered; core spans do the same.
///
/// Installing a hook is process-wide: `AITRACE_PANIC_HOOK=0` (also
/// `false`, `no`, `off`; read once, see
/// [`env::PANIC_HOOK_ENV`](crate::env::PANIC_HOOK_ENV)) leaves the
/// process's hook alone, and spans a panic ends then say `"panicked"`.
/// The standard library has no atomic way to chain hooks: a hook another
/// thread sets between aitrace's `take_hook` and `set_hook` is lost, so set
/// yours before the first span, or after (chaining aitrace's).
///
/// Returns whether this thread is unwinding from a panic now (the span is
/// opened by a `Drop`): keep it with the span and pass it to
/// [`span_panic_error`] when the span ends, so that panic does not fail a
/// span it does not unwind through.
pub fn watch_panics() -> bool {
    crate::span::unwinding::span_opened()
}

/// For a frontend's span ending now, given what [`watch_panics`] returned
/// when it opened: [`panic_error`], but `None` for a span opened while its
/// thread unwinds, whose panic does not unwind through it. What core spans
/// write in the same case.
pub fn span_panic_error(opened_unwinding: bool) -> Option<String> {
    crate::span::unwinding::span_error(opened_unwinding)
}

/// For a frontend's span ending now: `Some` of its `error` text when this
/// thread is unwinding from a panic (the panic's message when it is a
/// `&str` or `String`, else `"panicked"`), `None` when it is not
/// panicking. What core spans write in the same case.
pub fn panic_error() -> Option<String> {
    crate::span::unwinding::panic_error()
}

/// Prints `aitrace: MESSAGE` on stderr, for a problem the user must fix in
/// a frontend's setup. Lines of one `kind` are printed at most once a
/// minute across the process; those held back are counted on the next
/// one. Returns whether it printed.
pub fn diagnose(kind: &str, message: impl FnOnce() -> String) -> bool {
    crate::diagnostics::PROCESS.say(kind, message)
}
