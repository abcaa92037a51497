//! Which delivery a logger gets, and with which settings: from
//! `Builder::delivery` (`Direct`, `Background`), from `AITRACE_BACKGROUND`
//! and the other variables when code did not choose, and from the 0.1
//! spelling (`background(bool)` and each mode's setters on the builder),
//! which must behave as it did in 0.1.
//!
//! The environment is global to a process, so each case that reads it runs
//! in a child process of this test binary (the ignored test `child`).

#![allow(deprecated)] // the 0.1 spelling is under test here

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aitrace_core::export::{Accepted, Batch, Export};
use aitrace_core::{
    Background, BreakerPolicy, BufferedLogger, Builder, Direct, Error, OnFailure, Output,
    RetryPolicy,
};

const WAIT: Duration = Duration::from_secs(20);
const HOUR: Duration = Duration::from_secs(3600);
/// The variables a logger reads for its delivery (and `LOG_TRG`).
const VARIABLES: [&str; 5] = [
    "AITRACE_BACKGROUND",
    "AITRACE_BATCH_SIZE",
    "AITRACE_FLUSH_INTERVAL_MS",
    "AITRACE_SPOOL_DIR",
    "LOG_TRG",
];

/// What an exporter was asked to do, and how it answers.
#[derive(Default)]
struct Seen {
    /// Per call: the calling thread's name and the batch's size.
    calls: Mutex<Vec<(String, usize)>>,
    /// The error every call answers with, if any.
    answer: Mutex<Option<fn() -> Error>>,
}

struct Recorder(Arc<Seen>);

impl Export for Recorder {
    fn name(&self) -> String {
        "recorder".to_owned()
    }

    fn export(&self, batch: &Batch<'_>) -> Result<Accepted, Error> {
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.0.calls.lock().unwrap().push((thread, batch.len()));
        match *self.0.answer.lock().unwrap() {
            Some(err) => Err(err()),
            None => Ok(Accepted::all()),
        }
    }
}

fn recorder() -> (Output, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    (Output::new(Recorder(seen.clone())), seen)
}

fn builder(output: Output) -> Builder {
    BufferedLogger::builder()
        .output(output)
        .flush_timeout(WAIT)
        .shutdown_timeout(WAIT)
}

/// What a case is expected to come to.
struct Case {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// Whether the output is called from its background sender thread.
    background: bool,
    /// The largest batch of the 20 records emitted.
    batch: usize,
    /// A line the child's stderr must hold.
    stderr: Option<&'static str>,
}

const INTERVAL_ENV: (&str, &str) = ("AITRACE_FLUSH_INTERVAL_MS", "3600000");

const CASES: &[Case] = &[
    // The new spelling.
    Case {
        name: "nothing_chosen_and_nothing_set",
        env: &[],
        background: false,
        batch: 20,
        stderr: None,
    },
    Case {
        name: "nothing_chosen",
        env: &[
            ("AITRACE_BACKGROUND", "1"),
            ("AITRACE_BATCH_SIZE", "7"),
            INTERVAL_ENV,
        ],
        background: true,
        batch: 7,
        stderr: None,
    },
    Case {
        name: "direct_chosen",
        env: &[("AITRACE_BACKGROUND", "1"), ("AITRACE_BATCH_SIZE", "7")],
        background: false,
        batch: 20,
        stderr: None,
    },
    Case {
        name: "background_chosen_with_a_batch_size",
        env: &[("AITRACE_BATCH_SIZE", "7"), INTERVAL_ENV],
        background: true,
        batch: 3,
        stderr: None,
    },
    Case {
        name: "background_chosen_without_settings",
        env: &[
            ("AITRACE_BACKGROUND", "0"),
            ("AITRACE_BATCH_SIZE", "7"),
            INTERVAL_ENV,
        ],
        background: true,
        batch: 7,
        stderr: None,
    },
    // The 0.1 spelling: a setter sets without choosing.
    Case {
        name: "old_batch_size_without_background",
        env: &[("AITRACE_BACKGROUND", "1"), ("AITRACE_BATCH_SIZE", "7")],
        background: true,
        batch: 3,
        stderr: None,
    },
    Case {
        name: "old_background_true",
        env: &[],
        background: true,
        batch: 3,
        stderr: None,
    },
    Case {
        name: "old_background_false",
        env: &[("AITRACE_BACKGROUND", "1")],
        background: false,
        batch: 20,
        stderr: None,
    },
    Case {
        name: "old_spool_dir_without_background",
        env: &[],
        background: false,
        batch: 20,
        stderr: Some("not used: it takes background delivery"),
    },
];

/// The logger of the case named `name`.
fn logger(name: &str, output: Output, dir: &Path) -> BufferedLogger {
    let b = builder(output);
    let b = match name {
        "nothing_chosen_and_nothing_set" | "nothing_chosen" => b,
        "direct_chosen" => b.delivery(Direct::new()),
        "background_chosen_with_a_batch_size" => b.delivery(Background::new().batch_size(3)),
        "background_chosen_without_settings" => b.delivery(Background::new()),
        "old_batch_size_without_background" => b.batch_size(3).flush_interval(HOUR),
        "old_background_true" => b.background(true).batch_size(3).flush_interval(HOUR),
        "old_background_false" => b.background(false).batch_size(3),
        "old_spool_dir_without_background" => b.spool_dir(dir.join("spool")),
        other => panic!("no case {other}"),
    };
    b.try_build().unwrap()
}

