//! The HTTP sender's own `log` output (ureq, rustls) must never loop back
//! into the buffer. Own process: it installs the global logger.

use std::time::Duration;

use aitrace_core::{BufferedLogger, Output};
use aitrace_testkit::{Answer, IngestServer, dead_url};

#[test]
fn the_sender_logging_through_log_never_reenters_the_buffer() {
    let server = IngestServer::start(Answer::Reference);
    let output = Output::http(&server.url).unwrap();
    let log = BufferedLogger::builder().output(output).build();
    aitrace_log::AitraceLogger::builder(log.clone())
        .max_level(log::LevelFilter::Trace)
        .init()
        .unwrap();

    // ureq logs at debug and trace while it sends; with the adapter taking
    // everything at trace, those lines would be captured without the guard.
    // (The test server's own threads log through `log` too, at any moment:
    // those records are legitimately captured and are left out here.)
    let is_sender = |logger: Option<&str>| {
        logger.is_some_and(|l| l.starts_with("ureq") || l.starts_with("rustls"))
    };
    for round in 0..3 {
        log::info!(round; "application record");
        log.flush().unwrap();
        let left: Vec<_> = log
            .records()
            .into_iter()
            .filter(|r| is_sender(r.logger()))
            .collect();
        assert!(
            left.is_empty(),
            "round {round}: the sender's logging was captured: {left:?}"
        );
    }
    let sent = server.records();
    let sender_records: Vec<_> = sent
        .iter()
        .filter(|r| is_sender(r["__tracer_meta__"]["logger"].as_str()))
        .collect();
    assert!(sender_records.is_empty(), "{sender_records:?}");
    let app = sent
        .iter()
        .filter(|r| r["__tracer_meta__"]["event"] == "application record")
        .count();
    assert_eq!(app, 3);

    // A failing send logs too (connection errors): still nothing comes back.
    let down = BufferedLogger::builder()
        .output(
            Output::http_builder(&dead_url())
                .connect_timeout(Duration::from_secs(1))
                .build()
                .unwrap(),
        )
        .build();
    let adapter = aitrace_log::AitraceLogger::new(down.clone());
    down.info("one").emit();
    assert!(down.flush().is_err());
    assert_eq!(down.len(), 1, "only the retained record is buffered");
    down.clear();
    drop(adapter);

    // Outside a flush, the same logging is captured as usual.
    log.clear();
    log::debug!(target: "ureq", "not during a flush");
    assert!(log.records().iter().any(|r| r.logger() == Some("ureq")));
    log.clear();
}
