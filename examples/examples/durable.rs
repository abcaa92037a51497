//! A service that keeps its records through outages: a background sender,
//! a bounded buffer, retries, a circuit breaker and a disk spool. Records an
//! outage keeps from the server are spooled and delivered later, by this
//! process or the next one started with the same spool folder.
//!
//! ```sh
//! LOG_TRG=http://localhost:8000/api/ingest AITRACE_SPOOL_DIR=/tmp/aitrace-spool \
//!     cargo run -p aitrace-examples --example durable -- 200
//! ```
//!
//! Arguments: how many records to write (default 100), then optionally
//! `--flush-timeout-ms N` (flush once and report), `--shutdown-ms N`
//! (how long the exit may take; default 2000) and `--then-wait` (after the
//! flush, wait for a line on stdin: a test kills the process there).

use std::time::Duration;

use aitrace_core::{Background, BufferedLogger};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut records = 100usize;
    let mut flush_timeout = None;
    let mut shutdown = Duration::from_millis(2000);
    let mut then_wait = false;
    while let Some(arg) = args.next() {
        let mut number = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--flush-timeout-ms" => flush_timeout = Some(Duration::from_millis(number())),
            "--shutdown-ms" => shutdown = Duration::from_millis(number()),
            "--then-wait" => then_wait = true,
            n => records = n.parse().expect("a record count"),
        }
    }

    // Output from LOG_TRG, spool folder from AITRACE_SPOOL_DIR.
    let log = BufferedLogger::builder()
        .delivery(Background::new().batch_size(100))
        .record_ids(true)
        .shutdown_timeout(shutdown)
        .build();
    {
        // Delivers, or spools, whatever is left when main ends.
        let _guard = log.delivery_guard();
        log.span("durable_job").in_scope(|_| {
            for i in 0..records {
                log.info("order_processed")
                    .field("seq", i)
                    .field("ok", true)
                    .emit();
            }
        });
        if let Some(timeout) = flush_timeout {
            match log.flush_timeout(timeout) {
                Ok(report) => eprintln!("durable: flush delivered {:?}", report.deliveries()),
                Err(err) => eprintln!("durable: flush: {err}"),
            }
        }
        if then_wait {
            eprintln!("durable: waiting");
            let _ = std::io::stdin().read_line(&mut String::new());
        }
    }
    let s = log.stats();
    eprintln!(
        "durable: captured={} delivered={} spooled={} replayed={} dropped={} spool_pending={}",
        s.captured, s.delivered, s.spooled, s.replayed, s.dropped, s.spool_pending
    );
}
