//! `aitrace-core` alone as the frontend: a small audit-log API of an
//! application's own, built on `Record::builder` and `BufferedLogger::capture`,
//! next to the core's own `info!`-style calls and spans. Writes to stdout, or
//! wherever `LOG_TRG` points.
//!
//! ```sh
//! cargo run -p aitrace-examples --example custom_frontend
//! ```

use aitrace_core::{BufferedLogger, Level, Record, info};

/// An application's own logging frontend: audit events with a fixed shape.
struct Audit {
    log: BufferedLogger,
}

impl Audit {
    #[track_caller]
    fn action(&self, user: &str, action: &'static str, allowed: bool) {
        let level = if allowed { Level::Info } else { Level::Warn };
        if !self.log.enabled(level) {
            return; // filtered out: nothing is built
        }
        let caller = std::panic::Location::caller();
        let record = Record::builder(level, action)
            .logger("audit")
            .file(caller.file())
            .line(caller.line())
            .field("user", user)
            .field("allowed", allowed)
            .build();
        self.log.capture(record); // stamped with the current span's ids
    }
}

fn main() {
    let log = BufferedLogger::new();
    let audit = Audit { log: log.clone() };

    log.in_trace_context("admin_session", |session| {
        session.record("user", "alice");
        audit.action("alice", "login", true);
        log.span("bulk_refund").field("orders", 3).in_scope(|span| {
            for (order, amount) in [("o1", 12.5), ("o2", 99.0), ("o3", 1500.0)] {
                info!(log, "refund_issued", order_id = order, amount = amount);
            }
            audit.action("alice", "refund_over_limit", false);
            span.record("refunded_total", 1611.5);
        });
        audit.action("alice", "logout", true);
    }); // admin_session.end is written and everything flushed here
}
