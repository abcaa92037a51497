//! The leaf of the aitrace crates: what a record is, how it looks on the
//! wire, and the trait an output implements.
//!
//! * [`Record`] and its parts ([`Level`], [`SpanContext`], [`Location`],
//!   [`Value`]): a structured log record stamped with W3C trace ids.
//! * [`wire`]: the names of the wire format (WIRE_FORMAT.md) the aitrace
//!   server, viewer and editor plugin read; [`Layout`] writes records in it
//!   and [`Record::from_json`] reads them back.
//! * [`export`]: the [`Export`](export::Export) trait. `aitrace-core` wraps
//!   an exporter in an `Output` and gives it batching, retries with
//!   backoff, a circuit breaker, a disk spool and stats; the built-in
//!   outputs (`aitrace-otlp`, `aitrace-report`, and core's own) implement
//!   it with nothing more than this crate offers.
//! * Errors, sharing [`ErrorKind`]: [`ConfigError`] for a configuration
//!   that cannot be used (what building an output fails with),
//!   [`ParseError`] for input that cannot be read, and [`Error`] for what
//!   went wrong sending, flushing or exporting; `?` turns the first two
//!   into an [`Error`].
//! * [`transport`] (feature `http`): the HTTP client the ingest and OTLP
//!   outputs share; [`diagnostics`]: rate-limited lines on stderr;
//!   [`fs`]: files replaced whole; [`scratch`]: a thread's reusable
//!   encoding buffer.
//!
//! Applications depend on `aitrace-core` (or an adapter), which re-exports
//! all of this; an exporter in a crate of its own may depend on this crate
//! alone.
//!
//! # Feature flags
//!
//! * `http`: [`transport`], on `ureq`.
//! * `tls`: `https://` for [`transport`] (rustls), trusting the system's
//!   certificate store or a CA file.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod diagnostics;
pub mod export;
pub mod fs;
pub mod ids;
pub mod scratch;
#[cfg(feature = "http")]
pub mod transport;
pub mod wire;

// Modules whose public items are re-exported below; public, hidden, so
// that `aitrace-core` reaches the few hooks it needs that are not part of
// the API (a record's id, its event rename, the clock's warm-up).
#[doc(hidden)]
pub mod clock;
#[doc(hidden)]
pub mod decode;
#[doc(hidden)]
pub mod encode;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod level;
#[doc(hidden)]
pub mod location;
#[doc(hidden)]
pub mod record;
#[doc(hidden)]
pub mod value;

pub use encode::Layout;
pub use error::{ConfigError, Error, ErrorKind, ParseError, Result};
pub use ids::{SpanId, TraceId};
pub use level::{Level, ParseLevelError};
pub use location::{PROJECT_ROOT_ENV, project_root, set_project_root};
pub use record::{Location, Record, RecordBuilder, RecordKind, SpanContext};
pub use value::{INLINE_STR_LEN, Str, Value};
