//! Logs and spans to an OpenTelemetry Collector (or any OTLP/HTTP receiver:
//! Grafana Alloy, Jaeger, Tempo, Elastic…), configured only by the standard
//! `OTEL_*` variables. `tracing` spans become OTLP spans on `/v1/traces`;
//! events become log records on `/v1/logs` carrying the same trace and span
//! ids, so the backend links each log line to its span.
//!
//! ```sh
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=shop \
//!     cargo run -p aitrace-examples --example otlp
//! # JSON instead of protobuf, an API key, gzip:
//! OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_EXPORTER_OTLP_HEADERS=x-api-key=abc \
//! OTEL_EXPORTER_OTLP_COMPRESSION=gzip cargo run -p aitrace-examples --example otlp
//! ```
//!
//! It prints what was delivered and refused, and exits with status 1 when
//! some record was not delivered.

use std::time::Duration;

use aitrace_core::{Background, BufferedLogger, Output};
use aitrace_tracing::AitraceLayer;
use tracing::{error, info, info_span, warn};
use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `Output::from_target("otlp")` and `LOG_TRG=otlp` make the same output.
    let otlp = Output::otlp_from_env()?;
    eprintln!("sending to {otlp}");
    let log = BufferedLogger::builder()
        .output(otlp)
        .delivery(Background::new())
        .build();
    tracing_subscriber::registry()
        .with(AitraceLayer::new(log.clone()))
        .init();

    for (order, total) in [("o-1", 19.99), ("o-2", 469.74)] {
        let span = info_span!("handle_order", order_id = order);
        let _entered = span.enter();
        info!(total, items = 2, "cart_loaded");
        let charge = info_span!("charge_card", amount = total);
        let _charging = charge.enter();
        if total > 100.0 {
            warn!(total, "large_order");
            error!(reason = "card declined", "payment_failed");
        } else {
            info!("payment_ok");
        }
    }

    let report = log.shutdown(Duration::from_secs(10))?;
    eprintln!("shutdown: {report}");
    // Refused counts whole batches the receiver refused (a 4xx) and records
    // it refused in an accepted request (a partialSuccess).
    let stats = log.stats();
    eprintln!(
        "{} records: {} delivered, {} dropped ({} refused by the receiver), {} retried",
        stats.captured, stats.delivered, stats.dropped, stats.rejected, stats.retried
    );
    if let Some(message) = stats
        .outputs
        .iter()
        .find_map(|o| o.last_rejection.as_deref())
    {
        eprintln!("the receiver said: {message}");
    }
    if stats.delivered != stats.captured {
        return Err(format!(
            "{} of {} records were not delivered",
            stats.captured - stats.delivered,
            stats.captured
        )
        .into());
    }
    Ok(())
}
