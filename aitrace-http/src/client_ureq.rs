//! Client spans for ureq, as ureq middleware.

use std::io::ErrorKind;

use ureq::middleware::{Middleware, MiddlewareNext};
use ureq::{Body, SendBody};

use crate::{client, propagation};

/// A [`ureq::middleware::Middleware`] that runs each request in a span of
/// kind client and sends that span's `traceparent` and `tracestate`: what
/// `ReqwestMiddleware` does, for ureq. The
/// span is entered for the call, and ends when the response's headers
/// arrive (ureq turns a 4xx or 5xx into `Error::StatusCode` by default;
/// either way the code is recorded). A transport error's `error.type` is
/// `timeout`, `connect` (refused or reset, as reqwest has it), `io` or
/// `_OTHER`.
///
/// ```
/// let agent: ureq::Agent = ureq::Agent::config_builder()
///     .middleware(aitrace_http::UreqMiddleware::new())
///     .build()
///     .into();
/// # drop(agent);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct UreqMiddleware {}

impl UreqMiddleware {
    /// The middleware.
    pub fn new() -> Self {
        UreqMiddleware {}
    }
}

impl Middleware for UreqMiddleware {
    fn handle(
        &self,
        mut request: http::Request<SendBody>,
        next: MiddlewareNext,
    ) -> Result<http::Response<Body>, ureq::Error> {
        let uri = request.uri();
        let span = client::span(
            request.method(),
            &uri.to_string(),
            uri.scheme_str().unwrap_or("http"),
            uri.host(),
            uri.port_u16(),
        );
        let _entered = span.enter();
        propagation::inject(request.headers_mut());
        let result = next.handle(request);
        match &result {
            Ok(response) => client::record_status(&span, response.status().as_u16()),
            Err(ureq::Error::StatusCode(code)) => client::record_status(&span, *code),
            Err(error) => client::record_error(&span, error_type(error), error),
        }
        result
    }
}

/// A low-cardinality name for a request that got no response.
fn error_type(error: &ureq::Error) -> &'static str {
    match error {
        ureq::Error::Timeout(_) => "timeout",
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => "connect",
        ureq::Error::Io(error) => match error.kind() {
            // What reqwest calls a connect error.
            ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::NotConnected => {
                "connect"
            }
            ErrorKind::TimedOut => "timeout",
            _ => "io",
        },
        _ => "_OTHER",
    }
}
