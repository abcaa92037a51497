//! Memory: bytes held per buffered record against the record's JSON size,
//! and peak resident memory with 1,000,000 records buffered.
//!
//! `cargo bench -p aitrace-benches --bench memory`

use aitrace_core::{BufferedLogger, Layout, Output};

const RECORDS: usize = 1_000_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (_, rss_before) = aitrace_benches::rss();
    let log = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .capacity(2 * RECORDS)
        .build();
    log.span("request").in_scope(|_| {
        for i in 0..RECORDS {
            log.info("checkout_started")
                .field("order_id", i as i64)
                .field("user", "u2")
                .field("total", 469.74f64)
                .emit();
        }
    });
    let (peak, rss_after) = aitrace_benches::rss();
    assert_eq!(log.len(), RECORDS + 2); // the span's start and end records
    let sample = log
        .records()
        .into_iter()
        .nth(RECORDS / 2)
        .expect("a record");
    let json = Layout::Namespaced.to_json(&sample).len();
    let per_record = (rss_after - rss_before) as f64 / RECORDS as f64;
    println!("memory: {RECORDS} records buffered (core API, the bench event, inside a span)");
    println!("  JSON size of one record (namespaced)   {json} bytes");
    println!(
        "  Record::memory_size() of one record    {} bytes",
        sample.memory_size()
    );
    println!(
        "  resident memory per buffered record    {per_record:.0} bytes  ({:.2}x its JSON)",
        per_record / json as f64
    );
    println!(
        "  peak resident memory                   {:.1} MiB",
        peak as f64 / (1024.0 * 1024.0)
    );
    log.clear();
}
