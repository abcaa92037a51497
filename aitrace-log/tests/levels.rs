//! The default level, `RUST_LOG`-style directives from the environment and
//! `set_min_level` moving `log::max_level` (own process: a global logger).
//!
//! The environment cases run this test binary again as a child with the
//! variables set (the `#[ignore]`d `child` test), since a test must not
//! change its own process's environment.

use std::process::Command;

use aitrace_core::{BufferedLogger, Filter, Level, Output};
use log::LevelFilter;

/// Logs one record per (target, level) of interest and prints what was kept.
#[test]
#[ignore = "run by `the_environment_sets_the_filter` as a child process"]
fn child() {
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder().output(output).build();
    aitrace_log::init(log.clone()).unwrap();
    for target in ["app", "app::db", "hyper"] {
        log::trace!(target: target, "{target} trace");
        log::debug!(target: target, "{target} debug");
        log::info!(target: target, "{target} info");
        log::warn!(target: target, "{target} warn");
    }
    log.flush().unwrap();
    println!();
    println!("MAX {}", log::max_level());
    for record in memory.records() {
        println!("KEPT {}", record.event());
    }
}

fn run_child(env: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("RUST_LOG")
    .env_remove("AITRACE_LEVEL")
    .env_remove("LOG_TRG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let max = stdout
        .lines()
        .find_map(|l| l.strip_prefix("MAX "))
        .unwrap_or_else(|| panic!("no MAX line in {stdout}"))
        .to_owned();
    let kept = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("KEPT "))
        .map(str::to_owned)
        .collect();
    (max, kept)
}

#[test]
fn the_environment_sets_the_filter() {
    // Nothing set: info and above, and `log::max_level` says so.
    let (max, kept) = run_child(&[]);
    assert_eq!(max, "INFO");
    assert_eq!(
        kept,
        [
            "app info",
            "app warn",
            "app::db info",
            "app::db warn",
            "hyper info",
            "hyper warn"
        ]
    );

    // RUST_LOG directives, per target.
    let (max, kept) = run_child(&[("RUST_LOG", "info,hyper=warn,app::db=trace")]);
    assert_eq!(max, "TRACE");
    assert_eq!(
        kept,
        [
            "app info",
            "app warn",
            "app::db trace",
            "app::db debug",
            "app::db info",
            "app::db warn",
            "hyper warn"
        ]
    );

    // AITRACE_LEVEL wins over RUST_LOG.
    let (max, kept) = run_child(&[("RUST_LOG", "trace"), ("AITRACE_LEVEL", "warn")]);
    assert_eq!(max, "WARN");
    assert_eq!(kept, ["app warn", "app::db warn", "hyper warn"]);

    // An unreadable value falls back to the default, with a line on stderr;
    // so does a bare word in AITRACE_LEVEL that is not a level (as a
    // RUST_LOG target it would silence every other target).
    for bad in ["info,app=loud", "verbose"] {
        let (max, kept) = run_child(&[("AITRACE_LEVEL", bad)]);
        assert_eq!(max, "INFO", "{bad}");
        assert_eq!(kept.len(), 6, "{bad}: {kept:?}");
    }
}

#[test]
fn set_min_level_and_set_filter_move_log_max_level() {
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .min_level(Level::Info)
        .build();
    aitrace_log::init(log.clone()).unwrap();
    assert_eq!(log::max_level(), LevelFilter::Info);
    log::debug!("not yet");

    log.set_min_level(Level::Debug);
    assert_eq!(log::max_level(), LevelFilter::Debug);
    log::debug!("now kept");

    log.set_filter(Filter::parse("warn,app::db=trace").unwrap());
    assert_eq!(log::max_level(), LevelFilter::Trace);
    log::trace!(target: "app::db::pool", "pool trace");
    log::info!(target: "hyper", "hyper info");
    log::warn!(target: "hyper", "hyper warn");

    log.set_min_level(Level::Error);
    assert_eq!(log::max_level(), LevelFilter::Error);
    log::warn!("too quiet now");

    log.flush().unwrap();
    let kept: Vec<_> = memory
        .records()
        .iter()
        .map(|r| r.event().to_owned())
        .collect();
    assert_eq!(kept, ["now kept", "pool trace", "hyper warn"]);
}
