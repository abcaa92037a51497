//! `AITRACE_PANIC_HOOK=0` leaves the process's panic hook alone. The
//! variable is read once per process and panic hooks are global to it, so
//! each case runs in a child process of this test binary.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aitrace_core::{Level, Value};
use aitrace_testkit::{find, memory_logger};

/// Runs the ignored test `child` alone in a new process, with
/// `AITRACE_PANIC_HOOK` set to `value` (`None`: unset); its `error`
/// expectation comes in `EXPECTED_ERROR`.
fn run_child(value: Option<&str>, expected: &str) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--ignored", "--test-threads=1"]);
    cmd.env_remove(aitrace_core::env::PANIC_HOOK_ENV);
    if let Some(value) = value {
        cmd.env(aitrace_core::env::PANIC_HOOK_ENV, value);
    }
    cmd.env("EXPECTED_ERROR", expected);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "AITRACE_PANIC_HOOK={value:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn aitrace_panic_hook_0_installs_no_hook_and_spans_say_panicked() {
    run_child(Some("0"), "panicked");
    run_child(None, "card declined");
}

#[test]
#[ignore = "run by aitrace_panic_hook_0_installs_no_hook_and_spans_say_panicked"]
fn child() {
    let expected = std::env::var("EXPECTED_ERROR").unwrap();
    let mine = Arc::new(AtomicUsize::new(0));
    let seen = mine.clone();
    std::panic::set_hook(Box::new(move |_| {
        seen.fetch_add(1, Ordering::Relaxed);
    }));
    let (log, _memory) = memory_logger(Level::Info);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        log.span("charge").in_scope(|_| panic!("card declined"))
    }));
    assert!(outcome.is_err());
    let _ = std::panic::take_hook(); // the default again, to show a failure
    assert_eq!(mine.load(Ordering::Relaxed), 1, "the hook set before ran");
    let records = log.records();
    let end = find(&records, "charge.end");
    assert_eq!(end.level(), Level::Error);
    assert_eq!(end.field("error"), Some(&Value::from(expected.as_str())));
}
