//! The server side: a `tower::Layer` that runs each request in a span of
//! kind server, with HTTP meaning.

mod body;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{HOST, HeaderName, USER_AGENT};
use http::{Request, Response};
use tracing::Span;
use tracing::field::Empty;

use crate::propagation::{self, TRACEPARENT, TRACESTATE};
use crate::semconv;
use crate::status::fail;

pub use body::ResponseBody;

/// The header a request id is read from unless
/// [`ServerLayer::request_id_header`] names another.
pub const DEFAULT_REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Reads a request's route template, for the span's name and `http.route`.
type RouteFn = dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync;

/// A [`tower_layer::Layer`] that runs each request in a `tracing` span of
/// kind server (`otel.kind = "server"`), for axum, tonic, hyper or any
/// tower stack. Each span:
///
/// * continues the request's `traceparent`/`tracestate` (see
///   [`extract`](crate::extract)): with `aitrace_tracing::AitraceLayer` on
///   the subscriber, its records carry the caller's trace id and its parent
///   is the caller's span; a header that does not parse starts a new trace;
/// * is named `METHOD ROUTE` (`otel.name`), the route being axum's
///   `MatchedPath` (feature `axum`) or what [`route_with`](Self::route_with)
///   reads, else the method alone: never the raw path with its ids;
/// * carries the stable OpenTelemetry HTTP attributes `http.request.method`,
///   `url.path`, `url.scheme`, `http.route`, `server.address`,
///   `server.port` (from the `Host` header or the URI's authority),
///   `user_agent.original`, `network.protocol.version`, and, recorded with
///   the response, `http.response.status_code`;
/// * fails (`otel.status_code = "error"`, its `.end` record at `error`) on
///   a 5xx, with `error.type` the status code, on an error from the inner
///   service or the response body (`error.type` its type, its text in
///   `otel.status_message`), or on a panic
///   that unwinds through it (`error.type = "panic"`, the message in
///   `otel.status_message`); a 4xx is the client's error, not the
///   server's, as the conventions say. A gRPC response's `grpc-status`
///   (headers or trailers) goes in `rpc.grpc.status_code` and fails the
///   span for the codes the conventions call server errors;
/// * carries the request's `x-request-id` header (or the one
///   [`request_id_header`](Self::request_id_header) names) as `request_id`;
/// * ends when the response body ends (its last frame, an error, or when
///   it is dropped), not when the headers go out, so a streamed response
///   is inside it. The span is entered while the body is polled. A body
///   dropped before its end (the client went away) ends it as it stands:
///   not failed, the status code the one the headers gave.
///
/// Put tower-http's `CatchPanicLayer` inside this layer (added before it)
/// so the span records the 500 it answers a panic with; outside, the span
/// fails with the panic's message but has no status code.
///
/// The span is at `INFO` level with target `aitrace_http::server` and the
/// static name `HTTP request`. Events and spans of the handler are inside
/// it, and `aitrace_http::inject` there gives the headers for an outgoing
/// call.
///
/// ```no_run
/// use axum::{Router, routing::get};
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "u2" }))
///     .layer(aitrace_http::ServerLayer::new());
/// ```
#[derive(Clone)]
pub struct ServerLayer {
    request_id: HeaderName,
    route: Option<Arc<RouteFn>>,
}

impl ServerLayer {
    /// A layer with the defaults: request ids from `x-request-id`, routes
    /// from axum's `MatchedPath` (feature `axum`).
    pub fn new() -> Self {
        aitrace_core::adapter::watch_panics();
        ServerLayer {
            request_id: DEFAULT_REQUEST_ID_HEADER,
            route: None,
        }
    }

    /// Reads the `request_id` field from this header instead of
    /// `x-request-id`.
    pub fn request_id_header(mut self, header: HeaderName) -> Self {
        self.request_id = header;
        self
    }

    /// Reads a request's route template (`/users/{id}`) with `route`, for
    /// frameworks other than axum, or to override axum's. `None` names the
    /// span after the method alone.
    pub fn route_with(
        mut self,
        route: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.route = Some(Arc::new(route));
        self
    }

