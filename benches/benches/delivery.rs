//! Delivery throughput: records per second that reach a fast HTTP sink on
//! 127.0.0.1 (part of the bench), aitrace (JSON array, gzip off and on)
//! against OpenTelemetry's batch processor with `opentelemetry-otlp`'s
//! HTTP/JSON exporter, and aitrace's own OTLP output against
//! `opentelemetry-otlp` in both encodings, all fed the same event through their tracing layers
//! by one thread at full speed for a fixed time, then flushed.
//!
//! `cargo bench -p aitrace-benches --bench delivery` ([`RUNS`] runs, each
//! trying every configuration in turn; ratios are given run by run)

use std::time::{Duration, Instant};

use aitrace_benches::{RUNS, Sink, Target, median, print_ratios};
use aitrace_core::{Background, BufferedLogger, Output, OverflowPolicy};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
use tracing_subscriber::prelude::*;

const WINDOW: Duration = Duration::from_secs(3);

struct Run {
    emitted: u64,
    received: u64,
    elapsed: Duration,
}

/// Emits the bench event for WINDOW through `dispatch`, then calls `flush`.
fn drive(sink: &Sink, dispatch: &tracing::Dispatch, flush: impl FnOnce()) -> Run {
    let before = sink.records();
    let started = Instant::now();
    let mut emitted = 0u64;
    tracing::dispatcher::with_default(dispatch, || {
        let _span = tracing::info_span!("request").entered();
        while started.elapsed() < WINDOW {
            for _ in 0..256 {
                aitrace_benches::tracing_event();
            }
            emitted += 256;
        }
    });
    flush();
    let elapsed = started.elapsed();
    // The sink counts a request once it has read it; let the last ones land.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut received = sink.records() - before;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = sink.records() - before;
        if now == received {
            break;
        }
        received = now;
    }
    Run {
        emitted,
        received,
        elapsed,
    }
}

fn aitrace(sink: &Sink, gzip: bool) -> Run {
    let output = Output::http_builder(&format!("{}/api/ingest", sink.base))
        .gzip(gzip)
        .build()
        .expect("url");
    aitrace_to(sink, output)
}

fn aitrace_otlp(sink: &Sink, protocol: aitrace_core::Protocol) -> Run {
    let output = Output::otlp_builder()
        .endpoint(&sink.base)
        .protocol(protocol)
        .build()
        .expect("url");
    aitrace_to(sink, Output::new(output))
}

fn aitrace_to(sink: &Sink, output: Output) -> Run {
    let log = BufferedLogger::builder()
        .output(output)
        .delivery(
            Background::new()
                .batch_size(512)
                .flush_interval(Duration::from_millis(100)),
        )
        .overflow(OverflowPolicy::Block(Duration::from_secs(10)))
        .flush_timeout(Duration::from_secs(60))
        .try_build()
        .expect("logger");
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(aitrace_tracing::AitraceLayer::new(log.clone())),
    );
    let run = drive(sink, &dispatch, || {
        log.flush().expect("flush");
    });
    let stats = log.stats();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    run
}

fn otel(sink: &Sink, protocol: Protocol) -> Run {
    let exporter = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{}/v1/logs", sink.base))
        .build()
        .expect("exporter");
    let processor = BatchLogProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_export_batch_size(512)
                .with_max_queue_size(65_536)
                .with_scheduled_delay(Duration::from_millis(100))
                .build(),
        )
        .build();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider),
        ));
    let run = drive(sink, &dispatch, || {
        let _ = provider.force_flush();
    });
    let _ = provider.shutdown();
    run
}

/// Records per second the sink received.
fn rate(run: &Run) -> f64 {
    run.received as f64 / run.elapsed.as_secs_f64()
}

fn print_run(name: &str, run: &Run) {
    println!(
        "  {name:<40} {:>8.0} records/s delivered   ({} emitted, {} received in {:.2}s)",
        rate(run),
        run.emitted,
        run.received,
        run.elapsed.as_secs_f64()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "delivery: one thread emitting for {WINDOW:?}, then a flush; {RUNS} runs of every configuration"
    );
    let sink = Sink::start();
    // One configuration, once (for a profiler): DELIVERY_ONLY=http|gzip|
    // otel-json|otlp-json|otlp-proto|otel-proto.
    if let Ok(only) = std::env::var("DELIVERY_ONLY") {
        let run = match only.as_str() {
            "http" => aitrace(&sink, false),
            "gzip" => aitrace(&sink, true),
            "otel-json" => otel(&sink, Protocol::HttpJson),
            "otel-proto" => otel(&sink, Protocol::HttpBinary),
            "otlp-json" => aitrace_otlp(&sink, aitrace_core::Protocol::HttpJson),
            "otlp-proto" => aitrace_otlp(&sink, aitrace_core::Protocol::HttpProtobuf),
            other => panic!("DELIVERY_ONLY={other}: unknown"),
        };
        print_run(&only, &run);
        return;
    }
    type Config<'a> = (&'static str, Box<dyn Fn() -> Run + 'a>);
    let configs: Vec<Config<'_>> = vec![
        ("aitrace HTTP JSON", Box::new(|| aitrace(&sink, false))),
        (
            "aitrace HTTP JSON + gzip",
            Box::new(|| aitrace(&sink, true)),
        ),
        (
            "OpenTelemetry batch + OTLP/HTTP JSON",
            Box::new(|| otel(&sink, Protocol::HttpJson)),
        ),
        (
            "aitrace OTLP/HTTP JSON",
            Box::new(|| aitrace_otlp(&sink, aitrace_core::Protocol::HttpJson)),
        ),
        (
            "aitrace OTLP/HTTP protobuf",
            Box::new(|| aitrace_otlp(&sink, aitrace_core::Protocol::HttpProtobuf)),
        ),
        (
            "OpenTelemetry batch + OTLP/HTTP protobuf",
            Box::new(|| otel(&sink, Protocol::HttpBinary)),
        ),
    ];
    let mut rates = vec![Vec::new(); configs.len()];
    for run in 1..=RUNS {
        println!("run {run}:");
        for ((name, config), rates) in configs.iter().zip(&mut rates) {
            let run = config();
            print_run(name, &run);
            rates.push(rate(&run));
        }
    }
    println!("medians:");
    for ((name, _), rates) in configs.iter().zip(&rates) {
        println!("  {name:<40} {:>8.0} records/s", median(rates));
    }
    let [plain, gzip, otel_json, ours_json, ours_proto, otel_proto] = &rates[..] else {
        unreachable!("six configurations")
    };
    for (label, ours, theirs, target) in [
        (
            "delivery, aitrace HTTP JSON / OpenTelemetry OTLP/HTTP JSON",
            plain,
            otel_json,
            3.0,
        ),
        (
            "delivery, aitrace HTTP JSON + gzip / OpenTelemetry OTLP/HTTP JSON",
            gzip,
            otel_json,
            3.0,
        ),
        (
            "OTLP output, aitrace / opentelemetry-otlp, JSON",
            ours_json,
            otel_json,
            2.0,
        ),
        (
            "OTLP output, aitrace / opentelemetry-otlp, protobuf",
            ours_proto,
            otel_proto,
            2.0,
        ),
    ] {
        print_ratios(label, ours, theirs, Target::AtLeast(target));
    }
}
