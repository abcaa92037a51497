//! The crate's errors: [`ConfigError`] for a configuration that cannot be
//! used, [`ParseError`] for input that cannot be read, and [`Error`] for
//! sending, flushing and exporting. They share [`ErrorKind`].

use std::fmt;
use std::path::{Path, PathBuf};

/// A `Result` with this crate's [`Error`]; name another error as the
/// second parameter (`Result<Output, ConfigError>`).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`], a [`ConfigError`] or a
/// [`ParseError`] is.
///
/// The three types share this one list, so that a kind keeps its name when
/// `?` turns a [`ConfigError`] or a [`ParseError`] into an [`Error`]. Which
/// type carries which kinds:
///
/// | Kind | Carried by |
/// |---|---|
/// | [`InvalidTarget`](Self::InvalidTarget), [`InvalidFilter`](Self::InvalidFilter), [`InvalidPattern`](Self::InvalidPattern) | [`ConfigError`] |
/// | [`Tls`](Self::Tls), [`Io`](Self::Io) | [`ConfigError`] (a CA file; a spool folder, a thread) and [`Error`] (a handshake; a write) |
/// | [`InvalidRecord`](Self::InvalidRecord), [`InvalidTraceContext`](Self::InvalidTraceContext) | [`ParseError`] |
/// | [`Connect`](Self::Connect), [`RequestTimeout`](Self::RequestTimeout), [`HttpStatus`](Self::HttpStatus), [`FlushTimedOut`](Self::FlushTimedOut), [`Closed`](Self::Closed), [`Export`](Self::Export) | [`Error`] |
///
/// An [`Error`] made from a [`ConfigError`] or a [`ParseError`] keeps its
/// kind, so code that matches an [`Error`]'s kind may meet any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A target string, URL, endpoint, header or output setting (code or
    /// environment) that cannot be used, or a feature it needs that is
    /// off ([`ConfigError`]). From a send, an [`Error`]: a request the HTTP
    /// client could not build, which the builders' checks are there to
    /// catch first.
    InvalidTarget,
    /// A level or filter directives that cannot be read ([`ConfigError`]).
    InvalidFilter,
    /// The server could not be reached (refused, unresolvable, reset).
    Connect,
    /// A request to a server did not complete in time (connect, send, or
    /// wait for the answer): a network timeout, retried.
    RequestTimeout,
    /// The server answered with a status outside 2xx.
    HttpStatus,
    /// Reading or writing a file or stdout failed ([`Error`]); a spool
    /// folder that cannot be created, locked or written to, or a delivery
    /// thread that cannot start, when building a logger ([`ConfigError`]).
    Io,
    /// A flush or shutdown gave up waiting at its own timeout, with
    /// records still on their way ([`Error::retained`]).
    FlushTimedOut,
    /// The logger was shut down.
    Closed,
    /// A TLS problem: the server's certificate is not trusted, expired or
    /// for another name ([`Error`]), or a CA file cannot be read
    /// ([`ConfigError`]).
    Tls,
    /// A redaction value pattern that is not a valid regular expression
    /// (`aitrace_core::Redactor::value_pattern`; [`ConfigError`]).
    InvalidPattern,
    /// Text that is not a record in the wire format
    /// ([`Record::from_json`](crate::Record::from_json); [`ParseError`]).
    InvalidRecord,
    /// A `traceparent` header that is not W3C Trace Context
    /// (`aitrace_core::TraceParent::parse`; [`ParseError`]).
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

