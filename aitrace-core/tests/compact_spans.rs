//! Spans without fields are buffered compact (`adapter::Lifecycle`) and
//! made into records when they leave the buffer: what every reader sees
//! must be what the records built at capture were.

use std::borrow::Cow;
use std::time::Duration;

use aitrace_core::adapter::{self, Lifecycle};
use aitrace_core::wire;
use aitrace_core::{
    Background, BufferedLogger, InMemoryOutput, Level, Output, Record, RecordKind, Redactor,
    SpanContext, Value, Verdict,
};

fn logger(
    configure: impl FnOnce(aitrace_core::Builder) -> aitrace_core::Builder,
) -> (BufferedLogger, InMemoryOutput) {
    let (output, memory) = Output::in_memory();
    let log = configure(
        BufferedLogger::builder()
            .output(output)
            .min_level(Level::Trace),
    )
    .build();
    (log, memory)
}

/// Spans of every form: closures, guards, failures, fields, nesting;
/// `name` gives each its name (an owned one is never compact).
fn spans(log: &BufferedLogger, name: fn(&'static str) -> Cow<'static, str>) {
    log.span(name("order")).in_scope(|_| {
        log.span(name("validate"))
            .in_scope(|_| log.info("valid").emit());
        let guard = log.span(name("reserve")).level(Level::Debug).enter();
        log.span(name("lock")).function("db::lock").enter().end();
        drop(guard);
        let _: Result<(), &str> = log.span(name("charge")).try_in_scope(|_| Err("declined"));
        log.span(name("ship"))
            .field("carrier", "ups")
            .in_scope(|span| {
                span.record("tracking", "1Z");
            });
        log.span(String::from("owned_name")).in_scope(|_| {});
    });
}

fn borrowed(name: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(name)
}

fn owned(name: &'static str) -> Cow<'static, str> {
    Cow::Owned(name.to_owned())
}

/// What a record says, without what differs from run to run (ids,
/// stamps, durations).
fn shape(record: &Record) -> String {
    let fields: Vec<String> = record
        .fields()
        .map(|(key, value)| match key {
            wire::DURATION_FIELD => format!("{key}=<duration>"),
            _ => format!("{key}={value:?}"),
        })
        .collect();
    let location = record.location();
    format!(
        "{} {:?} {:?} prov={} end={} logger={:?} at={:?}:{:?} fn={:?} parent={} {}",
        record.event(),
        record.level(),
        record.kind(),
        record.is_provisional(),
        record.is_span_end(),
        record.logger(),
        location.file(),
        location.line(),
        location.function(),
        record.parent_span_id().is_some(),
        fields.join(","),
    )
}

#[test]
fn compact_records_are_the_records_built_at_capture() {
    // Spans with owned names are built as records at capture; a logger
    // with a `before_send` hook makes compact ones records at capture.
    let (compact, _) = logger(|b| b);
    let (built, _) = logger(|b| b);
    let (hooked, _) = logger(|b| b.before_send(|_| Verdict::Keep));
    spans(&compact, borrowed);
    spans(&built, owned);
    spans(&hooked, borrowed);
    // Both forms of order, validate, reserve (`enter`) and lock, and the
    // start of charge; not what has fields, an error or an owned name.
    assert_eq!(compact.compact_len(), 9);
    assert_eq!(built.compact_len(), 0);
    assert_eq!(hooked.compact_len(), 0);
    let shapes = |log: &BufferedLogger| log.records().iter().map(shape).collect::<Vec<_>>();
    assert_eq!(shapes(&compact).len(), 15);
    assert_eq!(shapes(&compact), shapes(&built));
    assert_eq!(shapes(&hooked), shapes(&built));
    for log in [&compact, &built, &hooked] {
        check_tree(&log.records());
    }
}

/// Every `.end` has its `.start` earlier, with the same ids, and a
/// `duration_ms` equal to the difference of their stamps; every event is
/// inside its span.
fn check_tree(records: &[Record]) {
    for (i, end) in records.iter().enumerate() {
        if end.kind() != RecordKind::SpanEnd {
            continue;
        }
        let start = records[..i]
            .iter()
            .find(|r| r.kind() == RecordKind::SpanStart && r.span_id() == end.span_id())
            .unwrap_or_else(|| panic!("no .start before {}", end.event()));
        assert_eq!(start.span_context(), end.span_context());
        let duration = wire::duration_ms(start.timestamp_nanos(), end.timestamp_nanos());
        assert_eq!(
            end.field(wire::DURATION_FIELD),
            Some(&Value::from(duration)),
            "{}",
            end.event()
        );
        // The records of the span, between its two.
        for event in (records.iter()).filter(|r| {
            r.kind() == RecordKind::Event && r.span_id().is_some() && r.span_id() == end.span_id()
        }) {
            let at = event.timestamp_nanos();
            assert!(
                start.timestamp_nanos() <= at && at <= end.timestamp_nanos(),
                "{} outside {}",
                event.event(),
                end.event()
            );
        }
    }
}

#[test]
fn what_leaves_the_buffer_is_what_records_showed_ids_and_stamps_included() {
    for background in [false, true] {
        let (log, memory) = logger(|b| {
            let b = b.record_ids(true);
            if background {
                // Nothing leaves before the flush: `records()` must see it all.
                let hour = Duration::from_secs(3600);
                b.delivery(Background::new().batch_size(1000).flush_interval(hour))
            } else {
                b
            }
        });
        spans(&log, borrowed);
        let before = log.records();
        log.flush_timeout(Duration::from_secs(10)).unwrap();
        assert!(before.iter().all(|r| r.record_id().is_some()));
        assert_eq!(memory.records(), before, "background: {background}");
    }
}

#[test]
fn spans_on_several_threads_keep_each_thread_s_order_through_batches() {
    let (log, memory) = logger(|b| b.delivery(Background::new().batch_size(7)));
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = &log;
            s.spawn(move || {
                for i in 0..200 {
                    log.span("job").in_scope(|_| {
                        log.info("step").field("thread", t).field("i", i).emit();
                    });
                }
            });
        }
    });
    log.flush_timeout(Duration::from_secs(10)).unwrap();
    let records = memory.records();
    assert_eq!(records.len(), 4 * 200 * 3);
    check_tree(&records);
    // Each thread's steps arrive in the order it logged them.
    for t in 0..4 {
        let steps: Vec<&Value> = (records.iter())
            .filter(|r| r.field("thread") == Some(&Value::from(t)))
            .filter_map(|r| r.field("i"))
            .collect();
        let expected: Vec<Value> = (0..200).map(Value::from).collect();
        assert_eq!(steps, expected.iter().collect::<Vec<_>>(), "thread {t}");
    }
}

