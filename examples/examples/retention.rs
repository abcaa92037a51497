//! Retention by outcome: a service logs every request at `debug`, and
//! ships the debug records of the requests that failed, and of none of the
//! others.
//!
//! ```sh
//! cargo run -p aitrace-examples --example retention
//! ```
//!
//! It handles 1,000 requests, 2 % of which fail (a payment declined), once
//! with retention off and once with it on, each into an output that counts
//! what reaches it, and prints the records and bytes shipped. With
//! retention on it checks that every failed request arrived with all its
//! debug records and every successful one at `info` only, and exits 1
//! otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aitrace_core::export::{Accepted, Batch, Export};
use aitrace_core::retention::Retention;
use aitrace_core::{BufferedLogger, Error, Level, Record};

const REQUESTS: u64 = 1_000;
/// Every this-many-th request fails: 2 %.
const FAIL_EVERY: u64 = 50;
/// Debug records per request.
const DEBUG_PER_REQUEST: usize = 4;

/// What reached the output: bytes of JSON Lines, and every record.
#[derive(Clone, Default)]
struct Meter(Arc<Mutex<(usize, Vec<Record>)>>);

impl Export for Meter {
    fn name(&self) -> String {
        "meter".to_owned()
    }

    fn export(&self, batch: &Batch<'_>) -> Result<Accepted, Error> {
        let mut seen = self.0.lock().unwrap();
        seen.0 += batch.lines().len();
        seen.1.extend(batch.records().iter().cloned());
        Ok(Accepted::all())
    }
}

/// One request: a root span, debug records along the way, a payment that
/// may be declined, an info record at the end.
fn handle(log: &BufferedLogger, n: u64) {
    log.span("handle_request")
        .field("request", n)
        .in_scope(|_| {
            log.debug("parsed")
                .field("request", n)
                .field("bytes", 512)
                .emit();
            log.debug("cache_lookup")
                .field("request", n)
                .field("hit", n % 3 == 0)
                .emit();
            log.span("charge").field("request", n).in_scope(|charge| {
                log.debug("calling_gateway").field("request", n).emit();
                if n % FAIL_EVERY == 0 {
                    charge.fail("card declined");
                }
            });
            log.debug("rendering").field("request", n).emit();
            log.info("responded").field("request", n).emit();
        });
}

/// Runs the requests through a logger and returns what reached its output.
fn run(retention: Option<Retention>) -> (usize, Vec<Record>) {
    let meter = Meter::default();
    let mut builder = BufferedLogger::builder()
        .output(meter.clone())
        .min_level(Level::Debug);
    if let Some(retention) = retention {
        builder = builder.retention(retention);
    }
    let log = builder.build();
    for n in 1..=REQUESTS {
        handle(&log, n);
        if n % 100 == 0 {
            log.flush().expect("an in-process output");
        }
    }
    log.shutdown(std::time::Duration::from_secs(5))
        .expect("an in-process output");
    let stats = log.stats();
    assert!(stats.is_balanced(), "{stats:?}");
    let seen = meter.0.lock().unwrap();
    (seen.0, seen.1.clone())
}

fn main() {
    let (off_bytes, off) = run(None);
    let (on_bytes, on) = run(Some(Retention::new().ship_level(Level::Info)));
    println!(
        "retention off: {:>5} records, {:>7} bytes shipped",
        off.len(),
        off_bytes
    );
    println!(
        "retention on:  {:>5} records, {:>7} bytes shipped ({:.0}% of the bytes)",
        on.len(),
        on_bytes,
        100.0 * on_bytes as f64 / off_bytes as f64
    );

    // Per request: the debug records that arrived, and how its root ended.
    let mut debug: HashMap<u64, usize> = HashMap::new();
    // The root's `.end` of a trace kept whole says why.
    let kept: Vec<&str> = (on.iter())
        .filter_map(|r| r.field("aitrace.retention").and_then(|v| v.as_str()))
        .collect();
    for record in &on {
        let Some(n) = record.field("request").and_then(|v| match v {
            aitrace_core::Value::I64(n) => Some(*n as u64),
            aitrace_core::Value::U64(n) => Some(*n),
            _ => None,
        }) else {
            continue;
        };
        if record.level() == Level::Debug && !record.event().ends_with(".start") {
            *debug.entry(n).or_default() += 1;
        }
    }
    let failed: Vec<u64> = (1..=REQUESTS).filter(|n| n % FAIL_EVERY == 0).collect();
    let mut wrong = Vec::new();
    for n in 1..=REQUESTS {
        let got = debug.get(&n).copied().unwrap_or(0);
        let want = if n % FAIL_EVERY == 0 {
            DEBUG_PER_REQUEST
        } else {
            0
        };
        if got != want {
            wrong.push(format!("request {n}: {got} debug records, expected {want}"));
        }
    }
    println!(
        "failed requests: {} of {REQUESTS}, each kept whole ({}); successful ones shipped at info only",
        failed.len(),
        if kept.iter().all(|why| *why == "failed") {
            "failed"
        } else {
            "not all failed"
        }
    );
    if !wrong.is_empty() || kept.len() != failed.len() || kept.iter().any(|why| *why != "failed") {
        eprintln!("retention did not do what it should: {wrong:?}");
        std::process::exit(1);
    }
}
