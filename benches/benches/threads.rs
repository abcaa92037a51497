//! Two threads capturing at once against one: events per second for the
//! aitrace core API, the aitrace tracing layer and OpenTelemetry's batch path.
//!
//! `cargo bench -p aitrace-benches --bench threads` (one and two threads
//! alternated, [`RUNS`] runs each; the scaling is given run by run)

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aitrace_benches::{
    Target, core_event, median, otel_batch_provider, print_ratios, tracing_event,
};
use aitrace_core::{BufferedLogger, Output};
use tracing_subscriber::prelude::*;

/// Events per thread and run: some 35 ms of work. The records a run
/// buffers (64 MB a thread) stay in the cache; at 500,000 they did not,
/// and two threads measured the memory's bandwidth (1.5–1.9× one) rather
/// than capture.
const PER_THREAD: usize = 200_000;
const RUNS: usize = 5;
/// Issue 20's targets: two threads at least this many times one, as the
/// median of the runs…
const MEDIAN: f64 = 1.85;
/// …and in every run.
const EVERY_RUN: f64 = 1.6;
const _: () = assert!(RUNS >= aitrace_benches::RUNS);

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

/// Events per second, run by run, with one thread and with two, each
/// thread making PER_THREAD events inside a span, started together; the
/// one- and two-thread runs alternate.
fn measure(
    setup: impl Fn() -> Box<dyn Fn() + Send + Sync>,
    after_run: impl Fn(),
) -> (Vec<f64>, Vec<f64>) {
    let (mut one, mut two) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    // Untimed first: every run starts new threads, which land on other
    // buffer shards; the first runs on a shard grow its queue (page faults,
    // reallocation), which a running program has long paid. Each round
    // starts three threads; the buffer has two shards per core (at least
    // four), and threads take them in turn, so these rounds reach them all.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    for _ in 0..(2 * cores).max(4).div_ceil(3) + 1 {
        run(1, &setup, &after_run);
        run(2, &setup, &after_run);
    }
    for _ in 0..RUNS {
        one.push(run(1, &setup, &after_run));
        two.push(run(2, &setup, &after_run));
    }
    (one, two)
}

/// Events per second in one run with `threads` threads.
fn run(
    threads: usize,
    setup: &impl Fn() -> Box<dyn Fn() + Send + Sync>,
    after_run: &impl Fn(),
) -> f64 {
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
    (threads * PER_THREAD) as f64 / elapsed.as_secs_f64()
}

fn report(name: &str, (one, two): (Vec<f64>, Vec<f64>), target: Option<f64>) {
    let (m1, m2) = (median(&one), median(&two));
    println!(
        "{name:<44} 1 thread {:>6.2} M/s   2 threads {:>6.2} M/s   (medians)",
        m1 / 1e6,
        m2 / 1e6,
    );
    match target {
        Some(target) => {
            let label = format!("two threads / one, {name}");
            print_ratios(&label, &two, &one, Target::AtLeast(target));
            let worst = (two.iter().zip(&one).map(|(b, a)| b / a)).fold(f64::INFINITY, f64::min);
            println!(
                "RATIO {label}, worst run: {worst:.2}; target >= {EVERY_RUN}: {}",
                if worst >= EVERY_RUN { "met" } else { "not met" }
            );
        }
        None => {
            let runs: Vec<String> = two
                .iter()
                .zip(&one)
                .map(|(b, a)| format!("{:.2}", b / a))
                .collect();
            println!(
                "two threads / one, {name}: runs {} (no target)",
                runs.join(" ")
            );
        }
    }
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
    let core = measure(
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
    );
    report("aitrace-core API", core, Some(MEDIAN));

    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(aitrace_tracing::AitraceLayer::new(log.clone())),
    );
    let layer = measure(|| in_tracing(&dispatch), || log.clear());
    report("aitrace-tracing layer", layer, Some(MEDIAN));

    let provider = otel_batch_provider();
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&provider),
        ));
    // The batch thread drains its queue between runs.
    let otel = measure(
        || in_tracing(&dispatch),
        || {
            std::thread::sleep(Duration::from_millis(50));
        },
    );
    report("opentelemetry-appender-tracing (batch)", otel, None);
    let _ = provider.shutdown();
}
