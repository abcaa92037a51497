//! One trace across two processes, shown in one: an HTTP client and server
//! on 127.0.0.1, joined only by the W3C `traceparent` header. The client
//! (the core API) sends the header of its current span
//! (`TraceParent::current`); the server (a `tracing` span with a
//! `traceparent` field) continues that trace, its span a child of the
//! client's. Both log to one logger; the summary on stderr names the trace.
//!
//! ```sh
//! cargo run -p aitrace-examples --example traceparent -- /tmp/traceparent.jsonl
//! ```
//!
//! The argument is the output (a JSON Lines path, or anything `LOG_TRG`
//! takes); without it, `LOG_TRG`, else stdout.

use std::thread::JoinHandle;
use std::time::Duration;

use aitrace_core::{BufferedLogger, SpanContext, TraceParent, context};
use aitrace_tracing::AitraceLayer;
use tracing_subscriber::prelude::*;

/// How long the server waits for the request, and the client for the answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one request on a thread of its own: no span is current there, so
/// its span can join the client's trace only through the header.
fn start_server() -> (String, JoinHandle<Option<SpanContext>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = server.server_addr().to_ip().expect("an IP address").port();
    let thread = std::thread::spawn(move || {
        let request = server.recv_timeout(TIMEOUT).ok().flatten()?;
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_owned())
        };
        let span = tracing::info_span!(
            "handle_order",
            traceparent = header("traceparent").as_deref(),
            tracestate = header("tracestate").as_deref(),
            path = request.url(),
        );
        let _entered = span.enter();
        let order = context::current();
        tracing::info!(items = 3, total = 469.74, "order_priced");
        if let Err(err) = request.respond(tiny_http::Response::from_string(r#"{"total":469.74}"#)) {
            tracing::error!(error = %err, "answer_failed");
        }
        order
    });
    (format!("http://127.0.0.1:{port}/orders/o1002"), thread)
}

fn main() {
    let builder = BufferedLogger::builder();
    let builder = match std::env::args().nth(1) {
        Some(target) => builder.target(&target).unwrap_or_else(|err| {
            eprintln!("traceparent: {err}");
            std::process::exit(2);
        }),
        None => builder, // LOG_TRG, else stdout
    };
    let log = builder.build();
    tracing_subscriber::registry()
        .with(AitraceLayer::new(log.clone()))
        .init();

    let (url, server) = start_server();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let client = log.span("place_order").in_scope(|span| {
        let parent = TraceParent::current().expect("inside a span");
        let mut request = agent.get(&url).header("traceparent", parent.to_string());
        if let Some(state) = parent.trace_state() {
            request = request.header("tracestate", state);
        }
        log.info("calling_server")
            .field("url", url.as_str())
            .field("traceparent", parent.to_string())
            .emit();
        match request
            .call()
            .and_then(|mut answer| answer.body_mut().read_to_string())
        {
            Ok(body) => log.info("server_answered").field("body", body).emit(),
            Err(err) => span.fail(err),
        }
        span.context()
    });
    let server = server.join().expect("the server thread");

    // The global subscriber holds a handle that never drops: shut down
    // before any exit, so records no output took go to a file whose path
    // is printed (`std::process::exit` runs no destructors).
    match log.shutdown(TIMEOUT) {
        Ok(report) if report.is_complete() => {
            eprintln!("traceparent: flushed to {}: {report}", log.outputs()[0]);
        }
        Ok(report) => {
            eprintln!("traceparent: flushed to {}: {report}", log.outputs()[0]);
            std::process::exit(1);
        }
        Err(err) => {
            eprintln!("traceparent: flush failed: {err}");
            std::process::exit(1);
        }
    }
    let Some(server) = server else {
        eprintln!("traceparent: the server got no request");
        std::process::exit(1);
    };
    eprintln!("traceparent: trace {}", client.trace_id());
    eprintln!(
        "traceparent:   client span place_order  {}",
        client.span_id()
    );
    eprintln!(
        "traceparent:   server span handle_order {} in trace {}, parent {}",
        server.span_id(),
        server.trace_id(),
        server
            .parent_span_id()
            .map_or_else(|| "none".to_owned(), |id| id.to_string())
    );
    if server.trace_id() != client.trace_id() || server.parent_span_id() != Some(client.span_id()) {
        eprintln!("traceparent: the server's span did not join the client's trace");
        std::process::exit(1);
    }
}
