//! Client spans for reqwest, as `reqwest-middleware` middleware.

use tracing::Instrument as _;

use crate::{client, propagation};

/// A [`reqwest_middleware::Middleware`] that runs each request in a span
/// of kind client (`otel.kind = "client"`) and sends that span's
/// `traceparent` and `tracestate`, so the server's span is its child.
///
/// The span, at `INFO` with target `aitrace_http::client` and the static
/// name `HTTP client request`, is named after the method (`otel.name`),
/// and carries `http.request.method`, `server.address`, `server.port`,
/// `url.full` (without credentials, signed query values redacted), then
/// `http.response.status_code`. A 4xx or 5xx fails it (`otel.status_code =
/// "error"`, `error.type` the code), as does an error without a response
/// (`error.type` `timeout`, `connect`, `request`, `body` or `_OTHER`). It
/// ends when the response's headers arrive: the body is read after it.
///
/// ```
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(aitrace_http::ReqwestMiddleware::new())
///     .build();
/// # drop(client);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReqwestMiddleware {}

impl ReqwestMiddleware {
    /// The middleware.
    pub fn new() -> Self {
        ReqwestMiddleware {}
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for ReqwestMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = request.url();
        let span = client::span(
            request.method(),
            url.as_str(),
            url.scheme(),
            url.host_str(),
            url.port(),
        );
        {
            let _entered = span.enter();
            propagation::inject(request.headers_mut());
        }
        let result = next.run(request, extensions).instrument(span.clone()).await;
        match &result {
            Ok(response) => client::record_status(&span, response.status().as_u16()),
            Err(error) => client::record_error(&span, error_type(error), error),
        }
        result
    }
}

/// A low-cardinality name for a request that got no response.
fn error_type(error: &reqwest_middleware::Error) -> &'static str {
    match error {
        reqwest_middleware::Error::Reqwest(error) if error.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(error) if error.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(error) if error.is_body() => "body",
        reqwest_middleware::Error::Reqwest(error) if error.is_request() => "request",
        _ => "_OTHER",
    }
}