/// What went wrong sending, flushing or exporting: what an
/// [exporter](crate::export::Export) returns and what a flush or a
/// shutdown reports.
///
/// For a failed flush it also tells what became of the records: how many
/// are kept for the next flush ([`retained`](Error::retained)) or which fallback
/// file holds them ([`fallback_path`](Error::fallback_path)).
///
/// Building an output or a logger fails with a [`ConfigError`], reading a
/// record or a header with a [`ParseError`]; `?` turns either into an
/// `Error` with the same kind, message and source, so one function
/// returning [`Result`] may build, parse and send:
///
/// ```
/// use aitrace_model::{Error, ErrorKind, Record};
///
/// fn first_event(line: &str) -> Result<String, Error> {
///     let record = Record::from_json(line)?; // a ParseError, converted
///     Ok(record.event().to_owned())
/// }
///
/// let err = first_event("not json").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidRecord);
/// ```
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
    /// Set when `retained` counts records at the end of a caller's slice
    /// that were not sent (`send_logs`), not records kept for a next flush.
    unsent_tail: bool,
    fallback_path: Option<PathBuf>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `kind` saying `message` (shown as it is: it must hold no
    /// secret). An exporter usually wants [`retry_later`](Self::retry_later),
    /// [`refused`](Self::refused) or [`refused_content`](Self::refused_content);
    /// this is for one that speaks HTTP and reports as the built-in outputs
    /// do ([`ErrorKind::Connect`], [`ErrorKind::HttpStatus`] with
    /// [`with_status`](Self::with_status), …).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            transient: None,
            content: None,
            retained: 0,
            unsent_tail: false,
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
    #[doc(hidden)]
    pub fn refuses_content(&self) -> bool {
        self.content
            .unwrap_or(matches!(self.status, Some(400 | 413 | 422)))
    }

    /// An I/O failure while sending (`context: err`), caused by `err`: kind
    /// [`ErrorKind::RequestTimeout`] for a timeout, else [`ErrorKind::Io`];
    /// retried, as a failure that may pass.
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::TimedOut {
            ErrorKind::RequestTimeout
        } else {
            ErrorKind::Io
        };
        Error::new(kind, format!("{context}: {err}")).with_source(err)
    }

    /// The same error, carrying the HTTP status the receiver answered
    /// ([`status`](Self::status)); with kind [`ErrorKind::HttpStatus`], the
    /// status decides whether it is retried (408, 429 and 5xx are).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// The same error, with the receiver's `Retry-After` when it sent one
    /// ([`after`](Self::after) for a delay that is always there).
    pub fn with_retry_after(mut self, delay: Option<std::time::Duration>) -> Self {
        self.retry_after = delay;
        self
    }

    /// The same error, saying whether sending the same batch again later
    /// may succeed, when the exporter knows better than the kind and status
    /// do (OTLP names its own retryable statuses); see
    /// [`is_transient`](Self::is_transient).
    pub fn with_transient(mut self, transient: bool) -> Self {
        self.transient = Some(transient);
        self
    }

    #[doc(hidden)]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The same error, saying that the last `n` records of the caller's
    /// slice were not sent (`send_logs`), read back by
    /// [`retained`](Self::retained).
    #[doc(hidden)]
    pub fn with_unsent_tail(mut self, n: usize) -> Self {
        self.retained = n;
        self.unsent_tail = true;
        self
    }

    #[doc(hidden)]
    pub fn with_retained(mut self, retained: usize) -> Self {
        self.retained = retained;
        self
    }

    #[doc(hidden)]
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
    /// time: how many records were still on their way. For `send_logs`:
    /// how many records at the end of the slice it was given were not sent
    /// (the ones before were delivered or set aside), so a retry sends
    /// `&records[records.len() - err.retained()..]`.
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
        if self.unsent_tail {
            write!(f, "; the last {} records were not sent", self.retained)?;
        } else if self.retained > 0 && self.kind != ErrorKind::FlushTimedOut {
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

/// A configuration that cannot be used: what building an output, a logger,
/// a filter or a redactor fails with, before anything is sent.
///
/// Its [`kind`](Self::kind) is one of:
///
/// * [`ErrorKind::InvalidTarget`]: a target string, URL, endpoint, header
///   or output setting (from code or the environment) that cannot be used,
///   or a feature it needs that is off;
/// * [`ErrorKind::InvalidFilter`]: a level or filter directives;
/// * [`ErrorKind::InvalidPattern`]: a redaction value pattern;
/// * [`ErrorKind::Tls`]: a CA file that cannot be read or holds no
///   certificate;
/// * [`ErrorKind::Io`]: a spool folder that cannot be created, locked or
///   written to, or a delivery thread that cannot start.
///
/// `?` turns it into an [`Error`] with the same kind, message and source.
/// Neither its `Display` nor its `Debug` shows a URL's user-info or a
/// header's value.
///
/// # Examples
///
/// The builder of an exporter in a crate of its own:
///
/// ```
/// use aitrace_model::{ConfigError, ErrorKind};
///
/// struct Table(String);
///
/// fn table(dsn: &str) -> Result<Table, ConfigError> {
///     match dsn.strip_prefix("sqlite:") {
///         Some(path) if !path.is_empty() => Ok(Table(path.to_owned())),
///         _ => Err(ConfigError::invalid_target(format!(
///             "{dsn:?} is not a sqlite:PATH target"
///         ))),
///     }
/// }
///
/// let err = table("postgres://db").err().unwrap();
/// assert_eq!(err.kind(), ErrorKind::InvalidTarget);
/// assert_eq!(err.to_string(), r#""postgres://db" is not a sqlite:PATH target"#);
/// ```
pub struct ConfigError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConfigError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A target, URL, endpoint, header or other setting of an output that
    /// cannot be used ([`ErrorKind::InvalidTarget`]). The message says
    /// what and why, and shows no secret (a URL's user-info, a header's
    /// value).
    pub fn invalid_target(message: impl Into<String>) -> Self {
        ConfigError::new(ErrorKind::InvalidTarget, message)
    }

    /// A TLS setting that cannot be used, such as a CA file
    /// ([`ErrorKind::Tls`]).
    pub fn tls(message: impl Into<String>) -> Self {
        ConfigError::new(ErrorKind::Tls, message)
    }

    /// A file or folder the configuration names that cannot be used, or a
    /// thread that cannot start ([`ErrorKind::Io`]): `context: err`, caused
    /// by `err`.
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        ConfigError::new(ErrorKind::Io, format!("{context}: {err}")).caused_by(err)
    }

    /// Level or filter directives that cannot be read
    /// ([`ErrorKind::InvalidFilter`]; `aitrace_core::Filter` makes them).
    #[doc(hidden)]
    pub fn invalid_filter(message: impl Into<String>) -> Self {
        ConfigError::new(ErrorKind::InvalidFilter, message)
    }

    /// A redaction pattern that is not a valid regular expression
    /// ([`ErrorKind::InvalidPattern`]; `aitrace_core::Redactor` makes them).
    #[doc(hidden)]
    pub fn invalid_pattern(message: impl Into<String>) -> Self {
        ConfigError::new(ErrorKind::InvalidPattern, message)
    }

    /// The same error, caused by `source` ([`std::error::Error::source`]).
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is; see the list [above](Self).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As for `Error`: the message was built from redacted URLs, and the
        // source is not shown because it may quote what it was given.
        f.debug_struct("ConfigError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Input that cannot be read: a record in the wire format
/// ([`Record::from_json`](crate::Record::from_json),
/// [`ErrorKind::InvalidRecord`]) or a `traceparent` header
/// (`aitrace_core::TraceParent::parse`,
/// [`ErrorKind::InvalidTraceContext`]). Its message says what is wrong.
///
/// `?` turns it into an [`Error`] with the same kind, message and source.
pub struct ParseError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ParseError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ParseError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Text that is not a record ([`ErrorKind::InvalidRecord`]).
    pub(crate) fn invalid_record(message: impl Into<String>) -> Self {
        ParseError::new(ErrorKind::InvalidRecord, message)
    }

    /// A `traceparent` header that is not W3C Trace Context
    /// ([`ErrorKind::InvalidTraceContext`]; `aitrace_core::TraceParent`
    /// makes them).
    #[doc(hidden)]
    pub fn invalid_trace_context(message: impl Into<String>) -> Self {
        ParseError::new(ErrorKind::InvalidTraceContext, message)
    }

    pub(crate) fn caused_by(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is: [`ErrorKind::InvalidRecord`] or
    /// [`ErrorKind::InvalidTraceContext`].
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParseError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The same kind, message and source: `?` in a function returning
/// [`Result`].
impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error {
            source: err.source,
            ..Error::new(err.kind, err.message)
        }
    }
}

