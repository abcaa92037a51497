//! The `log::Log` implementation, called directly (no global logger).

use aitrace_core::{BufferedLogger, Level, Output, Value};
use aitrace_log::AitraceLogger;
use aitrace_testkit::memory_logger;
use log::{LevelFilter, Log};

fn logger() -> BufferedLogger {
    memory_logger(Level::Info).0
}

#[test]
fn messages_levels_location_and_typed_key_values() {
    let log = logger();
    let adapter = AitraceLogger::new(log.clone());
    let kvs: [(&str, log::kv::Value<'_>); 6] = [
        ("user_id", log::kv::Value::from("u2")),
        ("total", log::kv::Value::from(469.74)),
        ("items", log::kv::Value::from(3u32)),
        ("delta", log::kv::Value::from(-2i64)),
        ("paid", log::kv::Value::from(false)),
        (
            "addr",
            log::kv::Value::from_display(&std::net::Ipv4Addr::LOCALHOST),
        ),
    ];
    adapter.log(
        &log::Record::builder()
            .args(format_args!("checkout {}", "started"))
            .level(log::Level::Warn)
            .target("shop::checkout")
            .file_static(Some("src/checkout.rs"))
            .line(Some(111))
            .module_path_static(Some("shop::checkout"))
            .key_values(&kvs)
            .build(),
    );
    let record = &log.records()[0];
    assert_eq!(record.event(), "checkout started");
    assert_eq!(record.level(), Level::Warn);
    assert_eq!(record.logger(), Some("shop::checkout"));
    assert_eq!(record.location().file(), Some("src/checkout.rs"));
    assert_eq!(record.location().line(), Some(111));
    assert_eq!(record.location().function(), Some("shop::checkout"));
    assert_eq!(record.field("user_id"), Some(&Value::from("u2")));
    assert_eq!(record.field("total"), Some(&Value::F64(469.74)));
    assert_eq!(record.field("items"), Some(&Value::U64(3)));
    assert_eq!(record.field("delta"), Some(&Value::I64(-2)));
    assert_eq!(record.field("paid"), Some(&Value::Bool(false)));
    assert_eq!(record.field("addr"), Some(&Value::from("127.0.0.1")));
    let keys: Vec<_> = record.fields().map(|(k, _)| k).collect();
    assert_eq!(keys, ["user_id", "total", "items", "delta", "paid", "addr"]);
}

#[test]
fn max_level_and_the_buffer_level_both_filter() {
    let log = logger();
    let adapter = AitraceLogger::builder(log.clone())
        .max_level(LevelFilter::Info)
        .build();
    let meta = |level| log::Metadata::builder().level(level).target("t").build();
    assert!(adapter.enabled(&meta(log::Level::Info)));
    assert!(!adapter.enabled(&meta(log::Level::Debug)));
    for level in [log::Level::Debug, log::Level::Error] {
        adapter.log(
            &log::Record::builder()
                .args(format_args!("x"))
                .level(level)
                .build(),
        );
    }
    assert_eq!(log.records().len(), 1);

    let (output, _memory) = Output::in_memory();
    let strict = BufferedLogger::builder()
        .output(output)
        .min_level(Level::Error)
        .build();
    let adapter = AitraceLogger::new(strict.clone());
    assert_eq!(adapter.max_level(), LevelFilter::Error);
    assert!(!adapter.enabled(&meta(log::Level::Warn)));
}

#[test]
fn records_inside_a_span_carry_its_ids() {
    let log = logger();
    let adapter = AitraceLogger::new(log.clone());
    log.span("request").in_scope(|span| {
        adapter.log(
            &log::Record::builder()
                .args(format_args!("inside"))
                .level(log::Level::Info)
                .build(),
        );
        let record = log
            .records()
            .into_iter()
            .find(|r| r.event() == "inside")
            .unwrap();
        assert_eq!(record.span_context(), Some(&span.context()));
    });
}
