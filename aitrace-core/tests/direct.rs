//! Direct delivery (flushes on the calling thread) with several outputs,
//! one of them failing, and the last handle's drop.

use std::time::{Duration, Instant};

use aitrace_core::{Background, BufferedLogger, Direct, OnFailure, Output};
use aitrace_testkit::{Fault, FaultServer, dead_url};

/// Set in a child process [`in_own_temp_folder`] started.
const IN_CHILD: &str = "AITRACE_DIRECT_TEST_CHILD";

/// Whether to run the test body here: in the test process, runs `test`
/// again in a child process whose temp folder (`TMPDIR`) is a temporary
/// folder of its own, checks that it passed, and returns false; in that
/// child, returns true. So the `aitrace-unsent-…` files `OnFailure::Retain`
/// writes never land in the real temp folder, even if the test fails.
fn in_own_temp_folder(test: &str) -> bool {
    if std::env::var_os(IN_CHILD).is_some() {
        return true;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture"])
        .env(IN_CHILD, "1")
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 passed"), "the child ran the test: {said}");
    false
}

/// The temp folder, checked to be the child's own.
fn own_temp_folder() -> std::path::PathBuf {
    assert!(std::env::var_os(IN_CHILD).is_some(), "not in a child");
    std::env::temp_dir()
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// What an output acknowledged is never sent to it again: the file output
/// gets each record once while the HTTP output is down, and the HTTP output
/// gets everything it missed when it is back.
#[test]
fn a_failed_output_keeps_its_own_records_and_the_others_get_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.jsonl");
    let server = FaultServer::start();
    server.set_down(true);
    let log = BufferedLogger::builder()
        .output(Output::file(&path))
        .output(
            Output::http_builder(&server.url)
                .connect_timeout(Duration::from_millis(300))
                .build()
                .unwrap(),
        )
        .build();
    for round in 0..2 {
        for i in 0..5 {
            log.info("work").field("round", round).field("i", i).emit();
        }
        let err = log.flush().unwrap_err();
        assert_eq!(err.retained(), 5 * (round + 1), "{err}");
    }
    assert_eq!(lines(&path), 10, "the file got each record once");
    let stats = log.stats();
    assert_eq!(stats.outputs[0].delivered, 10);
    assert_eq!(stats.outputs[1].delivered, 0);
    assert_eq!(stats.outputs[1].in_flight, 10, "kept for the HTTP output");
    assert!(stats.is_balanced(), "{stats:?}");

    server.set_down(false);
    log.info("after").emit();
    let report = log.flush().unwrap();
    assert_eq!(report.records(), 1);
    assert_eq!(report.deliveries()[0].records(), 1);
    assert_eq!(
        report.deliveries()[1].records(),
        11,
        "what it missed, then the new one"
    );
    assert_eq!(lines(&path), 11);
    assert_eq!(server.records().len(), 11);
    let stats = log.stats();
    assert_eq!(
        (stats.outputs[0].delivered, stats.outputs[1].delivered),
        (11, 11)
    );
    assert!(stats.is_balanced(), "{stats:?}");
}

/// With every output down the records go back to the buffer, in order.
#[test]
fn when_every_output_fails_the_records_go_back_to_the_buffer() {
    let log = BufferedLogger::builder()
        .output(Output::http(&dead_url()).unwrap())
        .output(Output::http(&dead_url()).unwrap())
        .build();
    log.info("a").emit();
    log.info("b").emit();
    let err = log.flush().unwrap_err();
    assert_eq!(err.retained(), 2);
    let events: Vec<_> = log.records().iter().map(|r| r.event().to_owned()).collect();
    assert_eq!(events, ["a", "b"]);
    assert!(log.stats().is_balanced());
    log.clear();
    let stats = log.stats();
    assert_eq!((stats.discarded, stats.buffered), (2, 0));
    assert!(stats.is_balanced(), "{stats:?}");
}

/// The last handle's drop never waits much past the shutdown timeout, even
/// on a server that never answers; what was not acknowledged goes to the
/// fallback file.
#[test]
fn the_last_handle_drop_is_bounded_and_writes_the_fallback_file() {
    let server = FaultServer::start();
    server.set_default(Fault::Hang);
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("unsent.jsonl");
    let log = BufferedLogger::builder()
        .output(
            Output::http_builder(&server.url)
                .request_timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        )
        .delivery(Direct::new().on_failure(OnFailure::FallbackFile(fallback.clone())))
        .shutdown_timeout(Duration::from_millis(300))
        .build();
    for i in 0..4 {
        log.info("left").field("i", i).emit();
    }
    let started = Instant::now();
    drop(log);
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "dropping took {:?}",
        started.elapsed()
    );
    assert_eq!(lines(&fallback), 4);
}

