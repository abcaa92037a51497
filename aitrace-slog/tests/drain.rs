//! The slog drain, alone and composed with slog's combinators.

use aitrace_core::{BufferedLogger, Level, Output, Record, Value};
use aitrace_slog::AitraceDrain;
use aitrace_testkit::memory_logger;
use slog::{Drain, Logger, o};

fn logger() -> BufferedLogger {
    memory_logger(Level::Info).0
}

#[test]
fn messages_levels_location_and_typed_key_values() {
    let log = logger();
    let root = Logger::root(
        AitraceDrain::new(log.clone()).fuse(),
        o!("service" => "shop", "version" => 2),
    );
    let child = root.new(o!("component" => "payments", "version" => 3));
    let line = line!() + 1;
    slog::warn!(child, "gateway slow"; "attempt" => 2u32, "latency" => 0.8, "retry" => true, "card" => "visa", "delta" => -1i64, "note" => %"shown", "none" => None::<u8>);
    slog::crit!(root, "down {}", "hard");
    let records = log.records();
    let warn = &records[0];
    assert_eq!(warn.event(), "gateway slow");
    assert_eq!(warn.level(), Level::Warn);
    assert_eq!(warn.logger(), Some(module_path!()));
    assert_eq!(warn.location().file(), Some(file!()));
    assert_eq!(warn.location().line(), Some(line));
    assert_eq!(warn.field("attempt"), Some(&Value::U64(2)));
    assert_eq!(warn.field("latency"), Some(&Value::F64(0.8)));
    assert_eq!(warn.field("retry"), Some(&Value::Bool(true)));
    assert_eq!(warn.field("card"), Some(&Value::from("visa")));
    assert_eq!(warn.field("delta"), Some(&Value::I64(-1)));
    assert_eq!(warn.field("note"), Some(&Value::from("shown")));
    assert_eq!(warn.field("none"), Some(&Value::Null));
    assert_eq!(warn.field("service"), Some(&Value::from("shop")));
    assert_eq!(warn.field("component"), Some(&Value::from("payments")));
    assert_eq!(
        warn.field("version"),
        Some(&Value::I64(3)),
        "the child's value wins"
    );
    assert_eq!(warn.fields().filter(|(k, _)| *k == "version").count(), 1);
    assert_eq!(records[1].event(), "down hard");
    assert_eq!(records[1].level(), Level::Error);
}

#[test]
fn composes_with_filter_level_and_duplicate() {
    let warn_only = logger();
    let everything = logger();
    let drain = slog::Duplicate::new(
        AitraceDrain::new(warn_only.clone()).filter_level(slog::Level::Warning),
        AitraceDrain::new(everything.clone()),
    )
    .fuse();
    let root = Logger::root(drain, o!());
    slog::info!(root, "info");
    slog::error!(root, "error");
    assert_eq!(
        warn_only
            .records()
            .iter()
            .map(Record::event)
            .collect::<Vec<_>>(),
        ["error"]
    );
    assert_eq!(everything.records().len(), 2);
}

#[test]
fn the_buffer_level_is_the_drain_level() {
    let (output, _memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .min_level(Level::Info)
        .build();
    let drain = AitraceDrain::new(log.clone());
    assert!(!drain.is_enabled(slog::Level::Debug));
    assert!(drain.is_enabled(slog::Level::Critical));
    let root = Logger::root(drain.fuse(), o!());
    slog::debug!(root, "dropped");
    assert!(log.is_empty());
}

#[test]
fn records_inside_a_span_carry_its_ids() {
    let log = logger();
    let root = Logger::root(AitraceDrain::new(log.clone()).fuse(), o!());
    log.span("job").in_scope(|span| {
        slog::info!(root, "inside");
        let inside = log
            .records()
            .into_iter()
            .find(|r| r.event() == "inside")
            .unwrap();
        assert_eq!(inside.span_context(), Some(&span.context()));
    });
}
