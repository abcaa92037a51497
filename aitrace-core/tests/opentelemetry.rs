//! Records inside an OpenTelemetry span carry its ids.

use aitrace_core::{BufferedLogger, Output, context};
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;

#[test]
fn records_inside_an_otel_span_carry_exactly_its_ids() {
    let (output, _memory) = Output::in_memory();
    let log = BufferedLogger::builder().output(output).build();
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("test");

    let otel_ids = tracer.in_span("http_request", |cx| {
        log.info("inside otel").emit();
        // An aitrace span opened here joins the OTel trace as a child...
        log.span("aitrace_child").in_scope(|child| {
            log.info("inside child").emit();
            // ...and stays current until it ends, though OTel's span is older.
            assert_eq!(context::current(), Some(child.context()));
            // A newer OTel span inside the aitrace span takes over.
            tracer.in_span("db_query", |db| {
                let sc = db.span().span_context().clone();
                assert_eq!(
                    context::current().unwrap().span_id().to_bytes(),
                    sc.span_id().to_bytes()
                );
            });
        });
        let sc = cx.span().span_context().clone();
        (sc.trace_id().to_bytes(), sc.span_id().to_bytes())
    });

    let records = log.records();
    let inside = records.iter().find(|r| r.event() == "inside otel").unwrap();
    assert_eq!(inside.trace_id().unwrap().to_bytes(), otel_ids.0);
    assert_eq!(inside.span_id().unwrap().to_bytes(), otel_ids.1);
    let child = records
        .iter()
        .find(|r| r.event() == "aitrace_child.start")
        .unwrap();
    assert_eq!(child.trace_id().unwrap().to_bytes(), otel_ids.0);
    assert_eq!(child.parent_span_id().unwrap().to_bytes(), otel_ids.1);
    let in_child = records
        .iter()
        .find(|r| r.event() == "inside child")
        .unwrap();
    assert_eq!(in_child.span_id(), child.span_id());

    log.info("after").emit();
    assert_eq!(log.records().last().unwrap().span_context(), None);
}
