//! How a span is marked failed, the way tracing-opentelemetry reads it.

use std::fmt;

use tracing::Span;

use crate::semconv;

/// Marks the span failed: `otel.status_code = "error"`, `error.type`, and
/// the error's text when there is one.
pub(crate) fn fail(span: &Span, error_type: &str, message: Option<&dyn fmt::Display>) {
    span.record(semconv::ERROR_TYPE, error_type);
    if let Some(message) = message {
        span.record("otel.status_message", tracing::field::display(message));
    }
    span.record("otel.status_code", "error");
}
