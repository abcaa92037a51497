//! The current span of each thread, and carrying it to other threads and tasks.
//!
//! Each thread keeps a stack of the spans entered on it. The top is the
//! *current* span, whose ids every record captured on that thread carries.
//! With the `opentelemetry` feature, an OpenTelemetry span that became active
//! after the top aitrace span was entered (or while none was) is current
//! instead, so programs that already use OpenTelemetry keep one trace.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::ids::SpanId;
use crate::record::SpanContext;

#[derive(Clone, Copy)]
struct Entry {
    context: SpanContext,
    /// What the frontend that pushed it knows the span by: its own number
    /// and the span's id there (`(_, 0)`: an entry pushed without a key;
    /// see [`crate::adapter::push_current_keyed`]). Keyed and unkeyed
    /// entries never pop each other.
    key: (u64, u64),
    /// The OpenTelemetry span that was current when this entry was pushed.
    #[cfg(feature = "opentelemetry")]
    otel_at_push: Option<SpanContext>,
}

thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// The span current on this thread, if any.
///
/// # Examples
///
/// ```
/// use aitrace_core::{SpanContext, context};
///
/// assert_eq!(context::current(), None);
/// let root = SpanContext::new_root();
/// let guard = context::attach(root);
/// assert_eq!(context::current(), Some(root));
/// drop(guard);
/// assert_eq!(context::current(), None);
/// ```
pub fn current() -> Option<SpanContext> {
    current_with(Otel::now())
}

/// The OpenTelemetry span active on this thread (when the feature is on),
/// read once by a span that opens: [`current_with`] and [`attach_with`]
/// take it instead of reading OpenTelemetry's context again.
#[derive(Clone, Copy)]
pub(crate) struct Otel {
    #[cfg(feature = "opentelemetry")]
    active: Option<SpanContext>,
}

impl Otel {
    #[inline]
    pub(crate) fn now() -> Otel {
        Otel {
            #[cfg(feature = "opentelemetry")]
            active: otel::current(),
        }
    }
}

/// [`current`], with OpenTelemetry's active span read already. Always
/// inline, as `new_span_with` and `pop_current` are: a span's open and end
/// are each one function, and these three out of line cost a core span
/// some 45 instructions (callgrind).
#[inline(always)]
pub(crate) fn current_with(_otel: Otel) -> Option<SpanContext> {
    // The top entry's context alone, not the whole entry, is copied out,
    // unless an OpenTelemetry span is active.
    #[cfg(feature = "opentelemetry")]
    if let Some(otel) = _otel.active {
        let top = STACK.with(|s| s.borrow().last().map(|e| (e.context, e.otel_at_push)));
        return match top {
            Some((context, at_push))
                if at_push == Some(otel) || otel.span_id() == context.span_id() =>
            {
                Some(context)
            }
            _ => Some(otel),
        };
    }
    STACK.with(|s| s.borrow().last().map(|e| e.context))
}

/// A new span's context: a child of the current span, or a new root.
pub fn new_span() -> SpanContext {
    new_span_with(Otel::now())
}

/// [`new_span`], with OpenTelemetry's active span read already.
#[inline(always)]
pub(crate) fn new_span_with(otel: Otel) -> SpanContext {
    match current_with(otel) {
        Some(parent) => parent.new_child(),
        None => SpanContext::new_root(),
    }
}

/// Makes `context` current on this thread until the guard drops.
///
/// This is how work on another thread or task joins a trace: take
/// [`current()`] where the work is handed off, attach it where it runs.
///
/// ```
/// use aitrace_core::{SpanContext, context};
///
/// let root = SpanContext::new_root();
/// let _guard = context::attach(root);
/// let handed_off = context::current().unwrap();
/// std::thread::spawn(move || {
///     let _guard = context::attach(handed_off);
///     assert_eq!(context::current(), Some(root));
/// })
/// .join()
/// .unwrap();
/// ```
pub fn attach(context: SpanContext) -> ContextGuard {
    attach_with(context, Otel::now())
}

/// [`attach`], with OpenTelemetry's active span read already.
#[inline]
pub(crate) fn attach_with(context: SpanContext, otel: Otel) -> ContextGuard {
    push_with(context, (0, 0), otel);
    ContextGuard {
        span_id: context.span_id(),
        _not_send: PhantomData,
    }
}

/// Runs `f` with `context` current.
pub fn in_context<T>(context: SpanContext, f: impl FnOnce() -> T) -> T {
    let _guard = attach(context);
    f()
}

/// Pushes `context` on this thread's stack; see [`crate::adapter::push_current`].
pub(crate) fn push_current(context: SpanContext) {
    push_keyed(context, (0, 0));
}

/// Pushes `context`, known to its frontend by `key`; see
/// [`crate::adapter::push_current_keyed`].
pub(crate) fn push_keyed(context: SpanContext, key: (u64, u64)) {
    push_with(context, key, Otel::now());
}

#[inline]
fn push_with(context: SpanContext, key: (u64, u64), _otel: Otel) {
    let entry = Entry {
        context,
        key,
        #[cfg(feature = "opentelemetry")]
        otel_at_push: _otel.active,
    };
    STACK.with(|s| s.borrow_mut().push(entry));
}

/// Removes the most recent entry for `span_id` pushed without a key from
/// this thread's stack; see [`crate::adapter::pop_current`].
#[inline(always)]
pub(crate) fn pop_current(span_id: SpanId) -> bool {
    STACK.with(|s| {
        let mut stack = s.borrow_mut();
        let ours = |e: &Entry| e.key.1 == 0 && e.context.span_id() == span_id;
        // The usual case: spans end in the order they were entered.
        if stack.last().is_some_and(ours) {
            stack.pop();
            return true;
        }
        match stack.iter().rposition(ours) {
            Some(i) => {
                stack.remove(i);
                true
            }
            None => false,
        }
    })
}

