//! OpenTelemetry's HTTP semantic conventions (stable since v1.23): the
//! attribute names the spans carry, and the rules for their values.

#[cfg(any(feature = "tower", feature = "reqwest", feature = "ureq"))]
use std::borrow::Cow;

#[cfg(any(feature = "tower", feature = "reqwest", feature = "ureq"))]
use http::Method;

/// `http.request.method`: the method, or `_OTHER` for one the conventions
/// do not know (kept in `http.request.method_original`).
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// `http.request.method_original`: a method the conventions do not know.
pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
/// `http.response.status_code`.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// `http.route`: the matched route template (`/users/{id}`).
pub const HTTP_ROUTE: &str = "http.route";
/// `url.path` (server spans).
pub const URL_PATH: &str = "url.path";
/// `url.scheme` (server spans).
pub const URL_SCHEME: &str = "url.scheme";
/// `url.full` (client spans), without credentials and with signed query
/// values redacted.
pub const URL_FULL: &str = "url.full";
/// `server.address`.
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`.
pub const SERVER_PORT: &str = "server.port";
/// `user_agent.original`.
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
/// `network.protocol.version`: `1.0`, `1.1`, `2`, `3`.
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// `error.type`: the status code of a failed response, or the class of the
/// failure when there is none.
pub const ERROR_TYPE: &str = "error.type";
/// The request id field (not an OpenTelemetry name: the header it comes
/// from is the user's choice).
pub const REQUEST_ID: &str = "request_id";

#[cfg(any(feature = "tower", feature = "reqwest", feature = "ureq"))]
/// The method as `http.request.method` has it, and the original when that
/// is `_OTHER`.
pub(crate) fn method(method: &Method) -> (&'static str, Option<&str>) {
    let known = match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => return ("_OTHER", Some(method.as_str())),
    };
    (known, None)
}

#[cfg(any(feature = "tower", feature = "reqwest", feature = "ureq"))]
/// A span's name: `METHOD ROUTE`, the method alone without a route, and
/// `HTTP` for a method the conventions do not know.
pub(crate) fn span_name(method: &'static str, route: Option<&str>) -> Cow<'static, str> {
    let method = if method == "_OTHER" { "HTTP" } else { method };
    match route {
        Some(route) => Cow::Owned(format!("{method} {route}")),
        None => Cow::Borrowed(method),
    }
}

#[cfg(feature = "tower")]
/// `network.protocol.version` of an HTTP version.
pub(crate) fn protocol_version(version: http::Version) -> Option<&'static str> {
    Some(match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => return None,
    })
}

#[cfg(feature = "tower")]
/// Splits an authority (`host`, `host:port`, `[v6]:port`), userinfo
/// dropped, into the host and the port when it has a valid one.
pub(crate) fn host_and_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, port.parse().ok())),
        Some(_) => Some((authority, None)), // a bare IPv6 address
        None => Some((authority, None)),
    }
}

#[cfg(any(feature = "reqwest", feature = "ureq"))]
/// The query parameters whose values the conventions ask to redact from
/// `url.full`: signatures that grant access.
const SIGNED_QUERY_KEYS: [&str; 4] = ["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

#[cfg(any(feature = "reqwest", feature = "ureq"))]
/// `url.full` of a client request: credentials in the authority dropped,
/// and the values of signed query parameters replaced by `REDACTED`, as the
/// conventions ask.
pub(crate) fn full_url(url: &str) -> Cow<'_, str> {
    let (before_query, query) = match url.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (url, None),
    };
    let mut out = Cow::Borrowed(before_query);
    if let Some((scheme, rest)) = before_query.split_once("://") {
        let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            out = Cow::Owned(format!("{scheme}://{}", &rest[at + 1..]));
        }
    }
    let Some(query) = query else { return out };
    let mut url = out.into_owned();
    url.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            url.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if SIGNED_QUERY_KEYS.contains(&key) => {
                url.push_str(key);
                url.push_str("=REDACTED");
            }
            _ => url.push_str(pair),
        }
    }
    Cow::Owned(url)
}

#[cfg(any(feature = "reqwest", feature = "ureq"))]
/// `server.port` when the URL names none: the scheme's.
pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(all(test, feature = "tower", feature = "reqwest", feature = "ureq"))]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_conventions_are_other_and_named_http() {
        assert_eq!(method(&Method::GET), ("GET", None));
        let purge = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method(&purge), ("_OTHER", Some("PURGE")));
        assert_eq!(span_name("_OTHER", Some("/cache")), "HTTP /cache");
        assert_eq!(span_name("GET", Some("/users/{id}")), "GET /users/{id}");
        assert_eq!(span_name("POST", None), "POST");
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(host_and_port("example.com"), Some(("example.com", None)));
        assert_eq!(
            host_and_port("example.com:8080"),
            Some(("example.com", Some(8080)))
        );
        assert_eq!(host_and_port("[::1]:3000"), Some(("::1", Some(3000))));
        assert_eq!(host_and_port("[::1]"), Some(("::1", None)));
        assert_eq!(host_and_port("::1"), Some(("::1", None)));
        assert_eq!(host_and_port("u:p@h:1"), Some(("h", Some(1))));
        assert_eq!(host_and_port("h:notaport"), Some(("h", None)));
        assert_eq!(host_and_port("h:99999"), Some(("h", None)));
        assert_eq!(host_and_port(""), None);
        assert_eq!(host_and_port("[::1"), None);
    }

    #[test]
    fn full_urls_lose_credentials_and_signatures() {
        assert_eq!(full_url("http://h/p?q=1"), "http://h/p?q=1");
        assert_eq!(
            full_url("https://user:secret@h:8/p?sig=abc&x=1&Signature=z"),
            "https://h:8/p?sig=REDACTED&x=1&Signature=REDACTED"
        );
        assert_eq!(
            full_url("http://h/a@b"),
            "http://h/a@b",
            "an @ in the path stays"
        );
        assert_eq!(full_url("no scheme at all"), "no scheme at all");
        assert_eq!(full_url("http://h/?"), "http://h/?");
    }
}
