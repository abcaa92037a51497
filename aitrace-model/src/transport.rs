//! The HTTP transport the HTTP ingest output and the OTLP output share, on
//! `ureq`: one agent per output (timeouts, TLS roots, no redirects), a POST
//! that reads the answer, URL checks, and user-info kept out of every
//! message. Public for outputs in other crates (`aitrace-otlp` uses it);
//! an exporter of your own may use it or any HTTP client.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::error::{ConfigError, Error, ErrorKind, Result};

/// How long connecting to a server may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long each step of a request (sending its head, sending its body,
/// waiting for the answer, reading the answer) may take, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The environment variable naming a PEM file of CAs an `https://` target
/// string's HTTP output trusts instead of the system's.
pub const CA_FILE_ENV: &str = "AITRACE_CA_FILE";
/// How much of an error answer's body is kept in the error message.
const ERROR_BODY_PREFIX: usize = 512;
/// The most of an answer's body that is read.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Headers as `Debug` shows them: each name, with `"[REDACTED]"` for its
/// value (API keys and tokens travel in them).
pub struct RedactedHeaders<'a>(pub &'a [(String, String)]);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|(name, _)| (name.as_str(), crate::wire::REDACTED)),
            )
            .finish()
    }
}

/// Checks that `url` (without user-info; `redacted` is how messages show
/// it) is an `http(s)://` URL with a host, a port up to 65535 if it has
/// one, and the features it needs: an error now rather than a request to
/// somewhere else later. `what` names it in messages ("URL", "OTLP
/// endpoint").
pub fn check_url(url: &str, redacted: &str, what: &str) -> Result<(), ConfigError> {
    let invalid = |why: String| {
        Err(ConfigError::invalid_target(format!(
            "invalid {what} {redacted}: {why}"
        )))
    };
    let Some(scheme_end) = url.find("://") else {
        return invalid("expected http:// or https://".to_owned());
    };
    if !["http", "https"]
        .iter()
        .any(|s| url[..scheme_end].eq_ignore_ascii_case(s))
    {
        return invalid("expected http:// or https://".to_owned());
    }
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (host, port) = match authority.rfind(':') {
        // `[::1]` and `[::1]:8000`: the port is after the bracket.
        Some(colon) if !authority[colon..].contains(']') => {
            (&authority[..colon], Some(&authority[colon + 1..]))
        }
        _ => (authority, None),
    };
    if host.is_empty() {
        return invalid("it has no host".to_owned());
    }
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
            return invalid(format!("the port {port:?} is not a number from 0 to 65535"));
        }
    }
    if let Err(e) = url.parse::<ureq::http::Uri>() {
        return invalid(e.to_string());
    }
    check_scheme(url, redacted)
}

/// Checks that each header can be sent: an error when the output is
/// built rather than at every send. The message starts with `what` (the
/// output) and names the header whose value is invalid, never a value, nor
/// a name that is invalid (it holds the secret when `Authorization: Bearer
/// …` was written as a name).
pub fn check_headers(headers: &[(String, String)], what: &str) -> Result<(), ConfigError> {
    for (name, value) in headers {
        if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError::invalid_target(format!(
                "{what}: a header has an invalid name (not shown: it may be a secret)"
            )));
        }
        if ureq::http::HeaderValue::from_str(value).is_err() {
            return Err(ConfigError::invalid_target(format!(
                "{what}: the header {name:?} has an invalid value (not shown: it may be a secret)"
            )));
        }
    }
    Ok(())
}

/// The start of an error answer's text for a message: trimmed, at most
/// `ERROR_BODY_PREFIX` (512) characters, `…` when cut.
pub fn text_prefix(text: &str) -> String {
    let text = text.trim();
    let mut prefix: String = text.chars().take(ERROR_BODY_PREFIX).collect();
    if prefix.len() < text.len() {
        prefix.push('…');
    }
    prefix
}

/// A server's answer to a POST, read up to 64 KiB.
#[derive(Debug)]
pub struct RawAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, as a delay (seconds or a date; at most ten minutes).
    pub retry_after: Option<Duration>,
    /// Whether its `Content-Type` says JSON.
    pub json: bool,
    /// The body, up to 64 KiB.
    pub body: Vec<u8>,
    /// Whether the body could be read whole (it may break off).
    pub read: std::io::Result<()>,
}

/// The HTTP client of one output: its timeouts, no redirects, the
/// certificate authorities it trusts for `https` (the system's, or a CA
/// file's), and a pool of connections. Cheap to clone (the pool is shared).
/// The HTTP library under it (`ureq`) is not part of this API.
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
}

