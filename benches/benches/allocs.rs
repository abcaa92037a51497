//! Heap allocations per captured event, on the capturing thread, counted by
//! a counting global allocator (`allocation-counter`, thread-local counts):
//! deterministic, unlike the timings. The same standard event as the other
//! benches (a message and three fields, an integer, a short string and a
//! float, inside one active span), 20,000 times after a warm-up; aitrace's
//! buffer is cleared between chunks outside the count, as in `capture`.
//!
//! `cargo bench -p aitrace-benches --bench allocs`

use std::hint::black_box;

use aitrace_benches::otel_batch_provider;
use aitrace_benches::tracing_event;
use aitrace_core::{BufferedLogger, Output};
use tracing_subscriber::prelude::*;

const EVENTS: u64 = 20_000;
const CHUNK: u64 = 4096;

/// Allocations per event made by `event` on this thread, `clear` run
/// between chunks without being counted.
fn per_event(mut event: impl FnMut(), mut clear: impl FnMut()) -> f64 {
    for _ in 0..CHUNK {
        event(); // warm-up: buffers reach their working size
    }
    clear();
    let mut total = 0;
    let mut left = EVENTS;
    while left > 0 {
        let n = left.min(CHUNK);
        total += allocation_counter::measure(|| {
            for _ in 0..n {
                event();
            }
        })
        .count_total;
        clear();
        left -= n;
    }
    total as f64 / EVENTS as f64
}

fn in_span(dispatch: tracing::Dispatch, f: impl FnOnce() -> f64) -> f64 {
    tracing::dispatcher::with_default(&dispatch, || {
        let _span = tracing::info_span!("request").entered();
        f()
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("allocations per event on the capturing thread ({EVENTS} events)");
    let log = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .build();
    let layer = aitrace_tracing::AitraceLayer::new(log.clone());
    let n = in_span(
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        || per_event(tracing_event, || log.clear()),
    );
    println!("{:<45} {n:>6.2}", "aitrace-tracing (AitraceLayer)");

    let provider = otel_batch_provider();
    let bridge = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider);
    let n = in_span(
        tracing::Dispatch::new(tracing_subscriber::registry().with(bridge)),
        || per_event(tracing_event, || {}),
    );
    println!("{:<45} {n:>6.2}", "opentelemetry-appender-tracing (batch)");
    let _ = provider.shutdown();

    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(std::io::sink);
    let n = in_span(
        tracing::Dispatch::new(tracing_subscriber::registry().with(fmt)),
        || per_event(tracing_event, || {}),
    );
    println!("{:<45} {n:>6.2}", "tracing-subscriber fmt().json() to sink");

    let n = per_event(
        || {
            log.info("checkout_started")
                .field("order_id", 42i64)
                .field("user", "u2")
                .field("total", 469.74f64)
                .emit();
        },
        || log.clear(),
    );
    println!("{:<45} {n:>6.2}", "aitrace-core API");
    black_box(&log);
}
