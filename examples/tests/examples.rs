//! Runs each example as a user would and checks what it wrote.

use std::path::PathBuf;
use std::process::{Command, Output};

use aitrace_testkit::{Answer, IngestServer, assert_wire_record, dead_url};
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
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("LOG_TRG")
        .env_remove("AITRACE_LEVEL")
        .env_remove("RUST_LOG")
        .env_remove("AITRACE_SPOOL_DIR")
        .env_remove("AITRACE_SHIP_LEVEL");
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
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("flushed to stdout: 10 records: 10 delivered, 0 refused, 0 dropped")
    );
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
fn quickstart_honours_a_file_uri_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("with space").join("run.jsonl");
    let uri = format!("file://{}", path.display().to_string().replace(' ', "%20"));
    let out = run(example("quickstart").env("LOG_TRG", &uri));
    assert!(out.stdout.is_empty());
    let records = parse_lines(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(records.len(), 10);
    // Without a leading `/`, relative to the working folder, as users write it.
    let out = run(example("quickstart")
        .current_dir(dir.path())
        .env("LOG_TRG", "file://rel/x.jsonl"));
    assert!(out.stdout.is_empty());
    let records = parse_lines(&std::fs::read_to_string(dir.path().join("rel/x.jsonl")).unwrap());
    assert_eq!(records.len(), 10);
    // A malformed one is refused with a clear line, and stdout is used instead.
    let out = run(example("quickstart").env("LOG_TRG", "file:///x%zz.jsonl"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("x%zz"));
    assert_eq!(parse_lines(&String::from_utf8_lossy(&out.stdout)).len(), 10);
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

fn meta(record: &Json) -> &Json {
    &record["__tracer_meta__"]
}

/// Checks one trace's records form a tree under one root, every `.start`
/// having its `.end`; returns the root's span id.
fn assert_one_tree(records: &[&Json]) -> String {
    let roots: Vec<_> = records
        .iter()
        .filter(|r| {
            meta(r)["event"].as_str().unwrap().ends_with(".start")
                && meta(r)["parent_span_id"].is_null()
        })
        .collect();
    assert_eq!(roots.len(), 1, "one root span");
    let root = meta(roots[0])["span_id"].as_str().unwrap().to_owned();
    let spans: std::collections::HashSet<_> = records
        .iter()
        .map(|r| meta(r)["span_id"].as_str().unwrap())
        .collect();
    for r in records {
        let m = meta(r);
        let parent = &m["parent_span_id"];
        assert!(
            parent.is_null() || spans.contains(parent.as_str().unwrap()),
            "dangling parent in {r}"
        );
        let event = m["event"].as_str().unwrap();
        if let Some(name) = event.strip_suffix(".start") {
            assert_eq!(m["provisional"], true);
            let end = format!("{name}.end");
            assert!(
                records.iter().any(|e| meta(e)["event"] == end.as_str() && meta(e)["span_id"] == m["span_id"]),
                "{event} has no matching end"
            );
        }
    }
    root
}

#[test]
fn checkout_writes_one_tree_per_order_with_the_declined_payment_at_error() {
    let out = run(&mut example("checkout"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    for card in ["4242424242424242", "4000000000000002", "5555555555554444"] {
        assert!(
            !stdout.contains(card),
            "card {card} written in full:\n{stdout}"
        );
    }
    let records = parse_lines(&stdout);
    records.iter().for_each(assert_wire_record);
    let mut traces: Vec<String> = Vec::new();
    for r in &records {
        let t = meta(r)["trace_id"]
            .as_str()
            .expect("every record is in a trace")
            .to_owned();
        if !traces.contains(&t) {
            traces.push(t);
        }
    }
    assert_eq!(traces.len(), 3, "one trace per order");
    for (i, trace) in traces.iter().enumerate() {
        let in_trace: Vec<&Json> = records
            .iter()
            .filter(|r| meta(r)["trace_id"] == trace.as_str())
            .collect();
        let root = assert_one_tree(&in_trace);
        for step in [
            "validate_cart.start",
            "reserve_inventory.start",
            "charge_payment.start",
        ] {
            let rec = in_trace.iter().find(|r| meta(r)["event"] == step).unwrap();
            assert_eq!(
                meta(rec)["parent_span_id"],
                root.as_str(),
                "{step} is a child of the order"
            );
        }
        let root_end = in_trace
            .iter()
            .find(|r| meta(r)["event"] == "process_order.end")
            .unwrap();
        let payment_end = in_trace
            .iter()
            .find(|r| meta(r)["event"] == "charge_payment.end")
            .unwrap();
        if i == 1 {
            assert_eq!(meta(payment_end)["level"], "error");
            assert_eq!(payment_end["error"], "card [REDACTED] declined");
            assert_eq!(meta(root_end)["level"], "error");
            assert!(
                !in_trace
                    .iter()
                    .any(|r| meta(r)["event"] == "send_confirmation.start")
            );
        } else {
            assert_eq!(meta(payment_end)["level"], "info");
            assert!(in_trace.iter().any(|r| meta(r)["event"] == "email_sent"));
        }
    }
    let started = records
        .iter()
        .find(|r| meta(r)["event"] == "checkout_started")
        .unwrap();
    assert_eq!(started["items"][0]["sku"], "BOOK-42");
    assert_eq!(started["total"], 25.0);
    assert_eq!(meta(started)["function"], "checkout");
    let requested = records
        .iter()
        .find(|r| meta(r)["event"] == "payment_requested")
        .unwrap();
    assert_eq!(requested["card"], "[REDACTED]", "redaction at work");
}

#[test]
fn checkout_against_an_ingest_server_stores_every_record() {
    let server = IngestServer::start(Answer::Reference);
    let out = run(example("checkout").env("LOG_TRG", &server.url));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(server.batches().len(), 3, "one batch per order");
    let total = server.records().len();
    assert!(total > 30);
    assert_eq!(stderr.matches(" ingested").count(), 3, "{stderr}");
    assert_eq!(
        stderr.matches(", 0 refused, 0 dropped").count(),
        3,
        "{stderr}"
    );
}

/// The `aitrace-unsent-…` files a run left in `dir` (its `TMPDIR`), and
/// the records in them.
fn unsent_files(dir: &std::path::Path) -> (Vec<PathBuf>, Vec<Json>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("aitrace-unsent-"))
        })
        .collect();
    files.sort();
    let records = files
        .iter()
        .flat_map(|f| parse_lines(&std::fs::read_to_string(f).unwrap()))
        .collect();
    (files, records)
}

/// How many records `checkout` writes.
fn checkout_records() -> usize {
    let out = run(&mut example("checkout"));
    parse_lines(&String::from_utf8(out.stdout).unwrap()).len()
}

/// Issue 18, item 10: every flush fails (no server). The example exits 1,
/// but shuts down first: every record is in an `aitrace-unsent-…` file,
/// whose path is printed.
#[test]
fn checkout_against_a_dead_server_writes_every_record_to_a_file_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let out = example("checkout")
        .env("LOG_TRG", dead_url())
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (files, records) = unsent_files(tmp.path());
    assert!(!files.is_empty(), "{stderr}");
    for file in &files {
        assert!(
            stderr.contains(&file.display().to_string()),
            "the path is printed: {stderr}"
        );
    }
    assert_eq!(records.len(), checkout_records(), "{stderr}");
}

