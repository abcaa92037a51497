//! Where records go: [`Output`], the built-in outputs' constructors
//! ([`Output::from_target`], [`Output::http_builder`], [`Output::otlp_builder`],
//! …) and their settings' defaults.
//!
//! An output wraps one exporter ([`Export`]), a built-in one or a user's
//! own. `Output` itself names no concrete output: the target strings and
//! constructors are in `target.rs`, the HTTP builder in `http_builder.rs`,
//! the exporters in `stdio.rs`, `http.rs`, the `file` module and the
//! `aitrace-otlp` and `aitrace-report` crates.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::export::{Batch, Export, Input};
use crate::flush_report::Delivery;
use crate::record::Record;
use crate::scratch::{MAX_KEPT_BODY, Scratch, with_scratch};

mod http;
mod http_builder;
mod stdio;
pub(crate) mod target;
#[cfg(feature = "testing")]
mod testing;

pub use crate::encode::Layout;
pub use crate::transport::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
#[cfg(feature = "otlp")]
pub use aitrace_otlp::{
    DEFAULT_OTLP_ENDPOINT, DEFAULT_OTLP_TIMEOUT, OtlpExporter, OtlpOutputBuilder, Protocol,
};
#[cfg(feature = "html")]
pub use aitrace_report::{HtmlFile, write_html_report};
pub use http_builder::HttpOutputBuilder;
#[cfg(feature = "testing")]
pub use testing::InMemoryOutput;

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
/// | ending in `.html` (any case) | a self-contained HTML trace report ([`write_html_report`]) at that path (expanded as below, `file://` too), rewritten whole at every flush from every record this output has seen: it keeps them in memory, some 300 to 500 bytes each |
/// | `file:///abs/path`, `file://localhost/abs/path` | a JSON Lines file at that local path (RFC 8089): percent-escapes such as `%20` decoded, then as below; a malformed escape, a query or a fragment is an [`InvalidTarget`](crate::ErrorKind::InvalidTarget) error |
/// | `file://logs.jsonl`, `file://logs/a.jsonl` | after `file://`, a path that does not begin with `/` or `localhost/` is relative to the working folder (`./logs.jsonl`), decoded as above |
/// | any other `scheme://…` (`otlp+grpc://`, `grpc://`, `ftp://`) | an [`InvalidTarget`](crate::ErrorKind::InvalidTarget) error, not a file |
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

    /// What kind of output it is, as its exporter says
    /// ([`Export::kind`]): `"http"`, `"otlp"`, `"file"`, `"html"`,
    /// `"stdout"`, `"stderr"`, `"memory"`, or a user exporter's own.
    pub fn kind(&self) -> &'static str {
        self.exporter.kind()
    }

    /// Whether it is one of the built-in outputs that send to an HTTP
    /// server (the aitrace ingest endpoint or OTLP); an exporter of a
    /// user's own that speaks HTTP says false.
    #[deprecated(
        since = "0.2.0",
        note = "it knows only the built-in outputs: use `kind()`"
    )]
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
        let rejected = accepted.rejected().min(count);
        Ok(Delivery {
            output: self.to_string(),
            records: count - rejected,
            ingested: accepted.stored(),
            rejected,
            rejection: accepted.reason().map(str::to_owned),
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

/// Any exporter is an output ([`Output::new`]), so that
/// [`Builder::output`](crate::Builder::output) takes one as it is.
impl<E: Export> From<E> for Output {
    fn from(exporter: E) -> Self {
        Output::new(exporter)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.exporter.name())
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
