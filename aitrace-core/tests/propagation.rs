//! Spans that continue a trace from another process (`traceparent`), and the
//! headers the current span passes on.

use aitrace_core::{BufferedLogger, Level, Output, TraceParent, context};
use aitrace_testkit::{find, memory_logger};

fn logger() -> BufferedLogger {
    memory_logger(Level::Trace).0
}

/// A remote parent with its own trace id, so tests running at once in this
/// process never share a trace.
fn remote(flags: &str, tracestate: &str) -> TraceParent {
    let header = format!(
        "00-{}-{}-{flags}",
        aitrace_core::TraceId::random(),
        aitrace_core::SpanId::random()
    );
    TraceParent::parse(&header)
        .unwrap()
        .with_trace_state(tracestate)
}

#[test]
fn a_span_with_a_remote_parent_continues_its_trace_down_to_every_child() {
    let log = logger();
    let parent = remote("01", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7");
    let (handler, inner) = log
        .span("handle_request")
        .remote_parent(&parent)
        .in_scope(|span| {
            log.info("request_received").emit();
            let inner = log.span("load_cart").in_scope(|inner| {
                log.info("cart_loaded").emit();
                let sent = TraceParent::current().unwrap();
                assert_eq!(sent.trace_id(), parent.trace_id());
                assert_eq!(sent.span_id(), inner.context().span_id());
                assert_eq!(
                    sent.trace_state(),
                    Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
                );
                assert_eq!(
                    sent.to_string(),
                    format!("00-{}-{}-01", parent.trace_id(), inner.context().span_id())
                );
                inner.context()
            });
            (span.context(), inner)
        });

    let records = log.records();
    let start = find(&records, "handle_request.start");
    assert_eq!(start.trace_id(), Some(parent.trace_id()));
    assert_eq!(start.parent_span_id(), Some(parent.span_id()));
    assert_eq!(start.span_id(), Some(handler.span_id()));
    let end = find(&records, "handle_request.end");
    assert_eq!(end.span_context(), start.span_context());
    assert_eq!(
        find(&records, "request_received").span_context(),
        Some(&handler)
    );
    let child = find(&records, "load_cart.start");
    assert_eq!(child.trace_id(), Some(parent.trace_id()));
    assert_eq!(child.parent_span_id(), Some(handler.span_id()));
    assert_eq!(find(&records, "cart_loaded").span_context(), Some(&inner));
    // The wire record has no key beyond the usual ones.
    let json = aitrace_core::Layout::Namespaced.to_json(start);
    assert!(!json.contains("tracestate"), "{json}");

    // Once the span ended, nothing is current and the trace state is gone.
    assert_eq!(TraceParent::current(), None);
    let again = TraceParent::of(handler);
    assert_eq!(again.trace_state(), None);
}

#[test]
fn the_remote_flags_are_passed_on_and_aitrace_traces_are_sampled() {
    let log = logger();
    let unsampled = remote("00", "");
    log.span("handle")
        .remote_parent(&unsampled)
        .in_scope(|span| {
            let sent = TraceParent::current().unwrap();
            assert!(!sent.is_sampled());
            assert!(sent.to_string().ends_with("-00"));
            assert_eq!(sent.trace_state(), None);
            assert_eq!(sent.span_id(), span.context().span_id());
        });
    // Unknown flag bits are not passed on (Trace Context Level 1).
    let odd = remote("ff", "");
    log.span("handle").remote_parent(&odd).in_scope(|_| {
        assert!(TraceParent::current().unwrap().to_string().ends_with("-01"));
    });
    // A trace that starts here is sampled and has no trace state.
    log.span("local").in_scope(|span| {
        let sent = TraceParent::current().unwrap();
        assert_eq!(sent.trace_id(), span.context().trace_id());
        assert!(sent.is_sampled());
        assert_eq!(sent.trace_state(), None);
    });
}

#[test]
fn the_trace_state_follows_the_trace_to_other_threads() {
    let log = logger();
    let parent = remote("01", "vendor=abc");
    log.span("handle").remote_parent(&parent).in_scope(|_| {
        let handed_off = context::current().unwrap();
        let log = log.clone();
        std::thread::spawn(move || {
            let _guard = context::attach(handed_off);
            log.span("worker").in_scope(|worker| {
                let sent = TraceParent::current().unwrap();
                assert_eq!(sent.trace_id(), parent.trace_id());
                assert_eq!(sent.span_id(), worker.context().span_id());
                assert_eq!(sent.trace_state(), Some("vendor=abc"));
            });
        })
        .join()
        .unwrap();
    });
    let records = log.records();
    assert_eq!(
        find(&records, "worker.start").parent_span_id(),
        find(&records, "handle.start").span_id()
    );
}

#[test]
fn no_remote_parent_leaves_the_span_where_it_was() {
    let log = logger();
    let bad = TraceParent::parse("00-not-a-header").ok();
    log.span("outer").in_scope(|outer| {
        log.span("inner")
            .remote_parent(bad.as_ref())
            .in_scope(|inner| {
                assert_eq!(inner.context().trace_id(), outer.context().trace_id());
                assert_eq!(
                    inner.context().parent_span_id(),
                    Some(outer.context().span_id())
                );
            });
    });
}

#[test]
fn a_filtered_out_span_with_a_remote_parent_writes_nothing() {
    let (output, _memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .min_level(Level::Info)
        .build();
    let parent = remote("01", "k=v");
    log.span("noisy")
        .level(Level::Debug)
        .remote_parent(&parent)
        .in_scope(|_| {
            assert_eq!(TraceParent::current(), None);
        });
    assert!(log.records().is_empty());
}
