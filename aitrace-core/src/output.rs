//! Where flushed records go: stdout or stderr, a JSON Lines file, an HTTP
//! ingest server, an OTLP collector.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::encode::Layout;
use crate::error::{Error, ErrorKind, Result};
use crate::export::{Accepted, Batch, Export, Input};
use crate::file;
use crate::http::{self, HttpSender};
use crate::record::Record;
use crate::report::Delivery;
use crate::scratch::{MAX_KEPT_BODY, Scratch, with_scratch};

/// The environment variable that chooses the outputs when none is set in
/// code: one target string, or several separated by commas.
pub const TARGET_ENV: &str = "LOG_TRG";

/// One destination for flushed records.
///
/// Chosen by a string as the Python tool does ([`Output::from_target`],
/// [`Output::from_env`]) or built in code. Cheap to clone.
///
/// | target string | output |
/// |---|---|
/// | empty, `-` or `stdout` (any case) | standard output, JSON Lines |
/// | `stderr` (any case) | standard error, JSON Lines |
/// | `http://…`, `https://…` | HTTP ingest endpoint, a JSON array per batch; `AITRACE_CA_FILE` names a PEM file of CAs to trust instead of the system's |
/// | `otlp` | OTLP/HTTP to an OpenTelemetry Collector, configured by the standard `OTEL_EXPORTER_OTLP_*` variables ([`Output::otlp_builder`]) |
/// | `otlp+http://host:4318`, `otlp+https://…` | the same, with that base endpoint (`/v1/logs`, `/v1/traces` appended) |
/// | ending in `.html` (any case) | a self-contained HTML trace report ([`write_html_report`](crate::write_html_report)) at that path (expanded as below, `file://` too), rewritten whole at every flush from every record this output has seen: it keeps them in memory, some 300 to 500 bytes each |
/// | `file:///abs/path`, `file://localhost/abs/path` | a JSON Lines file at that local path (RFC 8089): percent-escapes such as `%20` decoded, then as below; a malformed escape, a query or a fragment is an [`InvalidTarget`](ErrorKind::InvalidTarget) error |
/// | `file://logs.jsonl`, `file://logs/a.jsonl` | after `file://`, a path that does not begin with `/` or `localhost/` is relative to the working folder (`./logs.jsonl`), decoded as above |
/// | anything else | a JSON Lines file: `~` expanded, `<YYYYMMDD_HHMMSS>` replaced by the time the output was made (UTC), folders created, appended, created `0600` (a file named `stdout` is `./stdout`) |
///
/// `LOG_TRG` may name several targets separated by commas, each one output
/// ([`Output::list_from_env`], [`Output::from_target_list`]); a comma inside
/// a URL is written `%2C`. An `http://` URL must have a host, and a port, if
/// it has one, up to 65535.
///
/// # Examples
///
/// ```
/// use aitrace_core::Output;
///
/// assert_eq!(Output::from_target("-").unwrap().to_string(), "stdout");
/// assert_eq!(Output::from_target("stderr").unwrap().to_string(), "stderr");
/// let both = Output::from_target_list("stdout, file://logs.jsonl").unwrap();
/// assert_eq!(both[1].path(), Some(std::path::Path::new("logs.jsonl")));
/// let http = Output::from_target("http://user:pw@localhost:8000/api/ingest").unwrap();
/// assert_eq!(http.to_string(), "http://***@localhost:8000/api/ingest");
/// ```
#[derive(Clone)]
pub struct Output {
    exporter: Arc<dyn Export>,
    layout: Layout,
}

impl Output {
    /// Standard output, JSON Lines.
    pub fn stdout() -> Self {
        Output::new(StdStream::Stdout)
    }

    /// Standard error, JSON Lines (the target string `stderr`).
    pub fn stderr() -> Self {
        Output::new(StdStream::Stderr)
    }

