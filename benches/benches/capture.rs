#![allow(missing_docs)] // criterion_group! makes undocumented items
//! Capture cost per event on the calling thread: the same INFO event (a
//! message and three fields: an integer, a short string, a float) inside one
//! active span, through each pipeline.
//!
//! `cargo bench -p aitrace-benches --bench capture` runs criterion's
//! groups, then the ratio the targets are stated in: the tracing layer
//! against OpenTelemetry's appender and batch processor, alternated
//! [`RUNS`] times in this one process (`-- ratio` runs only that; a
//! criterion filter skips it, and so does `cargo test`, which runs the
//! groups once each as a check).

use std::hint::black_box;
use std::time::Duration;

use aitrace_benches::{
    RUNS, Target, core_event, otel_batch_provider, print_ratios, timed_chunks, tracing_event,
};
use aitrace_core::{BufferedLogger, Output, Redactor};
use criterion::{Criterion, criterion_group};
use slog::Drain;
use tracing_subscriber::prelude::*;

/// Events captured between two clears of an aitrace buffer (outside timing).
const CHUNK: u64 = 4096;

fn aitrace_logger() -> BufferedLogger {
    // A file output that is never flushed here: the buffer is cleared
    // between timed chunks, so only capturing is measured.
    BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .build()
}

/// Times `iters` events in chunks, clearing the aitrace buffer between them.
fn timed_in_chunks(log: &BufferedLogger, iters: u64, event: impl FnMut()) -> Duration {
    timed_chunks(iters, CHUNK, event, || log.clear())
}

/// The capture ratio, run by run: each pipeline emits the standard event
/// inside a span, [`RATIO_EVENTS`] timed after a tenth as many untimed, in
/// chunks (the aitrace buffer is cleared between chunks, untimed);
/// pipelines alternated.
fn capture_ratio() {
    const RATIO_EVENTS: u64 = 2_000_000;
    let log = aitrace_logger();
    let ours = tracing::Dispatch::new(
        tracing_subscriber::registry().with(aitrace_tracing::AitraceLayer::new(log.clone())),
    );
    let provider = otel_batch_provider();
    let theirs =
        tracing::Dispatch::new(tracing_subscriber::registry().with(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider),
        ));
    let ns_per_event = |dispatch: &tracing::Dispatch| {
        tracing::dispatcher::with_default(dispatch, || {
            let _span = tracing::info_span!("request").entered();
            timed_chunks(RATIO_EVENTS / 10, CHUNK, tracing_event, || log.clear());
            let took = timed_chunks(RATIO_EVENTS, CHUNK, tracing_event, || log.clear());
            took.as_nanos() as f64 / RATIO_EVENTS as f64
        })
    };
    let (mut a, mut o) = (Vec::new(), Vec::new());
    for run in 1..=RUNS {
        a.push(ns_per_event(&ours));
        o.push(ns_per_event(&theirs));
        println!(
            "capture run {run}: aitrace-tracing {:.0} ns/event, opentelemetry-appender-tracing (batch) {:.0} ns/event",
            a[run - 1],
            o[run - 1]
        );
    }
    print_ratios(
        "capture, aitrace-tracing / OpenTelemetry appender + batch",
        &a,
        &o,
        Target::AtMost(0.30),
    );
    let _ = provider.shutdown();
}

struct NoopLayer;
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoopLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        black_box(event);
    }
}

fn tracing_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracing");

    let log = aitrace_logger();
    let subscriber =
        tracing_subscriber::registry().with(aitrace_tracing::AitraceLayer::new(log.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("request").entered();
        group.bench_function("aitrace-tracing", |b| {
            b.iter_custom(|iters| timed_in_chunks(&log, iters, tracing_event));
        });
    });

    let provider = otel_batch_provider();
    let subscriber = tracing_subscriber::registry()
        .with(opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider));
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("request").entered();
        group.bench_function("opentelemetry-appender-tracing (batch)", |b| {
            b.iter(tracing_event)
        });
    });
    let _ = provider.shutdown();

    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::sink),
    );
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("request").entered();
        group.bench_function("tracing-subscriber fmt().json() to sink", |b| {
            b.iter(tracing_event)
        });
    });

    let subscriber = tracing_subscriber::registry().with(NoopLayer);
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("request").entered();
        group.bench_function("do-nothing layer (floor)", |b| b.iter(tracing_event));
    });
    group.finish();
}

