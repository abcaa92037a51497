//! What a sceptical review of the server layer tried (issue 22): spans
//! that must be roots, hostile headers, failing twice, runtimes started
//! inside a span, context left behind on the workers, bodies that never
//! end.

mod common;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use aitrace_core::Level;
use bytes::Bytes;
use common::{Setup, int, one, text};
use http::{Request, Response};
use http_body_util::Full;
use tower_layer::Layer as _;
use tower_service::Service as _;

#[derive(Clone)]
struct Ok200;

impl tower_service::Service<Request<()>> for Ok200 {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        tracing::error!("handler_error");
        let mut sent = http::HeaderMap::new();
        aitrace_http::inject(&mut sent);
        let body = sent
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        ready(Ok(Response::new(Full::new(Bytes::from(body)))))
    }
}

/// A request with no traceparent is a new trace: a server span must not
/// become the child of whatever span is current where hyper calls the
/// service (an accept loop in a span, a current_thread runtime inside an
/// entered span).
#[test]
fn a_request_without_traceparent_is_a_root_not_a_child_of_the_callers_span() {
    let setup = Setup::new();
    let mut service = aitrace_http::ServerLayer::new().layer(Ok200);
    setup.run(async {
        let serve = tracing::info_span!("serve");
        let future = {
            let _in_serve = serve.enter();
            service.call(Request::get("/x").body(()).unwrap())
        };
        drop(future.await.unwrap());
        drop(serve);
    });
    let records = setup.records_once_ended(2);
    let start = one(&records, "GET.start");
    assert_eq!(
        start.span_context().unwrap().parent_span_id(),
        None,
        "the server span is a root"
    );
}

/// The span records the raw, unbounded `tracestate` (and a higher
/// version's `traceparent` with its tail), not the sanitized one W3C
/// allows (512 characters, 32 members).
#[test]
fn an_attackers_huge_tracestate_is_not_copied_into_the_records() {
    let setup = Setup::new();
    let mut service = aitrace_http::ServerLayer::new().layer(Ok200);
    let huge_state = format!("a={}", "x".repeat(60_000));
    let huge_parent = format!(
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-{}",
        "y".repeat(60_000)
    );
    setup.run(async {
        let request = Request::get("/x")
            .header("traceparent", &huge_parent)
            .header("tracestate", &huge_state)
            .body(())
            .unwrap();
        drop(service.call(request).await.unwrap());
    });
    let records = setup.records_once_ended(1);
    let start = one(&records, "GET.start");
    let state = text(start, "tracestate").unwrap_or_default();
    let parent = text(start, "traceparent").unwrap_or_default();
    assert!(
        state.len() <= 512,
        "tracestate field is {} bytes",
        state.len()
    );
    assert!(
        parent.len() <= 55,
        "traceparent field is {} bytes",
        parent.len()
    );
}

/// A 5xx whose body then fails: `fail` runs twice, and the `.end` record
/// carries `error.type` (and `otel.status_code`) twice.
#[test]
fn a_failed_span_records_error_type_once() {
    #[derive(Clone)]
    struct Broken;
    impl tower_service::Service<Request<()>> for Broken {
        type Response = Response<
            http_body_util::StreamBody<
                futures_util::stream::Iter<
                    std::vec::IntoIter<Result<http_body::Frame<Bytes>, std::io::Error>>,
                >,
            >,
        >;
        type Error = Infallible;
        type Future = Ready<Result<Self::Response, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            let frames = vec![Err(std::io::Error::other("disk gone"))];
            let mut response = Response::new(http_body_util::StreamBody::new(
                futures_util::stream::iter(frames),
            ));
            *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            ready(Ok(response))
        }
    }
    let setup = Setup::new();
    let mut service = aitrace_http::ServerLayer::new().layer(Broken);
    setup.run(async {
        use http_body_util::BodyExt as _;
        let response = service
            .call(Request::get("/x").body(()).unwrap())
            .await
            .unwrap();
        assert!(response.into_body().collect().await.is_err());
    });
    let records = setup.records_once_ended(1);
    let end = one(&records, "GET.end");
    let n = end.fields().filter(|(k, _)| *k == "error.type").count();
    assert_eq!(int(end, "http.response.status_code"), Some(500));
    assert_eq!(
        n,
        1,
        "error.type fields: {:?}",
        end.fields().collect::<Vec<_>>()
    );
}

/// The same with axum::serve on a current_thread runtime (`#[tokio::main(flavor =
/// "current_thread")]`, `#[tokio::test]`) started inside an entered span:
/// every request of the process lands in the `app` span's trace.
#[test]
fn axum_on_a_current_thread_runtime_inside_a_span_puts_every_request_in_one_trace() {
    use tracing_subscriber::prelude::*;
    let log = aitrace_testkit::memory_logger(Level::Info).0;
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(aitrace_tracing::AitraceLayer::new(log.clone())),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _app = tracing::info_span!("app").entered();
        runtime.block_on(async {
            let app = axum::Router::new()
                .route("/a/{n}", axum::routing::get(|| async { "ok" }))
                .layer(aitrace_http::ServerLayer::new());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            for n in 0..2 {
                reqwest::get(format!("http://{addr}/a/{n}"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
            }
        });
    });
    let records = log.records();
    let traces: std::collections::HashSet<_> = records
        .iter()
        .filter(|r| r.event() == "GET /a/{n}.start")
        .map(|r| r.span_context().unwrap().trace_id())
        .collect();
    assert_eq!(traces.len(), 2, "a trace per request");
}

