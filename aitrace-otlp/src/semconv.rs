//! The names and numbers OTLP gives aitrace's data, used both by
//! `convert.rs` (what each record becomes) and by the encoders: the
//! semantic-convention attribute names of the code location, aitrace's
//! record id, tracing-opentelemetry's `otel.*` span fields, and the
//! severity of a level.

use crate::fields::severity_number;
use aitrace_model::Level;

/// Semantic-convention names of the code location (semconv 1.30 and later).
pub(crate) const CODE_FILE: &str = "code.file.path";
pub(crate) const CODE_LINE: &str = "code.line.number";
pub(crate) const CODE_FUNCTION: &str = "code.function.name";
/// The record id of `aitrace_core::Builder::record_ids`, for
/// dropping duplicates of at-least-once delivery.
pub(crate) const RECORD_ID: &str = "aitrace.record_id";

/// The attribute naming a span event's level (a log record has its
/// severity instead), as tracing-opentelemetry writes it.
pub(crate) const LEVEL: &str = "level";

/// tracing-opentelemetry's special span fields: the exported span's name,
/// kind and status, not attributes.
pub(crate) const OTEL_NAME: &str = "otel.name";
pub(crate) const OTEL_KIND: &str = "otel.kind";
pub(crate) const OTEL_STATUS_CODE: &str = "otel.status_code";
pub(crate) const OTEL_STATUS_MESSAGE: &str = "otel.status_message";

/// OpenTelemetry's severity number for a level (the log data model's
/// TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17) and its short name.
pub(crate) fn severity(level: Level) -> (i32, &'static str) {
    match level {
        Level::Trace => (severity_number::TRACE, "TRACE"),
        Level::Debug => (severity_number::DEBUG, "DEBUG"),
        Level::Info => (severity_number::INFO, "INFO"),
        Level::Warn => (severity_number::WARN, "WARN"),
        Level::Error => (severity_number::ERROR, "ERROR"),
    }
}
