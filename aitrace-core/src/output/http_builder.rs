//! The HTTP ingest output's builder ([`Output::http_builder`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::http::IngestClient;
use crate::encode::Layout;
use crate::error::{ConfigError, Result};
use crate::output::Output;
use crate::transport;

impl Output {
    /// An HTTP ingest endpoint with the default timeouts.
    pub fn http(url: &str) -> Result<Self, ConfigError> {
        Output::http_builder(url).build()
    }

    /// An HTTP ingest endpoint with settings.
    pub fn http_builder(url: &str) -> HttpOutputBuilder {
        HttpOutputBuilder {
            url: url.to_owned(),
            connect_timeout: transport::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: transport::DEFAULT_REQUEST_TIMEOUT,
            headers: Vec::new(),
            layout: Layout::default(),
            gzip: false,
            ca_file: None,
        }
    }
}

/// Settings of an HTTP output; see [`Output::http_builder`]. Its `Debug`
/// shows neither the URL's user-info nor header values.
#[must_use = "call `build` to get the output"]
pub struct HttpOutputBuilder {
    url: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    headers: Vec<(String, String)>,
    layout: Layout,
    gzip: bool,
    ca_file: Option<PathBuf>,
}

impl fmt::Debug for HttpOutputBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOutputBuilder")
            .field("url", &transport::redact_url(&self.url))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("headers", &transport::RedactedHeaders(&self.headers))
            .field("layout", &self.layout)
            .field("gzip", &self.gzip)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl HttpOutputBuilder {
    /// A PEM file of the certificate authorities to trust for an `https`
    /// URL, instead of the system's trust store (a self-hosted server with
    /// its own CA). A target string reads it from `AITRACE_CA_FILE`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Compresses request bodies with gzip and sends `Content-Encoding: gzip`.
    /// Off by default: the reference aitrace server does not decode it.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// How long connecting may take ([`DEFAULT_CONNECT_TIMEOUT`](crate::DEFAULT_CONNECT_TIMEOUT) by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long each step of a request may take once connected: sending its
    /// head, sending its body, waiting for the answer, reading the answer
    /// ([`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT) by
    /// default). A request that hangs is cut off after at most four times
    /// this, plus the connect timeout; looking up the host name (done for
    /// every request) is bounded by the system resolver's own timeouts.
    /// Redirects are not followed: a 3xx answer is an error.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Adds a header to every request (an API key, say). Values are never
    /// shown in `Debug` output or in errors; a name or value that cannot be
    /// sent is an error from [`build`](Self::build).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The layout of each record in the batch array.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The output; fails on a URL that cannot be parsed or a header that
    /// cannot be sent
    /// ([`ErrorKind::InvalidTarget`](crate::ErrorKind::InvalidTarget)) or a
    /// CA file that cannot be used
    /// ([`ErrorKind::Tls`](crate::ErrorKind::Tls)).
    pub fn build(self) -> Result<Output, ConfigError> {
        let sender = IngestClient::new(
            &self.url,
            self.connect_timeout,
            self.request_timeout,
            self.headers,
            self.gzip,
            self.ca_file.as_deref(),
        )?;
        Ok(Output::new(sender).with_layout(self.layout))
    }
}