/// Removes the most recent entry pushed with `key`; see
/// [`crate::adapter::pop_current_keyed`].
pub(crate) fn pop_keyed(key: (u64, u64)) -> bool {
    STACK.with(|s| {
        let mut stack = s.borrow_mut();
        // The usual case: spans are exited in the order they were entered.
        if stack.last().is_some_and(|e| e.key == key) {
            stack.pop();
            return true;
        }
        match stack.iter().rposition(|e| e.key == key) {
            Some(i) => {
                stack.remove(i);
                true
            }
            None => false,
        }
    })
}

/// Keeps a span current on this thread; see [`attach`]. Not `Send`: it
/// belongs to the thread whose stack it changed.
#[derive(Debug)]
#[must_use = "the context is detached as soon as the guard drops"]
pub struct ContextGuard {
    span_id: SpanId,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        pop_current(self.span_id);
    }
}

/// A future that makes a span current each time it is polled; see
/// [`with_context`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WithContext<F> {
    future: Pin<Box<F>>,
    context: SpanContext,
}

/// Wraps `future` so that `context` is current while it runs, on whichever
/// thread polls it: the way to carry a trace into a spawned task.
///
/// ```
/// use aitrace_core::{SpanContext, context};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let root = SpanContext::new_root();
/// let task = context::with_context(async { context::current() }, root);
/// assert_eq!(block_on(task), Some(root));
/// ```
pub fn with_context<F: Future>(future: F, context: SpanContext) -> WithContext<F> {
    WithContext {
        future: Box::pin(future),
        context,
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let _guard = attach(self.context);
        self.future.as_mut().poll(cx)
    }
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::TraceContextExt as _;

    use crate::ids::{SpanId, TraceId};
    use crate::record::SpanContext;

    /// The active OpenTelemetry span's ids, when it is valid. The API does
    /// not expose a span's parent, so the parent is left unknown.
    pub(super) fn current() -> Option<SpanContext> {
        // `map_current` borrows the context instead of cloning it (no
        // reference-count traffic on the hot path).
        opentelemetry::Context::map_current(|cx| {
            if !cx.has_active_span() {
                return None;
            }
            let span = cx.span();
            let sc = span.span_context();
            if !sc.is_valid() {
                return None;
            }
            Some(SpanContext::new(
                TraceId::from_bytes(sc.trace_id().to_bytes())?,
                SpanId::from_bytes(sc.span_id().to_bytes())?,
                None,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attach_and_out_of_order_drop() {
        let a = SpanContext::new_root();
        let b = a.new_child();
        let ga = attach(a);
        let gb = attach(b);
        assert_eq!(current(), Some(b));
        drop(ga);
        assert_eq!(current(), Some(b));
        drop(gb);
        assert_eq!(current(), None);
        assert!(!pop_current(a.span_id()));
    }

    #[test]
    fn keyed_and_unkeyed_entries_never_pop_each_other() {
        let a = SpanContext::new_root();
        let b = a.new_child();
        // An unkeyed entry under a keyed one for the same span: popping the
        // unkeyed one leaves the keyed top, whose key alone pops it.
        push_current(a);
        push_keyed(a, (1, 5));
        assert!(pop_current(a.span_id()));
        assert_eq!(current(), Some(a));
        assert!(!pop_current(a.span_id()), "the keyed entry is not unkeyed");
        assert!(!pop_keyed((1, 6)));
        assert!(pop_keyed((1, 5)));
        assert_eq!(current(), None);
        // A keyed entry under an unkeyed top: popped from under it.
        push_keyed(b, (2, 9));
        push_current(a);
        assert!(!pop_keyed((2, 8)));
        assert!(pop_keyed((2, 9)));
        assert_eq!(current(), Some(a));
        assert!(!pop_keyed((2, 9)));
        assert!(pop_current(a.span_id()));
        assert_eq!(current(), None);
    }

    /// Which span is current with an OpenTelemetry span active: ours while
    /// the OpenTelemetry span is the one that was active when ours was
    /// entered (or is ours), else the OpenTelemetry span.
    #[cfg(feature = "opentelemetry")]
    #[test]
    fn an_active_opentelemetry_span_is_current_unless_ours_was_entered_under_it() {
        let o1 = SpanContext::new_root();
        let o2 = SpanContext::new_root();
        let ours = o1.new_child();
        let active = |otel: Option<SpanContext>| Otel { active: otel };
        let same_id = SpanContext::new(o1.trace_id(), ours.span_id(), None);
        assert_eq!(current_with(active(Some(o1))), Some(o1), "empty stack");
        assert_eq!(current_with(active(None)), None);
        push_with(ours, (0, 0), active(Some(o1)));
        for (otel, want, case) in [
            (Some(o1), ours, "entered under it"),
            (Some(o2), o2, "another became active"),
            (None, ours, "none active"),
        ] {
            assert_eq!(current_with(active(otel)), Some(want), "{case}");
        }
        assert!(pop_current(ours.span_id()));
        push_with(ours, (0, 0), active(None));
        assert_eq!(current_with(active(Some(o1))), Some(o1), "active since");
        assert_eq!(current_with(active(Some(same_id))), Some(ours), "ours");
        assert!(pop_current(ours.span_id()));
    }

    #[test]
    fn new_span_is_child_of_current() {
        let root = new_span();
        assert_eq!(root.parent_span_id(), None);
        let _g = attach(root);
        let child = new_span();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_eq!(child.parent_span_id(), Some(root.span_id()));
    }
}
