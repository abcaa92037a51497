//! W3C Trace Context in HTTP headers: read a request's, write the current
//! span's into an outgoing request.

use aitrace_core::TraceParent;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The `traceparent` header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The `tracestate` header.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Writes the `traceparent` (and `tracestate`, when the trace has one) of
/// the span current on this thread into `headers`, replacing any there.
/// Returns whether a span was current: without one, `headers` is left as
/// it was.
///
/// The current span is `aitrace_core`'s: the innermost entered `tracing`
/// span that an `AitraceLayer` keeps, or a core span in scope.
///
/// ```
/// use aitrace_core::BufferedLogger;
///
/// let log = BufferedLogger::builder().target("-")?.build();
/// let mut headers = http::HeaderMap::new();
/// log.span("checkout").in_scope(|span| {
///     assert!(aitrace_http::inject(&mut headers));
///     let sent = headers["traceparent"].to_str().unwrap();
///     assert!(sent.contains(&span.context().span_id().to_string()));
/// });
/// # log.clear();
/// # Ok::<(), aitrace_core::ConfigError>(())
/// ```
pub fn inject(headers: &mut HeaderMap) -> bool {
    match TraceParent::current() {
        Some(parent) => {
            inject_context(&parent, headers);
            true
        }
        None => false,
    }
}

/// Writes `parent`'s `traceparent` and `tracestate` into `headers`,
/// replacing any there (a `tracestate` already there goes when `parent`
/// has none: it belonged to another trace).
pub fn inject_context(parent: &TraceParent, headers: &mut HeaderMap) {
    // Both are ASCII by construction (hex digits, and a tracestate that
    // parsed), so neither conversion can fail.
    if let Ok(value) = HeaderValue::from_str(&parent.to_string()) {
        headers.insert(TRACEPARENT, value);
    }
    match parent.trace_state().map(HeaderValue::from_str) {
        Some(Ok(value)) => {
            headers.insert(TRACESTATE, value);
        }
        _ => {
            headers.remove(TRACESTATE);
        }
    }
}

/// The remote parent a request's headers name, as W3C Trace Context asks:
/// exactly one `traceparent` header that parses (strictly: lower-case hex,
/// no all-zero ids), with the `tracestate` headers joined into one list.
/// `None` otherwise, and a server then starts a new trace.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
/// headers.append("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
/// headers.append("tracestate", "rojo=00f067aa0ba902b7".parse().unwrap());
/// let parent = aitrace_http::extract(&headers).unwrap();
/// assert_eq!(parent.trace_state(), Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
///
/// headers.insert("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01".parse().unwrap());
/// assert!(aitrace_http::extract(&headers).is_none(), "upper case is not Trace Context");
/// ```
pub fn extract(headers: &HeaderMap) -> Option<TraceParent> {
    let traceparent = single(headers, &TRACEPARENT)?;
    let parent = TraceParent::parse(traceparent).ok()?;
    Some(match joined(headers, &TRACESTATE) {
        Some(state) => parent.with_trace_state(&state),
        None => parent,
    })
}

/// The value of a header that must appear once, when it does and is text.
pub(crate) fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// A list header's values, joined with `,` as HTTP allows (RFC 9110
/// §5.3); values that are not text are left out.
pub(crate) fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut joined: Option<String> = None;
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else { continue };
        match &mut joined {
            Some(list) => {
                list.push(',');
                list.push_str(value);
            }
            None => joined = Some(value.to_owned()),
        }
    }
    joined
}

/// Adds the current span's trace context headers to a request builder:
/// `http::request::Builder`, and with this crate's features, ureq's and
/// reqwest's `RequestBuilder`. Without a current span the builder is
/// returned as it was.
///
/// ```
/// use aitrace_core::BufferedLogger;
/// use aitrace_http::WithTraceContext as _;
///
/// let log = BufferedLogger::builder().target("-")?.build();
/// let request = log.span("checkout").in_scope(|_| {
///     http::Request::get("http://127.0.0.1:9/stock").with_trace_context().body(())
/// })?;
/// assert!(request.headers().contains_key("traceparent"));
/// # log.clear();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait WithTraceContext: Sized {
    /// The builder, with `traceparent` (and `tracestate`) of the current
    /// span.
    fn with_trace_context(self) -> Self;
}

impl WithTraceContext for http::request::Builder {
    fn with_trace_context(mut self) -> Self {
        if let Some(headers) = self.headers_mut() {
            inject(headers);
        }
        self
    }
}

impl WithTraceContext for &mut HeaderMap {
    fn with_trace_context(self) -> Self {
        inject(self);
        self
    }
}

#[cfg(feature = "ureq")]
impl<B> WithTraceContext for ureq::RequestBuilder<B> {
    fn with_trace_context(mut self) -> Self {
        if let Some(headers) = self.headers_mut() {
            inject(headers);
        }
        self
    }
}

/// The current span's headers, for builders that take a map of them.
#[cfg(feature = "reqwest")]
fn current_headers() -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    inject(&mut headers).then_some(headers)
}

#[cfg(feature = "reqwest")]
impl WithTraceContext for reqwest::RequestBuilder {
    fn with_trace_context(self) -> Self {
        match current_headers() {
            Some(headers) => self.headers(headers),
            None => self,
        }
    }
}

#[cfg(feature = "reqwest")]
impl WithTraceContext for reqwest_middleware::RequestBuilder {
    fn with_trace_context(self) -> Self {
        match current_headers() {
            Some(headers) => self.headers(headers),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn extract_takes_one_traceparent_and_every_tracestate() {
        let parent = extract(&headers(&[
            ("traceparent", HEADER),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ]))
        .unwrap();
        assert_eq!(parent.to_string(), HEADER);
        assert_eq!(parent.trace_state(), Some("a=1,b=2"));
    }

    #[test]
    fn extract_refuses_what_trace_context_refuses() {
        for bad in [
            &[("traceparent", HEADER), ("traceparent", HEADER)][..],
            &[("traceparent", &HEADER.to_uppercase())],
            &[("traceparent", "garbage")],
            &[("traceparent", "")],
            &[("tracestate", "a=1")],
            &[(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
        ] {
            assert!(extract(&headers(bad)).is_none(), "{bad:?}");
        }
        // Bytes that are not text.
        let mut map = HeaderMap::new();
        map.insert(TRACEPARENT, HeaderValue::from_bytes(b"00-\xff").unwrap());
        assert!(extract(&map).is_none());
    }

    #[test]
    fn inject_context_writes_both_and_clears_a_stale_tracestate() {
        let mut map = headers(&[("tracestate", "stale=1")]);
        let parent = TraceParent::parse(HEADER).unwrap();
        inject_context(&parent, &mut map);
        assert_eq!(map["traceparent"], HEADER);
        assert!(!map.contains_key("tracestate"));
        inject_context(&parent.with_trace_state("congo=t61"), &mut map);
        assert_eq!(map["tracestate"], "congo=t61");
    }

    #[test]
    fn inject_without_a_current_span_changes_nothing() {
        let mut map = headers(&[("traceparent", HEADER)]);
        assert!(!inject(&mut map));
        assert_eq!(map["traceparent"], HEADER);
    }
}
