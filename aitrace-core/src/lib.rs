//! Buffered, trace-aware structured logging for the aitrace tools.
//!
//! `aitrace-core` keeps structured records, stamped with W3C trace/span ids,
//! source location and a timestamp, in one shared thread-safe buffer, and
//! flushes them in batches to stdout, a JSON Lines file, an aitrace HTTP
//! ingest server (in the wire format the aitrace server, viewer and editor
//! plugin read), an OpenTelemetry Collector over OTLP, a self-contained HTML
//! report, or an output of your own ([`export`]). It knows no logging frontend: `aitrace-tracing`,
//! `aitrace-log` and `aitrace-slog` adapt those, and its own API (below) is
//! a frontend too.
//!
//! ```
//! use aitrace_core::BufferedLogger;
//!
//! // Outputs from LOG_TRG: stdout when unset, a file path, an http(s) URL,
//! // otlp, a .html report, or several of them, comma-separated.
//! let log = BufferedLogger::new();
//! log.in_trace_context("checkout", |order| {
//!     log.info("checkout_started").field("user_id", "u2").field("total", 469.74).emit();
//!     log.span("charge_payment").field("amount", 469.74).in_scope(|_| {
//!         log.warn("slow_gateway").field("ms", 812).emit();
//!     });
//!     order.record("items", 3);
//! }); // `checkout.end` is written and the buffer flushed here
//! ```
//!
//! # Usage
//!
//! The crate root holds what a first program names: [`BufferedLogger`] and
//! its [`Builder`], [`Output`], [`Record`], [`Level`], [`Value`],
//! [`TraceParent`], the delivery modes and the errors. The rest is grouped
//! by theme, as `tracing-subscriber` groups `filter` and `fmt`: [`output`]
//! (targets, the HTTP and OTLP builders, the HTML report), [`delivery`]
//! (modes, retries, breaker, spool, stats), [`retention`] (ship a
//! trace's debug records only when it failed, was slow or is sampled),
//! [`record`], [`span`],
//! [`filter`], [`redact`], [`context`], [`export`], [`wire`], [`mod@env`] and
//! [`adapter`]. The 0.1 paths at the root still compile.
//!
//! * **Records** are [`Record`]s: level, event name, logger, [`SpanContext`],
//!   [`Location`] and ordered user fields whose [`Value`]s cover every JSON
//!   shape. [`Layout`] encodes them (namespaced by default, flat, compat).
//! * **The buffer** sits behind [`BufferedLogger`], a cheap-to-clone handle;
//!   [`flush`](BufferedLogger::flush) sends it to every [`Output`] and returns a
//!   [`FlushReport`]. A failed batch is kept or written to a fallback file as
//!   [`OnFailure`] says; nothing is dropped silently.
//! * **Emitting**: [`BufferedLogger::info`] and friends (capturing the
//!   caller's file and line), or the [`event!`] / [`info!`] macros (adding the
//!   module path).
//! * **Spans**: [`BufferedLogger::span`] writes `NAME.start`/`NAME.end` and
//!   makes the span current so records inside carry its ids;
//!   [`BufferedLogger::trace_context`] also clears the buffer first and flushes
//!   at the end. [`context`] carries a span to other threads and tasks.
//! * **Across processes**: [`TraceParent`] parses the W3C `traceparent` and
//!   `tracestate` headers a request brought (strictly, Trace Context
//!   Level 1) and gives the ones to send for the current span;
//!   [`SpanBuilder::remote_parent`] starts a span in the caller's trace.
//!   Records keep the wire format: the remote span is the `parent_span_id`.
//! * **Levels**: `info` and above by default; a level or `RUST_LOG`-style
//!   directives per target ([`Filter`]) from code, `AITRACE_LEVEL` or
//!   `RUST_LOG` ([`mod@env`] lists every variable read).
//! * **Redaction** (on by default): at capture, before the buffer, the
//!   values of sensitive keys (`password`, `token`, `api_key`,
//!   `authorization`, `cookie`, … at any depth: [`DEFAULT_REDACTED_KEYS`])
//!   become `"[REDACTED]"`, so no output, spool or fallback file ever holds
//!   them. On by default because a secret that reached a shared log store
//!   cannot be recalled, while an over-redacted field is visible and fixed
//!   with [`Redactor::allow_key`]. Patterns over string values (bearer
//!   tokens, JWTs, AWS keys, secrets in URLs) are opt-in, since they cost
//!   time on every event and a false positive hides data.
//!   [`Builder::redactor`] chooses ([`Redactor::none`] turns it off);
//!   [`Builder::before_send`] edits or drops each record first.
//! * **Background delivery** ([`Builder::delivery`] with a [`Background`];
//!   [`delivery`] has its settings): one delivery thread
//!   batches by size and interval and owns each output's retries
//!   ([`RetryPolicy`]), circuit breaker ([`BreakerPolicy`]) and disk spool
//!   ([`Background::spool_dir`]); one I/O thread per output sends. The buffer is
//!   bounded ([`OverflowPolicy`]) and [`BufferedLogger::stats`] accounts for
//!   every record at every instant ([`Stats::is_balanced`]). Keep a
//!   [`DeliveryGuard`] in `main` when a handle lives in a global.
//! * **Adapters** build a [`Record`] from their frontend's event and call
//!   [`BufferedLogger::capture`], after checking
//!   [`BufferedLogger::enabled_for`]; [`adapter`] has the rest they need.
//!   [`wire`] names the wire format's reserved keys.
//!
//! # Crates
//!
//! The record model, the wire names, the JSON codec and the [`export`]
//! trait live in `aitrace-model`, a leaf crate this one re-exports whole;
//! an exporter published as a crate of its own may depend on it alone.
//! The OTLP output (`aitrace-otlp`) and the HTML report (`aitrace-report`)
//! are such crates, pulled in by the default features below.
//!
//! # Feature flags
//!
//! * `opentelemetry` (default): records inside an active OpenTelemetry span
//!   carry its ids, and aitrace spans opened inside it join its trace.
//! * `otlp` (default): [`Output::otlp`], [`output::OtlpOutputBuilder`]: logs and spans
//!   over OTLP/HTTP (protobuf or JSON) to any OpenTelemetry Collector,
//!   configured by the standard `OTEL_*` variables; from the `aitrace-otlp`
//!   crate.
//! * `html` (default): [`output::write_html_report`] and the `.html` target, from the
//!   `aitrace-report` crate.
//! * `tls` (default): `https://` for the HTTP and OTLP outputs (rustls),
//!   trusting the system's certificate store or a CA file
//!   ([`output::HttpOutputBuilder::ca_file`], [`output::OtlpOutputBuilder::ca_file`]). Without
//!   it, an `https://` target is an [`InvalidTarget`](ErrorKind::InvalidTarget) error.
//! * `testing`: `Output::in_memory()` and `InMemoryOutput`, an output that keeps
//!   what it receives, for tests.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is **1.85** (set by `ureq` 3 and edition
//! 2024). It is raised only in a minor release.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapter;
mod buffer;
pub mod context;
mod deadline;
pub mod delivery;
mod diagnostics;
mod emit;
mod file;
pub mod filter;
mod flush_report;
mod lifecycle;
mod lock;
mod logger;
pub mod output;
mod propagation;
pub mod redact;
mod reentrancy;
pub mod retention;
mod retry;
pub mod span;
mod spool;
mod stats;

