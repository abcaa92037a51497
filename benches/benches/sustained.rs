//! Sustained capture with encoding: one thread emits the standard event
//! through each tracing layer as fast as it can, N times, then flushes; the
//! time per event includes everything the pipeline does with it on both
//! cores. aitrace: background delivery encoding JSON Lines to `/dev/null`,
//! `OverflowPolicy::Block` so nothing is dropped (the producer waits for
//! the encoder). OpenTelemetry: the SDK's batch processor with a do-nothing
//! exporter (it drops what its queue cannot hold: it does less work).
//!
//! `cargo bench -p aitrace-benches --bench sustained` (median of 3 runs
//! each, runs alternated)

use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

use aitrace_benches::{OTEL_EXPORTED, RUNS, Target, median, otel_batch_provider, print_ratios};
use aitrace_core::{Background, BufferedLogger, Output, OverflowPolicy};
use tracing_subscriber::prelude::*;

const EVENTS: u32 = 500_000;

fn emit(dispatch: &tracing::Dispatch) {
    tracing::dispatcher::with_default(dispatch, || {
        let _span = tracing::info_span!("request").entered();
        for _ in 0..EVENTS {
            aitrace_benches::tracing_event();
        }
    });
}

/// ns per event, and the stats line.
fn aitrace() -> (f64, String) {
    let log = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .delivery(Background::new())
        .overflow(OverflowPolicy::Block(Duration::from_secs(30)))
        .flush_timeout(Duration::from_secs(60))
        .try_build()
        .expect("logger");
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(aitrace_tracing::AitraceLayer::new(log.clone())),
    );
    let started = Instant::now();
    emit(&dispatch);
    log.flush().expect("flush");
    let elapsed = started.elapsed();
    let stats = log.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.delivered, u64::from(EVENTS) + 2, "{stats:?}");
    let ns = elapsed.as_nanos() as f64 / f64::from(EVENTS);
    (ns, format!("delivered {}", stats.delivered))
}

fn otel() -> (f64, String) {
    let provider = otel_batch_provider();
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider),
        ));
    let before = OTEL_EXPORTED.load(Ordering::Relaxed);
    let started = Instant::now();
    emit(&dispatch);
    let _ = provider.force_flush();
    let elapsed = started.elapsed();
    let _ = provider.shutdown();
    let exported = OTEL_EXPORTED.load(Ordering::Relaxed) - before;
    (
        elapsed.as_nanos() as f64 / f64::from(EVENTS),
        format!(
            "exported {exported}, dropped {}",
            u64::from(EVENTS).saturating_sub(exported)
        ),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "sustained: {EVENTS} events through each tracing layer, then a flush; {RUNS} runs each, alternated"
    );
    // One pipeline, five times (for a profiler): SUSTAINED_ONLY=aitrace|otel.
    if let Ok(only) = std::env::var("SUSTAINED_ONLY") {
        for _ in 0..5 {
            let ns = match only.as_str() {
                "aitrace" => aitrace().0,
                "otel" => otel().0,
                other => panic!("SUSTAINED_ONLY={other}: unknown"),
            };
            println!("{only}: {ns:.0} ns/event");
        }
        return;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 1..=RUNS {
        let (a, stats) = aitrace();
        let (o, otel_stats) = otel();
        println!(
            "run {run}: aitrace {a:>7.0} ns/event ({stats}), OpenTelemetry {o:>7.0} ns/event ({otel_stats}), ratio {:.2}",
            a / o
        );
        ours.push(a);
        theirs.push(o);
    }
    println!(
        "median: aitrace {:.0} ns/event, OpenTelemetry {:.0} ns/event",
        median(&ours),
        median(&theirs)
    );
    print_ratios(
        "sustained capture + JSON encoding, aitrace / OpenTelemetry batch (no-op exporter)",
        &ours,
        &theirs,
        Target::AtMost(0.70),
    );
}