/// The same kind, message and source: `?` in a function returning
/// [`Result`].
impl From<ParseError> for Error {
    fn from(err: ParseError) -> Self {
        Error {
            source: err.source,
            ..Error::new(err.kind, err.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;

    use super::*;

    fn denied() -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, "permission denied")
    }

    #[test]
    fn each_constructor_gives_its_kind_and_into_error_keeps_it() {
        let config = [
            (ConfigError::invalid_target("t"), ErrorKind::InvalidTarget),
            (ConfigError::invalid_filter("f"), ErrorKind::InvalidFilter),
            (ConfigError::invalid_pattern("p"), ErrorKind::InvalidPattern),
            (ConfigError::tls("c"), ErrorKind::Tls),
            (ConfigError::io("s", denied()), ErrorKind::Io),
        ];
        for (err, kind) in config {
            assert_eq!(err.kind(), kind);
            assert_eq!(Error::from(err).kind(), kind);
        }
        let parse = [
            (ParseError::invalid_record("r"), ErrorKind::InvalidRecord),
            (
                ParseError::invalid_trace_context("h"),
                ErrorKind::InvalidTraceContext,
            ),
        ];
        for (err, kind) in parse {
            assert_eq!(err.kind(), kind);
            assert_eq!(Error::from(err).kind(), kind);
        }
    }

    #[test]
    fn question_mark_turns_a_config_error_into_the_same_error() {
        fn open_spool() -> Result<(), ConfigError> {
            Err(ConfigError::io("cannot create spool folder /s", denied()))
        }
        fn run() -> Result<()> {
            open_spool()?;
            Ok(())
        }
        let err = run().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(
            err.to_string(),
            "cannot create spool folder /s: permission denied"
        );
        let source = err.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(
            source.map(io::Error::kind),
            Some(io::ErrorKind::PermissionDenied)
        );
        assert_eq!(
            (err.status(), err.retained(), err.fallback_path()),
            (None, 0, None)
        );
    }

    #[test]
    fn question_mark_turns_a_parse_error_into_the_same_error() {
        fn read(line: &str) -> Result<crate::Record> {
            Ok(crate::Record::from_json(line)?)
        }
        let parsed = crate::Record::from_json("{").unwrap_err();
        let err = read("{").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRecord);
        assert_eq!(err.to_string(), parsed.to_string());
        assert!(err.to_string().starts_with("not JSON: "), "{err}");
        assert!(err.source().is_some() && parsed.source().is_some());
    }

    /// A configuration's timed-out read is not a request that timed out:
    /// unlike [`Error::io`], the kind stays `Io`.
    #[test]
    fn a_config_io_error_is_io_whatever_the_io_kind() {
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "timed out");
        assert_eq!(
            Error::io("x", io::Error::from(io::ErrorKind::TimedOut)).kind(),
            ErrorKind::RequestTimeout
        );
        assert_eq!(ConfigError::io("x", timed_out).kind(), ErrorKind::Io);
    }

    #[test]
    fn debug_shows_kind_and_message_but_not_the_source() {
        let secret = io::Error::other("https://bob:hunter2@host/");
        let err = ConfigError::invalid_target("invalid URL https://***@host/").caused_by(secret);
        let debug = format!("{err:?}");
        assert_eq!(
            debug,
            r#"ConfigError { kind: InvalidTarget, message: "invalid URL https://***@host/" }"#
        );
        let debug = format!("{:?}", Error::from(err));
        assert!(!debug.contains("hunter2"), "{debug}");
        let debug = format!("{:?}", ParseError::invalid_record("no event"));
        assert_eq!(
            debug,
            r#"ParseError { kind: InvalidRecord, message: "no event" }"#
        );
    }
}
