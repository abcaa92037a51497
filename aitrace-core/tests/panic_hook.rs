//! The panic hook that gives spans their panic's message: installed once,
//! it calls the hook set before it, and when a later hook replaces it
//! without calling it, spans fall back to `"panicked"`. Its own file: panic
//! hooks are global to the process.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aitrace_core::{Level, Value};
use aitrace_testkit::{find, memory_logger};

#[test]
fn the_hook_calls_the_one_before_it_and_a_replacement_leaves_panicked() {
    let earlier = Arc::new(AtomicUsize::new(0));
    let seen = earlier.clone();
    std::panic::set_hook(Box::new(move |_| {
        seen.fetch_add(1, Ordering::Relaxed);
    }));
    let (log, _memory) = memory_logger(Level::Info);
    let fail = |name: &'static str, message: &'static str| {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            log.span(name).in_scope(|_| panic!("{message}"))
        }));
        assert!(outcome.is_err());
    };
    fail("first", "out of stock");
    fail("second", "out of paper");
    assert_eq!(earlier.load(Ordering::Relaxed), 2, "the earlier hook ran");
    // A hook that replaces aitrace's without calling it.
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    fail("third", "out of time");
    let _ = std::panic::take_hook(); // the default again, to show a failure
    let records = log.records();
    for (event, error) in [
        ("first.end", "out of stock"),
        ("second.end", "out of paper"),
        ("third.end", "panicked"),
    ] {
        let end = find(&records, event);
        assert_eq!(end.level(), Level::Error, "{event}");
        assert_eq!(end.field("error"), Some(&Value::from(error)), "{event}");
    }
}
