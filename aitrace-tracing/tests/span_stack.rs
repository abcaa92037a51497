//! The core's per-thread span stack as the layer keeps it: pushed on
//! enter, popped on exit by the layer and the span's `Id`, which is unique
//! only within one registry.

use aitrace_core::{Level, context};
use aitrace_testkit::memory_logger;
use aitrace_tracing::AitraceLayer;
use tracing_subscriber::prelude::*;

fn subscriber(level: Level) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry().with(AitraceLayer::new(memory_logger(level).0))
}

#[test]
fn a_span_of_a_nested_subscriber_with_the_same_id_leaves_the_outer_span_current() {
    tracing::subscriber::with_default(subscriber(Level::Trace), || {
        let a = tracing::info_span!("a");
        let _a = a.enter();
        let inside_a = context::current();
        assert!(inside_a.is_some());
        // A second registry numbers its spans from the start too; its
        // logger drops this span, so its layer pushed nothing.
        tracing::subscriber::with_default(subscriber(Level::Info), || {
            let b = tracing::debug_span!("b");
            assert_eq!(a.id(), b.id(), "the case under test: two spans, one Id");
            b.in_scope(|| {});
        });
        assert_eq!(context::current(), inside_a, "still inside `a`");
    });
}

#[test]
fn a_context_guard_and_a_span_with_the_same_ids_each_pop_their_own_entry() {
    tracing::subscriber::with_default(subscriber(Level::Trace), || {
        let span = tracing::info_span!("s");
        let ids = span.in_scope(context::current).unwrap();
        let guard = context::attach(ids);
        let entered = span.enter();
        drop(guard);
        assert_eq!(context::current(), Some(ids), "the span is still entered");
        drop(entered);
        drop(span);
        assert_eq!(context::current(), None, "nothing is current any more");
    });
}

#[test]
fn spans_of_two_registries_with_one_id_exit_in_any_order() {
    let first = tracing::Dispatch::new(subscriber(Level::Trace));
    let second = tracing::Dispatch::new(subscriber(Level::Trace));
    let a = tracing::dispatcher::with_default(&first, || tracing::info_span!("a"));
    let b = tracing::dispatcher::with_default(&second, || tracing::info_span!("b"));
    assert_eq!(a.id(), b.id(), "the case under test: two spans, one Id");
    let entered_a = a.enter();
    let in_a = context::current();
    let entered_b = b.enter();
    let in_b = context::current();
    assert_ne!(in_a, in_b);
    drop(entered_a);
    assert_eq!(context::current(), in_b, "`b` is still current");
    drop(entered_b);
    assert_eq!(context::current(), None);
}