/// Issue 18, item 9: a receiver that refuses every batch (`405`, as a
/// backend without the endpoint answers). The example says what was
/// refused and where it was written, and exits 1.
#[test]
fn checkout_against_a_receiver_that_refuses_says_what_was_refused() {
    let server = IngestServer::start(Answer::Status(405, "Method Not Allowed".into()));
    let tmp = tempfile::tempdir().unwrap();
    let out = example("checkout")
        .env("LOG_TRG", &server.url)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (files, records) = unsent_files(tmp.path());
    assert_eq!(files.len(), 1, "{files:?}\n{stderr}");
    assert_eq!(records.len(), checkout_records(), "{stderr}");
    let refused: usize = stderr
        .lines()
        .filter_map(|l| l.split(": 0 delivered, ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(refused, records.len(), "{stderr}");
    assert!(stderr.contains("HTTP 405"), "{stderr}");
    assert!(stderr.contains(&files[0].display().to_string()), "{stderr}");
    assert!(server.batches().is_empty());
}

#[test]
fn checkout_with_an_html_target_writes_a_report_of_every_order() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("trace.html");
    run(example("checkout").env("LOG_TRG", &html));
    let jsonl = dir.path().join("trace.jsonl");
    run(example("checkout").env("LOG_TRG", &jsonl));
    let page = std::fs::read_to_string(&html).unwrap();
    for external in ["http://", "https://", "src=", "href=", "url("] {
        assert!(!page.contains(external), "found {external}");
    }
    let open = r#"<script type="application/json" id="aitrace-data">"#;
    let start = page.find(open).unwrap() + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    let data: Json = serde_json::from_str(&page[start..end]).unwrap();
    let records = data["records"].as_array().unwrap();
    records.iter().for_each(assert_wire_record);
    // Two runs have different ids and times: compare what each record says.
    let shape = |r: &Json| {
        let mut r = r.clone();
        for key in ["timestamp", "trace_id", "span_id", "parent_span_id"] {
            r["__tracer_meta__"].as_object_mut().unwrap().remove(key);
        }
        r.as_object_mut().unwrap().remove("duration_ms");
        r
    };
    let expected = parse_lines(&std::fs::read_to_string(&jsonl).unwrap());
    assert_eq!(
        records.iter().map(shape).collect::<Vec<_>>(),
        expected.iter().map(shape).collect::<Vec<_>>(),
        "the report holds every record of the three flushes"
    );
    let traces = data["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 3);
    for (trace, error) in traces.iter().zip([false, true, false]) {
        assert_eq!(trace["name"], "process_order");
        assert_eq!(trace["error"], error, "{trace}");
        let id = trace["trace_id"].as_str().unwrap();
        let count = records.iter().filter(|r| meta(r)["trace_id"] == id).count();
        assert_eq!(trace["records"], count);
    }
}

fn by_event<'a>(records: &'a [Json], event: &str) -> Vec<&'a Json> {
    records
        .iter()
        .filter(|r| meta(r)["event"] == event)
        .collect()
}

