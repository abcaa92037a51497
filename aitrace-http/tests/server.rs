//! `ServerLayer` on axum apps served on 127.0.0.1, called with reqwest.

mod common;

use std::sync::Arc;

use aitrace_core::{BufferedLogger, Level, Output, Record, TraceParent, Value};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use common::{Setup, events, int, named, one, text};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn app() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|| async {
                tracing::info!("user_found");
                "u7"
            }),
        )
        .route("/fail/{code}", get(fail))
        .layer(aitrace_http::ServerLayer::new())
}

async fn fail(axum::extract::Path(code): axum::extract::Path<u16>) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

#[test]
fn a_request_runs_in_a_server_span_with_the_http_attributes() {
    let setup = Setup::new();
    let addr = setup.serve(app());
    let body = setup.run(async {
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/users/u7?expand=1"))
            .header("traceparent", TRACEPARENT)
            .header("tracestate", "congo=t61rcWkgMzE")
            .header("user-agent", "shop-test/1.0")
            .header("x-request-id", "req-42")
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    });
    assert_eq!(body, "u7");
    let records = setup.records_once_ended(1);
    assert_eq!(
        events(&records),
        ["GET /users/{id}.start", "user_found", "GET /users/{id}.end"]
    );
    let start = one(&records, "GET /users/{id}.start");
    let remote = TraceParent::parse(TRACEPARENT).unwrap();
    let context = start.span_context().unwrap();
    assert_eq!(context.trace_id(), remote.trace_id(), "the caller's trace");
    assert_eq!(context.parent_span_id(), Some(remote.span_id()));
    for (field, value) in [
        ("otel.kind", "server"),
        ("otel.name", "GET /users/{id}"),
        ("http.request.method", "GET"),
        ("http.route", "/users/{id}"),
        ("url.path", "/users/u7"),
        ("url.scheme", "http"),
        ("server.address", "127.0.0.1"),
        ("user_agent.original", "shop-test/1.0"),
        ("network.protocol.version", "1.1"),
        ("request_id", "req-42"),
        ("tracestate", "congo=t61rcWkgMzE"),
    ] {
        assert_eq!(text(start, field).as_deref(), Some(value), "{field}");
    }
    assert_eq!(int(start, "server.port"), Some(i64::from(addr.port())));
    assert!(start.field("http.request.method_original").is_none());
    let event = one(&records, "user_found");
    assert_eq!(event.span_context(), Some(context), "the handler is inside");
    let end = one(&records, "GET /users/{id}.end");
    assert_eq!(end.level(), Level::Info);
    assert_eq!(int(end, "http.response.status_code"), Some(200));
    assert!(end.field("error").is_none() && end.field("error.type").is_none());
}

#[test]
fn a_5xx_fails_the_span_and_a_4xx_does_not() {
    let setup = Setup::new();
    let addr = setup.serve(app());
    setup.run(async {
        for code in [500, 503, 404, 422] {
            let response = reqwest::get(format!("http://{addr}/fail/{code}"))
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), code);
        }
        // No route: a 404 from the fallback, named after the method alone.
        let response = reqwest::get(format!("http://{addr}/no/such/o1002"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    });
    let records = setup.records_once_ended(5);
    let ends: Vec<(&str, Level, Option<i64>, Option<String>)> = records
        .iter()
        .filter(|r| r.event().ends_with(".end"))
        .map(|r| {
            (
                r.event(),
                r.level(),
                int(r, "http.response.status_code"),
                text(r, "error"),
            )
        })
        .collect();
    assert_eq!(
        ends,
        [
            (
                "GET /fail/{code}.end",
                Level::Error,
                Some(500),
                Some("500".into())
            ),
            (
                "GET /fail/{code}.end",
                Level::Error,
                Some(503),
                Some("503".into())
            ),
            ("GET /fail/{code}.end", Level::Info, Some(404), None),
            ("GET /fail/{code}.end", Level::Info, Some(422), None),
            ("GET.end", Level::Info, Some(404), None),
        ]
    );
    let fallback = one(&records, "GET.start");
    assert!(fallback.field("http.route").is_none());
    assert_eq!(
        text(fallback, "url.path").as_deref(),
        Some("/no/such/o1002")
    );
    let failed = records.iter().find(|r| r.level() == Level::Error).unwrap();
    assert_eq!(text(failed, "error.type").as_deref(), Some("500"));
    assert_eq!(text(failed, "otel.status_code").as_deref(), Some("error"));
}

