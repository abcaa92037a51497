//! A target ending in `.html` writes the report of `aitrace-report` at
//! every flush, through the export trait like any other output.
#![cfg(feature = "html")]

use aitrace_core::wire::META_KEY;
use serde_json::Value as Json;

/// The embedded data of a page, parsed.
fn embedded(page: &str) -> Json {
    let open = r#"<script type="application/json" id="aitrace-data">"#;
    let start = page.find(open).unwrap() + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

#[test]
fn an_html_target_rewrites_the_report_with_every_record_at_each_flush() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sub").join("Trace.HTML");
    let output = aitrace_core::Output::from_target(target.to_str().unwrap()).unwrap();
    assert_eq!(output.path(), Some(target.as_path()));
    let log = aitrace_core::BufferedLogger::builder()
        .output(output)
        .build();
    log.info("first").field("n", 1).emit();
    log.flush().unwrap();
    let read = || embedded(&std::fs::read_to_string(&target).unwrap());
    assert_eq!(read()["records"].as_array().unwrap().len(), 1);
    log.in_trace_context("order", |_| log.warn("second").emit());
    let data = read();
    let events: Vec<&str> = data["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[META_KEY]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["first", "order.start", "second", "order.end"]);
    assert_eq!(data["traces"][0]["name"], "order");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
