//! Two threads capturing at once against one: events per second for the
//! aitrace core API, the aitrace tracing layer and OpenTelemetry's batch path.
//!
//! `cargo bench -p aitrace-benches --bench threads`

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aitrace_benches::otel_batch_provider;
use aitrace_benches::tracing_event;
use aitrace_core::{BufferedLogger, Output};
use tracing_subscriber::prelude::*;

const PER_THREAD: usize = 200_000;
const RUNS: usize = 5;

fn core_event(log: &BufferedLogger) {
    log.info("checkout_started")
        .field("order_id", 42i64)
        .field("user", "u2")
        .field("total", 469.74f64)
        .emit();
}

/// One thread's work: PER_THREAD tracing events inside a span, through `dispatch`.
fn in_tracing(dispatch: &tracing::Dispatch) -> Box<dyn Fn() + Send + Sync> {
    let dispatch = dispatch.clone();
    Box::new(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            let _span = tracing::info_span!("request").entered();
            for _ in 0..PER_THREAD {
                tracing_event();
            }
        });
    })
}

/// Median events per second with `threads` threads each making PER_THREAD
/// events inside a span, started together.
fn measure(
    threads: usize,
    setup: impl Fn() -> Box<dyn Fn() + Send + Sync>,
    after_run: impl Fn(),
) -> f64 {
    let mut rates = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let work: Arc<dyn Fn() + Send + Sync> = Arc::from(setup());
        let barrier = Arc::new(Barrier::new(threads + 1));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (work, barrier) = (work.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    work();
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        let elapsed = started.elapsed();
        after_run();
        rates.push((threads * PER_THREAD) as f64 / elapsed.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[RUNS / 2]
}

fn report(name: &str, one: f64, two: f64) {
    println!(
        "{name:<44} 1 thread {:>6.2} M/s   2 threads {:>6.2} M/s   scaling {:.2}x",
        one / 1e6,
        two / 1e6,
        two / one
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and CI's --no-run probes
    }
    println!(
        "threads: {PER_THREAD} events per thread, median of {RUNS} runs, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let log = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .capacity(4 * PER_THREAD)
        .build();
    let core = |threads| {
        measure(
            threads,
            || {
                let log = log.clone();
                Box::new(move || {
                    log.span("request").in_scope(|_| {
                        for _ in 0..PER_THREAD {
                            core_event(&log);
                        }
                    });
                })
            },
            || log.clear(),
        )
    };
    report("aitrace-core API", core(1), core(2));

    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(aitrace_tracing::AitraceLayer::new(log.clone())),
    );
    let layer = |threads| measure(threads, || in_tracing(&dispatch), || log.clear());
    report("aitrace-tracing layer", layer(1), layer(2));

    let provider = otel_batch_provider();
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider),
        ));
    // The batch thread drains its queue between runs.
    let otel = |threads| {
        measure(
            threads,
            || in_tracing(&dispatch),
            || {
                std::thread::sleep(Duration::from_millis(50));
            },
        )
    };
    report("opentelemetry-appender-tracing (batch)", otel(1), otel(2));
    let _ = provider.shutdown();
}