fn events_of(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["__tracer_meta__"]["event"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 18, item 4: a server answers 400 to any batch holding one bad
/// record. The batch is split until only the bad record is refused; it is
/// set aside once (in the fallback file, or an `aitrace-unsent-…` file by
/// default), counted as dropped and refused, and the good records of that
/// flush and of the next ones are delivered.
#[test]
fn a_refused_record_is_set_aside_once_and_the_next_flushes_deliver() {
    if !in_own_temp_folder("a_refused_record_is_set_aside_once_and_the_next_flushes_deliver") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("refused.jsonl");
    for on_failure in [OnFailure::Retain, OnFailure::FallbackFile(fallback.clone())] {
        let server = FaultServer::start();
        server.set_default(Fault::RefuseEvent(400, "bad".into()));
        let log = BufferedLogger::builder()
            .output(Output::http(&server.url).unwrap())
            .delivery(Direct::new().on_failure(on_failure.clone()))
            .build();
        for i in 0..6 {
            log.info(if i == 4 { "bad" } else { "good" })
                .field("i", i)
                .emit();
        }
        let first = log.flush();
        for round in 0..4 {
            for i in 0..3 {
                log.info("later").field("round", round).field("i", i).emit();
            }
            log.flush().unwrap();
        }
        let delivered = events_of(&server.records());
        assert_eq!(
            delivered.iter().filter(|e| *e == "later").count(),
            12,
            "every later record is delivered: {delivered:?}"
        );
        assert_eq!(delivered.iter().filter(|e| *e == "good").count(), 5);
        assert!(!delivered.contains(&"bad".to_owned()));
        let stats = log.stats();
        assert_eq!((stats.delivered, stats.dropped), (17, 1), "{stats:?}");
        assert_eq!(stats.rejected, 1, "{stats:?}");
        assert!(stats.is_balanced(), "{stats:?}");

        let report = first.unwrap();
        let delivery = &report.deliveries()[0];
        assert_eq!((delivery.records(), delivery.dropped()), (5, 1));
        assert_eq!(delivery.rejected(), 1);
        assert!(delivery.rejection().unwrap().contains("HTTP 400"));
        assert_eq!(
            (report.delivered(), report.rejected(), report.dropped()),
            (5, 1, 1)
        );
        let path = delivery.fallback_path().unwrap().to_owned();
        match &on_failure {
            OnFailure::FallbackFile(fallback) => assert_eq!(&path, fallback),
            _ => {
                let name = path.file_name().unwrap().to_string_lossy();
                assert!(name.starts_with("aitrace-unsent-"), "{}", path.display());
                assert_eq!(path.parent(), Some(own_temp_folder().as_path()));
            }
        }
        assert!(
            report.to_string().contains(&path.display().to_string()),
            "{report}"
        );
        let set_aside = std::fs::read_to_string(&path).unwrap();
        if on_failure == OnFailure::Retain {
            std::fs::remove_file(&path).unwrap();
        }
        assert_eq!(set_aside.lines().count(), 1, "{set_aside}");
        assert!(set_aside.contains(r#""event":"bad""#), "{set_aside}");
    }
}

/// A status that refuses any request to the endpoint (405: no such
/// endpoint) is not split: the batch is set aside whole, in one request.
#[test]
fn a_batch_refused_whatever_it_holds_is_set_aside_whole() {
    let server = FaultServer::start();
    server.set_default(Fault::Status(405));
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("refused.jsonl");
    let log = BufferedLogger::builder()
        .output(Output::http(&server.url).unwrap())
        .delivery(Direct::new().on_failure(OnFailure::FallbackFile(fallback.clone())))
        .build();
    for i in 0..8 {
        log.info("work").field("i", i).emit();
    }
    let report = log.flush().unwrap();
    assert_eq!(server.requests(), 1, "not split, not retried");
    assert_eq!(
        (report.delivered(), report.rejected(), report.dropped()),
        (0, 8, 8)
    );
    assert_eq!(lines(&fallback), 8);
    assert!(
        report
            .to_string()
            .starts_with("8 records: 0 delivered, 8 refused, 8 dropped"),
        "{report}"
    );
    let stats = log.stats();
    assert_eq!((stats.dropped, stats.rejected, stats.in_flight), (8, 8, 0));
    assert!(stats.is_balanced(), "{stats:?}");
}

/// Issue 18, item 10: `std::process::exit` runs no destructors, so a
/// shutdown that fails writes what no output took to the fallback file
/// itself, and the error names it; an exit right after loses nothing.
#[test]
fn a_failed_shutdown_writes_what_is_left_to_the_fallback_file() {
    if !in_own_temp_folder("a_failed_shutdown_writes_what_is_left_to_the_fallback_file") {
        return;
    }
    let log = BufferedLogger::builder()
        .output(Output::http(&dead_url()).unwrap())
        .build();
    for i in 0..3 {
        log.info("left").field("i", i).emit();
    }
    let err = log.shutdown(Duration::from_secs(2)).unwrap_err();
    let path = err
        .fallback_path()
        .expect("the error names the file")
        .to_owned();
    assert_eq!(err.retained(), 0, "{err}");
    assert_eq!(path.parent(), Some(own_temp_folder().as_path()));
    let written = lines(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, 3);
    let stats = log.stats();
    assert_eq!((stats.dropped, stats.buffered, stats.in_flight), (3, 0, 0));
    assert!(stats.is_balanced(), "{stats:?}");
}

/// A server that refuses every request with 400 (an HTTPS port spoken to in
/// plain HTTP answers so) would cost a batch of n records 2n − 1 requests
/// if every refused part were split down to single records: splitting
/// stops at its budget, and the rest is set aside whole, in both
/// deliveries.
#[test]
fn splitting_a_batch_refused_whatever_it_holds_stops_at_its_budget() {
    for background in [false, true] {
        let server = FaultServer::start();
        server.set_default(Fault::Status(400));
        let dir = tempfile::tempdir().unwrap();
        let fallback = dir.path().join("refused.jsonl");
        let builder = BufferedLogger::builder()
            .output(Output::http(&server.url).unwrap())
            .delivery(Direct::new().on_failure(OnFailure::FallbackFile(fallback.clone())));
        let log = if background {
            builder.delivery(Background::new().batch_size(256)).build()
        } else {
            builder.build()
        };
        for i in 0..256 {
            log.info("work").field("i", i).emit();
        }
        let report = log.flush().unwrap();
        // 256 records: 8 + 4·9 = 44 more requests at most, not 511.
        assert!(
            (3..=45).contains(&server.requests()),
            "background {background}: {} requests",
            server.requests()
        );
        assert_eq!(report.dropped(), 256, "background {background}: {report}");
        let stats = log.stats();
        assert_eq!(
            (stats.dropped, stats.rejected, stats.delivered),
            (256, 256, 0),
            "background {background}"
        );
        assert!(stats.is_balanced(), "{stats:?}");
        if !background {
            assert_eq!(lines(&fallback), 256, "every refused record set aside");
        }
    }
}
