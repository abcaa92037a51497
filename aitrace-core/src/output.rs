//! Where flushed records go: stdout or stderr, a JSON Lines file, an HTTP
//! ingest server, an OTLP collector.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::encode::Layout;
use crate::error::{Error, ErrorKind, Result};
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
    kind: Arc<Kind>,
    layout: Layout,
}

enum Kind {
    Stdout,
    Stderr,
    File(PathBuf),
    Html(crate::html::HtmlFile),
    Http(HttpSender),
    #[cfg(feature = "otlp")]
    Otlp(Box<crate::otlp::OtlpSender>),
    #[cfg(feature = "testing")]
    Memory(crate::testing::InMemoryOutput),
}

/// Encoded records on their way to an output: JSON Lines in the output's
/// layout, with the records themselves when they are at hand (not when
/// replayed from a spool).
pub(crate) struct Payload<'a> {
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) records: Option<&'a [Record]>,
    /// JSON Lines; may be empty when `array` is given and `records` are at
    /// hand (then lines are encoded only if a failure needs them).
    pub(crate) lines: &'a [u8],
    /// The batch already encoded as a JSON array, for HTTP outputs.
    pub(crate) array: Option<&'a [u8]>,
    pub(crate) count: usize,
}

impl Output {
    /// Standard output, JSON Lines.
    pub fn stdout() -> Self {
        Output::new(Kind::Stdout)
    }

    /// Standard error, JSON Lines (the target string `stderr`).
    pub fn stderr() -> Self {
        Output::new(Kind::Stderr)
    }

