//! Runs each example as a user would and checks what it wrote.

use std::path::PathBuf;
use std::process::{Command, Output};

use aitrace_testkit::{Answer, IngestServer, assert_wire_record};
use serde_json::Value as Json;

/// The example binary `cargo test` built next to this test.
fn example(name: &str) -> Command {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    let path: PathBuf = path.join("examples").join(name);
    assert!(path.exists(), "{} not built", path.display());
    let mut cmd = Command::new(path);
    cmd.env_remove("LOG_TRG").env_remove("AITRACE_LEVEL");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn parse_lines(text: &str) -> Vec<Json> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn events(records: &[Json]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["__tracer_meta__"]["event"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn quickstart_writes_wire_records_to_stdout_by_default() {
    let out = run(&mut example("quickstart"));
    let records = parse_lines(&String::from_utf8(out.stdout).unwrap());
    records.iter().for_each(assert_wire_record);
    assert_eq!(
        events(&records),
        [
            "quickstart.start",
            "app_started",
            "handle_order.start",
            "cart_loaded",
            "handle_order.end",
            "handle_order.start",
            "cart_loaded",
            "large_order",
            "handle_order.end",
            "quickstart.end"
        ]
    );
    let trace = &records[0]["__tracer_meta__"]["trace_id"];
    assert!(
        records
            .iter()
            .all(|r| &r["__tracer_meta__"]["trace_id"] == trace)
    );
    let root = &records[0]["__tracer_meta__"]["span_id"];
    assert_eq!(records[2]["__tracer_meta__"]["parent_span_id"], *root);
    assert_eq!(records[3]["total"], 19.99);
    assert_eq!(records[3]["items"], serde_json::json!(["book", "lamp"]));
    assert_eq!(records[7]["__tracer_meta__"]["level"], "warning");
    assert_eq!(
        records[0]["__tracer_meta__"]["file"],
        "examples/examples/quickstart.rs"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("flushed 10 records to stdout"));
}

#[test]
fn quickstart_honours_a_file_target_with_home_and_timestamp() {
    let home = tempfile::tempdir().unwrap();
    let out = run(example("quickstart")
        .env("HOME", home.path())
        .env("LOG_TRG", "~/logs/run_<YYYYMMDD_HHMMSS>.jsonl"));
    assert!(out.stdout.is_empty());
    let dir = home.path().join("logs");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("run_20") && name.ends_with(".jsonl"),
        "{name}"
    );
    let records = parse_lines(&std::fs::read_to_string(&files[0]).unwrap());
    assert_eq!(records.len(), 10);
}

#[test]
fn quickstart_honours_an_http_target() {
    let server = IngestServer::start(Answer::Reference);
    let out = run(example("quickstart").env("LOG_TRG", &server.url));
    assert!(out.stdout.is_empty());
    let records = server.records();
    assert_eq!(records.len(), 10);
    assert!(String::from_utf8_lossy(&out.stderr).contains("10 ingested"));
}