#[test]
fn mixed_puts_tracing_log_and_slog_records_in_one_trace_with_right_parents() {
    let out = run(&mut example("mixed"));
    let records = parse_lines(&String::from_utf8(out.stdout).unwrap());
    records.iter().for_each(assert_wire_record);
    let refs: Vec<&Json> = records.iter().collect();
    let root = assert_one_tree(&refs);
    let trace = meta(&records[0])["trace_id"].clone();
    assert!(
        records.iter().all(|r| meta(r)["trace_id"] == trace),
        "one trace id across frontends"
    );
    assert_eq!(
        meta(by_event(&records, "checkout_batch.start")[0])["span_id"],
        root.as_str()
    );

    let handle = by_event(&records, "handle_order.start");
    let reserve = by_event(&records, "reserve_inventory.start");
    let charge = by_event(&records, "charge_payment.start");
    let stock = by_event(&records, "stock_reserved"); // from `log`
    let charge_requested = by_event(&records, "charge_requested"); // from `slog`
    assert_eq!(
        (handle.len(), stock.len(), charge_requested.len()),
        (2, 2, 2)
    );
    for i in 0..2 {
        assert_eq!(meta(handle[i])["parent_span_id"], root.as_str());
        assert_eq!(
            meta(reserve[i])["parent_span_id"],
            meta(handle[i])["span_id"]
        );
        assert_eq!(
            meta(charge[i])["parent_span_id"],
            meta(handle[i])["span_id"]
        );
        assert_eq!(
            meta(stock[i])["span_id"],
            meta(reserve[i])["span_id"],
            "log record in its tracing span"
        );
        assert_eq!(meta(stock[i])["logger"], "mixed::inventory");
        assert_eq!(
            meta(charge_requested[i])["span_id"],
            meta(charge[i])["span_id"],
            "slog record in its tracing span"
        );
        assert_eq!(charge_requested[i]["library"], "payments");
        assert_eq!(charge_requested[i]["currency"], "EUR");
    }
    assert_eq!(stock[0]["qty"], 2);
    let declined = by_event(&records, "charge_declined");
    assert_eq!(meta(declined[0])["level"], "error");
    assert_eq!(declined[0]["order_id"], "o2002");
    let ends = by_event(&records, "handle_order.end");
    assert_eq!(meta(ends[0])["level"], "info");
    assert_eq!(meta(ends[1])["level"], "error");
    assert_eq!(ends[1]["error"], "over the card limit");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("{} records: {0} delivered", records.len()))
    );
}