#[test]
fn garbage_and_upper_case_traceparents_start_a_new_trace() {
    let setup = Setup::new();
    let addr = setup.serve(app());
    let bad = [
        "garbage".to_owned(),
        TRACEPARENT.to_uppercase(),
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
        format!("{TRACEPARENT}-extra"),
    ];
    setup.run(async {
        for header in &bad {
            let response = reqwest::Client::new()
                .get(format!("http://{addr}/users/u7"))
                .header("traceparent", header)
                .header("tracestate", "congo=t61rcWkgMzE")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{header}");
        }
        // Two traceparent headers are one too many.
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/users/u7"))
            .header("traceparent", TRACEPARENT)
            .header("traceparent", TRACEPARENT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    });
    let records = setup.records_once_ended(bad.len() + 1);
    let starts: Vec<&Record> = records
        .iter()
        .filter(|r| r.event().ends_with(".start"))
        .collect();
    assert_eq!(starts.len(), bad.len() + 1);
    let remote = TraceParent::parse(TRACEPARENT).unwrap();
    let mut traces = std::collections::HashSet::new();
    for start in starts {
        let context = start.span_context().unwrap();
        assert_ne!(context.trace_id(), remote.trace_id());
        assert_eq!(context.parent_span_id(), None, "a new root");
        assert!(
            start.field("traceparent").is_none(),
            "a bad header is not kept"
        );
        assert!(start.field("tracestate").is_none());
        traces.insert(context.trace_id());
    }
    assert_eq!(traces.len(), bad.len() + 1, "a trace each");
}

/// Retention parent-based (the default): an upstream that sampled the
/// trace makes this service keep it whole; one that did not leaves a
/// successful request's debug records out, and a failed one ships them
/// anyway. The header this service sends passes the flag on.
#[test]
fn the_sampled_flag_is_honoured_as_retention_defines() {
    use aitrace_core::retention::Retention;
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .min_level(Level::Debug)
        .retention(Retention::new().keep_ratio(1.0))
        .build();
    let setup = Setup::with_logger(log.clone());
    let app = Router::new()
        .route(
            "/orders/{outcome}",
            get(
                |axum::extract::Path(outcome): axum::extract::Path<String>| async move {
                    tracing::debug!(outcome = %outcome, "cache_lookup");
                    let mut sent = HeaderMap::new();
                    aitrace_http::inject(&mut sent);
                    let sent = sent["traceparent"].to_str().unwrap().to_owned();
                    let status = if outcome == "fail" {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    };
                    (status, sent)
                },
            ),
        )
        .layer(aitrace_http::ServerLayer::new());
    let addr = setup.serve(app);
    let cases = [
        ("4bf92f3577b34da6a3ce929d0e0e4736", "01", "ok"),
        ("5bf92f3577b34da6a3ce929d0e0e4736", "00", "ok"),
        ("6bf92f3577b34da6a3ce929d0e0e4736", "00", "fail"),
    ];
    let sent: Vec<String> = setup.run(async {
        let mut sent = Vec::new();
        for (trace, flags, outcome) in cases {
            let response = reqwest::Client::new()
                .get(format!("http://{addr}/orders/{outcome}"))
                .header(
                    "traceparent",
                    format!("00-{trace}-00f067aa0ba902b7-{flags}"),
                )
                .send()
                .await
                .unwrap();
            sent.push(response.text().await.unwrap());
        }
        sent
    });
    // The span ends after the body went out: wait for its `.end`.
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while log
        .records()
        .iter()
        .filter(|r| r.event().ends_with(".end"))
        .count()
        < 3
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    log.flush().unwrap();
    let records = memory.records();
    for ((trace, flags, _), sent) in cases.iter().zip(&sent) {
        assert!(sent.starts_with(&format!("00-{trace}-")), "{sent}");
        assert!(
            sent.ends_with(&format!("-{flags}")),
            "the flag passed on: {sent}"
        );
    }
    let lookups: Vec<String> = records
        .iter()
        .filter(|r| r.event() == "cache_lookup")
        .map(|r| r.span_context().unwrap().trace_id().to_string())
        .collect();
    assert_eq!(
        lookups,
        [cases[0].0, cases[2].0],
        "the sampled trace and the failed one ship their debug records"
    );
    let stats = log.stats();
    assert_eq!(stats.sampled_out, 1, "{stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
}

fn panicking_app() -> Router {
    Router::new()
        .route(
            "/panic",
            get(|| async {
                tracing::info!("about_to_panic");
                if true {
                    panic!("stock table corrupt");
                }
                "unreachable"
            }),
        )
        .layer(aitrace_http::ServerLayer::new())
}

#[test]
fn a_panicking_handler_fails_its_span() {
    let setup = Setup::new();
    // Without a CatchPanicLayer, the connection's task dies.
    let bare = setup.serve(panicking_app());
    // With one outside, the client gets a 500.
    let caught =
        setup.serve(panicking_app().layer(tower_http::catch_panic::CatchPanicLayer::new()));
    setup.run(async {
        let error = reqwest::get(format!("http://{bare}/panic"))
            .await
            .unwrap_err();
        assert!(error.is_request() || error.is_connect(), "{error}");
        let response = reqwest::get(format!("http://{caught}/panic"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    });
    let records = setup.records_once_ended(2);
    let ends: Vec<&Record> = named(&records, "GET /panic.end");
    assert_eq!(ends.len(), 2);
    for end in ends {
        assert_eq!(end.level(), Level::Error);
        assert_eq!(text(end, "error").as_deref(), Some("stock table corrupt"));
        assert_eq!(text(end, "error.type").as_deref(), Some("panic"));
        assert!(
            end.field("http.response.status_code").is_none(),
            "no response left it"
        );
    }
}

#[test]
fn a_streamed_response_ends_the_span_when_the_body_ends() {
    let setup = Setup::new();
    let (chunks, receiver) = tokio::sync::mpsc::channel::<&'static str>(1);
    let receiver = Arc::new(tokio::sync::Mutex::new(Some(receiver)));
    let app = Router::new()
        .route(
            "/export",
            get(move || {
                let receiver = receiver.clone();
                async move {
                    let receiver = receiver.lock().await.take().unwrap();
                    let stream =
                        futures_util::stream::unfold(receiver, |mut receiver| async move {
                            let chunk = receiver.recv().await?;
                            // Polled inside the request's span.
                            tracing::info!(chunk, "chunk_sent");
                            Some((Ok::<_, std::io::Error>(chunk), receiver))
                        });
                    Body::from_stream(stream)
                }
            }),
        )
        .layer(aitrace_http::ServerLayer::new());
    let addr = setup.serve(app);
    let log = setup.log.clone();
    let ended = move || log.records().iter().any(|r| r.event() == "GET /export.end");
    let body = setup.run(async {
        let mut response = reqwest::get(format!("http://{addr}/export")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = String::new();
        for chunk in ["orders,", "refunds"] {
            assert!(!ended(), "the headers went out, the body has not ended");
            chunks.send(chunk).await.unwrap();
            body.push_str(std::str::from_utf8(&response.chunk().await.unwrap().unwrap()).unwrap());
        }
        assert!(!ended(), "the stream is still open");
        drop(chunks); // the stream ends
        assert!(response.chunk().await.unwrap().is_none());
        body
    });
    assert_eq!(body, "orders,refunds");
    let records = setup.records_once_ended(1);
    assert_eq!(
        events(&records),
        [
            "GET /export.start",
            "chunk_sent",
            "chunk_sent",
            "GET /export.end"
        ]
    );
    let span = one(&records, "GET /export.start").span_context().unwrap();
    for chunk in records.iter().filter(|r| r.event() == "chunk_sent") {
        assert_eq!(
            chunk.span_context(),
            Some(span),
            "the body is polled inside the span"
        );
    }
    assert_eq!(one(&records, "GET /export.end").level(), Level::Info);
}

/// 32 requests in flight at once, on two worker threads, each in its own
/// trace: every record a handler writes, and the header it would send on,
/// belongs to its own request, across awaits that move it between threads.
#[test]
fn thirty_two_concurrent_requests_keep_their_own_context() {
    const REQUESTS: usize = 32;
    let setup = Setup::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let app = Router::new()
        .route(
            "/work/{n}",
            get(move |axum::extract::Path(n): axum::extract::Path<u64>| {
                let barrier = barrier.clone();
                async move {
                    tracing::info!(n, "before");
                    barrier.wait().await; // all 32 are in flight now
                    for _ in 0..n % 4 {
                        tokio::task::yield_now().await;
                    }
                    tracing::info!(n, "after");
                    let mut sent = HeaderMap::new();
                    aitrace_http::inject(&mut sent);
                    sent["traceparent"].to_str().unwrap().to_owned()
                }
            }),
        )
        .layer(aitrace_http::ServerLayer::new());
    let addr = setup.serve(app);
    let trace_of = |n: usize| format!("{:032x}", 0xa1_0000 + n);
    let sent: Vec<String> = setup.run(async {
        let client = reqwest::Client::new();
        let calls = (0..REQUESTS).map(|n| {
            let client = client.clone();
            let trace = trace_of(n);
            tokio::spawn(async move {
                client
                    .get(format!("http://{addr}/work/{n}"))
                    .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
                    .header("x-request-id", n.to_string())
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            })
        });
        let mut sent = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            sent.push(call.await.unwrap());
        }
        sent
    });
    let records = setup.records_once_ended(REQUESTS);
    for (n, sent) in sent.iter().enumerate() {
        let start = records
            .iter()
            .find(|r| r.event().ends_with(".start") && text(r, "request_id") == Some(n.to_string()))
            .unwrap_or_else(|| panic!("request {n}'s span"));
        let span = start.span_context().unwrap();
        assert_eq!(span.trace_id().to_string(), trace_of(n));
        assert_eq!(sent, &format!("00-{}-{}-01", trace_of(n), span.span_id()));
        let mine: Vec<&Record> = records
            .iter()
            .filter(|r| r.field("n") == Some(&Value::U64(n as u64)))
            .collect();
        assert_eq!(mine.len(), 2, "before and after");
        for record in mine {
            assert_eq!(record.span_context(), Some(span), "request {n}: {record:?}");
        }
    }
}

/// The trial of issue 22: at `warn`, the info-level request spans went,
/// and an error's record carried no trace. A directive keeps them.
#[test]
fn a_directive_keeps_the_request_spans_when_the_level_is_warn() {
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .filter(aitrace_core::Filter::parse("warn,aitrace_http=info").unwrap())
        .build();
    let setup = Setup::with_logger(log.clone());
    let app = Router::new()
        .route(
            "/broken",
            get(|| async {
                tracing::info!("not kept at warn");
                tracing::error!("stock_table_unreadable");
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .layer(aitrace_http::ServerLayer::new());
    let addr = setup.serve(app);
    setup.run(async {
        let response = reqwest::get(format!("http://{addr}/broken")).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    });
    setup.records_once_ended(1);
    log.flush().unwrap();
    let records = memory.records();
    assert_eq!(
        events(&records),
        [
            "GET /broken.start",
            "stock_table_unreadable",
            "GET /broken.end"
        ]
    );
    let span = one(&records, "GET /broken.start").span_context().unwrap();
    assert_eq!(
        one(&records, "stock_table_unreadable").span_context(),
        Some(span)
    );
    assert_eq!(one(&records, "GET /broken.end").level(), Level::Error);
}