    /// A JSON Lines file at exactly `path` (no `~` or timestamp expansion;
    /// use [`Output::from_target`] for that), appended to, created `0600`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Output::new(file::FileOutput::new(path.into()))
    }

    /// A self-contained HTML trace report at exactly `path`, rewritten at
    /// every flush with every record this output has been given (kept in
    /// memory, encoded: some 300 to 500 bytes a record, for the output's
    /// life). See [`write_html_report`](crate::write_html_report).
    pub fn html(path: impl Into<PathBuf>) -> Self {
        Output::new(crate::html::HtmlFile::new(path.into()))
    }

    /// An HTTP ingest endpoint with the default timeouts.
    pub fn http(url: &str) -> Result<Self> {
        Output::http_builder(url).build()
    }

    /// An HTTP ingest endpoint with settings.
    pub fn http_builder(url: &str) -> HttpOutputBuilder {
        HttpOutputBuilder {
            url: url.to_owned(),
            connect_timeout: http::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: http::DEFAULT_REQUEST_TIMEOUT,
            headers: Vec::new(),
            layout: Layout::default(),
            gzip: false,
            ca_file: None,
        }
    }

    /// An OTLP/HTTP output to the base endpoint `endpoint` (such as
    /// `http://collector:4318`), its other settings from the standard
    /// `OTEL_EXPORTER_OTLP_*` variables; see [`OtlpOutputBuilder`](crate::OtlpOutputBuilder).
    #[cfg(feature = "otlp")]
    pub fn otlp(endpoint: &str) -> Result<Self> {
        Output::otlp_builder().endpoint(endpoint).build()
    }

    /// An OTLP/HTTP output configured by the standard `OTEL_*` variables
    /// only (the target string `otlp`).
    #[cfg(feature = "otlp")]
    pub fn otlp_from_env() -> Result<Self> {
        Output::otlp_builder().build()
    }

    /// Settings of an OTLP/HTTP output, starting from the standard `OTEL_*`
    /// variables read now; what is set in code wins.
    #[cfg(feature = "otlp")]
    pub fn otlp_builder() -> crate::OtlpOutputBuilder {
        crate::OtlpOutputBuilder::new(crate::otlp::Env::from_process())
    }

    #[cfg(feature = "otlp")]
    fn otlp_target(endpoint: Option<&str>) -> Result<Self> {
        let builder = Output::otlp_builder();
        match endpoint {
            Some(endpoint) => builder.endpoint(endpoint).build(),
            None => builder.build(),
        }
    }

    #[cfg(not(feature = "otlp"))]
    fn otlp_target(_: Option<&str>) -> Result<Self> {
        Err(Error::new(
            ErrorKind::InvalidTarget,
            "an otlp target needs aitrace-core's `otlp` feature",
        ))
    }

    #[cfg(feature = "otlp")]
    pub(crate) fn from_otlp(sender: crate::otlp::OtlpSender) -> Self {
        Output::new(sender)
    }

    /// The output a target string names; see the table above. One target:
    /// a comma is part of it ([`Output::from_target_list`] reads a list).
    pub fn from_target(target: &str) -> Result<Self> {
        Output::from_target_at(target, SystemTime::now())
    }

    pub(crate) fn from_target_at(target: &str, start: SystemTime) -> Result<Self> {
        let target = target.trim();
        if target.is_empty() || target == "-" || target.eq_ignore_ascii_case("stdout") {
            return Ok(Output::stdout());
        }
        if target.eq_ignore_ascii_case("stderr") {
            return Ok(Output::stderr());
        }
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let mut builder = Output::http_builder(target);
            if let Some(ca) = std::env::var_os(crate::env::CA_FILE_ENV).filter(|v| !v.is_empty()) {
                builder = builder.ca_file(ca);
            }
            return builder.build();
        }
        if let Some(endpoint) = crate::otlp::parse_target(target) {
            return Output::otlp_target(endpoint);
        }
        let path = if file::is_file_uri(target) {
            file::expand_path(&file::path_from_file_uri(target)?, start)?
        } else {
            file::expand_path(target, start)?
        };
        let is_html = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("html"));
        Ok(if is_html {
            Output::html(path)
        } else {
            Output::file(path)
        })
    }

    /// The outputs a comma-separated list of target strings names, in
    /// order (as `LOG_TRG` holds them; write a comma inside a URL as
    /// `%2C`). Empty entries are skipped; a list with none is stdout. The
    /// first entry that cannot be used is the error.
    pub fn from_target_list(list: &str) -> Result<Vec<Self>> {
        Output::from_target_list_at(list, SystemTime::now())
            .into_iter()
            .collect()
    }

    /// Each entry's output or error, in order; stdout for a list of none.
    fn from_target_list_at(list: &str, start: SystemTime) -> Vec<Result<Self>> {
        let outputs: Vec<Result<Self>> = list
            .split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| Output::from_target_at(entry, start))
            .collect();
        if outputs.is_empty() {
            return vec![Ok(Output::stdout())];
        }
        outputs
    }

    /// The output `LOG_TRG` names; stdout when it is unset or empty. A
    /// list of several targets is an error here: read it with
    /// [`Output::list_from_env`].
    pub fn from_env() -> Result<Self> {
        let mut outputs = Output::list_from_env()?;
        match outputs.len() {
            1 => Ok(outputs.remove(0)),
            n => Err(Error::new(
                ErrorKind::InvalidTarget,
                format!("{TARGET_ENV} names {n} targets: read them with Output::list_from_env"),
            )),
        }
    }

    /// The outputs `LOG_TRG` names (one, or several separated by commas,
    /// as for [`Output::from_target_list`]); stdout when it is unset or
    /// empty.
    pub fn list_from_env() -> Result<Vec<Self>> {
        Output::from_target_list(&Output::target_env()?)
    }

    /// Each output `LOG_TRG` names, or the error that entry gave: a logger
    /// keeps the outputs it can use and names the others on stderr.
    pub(crate) fn each_from_env() -> Vec<Result<Self>> {
        match Output::target_env() {
            Ok(list) => Output::from_target_list_at(&list, SystemTime::now()),
            Err(err) => vec![Err(err)],
        }
    }

    /// `LOG_TRG`, empty when unset.
    fn target_env() -> Result<String> {
        match std::env::var(TARGET_ENV) {
            Ok(list) => Ok(list),
            Err(std::env::VarError::NotPresent) => Ok(String::new()),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::new(
                ErrorKind::InvalidTarget,
                format!("{TARGET_ENV} is not valid UTF-8"),
            )),
        }
    }

    /// An in-memory output and the handle that reads what it received.
    #[cfg(feature = "testing")]
    pub fn in_memory() -> (Self, crate::testing::InMemoryOutput) {
        let memory = crate::testing::InMemoryOutput::default();
        (Output::new(memory.clone()), memory)
    }

    /// An output that sends through `exporter`, a user's own or a built-in
    /// one; it gets what every output gets (batching, retries, the
    /// breaker, the spool, stats). See [`Export`].
    pub fn new(exporter: impl Export) -> Self {
        Output {
            exporter: Arc::new(exporter),
            layout: Layout::default(),
        }
    }

    /// The same output writing another layout.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The layout it writes.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The file it writes, for file and HTML outputs (an exporter's
    /// [`path`](Export::path)).
    pub fn path(&self) -> Option<&Path> {
        self.exporter.path()
    }

    /// Whether it sends to an HTTP server (an aitrace ingest endpoint or OTLP).
    pub fn is_http(&self) -> bool {
        matches!(self.exporter.kind(), "http" | "otlp")
    }

    /// Sends one batch on this thread; on success says what was accepted.
    pub(crate) fn send(&self, records: &[Record]) -> Result<Delivery> {
        with_scratch(&BODY, MAX_KEPT_BODY, |body| {
            self.deliver(Some(records), None, records.len(), body)
        })
    }

    /// Sends `count` records, given as records or as JSON Lines in this
    /// output's layout (replayed from a spool), encoded as the exporter's
    /// [`Input`] asks in `body`, a buffer the caller reuses.
    pub(crate) fn deliver(
        &self,
        records: Option<&[Record]>,
        lines: Option<&[u8]>,
        count: usize,
        body: &mut Vec<u8>,
    ) -> Result<Delivery> {
        body.clear();
        let layout = self.layout;
        let batch = match (self.exporter.input(), records, lines) {
            (Input::Records, Some(records), _) => {
                Batch::new(Some(records), &[], None, count, layout)
            }
            (Input::Array, Some(records), _) => {
                layout.write_array(body, records);
                Batch::new(Some(records), &[], Some(body), count, layout)
            }
            (Input::Array, None, Some(lines)) => {
                lines_to_array_into(lines, body);
                Batch::new(None, lines, Some(body), count, layout)
            }
            (_, Some(records), _) => {
                layout.write_lines(body, records);
                Batch::new(Some(records), body, None, count, layout)
            }
            (_, None, lines) => Batch::new(None, lines.unwrap_or_default(), None, count, layout),
        };
        let accepted = self.exporter.export(&batch)?;
        let rejected = accepted.rejected.min(count);
        Ok(Delivery {
            output: self.to_string(),
            records: count - rejected,
            ingested: accepted.ingested,
            rejected,
            rejection: accepted.reason,
            dropped: rejected,
            ..Delivery::default()
        })
    }

    /// Tells the exporter the logger is shutting down; says on stderr when
    /// it fails.
    pub(crate) fn shutdown_exporter(&self) {
        if let Err(err) = self.exporter.shutdown() {
            eprintln!("aitrace: {self}: shutdown: {err}");
        }
    }

    /// Encodes records as JSON Lines in this output's layout.
    pub(crate) fn encode_lines(&self, records: &[Record]) -> Vec<u8> {
        let mut lines = Vec::with_capacity(records.len() * 320);
        self.layout.write_lines(&mut lines, records);
        lines
    }

    /// A short, stable name for this output, safe for a folder name: its
    /// exporter's kind and a hash of its [`spool_key`](Export::spool_key).
    pub(crate) fn slug(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for b in self.exporter.spool_key().bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let kind: String = (self.exporter.kind().chars())
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(32)
            .collect();
        format!("{kind}-{hash:016x}")
    }
}

