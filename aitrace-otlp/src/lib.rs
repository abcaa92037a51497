//! The OTLP/HTTP output: events as log records on `/v1/logs`, span
//! lifecycles as spans on `/v1/traces`, to any OpenTelemetry Collector.
//!
//! The requests are written straight from the records, not through the
//! `opentelemetry-proto` types (building those cost an allocation per
//! attribute key and string value, and the allocator was the largest cost
//! of the OTLP sender). A file per concept, each importing only files
//! listed before it, so they depend one way:
//!
//! - `config.rs`: settings (code, then `OTEL_*`, then defaults);
//! - `fields.rs`: protobuf field numbers and enum values, named;
//! - `protobuf.rs`: varints, keys, length-delimited fields;
//! - `semconv.rs`: attribute names and the severity of a level;
//! - `span.rs`: a finished span, its name, kind and status;
//! - `convert.rs`: what each record becomes (log record, span or span
//!   event, in which scope), and the span starts waiting for their ends;
//! - `attributes.rs`: which attributes a record or span carries;
//! - `proto_common.rs`, `proto_logs.rs`, `proto_traces.rs`: the protobuf
//!   of the shared messages, of logs requests and of traces requests;
//! - `json.rs`: OTLP/JSON of both requests;
//! - `exporter.rs`: posts the requests and reads the answers with the
//!   `opentelemetry-proto` message types.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

// The leaf crate's modules, under the paths the code has always used.
use aitrace_model::{diagnostics, export, ids, transport, wire};

mod attributes;
mod config;
mod convert;
mod exporter;
mod fields;
mod json;
mod proto_common;
mod proto_logs;
mod proto_traces;
mod protobuf;
mod semconv;
mod span;

#[cfg(test)]
mod encode_tests;

pub use config::{DEFAULT_OTLP_ENDPOINT, DEFAULT_OTLP_TIMEOUT, OtlpOutputBuilder, Protocol};
pub use config::{OtlpTarget, parse_target};
pub use exporter::OtlpExporter;

use aitrace_model::{ConfigError, Result};

impl OtlpOutputBuilder {
    /// The exporter; fails on an endpoint that is not an `http(s)://` URL,
    /// a header that cannot be sent, a variable that cannot be read
    /// ([`ErrorKind::InvalidTarget`](aitrace_model::ErrorKind::InvalidTarget)),
    /// or a CA file that cannot be used
    /// ([`ErrorKind::Tls`](aitrace_model::ErrorKind::Tls)).
    /// Hand it to a logger as an output (`aitrace_core::Output::new`, or
    /// `Builder::output`, which takes any exporter).
    pub fn build(self) -> Result<OtlpExporter, ConfigError> {
        OtlpExporter::new(&self)
    }
}