// The leaf crate's modules, under the paths this crate has always used.
use aitrace_model::{clock, encode, error, ids, level, location, scratch, transport, value};

pub mod export {
    //! The export trait: how a batch leaves the process, for the built-in
    //! outputs and for any a user writes.
    //!
    //! An [`Output`](crate::Output) wraps one [`Export`] (defined in
    //! `aitrace-model`, which an exporter crate of its own may depend on alone). Whatever the
    //! implementation, the logger gives it the same machinery: direct and
    //! background delivery, batching, retries with backoff (honouring
    //! `Retry-After`), the circuit breaker, the disk spool and its replay after
    //! a restart, splitting a batch refused for what it holds, stats, and the
    //! flush at exit. The exporter only sends one batch and says what became of
    //! it, as OpenTelemetry's `LogExporter` does.
    //!
    //! # Examples
    //!
    //! An output that counts lines, in a user's own crate:
    //!
    //! ```
    //! use std::sync::atomic::{AtomicUsize, Ordering};
    //! use aitrace_core::export::{Accepted, Batch, Export};
    //! use aitrace_core::{BufferedLogger, Error};
    //!
    //! #[derive(Default)]
    //! struct Counter(AtomicUsize);
    //!
    //! impl Export for Counter {
    //!     fn name(&self) -> String {
    //!         "counter".to_owned()
    //!     }
    //!
    //!     fn export(&self, batch: &Batch<'_>) -> Result<Accepted, Error> {
    //!         // JSON Lines in the output's layout, one record a line.
    //!         let lines = batch.lines().split(|b| *b == b'\n').filter(|l| !l.is_empty());
    //!         self.0.fetch_add(lines.count(), Ordering::Relaxed);
    //!         Ok(Accepted::all())
    //!     }
    //! }
    //!
    //! let log = BufferedLogger::builder().output(Counter::default()).build();
    //! log.info("hello").emit();
    //! let report = log.flush()?;
    //! assert_eq!(report.delivered(), 1);
    //! assert_eq!(log.outputs()[0].to_string(), "counter");
    //! # Ok::<(), Error>(())
    //! ```
    //!
    //! A failure says what to do next: [`Error::retry_later`](crate::Error::retry_later) for one that may
    //! pass (the batch is retried with backoff, spooled when a spool is set),
    //! [`Error::refused`](crate::Error::refused) for a batch refused for good (set aside, counted as
    //! dropped, never sent again), [`Error::refused_content`](crate::Error::refused_content) when the refusal
    //! is about what the batch holds (it is sent again in halves, so only the
    //! records at fault are set aside), and [`Accepted::partly`] when the
    //! receiver took some records and refused others.

