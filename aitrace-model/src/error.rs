//! The crate's one error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A target string or URL that cannot be used.
    InvalidTarget,
    /// A level or filter directives that cannot be read.
    InvalidFilter,
    /// The server could not be reached (refused, unresolvable, reset).
    Connect,
    /// A request to a server did not complete in time (connect, send, or
    /// wait for the answer): a network timeout, retried.
    RequestTimeout,
    /// The server answered with a status outside 2xx.
    HttpStatus,
    /// Reading or writing a file or stdout failed.
    Io,
    /// A flush or shutdown gave up waiting at its own timeout, with
    /// records still on their way ([`Error::retained`]).
    FlushTimedOut,
    /// The logger was shut down.
    Closed,
    /// A TLS problem: the server's certificate is not trusted, expired or
    /// for another name, or a CA file cannot be read.
    Tls,
    /// A redaction value pattern that is not a valid regular expression
    /// (`aitrace_core::Redactor::value_pattern`).
    InvalidPattern,
    /// Text that is not a record in the wire format ([`Record::from_json`](crate::Record::from_json)).
    InvalidRecord,
    /// A `traceparent` header that is not W3C Trace Context
    /// (`aitrace_core::TraceParent::parse`).
    InvalidTraceContext,
    /// An [exporter](crate::export::Export) did not take a batch: made by
    /// [`Error::retry_later`], [`Error::refused`] or
    /// [`Error::refused_content`].
    Export,
}

#[allow(non_upper_case_globals)]
impl ErrorKind {
    /// The 0.1 name of [`ErrorKind::RequestTimeout`].
    #[deprecated(since = "0.2.0", note = "renamed `RequestTimeout`")]
    pub const Timeout: ErrorKind = ErrorKind::RequestTimeout;
    /// The 0.1 name of [`ErrorKind::FlushTimedOut`].
    #[deprecated(since = "0.2.0", note = "renamed `FlushTimedOut`")]
    pub const TimedOut: ErrorKind = ErrorKind::FlushTimedOut;
}

/// An error from an output, a flush or a configuration.
///
/// For a failed flush it also tells what became of the records: how many
/// are kept for the next flush ([`retained`](Error::retained)) or which fallback
/// file holds them ([`fallback_path`](Error::fallback_path)).
pub struct Error {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    retry_after: Option<std::time::Duration>,
    /// Set when the output knows better than the kind and status whether a
    /// retry may help (OTLP names its own retryable statuses).
    transient: Option<bool>,
    /// Set when the output says whether a refusal is about what the batch
    /// holds (then halves of it may pass), else read from the status.
    content: Option<bool>,
    retained: usize,
    fallback_path: Option<PathBuf>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            transient: None,
            content: None,
            retained: 0,
            fallback_path: None,
            source: None,
        }
    }

    /// An exporter's failure that may pass (the receiver is down, busy,
    /// or timed out): the batch is sent again later, with backoff, and
    /// spooled when there is a spool. See [`after`](Self::after).
    pub fn retry_later(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Export, message).with_transient(true)
    }

    /// An exporter's batch refused for good (bad credentials, no such
    /// table): set aside with `message` as the reason, counted as dropped
    /// and refused, never sent again.
    pub fn refused(message: impl Into<String>) -> Self {
        let mut err = Error::new(ErrorKind::Export, message).with_transient(false);
        err.content = Some(false);
        err
    }

    /// An exporter's batch refused for what it holds (a record that
    /// breaks a constraint, a batch too large): sent again at once in two
    /// halves, and so on, so that only the records at fault are set aside.
    pub fn refused_content(message: impl Into<String>) -> Self {
        let mut err = Error::new(ErrorKind::Export, message).with_transient(false);
        err.content = Some(true);
        err
    }

    /// The same error, asking for the next try no sooner than `delay` from
    /// now (an HTTP `Retry-After`); the backoff's own delay applies when it
    /// is longer.
    pub fn after(self, delay: std::time::Duration) -> Self {
        self.with_retry_after(Some(delay))
    }

    /// The same error, caused by `source` ([`std::error::Error::source`]).
    pub fn caused_by(self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.with_source(source)
    }

    /// Whether the refusal is about what the batch holds, so that halves of
    /// it may pass: as the exporter said ([`Error::refused_content`]), else
    /// an HTTP 400, 413 or 422.
    pub fn refuses_content(&self) -> bool {
        self.content
            .unwrap_or(matches!(self.status, Some(400 | 413 | 422)))
    }

    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::TimedOut {
            ErrorKind::RequestTimeout
        } else {
            ErrorKind::Io
        };
        Error::new(kind, format!("{context}: {err}")).with_source(err)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, delay: Option<std::time::Duration>) -> Self {
        self.retry_after = delay;
        self
    }

    pub fn with_transient(mut self, transient: bool) -> Self {
        self.transient = Some(transient);
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn with_retained(mut self, retained: usize) -> Self {
        self.retained = retained;
        self
    }

    pub fn with_fallback_path(mut self, path: PathBuf) -> Self {
        self.fallback_path = Some(path);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status, for [`ErrorKind::HttpStatus`].
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// How long the server asked the client to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    /// For a failed flush: how many records are kept for the next flush
    /// (back in the buffer when every output failed, else by each failed
    /// output: the largest count). For a flush or shutdown that ran out of
    /// time: how many records were still on their way.
    pub fn retained(&self) -> usize {
        self.retained
    }

    /// For a failed flush or shutdown: the JSON Lines file the records were
    /// written to instead.
    pub fn fallback_path(&self) -> Option<&Path> {
        self.fallback_path.as_deref()
    }

    /// Whether sending the same batch again later may succeed.
    pub fn is_transient(&self) -> bool {
        if let Some(transient) = self.transient {
            return transient;
        }
        match self.kind {
            ErrorKind::Connect
            | ErrorKind::RequestTimeout
            | ErrorKind::FlushTimedOut
            | ErrorKind::Io
            | ErrorKind::Tls => true,
            ErrorKind::HttpStatus => matches!(self.status, Some(408 | 429 | 500..=599)),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // A timeout's message already says how many are on their way.
        if self.retained > 0 && self.kind != ErrorKind::FlushTimedOut {
            write!(f, "; {} records kept for the next flush", self.retained)?;
        }
        if let Some(path) = &self.fallback_path {
            write!(f, "; batch written to {}", path.display())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message was built from redacted URLs; the source is not shown
        // because a transport error may quote the URL it was given.
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .field("retained", &self.retained)
            .field("fallback_path", &self.fallback_path)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
