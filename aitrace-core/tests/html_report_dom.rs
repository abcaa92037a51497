//! Runs the HTML report's script against a minimal DOM (`tests/html/dom_smoke.js`)
//! in Node.js and clicks through it. Needs `node` on the PATH, so it is
//! ignored by default: `cargo test -p aitrace-core --test html_report_dom -- --ignored`.

use aitrace_core::{Level, Record, SpanContext, write_html_report};

#[test]
#[ignore = "needs node on the PATH"]
fn the_report_script_draws_filters_and_shows_records() {
    let mut records = Vec::new();
    for failed in [false, true, false] {
        let order = SpanContext::new_root();
        let pay = order.new_child();
        records.push(
            Record::builder(Level::Info, "order.start")
                .span_context(order)
                .provisional(true)
                .build(),
        );
        records.push(
            Record::builder(Level::Info, "pay.start")
                .span_context(pay)
                .provisional(true)
                .build(),
        );
        records.push(
            Record::builder(Level::Info, "payment_requested")
                .span_context(pay)
                .field("card", "4000")
                .field("note", "</script><script>alert(1)</script>")
                .build(),
        );
        let end = Record::builder(if failed { Level::Error } else { Level::Info }, "pay.end")
            .span_context(pay)
            .field("duration_ms", 1.5);
        records.push(
            if failed {
                end.field("error", "declined")
            } else {
                end
            }
            .build(),
        );
        let end = Record::builder(Level::Info, "order.end").span_context(order);
        records.push(
            if failed {
                // What retention by outcome writes on a trace it kept whole.
                end.field(aitrace_core::wire::RETENTION_FIELD, "failed")
            } else {
                end
            }
            .build(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    write_html_report(&records, std::fs::File::create(&page).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/html/dom_smoke.js");
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(&page)
        .arg("3")
        .output()
        .expect("node on the PATH");
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