    pub use aitrace_model::export::*;
}

/// The names the wire format gives meaning to (WIRE_FORMAT.md): the meta
/// keys, the reserved key and event names, the span lifecycle convention
/// (`NAME.start` / `NAME.end`, [`wire::lifecycle`]) and the
/// documented fallbacks' limits; from `aitrace-model`, where every reader
/// and writer of records asks them.
///
/// ```
/// use aitrace_core::wire::{self, Phase};
///
/// assert_eq!(wire::lifecycle("checkout.start"), Some(("checkout", Phase::Start)));
/// assert_eq!(wire::lifecycle_event("checkout", Phase::End), "checkout.end");
/// ```
pub mod wire {
    pub use aitrace_model::wire::*;
}

// What a first program names: the logger, its outputs, its records and
// errors. The rest is in the themed modules above and below.
pub use delivery::{Background, Direct, FlushReport};
pub use emit::EventBuilder;
pub use error::{ConfigError, Error, ErrorKind, ParseError, Result};
pub use logger::{BufferedLogger, Builder, DeliveryGuard, send_logs};
pub use output::Output;
pub use propagation::TraceParent;
pub use record::{Level, Record, SpanContext, Value};

/// Records and their parts: what a custom frontend builds and an exporter
/// reads (from `aitrace-model`).
pub mod record {
    pub use aitrace_model::{
        INLINE_STR_LEN, Layout, Level, Location, ParseLevelError, Record, RecordBuilder,
        RecordKind, SpanContext, SpanId, Str, TraceId, Value, project_root, set_project_root,
    };
}

/// The environment variables a logger reads for what code did not set
/// (values set in code win).
pub mod env {
    pub use crate::filter::{LEVEL_ENV, RUST_LOG_ENV};
    pub use crate::location::PROJECT_ROOT_ENV;
    pub use crate::logger::{
        BACKGROUND_ENV, BATCH_SIZE_ENV, CAPACITY_ENV, FLUSH_INTERVAL_ENV, SPOOL_DIR_ENV,
    };
    pub use crate::output::target::TARGET_ENV;
    pub use crate::retention::{
        LATENCY_ENV as RETENTION_LATENCY_ENV, MAX_BYTES_ENV as RETENTION_MAX_BYTES_ENV,
        SAMPLER_ARG_ENV, SAMPLER_ENV, SHIP_LEVEL_ENV,
    };
    pub use crate::span::unwinding::PANIC_HOOK_ENV;
    pub use crate::transport::CA_FILE_ENV;
}

// The 0.1 paths, kept so that code written against 0.1 compiles; the
// docs show each name once, in its module.
#[doc(hidden)]
pub use delivery::{
    BreakerPolicy, DEFAULT_BACKGROUND_CAPACITY, DEFAULT_BATCH_SIZE, DEFAULT_CAPACITY,
    DEFAULT_COOLDOWN, DEFAULT_FAILURE_THRESHOLD, DEFAULT_FLUSH_INTERVAL, DEFAULT_FLUSH_TIMEOUT,
    DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_COOLDOWN,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_SPOOL_MAX_BYTES, Delivery, FlushFuture, OnFailure,
    OutputStats, OverflowPolicy, RetryPolicy, Stats,
};
#[doc(hidden)]
pub use filter::{DEFAULT_MIN_LEVEL, Filter};
#[cfg(feature = "testing")]
#[doc(hidden)]
pub use output::InMemoryOutput;
#[cfg(feature = "html")]
#[doc(hidden)]
pub use output::write_html_report;
#[doc(hidden)]
pub use output::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, HttpOutputBuilder, Layout};
#[cfg(feature = "otlp")]
#[doc(hidden)]
pub use output::{DEFAULT_OTLP_ENDPOINT, DEFAULT_OTLP_TIMEOUT, OtlpOutputBuilder, Protocol};
#[doc(hidden)]
pub use record::{
    INLINE_STR_LEN, Location, ParseLevelError, RecordBuilder, RecordKind, SpanId, Str, TraceId,
    project_root, set_project_root,
};
#[doc(hidden)]
pub use redact::{DEFAULT_REDACTED_KEYS, Redactor, Verdict};
#[doc(hidden)]
pub use span::{FlushingTrace, SpanBuilder, SpanGuard};
/// The 0.1 name of [`FlushingTrace`].
#[deprecated(
    since = "0.2.0",
    note = "renamed `FlushingTrace`: it is not W3C Trace Context"
)]
#[doc(hidden)]
pub type TraceContext = span::FlushingTrace;