    /// A JSON Lines file at exactly `path` (no `~` or timestamp expansion;
    /// use [`Output::from_target`] for that), appended to, created `0600`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Output::new(Kind::File(path.into()))
    }

    /// A self-contained HTML trace report at exactly `path`, rewritten at
    /// every flush with every record this output has been given (kept in
    /// memory, encoded: some 300 to 500 bytes a record, for the output's
    /// life). See [`write_html_report`](crate::write_html_report).
    pub fn html(path: impl Into<PathBuf>) -> Self {
        Output::new(Kind::Html(crate::html::HtmlFile::new(path.into())))
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
        Output::new(Kind::Otlp(Box::new(sender)))
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
        (Output::new(Kind::Memory(memory.clone())), memory)
    }

    fn new(kind: Kind) -> Self {
        Output {
            kind: Arc::new(kind),
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

    /// The file it writes, for file and HTML outputs.
    pub fn path(&self) -> Option<&Path> {
        match &*self.kind {
            Kind::File(path) => Some(path),
            Kind::Html(html) => Some(html.path()),
            _ => None,
        }
    }

    /// Whether it sends to an HTTP server (an aitrace ingest endpoint or OTLP).
    pub fn is_http(&self) -> bool {
        match &*self.kind {
            Kind::Http(_) => true,
            #[cfg(feature = "otlp")]
            Kind::Otlp(_) => true,
            _ => false,
        }
    }

    /// Whether it takes records rather than encoded lines (OTLP encodes
    /// its own messages).
    pub(crate) fn takes_records(&self) -> bool {
        #[cfg(feature = "otlp")]
        if let Kind::Otlp(_) = &*self.kind {
            return true;
        }
        false
    }

    /// Sends one batch; on success says what was accepted.
    pub(crate) fn send(&self, records: &[Record]) -> Result<Delivery> {
        if self.takes_records() {
            return self.deliver(&Payload {
                records: Some(records),
                lines: &[],
                array: None,
                count: records.len(),
            });
        }
        let lines = self.encode_lines(records);
        self.deliver(&Payload {
            records: Some(records),
            lines: &lines,
            array: None,
            count: records.len(),
        })
    }

    /// Encodes records as JSON Lines in this output's layout.
    pub(crate) fn encode_lines(&self, records: &[Record]) -> Vec<u8> {
        let mut lines = Vec::with_capacity(records.len() * 320);
        self.layout.write_lines(&mut lines, records);
        lines
    }

    /// Appends records as JSON Lines to a buffer the caller reuses.
    pub(crate) fn encode_lines_into(&self, records: &[Record], lines: &mut Vec<u8>) {
        self.layout.write_lines(lines, records);
    }

    /// Appends records as one JSON array to a buffer the caller reuses.
    pub(crate) fn encode_array_into(&self, records: &[Record], body: &mut Vec<u8>) {
        self.layout.write_array(body, records);
    }

    /// A short, stable name for this output, safe for a folder name.
    pub(crate) fn slug(&self) -> String {
        let text = match &*self.kind {
            // The name it had before `Display` named both endpoints.
            #[cfg(feature = "otlp")]
            Kind::Otlp(sender) => sender.slug_name().to_owned(),
            _ => self.to_string(),
        };
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for b in text.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let kind = match &*self.kind {
            Kind::Stdout => "stdout",
            Kind::Stderr => "stderr",
            Kind::File(_) => "file",
            Kind::Html(_) => "html",
            Kind::Http(_) => "http",
            #[cfg(feature = "otlp")]
            Kind::Otlp(_) => "otlp",
            #[cfg(feature = "testing")]
            Kind::Memory(_) => "memory",
        };
        format!("{kind}-{hash:016x}")
    }

    pub(crate) fn deliver(&self, payload: &Payload<'_>) -> Result<Delivery> {
        #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
        let (mut rejected, mut rejection) = (0, None);
        let ingested = match &*self.kind {
            Kind::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(payload.lines)
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::io("cannot write to stdout", e))?;
                None
            }
            Kind::Stderr => {
                let mut out = std::io::stderr().lock();
                out.write_all(payload.lines)
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::io("cannot write to stderr", e))?;
                None
            }
            Kind::File(path) => {
                file::append(path, payload.lines)?;
                None
            }
            Kind::Html(html) => {
                html.write(payload.lines)?;
                None
            }
            Kind::Http(sender) if payload.array.is_some() => {
                sender.post(payload.array.unwrap_or_default())?.ingested
            }
            Kind::Http(sender) => {
                with_scratch(&HTTP_BODY, MAX_KEPT_BODY, |body| {
                    lines_to_array_into(payload.lines, body);
                    sender.post(body)
                })?
                .ingested
            }
            #[cfg(feature = "otlp")]
            Kind::Otlp(sender) => {
                let refused = match payload.records {
                    Some(records) => sender.send(records)?,
                    // Replayed from the spool: JSON Lines in the output's layout;
                    // a line that cannot be read back is counted as refused.
                    None => {
                        let (records, unreadable) =
                            crate::decode::records_from_lines(payload.lines);
                        let mut refused = sender.send(&records)?;
                        if let Some((count, why)) = unreadable {
                            refused.count += count as u64;
                            refused.message =
                                format!("{count} spooled records could not be read back: {why}");
                        }
                        refused
                    }
                };
                rejected = refused.count as usize;
                if refused.count > 0 || !refused.message.is_empty() {
                    rejection = Some(refused.message);
                }
                None
            }
            #[cfg(feature = "testing")]
            Kind::Memory(memory) => {
                memory.receive(payload.records, payload.lines)?;
                None
            }
        };
        let rejected = rejected.min(payload.count);
        Ok(Delivery {
            output: self.to_string(),
            records: payload.count - rejected,
            ingested,
            rejected,
            rejection,
            dropped: rejected,
            ..Delivery::default()
        })
    }
}

thread_local! {
    static HTTP_BODY: Scratch = const { Scratch::new(Vec::new()) };
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
        match &*self.kind {
            Kind::Stdout => f.write_str("stdout"),
            Kind::Stderr => f.write_str("stderr"),
            Kind::File(path) => write!(f, "{}", path.display()),
            Kind::Html(html) => write!(f, "{}", html.path().display()),
            Kind::Http(sender) => f.write_str(sender.redacted_url()),
            #[cfg(feature = "otlp")]
            Kind::Otlp(sender) => f.write_str(sender.name()),
            #[cfg(feature = "testing")]
            Kind::Memory(_) => f.write_str("memory"),
        }
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
        Ok(Output::new(Kind::Http(sender)).with_layout(self.layout))
    }
}
