//! Issue 20: timestamps agree with durations, under load. Spans nest (core
//! spans and `tracing` spans, in each other) on two threads while a busy
//! thread spins on every core, so the workers are preempted all the time.
//! Then, for what the wire format shows (microseconds):
//! - a span's `.end` stamp minus its `.start` stamp is its `duration_ms`;
//! - every record of a span, and every span inside it, lies in its window;
//! - stamps never go back on a thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aitrace_core::{BufferedLogger, Level, Record, Value};
use aitrace_tracing::AitraceLayer;
use tracing_subscriber::prelude::*;

/// Root spans per worker thread; each holds three more spans and events.
const ROOTS: u64 = 1_500;
const WORKERS: u64 = 2;

/// The microsecond the wire format shows for a record.
fn micros(record: &Record) -> u64 {
    let micros = record.timestamp_nanos() / 1_000;
    // The text the wire writes carries these same microseconds.
    let text = record.timestamp_text();
    let fraction: u64 = text[20..26].parse().unwrap();
    assert_eq!(fraction, micros % 1_000_000, "{text}");
    micros
}

fn work(log: &BufferedLogger, thread: u64) {
    for n in 0..ROOTS {
        // Every tenth root is handed over: made here, written in on
        // another thread, and back here to end, as async tasks move. Its
        // window is two threads' stamps: a clock that differed between
        // them, either way, puts a record outside it.
        if n % 10 == 0 {
            let span = tracing::info_span!("handed_over", thread);
            span.in_scope(|| tracing::info!(thread, "made_here"));
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            let span = std::thread::scope(|scope| {
                scope
                    .spawn(move || {
                        tracing::dispatcher::with_default(&dispatch, || {
                            span.in_scope(|| tracing::info!(thread, "written_there"));
                        });
                        span
                    })
                    .join()
                    .unwrap()
            });
            span.in_scope(|| tracing::info!(thread, "back_here"));
        }
        log.span("request").field("thread", thread).in_scope(|_| {
            log.info("received").field("thread", thread).emit();
            let _handle = tracing::info_span!("handle", thread).entered();
            tracing::info!(thread, n, "handling");
            log.span("query").field("thread", thread).in_scope(|_| {
                let _inner = tracing::info_span!("decode", thread).entered();
                tracing::info!(thread, "decoded");
            });
            log.info("answered").field("thread", thread).emit();
        });
    }
}

#[test]
fn span_stamps_agree_with_durations_and_hold_their_records_under_load() {
    let log = aitrace_testkit::memory_logger(Level::Info).0;
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(AitraceLayer::new(log.clone())));
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let busy: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let workers: Vec<_> = (0..WORKERS)
        .map(|thread| {
            let log = log.clone();
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || work(&log, thread));
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().unwrap();
    }

    let records = log.records();
    assert_eq!(
        records.len() as u64,
        WORKERS * (ROOTS * 12 + ROOTS / 10 * 5),
        "every record kept"
    );
    // Each span's window, from its `.start` and `.end`.
    let mut windows: HashMap<_, (u64, u64, Option<_>)> = HashMap::new();
    for record in &records {
        let context = record.span_context().unwrap();
        if record.event().ends_with(".start") {
            windows.insert(
                context.span_id(),
                (micros(record), 0, context.parent_span_id()),
            );
        }
    }
    for end in records.iter().filter(|r| r.event().ends_with(".end")) {
        let window = windows
            .get_mut(&end.span_context().unwrap().span_id())
            .unwrap();
        window.1 = micros(end);
        let Some(Value::F64(duration_ms)) = end.field("duration_ms") else {
            panic!("{} has no duration", end.event());
        };
        let duration = (duration_ms * 1_000.0).round() as u64;
        assert!(
            window.1 >= window.0,
            "{} ends before it starts",
            end.event()
        );
        let between = window.1 - window.0;
        assert_eq!(
            between,
            duration,
            "{}: .end - .start = {between} µs, duration_ms {duration_ms}",
            end.event()
        );
    }
    // Every record of a span, and every span inside one, within its window.
    for record in &records {
        let context = record.span_context().unwrap();
        let at = micros(record);
        let (start, end, parent) = windows[&context.span_id()];
        assert!(
            start <= at && at <= end,
            "{} at {at} outside {start}..={end}",
            record.event()
        );
        if let Some(parent) = parent.filter(|_| record.event().ends_with(".start")) {
            let (parent_start, parent_end, _) = windows[&parent];
            assert!(
                parent_start <= start && end <= parent_end,
                "span {start}..={end} outside its parent's {parent_start}..={parent_end}"
            );
        }
    }
    // On each thread, in the order they were made, stamps never go back
    // (a handed-over span's records were made on two threads: each is
    // checked in its window above, and left out here).
    let thread_of = |record: &Record| match record.field("thread") {
        Some(Value::U64(n)) => Some(*n),
        Some(Value::I64(n)) => Some(*n as u64),
        _ => None,
    };
    let mut span_thread = HashMap::new();
    for record in &records {
        if let Some(thread) = thread_of(record) {
            span_thread.insert(record.span_context().unwrap().span_id(), thread);
        }
    }
    let mut last = vec![0u64; WORKERS as usize];
    for record in records
        .iter()
        .filter(|r| !r.event().starts_with("handed_over"))
    {
        if record.event() == "written_there" {
            continue;
        }
        let thread = thread_of(record)
            .or_else(|| {
                span_thread
                    .get(&record.span_context().unwrap().span_id())
                    .copied()
            })
            .unwrap();
        let at = record.timestamp_nanos();
        assert!(
            at >= last[thread as usize],
            "{} went back on thread {thread}",
            record.event()
        );
        last[thread as usize] = at;
    }
}
