//! Client spans, shared by the reqwest and ureq middleware.

use std::fmt;

use http::Method;
use tracing::Span;
use tracing::field::Empty;

use crate::semconv;
use crate::status::fail;

/// The span of one outgoing request: kind client, named after the method
/// (the conventions' name when no URL template is known), with the
/// request's attributes; the response's are recorded by
/// [`record_status`] or [`record_error`].
pub(crate) fn span(
    method: &Method,
    url: &str,
    scheme: &str,
    host: Option<&str>,
    port: Option<u16>,
) -> Span {
    let (method, method_original) = semconv::method(method);
    let host = host.map(|h| h.trim_start_matches('[').trim_end_matches(']'));
    let port = port.or_else(|| semconv::default_port(scheme));
    tracing::info_span!(
        target: "aitrace_http::client",
        "HTTP client request",
        otel.name = semconv::span_name(method, None).as_ref(),
        otel.kind = "client",
        http.request.method = method,
        http.request.method_original = method_original,
        server.address = host,
        server.port = port,
        url.full = semconv::full_url(url).as_ref(),
        http.response.status_code = Empty,
        error.type = Empty,
        otel.status_code = Empty,
        otel.status_message = Empty,
    )
}

/// Records the response's status code; a 4xx or 5xx fails a client span,
/// as the conventions say.
pub(crate) fn record_status(span: &Span, status: u16) {
    span.record(semconv::HTTP_RESPONSE_STATUS_CODE, status);
    if status >= 400 {
        fail(span, &status.to_string(), None);
    }
}

/// Records a request that got no response.
pub(crate) fn record_error(span: &Span, error_type: &str, error: &dyn fmt::Display) {
    fail(span, error_type, Some(error));
}