#[test]
fn the_delivery_is_chosen_in_code_else_by_the_environment() {
    for case in CASES {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["child", "--exact", "--ignored", "--nocapture"]);
        for name in VARIABLES {
            cmd.env_remove(name);
        }
        cmd.envs(case.env.iter().copied());
        cmd.env("CASE", case.name)
            .env("EXPECT_BACKGROUND", case.background.to_string())
            .env("EXPECT_BATCH", case.batch.to_string());
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}: {}{stderr}",
            case.name,
            String::from_utf8_lossy(&out.stdout),
        );
        if let Some(line) = case.stderr {
            assert!(stderr.contains(line), "{}: {stderr}", case.name);
        }
    }
}

#[test]
#[ignore = "run by the_delivery_is_chosen_in_code_else_by_the_environment"]
fn child() {
    // Run by hand (`--include-ignored`) it has no case to run.
    let Ok(name) = std::env::var("CASE") else {
        return;
    };
    let background: bool = std::env::var("EXPECT_BACKGROUND").unwrap().parse().unwrap();
    let batch: usize = std::env::var("EXPECT_BATCH").unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (output, seen) = recorder();
    let log = logger(&name, output, dir.path());
    for i in 0..20 {
        log.info("work").field("i", i).emit();
    }
    let report = log.flush().unwrap();
    assert_eq!(report.delivered(), 20, "{name}: {report:?}");
    let calls = seen.calls.lock().unwrap().clone();
    let senders = calls
        .iter()
        .filter(|(thread, _)| thread == "aitrace-send-0");
    let on_sender = senders.count();
    if background {
        assert_eq!(on_sender, calls.len(), "{name}: {calls:?}");
    } else {
        assert_eq!(on_sender, 0, "{name}: {calls:?}");
    }
    let largest = calls.iter().map(|(_, n)| *n).max();
    assert_eq!(largest, Some(batch), "{name}: {calls:?}");
    assert!(!dir.path().join("spool").exists(), "{name}: no spool used");
}

/// 0.1: `on_failure` without `background` is how a direct flush sets
/// refused records aside.
#[test]
fn old_on_failure_still_sets_refused_records_aside_in_the_fallback_file() {
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("refused.jsonl");
    let (output, seen) = recorder();
    *seen.answer.lock().unwrap() = Some(|| Error::refused("no"));
    let log = builder(output)
        .background(false)
        .on_failure(OnFailure::FallbackFile(fallback.clone()))
        .build();
    log.info("a").emit();
    log.info("b").emit();
    let report = log.flush().unwrap();
    assert_eq!((report.rejected(), report.dropped()), (2, 2), "{report:?}");
    assert_eq!(report.deliveries()[0].fallback_path(), Some(&*fallback));
    let text = std::fs::read_to_string(&fallback).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

/// 0.1: `background(true)` with `retry`, `breaker`, `spool_dir` and
/// `spool_max_bytes` on the builder delivers in the background with them.
#[test]
fn old_background_setters_still_configure_background_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let (output, seen) = recorder();
    *seen.answer.lock().unwrap() = Some(|| Error::retry_later("down"));
    let log = builder(output)
        .background(true)
        .flush_interval(HOUR)
        .retry(RetryPolicy::none())
        .breaker(BreakerPolicy::default().failure_threshold(1).cooldown(HOUR))
        .spool_dir(dir.path())
        .spool_max_bytes(1 << 20)
        .try_build()
        .unwrap();
    for i in 0..5 {
        log.info("work").field("i", i).emit();
    }
    let report = log.flush().unwrap();
    assert_eq!(report.spooled(), 5, "{report:?}");
    let stats = log.stats();
    assert_eq!(seen.calls.lock().unwrap().len(), 1, "not retried");
    assert!(stats.outputs[0].breaker_open, "{stats:?}");
    assert_eq!(stats.spool_pending, 5, "{stats:?}");
}

/// Found in review: `delivery(..)` after the 0.1 setters replaced what they
/// had set, so `.spool_dir(d).delivery(Background::new())` used no spool.
/// They now stay where the mode leaves its settings at their defaults; a
/// second `delivery` still replaces the first.
#[test]
#[allow(deprecated)]
fn delivery_keeps_what_the_old_setters_set_before_it() {
    let merged = BufferedLogger::builder()
        .batch_size(7)
        .spool_dir("/spool/here")
        .retry(RetryPolicy::default().max_attempts(2))
        .delivery(Background::new().flush_interval(HOUR));
    let text = format!("{merged:?}");
    for part in [
        "batch_size: Some(7)",
        "spool_dir: Some(\"/spool/here\")",
        "max_attempts: 2",
        "flush_interval: Some(3600s)",
    ] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
    let replaced = BufferedLogger::builder()
        .delivery(Background::new().batch_size(7))
        .delivery(Background::new());
    assert!(
        !format!("{replaced:?}").contains("batch_size: Some(7)"),
        "{replaced:?}"
    );
}