/// What the 32-request test misses: after the traffic, a record made on
/// the worker threads outside any request belongs to no span.
#[test]
fn after_concurrent_requests_no_span_is_left_current_on_the_workers() {
    let setup = Setup::new();
    let app = axum::Router::new()
        .route(
            "/work/{n}",
            axum::routing::get(|| async {
                tokio::task::yield_now().await;
                tracing::info!("inside");
                "ok"
            }),
        )
        .layer(aitrace_http::ServerLayer::new());
    let addr = setup.serve(app);
    setup.run(async {
        let client = reqwest::Client::new();
        let calls: Vec<_> = (0..32)
            .map(|n| {
                let client = client.clone();
                tokio::spawn(async move {
                    client
                        .get(format!("http://{addr}/work/{n}"))
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap()
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
    });
    setup.records_once_ended(32);
    setup.run(async {
        let idle: Vec<_> = (0..64)
            .map(|_| tokio::spawn(async { tracing::info!("idle") }))
            .collect();
        for task in idle {
            task.await.unwrap();
        }
    });
    let records = setup.log.records();
    for record in records.iter().filter(|r| r.event() == "idle") {
        assert_eq!(record.span_context(), None, "a span leaked: {record:?}");
    }
}

/// HEAD on an endless stream, a client that goes away in the middle of
/// one, and one that gives up before the answer: each ends its span.
#[test]
fn head_and_a_client_gone_mid_stream_end_the_span() {
    let setup = Setup::new();
    let app = axum::Router::new()
        .route(
            "/endless",
            axum::routing::get(|| async {
                let stream = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    Some((Ok::<_, std::io::Error>("x"), ()))
                });
                axum::body::Body::from_stream(stream)
            }),
        )
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                "late"
            }),
        )
        .layer(aitrace_http::ServerLayer::new());
    let addr = setup.serve(app);
    setup.run(async {
        let client = reqwest::Client::new();
        let head = client
            .head(format!("http://{addr}/endless"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        let mut get = client
            .get(format!("http://{addr}/endless"))
            .send()
            .await
            .unwrap();
        get.chunk().await.unwrap();
        drop(get);
        let slow = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(100))
            .build()
            .unwrap();
        assert!(
            slow.get(format!("http://{addr}/slow"))
                .send()
                .await
                .is_err()
        );
    });
    let records = setup.records_once_ended(3);
    let mut ends: Vec<_> = records
        .iter()
        .filter(|r| r.event().ends_with(".end"))
        .map(|r| {
            (
                r.event().to_owned(),
                r.level(),
                int(r, "http.response.status_code"),
            )
        })
        .collect();
    ends.sort_by(|a, b| a.0.cmp(&b.0));
    // Ended as they stood: not failed; the slow one never answered.
    assert_eq!(
        ends,
        [
            ("GET /endless.end".to_owned(), Level::Info, Some(200)),
            ("GET /slow.end".to_owned(), Level::Info, None),
            ("HEAD /endless.end".to_owned(), Level::Info, Some(200)),
        ]
    );
}

/// A user agent with bytes that are not UTF-8, a request id far too long,
/// and a TLS server that says its scheme.
#[test]
fn header_fields_are_text_of_bounded_length_and_the_scheme_can_be_said() {
    let setup = Setup::new();
    let mut service = aitrace_http::ServerLayer::new()
        .scheme("https")
        .layer(Ok200);
    let long_id = "é".repeat(aitrace_http::MAX_HEADER_FIELD_LEN); // two bytes each
    setup.run(async {
        let request = Request::get("/x")
            .header(
                "user-agent",
                http::HeaderValue::from_bytes(b"shop/1.0 \xff\xfe").unwrap(),
            )
            .header(
                "x-request-id",
                http::HeaderValue::from_bytes(long_id.as_bytes()).unwrap(),
            )
            .body(())
            .unwrap();
        drop(service.call(request).await.unwrap());
    });
    let records = setup.records_once_ended(1);
    let start = one(&records, "GET.start");
    assert_eq!(
        text(start, "user_agent.original").as_deref(),
        Some("shop/1.0 \u{fffd}\u{fffd}")
    );
    let id = text(start, "request_id").unwrap();
    assert_eq!(
        id.len(),
        aitrace_http::MAX_HEADER_FIELD_LEN,
        "cut at a character boundary"
    );
    assert!(id.chars().all(|c| c == 'é'));
    assert_eq!(text(start, "url.scheme").as_deref(), Some("https"));
}