fn log_record(f: impl FnOnce(&log::Record<'_>)) {
    let kvs: [(&str, log::kv::Value<'_>); 3] = [
        ("order_id", log::kv::Value::from(42i64)),
        ("user", log::kv::Value::from("u2")),
        ("total", log::kv::Value::from(469.74f64)),
    ];
    f(&log::Record::builder()
        .args(format_args!("checkout_started"))
        .level(log::Level::Info)
        .target("bench")
        .file_static(Some(file!()))
        .line(Some(line!()))
        .module_path_static(Some(module_path!()))
        .key_values(&kvs)
        .build());
}

fn log_benches(c: &mut Criterion) {
    use log::Log;
    let mut group = c.benchmark_group("log");

    let log = aitrace_logger();
    let adapter = aitrace_log::AitraceLogger::new(log.clone());
    log.span("request").in_scope(|_| {
        group.bench_function("aitrace-log", |b| {
            b.iter_custom(|iters| timed_in_chunks(&log, iters, || log_record(|r| adapter.log(r))));
        });
    });

    let provider = otel_batch_provider();
    let bridge = opentelemetry_appender_log::OpenTelemetryLogBridge::new(&provider);
    {
        use opentelemetry::trace::{Tracer, TracerProvider as _};
        let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .build()
            .tracer("bench");
        tracer.in_span("request", |_| {
            group.bench_function("opentelemetry-appender-log (batch)", |b| {
                b.iter(|| log_record(|r| bridge.log(r)));
            });
        });
    }
    let _ = provider.shutdown();
    group.finish();
}

fn slog_event(logger: &slog::Logger) {
    slog::info!(logger, "checkout_started"; "order_id" => 42i64, "user" => "u2", "total" => 469.74f64);
}

fn slog_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("slog");

    let log = aitrace_logger();
    let logger = slog::Logger::root(
        aitrace_slog::AitraceDrain::new(log.clone()).fuse(),
        slog::o!(),
    );
    log.span("request").in_scope(|_| {
        group.bench_function("aitrace-slog", |b| {
            b.iter_custom(|iters| timed_in_chunks(&log, iters, || slog_event(&logger)));
        });
    });

    let json = slog_json::Json::default(std::io::sink()).fuse();
    let drain = slog_async::Async::new(json).chan_size(4096).build().fuse();
    let logger = slog::Logger::root(drain, slog::o!("span" => "request"));
    group.bench_function("slog-async + slog-json to sink", |b| {
        b.iter(|| slog_event(&logger))
    });
    group.finish();
}

fn core_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");
    // The default logger redacts sensitive keys; these two show what
    // turning that off, and turning value patterns on, changes.
    for (name, redactor) in [
        ("aitrace-core API, Redactor::none()", Redactor::none()),
        (
            "aitrace-core API, common value patterns",
            Redactor::default().with_common_value_patterns(),
        ),
    ] {
        let log = BufferedLogger::builder()
            .output(Output::file("/dev/null"))
            .redactor(redactor)
            .build();
        log.span("request").in_scope(|_| {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| timed_in_chunks(&log, iters, || core_event(&log)));
            });
        });
    }
    let log = aitrace_logger();
    log.span("request").in_scope(|_| {
        group.bench_function("aitrace-core API", |b| {
            b.iter_custom(|iters| timed_in_chunks(&log, iters, || core_event(&log)));
        });
        group.bench_function("filtered out (below min level)", |b| {
            log.set_min_level(aitrace_core::Level::Warn);
            b.iter(|| core_event(&log));
            log.set_min_level(aitrace_core::Level::Trace);
        });
        group.bench_function("filtered out, event! macro", |b| {
            log.set_min_level(aitrace_core::Level::Warn);
            b.iter(|| {
                aitrace_core::info!(
                    log,
                    "checkout_started",
                    order_id = 42i64,
                    user = "u2",
                    total = 469.74f64
                );
            });
            log.set_min_level(aitrace_core::Level::Trace);
        });
    });
    retention_benches(&mut group);
    group.finish();
}

/// Retention by outcome (issue 21): the standard event at `info` in a span
/// (shipped: it passes the holder on its way to the buffer) next to the
/// same event at `debug` (held with its trace; each chunk's trace then
/// ends well and its held records are discarded, outside the timing).
fn retention_benches(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use aitrace_core::retention::Retention;
    let log = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .min_level(aitrace_core::Level::Debug)
        .retention(Retention::new().max_bytes(usize::MAX))
        .build();
    group.bench_function("aitrace-core API, retention on, shipped (info)", |b| {
        b.iter_custom(|iters| {
            let root = std::cell::RefCell::new(Some(log.span("request").enter()));
            let took = timed_in_chunks(&log, iters, || core_event(&log));
            root.borrow_mut().take();
            log.clear();
            took
        });
    });
    group.bench_function("aitrace-core API, retention on, held (debug)", |b| {
        b.iter_custom(|iters| {
            let mut root = Some(log.span("request").enter());
            let took = timed_chunks(
                iters,
                CHUNK,
                || debug_event(&log),
                || {
                    // The chunk's trace ends well: its records are discarded.
                    root.take();
                    log.clear();
                    root = Some(log.span("request").enter());
                },
            );
            root.take();
            log.clear();
            took
        });
    });
    // The memory a held record takes, against its JSON size.
    let root = log.span("request").enter();
    for _ in 0..10_000 {
        debug_event(&log);
    }
    let stats = log.stats();
    drop(root);
    let json = {
        let record = aitrace_core::Record::builder(aitrace_core::Level::Debug, "checkout_started")
            .field("order_id", 42i64)
            .field("user", "u2")
            .field("total", 469.74f64)
            .build();
        let mut line = Vec::new();
        aitrace_core::output::Layout::default().write_lines(&mut line, [&record]);
        line.len()
    };
    println!(
        "retention: {} bytes held per standard debug event (its JSON line: {json} bytes)",
        stats.held_bytes / stats.held.max(1)
    );
}

/// The standard event at `debug`.
fn debug_event(log: &BufferedLogger) {
    log.debug("checkout_started")
        .field("order_id", 42i64)
        .field("user", "u2")
        .field("total", 469.74f64)
        .emit();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = tracing_benches, log_benches, slog_benches, core_benches
}
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only_ratio = args.iter().any(|a| a == "ratio");
    // `cargo bench` passes `--bench`; `cargo test` does not.
    let benching = args.iter().any(|a| a == "--bench");
    let filtered = args.iter().any(|a| !a.starts_with('-'));
    if !only_ratio {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    if only_ratio || (benching && !filtered) {
        capture_ratio();
    }
}
