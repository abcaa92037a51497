//! Spans, lifecycle records, trace contexts and carrying context across threads.

use aitrace_core::{BufferedLogger, InMemoryOutput, Level, Output, Record, SpanContext, context};
use aitrace_testkit::{find, memory_logger};

fn logger() -> (BufferedLogger, InMemoryOutput) {
    memory_logger(Level::Trace)
}

fn validate(log: &BufferedLogger, items: usize) {
    log.span("validate_cart")
        .field("items", items)
        .in_scope(|_| {
            log.info("cart_valid").emit();
        });
}

fn reserve(log: &BufferedLogger) {
    log.span("reserve_inventory").in_scope(|_| {
        log.span("lock_rows")
            .in_scope(|_| log.debug("locked").emit());
    });
}

#[test]
fn nested_spans_across_functions_form_a_tree() {
    let (log, _memory) = logger();
    log.span("order").in_scope(|order| {
        validate(&log, 3);
        reserve(&log);
        assert_eq!(context::current(), Some(order.context()));
    });
    assert_eq!(context::current(), None);
    let records = log.records();
    let order = find(&records, "order.start")
        .span_context()
        .copied()
        .unwrap();
    assert_eq!(order.parent_span_id(), None);
    let validate = find(&records, "validate_cart.start")
        .span_context()
        .copied()
        .unwrap();
    let reserve = find(&records, "reserve_inventory.start")
        .span_context()
        .copied()
        .unwrap();
    let lock = find(&records, "lock_rows.start")
        .span_context()
        .copied()
        .unwrap();
    assert!(
        records
            .iter()
            .all(|r| r.trace_id() == Some(order.trace_id()))
    );
    assert_eq!(validate.parent_span_id(), Some(order.span_id()));
    assert_eq!(reserve.parent_span_id(), Some(order.span_id()));
    assert_eq!(lock.parent_span_id(), Some(reserve.span_id()));
    assert_eq!(
        find(&records, "cart_valid").span_id(),
        Some(validate.span_id())
    );
    assert_eq!(find(&records, "locked").span_id(), Some(lock.span_id()));
    assert_eq!(
        find(&records, "validate_cart.start").field("items"),
        Some(&3usize.into())
    );
}

#[test]
fn lifecycle_records_come_in_order_with_start_provisional_and_end_timed() {
    let (log, _memory) = logger();
    {
        let span = log.span("work").field("job", "j1").enter();
        log.info("inside").emit();
        span.record("rows", 10);
    }
    let records = log.records();
    let events: Vec<_> = records.iter().map(Record::event).collect();
    assert_eq!(events, ["work.start", "inside", "work.end"]);
    assert!(records[0].is_provisional());
    assert!(!records[1].is_provisional() && !records[2].is_provisional());
    assert_eq!(records[0].field("job"), Some(&"j1".into()));
    assert_eq!(records[2].field("rows"), Some(&10.into()));
    assert!(
        matches!(records[2].field("duration_ms"), Some(aitrace_core::Value::F64(ms)) if *ms >= 0.0)
    );
    assert_eq!(records[2].level(), Level::Info);
    assert_eq!(records[0].span_context(), records[2].span_context());
    let json = aitrace_core::Layout::Namespaced.to_json(&records[0]);
    assert!(json.contains(r#""provisional":true"#), "{json}");
}

#[test]
fn failure_marks_the_end_record_as_error() {
    let (log, _memory) = logger();
    let result = log
        .span("charge_payment")
        .try_in_scope(|_| Err::<(), _>("card declined"));
    assert!(result.is_err());
    log.span("manual")
        .in_scope(|span| span.fail("timeout after 3 tries"));
    let records = log.records();
    let end = find(&records, "charge_payment.end");
    assert_eq!(end.level(), Level::Error);
    assert_eq!(end.field("error"), Some(&"card declined".into()));
    assert_eq!(
        find(&records, "manual.end").field("error"),
        Some(&"timeout after 3 tries".into())
    );
    assert_eq!(find(&records, "charge_payment.start").level(), Level::Info);
}

#[test]
fn a_panic_ends_the_span_at_error_and_carries_on() {
    let (log, _memory) = logger();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        log.span("explodes").in_scope(|_| {
            log.info("before").emit();
            panic!("boom");
        })
    }));
    assert!(outcome.is_err(), "the panic carries on");
    assert_eq!(context::current(), None, "the span left the stack");
    let records = log.records();
    let end = find(&records, "explodes.end");
    assert_eq!(end.level(), Level::Error);
    assert_eq!(end.field("error"), Some(&"boom".into()));
}

