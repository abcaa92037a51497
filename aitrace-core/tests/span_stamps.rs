//! Issue 20's three invariants for core spans, in every form and with
//! every way a logger takes lifecycle records in: a span's `.end` stamp
//! minus its `.start` stamp is its `duration_ms`; every record of a span
//! lies in its window; stamps never go back on a thread. And which span a
//! `before_send` hook's own record belongs to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use aitrace_core::redact::Verdict;
use aitrace_core::wire;
use aitrace_core::{
    BufferedLogger, Level, Output, Record, RecordKind, SpanContext, SpanId, Value, context,
};

fn base() -> aitrace_core::Builder {
    BufferedLogger::builder()
        .output(Output::in_memory().0)
        .min_level(Level::Trace)
        .capacity(1_000_000)
}

/// Each span's window, from its `.start` and `.end`.
fn windows(records: &[Record]) -> HashMap<SpanId, (u64, u64)> {
    let mut windows = HashMap::new();
    for r in records {
        let Some(id) = r.span_id() else { continue };
        match r.kind() {
            RecordKind::SpanStart => {
                windows.insert(id, (r.timestamp_nanos(), u64::MAX));
            }
            RecordKind::SpanEnd => windows.get_mut(&id).unwrap().1 = r.timestamp_nanos(),
            _ => {}
        }
    }
    windows
}

fn check(name: &str, records: &[Record]) {
    let windows = windows(records);
    let mut last = 0;
    for r in records {
        let at = r.timestamp_nanos();
        assert!(at >= last, "{name}: {} went back", r.event());
        last = at;
        let (start, end) = windows[&r.span_id().unwrap()];
        assert!(
            start <= at && at <= end,
            "{name}: {} outside its window",
            r.event()
        );
        if r.kind() == RecordKind::SpanEnd {
            assert_eq!(
                r.field(wire::DURATION_FIELD),
                Some(&Value::from(wire::duration_ms(start, end))),
                "{name}: {}",
                r.event()
            );
        }
        if let Some(parent) = r
            .parent_span_id()
            .filter(|_| r.kind() == RecordKind::SpanStart)
        {
            let (parent_start, parent_end) = windows[&parent];
            assert!(
                parent_start <= start && end <= parent_end,
                "{name}: {} outside its parent",
                r.event()
            );
        }
    }
}

#[test]
fn core_span_stamps_hold_for_every_form_and_logger() {
    let loggers = [
        ("compact", base().build()),
        ("record_ids", base().record_ids(true).build()),
        ("hooked", base().before_send(|_| Verdict::Keep).build()),
    ];
    for (name, log) in loggers {
        for _ in 0..2_000 {
            log.span("root").in_scope(|_| {
                log.info("in_root").emit();
                log.span("plain").in_scope(|_| log.info("in_plain").emit());
                let guard = log.span("guard").enter();
                log.info("in_guard").emit();
                drop(guard);
                let _: Result<(), &str> = log.span("failed").try_in_scope(|_| {
                    log.info("in_failed").emit();
                    Err("no")
                });
                log.span("recorded").in_scope(|span| {
                    log.info("in_recorded").emit();
                    span.record("k", 1u64);
                });
                log.span("fielded")
                    .field("f", 1u64)
                    .in_scope(|_| log.info("in_fielded").emit());
            });
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            log.span("panicked").in_scope(|_| {
                log.info("in_panicked").emit();
                panic!("boom")
            })
        }));
        let records = log.records();
        // Per root: six spans (two records each) and six events.
        assert_eq!(records.len(), 2_000 * 18 + 3, "{name}");
        check(name, &records);
    }
}

/// While a hook looks at a span's `.end`, the span is no longer current:
/// a record the hook logs belongs to the parent, inside the parent's
/// window. (It belonged to the span, stamped after its `.end`: outside
/// its window.)
#[test]
fn a_record_a_hook_logs_at_a_span_s_end_belongs_to_the_parent_inside_its_window() {
    static LOG: OnceLock<BufferedLogger> = OnceLock::new();
    // Each `.end` the hook saw, with the span current then.
    type Seen = Vec<(String, Option<SpanContext>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let hook_saw = seen.clone();
    let log = base()
        .before_send(move |record: &mut Record| {
            if record.kind() == RecordKind::SpanEnd {
                let current = context::current();
                hook_saw
                    .lock()
                    .unwrap()
                    .push((record.event().to_owned(), current));
                if let Some(log) = LOG.get() {
                    log.info("logged_by_hook").emit();
                }
            }
            Verdict::Keep
        })
        .build();
    LOG.set(log.clone()).ok();
    let outer = log.span("outer").in_scope(|outer| {
        log.span("inner").in_scope(|_| {});
        outer.context()
    });

    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("inner.end".to_owned(), Some(outer)),
            ("outer.end".to_owned(), None)
        ]
    );
    let records = log.records();
    let hooked: Vec<&Record> = (records.iter())
        .filter(|r| r.event() == "logged_by_hook")
        .collect();
    assert_eq!(hooked.len(), 2);
    assert_eq!(hooked[0].span_context(), Some(&outer));
    let (start, end) = windows(&records)[&outer.span_id()];
    let at = hooked[0].timestamp_nanos();
    assert!(start <= at && at <= end, "{at} outside {start}..={end}");
    // At the root's `.end`, no span is current.
    assert_eq!(hooked[1].span_context(), None);
}