#[test]
fn mixed_against_an_ingest_server_stores_every_record() {
    let server = IngestServer::start(Answer::Reference);
    let out = run(example("mixed").env("LOG_TRG", &server.url));
    let n = server.records().len();
    assert!(n > 20);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!(", {n} ingested")));
}

#[test]
fn custom_frontend_records_join_the_core_spans() {
    let out = run(&mut example("custom_frontend"));
    let records = parse_lines(&String::from_utf8(out.stdout).unwrap());
    records.iter().for_each(assert_wire_record);
    let refs: Vec<&Json> = records.iter().collect();
    let root = assert_one_tree(&refs);
    let login = by_event(&records, "login")[0];
    assert_eq!(meta(login)["logger"], "audit");
    assert_eq!(meta(login)["span_id"], root.as_str());
    assert_eq!(login["allowed"], true);
    let over = by_event(&records, "refund_over_limit")[0];
    assert_eq!(meta(over)["level"], "warning");
    let bulk = by_event(&records, "bulk_refund.start")[0];
    assert_eq!(meta(over)["span_id"], meta(bulk)["span_id"]);
    assert_eq!(by_event(&records, "refund_issued").len(), 3);
    assert_eq!(
        by_event(&records, "bulk_refund.end")[0]["refunded_total"],
        1611.5
    );
    assert_eq!(meta(records.last().unwrap())["event"], "admin_session.end");
}

fn spooled_lines(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for output in std::fs::read_dir(dir).unwrap() {
        let output = output.unwrap().path();
        for file in std::fs::read_dir(&output).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "jsonl") {
                n += std::fs::read_to_string(&file).unwrap().lines().count();
            }
        }
    }
    n
}

#[test]
fn durable_outage_leaves_a_spool_that_the_next_process_delivers() {
    let server = aitrace_testkit::FaultServer::start();
    let spool = tempfile::tempdir().unwrap();
    server.set_down(true);
    let started = std::time::Instant::now();
    let out = run(example("durable")
        .args(["300", "--shutdown-ms", "1000"])
        .env("LOG_TRG", &server.url)
        .env("AITRACE_SPOOL_DIR", spool.path()));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("captured=302"), "{stderr}");
    assert_eq!(spooled_lines(spool.path()), 302, "{stderr}");

    server.set_down(false);
    let out = run(example("durable")
        .args(["5"])
        .env("LOG_TRG", &server.url)
        .env("AITRACE_SPOOL_DIR", spool.path()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (unique, _duplicates) = aitrace_testkit::count_unique(&server.records());
    assert_eq!(unique, 302 + 7, "{stderr}");
    assert_eq!(spooled_lines(spool.path()), 0, "the spool was emptied");
    assert!(stderr.contains("replayed=302"), "{stderr}");
}

#[test]
fn durable_flush_timeout_against_a_hung_server_spools_for_the_next_process() {
    let server = aitrace_testkit::FaultServer::start();
    server.set_default(aitrace_testkit::Fault::Hang);
    let spool = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = run(example("durable")
        .args(["50", "--flush-timeout-ms", "300", "--shutdown-ms", "500"])
        .env("LOG_TRG", &server.url)
        .env("AITRACE_SPOOL_DIR", spool.path()));
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("durable: flush: flush did not finish"),
        "{stderr}"
    );
    assert_eq!(spooled_lines(spool.path()), 52, "{stderr}");

    server.set_default(aitrace_testkit::Fault::Ok);
    run(example("durable")
        .args(["0"])
        .env("LOG_TRG", &server.url)
        .env("AITRACE_SPOOL_DIR", spool.path()));
    let (unique, _duplicates) = aitrace_testkit::count_unique(&server.records());
    assert_eq!(unique, 52 + 2);
}

