//! tracing spans through the layer to the OTLP output, against a real
//! receiver on 127.0.0.1: tracing-opentelemetry's special span fields
//! (`otel.name`, `otel.kind`, `otel.status_code`, `otel.status_message`)
//! shape the exported span, and events go on it as span events.

use aitrace_core::{BufferedLogger, Output};
use aitrace_testkit::OtlpReceiver;
use aitrace_testkit::proto::common::v1::any_value::Value as Av;
use aitrace_tracing::AitraceLayer;
use tracing_subscriber::prelude::*;

#[test]
fn otel_span_fields_and_events_reach_the_exported_span() {
    let rx = OtlpReceiver::start();
    let log = BufferedLogger::builder()
        .output(
            Output::otlp_builder()
                .endpoint(&rx.endpoint)
                .span_events(true)
                .build()
                .unwrap(),
        )
        .build();
    let subscriber = tracing_subscriber::registry().with(AitraceLayer::new(log.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "request",
            otel.name = "GET /users/{id}",
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            otel.status_message = tracing::field::Empty,
            user = "u2",
        );
        let _guard = span.enter();
        tracing::warn!(attempt = 2, "upstream slow");
        span.record("otel.status_code", "error");
        span.record("otel.status_message", "upstream timed out");
        let client = tracing::info_span!("call", otel.kind = "client");
        client.in_scope(|| tracing::info!("sent"));
    });
    log.flush().unwrap();
    let spans = rx.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let server = spans.iter().find(|s| s.name == "GET /users/{id}").unwrap();
    assert_eq!(server.kind, 2, "SPAN_KIND_SERVER");
    let status = server.status.as_ref().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (2, "upstream timed out")
    );
    let keys: Vec<&str> = server.attributes.iter().map(|a| a.key.as_str()).collect();
    assert!(keys.contains(&"user"), "{keys:?}");
    assert!(keys.iter().all(|k| !k.starts_with("otel.")), "{keys:?}");
    let events: Vec<&str> = server.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["upstream slow"]);
    let attempt = server.events[0]
        .attributes
        .iter()
        .find(|kv| kv.key == "attempt")
        .and_then(|kv| kv.value.as_ref()?.value.as_ref());
    assert_eq!(attempt, Some(&Av::IntValue(2)));
    let client = spans.iter().find(|s| s.name == "call").unwrap();
    assert_eq!(client.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.events.len(), 1);
}
