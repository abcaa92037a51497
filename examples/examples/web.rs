//! Two web services in one process, one trace per request across both, with
//! no hand-written glue: `shop` (axum) takes orders and asks `stock`
//! (axum) through reqwest. `aitrace_http::ServerLayer` gives each request
//! a server span that continues the caller's `traceparent`;
//! `aitrace_http::ReqwestMiddleware` gives each call a client span and
//! sends its header. One order's SKU breaks `stock`: its spans fail on
//! both sides (500 in `stock`, 502 in `shop`, the client span between).
//!
//! ```sh
//! cargo run -p aitrace-examples --example web | aitrace view
//! cargo run -p aitrace-examples --example web -- /tmp/web.html   # a report
//! ```
//!
//! The argument is the output (a JSON Lines path, an `.html` report, or
//! anything `LOG_TRG` takes); without it, `LOG_TRG`, else stdout. A line
//! per request on stderr names its trace.

use std::net::SocketAddr;
use std::time::Duration;

use aitrace_core::BufferedLogger;
use aitrace_tracing::AitraceLayer;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use tracing_subscriber::prelude::*;

/// How long any request, and the final flush, may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The orders sent to `shop`: the SKU each asks `stock` about, and the
/// `x-request-id` the caller sends, if any.
const ORDERS: [(&str, &str, Option<&str>); 4] = [
    ("o1001", "sku-1", Some("req-1001")),
    ("o1002", "sku-2", None),
    ("o1003", "sku-broken", Some("req-1003")),
    ("o1004", "sku-3", None),
];

/// `stock`: how many of a SKU are left; the broken one fails.
async fn stock(Path(sku): Path<String>) -> Result<String, StatusCode> {
    if sku == "sku-broken" {
        tracing::error!(sku = %sku, "stock_table_unreadable");
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    tracing::info!(sku = %sku, left = 3, "stock_checked");
    Ok("3".to_owned())
}

/// What `shop`'s handlers share: the client and where `stock` is.
#[derive(Clone)]
struct Shop {
    client: reqwest_middleware::ClientWithMiddleware,
    stock: SocketAddr,
}

/// `shop`: an order asks `stock`, and fails when `stock` does.
async fn order(
    State(shop): State<Shop>,
    Path((order_id, sku)): Path<(String, String)>,
) -> Result<String, StatusCode> {
    tracing::info!(order_id = %order_id, sku = %sku, "order_received");
    let url = format!("http://{}/stock/{sku}", shop.stock);
    let answer = shop.client.get(&url).send().await;
    match answer {
        Ok(response) if response.status().is_success() => {
            let left = response.text().await.unwrap_or_default();
            tracing::info!(order_id = %order_id, left = %left, "order_placed");
            Ok(format!("{order_id} placed"))
        }
        Ok(response) => {
            tracing::warn!(order_id = %order_id, status = response.status().as_u16(), "stock_refused");
            Err(StatusCode::BAD_GATEWAY)
        }
        Err(err) => {
            tracing::warn!(order_id = %order_id, error = %err, "stock_unreachable");
            Err(StatusCode::BAD_GATEWAY)
        }
    }
}

/// Serves `app` on 127.0.0.1 until `stop` fires; the task ends once every
/// connection has closed, so every span has ended.
async fn serve(
    app: Router,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("a local address");
    let task = tokio::spawn(async move {
        let mut stop = stop;
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            eprintln!("web: a server stopped: {err}");
        }
    });
    (addr, task)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let builder = BufferedLogger::builder();
    let builder = match std::env::args().nth(1) {
        Some(target) => builder.target(&target).unwrap_or_else(|err| {
            eprintln!("web: {err}");
            std::process::exit(2);
        }),
        None => builder, // LOG_TRG, else stdout
    };
    let log = builder.build();
    tracing_subscriber::registry()
        .with(AitraceLayer::new(log.clone()))
        .init();

    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stock_app = Router::new()
        .route("/stock/{sku}", get(stock))
        .layer(aitrace_http::ServerLayer::new());
    let (stock_addr, stock_task) = serve(stock_app, stopping.clone()).await;
    let shop_client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .expect("a reqwest client"),
    )
    .with(aitrace_http::ReqwestMiddleware::new())
    .build();
    let shop_app = Router::new()
        .route("/orders/{order_id}/{sku}", get(order))
        .with_state(Shop {
            client: shop_client,
            stock: stock_addr,
        })
        .layer(aitrace_http::ServerLayer::new());
    let (shop_addr, shop_task) = serve(shop_app, stopping).await;

    // The caller: a plain client, outside any span, so each order starts
    // its own trace in `shop`.
    let caller = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("a reqwest client");
    let mut failed = 0;
    for (order_id, sku, request_id) in ORDERS {
        let mut request = caller.get(format!("http://{shop_addr}/orders/{order_id}/{sku}"));
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                failed += usize::from(!status.is_success());
                eprintln!("web: {order_id} ({sku}) -> {status}");
            }
            Err(err) => {
                eprintln!("web: {order_id} ({sku}) failed: {err}");
                std::process::exit(1);
            }
        }
    }
    drop(caller);
    let _ = stop.send(true);
    for task in [shop_task, stock_task] {
        if tokio::time::timeout(TIMEOUT, task).await.is_err() {
            eprintln!("web: a server did not stop in time");
        }
    }

    // The global subscriber holds a handle that never drops: shut down
    // here (off the runtime's threads: it waits for the output).
    let report = tokio::task::spawn_blocking(move || log.shutdown(TIMEOUT).map(|r| (r, log)))
        .await
        .expect("the shutdown task");
    match report {
        Ok((report, log)) => {
            eprintln!("web: {failed} of {} orders failed", ORDERS.len());
            eprintln!("web: flushed to {}: {report}", log.outputs()[0]);
            if !report.is_complete() {
                std::process::exit(1);
            }
        }
        Err(err) => {
            eprintln!("web: flush failed: {err}");
            std::process::exit(1);
        }
    }
}