#[test]
fn a_panic_s_message_is_the_error_of_every_span_it_unwinds_through() {
    let (log, _memory) = logger();
    let unwind = |f: &dyn Fn()| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        assert!(outcome.is_err());
    };
    // A formatted message (a `String` payload), through two spans.
    unwind(&|| {
        log.span("order").in_scope(|_| {
            let _pay = log.span("pay").enter();
            panic!("card {} declined", 7);
        })
    });
    // A payload that is not a string, after a caught panic: nothing stale.
    unwind(&|| log.span("odd").in_scope(|_| std::panic::panic_any(42)));
    // A span that ends normally after a caught panic has no error.
    log.span("calm").in_scope(|_| {
        let _ = std::panic::catch_unwind(|| panic!("caught inside"));
    });
    let records = log.records();
    for (event, error) in [
        ("pay.end", Some("card 7 declined")),
        ("order.end", Some("card 7 declined")),
        ("odd.end", Some("panicked")),
        ("calm.end", None),
    ] {
        let end = find(&records, event);
        assert_eq!(
            end.field("error"),
            error.map(Into::into).as_ref(),
            "{event}"
        );
        let level = if error.is_some() {
            Level::Error
        } else {
            Level::Info
        };
        assert_eq!(end.level(), level, "{event}");
    }
}

/// A span opened and ended by a `Drop` while a panic unwinds is not
/// failed by that panic, which does not unwind through it (user trial);
/// the spans the panic does unwind through, ending after it, still have
/// its message (review: the cleanup span must not forget it).
#[test]
fn a_span_opened_by_a_drop_during_unwinding_is_not_failed_by_that_panic() {
    struct Cleanup<'a>(&'a aitrace_core::BufferedLogger);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            self.0.span("cleanup").in_scope(|_| {});
            let _guard = self.0.span("guarded").enter();
        }
    }
    let (log, _memory) = logger();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        log.span("order").in_scope(|_| {
            let _cleanup = Cleanup(&log);
            panic!("card declined");
        })
    }));
    assert!(outcome.is_err());
    let records = log.records();
    for event in ["cleanup.end", "guarded.end"] {
        let end = find(&records, event);
        assert_eq!(end.field("error"), None, "{event}");
        assert_eq!(end.level(), Level::Info, "{event}");
    }
    let end = find(&records, "order.end");
    assert_eq!(end.field("error"), Some(&"card declined".into()));
    assert_eq!(end.level(), Level::Error);
}

#[test]
fn trace_context_clears_flushes_on_exit_and_on_panic() {
    let (log, memory) = logger();
    log.info("stale").emit();
    let value = log.in_trace_context("checkout", |span| {
        log.info("step").emit();
        span.context()
    });
    let sent = memory.records();
    let events: Vec<_> = sent.iter().map(Record::event).collect();
    assert_eq!(events, ["checkout.start", "step", "checkout.end"]);
    assert_eq!(sent[0].span_context(), Some(&value));
    assert!(log.is_empty());

    memory.clear();
    let guard = log.trace_context("reported");
    log.info("x").emit();
    let report = guard.finish().unwrap();
    assert_eq!(report.records(), 3);

    memory.clear();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        log.in_trace_context("crashes", |_| panic!("boom"))
    }));
    assert!(outcome.is_err());
    let sent = memory.records();
    assert_eq!(sent.len(), 2, "start and end were flushed while unwinding");
    assert_eq!(sent[1].level(), Level::Error);
}

#[test]
fn context_carried_to_another_thread_joins_the_trace() {
    let (log, _memory) = logger();
    log.span("parent").in_scope(|parent| {
        let handed_off = context::current().unwrap();
        let worker = {
            let log = log.clone();
            std::thread::spawn(move || {
                assert_eq!(context::current(), None, "nothing leaks to a new thread");
                let _attached = context::attach(handed_off);
                log.span("worker").in_scope(|_| log.info("working").emit());
            })
        };
        worker.join().unwrap();
        let parent = parent.context();
        let records = log.records();
        let worker = find(&records, "worker.start");
        assert_eq!(worker.trace_id(), Some(parent.trace_id()));
        assert_eq!(worker.parent_span_id(), Some(parent.span_id()));
        assert_eq!(find(&records, "working").span_id(), worker.span_id());
    });
}

