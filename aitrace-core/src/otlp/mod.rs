//! The OTLP/HTTP output: events as log records on `/v1/logs`, span
//! lifecycles as spans on `/v1/traces`, to any OpenTelemetry Collector.
//!
//! `config.rs` resolves settings (code, then `OTEL_*`, then defaults),
//! `convert.rs` says what each record becomes (log record or span),
//! `encode.rs` writes the requests (protobuf or JSON) straight from the
//! records, `export.rs` posts them and reads the answers with the
//! `opentelemetry-proto` message types.

mod config;
mod convert;
mod encode;
mod export;

pub use config::{DEFAULT_OTLP_ENDPOINT, DEFAULT_OTLP_TIMEOUT, OtlpOutputBuilder, Protocol};
pub(crate) use config::{Env, parse_target};
pub(crate) use export::OtlpSender;

use crate::error::Result;
use crate::output::Output;

impl OtlpOutputBuilder {
    /// The output; fails on an endpoint that is not an `http(s)://` URL, a
    /// variable that cannot be read, or a CA file that cannot be used.
    pub fn build(self) -> Result<Output> {
        Ok(Output::new(OtlpSender::new(&self)?))
    }
}
