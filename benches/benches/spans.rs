//! What a span costs (issue 20): roots of [`CHILDREN`] child spans with no
//! fields, per child span, in five pipelines run side by side in one
//! process, alternated run by run ([`RUNS`] runs):
//!
//! - fastrace 0.7 (`LocalSpan` under a local parent) with a reporter that
//!   drops what it is handed;
//! - `tracing`'s registry with a layer that does nothing;
//! - an aitrace core span (`log.span("child").in_scope(..)`), buffer only
//!   (cleared between roots, not timed);
//! - an `AitraceLayer` span (`info_span!("child").entered()`), the same;
//! - tracing-opentelemetry 0.34 with the SDK's batch span processor and an
//!   exporter that drops every batch.
//!
//! Then the heap allocations per span on the capturing thread, counted as
//! the `allocs` bench counts them for events.
//!
//! `cargo bench -p aitrace-benches --bench spans`; `SPANS_PROFILE=core`
//! (or `layer`, `registry`, `fastrace`) runs only that pipeline, for `perf record`,
//! `SPANS_ROOTS` roots of it (10,000 by default; fewer for
//! `valgrind --tool=callgrind`, which counts instructions).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aitrace_benches::{RUNS, Target, median, print_ratios};
use aitrace_core::{BufferedLogger, Output};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::prelude::*;

/// Child spans under each root.
const CHILDREN: u64 = 1_000;
/// Roots timed per pipeline and run (after a tenth as many untimed).
const ROOTS: u64 = 300;

/// A `tracing` layer that does nothing: the registry's own cost.
struct NoopLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for NoopLayer {}

/// A fastrace reporter that drops what it is handed.
struct DropReporter;

impl fastrace::collector::Reporter for DropReporter {
    fn report(&mut self, spans: Vec<fastrace::prelude::SpanRecord>) {
        drop(black_box(spans));
    }
}

/// An OpenTelemetry span exporter that drops every batch.
#[derive(Debug)]
struct DropSpans;

impl opentelemetry_sdk::trace::SpanExporter for DropSpans {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        drop(black_box(batch));
        Ok(())
    }
}

/// Nanoseconds per child span: `roots` roots, each running `root` (which
/// makes [`CHILDREN`] children), timed; `between` runs after each root,
/// untimed.
fn per_span(roots: u64, mut root: impl FnMut(), mut between: impl FnMut()) -> f64 {
    let mut total = Duration::ZERO;
    for _ in 0..roots {
        let started = Instant::now();
        root();
        total += started.elapsed();
        between();
    }
    total.as_nanos() as f64 / (roots * CHILDREN) as f64
}

/// The pipelines, each a function of how many roots to time.
struct Pipelines {
    log: BufferedLogger,
    registry: tracing::Dispatch,
    layer: tracing::Dispatch,
    otel: tracing::Dispatch,
}

impl Pipelines {
    fn new() -> Self {
        fastrace::set_reporter(DropReporter, fastrace::collector::Config::default());
        let log = BufferedLogger::builder()
            .output(Output::file("/dev/null"))
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(DropSpans)
            .build();
        Pipelines {
            registry: tracing::Dispatch::new(tracing_subscriber::registry().with(NoopLayer)),
            layer: tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(aitrace_tracing::AitraceLayer::new(log.clone())),
            ),
            otel: tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
            ),
            log,
        }
    }

    fn fastrace(&self, roots: u64) -> f64 {
        use fastrace::prelude::*;
        per_span(
            roots,
            || {
                let root = Span::root("root", SpanContext::random());
                let _parent = root.set_local_parent();
                for _ in 0..CHILDREN {
                    let _child = LocalSpan::enter_with_local_parent("child");
                }
            },
            || {},
        )
    }

    fn tracing(&self, dispatch: &tracing::Dispatch, roots: u64) -> f64 {
        tracing::dispatcher::with_default(dispatch, || {
            per_span(
                roots,
                || {
                    let _root = tracing::info_span!("root").entered();
                    for _ in 0..CHILDREN {
                        let _child = tracing::info_span!("child").entered();
                    }
                },
                || self.log.clear(),
            )
        })
    }

    fn core(&self, roots: u64) -> f64 {
        let log = &self.log;
        per_span(
            roots,
            || {
                log.span("root").in_scope(|_| {
                    for _ in 0..CHILDREN {
                        log.span("child").in_scope(|_| {});
                    }
                })
            },
            || log.clear(),
        )
    }

    /// One run of each, in turn: ns per span, in the order of [`ROWS`].
    fn run(&self) -> [f64; 5] {
        // A tenth as many roots untimed, then ROOTS timed.
        let warmed = |pipeline: &dyn Fn(u64) -> f64| {
            pipeline(ROOTS / 10);
            pipeline(ROOTS)
        };
        let fastrace = warmed(&|n| self.fastrace(n));
        let registry = warmed(&|n| self.tracing(&self.registry, n));
        let core = warmed(&|n| self.core(n));
        let layer = warmed(&|n| self.tracing(&self.layer, n));
        let otel = warmed(&|n| self.tracing(&self.otel, n));
        [fastrace, registry, core, layer, otel]
    }
}

