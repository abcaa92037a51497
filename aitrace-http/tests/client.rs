//! Client spans and propagation: reqwest-middleware and ureq calling an
//! axum app with `ServerLayer`, in one process and one logger.

mod common;

use aitrace_core::{Level, Record, SpanContext};
use aitrace_http::WithTraceContext as _;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::{Setup, int, named, one, outcomes, text};
use tracing::Instrument as _;

fn app() -> Router {
    Router::new()
        .route("/stock/{sku}", get(stock))
        .layer(aitrace_http::ServerLayer::new())
}

async fn stock(
    axum::extract::Path(sku): axum::extract::Path<String>,
) -> (StatusCode, &'static str) {
    tracing::info!(sku = %sku, "stock_checked");
    match sku.as_str() {
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "down"),
        "missing" => (StatusCode::NOT_FOUND, "none"),
        _ => (StatusCode::OK, "3"),
    }
}

fn context(record: &Record) -> SpanContext {
    *record.span_context().expect("a span's record")
}

/// The client span `client` and the server span under it: one trace, the
/// server's parent the client's span.
fn assert_linked(client: &Record, server: &Record) {
    assert_eq!(context(server).trace_id(), context(client).trace_id());
    assert_eq!(
        context(server).parent_span_id(),
        Some(context(client).span_id())
    );
}

#[test]
fn reqwest_middleware_opens_a_client_span_the_server_continues() {
    let setup = Setup::new();
    let addr = setup.serve(app());
    let checkout = async {
        let client = common::client();
        for sku in ["sku-1", "broken", "missing"] {
            let response = client
                .get(format!("http://user:secret@{addr}/stock/{sku}?sig=abc"))
                .send()
                .await
                .unwrap();
            assert!(!response.text().await.unwrap().is_empty());
        }
    };
    // The span is made inside `run`, where the dispatcher is.
    setup.run(async { checkout.instrument(tracing::info_span!("checkout")).await });
    let records = setup.records_once_ended(7);
    let checkout = context(one(&records, "checkout.start"));
    let clients: Vec<&Record> = named(&records, "GET.start");
    let servers: Vec<&Record> = named(&records, "GET /stock/{sku}.start");
    assert_eq!((clients.len(), servers.len()), (3, 3));
    for (client, server) in clients.iter().zip(&servers) {
        assert_linked(client, server);
        assert_eq!(context(client).parent_span_id(), Some(checkout.span_id()));
        assert_eq!(text(client, "otel.kind").as_deref(), Some("client"));
        assert_eq!(text(client, "http.request.method").as_deref(), Some("GET"));
        assert_eq!(text(client, "server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(int(client, "server.port"), Some(i64::from(addr.port())));
        let url = text(client, "url.full").unwrap();
        assert!(url.starts_with(&format!("http://{addr}/stock/")), "{url}");
        assert!(
            url.ends_with("?sig=REDACTED") && !url.contains("secret"),
            "{url}"
        );
    }
    let client_ends = outcomes(&records, "GET.end", "http.response.status_code");
    // A client span fails on a 4xx too: the request did not do its job.
    assert_eq!(
        client_ends,
        [
            (Level::Info, Some(200), None),
            (Level::Error, Some(500), Some("500".into())),
            (Level::Error, Some(404), Some("404".into())),
        ]
    );
    let server_levels: Vec<Level> = records
        .iter()
        .filter(|r| r.event() == "GET /stock/{sku}.end")
        .map(Record::level)
        .collect();
    assert_eq!(server_levels, [Level::Info, Level::Error, Level::Info]);
}

#[test]
fn a_request_that_gets_no_response_fails_the_client_span() {
    let setup = Setup::new();
    let dead = aitrace_testkit::dead_url();
    setup.run(async {
        let error = common::client().get(&dead).send().await.unwrap_err();
        assert!(error.is_connect(), "{error}");
    });
    let records = setup.records_once_ended(1);
    let end = one(&records, "GET.end");
    assert_eq!(end.level(), Level::Error);
    assert_eq!(text(end, "error.type").as_deref(), Some("connect"));
    assert!(end.field("http.response.status_code").is_none());
}

#[test]
fn ureq_middleware_opens_a_client_span_the_server_continues() {
    let setup = Setup::new();
    let addr = setup.serve(app());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .middleware(aitrace_http::UreqMiddleware::new())
        .timeout_global(Some(common::TIMEOUT))
        .build()
        .into();
    tracing::dispatcher::with_default(&setup.dispatch, || {
        let _checkout = tracing::info_span!("checkout").entered();
        let mut ok = agent
            .get(format!("http://{addr}/stock/sku-1"))
            .call()
            .unwrap();
        assert_eq!(ok.body_mut().read_to_string().unwrap(), "3");
        let error = agent
            .get(format!("http://{addr}/stock/broken"))
            .call()
            .unwrap_err();
        assert!(matches!(error, ureq::Error::StatusCode(500)), "{error}");
        let error = agent.get(aitrace_testkit::dead_url()).call().unwrap_err();
        assert!(
            matches!(error, ureq::Error::ConnectionFailed | ureq::Error::Io(_)),
            "{error}"
        );
    });
    let records = setup.records_once_ended(6);
    let clients: Vec<&Record> = named(&records, "GET.start");
    let servers: Vec<&Record> = named(&records, "GET /stock/{sku}.start");
    assert_eq!((clients.len(), servers.len()), (3, 2));
    for (client, server) in clients.iter().zip(&servers) {
        assert_linked(client, server);
        assert_eq!(text(client, "otel.kind").as_deref(), Some("client"));
    }
    let ends = outcomes(&records, "GET.end", "http.response.status_code");
    assert_eq!(ends[0], (Level::Info, Some(200), None));
    assert_eq!(ends[1], (Level::Error, Some(500), Some("500".into())));
    assert_eq!(ends[2].0, Level::Error);
    // ureq reports a refused connection as `Io(ConnectionRefused)`: named
    // as reqwest names it.
    assert_eq!(ends[2].2.as_deref(), Some("connect"), "{:?}", ends[2]);
}

#[test]
fn with_trace_context_sends_the_current_span_from_any_builder() {
    let setup = Setup::new();
    let addr = setup.serve(app());
    let url = format!("http://{addr}/stock/sku-1");
    let sender = async {
        // Plain reqwest, without the middleware.
        let response = reqwest::Client::new()
            .get(&url)
            .with_trace_context()
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // reqwest-middleware's builder.
        common::client()
            .get(&url)
            .with_trace_context()
            .send()
            .await
            .unwrap();
    };
    setup.run(async { sender.instrument(tracing::info_span!("sender")).await });
    tracing::dispatcher::with_default(&setup.dispatch, || {
        let _span = tracing::info_span!("sender").entered();
        // ureq's builder, on a plain agent.
        ureq::get(&url).with_trace_context().call().unwrap();
    });
    let records = setup.records_once_ended(6);
    let senders: Vec<&Record> = named(&records, "sender.start");
    let servers: Vec<&Record> = named(&records, "GET /stock/{sku}.start");
    assert_eq!(servers.len(), 3);
    // The first two under the async sender (the middleware's own client
    // span sits between for the second), the third under the ureq one.
    assert_linked(senders[0], servers[0]);
    let middleware_span = one(&records, "GET.start");
    assert_linked(middleware_span, servers[1]);
    assert_eq!(
        context(middleware_span).parent_span_id(),
        Some(context(senders[0]).span_id())
    );
    assert_linked(senders[1], servers[2]);
}