thread_local! {
    static BODY: Scratch = const { Scratch::new(Vec::new()) };
}

/// Turns JSON Lines into one JSON array in `body` (cleared first). Encoded
/// records never hold a raw newline (JSON escapes it), so each `\n` is a
/// record boundary.
fn lines_to_array_into(lines: &[u8], body: &mut Vec<u8>) {
    body.clear();
    body.reserve(lines.len() + 2);
    body.push(b'[');
    body.extend_from_slice(lines.strip_suffix(b"\n").unwrap_or(lines));
    for b in &mut body[1..] {
        if *b == b'\n' {
            *b = b',';
        }
    }
    body.push(b']');
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.exporter.name())
    }
}

/// Standard output or standard error, JSON Lines.
enum StdStream {
    Stdout,
    Stderr,
}

impl Export for StdStream {
    fn name(&self) -> String {
        match self {
            StdStream::Stdout => "stdout",
            StdStream::Stderr => "stderr",
        }
        .to_owned()
    }

    fn kind(&self) -> &'static str {
        match self {
            StdStream::Stdout => "stdout",
            StdStream::Stderr => "stderr",
        }
    }

    fn export(&self, batch: &Batch<'_>) -> Result<Accepted> {
        let written = match self {
            StdStream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(batch.lines()).and_then(|()| out.flush())
            }
            StdStream::Stderr => {
                let mut out = std::io::stderr().lock();
                out.write_all(batch.lines()).and_then(|()| out.flush())
            }
        };
        written.map_err(|e| Error::io(format!("cannot write to {}", self.name()), e))?;
        Ok(Accepted::all())
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("target", &self.to_string())
            .field("layout", &self.layout)
            .finish()
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
            .field("url", &http::redact_url(&self.url))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("headers", &http::RedactedHeaders(&self.headers))
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
    /// shown in `Debug` output.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The layout of each record in the batch array.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The output; fails on a URL that cannot be parsed.
    pub fn build(self) -> Result<Output> {
        let sender = HttpSender::new(
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
