//! The HTTP sender's own `log` output (ureq logs through `log` while it
//! connects and sends) must never loop back into a buffer. Own process: it
//! installs the aitrace logger as `log`'s global logger.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aitrace_core::{BufferedLogger, Level, Output};
use aitrace_log::AitraceLogger;
use aitrace_testkit::{Answer, IngestServer, dead_url};

/// Records of the sender's crates made while their thread was sending a
/// batch: what would loop back without the guard.
static SENDER_RECORDS: AtomicUsize = AtomicUsize::new(0);

fn is_sender(target: &str) -> bool {
    target.starts_with("ureq") || target.starts_with("rustls")
}

/// The aitrace logger, installed globally, counting the sender's records on
/// their way in: proof that there was logging that could have looped back.
struct Counting(AitraceLogger);

impl log::Log for Counting {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if is_sender(record.target()) && aitrace_core::adapter::is_sending() {
            SENDER_RECORDS.fetch_add(1, Ordering::SeqCst);
        }
        self.0.log(record);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

fn sender_records_in(log: &BufferedLogger) -> Vec<aitrace_core::Record> {
    log.records()
        .into_iter()
        .filter(|r| r.logger().is_some_and(is_sender))
        .collect()
}

#[test]
fn the_sender_logging_through_log_never_reenters_the_buffer() {
    let server = IngestServer::start(Answer::Reference);
    let log = BufferedLogger::builder()
        .output(Output::http(&server.url).unwrap())
        .min_level(Level::Trace)
        .build();
    let aitrace = AitraceLogger::builder(log.clone())
        .max_level(log::LevelFilter::Trace)
        .build();
    log::set_boxed_logger(Box::new(Counting(aitrace))).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    // ureq logs at debug while it connects; the global logger takes
    // everything at trace, so without the guard those records would land in
    // the buffer during the flush and stay there (or reach the server with
    // the next batch). The test server's own threads may log through `log`
    // at any moment: those records are legitimately captured, hence the
    // filter on the sender's crates.
    for round in 0..3 {
        log::info!(round; "application record");
        let before = SENDER_RECORDS.load(Ordering::SeqCst);
        log.flush().unwrap();
        assert!(
            SENDER_RECORDS.load(Ordering::SeqCst) > before,
            "round {round}: ureq logged nothing during the send, so this test proves nothing"
        );
        let left = sender_records_in(&log);
        assert!(
            left.is_empty(),
            "round {round}: the sender's logging was captured: {left:?}"
        );
    }
    let sent = server.records();
    let from_sender: Vec<_> = sent
        .iter()
        .filter(|r| {
            r["__tracer_meta__"]["logger"]
                .as_str()
                .is_some_and(is_sender)
        })
        .collect();
    assert!(from_sender.is_empty(), "{from_sender:?}");
    let app = sent
        .iter()
        .filter(|r| r["__tracer_meta__"]["event"] == "application record")
        .count();
    assert_eq!(app, 3);

    // A failing send logs too (ureq's connection errors), into the global
    // logger, whose buffer is another logger's: nothing comes back into
    // either buffer.
    let down = BufferedLogger::builder()
        .output(
            Output::http_builder(&dead_url())
                .connect_timeout(Duration::from_secs(1))
                .build()
                .unwrap(),
        )
        .build();
    down.info("one").emit();
    let before = SENDER_RECORDS.load(Ordering::SeqCst);
    assert!(down.flush().is_err());
    assert!(
        SENDER_RECORDS.load(Ordering::SeqCst) > before,
        "ureq logged nothing during the failed send"
    );
    assert_eq!(down.len(), 1, "only the retained record is buffered");
    assert!(sender_records_in(&log).is_empty());
    down.clear();

    // Outside a flush, the same logging is captured as usual: the guard, not
    // a filter on targets, keeps it out above.
    log.clear();
    log::debug!(target: "ureq", "not during a flush");
    assert_eq!(sender_records_in(&log).len(), 1);
    log.clear();
}