impl HttpClient {
    /// A client connecting within `connect_timeout`, waiting at most
    /// `request_timeout` for each step of a request (sending its head,
    /// its body, waiting for the answer, reading it), and trusting the
    /// system's certificate store, or exactly the CAs of the PEM file
    /// `ca_file` (which needs the `tls` feature).
    pub fn new(
        connect_timeout: Duration,
        request_timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        Ok(HttpClient {
            agent: agent(connect_timeout, request_timeout, ca_file)?,
        })
    }

    /// POSTs `body` to `url` (gzip-compressed when `gzip`) with these
    /// headers and reads the answer, up to 64 KiB; a transport failure is
    /// an [`Error`] naming `redacted` (the URL as messages may show it).
    /// A status outside 2xx is an answer, not an error.
    pub fn post<'h>(
        &self,
        url: &str,
        redacted: &str,
        content_type: &str,
        headers: impl Iterator<Item = (&'h str, &'h str)>,
        gzip: bool,
        body: &[u8],
    ) -> Result<RawAnswer> {
        post_raw(
            &self.agent,
            url,
            redacted,
            content_type,
            headers,
            gzip,
            body,
        )
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

/// POSTs `body` (gzip-compressed when `gzip`) with these headers and reads
/// the answer; a transport failure is an error naming `redacted`.
fn post_raw<'h>(
    agent: &ureq::Agent,
    url: &str,
    redacted: &str,
    content_type: &str,
    headers: impl Iterator<Item = (&'h str, &'h str)>,
    gzip: bool,
    body: &[u8],
) -> Result<RawAnswer> {
    let mut request = agent.post(url).content_type(content_type);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let compressed;
    let body = if gzip {
        compressed = self::gzip(body);
        request = request.header("Content-Encoding", "gzip");
        &compressed[..]
    } else {
        body
    };
    let mut response = request
        .send(body)
        .map_err(|e| transport_error(redacted, e))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
    let json = header("content-type").is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    let status = response.status().as_u16();
    let mut text = Vec::new();
    let read = response
        .body_mut()
        .as_reader()
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut text)
        .map(drop);
    Ok(RawAnswer {
        status,
        retry_after,
        json,
        body: text,
        read,
    })
}

/// An agent for one output: timeouts, no status-as-error, our user agent,
/// and the certificate authorities to trust for `https` (the system's, or
/// those of `ca_file`).
fn agent(
    connect_timeout: Duration,
    request_timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<ureq::Agent, ConfigError> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(connect_timeout))
        // A redirect is an error to report, not to follow: ureq would
        // follow a 301-303 answer to the POST with a GET, whose 200 would
        // look like a delivery.
        .max_redirects(0)
        // Each step, not the whole call: with a global (or per-call)
        // timeout, ureq resolves the host on a thread it starts for every
        // request, pooled connection or not, which cost this thread a
        // fifth of its time at full load.
        .timeout_send_request(Some(request_timeout))
        .timeout_send_body(Some(request_timeout))
        .timeout_recv_response(Some(request_timeout))
        .timeout_recv_body(Some(request_timeout))
        .user_agent(concat!("aitrace-rs/", env!("CARGO_PKG_VERSION")));
    Ok(tls::configure(config, ca_file)?.build().new_agent())
}

#[cfg(feature = "tls")]
mod tls {
    use std::path::Path;
    use std::sync::Arc;

    use ureq::config::ConfigBuilder;
    use ureq::tls::{PemItem, RootCerts, TlsConfig};

    use crate::error::{ConfigError, Result};

    type Builder = ConfigBuilder<ureq::typestate::AgentScope>;

    /// The system's trust store, or exactly the CAs in `ca_file`.
    pub(super) fn configure(
        config: Builder,
        ca_file: Option<&Path>,
    ) -> Result<Builder, ConfigError> {
        let roots = match ca_file {
            None => RootCerts::PlatformVerifier,
            Some(path) => RootCerts::Specific(Arc::new(read_cas(path)?)),
        };
        Ok(config.tls_config(TlsConfig::builder().root_certs(roots).build()))
    }

    /// The certificates of a PEM file; an error names the file and what is
    /// wrong with it.
    fn read_cas(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, ConfigError> {
        let pem = std::fs::read(path).map_err(|e| {
            ConfigError::tls(format!("cannot read the CA file {}: {e}", path.display()))
                .caused_by(e)
        })?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {} // keys and the like: not CAs
                Err(e) => {
                    return Err(ConfigError::tls(format!(
                        "the CA file {} is not valid PEM: {e}",
                        path.display()
                    )));
                }
            }
        }
        if certs.is_empty() {
            return Err(ConfigError::tls(format!(
                "the CA file {} holds no certificate (expected PEM \
                 \"-----BEGIN CERTIFICATE-----\" blocks)",
                path.display()
            )));
        }
        Ok(certs)
    }
}

#[cfg(not(feature = "tls"))]
mod tls {
    use std::path::Path;

