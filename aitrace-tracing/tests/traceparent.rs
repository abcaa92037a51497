//! A tracing span with a `traceparent` field continues the trace of another
//! process, and `TraceParent::current()` inside tracing spans gives the
//! header to pass on.

use aitrace_core::{BufferedLogger, Level, SpanId, TraceId, TraceParent, Value};
use aitrace_testkit::{find, memory_logger};
use aitrace_tracing::AitraceLayer;
use tracing_subscriber::prelude::*;

fn logger() -> BufferedLogger {
    memory_logger(Level::Trace).0
}

fn header() -> (TraceId, SpanId, String) {
    let (trace, span) = (TraceId::random(), SpanId::random());
    (trace, span, format!("00-{trace}-{span}-01"))
}

#[test]
fn a_traceparent_field_makes_the_span_a_child_of_the_remote_span() {
    let log = logger();
    let (trace, remote_span, header) = header();
    let subscriber = tracing_subscriber::registry().with(AitraceLayer::new(log.clone()));
    let (handle_id, sent) = tracing::subscriber::with_default(subscriber, || {
        // Inside another span: the remote parent wins over the current span.
        tracing::info_span!("server").in_scope(|| {
            let handle = tracing::info_span!(
                "handle_request",
                traceparent = %header,
                tracestate = "congo=t61rcWkgMzE",
                route = "/checkout"
            );
            handle.in_scope(|| {
                tracing::info!("request_received");
                let handle_id = TraceParent::current().unwrap().span_id();
                let sent = tracing::info_span!("call_inventory")
                    .in_scope(|| TraceParent::current().unwrap());
                (handle_id, sent)
            })
        })
    });
    let records = log.records();
    let start = find(&records, "handle_request.start");
    assert_eq!(start.trace_id(), Some(trace));
    assert_eq!(start.parent_span_id(), Some(remote_span));
    assert_eq!(start.span_id(), Some(handle_id));
    // The fields stay on the record, as any field does.
    assert_eq!(
        start.field("traceparent"),
        Some(&Value::from(header.as_str()))
    );
    assert_eq!(start.field("route"), Some(&Value::from("/checkout")));
    assert_eq!(
        find(&records, "handle_request.end").span_context(),
        start.span_context()
    );
    assert_eq!(
        find(&records, "request_received").span_context(),
        start.span_context()
    );
    let child = find(&records, "call_inventory.start");
    assert_eq!(child.trace_id(), Some(trace));
    assert_eq!(child.parent_span_id(), Some(handle_id));
    // What a client inside the child sends: same trace, the child's span,
    // the inherited tracestate.
    assert_eq!(sent.trace_id(), trace);
    assert_eq!(Some(sent.span_id()), child.span_id());
    assert_eq!(sent.trace_state(), Some("congo=t61rcWkgMzE"));
    assert_eq!(
        sent.to_string(),
        format!("00-{trace}-{}-01", sent.span_id())
    );
}

#[test]
fn a_str_field_works_and_a_bad_header_is_ignored() {
    let log = logger();
    let (trace, remote_span, header) = header();
    let subscriber = tracing_subscriber::registry().with(AitraceLayer::new(log.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("plain", traceparent = header.as_str()).in_scope(|| {});
        tracing::info_span!("outer").in_scope(|| {
            let upper = header.to_uppercase();
            tracing::info_span!("bad", traceparent = %upper).in_scope(|| {});
            tracing::info_span!("debug_quoted", traceparent = ?header).in_scope(|| {});
        });
    });
    let records = log.records();
    let plain = find(&records, "plain.start");
    assert_eq!(plain.trace_id(), Some(trace));
    assert_eq!(plain.parent_span_id(), Some(remote_span));
    let outer = find(&records, "outer.start");
    for name in ["bad.start", "debug_quoted.start"] {
        let span = find(&records, name);
        assert_eq!(span.trace_id(), outer.trace_id(), "{name}");
        assert_eq!(span.parent_span_id(), outer.span_id(), "{name}");
    }
}

#[test]
fn the_current_tracing_span_gives_the_header_to_send() {
    let log = logger();
    let subscriber = tracing_subscriber::registry().with(AitraceLayer::new(log.clone()));
    tracing::subscriber::with_default(subscriber, || {
        assert_eq!(TraceParent::current(), None);
        tracing::info_span!("client").in_scope(|| {
            let sent = TraceParent::current().unwrap();
            tracing::info!(traceparent = %sent, "calling");
        });
    });
    let records = log.records();
    let start = find(&records, "client.start");
    let Some(Value::Str(sent)) = find(&records, "calling").field("traceparent") else {
        panic!("no traceparent field");
    };
    assert_eq!(
        sent.as_ref(),
        format!(
            "00-{}-{}-01",
            start.trace_id().unwrap(),
            start.span_id().unwrap()
        )
    );
}
