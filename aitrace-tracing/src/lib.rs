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
//! | event `message` | `event` (without one: `error` if it has an `error` field, as `#[instrument(err)]` emits, else the target) |
//! | other fields | user fields, typed (integers, floats, bools, strings; `Debug` text otherwise) |
//! | target | `logger` |
//! | file, line, module path | `file`, `line`, `function` |
//! | `WARN` | `warning` |
//! | span creation / first enter | `NAME.start` with the span's fields, `provisional: true` |
//! | span close | `NAME.end` with fields recorded after the start and `duration_ms` |
//! | span field `otel.name` (set by the first enter) | `NAME` in place of the span's static name |
//! | span field `otel.status_code = "error"` | `NAME.end` at `error`, its `error` the `otel.status_message` (else `error.type`) |
//!
//! The `otel.*` fields are tracing-opentelemetry's conventions, so a span
//! written for it (as aitrace-http's are) means the same here; `otel.kind`
//! stays a field, which the OTLP output reads as the span kind.
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
//! new root. The aitrace ids are the ones every aitrace record carries,
//! across `tracing`, `log` and `slog`.
//!
//! With `tracing-opentelemetry` on the same registry and this crate's
//! `opentelemetry` feature, a span's records carry the trace and span id
//! the OpenTelemetry exporter sends for it, so logs and traces correlate in
//! your backend:
//!
//! ```
//! use aitrace_core::{BufferedLogger, TraceParent};
//! use aitrace_tracing::AitraceLayer;
//! use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
//! use tracing_opentelemetry::OpenTelemetrySpanExt as _;
//! use tracing_subscriber::prelude::*;
//!
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build(); // your exporter here
//! let log = BufferedLogger::new();
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("shop")))
//!     .with(AitraceLayer::new(log.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("checkout").entered();
//!     tracing::info!("checkout_started"); // carries the OpenTelemetry span's ids
//!     let otel = span.context().span().span_context().clone();
//!     let current = TraceParent::current().unwrap();
//!     assert_eq!(current.trace_id().to_bytes(), otel.trace_id().to_bytes());
//!     assert_eq!(current.span_id().to_bytes(), otel.span_id().to_bytes());
//! });
//! # log.clear();
//! ```
//!
//! * **Supported versions**: tracing-opentelemetry **0.34** with
//!   opentelemetry **0.33**. Another version's layer is a different type
//!   that this build cannot read.
//! * **Layer order**: the usual `registry().with(otel_layer).with(AitraceLayer)`,
//!   OpenTelemetry's layer first. The ids are read when a span is first
//!   entered (or when an explicit child or event needs them), so
//!   `set_parent` before that still works. One case needs the other order:
//!   a span closed without ever being entered is exported by
//!   tracing-opentelemetry before aitrace sees it close, so its records keep
//!   aitrace's own ids; with `AitraceLayer` added first, those match too.
//! * **Parents**: a record's `parent_span_id` is the enclosing span aitrace
//!   sees, which is OpenTelemetry's parent unless an aitrace-only span sits
//!   between them. A parent set with `set_parent` from another process is
//!   not readable through tracing-opentelemetry's API: such a span is
//!   written as a root of the remote trace, unless it also has the
//!   `traceparent` field (below), which gives it the remote parent.
//! * **Nothing silent**: a span the feature finds no OpenTelemetry data for
//!   (no such layer, another version, a filter that keeps the span from it)
//!   keeps aitrace's own ids, and one line on stderr says why, once per
//!   process.
//!
//! Without the feature, tracing-opentelemetry and this layer give a span
//! different span ids; a trace that starts in an OpenTelemetry span (set as
//! current with `Context::attach`, as OpenTelemetry instrumentations do) is
//! still joined by trace id.
//!
//! # Across processes: `traceparent`
//!
//! A span created with a [`TRACEPARENT_FIELD`] (`traceparent`) field
//! holding a W3C `traceparent` header, and optionally a
//! [`TRACESTATE_FIELD`] (`tracestate`), continues the caller's trace: it
//! takes the remote trace id and has the remote span as parent, whatever
//! span is current. The field must have its value when the span is created
//! (not `Empty`, recorded later) and be a string or `%`-formatted (`?` adds
//! quotes); a header that does not parse is ignored and the span starts as
//! it would without it. The fields stay on the `.start` record like any
//! other. Inside any tracing span,
//! [`TraceParent::current`](aitrace_core::TraceParent::current) gives the
//! headers to send with an outgoing request.
//!
//! ```
//! use aitrace_core::{BufferedLogger, TraceParent};
//! use aitrace_tracing::AitraceLayer;
//! use tracing_subscriber::prelude::*;
//!
//! let log = BufferedLogger::new();
//! let subscriber = tracing_subscriber::registry().with(AitraceLayer::new(log.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     // A request's headers:
//!     let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//!     let _span = tracing::info_span!("handle_request", traceparent = header).entered();
//!     let outgoing = TraceParent::current().unwrap();
//!     assert_eq!(outgoing.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//!     // ureq::get(url).header("traceparent", outgoing.to_string())
//! });
//! # log.clear();
//! ```
//!
//! With tracing-opentelemetry and the `opentelemetry` feature, the span
//! takes OpenTelemetry's ids: continue a remote trace with its propagator and
//! `set_parent`, and add the `traceparent` field to keep the remote parent on
//! the records too.
//!
//! # Feature flags
//!
//! * `opentelemetry` (off by default): records carry the ids
//!   tracing-opentelemetry 0.34 (opentelemetry 0.33) gives their span; see
//!   above.
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer, like the rest of the workspace.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod layer;
mod message;
#[cfg(feature = "opentelemetry")]
mod otel;
mod spans;

pub use layer::{
    AitraceLayer, OTEL_NAME_FIELD, OTEL_STATUS_CODE_FIELD, OTEL_STATUS_MESSAGE_FIELD,
    TRACEPARENT_FIELD, TRACESTATE_FIELD, level_from_tracing,
};

pub use tracing;
pub use tracing_subscriber;
