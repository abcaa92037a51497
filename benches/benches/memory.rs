//! Memory: bytes held per buffered record against the record's JSON size,
//! two ways: the resident memory the process gains while 1,000,000 records
//! are buffered (what the machine pays), and `Record::memory_size` (what the
//! records own). [`RUNS`] runs, each in a fresh process of this binary (a
//! process does not give its heap back, so a second run in the same one
//! would measure nothing).
//!
//! `cargo bench -p aitrace-benches --bench memory`

use aitrace_benches::{RUNS, Target, median, print_ratios};
use aitrace_core::{BufferedLogger, Layout, Output};

const RECORDS: usize = 1_000_000;
/// Set in a child process: run once and print one machine-readable line.
const CHILD: &str = "AITRACE_BENCH_MEMORY_CHILD";

/// (resident bytes per record, `memory_size` of one record, its JSON size,
/// peak resident bytes)
fn one_run() -> (f64, usize, usize, u64) {
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
    let per_record = rss_after.saturating_sub(rss_before) as f64 / RECORDS as f64;
    log.clear();
    (per_record, sample.memory_size(), json, peak)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var_os(CHILD).is_some() {
        let (per_record, size, json, peak) = one_run();
        println!("{per_record} {size} {json} {peak}");
        return;
    }
    println!(
        "memory: {RECORDS} records buffered (core API, the bench event, inside a span); {RUNS} runs, each in its own process"
    );
    let exe = std::env::current_exe().expect("this bench's path");
    let (mut resident, mut owned, mut json_sizes) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=RUNS {
        let out = std::process::Command::new(&exe)
            .env(CHILD, "1")
            .output()
            .expect("run the child");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<f64> = text
            .split_whitespace()
            .map(|x| x.parse().expect("a number"))
            .collect();
        let [per_record, size, json, peak] = v[..] else {
            panic!("child printed {text:?}")
        };
        println!(
            "run {run}: resident {per_record:.0} bytes per record, memory_size {size:.0} bytes, JSON {json:.0} bytes, peak resident {:.1} MiB",
            peak / (1024.0 * 1024.0)
        );
        resident.push(per_record);
        owned.push(size);
        json_sizes.push(json);
    }
    println!(
        "medians: resident {:.0} bytes per record, memory_size {:.0}, JSON {:.0}",
        median(&resident),
        median(&owned),
        median(&json_sizes)
    );
    print_ratios(
        "resident bytes per buffered record / its JSON size",
        &resident,
        &json_sizes,
        Target::AtMost(1.2),
    );
    print_ratios(
        "Record::memory_size / its JSON size",
        &owned,
        &json_sizes,
        Target::AtMost(1.2),
    );
}
