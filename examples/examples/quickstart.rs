//! The quick start: nested work with typed fields, flushed to stdout, or to
//! wherever `LOG_TRG` points (a file path or an aitrace ingest URL).
//!
//! ```sh
//! cargo run -p aitrace-examples --example quickstart
//! LOG_TRG=http://localhost:8000/api/ingest cargo run -p aitrace-examples --example quickstart
//! ```

use std::process::ExitCode;
use std::time::Duration;

use aitrace_core::{BufferedLogger, info};

fn main() -> ExitCode {
    let log = BufferedLogger::new();

    let trace = log.trace_context("quickstart");
    info!(log, "app_started", version = "0.1.0", workers = 2);

    for (user, total) in [("u1", 19.99), ("u2", 469.74)] {
        log.span("handle_order")
            .field("user_id", user)
            .in_scope(|span| {
                log.info("cart_loaded")
                    .field("user_id", user)
                    .field("items", vec!["book", "lamp"])
                    .field("total", total)
                    .emit();
                if total > 100.0 {
                    log.warn("large_order")
                        .field("total", total)
                        .field("needs_review", true)
                        .emit();
                }
                span.record("status", "done");
            });
    }

    // One line: delivered, refused by the receiver, dropped.
    let complete = match trace.finish() {
        Ok(report) => {
            eprintln!("quickstart: flushed to {}: {report}", log.outputs()[0]);
            report.is_complete()
        }
        Err(err) => {
            eprintln!("quickstart: flush failed: {err}");
            false
        }
    };
    if complete {
        return ExitCode::SUCCESS;
    }
    // Before exiting with a failure: records no output took go to a file
    // whose path is printed (`std::process::exit` would lose them).
    if let Err(err) = log.shutdown(Duration::from_secs(5)) {
        eprintln!("quickstart: shutdown: {err}");
    }
    ExitCode::FAILURE
}
