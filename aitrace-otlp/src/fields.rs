//! The field numbers and enum values of the OTLP messages written here,
//! one module per message, named as in `opentelemetry/proto/*/v1/*.proto`
//! (checked against the `#[prost(..., tag = "N")]` of `opentelemetry-proto`
//! 0.33, and byte for byte against prost by the encoder tests).

/// `collector.logs.v1.ExportLogsServiceRequest`.
pub(crate) mod export_logs_service_request {
    pub(crate) const RESOURCE_LOGS: u32 = 1;
}

/// `collector.trace.v1.ExportTraceServiceRequest`.
pub(crate) mod export_trace_service_request {
    pub(crate) const RESOURCE_SPANS: u32 = 1;
}

/// `logs.v1.ResourceLogs`.
pub(crate) mod resource_logs {
    pub(crate) const RESOURCE: u32 = 1;
    pub(crate) const SCOPE_LOGS: u32 = 2;
}

/// `trace.v1.ResourceSpans`.
pub(crate) mod resource_spans {
    pub(crate) const RESOURCE: u32 = 1;
    pub(crate) const SCOPE_SPANS: u32 = 2;
}

/// `logs.v1.ScopeLogs`.
pub(crate) mod scope_logs {
    pub(crate) const SCOPE: u32 = 1;
    pub(crate) const LOG_RECORDS: u32 = 2;
}

/// `trace.v1.ScopeSpans`.
pub(crate) mod scope_spans {
    pub(crate) const SCOPE: u32 = 1;
    pub(crate) const SPANS: u32 = 2;
}

/// `resource.v1.Resource`.
pub(crate) mod resource {
    pub(crate) const ATTRIBUTES: u32 = 1;
}

/// `common.v1.InstrumentationScope`.
pub(crate) mod instrumentation_scope {
    pub(crate) const NAME: u32 = 1;
}

/// `common.v1.AnyValue` (its `oneof value`).
pub(crate) mod any_value {
    pub(crate) const STRING_VALUE: u32 = 1;
    pub(crate) const BOOL_VALUE: u32 = 2;
    pub(crate) const INT_VALUE: u32 = 3;
    pub(crate) const DOUBLE_VALUE: u32 = 4;
    pub(crate) const ARRAY_VALUE: u32 = 5;
    pub(crate) const KVLIST_VALUE: u32 = 6;
    pub(crate) const BYTES_VALUE: u32 = 7;
}

/// `common.v1.ArrayValue`.
pub(crate) mod array_value {
    pub(crate) const VALUES: u32 = 1;
}

/// `common.v1.KeyValueList`.
pub(crate) mod key_value_list {
    pub(crate) const VALUES: u32 = 1;
}

/// `common.v1.KeyValue`.
pub(crate) mod key_value {
    pub(crate) const KEY: u32 = 1;
    pub(crate) const VALUE: u32 = 2;
}

/// `logs.v1.LogRecord`.
pub(crate) mod log_record {
    pub(crate) const TIME_UNIX_NANO: u32 = 1;
    pub(crate) const SEVERITY_NUMBER: u32 = 2;
    pub(crate) const SEVERITY_TEXT: u32 = 3;
    pub(crate) const BODY: u32 = 5;
    pub(crate) const ATTRIBUTES: u32 = 6;
    pub(crate) const FLAGS: u32 = 8;
    pub(crate) const TRACE_ID: u32 = 9;
    pub(crate) const SPAN_ID: u32 = 10;
    pub(crate) const OBSERVED_TIME_UNIX_NANO: u32 = 11;
}

/// `trace.v1.Span`.
pub(crate) mod span {
    pub(crate) const TRACE_ID: u32 = 1;
    pub(crate) const SPAN_ID: u32 = 2;
    pub(crate) const PARENT_SPAN_ID: u32 = 4;
    pub(crate) const NAME: u32 = 5;
    pub(crate) const KIND: u32 = 6;
    pub(crate) const START_TIME_UNIX_NANO: u32 = 7;
    pub(crate) const END_TIME_UNIX_NANO: u32 = 8;
    pub(crate) const ATTRIBUTES: u32 = 9;
    pub(crate) const EVENTS: u32 = 11;
    pub(crate) const DROPPED_EVENTS_COUNT: u32 = 12;
    pub(crate) const STATUS: u32 = 15;
    pub(crate) const FLAGS: u32 = 16;
}

/// `trace.v1.Span.Event`.
pub(crate) mod span_event {
    pub(crate) const TIME_UNIX_NANO: u32 = 1;
    pub(crate) const NAME: u32 = 2;
    pub(crate) const ATTRIBUTES: u32 = 3;
}

/// `trace.v1.Status`.
pub(crate) mod status {
    pub(crate) const MESSAGE: u32 = 2;
    pub(crate) const CODE: u32 = 3;
}

/// `trace.v1.Span.SpanKind` values.
pub(crate) mod span_kind {
    pub(crate) const INTERNAL: i32 = 1;
    pub(crate) const SERVER: i32 = 2;
    pub(crate) const CLIENT: i32 = 3;
    pub(crate) const PRODUCER: i32 = 4;
    pub(crate) const CONSUMER: i32 = 5;
}

/// `trace.v1.Status.StatusCode` values (`UNSET` is 0: no status written).
pub(crate) mod status_code {
    pub(crate) const OK: i32 = 1;
    pub(crate) const ERROR: i32 = 2;
}

/// `logs.v1.SeverityNumber` values: the first of each range.
pub(crate) mod severity_number {
    pub(crate) const TRACE: i32 = 1;
    pub(crate) const DEBUG: i32 = 5;
    pub(crate) const INFO: i32 = 9;
    pub(crate) const WARN: i32 = 13;
    pub(crate) const ERROR: i32 = 17;
}

/// The trace flags written on a record or span with a context: sampled
/// (`LogRecord.flags`, `Span.flags`, W3C's `01`).
pub(crate) const FLAGS_SAMPLED: u32 = 1;

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};

    use super::*;

    #[test]
    fn enum_values_are_opentelemetry_protos() {
        assert_eq!(span_kind::INTERNAL, SpanKind::Internal as i32);
        assert_eq!(span_kind::SERVER, SpanKind::Server as i32);
        assert_eq!(span_kind::CLIENT, SpanKind::Client as i32);
        assert_eq!(span_kind::PRODUCER, SpanKind::Producer as i32);
        assert_eq!(span_kind::CONSUMER, SpanKind::Consumer as i32);
        assert_eq!(status_code::OK, StatusCode::Ok as i32);
        assert_eq!(status_code::ERROR, StatusCode::Error as i32);
        assert_eq!(severity_number::TRACE, SeverityNumber::Trace as i32);
        assert_eq!(severity_number::DEBUG, SeverityNumber::Debug as i32);
        assert_eq!(severity_number::INFO, SeverityNumber::Info as i32);
        assert_eq!(severity_number::WARN, SeverityNumber::Warn as i32);
        assert_eq!(severity_number::ERROR, SeverityNumber::Error as i32);
    }
}
