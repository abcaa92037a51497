//! The message of the panic unwinding through a span, for its `error`
//! field.
//!
//! A span learns that it ends in a panic from `std::thread::panicking()`
//! in its `Drop`, which does not say what the panic was. So a panic hook,
//! installed once per process (when a tracing layer is made or the first
//! core span opens) and calling the hook that was there before, keeps the
//! message of the last panic on each thread: every panic overwrites it,
//! with `None` when the payload is not a string, so it never names a later
//! panic the hook sees. A span that ends while its thread unwinds reads it.
//! The message of a caught panic is forgotten when a span opens or ends
//! outside a panic, for a later panic the hook does not see (another hook
//! replaced it without calling it): nothing on each enter of a span, which
//! is every poll of an instrumented future.
//!
//! `AITRACE_PANIC_HOOK=0` (read once) leaves the process's panic hook
//! alone; spans a panic ends then say `"panicked"`.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a span that a panic ends says when the panic's payload is not a
/// string (`std::panic::panic_any`), or when the hook is not ours (another
/// replaced it without calling it, or `AITRACE_PANIC_HOOK=0`).
const UNKNOWN_PANIC: &str = "panicked";

/// The environment variable that, set to `0`, `false`, `no` or `off`,
/// keeps aitrace from installing its panic hook.
pub const PANIC_HOOK_ENV: &str = "AITRACE_PANIC_HOOK";

thread_local! {
    /// The message of the last panic on this thread, while it unwinds.
    static MESSAGE: Cell<Option<String>> = const { Cell::new(None) };
}

static INSTALL: Once = Once::new();

/// Whether the hook has kept a message on any thread: until it has, a span
/// has nothing to read or forget (no access to the thread-local on each
/// span). Set by the hook on the panicking thread before it unwinds, so
/// that thread's spans see it.
static KEPT: AtomicBool = AtomicBool::new(false);

/// Called as a span opens (not each time it is entered): installs the hook
/// (once per process), and forgets the message of a panic that is over
/// (caught), so that a later panic the hook does not see is not named after
/// it.
///
/// Returns whether the thread is unwinding from a panic (the span is opened
/// by a `Drop`): that panic does not unwind through the span. Out of line:
/// inlined, it grew `SpanBuilder::scope` past where the span stack's
/// functions were inlined into it (callgrind: 1,019 instructions a core
/// span, against 990).
#[inline(never)]
pub(crate) fn span_opened() -> bool {
    let unwinding = std::thread::panicking();
    // The usual case: the hook is in and has kept no message.
    if unwinding || (INSTALL.is_completed() && !KEPT.load(Ordering::Relaxed)) {
        return unwinding; // unwinding: the message stays for the spans it fails
    }
    if KEPT.load(Ordering::Relaxed) {
        let _ = MESSAGE.try_with(Cell::take);
    }
    install_hook();
    false
}

/// Installs the hook, once per process, unless `AITRACE_PANIC_HOOK` says
/// not to. Never from a thread that is panicking (the standard library
/// refuses that); the next call does.
///
/// `take_hook` then `set_hook` is not atomic (`update_hook` is not stable):
/// a hook another thread sets in between is lost.
#[inline]
pub(crate) fn install_hook() {
    if INSTALL.is_completed() || std::thread::panicking() {
        return;
    }
    INSTALL.call_once(|| {
        if crate::logger::builder::env_flag(PANIC_HOOK_ENV) == Some(false) {
            return;
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = (payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .or_else(|| payload.downcast_ref::<String>().cloned());
            // Always overwritten (`None` for a payload that is not a
            // string): a caught panic's message never names this one.
            // `try_with`: a panic while the thread's locals are torn down
            // has nowhere to go, and the hook must not panic.
            let _ = MESSAGE.try_with(|slot| slot.set(message));
            KEPT.store(true, Ordering::Relaxed);
            previous(info);
        }));
    });
}

/// The `error` text of a span ending now: the panic's message when this
/// thread is unwinding ([`UNKNOWN_PANIC`] when there is none), else
/// `None`. Outside a panic it forgets the last message, so a panic caught
/// earlier never names a later one.
#[inline]
pub(crate) fn panic_error() -> Option<String> {
    if !KEPT.load(Ordering::Relaxed) {
        return std::thread::panicking().then(unknown_panic);
    }
    kept_panic_error()
}

#[cold]
fn unknown_panic() -> String {
    UNKNOWN_PANIC.to_owned()
}

/// The `error` text of a span ending now, opened when [`span_opened`] said
/// `opened_unwinding`: [`panic_error`], except for a span opened while its
/// thread unwinds (by a `Drop`), which that panic does not unwind through
/// (its message stays for the spans it does).
#[inline]
pub(crate) fn span_error(opened_unwinding: bool) -> Option<String> {
    if opened_unwinding && std::thread::panicking() {
        return None;
    }
    panic_error()
}

/// [`panic_error`] once the hook has kept a message on some thread.
#[inline(never)]
fn kept_panic_error() -> Option<String> {
    MESSAGE
        .try_with(|slot| {
            let message = slot.take();
            if !std::thread::panicking() {
                return None;
            }
            slot.set(message.clone()); // for the spans further out
            Some(message.unwrap_or_else(|| UNKNOWN_PANIC.to_owned()))
        })
        .unwrap_or_else(|_| std::thread::panicking().then(|| UNKNOWN_PANIC.to_owned()))
}
