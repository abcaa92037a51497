//! The server side: a `tower::Layer` that runs each request in a span of
//! kind server, with HTTP meaning.

mod body;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{HOST, HeaderName, HeaderValue, USER_AGENT};
use http::{Request, Response};
use tracing::Span;
use tracing::field::Empty;

use crate::propagation;
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
/// * is a root unless the caller's `traceparent` continues a trace: never
///   the child of a span that happens to be current where the server calls
///   the service;
/// * is named `METHOD ROUTE` (`otel.name`), the route being axum's
///   `MatchedPath` (feature `axum`) or what [`route_with`](Self::route_with)
///   reads, else the method alone: never the raw path with its ids. A gRPC
///   call (tonic) is named `package.Service/Method`, with `rpc.system`,
///   `rpc.service` and `rpc.method`;
/// * carries the stable OpenTelemetry HTTP attributes `http.request.method`,
///   `url.path`, `url.scheme`, `http.route`, `server.address`,
///   `server.port` (from the `Host` header or the URI's authority),
///   `user_agent.original`, `network.protocol.version`, and, recorded with
///   the response, `http.response.status_code`. `url.scheme` is `http`
///   when the request does not say ([`scheme`](Self::scheme)); header
///   values are taken as UTF-8 (invalid bytes replaced) and cut at
///   [`MAX_HEADER_FIELD_LEN`];
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
    scheme: &'static str,
}

/// The most bytes of a header a field takes (`user_agent.original`,
/// `request_id`): the rest of a longer one is cut, at a character boundary.
pub const MAX_HEADER_FIELD_LEN: usize = 1024;

impl ServerLayer {
    /// A layer with the defaults: request ids from `x-request-id`, routes
    /// from axum's `MatchedPath` (feature `axum`).
    pub fn new() -> Self {
        aitrace_core::adapter::watch_panics();
        ServerLayer {
            request_id: DEFAULT_REQUEST_ID_HEADER,
            route: None,
            scheme: "http",
        }
    }

    /// The `url.scheme` of a request whose URI names none (HTTP/1.1's
    /// usual form; HTTP/2 always names it): `http` unless said otherwise,
    /// `https` for a server that terminates TLS itself.
    pub fn scheme(mut self, scheme: &'static str) -> Self {
        self.scheme = scheme;
        self
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
        let grpc = Grpc::of(parts);
        let route = match &self.route {
            Some(route) => route(parts),
            None => matched_path(parts),
        };
        let (method, method_original) = semconv::method(&parts.method);
        let name = match (&grpc, &route) {
            // The RPC conventions' name: `package.Service/Method`.
            (Some(grpc), None) => Cow::Owned(format!("{}/{}", grpc.service, grpc.method)),
            _ => semconv::span_name(method, route.as_deref()),
        };
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()));
        let (address, port) = match authority.and_then(semconv::host_and_port) {
            Some((address, port)) => (Some(address), port),
            None => (None, None),
        };
        let header = |name: &HeaderName| parts.headers.get(name).map(header_text);
        // Only a context that parses is passed on, as it parsed (its
        // `tracestate` within W3C's bounds): a bad one starts a new trace,
        // and the text of what a caller sent stays out of the records.
        let remote = propagation::extract(&parts.headers);
        let traceparent = remote.as_ref().map(|p| p.to_string());
        let tracestate = remote.as_ref().and_then(|p| p.trace_state());
        tracing::info_span!(
            target: "aitrace_http::server",
            // A root unless the caller's traceparent continues a trace: not
            // the child of a span current where the server calls the service.
            parent: None,
            "HTTP request",
            otel.name = %name,
            otel.kind = "server",
            http.request.method = method,
            http.request.method_original = method_original,
            http.route = route.as_deref(),
            url.path = parts.uri.path(),
            url.scheme = parts.uri.scheme_str().unwrap_or(self.scheme),
            server.address = address,
            server.port = port,
            user_agent.original = header(&USER_AGENT).as_deref(),
            network.protocol.version = semconv::protocol_version(parts.version),
            rpc.system = grpc.as_ref().map(|_| "grpc"),
            rpc.service = grpc.as_ref().map(|g| g.service),
            rpc.method = grpc.as_ref().map(|g| g.method),
            request_id = header(&self.request_id).as_deref(),
            traceparent = traceparent.as_deref(),
            tracestate = tracestate,
            http.response.status_code = Empty,
            rpc.grpc.status_code = Empty,
            error.type = Empty,
            otel.status_code = Empty,
            otel.status_message = Empty,
        )
    }
}

/// A header's text for a field: invalid UTF-8 replaced, at most
/// [`MAX_HEADER_FIELD_LEN`] bytes.
fn header_text(value: &HeaderValue) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(value.as_bytes());
    if text.len() <= MAX_HEADER_FIELD_LEN {
        return text;
    }
    let mut end = MAX_HEADER_FIELD_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(text[..end].to_owned())
}

/// A gRPC call (`content-type: application/grpc...`) and the service and
/// method its path names (`/package.Service/Method`).
struct Grpc<'a> {
    service: &'a str,
    method: &'a str,
}

impl<'a> Grpc<'a> {
    fn of(parts: &'a http::request::Parts) -> Option<Self> {
        let content_type = parts.headers.get(http::header::CONTENT_TYPE)?.as_bytes();
        if !content_type.starts_with(b"application/grpc") {
            return None;
        }
        let (service, method) = parts.uri.path().strip_prefix('/')?.split_once('/')?;
        if service.is_empty() || method.is_empty() || method.contains('/') {
            return None;
        }
        Some(Grpc { service, method })
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
            .field("scheme", &self.scheme)
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
        let result = ready!(poll_inside(this.span.as_ref(), || this.inner.poll(cx)));
        let span = this.span.take();
        Poll::Ready(match result {
            Ok(response) => {
                let mut failed = false;
                if let Some(span) = &span {
                    failed = record_status(span, response.status());
                    if let Some(code) = grpc_status(response.headers()) {
                        failed = record_grpc_status(span, code, failed);
                    }
                }
                Ok(response.map(|body| ResponseBody::new(body, span, failed)))
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

/// Records the status code, and fails the span on a 5xx; returns whether
/// it did.
fn record_status(span: &Span, status: http::StatusCode) -> bool {
    span.record(semconv::HTTP_RESPONSE_STATUS_CODE, status.as_u16());
    let failed = status.is_server_error();
    if failed {
        fail(span, status.as_str(), None);
    }
    failed
}

/// A `grpc-status` header or trailer's code.
fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Records a gRPC status, failing the span (unless it `failed` already:
/// the first cause stays) for the codes OpenTelemetry's RPC conventions
/// count as server errors: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
/// INTERNAL, UNAVAILABLE and DATA_LOSS. Returns whether the span has failed.
fn record_grpc_status(span: &Span, code: u32, failed: bool) -> bool {
    span.record("rpc.grpc.status_code", code);
    if failed {
        return true;
    }
    let fails = matches!(code, 2 | 4 | 12 | 13 | 14 | 15);
    if fails {
        fail(span, &code.to_string(), None);
    }
    fails
}

/// Polls inside `span` (entered for the call), failing it if a panic
/// unwinds through: the future's and the body's polls alike.
fn poll_inside<T>(span: Option<&Span>, poll: impl FnOnce() -> Poll<T>) -> Poll<T> {
    let _entered = span.map(Span::enter);
    let unwinding = FailOnPanic(span);
    let polled = poll();
    std::mem::forget(unwinding);
    polled
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