const ROWS: [&str; 5] = [
    "fastrace, reporter that drops",
    "tracing registry, no-op layer",
    "aitrace core span, buffer only",
    "aitrace AitraceLayer span, buffer only",
    "tracing-opentelemetry, batch processor, no-op exporter",
];

/// Heap allocations per child span on this thread, `root` making
/// [`CHILDREN`] of them, `between` not counted.
fn allocations(mut root: impl FnMut(), mut between: impl FnMut()) -> f64 {
    root(); // warm-up: buffers reach their working size
    between();
    const COUNTED: u64 = 20;
    let mut total = 0;
    for _ in 0..COUNTED {
        total += allocation_counter::measure(&mut root).count_total;
        between();
    }
    total as f64 / (COUNTED * CHILDREN) as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let pipelines = Pipelines::new();
    // For a profiler: one pipeline only.
    if let Ok(only) = std::env::var("SPANS_PROFILE") {
        // The clock calibrated first, outside what a profiler looks at.
        aitrace_core::adapter::now_nanos();
        // `SPANS_ROOTS` roots (fewer for callgrind, which counts instructions).
        let roots = (std::env::var("SPANS_ROOTS").ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        let ns = match only.as_str() {
            "fastrace" => pipelines.fastrace(roots),
            "core" => pipelines.core(roots),
            "registry" => pipelines.tracing(&pipelines.registry, roots),
            "layer" => pipelines.tracing(&pipelines.layer, roots / 2),
            other => panic!("SPANS_PROFILE={other}: fastrace, registry, core or layer"),
        };
        println!("{only}: {ns:.0} ns per span");
        return;
    }
    println!(
        "ns per child span ({ROOTS} roots of {CHILDREN} per pipeline and run, {RUNS} runs alternated)"
    );
    // A whole round first, not counted: fastrace's first run in a process
    // is half as fast as its later ones, whatever its own warm-up.
    pipelines.run();
    let runs: Vec<[f64; 5]> = (0..RUNS).map(|_| pipelines.run()).collect();
    for (i, row) in ROWS.iter().enumerate() {
        let values: Vec<f64> = runs.iter().map(|run| run[i]).collect();
        let shown: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
        println!(
            "{row:<56} runs {}, median {:.0}",
            shown.join(" "),
            median(&values)
        );
    }
    let column = |i: usize| -> Vec<f64> { runs.iter().map(|run| run[i]).collect() };
    print_ratios(
        "core span / fastrace",
        &column(2),
        &column(0),
        Target::AtMost(2.0),
    );
    print_ratios(
        "layer span / tracing-opentelemetry",
        &column(3),
        &column(4),
        Target::AtMost(0.25),
    );
    print_ratios(
        "layer span / registry with a no-op layer",
        &column(3),
        &column(1),
        Target::AtMost(2.0),
    );

    println!("allocations per child span on the capturing thread");
    let log = &pipelines.log;
    let core = allocations(
        || {
            log.span("root").in_scope(|_| {
                for _ in 0..CHILDREN {
                    log.span("child").in_scope(|_| {});
                }
            })
        },
        || log.clear(),
    );
    println!("  aitrace core span: {core:.2}");
    let layer = tracing::dispatcher::with_default(&pipelines.layer, || {
        allocations(
            || {
                let _root = tracing::info_span!("root").entered();
                for _ in 0..CHILDREN {
                    let _child = tracing::info_span!("child").entered();
                }
            },
            || log.clear(),
        )
    });
    println!("  aitrace AitraceLayer span: {layer:.2}");
    let registry = tracing::dispatcher::with_default(&pipelines.registry, || {
        allocations(
            || {
                let _root = tracing::info_span!("root").entered();
                for _ in 0..CHILDREN {
                    let _child = tracing::info_span!("child").entered();
                }
            },
            || {},
        )
    });
    println!("  tracing registry, no-op layer: {registry:.2}");
}
