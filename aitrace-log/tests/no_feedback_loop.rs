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
    for round in 0..3 {
        log::info!(round; "application record");
        let report = log.flush().unwrap();
        assert_eq!(
            report.records(),
            1,
            "round {round}: only the application's record was sent"
        );
        assert!(
            log.is_empty(),
            "round {round}: the sender left records behind"
        );
    }
    let sent = server.records();
    assert_eq!(sent.len(), 3);
    assert!(
        sent.iter()
            .all(|r| r["__tracer_meta__"]["event"] == "application record")
    );

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
    log::debug!(target: "ureq", "not during a flush");
    assert_eq!(log.len(), 1);
    log.clear();
}