    /// The span a request runs in.
    fn span_for(&self, parts: &http::request::Parts) -> Span {
        let route = match &self.route {
            Some(route) => route(parts),
            None => matched_path(parts),
        };
        let (method, method_original) = semconv::method(&parts.method);
        let name = semconv::span_name(method, route.as_deref());
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()));
        let (address, port) = match authority.and_then(semconv::host_and_port) {
            Some((address, port)) => (Some(address), port),
            None => (None, None),
        };
        let header = |name: &HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        // Only a context that parses is passed on: a bad one starts a new
        // trace, and its text stays out of the records.
        let remote = propagation::extract(&parts.headers);
        let tracestate = remote
            .as_ref()
            .and_then(|_| propagation::joined(&parts.headers, &TRACESTATE));
        tracing::info_span!(
            target: "aitrace_http::server",
            "HTTP request",
            otel.name = %name,
            otel.kind = "server",
            http.request.method = method,
            http.request.method_original = method_original,
            http.route = route.as_deref(),
            url.path = parts.uri.path(),
            url.scheme = parts.uri.scheme_str().unwrap_or("http"),
            server.address = address,
            server.port = port,
            user_agent.original = header(&USER_AGENT),
            network.protocol.version = semconv::protocol_version(parts.version),
            request_id = header(&self.request_id),
            traceparent = remote
                .as_ref()
                .and_then(|_| propagation::single(&parts.headers, &TRACEPARENT)),
            tracestate = tracestate.as_deref(),
            http.response.status_code = Empty,
            rpc.grpc.status_code = Empty,
            error.type = Empty,
            otel.status_code = Empty,
            otel.status_message = Empty,
        )
    }
}

/// axum's `MatchedPath`, with the feature.
#[cfg(feature = "axum")]
fn matched_path(parts: &http::request::Parts) -> Option<String> {
    (parts.extensions.get::<axum::extract::MatchedPath>()).map(|path| path.as_str().to_owned())
}

#[cfg(not(feature = "axum"))]
fn matched_path(_parts: &http::request::Parts) -> Option<String> {
    None
}

impl Default for ServerLayer {
    fn default() -> Self {
        ServerLayer::new()
    }
}

impl fmt::Debug for ServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("request_id", &self.request_id)
            .field("route", &self.route.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl<S> tower_layer::Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ServerLayer`] wraps around another.
#[derive(Clone, Debug)]
pub struct ServerService<S> {
    inner: S,
    layer: ServerLayer,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for ServerService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let span = self.layer.span_for(&parts);
        let request = Request::from_parts(parts, body);
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture {
            inner,
            span: Some(span),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`ServerService`]'s response: the inner service's,
    /// polled inside the request's span.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.as_ref().map(Span::enter);
            let unwinding = FailOnPanic(this.span.as_ref());
            let result = ready!(this.inner.poll(cx));
            std::mem::forget(unwinding);
            result
        };
        let span = this.span.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(span) = &span {
                    record_status(span, response.status());
                    if let Some(code) = grpc_status(response.headers()) {
                        record_grpc_status(span, code);
                    }
                }
                Ok(response.map(|body| ResponseBody::new(body, span)))
            }
            Err(error) => {
                if let Some(span) = &span {
                    fail(span, std::any::type_name::<E>(), Some(&error));
                }
                Err(error)
            }
        })
    }
}

/// Records the status code, and fails the span on a 5xx.
fn record_status(span: &Span, status: http::StatusCode) {
    span.record(semconv::HTTP_RESPONSE_STATUS_CODE, status.as_u16());
    if status.is_server_error() {
        fail(span, status.as_str(), None);
    }
}

/// A `grpc-status` header or trailer's code.
fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Records a gRPC status, failing the span for the codes OpenTelemetry's
/// RPC conventions count as server errors: UNKNOWN, DEADLINE_EXCEEDED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS.
fn record_grpc_status(span: &Span, code: u32) {
    span.record("rpc.grpc.status_code", code);
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        fail(span, &code.to_string(), None);
    }
}

/// Fails a span when a panic unwinds through the poll it guards (dropped
/// during the unwinding, before any `catch_unwind` outside stops it);
/// forgotten when the poll returns.
struct FailOnPanic<'a>(Option<&'a Span>);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if let Some(span) = self.0 {
            if let Some(message) = aitrace_core::adapter::panic_error() {
                fail(span, "panic", Some(&message));
            }
        }
    }
}
