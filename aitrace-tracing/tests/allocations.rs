//! A span through `AitraceLayer` allocates nothing in steady state: its
//! state lives in the registry's span table, whose maps keep their room,
//! and its lifecycle records are buffered compact (issue 20). Counted on
//! this thread by a counting global allocator, as the `allocs` bench does.

use aitrace_core::{BufferedLogger, Output};
use aitrace_tracing::AitraceLayer;
use tracing_subscriber::prelude::*;

/// Spans per counted round; the buffer is cleared between rounds, uncounted.
const SPANS: usize = 2_000;

fn allocations(mut round: impl FnMut(), clear: impl Fn()) -> u64 {
    // Warm up: the buffer's deques, the table's maps and the thread's
    // stacks reach their working size.
    for _ in 0..3 {
        round();
        clear();
    }
    let mut total = 0;
    for _ in 0..5 {
        total += allocation_counter::measure(&mut round).count_total;
        clear();
    }
    total
}

fn logger() -> BufferedLogger {
    BufferedLogger::builder()
        .output(Output::in_memory().0)
        .build()
}

#[test]
fn a_span_without_fields_allocates_nothing_in_steady_state() {
    let log = logger();
    let subscriber = tracing_subscriber::registry().with(AitraceLayer::new(log.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let allocated = allocations(
            || {
                let _root = tracing::info_span!("root").entered();
                for _ in 0..SPANS {
                    let _child = tracing::info_span!("child").entered();
                }
            },
            || {
                assert_eq!(log.len(), 2 * SPANS + 2, "every span wrote its records");
                log.clear();
            },
        );
        assert_eq!(allocated, 0, "allocations in {} spans", 5 * (SPANS + 1));
    });
}

#[test]
fn nor_does_a_span_under_a_per_layer_filter_or_a_second_aitrace_layer() {
    let (first, second) = (logger(), logger());
    let subscriber = tracing_subscriber::registry()
        .with(
            AitraceLayer::new(first.clone())
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .with(AitraceLayer::new(second.clone()));
    tracing::subscriber::with_default(subscriber, || {
        let allocated = allocations(
            || {
                let _root = tracing::info_span!("root").entered();
                for _ in 0..SPANS {
                    tracing::info_span!("child").in_scope(|| {});
                }
            },
            || {
                for log in [&first, &second] {
                    assert_eq!(log.len(), 2 * SPANS + 2);
                    log.clear();
                }
            },
        );
        assert_eq!(allocated, 0);
    });
}
