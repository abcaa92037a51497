//! Trace context across HTTP for aitrace, with no hand-written glue: server
//! spans for axum, tonic and hyper (a `tower` layer), client spans for
//! reqwest and ureq (middleware), and the W3C `traceparent` headers in
//! between.
//!
//! ```no_run
//! use aitrace_core::{Background, BufferedLogger};
//! use aitrace_tracing::AitraceLayer;
//! use axum::{Router, routing::get};
//! use tracing_subscriber::prelude::*;
//!
//! # async fn run() -> std::io::Result<()> {
//! // A server: background delivery, and a guard that flushes at the end.
//! let log = BufferedLogger::builder().delivery(Background::new()).build();
//! tracing_subscriber::registry().with(AitraceLayer::new(log.clone())).init();
//! let _guard = log.delivery_guard();
//!
//! // Calls out carry the current span's traceparent, in a client span.
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(aitrace_http::ReqwestMiddleware::new())
//!     .build();
//! // Each request runs in a server span that continues the caller's trace.
//! let app = Router::new()
//!     .route("/orders/{id}", get(move || async move {
//!         client.get("http://127.0.0.1:8001/stock").send().await.ok();
//!         "ok"
//!     }))
//!     .layer(aitrace_http::ServerLayer::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
//!     .await // then `_guard` sends what is left
//! # }
//! ```
//!
//! # Usage
//!
//! The spans are `tracing` spans, written the way tracing-opentelemetry
//! reads them (`otel.name`, `otel.kind`, `otel.status_code`), with
//! OpenTelemetry's stable HTTP attributes as fields. Put
//! `aitrace_tracing::AitraceLayer` on the subscriber and they become
//! aitrace records: `GET /orders/{id}.start` and `.end`, the attributes on
//! them, the `.end` at `error` when the request failed.
//!
//! * **Servers**: `ServerLayer` on an axum `Router` (after the routes,
//!   so `MatchedPath` is known), a tonic `Server::builder().layer(..)`, or
//!   any `tower::ServiceBuilder`.
//! * **Clients**: `ReqwestMiddleware` on a `reqwest_middleware` client,
//!   `UreqMiddleware` on a ureq `Agent`: a span of kind client per call,
//!   with the headers injected. For other clients, [`inject`] writes the
//!   current span's headers into an `http::HeaderMap`, and
//!   [`WithTraceContext`] adds them to a request builder.
//! * **By hand**: [`extract`] reads a request's remote parent.
//!
//! The spans are at `INFO`, with targets `aitrace_http::server` and
//! `aitrace_http::client`: a logger whose level is above `info` drops them,
//! and the trace context with them. Keep them with a directive
//! (`AITRACE_LEVEL=warn,aitrace_http=info`).
//!
//! Retention by outcome (`aitrace_core::retention`) sees these spans like
//! any other: a 5xx, an error or a panic fails the request's trace, and an
//! upstream's `sampled` flag is honoured parent-based.
//!
//! # Feature flags
//!
//! * `tower` (default): `ServerLayer`.
//! * `axum`: the span's route from axum's `MatchedPath`.
//! * `reqwest`: `ReqwestMiddleware`, and [`WithTraceContext`] for
//!   reqwest's `RequestBuilder`s.
//! * `ureq`: `UreqMiddleware`, and [`WithTraceContext`] for ureq's
//!   `RequestBuilder`.
//!
//! A program that makes no HTTP calls and serves none (a CLI) needs none of
//! this: aitrace-tracing alone does not depend on tower.
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer, like the rest of the workspace.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(any(feature = "reqwest", feature = "ureq"))]
mod client;
#[cfg(feature = "reqwest")]
mod client_reqwest;
#[cfg(feature = "ureq")]
mod client_ureq;
mod propagation;
pub mod semconv;
#[cfg(feature = "tower")]
mod server;
#[cfg(any(feature = "tower", feature = "reqwest", feature = "ureq"))]
mod status;

#[cfg(feature = "reqwest")]
pub use client_reqwest::ReqwestMiddleware;
#[cfg(feature = "ureq")]
pub use client_ureq::UreqMiddleware;
pub use propagation::{TRACEPARENT, TRACESTATE, WithTraceContext, extract, inject, inject_context};
#[cfg(feature = "tower")]
pub use server::{
    DEFAULT_REQUEST_ID_HEADER, MAX_HEADER_FIELD_LEN, ResponseBody, ResponseFuture, ServerLayer,
    ServerService,
};