#[test]
fn durable_killed_after_a_flush_leaves_a_spool_that_the_next_process_delivers() {
    use std::io::BufRead;
    let server = aitrace_testkit::FaultServer::start();
    server.set_down(true);
    let spool = tempfile::tempdir().unwrap();
    let mut child = example("durable")
        .args(["120", "--flush-timeout-ms", "10000", "--then-wait"])
        .env("LOG_TRG", &server.url)
        .env("AITRACE_SPOOL_DIR", spool.path())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (said, hears) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if said.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = hears
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no 'waiting' line: {seen:?}"));
        if line.contains("durable: waiting") {
            break;
        }
        seen.push(line);
    }
    // SIGKILL: no destructor, no shutdown runs.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(spooled_lines(spool.path()), 122, "{seen:?}");

    server.set_down(false);
    run(example("durable")
        .args(["0"])
        .env("LOG_TRG", &server.url)
        .env("AITRACE_SPOOL_DIR", spool.path()));
    let (unique, _duplicates) = aitrace_testkit::count_unique(&server.records());
    assert_eq!(unique, 122 + 2);
    assert_eq!(spooled_lines(spool.path()), 0);
}

/// The OTLP example, configured only through `OTEL_*` variables, in both
/// encodings: every event arrives as a log record linked to a span of the
/// same trace, and every span has its parent in the batch.
#[test]
fn otlp_sends_logs_and_spans_configured_by_the_environment() {
    for protocol in ["http/protobuf", "http/json"] {
        let rx = aitrace_testkit::OtlpReceiver::start();
        let out = run(example("otlp")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
            .env("OTEL_SERVICE_NAME", "shop"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("0 dropped"), "{stderr}");
        let requests = rx.requests();
        assert!(
            requests.iter().all(|r| r.error.is_none() && r.gzip),
            "{requests:?}"
        );
        let spans = rx.spans();
        let logs = rx.log_records();
        assert_eq!(
            spans.len(),
            4,
            "two orders, each handle_order > charge_card"
        );
        assert_eq!(logs.len(), 5, "{logs:?}");
        for log in &logs {
            let span = spans.iter().find(|s| s.span_id == log.span_id).unwrap();
            assert_eq!(span.trace_id, log.trace_id);
        }
        for span in spans.iter().filter(|s| s.name == "charge_card") {
            let parent = spans
                .iter()
                .find(|p| p.span_id == span.parent_span_id)
                .unwrap();
            assert_eq!(parent.name, "handle_order");
        }
        let failed = logs.iter().find(|l| l.severity_number == 17).unwrap();
        assert_eq!(failed.severity_text, "ERROR");
    }
}

/// Issue 18, item 12: a receiver that refuses every request (415) makes
/// the example say the records were refused, not only dropped.
#[test]
fn otlp_says_a_refused_batch_was_refused() {
    let rx = aitrace_testkit::OtlpReceiver::start();
    rx.script((0..20).map(|_| aitrace_testkit::OtlpAnswer::rpc_status(415, "unsupported")));
    let out = example("otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint)
        .env("OTEL_SERVICE_NAME", "shop")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains(" dropped ("))
        .unwrap_or_else(|| panic!("{stderr}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // captured, delivered, dropped, refused, retried
    let [captured, delivered, dropped, refused, _] = numbers[..] else {
        panic!("{line}");
    };
    assert!(captured > 0, "{line}");
    assert_eq!(
        (delivered, dropped, refused),
        (0, captured, captured),
        "{line}"
    );
}

#[test]
fn traceparent_puts_the_client_and_server_spans_in_one_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traceparent.jsonl");
    let out = run(example("traceparent").arg(&path));
    assert!(out.stdout.is_empty(), "records go to the file");
    let records = parse_lines(&std::fs::read_to_string(&path).unwrap());
    records.iter().for_each(assert_wire_record);
    let trace = meta(&records[0])["trace_id"].as_str().unwrap().to_owned();
    assert!(
        records
            .iter()
            .all(|r| meta(r)["trace_id"] == trace.as_str()),
        "one trace id across client and server"
    );
    let refs: Vec<&Json> = records.iter().collect();
    let root = assert_one_tree(&refs);
    let client = by_event(&records, "place_order.start")[0];
    let server = by_event(&records, "handle_order.start")[0];
    assert_eq!(meta(client)["span_id"], root.as_str());
    assert_eq!(
        meta(server)["parent_span_id"],
        meta(client)["span_id"],
        "the server's span is a child of the client's"
    );
    assert_eq!(
        meta(by_event(&records, "order_priced")[0])["span_id"],
        meta(server)["span_id"]
    );
    let header = format!(
        "00-{trace}-{}-01",
        meta(client)["span_id"].as_str().unwrap()
    );
    assert_eq!(
        by_event(&records, "calling_server")[0]["traceparent"],
        header.as_str()
    );
    assert_eq!(
        server["traceparent"],
        header.as_str(),
        "what the server received"
    );
    assert_eq!(
        by_event(&records, "server_answered")[0]["body"],
        r#"{"total":469.74}"#
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("traceparent: trace {trace}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{} records: {0} delivered", records.len())),
        "{stderr}"
    );
}

/// One row of the sqlite example's table.
#[derive(Debug)]
struct Row {
    level: String,
    event: String,
    trace_id: Option<String>,
    span_id: Option<String>,
    parent_span_id: Option<String>,
    record_id: Option<String>,
    fields: Json,
}

fn sqlite_rows(db: &std::path::Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut query = conn
        .prepare(
            "SELECT level, event, trace_id, span_id, parent_span_id, record_id, fields
             FROM records ORDER BY id",
        )
        .unwrap();
    query
        .query_map([], |row| {
            Ok(Row {
                level: row.get(0)?,
                event: row.get(1)?,
                trace_id: row.get(2)?,
                span_id: row.get(3)?,
                parent_span_id: row.get(4)?,
                record_id: row.get(5)?,
                fields: serde_json::from_str(&row.get::<_, String>(6)?).unwrap(),
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Issue 19: a user's own output (an `Export` impl in the example) gets
/// background delivery, the split of a refused batch and `rejected/`.
#[test]
fn sqlite_stores_every_good_record_and_sets_the_one_that_breaks_a_check_aside() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.sqlite3");
    let out = run(example("sqlite").arg(&db));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report = stdout.lines().next().unwrap();
    assert!(
        report.starts_with("11 records: 10 delivered, 1 refused, 1 dropped"),
        "{stdout}"
    );
    assert!(
        report.contains("refused: sqlite: CHECK constraint failed"),
        "{report}"
    );
    assert_eq!(stdout.lines().nth(1), Some("retries: 0"), "{stdout}");
    // It prints the table too: a line per row.
    assert_eq!(stdout.lines().count(), 12, "{stdout}");

    let rows = sqlite_rows(&db);
    let events: Vec<&str> = rows.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "import_orders.start",
            "import_started",
            "store_order.start",
            "row_parsed",
            "store_order.end",
            "store_order.start",
            "row_parsed",
            "large_order",
            "store_order.end",
            "import_orders.end"
        ]
    );
    // One trace, 32 hex digits, every record with its own id.
    let trace = rows[0].trace_id.clone().unwrap();
    assert_eq!(trace.len(), 32);
    assert!(rows.iter().all(|r| r.trace_id.as_deref() == Some(&trace)));
    let ids: std::collections::HashSet<_> = rows.iter().map(|r| r.record_id.clone()).collect();
    assert!(!ids.contains(&None));
    assert_eq!(ids.len(), rows.len());
    // The parents: the job is the root; each order's span is its child.
    let root = rows[0].span_id.clone().unwrap();
    assert_eq!(rows[0].parent_span_id, None);
    assert_eq!(rows[1].span_id.as_deref(), Some(root.as_str()));
    for start in [2, 5] {
        assert_eq!(rows[start].parent_span_id.as_deref(), Some(root.as_str()));
        assert_ne!(rows[start].span_id.as_deref(), Some(root.as_str()));
        assert_eq!(rows[start + 1].span_id, rows[start].span_id);
    }
    assert_ne!(rows[2].span_id, rows[5].span_id);
    assert_eq!(rows[7].span_id, rows[5].span_id);
    assert_eq!(rows[9].span_id.as_deref(), Some(root.as_str()));
    // Levels as the wire writes them; user fields as JSON.
    assert_eq!(rows[7].level, "warning");
    assert_eq!(rows[7].fields["total"], 240.0);
    assert_eq!(rows[2].fields["order_id"], "o-1");
    assert_eq!(rows[1].fields["source"], "orders.csv");
    assert_eq!(rows[9].fields["orders"], 2);
    assert!(
        rows.iter()
            .all(|r| r.fields.get("__tracer_meta__").is_none())
    );

    // The bad record is in the spool's rejected/ folder, alone, with why.
    let spool = dir.path().join("log.sqlite3.spool");
    let output_dir = std::fs::read_dir(&spool)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rejected: Vec<PathBuf> = std::fs::read_dir(output_dir.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let kept: Vec<String> = rejected
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(kept.len(), 1, "{rejected:?}");
    let lines = parse_lines(&kept[0]);
    assert_eq!(lines.len(), 1);
    assert_eq!(meta(&lines[0])["event"], "");
    assert_eq!(meta(&lines[0])["trace_id"], trace.as_str());
    let reason = rejected
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "reason"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap();
    assert!(reason.contains("CHECK constraint failed"), "{reason}");
}

/// Issue 19: `SQLITE_BUSY` is `Error::retry_later`. Another connection holds
/// the write lock until the example says it will retry; the retry delivers.
#[test]
fn sqlite_retries_a_batch_while_another_connection_holds_the_database() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.sqlite3");
    // A first run makes the table.
    run(example("sqlite").arg(&db));
    assert_eq!(sqlite_rows(&db).len(), 10);

    let holder = rusqlite::Connection::open(&db).unwrap();
    // A write lock; readers (the example's schema check) still get in.
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut child = example("sqlite")
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        // Ends when the example ends: it cannot hang the test on its own.
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        said.push_str(&line);
        if line.contains("retrying later") {
            break;
        }
    }
    assert!(said.contains("database is locked"), "{said}");
    holder.execute_batch("ROLLBACK").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{said}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("11 records: 10 delivered, 1 refused, 1 dropped"),
        "{stdout}"
    );
    let retries: u64 = stdout.lines().nth(1).unwrap()["retries: ".len()..]
        .parse()
        .unwrap();
    assert!(retries >= 1, "{stdout}");
    assert_eq!(sqlite_rows(&db).len(), 20, "both runs' records");
}

/// Issue 21: with retention on, every failed request arrives with all its
/// debug records and every successful one at `info` only (the example
/// checks each request and exits 1 otherwise), in fewer bytes.
#[test]
fn retention_ships_the_debug_records_of_failed_requests_only() {
    let out = run(&mut example("retention"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("failed requests: 20 of 1000, each kept whole (failed)"),
        "{stdout}"
    );
    let records = |prefix: &str| -> usize {
        let line = stdout.lines().find(|l| l.starts_with(prefix)).unwrap();
        line[prefix.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(records("retention off:"), 9000, "{stdout}");
    assert_eq!(
        records("retention on:"),
        5080,
        "4 debug records kept for each of 20 failures"
    );
}

/// Each span named `name` among `records`: its `.start` and its `.end`.
fn span_pair<'a>(records: &[&'a Json], name: &str) -> Vec<(&'a Json, &'a Json)> {
    records
        .iter()
        .filter(|r| meta(r)["event"] == format!("{name}.start").as_str())
        .map(|start| {
            let end = records
                .iter()
                .find(|r| {
                    meta(r)["event"] == format!("{name}.end").as_str()
                        && meta(r)["span_id"] == meta(start)["span_id"]
                })
                .unwrap_or_else(|| panic!("{name} has no end"));
            (*start, *end)
        })
        .collect()
}

#[test]
fn web_puts_each_request_in_one_trace_across_both_services() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.jsonl");
    let out = run(example("web").arg(&path));
    assert!(out.stdout.is_empty(), "records go to the file");
    let records = parse_lines(&std::fs::read_to_string(&path).unwrap());
    records.iter().for_each(assert_wire_record);
    let mut traces: Vec<String> = records
        .iter()
        .map(|r| meta(r)["trace_id"].as_str().unwrap().to_owned())
        .collect();
    traces.dedup();
    assert_eq!(traces.len(), 4, "one trace per request, in order");
    for (n, trace) in traces.iter().enumerate() {
        let mine: Vec<&Json> = records
            .iter()
            .filter(|r| meta(r)["trace_id"] == trace.as_str())
            .collect();
        let root = assert_one_tree(&mine);
        let shop = span_pair(&mine, "GET /orders/{order_id}/{sku}");
        let client = span_pair(&mine, "GET");
        let stock = span_pair(&mine, "GET /stock/{sku}");
        assert_eq!(
            (shop.len(), client.len(), stock.len()),
            (1, 1, 1),
            "trace {n}"
        );
        let (shop, client, stock) = (shop[0], client[0], stock[0]);
        // shop's server span is the root; the client span under it; stock's
        // server span under the client span, joined only by the header.
        assert_eq!(meta(shop.0)["span_id"], root.as_str());
        assert_eq!(meta(client.0)["parent_span_id"], meta(shop.0)["span_id"]);
        assert_eq!(meta(stock.0)["parent_span_id"], meta(client.0)["span_id"]);
        assert_eq!(
            stock.0["traceparent"],
            format!(
                "00-{trace}-{}-01",
                meta(client.0)["span_id"].as_str().unwrap()
            )
            .as_str()
        );
        for (start, kind) in [
            (shop.0, "server"),
            (client.0, "client"),
            (stock.0, "server"),
        ] {
            assert_eq!(start["otel.kind"], kind);
            assert_eq!(start["http.request.method"], "GET");
        }
        assert_eq!(shop.0["http.route"], "/orders/{order_id}/{sku}");
        assert_eq!(stock.0["http.route"], "/stock/{sku}");
        // The second order's request carries no x-request-id.
        let request_id = [Some("req-1001"), None, Some("req-1003"), None][n];
        assert_eq!(shop.0["request_id"].as_str(), request_id, "trace {n}");
        let broken = n == 2;
        let codes = [&shop.1, &client.1, &stock.1]
            .map(|end| end["http.response.status_code"].as_u64().unwrap());
        let levels = [&shop.1, &client.1, &stock.1].map(|end| meta(end)["level"].as_str().unwrap());
        if broken {
            assert_eq!(codes, [502, 500, 500]);
            assert_eq!(levels, ["error"; 3], "failed on both sides");
            assert_eq!(client.1["error.type"], "500");
        } else {
            assert_eq!(codes, [200; 3]);
            assert_eq!(levels, ["info"; 3]);
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("web: 1 of 4 orders failed"), "{stderr}");
    assert!(
        stderr.contains(&format!("{} records: {0} delivered", records.len())),
        "{stderr}"
    );
}

/// The web example's spans over OTLP (what Jaeger, Tempo or Phoenix get):
/// kinds server and client, HTTP attributes, the failed order's spans with
/// an error status on both sides.
#[test]
fn web_over_otlp_sends_server_and_client_spans_with_http_meaning() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
    let rx = aitrace_testkit::OtlpReceiver::start();
    let out = run(example("web")
        .env("LOG_TRG", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 dropped"), "{stderr}");
    let spans = rx.spans();
    assert_eq!(
        spans.len(),
        12,
        "4 orders × shop server, client, stock server"
    );
    let attribute = |span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref()?.value.clone())
    };
    let mut failed = 0;
    for span in &spans {
        let kind = match span.name.as_str() {
            "GET /orders/{order_id}/{sku}" | "GET /stock/{sku}" => SpanKind::Server,
            "GET" => SpanKind::Client,
            other => panic!("unexpected span {other}"),
        };
        assert_eq!(span.kind, kind as i32, "{}", span.name);
        assert_eq!(
            attribute(span, "http.request.method"),
            Some(Any::StringValue("GET".into()))
        );
        assert!(
            attribute(span, "otel.kind").is_none(),
            "read as the kind, not an attribute"
        );
        let code = match attribute(span, "http.response.status_code") {
            Some(Any::IntValue(code)) => code,
            other => panic!("{}: status {other:?}", span.name),
        };
        let status = span.status.as_ref().map_or(0, |s| s.code);
        if code >= 500 {
            failed += 1;
            assert_eq!(status, StatusCode::Error as i32, "{}", span.name);
        } else {
            assert_ne!(status, StatusCode::Error as i32, "{}", span.name);
        }
    }
    assert_eq!(failed, 3, "the broken order fails on both sides");
}
