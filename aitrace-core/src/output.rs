//! Where flushed records go: stdout, a JSON Lines file, an HTTP ingest server.

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

/// The environment variable that chooses the output when none is set in code.
pub const TARGET_ENV: &str = "LOG_TRG";

/// One destination for flushed records.
///
/// Chosen by a string as the Python tool does ([`Output::from_target`],
/// [`Output::from_env`]) or built in code. Cheap to clone.
///
/// | target string | output |
/// |---|---|
/// | empty or `-` | standard output, JSON Lines |
/// | `http://…`, `https://…` | HTTP ingest endpoint, a JSON array per batch |
/// | anything else | a JSON Lines file: `~` expanded, `<YYYYMMDD_HHMMSS>` replaced by the time the output was made (UTC), folders created, appended, created `0600` |
///
/// # Examples
///
/// ```
/// use aitrace_core::Output;
///
/// assert_eq!(Output::from_target("-").unwrap().to_string(), "stdout");
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
    File(PathBuf),
    Http(HttpSender),
    #[cfg(feature = "testing")]
    Memory(crate::testing::InMemoryOutput),
}

/// What one output accepted of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    output: String,
    records: usize,
    ingested: Option<usize>,
}

impl Delivery {
    /// The output, as its `Display` shows it (URLs redacted).
    pub fn output(&self) -> &str {
        &self.output
    }

    /// How many records were sent.
    pub fn records(&self) -> usize {
        self.records
    }

    /// How many the server said it stored (`{"ingested": N}`), for HTTP.
    pub fn ingested(&self) -> Option<usize> {
        self.ingested
    }

    /// Records sent that the server did not store: the reference server skips
    /// records without a trace and span id.
    pub fn skipped(&self) -> usize {
        self.ingested.map_or(0, |n| self.records.saturating_sub(n))
    }
}

impl Output {
    /// Standard output, JSON Lines.
    pub fn stdout() -> Self {
        Output::new(Kind::Stdout)
    }

    /// A JSON Lines file at exactly `path` (no `~` or timestamp expansion;
    /// use [`Output::from_target`] for that), appended to, created `0600`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Output::new(Kind::File(path.into()))
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
        }
    }

    /// The output a target string names; see the table above.
    pub fn from_target(target: &str) -> Result<Self> {
        Output::from_target_at(target, SystemTime::now())
    }

    pub(crate) fn from_target_at(target: &str, start: SystemTime) -> Result<Self> {
        let target = target.trim();
        if target.is_empty() || target == "-" {
            return Ok(Output::stdout());
        }
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Output::http(target);
        }
        Ok(Output::file(file::expand_path(target, start)?))
    }

    /// The output `LOG_TRG` names; stdout when it is unset or empty.
    pub fn from_env() -> Result<Self> {
        match std::env::var(TARGET_ENV) {
            Ok(target) => Output::from_target(&target),
            Err(std::env::VarError::NotPresent) => Ok(Output::stdout()),
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

    /// The file it writes, for file outputs.
    pub fn path(&self) -> Option<&Path> {
        match &*self.kind {
            Kind::File(path) => Some(path),
            _ => None,
        }
    }

    /// Whether it sends to an HTTP server.
    pub fn is_http(&self) -> bool {
        matches!(&*self.kind, Kind::Http(_))
    }

    /// Sends one batch; on success says what was accepted.
    pub fn send(&self, records: &[Record]) -> Result<Delivery> {
        let mut body = Vec::with_capacity(records.len() * 320);
        let ingested = match &*self.kind {
            Kind::Stdout => {
                self.layout.write_lines(&mut body, records);
                let mut out = std::io::stdout().lock();
                out.write_all(&body)
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::io("cannot write to stdout", e))?;
                None
            }
            Kind::File(path) => {
                self.layout.write_lines(&mut body, records);
                file::append(path, &body)?;
                None
            }
            Kind::Http(sender) => {
                self.layout.write_array(&mut body, records);
                sender.post(&body)?.ingested
            }
            #[cfg(feature = "testing")]
            Kind::Memory(memory) => {
                memory.receive(records, self.layout);
                None
            }
        };
        Ok(Delivery {
            output: self.to_string(),
            records: records.len(),
            ingested,
        })
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            Kind::Stdout => f.write_str("stdout"),
            Kind::File(path) => write!(f, "{}", path.display()),
            Kind::Http(sender) => f.write_str(sender.redacted_url()),
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

/// Settings of an HTTP output; see [`Output::http_builder`].
#[derive(Debug)]
#[must_use = "call `build` to get the output"]
pub struct HttpOutputBuilder {
    url: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    headers: Vec<(String, String)>,
    layout: Layout,
}

impl HttpOutputBuilder {
    /// How long connecting may take ([`DEFAULT_CONNECT_TIMEOUT`](crate::DEFAULT_CONNECT_TIMEOUT) by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one request may take in all ([`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT) by default).
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
        )?;
        Ok(Output::new(Kind::Http(sender)).with_layout(self.layout))
    }
}
