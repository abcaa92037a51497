//! A [`tracing_subscriber`] layer that buffers `tracing` events and spans as
//! aitrace records, for the aitrace server, viewer and editor plugin.
//!
//! ```
//! use aitrace_core::BufferedLogger;
//! use aitrace_tracing::AitraceLayer;
//! use tracing_subscriber::prelude::*;
//!
//! let log = BufferedLogger::new(); // output from LOG_TRG, stdout when unset
//! let subscriber = tracing_subscriber::registry().with(AitraceLayer::new(log.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let _order = tracing::info_span!("process_order", order_id = "o1002").entered();
//!     tracing::info!(user_id = "u2", total = 469.74, items = 3, "checkout_started");
//! });
//! let report = log.flush()?; // process_order.start, checkout_started, process_order.end
//! assert_eq!(report.records(), 3);
//! # Ok::<(), aitrace_core::Error>(())
//! ```
//!
//! # Usage
//!
//! Add [`AitraceLayer`] to a `tracing_subscriber::registry()`. It composes like
//! any layer: with `EnvFilter`, with per-layer filters
//! (`AitraceLayer::new(log).with_filter(LevelFilter::INFO)`), and next to
//! `fmt` or other layers. `#[tracing::instrument]` is the Rust counterpart of
//! the Python tool's `@auto_span`: the function becomes a span with
//! `.start`/`.end` records, and with `err` an `Err` return ends it at `error`.
//!
//! What becomes what:
//!
//! | tracing | aitrace record |
//! |---|---|
//! | event `message` | `event` |
//! | other fields | user fields, typed (integers, floats, bools, strings; `Debug` text otherwise) |
//! | target | `logger` |
//! | file, line, module path | `file`, `line`, `function` |
//! | `WARN` | `warning` |
//! | span creation / first enter | `NAME.start` with the span's fields, `provisional: true` |
//! | span close | `NAME.end` with fields recorded after the start and `duration_ms` |
//!
//! While a `tracing` span is entered it is `aitrace_core`'s current span, so
//! records from `log` (through `aitrace-log`), `slog` (through `aitrace-slog`)
//! or the core API inside it carry its ids: one trace across all frontends.
//!
//! # Ids and OpenTelemetry
//!
//! The layer gives each span its own W3C ids: a child of whatever span is
//! current in `aitrace_core::context` (the innermost entered tracing span, an
//! aitrace span entered inside it, or an active OpenTelemetry span from
//! `opentelemetry::Context::current()`), or of its explicit `parent:`, else a
//! new root. With
//! `tracing-opentelemetry` installed too, the two layers give a tracing span
//! different span ids; a trace that starts in an OpenTelemetry span (set as
//! current with `Context::attach`, as OpenTelemetry instrumentations do) is
//! joined by trace id. The aitrace ids are the ones every aitrace record
//! carries, across `tracing`, `log` and `slog`.
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer, like the rest of the workspace.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod layer;

pub use layer::{AitraceLayer, level_from_tracing};

pub use tracing;
pub use tracing_subscriber;
