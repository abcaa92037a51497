//! `slog-async` in front of the drain: records are captured on its worker
//! thread, yet carry the span current where they were logged.

use std::time::Duration;

use aitrace_core::{BufferedLogger, Level, Record, SpanContext, Value, context};
use aitrace_slog::{AitraceDrain, CONTEXT_KEY, CaptureContext};
use aitrace_testkit::{find, memory_logger};
use slog::{Drain, Logger, o};

fn logger() -> BufferedLogger {
    memory_logger(Level::Info).0
}

/// Waits until `log` holds `n` records, for at most five seconds.
fn wait_for(log: &BufferedLogger, n: usize) -> Vec<Record> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while log.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} records arrived",
            log.len()
        );
        std::thread::yield_now();
    }
    log.records()
}

#[test]
fn records_through_slog_async_carry_the_logging_threads_span() {
    let log = logger();
    let worker = slog_async::Async::new(AitraceDrain::new(log.clone()).fuse())
        .build()
        .fuse();
    let root = Logger::root(CaptureContext::new(worker).fuse(), o!("service" => "shop"));
    slog::info!(root, "outside");
    let (outer, inner) = log.span("order").in_scope(|order| {
        slog::info!(root, "in order"; "n" => 1);
        let inner = log.span("charge").in_scope(|charge| {
            slog::warn!(root, "in charge");
            charge.context()
        });
        (order.context(), inner)
    });
    let records = wait_for(&log, 7);
    assert_eq!(find(&records, "outside").span_context(), None);
    assert_eq!(find(&records, "in order").span_context(), Some(&outer));
    assert_eq!(find(&records, "in charge").span_context(), Some(&inner));
    assert_eq!(
        find(&records, "in charge").parent_span_id(),
        Some(outer.span_id())
    );
    let in_order = find(&records, "in order");
    assert_eq!(in_order.field("n"), Some(&Value::I64(1)));
    assert_eq!(in_order.field("service"), Some(&Value::from("shop")));
    assert_eq!(in_order.field(CONTEXT_KEY), None, "not a user field");
    assert_eq!(in_order.fields().count(), 2);
}

/// Calls the drain behind it inside a span of its own, as a worker thread
/// that has one would.
struct InOtherSpan<D>(D, SpanContext);

impl<D: Drain> Drain for InOtherSpan<D> {
    type Ok = D::Ok;
    type Err = D::Err;

    fn log(&self, record: &slog::Record<'_>, values: &slog::OwnedKVList) -> Result<D::Ok, D::Err> {
        let _current = context::attach(self.1);
        self.0.log(record, values)
    }
}

#[test]
fn the_carried_span_wins_over_the_capturing_threads() {
    let log = logger();
    let elsewhere = SpanContext::new_root();
    let drain = InOtherSpan(AitraceDrain::new(log.clone()), elsewhere);
    let root = Logger::root(CaptureContext::new(drain).fuse(), o!());
    let here = log.span("here").in_scope(|span| {
        slog::info!(root, "logged here");
        span.context()
    });
    assert_eq!(
        find(&log.records(), "logged here").span_context(),
        Some(&here)
    );

    // Without `CaptureContext` the capturing thread's span is all there is.
    let root = Logger::root(
        InOtherSpan(AitraceDrain::new(log.clone()), elsewhere).fuse(),
        o!(),
    );
    log.span("here")
        .in_scope(|_| slog::info!(root, "without capture"));
    assert_eq!(
        find(&log.records(), "without capture").span_context(),
        Some(&elsewhere)
    );
}

#[test]
fn a_users_own_value_under_the_key_stays_a_field() {
    let log = logger();
    let root = Logger::root(AitraceDrain::new(log.clone()).fuse(), o!());
    let span = log.span("s").in_scope(|span| {
        slog::info!(root, "mine"; CONTEXT_KEY => "not a span");
        span.context()
    });
    let mine = find(&log.records(), "mine").clone();
    assert_eq!(mine.field(CONTEXT_KEY), Some(&Value::from("not a span")));
    assert_eq!(mine.span_context(), Some(&span));
}

#[test]
fn capture_context_in_front_of_a_synchronous_drain_changes_nothing() {
    let log = logger();
    let root = Logger::root(
        CaptureContext::new(AitraceDrain::new(log.clone())).fuse(),
        o!("k" => 1),
    );
    let (span, line) = log.span("s").in_scope(|span| {
        let line = line!() + 1;
        slog::warn!(root, "sync {}", 1; "x" => "y");
        (span.context(), line)
    });
    slog::info!(root, "outside");
    let records = log.records();
    let sync = find(&records, "sync 1");
    assert_eq!(sync.span_context(), Some(&span));
    assert_eq!(sync.location().line(), Some(line));
    assert_eq!(sync.location().file(), Some(file!()));
    assert_eq!(
        sync.fields().map(|(k, _)| k).collect::<Vec<_>>(),
        ["k", "x"]
    );
    assert_eq!(find(&records, "outside").span_context(), None);
}

/// Holds every record until it is opened (or five seconds pass), so the
/// worker captures them after the span has ended.
struct Gate<D> {
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    drain: D,
}

impl<D: Drain> Drain for Gate<D> {
    type Ok = D::Ok;
    type Err = D::Err;

    fn log(&self, record: &slog::Record<'_>, values: &slog::OwnedKVList) -> Result<D::Ok, D::Err> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.open.load(std::sync::atomic::Ordering::SeqCst)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.drain.log(record, values)
    }
}

#[test]
fn records_through_slog_async_keep_the_time_they_were_logged() {
    let log = logger();
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = Gate {
        open: open.clone(),
        drain: AitraceDrain::new(log.clone()),
    };
    let worker = slog_async::Async::new(gate.fuse()).build().fuse();
    let root = Logger::root(CaptureContext::new(worker).fuse(), o!());
    log.span("job").in_scope(|_| {
        for i in 0..20u64 {
            slog::info!(root, "step"; "i" => i);
        }
    });
    // Only now does the worker get to them.
    std::thread::sleep(Duration::from_millis(20));
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    let records = wait_for(&log, 22);
    let (start, end) = (find(&records, "job.start"), find(&records, "job.end"));
    let steps: Vec<&Record> = records.iter().filter(|r| r.event() == "step").collect();
    assert_eq!(steps.len(), 20);
    for step in steps {
        assert!(
            start.timestamp() <= step.timestamp() && step.timestamp() <= end.timestamp(),
            "a step is stamped outside its span: {:?} not in {:?}..={:?}",
            step.timestamp(),
            start.timestamp(),
            end.timestamp()
        );
        assert!(
            step.field(aitrace_slog::TIME_KEY).is_none(),
            "the carried time is not a field"
        );
    }
}
