//! `init` installs the global logger (own process: one test file, one test).

use aitrace_core::{BufferedLogger, Level, Output};

#[test]
fn init_routes_log_macros_into_the_buffer() {
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder().output(output).build();
    aitrace_log::AitraceLogger::builder(log.clone())
        .max_level(log::LevelFilter::Debug)
        .init()
        .unwrap();
    assert!(
        aitrace_log::init(log.clone()).is_err(),
        "a second init fails"
    );

    let line = line!() + 1;
    log::info!(order_id = "o1", qty = 2; "order placed");
    log::trace!("filtered by max level");
    log::error!(target: "payments", "declined");
    log::logger().flush();

    let records = memory.records();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].event(), "order placed");
    assert_eq!(records[0].location().file(), Some(file!()));
    assert_eq!(records[0].location().line(), Some(line));
    assert_eq!(records[0].logger(), Some(module_path!()));
    assert_eq!(records[1].level(), Level::Error);
    assert_eq!(records[1].logger(), Some("payments"));
}