#[test]
fn context_follows_a_future() {
    let (log, _memory) = logger();
    let root = SpanContext::new_root();
    let task = context::with_context(
        {
            let log = log.clone();
            async move { log.info("in task").emit() }
        },
        root,
    );
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut task = std::pin::pin!(task);
    assert!(task.as_mut().poll(&mut cx).is_ready());
    assert_eq!(log.records()[0].span_context(), Some(&root));
    use std::future::Future as _;
}

#[test]
fn a_record_outside_any_span_carries_no_ids() {
    let (log, _memory) = logger();
    log.info("alone").emit();
    let record = &log.records()[0];
    assert_eq!(record.span_context(), None);
    let json = aitrace_core::Layout::Namespaced.to_json(record);
    assert!(
        !json.contains("trace_id") && !json.contains("span_id"),
        "{json}"
    );
}

#[test]
fn the_core_api_records_the_call_site() {
    let (log, _memory) = logger();
    let line = line!() + 1;
    log.info("here").emit();
    aitrace_core::warn!(log, "macro", n = 1);
    let records = log.records();
    assert_eq!(records[0].location().file(), Some(file!()));
    assert_eq!(records[0].location().line(), Some(line));
    assert_eq!(records[1].location().line(), Some(line + 1));
    assert_eq!(records[1].location().function(), Some(module_path!()));
}

#[test]
fn directives_filter_records_by_logger_and_module() {
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .filter(aitrace_core::Filter::parse("info,hyper=warn,shop::db=trace").unwrap())
        .build();
    assert_eq!(log.min_level(), Level::Trace, "the most verbose target");
    log.info("hyper info").logger("hyper::client").emit();
    log.warn("hyper warn").logger("hyper::client").emit();
    log.trace("db trace").logger("shop::db::pool").emit();
    log.debug("checkout debug").logger("shop::checkout").emit();
    log.info("checkout info").logger("shop::checkout").emit();
    assert!(log.enabled_for(Level::Trace, "shop::db"));
    assert!(!log.enabled_for(Level::Info, "hyper"));
    log.flush().unwrap();
    let kept: Vec<_> = memory
        .records()
        .iter()
        .map(|r| r.event().to_owned())
        .collect();
    assert_eq!(kept, ["hyper warn", "db trace", "checkout info"]);
    // A level set later replaces the directives.
    log.set_min_level(Level::Warn);
    assert!(!log.enabled_for(Level::Trace, "shop::db"));
    assert_eq!(log.filter().max_level(), Some(Level::Warn));
}

#[test]
fn a_span_the_filter_drops_leaves_no_gap_in_the_tree() {
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .min_level(Level::Info)
        .build();
    log.span("outer").in_scope(|outer| {
        log.span("mid").level(Level::Debug).in_scope(|mid| {
            assert_eq!(
                mid.context(),
                outer.context(),
                "stands for the span around it"
            );
            log.info("inside_mid").emit();
            log.span("inner")
                .in_scope(|_| log.info("inside_inner").emit());
        });
    });
    log.flush().unwrap();
    let records = memory.records();
    let events: Vec<_> = records.iter().map(Record::event).collect();
    assert_eq!(
        events,
        [
            "outer.start",
            "inside_mid",
            "inner.start",
            "inside_inner",
            "inner.end",
            "outer.end"
        ]
    );
    let outer = find(&records, "outer.start")
        .span_context()
        .copied()
        .unwrap();
    let in_mid = find(&records, "inside_mid")
        .span_context()
        .copied()
        .unwrap();
    assert_eq!(in_mid.span_id(), outer.span_id());
    let inner = find(&records, "inner.start")
        .span_context()
        .copied()
        .unwrap();
    assert_eq!(inner.parent_span_id(), Some(outer.span_id()));
}

#[test]
fn a_filter_changed_while_a_span_is_open_leaves_whole_pairs_or_nothing() {
    let (log, _memory) = memory_logger(Level::Info);
    {
        let _raised = log.span("raised").enter();
        log.set_min_level(Level::Warn);
    }
    log.set_min_level(Level::Info);
    {
        let _lowered = log.span("lowered").level(Level::Debug).enter();
        log.set_min_level(Level::Debug);
    }
    let records = log.records();
    let names: Vec<&str> = records.iter().map(|r| r.event()).collect();
    assert_eq!(names, ["raised.start", "raised.end"]);
}