#[test]
fn a_redactor_that_redacts_duration_ms_still_sees_every_end() {
    let (log, _) = logger(|b| b.redactor(Redactor::default().key("duration_ms")));
    log.span("job").in_scope(|_| {});
    let end = log.records().pop().unwrap();
    assert_eq!(end.event(), "job.end");
    assert_eq!(end.field("duration_ms"), Some(&Value::from("[REDACTED]")));
}

#[test]
fn value_patterns_still_read_span_names() {
    let (log, _) = logger(|b| b.redactor(Redactor::default().with_common_value_patterns()));
    log.span("card 4111 1111 1111 1111").in_scope(|_| {});
    for record in log.records() {
        assert!(!record.event().contains("4111"), "{}", record.event());
    }
}

#[test]
fn a_frontend_s_lifecycle_is_filtered_only_by_its_own_decision() {
    // Like `capture_span_end`: a span kept when it opened writes both.
    let (log, _) = logger(|b| b);
    let span = SpanContext::new_root();
    let started = adapter::now_nanos();
    adapter::capture_lifecycle(&log, Lifecycle::start(Level::Debug, "job", span, started));
    log.set_min_level(Level::Error);
    let end = Lifecycle::end(Level::Debug, "job", span, started, started + 2_000)
        .logger("worker")
        .location(Some("src/worker.rs"), 7)
        .function(Some("worker::run"));
    adapter::capture_lifecycle(&log, end);
    let records = log.records();
    assert_eq!(records.len(), 2);
    let end = &records[1];
    assert_eq!(end.event(), "job.end");
    assert_eq!(end.logger(), Some("worker"));
    assert_eq!(end.location().file(), Some("src/worker.rs"));
    assert_eq!(end.location().line(), Some(7));
    assert_eq!(end.location().function(), Some("worker::run"));
    assert_eq!(end.field("duration_ms"), Some(&Value::from(0.002)));
    assert_eq!(end.kind(), RecordKind::SpanEnd);
}