    use ureq::config::ConfigBuilder;

    use crate::error::{ConfigError, Result};

    type Builder = ConfigBuilder<ureq::typestate::AgentScope>;

    pub(super) fn configure(
        config: Builder,
        ca_file: Option<&Path>,
    ) -> Result<Builder, ConfigError> {
        match ca_file {
            None => Ok(config),
            Some(path) => Err(ConfigError::tls(format!(
                "a CA file ({}) needs aitrace-core's `tls` feature",
                path.display()
            ))),
        }
    }
}

/// `https://` needs the `tls` feature: say so when building, not at the
/// first send.
pub fn check_scheme(url: &str, redacted: &str) -> Result<(), ConfigError> {
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    if https && !cfg!(feature = "tls") {
        return Err(ConfigError::invalid_target(format!(
            "{redacted}: https needs aitrace-core's `tls` feature"
        )));
    }
    Ok(())
}

/// A failed request as an error; the URL shown is `redacted`.
fn transport_error(redacted: &str, err: ureq::Error) -> Error {
    let kind = match &err {
        ureq::Error::Timeout(_) => ErrorKind::RequestTimeout,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ErrorKind::RequestTimeout
        }
        #[cfg(feature = "tls")]
        ureq::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            ErrorKind::Tls
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => ErrorKind::InvalidTarget,
        ureq::Error::Tls(_) => ErrorKind::Tls,
        #[cfg(feature = "tls")]
        ureq::Error::Rustls(_) => ErrorKind::Tls,
        _ => ErrorKind::Connect,
    };
    let message = match kind {
        ErrorKind::Tls => format!("TLS with {redacted} failed: {err}{}", tls_hint(&err)),
        _ => format!("cannot POST to {redacted}: {err}"),
    };
    Error::new(kind, message).with_source(err)
}

/// What to do about a certificate problem, when it is one a setting fixes.
fn tls_hint(err: &ureq::Error) -> &'static str {
    #[cfg(feature = "tls")]
    {
        use rustls::{CertificateError, Error as Tls};
        let tls = match err {
            ureq::Error::Rustls(tls) => Some(tls),
            ureq::Error::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<Tls>()),
            _ => None,
        };
        match tls {
            Some(Tls::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            )) => {
                " (the server's CA is not trusted: set a CA file with \
                 OTEL_EXPORTER_OTLP_CERTIFICATE, AITRACE_CA_FILE or `ca_file`)"
            }
            Some(Tls::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => " (the certificate is for another host name: use a name it lists)",
            Some(Tls::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            )) => " (the server's certificate has expired)",
            _ => "",
        }
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = err;
        ""
    }
}

/// A URL without its user-info, for messages.
pub fn redact_url(url: &str) -> String {
    let (url, userinfo) = split_userinfo(url);
    redact(&url, userinfo.is_some())
}

/// `body` compressed with gzip (the fast level).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// `Retry-After` as delay-seconds or an HTTP date; capped at ten minutes.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(600);
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(CAP))
}

/// Splits `scheme://user:pass@host/...` into the URL without user-info and the user-info.
pub fn split_userinfo(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => (
            format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
            Some(rest[..at].to_owned()),
        ),
        None => (url.to_owned(), None),
    }
}

/// The URL as safe to print: user-info, when there was some, shown as `***@`.
pub fn redact(url_without_userinfo: &str, had_userinfo: bool) -> String {
    if !had_userinfo {
        return url_without_userinfo.to_owned();
    }
    match url_without_userinfo.find("://") {
        Some(i) => format!(
            "{}***@{}",
            &url_without_userinfo[..i + 3],
            &url_without_userinfo[i + 3..]
        ),
        None => url_without_userinfo.to_owned(),
    }
}

/// `text` with `%XX` escapes decoded; a malformed escape is kept as it is.
pub fn percent_decode(text: &str) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_and_redacted() {
        let (url, info) = split_userinfo("https://bob:s%40cret@logs.example/api/ingest?x=a@b");
        assert_eq!(url, "https://logs.example/api/ingest?x=a@b");
        assert_eq!(info.as_deref(), Some("bob:s%40cret"));
        assert_eq!(
            redact(&url, true),
            "https://***@logs.example/api/ingest?x=a@b"
        );
        assert_eq!(percent_decode("bob:s%40cret%"), b"bob:s@cret%");
        let (url, info) = split_userinfo("http://localhost:8000/api/ingest");
        assert_eq!(
            (url.as_str(), info),
            ("http://localhost:8000/api/ingest", None)
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("86400"), Some(Duration::from_secs(600)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let d = parse_retry_after(&later).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = br#"[{"a":1}]"#.repeat(100);
        let packed = gzip(&body);
        assert!(packed.len() < body.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
