//! Runs the built `aitrace` binary on real files, as a user would.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aitrace_testkit::{Answer, Fault, FaultServer, IngestServer, dead_url};
use serde_json::Value as Json;

/// The checkout example's stdout (3 orders, the second's payment declined),
/// captured with `cargo run -p aitrace-examples --example checkout`.
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkout.jsonl")
}

fn checkout_lines() -> Vec<Json> {
    std::fs::read_to_string(checkout())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn meta(record: &Json) -> &Json {
    &record["__tracer_meta__"]
}

fn aitrace() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aitrace"));
    cmd.env("NO_COLOR", "1")
        .env_remove("LOG_TRG")
        .env_remove("RUST_LOG");
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> (Output, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

#[test]
fn view_draws_one_tree_per_order_with_the_declined_payment_marked() {
    let (out, stdout, stderr) = run(aitrace().arg("view").arg(checkout()));
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains('\u{1b}'), "no colour when not a terminal");
    assert_eq!(stdout.matches("\ntrace ").count() + 1, 3, "{stdout}");
    assert_eq!(stdout.matches("  ERROR\n").count(), 1, "one trace flagged");
    // The order is the root, its steps one level in, their records two in.
    let lines: Vec<&str> = stdout.lines().collect();
    let root = lines
        .iter()
        .position(|l| l.ends_with("▸ process_order") || l.contains("▸ process_order "))
        .unwrap();
    assert!(lines[root].starts_with("  ") && !lines[root].starts_with("   "));
    let declined = lines
        .iter()
        .find(|l| l.contains("▸ charge_payment") && l.contains("✖ card 4000000000000002 declined"))
        .expect("the failed span shows its error");
    assert!(
        declined.starts_with("    ") && !declined.starts_with("     "),
        "{declined}"
    );
    assert!(
        declined.contains("amount=469.74"),
        "span fields shown: {declined}"
    );
    let payment = lines
        .iter()
        .find(|l| l.contains("payment_declined"))
        .unwrap();
    assert!(
        payment.starts_with("      ") && payment.contains("ERROR"),
        "{payment}"
    );
    assert!(stdout.contains("items=1"), "user fields compactly");
}

#[test]
fn view_reads_a_pipe_in_any_layout_and_skips_bad_lines_with_their_number() {
    let input = [
        r#"{"event":"flat_one","level":"warning","timestamp":"2026-11-27T10:00:00.000001Z","trace_id":"7902f7b02e9e2b9ce0c11a928f3e2153","span_id":"c945084284bd5c4f","parent_span_id":"f4c85b034aaea034","n":1}"#,
        "this is not json",
        r#"{"timestamp":"2026-11-27T10:00:00.000000Z","__tracer_meta__":{"timestamp":"2026-11-27T10:00:00.000000Z","event":"no_ids","level":"info"}}"#,
        r#"{"__tracer_meta__":{"event":"job.start","level":"info","trace_id":"7902f7b02e9e2b9ce0c11a928f3e2153","span_id":"aaaaaaaaaaaaaaaa","provisional":true}}"#,
    ]
    .join("\n");
    let (out, stdout, stderr) = run_with_stdin(aitrace().arg("view"), &input);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("<stdin>:line 2: skipped: not JSON"),
        "{stderr}"
    );
    assert!(stdout.contains("WARNING flat_one  n=1"), "{stdout}");
    assert!(
        stdout.contains("(parent f4c85b034aaea034 not seen)"),
        "{stdout}"
    );
    assert!(stdout.contains("▸ job (open: no .end"), "{stdout}");
    assert!(stdout.contains("records without a trace id"), "{stdout}");
    assert!(stdout.contains("no_ids"), "{stdout}");
    assert!(
        !stdout.contains("timestamp="),
        "compat's duplicate is not a field: {stdout}"
    );

    let array = format!(
        "[{}]",
        input
            .lines()
            .filter(|l| l.starts_with('{'))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (out, stdout_array, _) = run_with_stdin(aitrace().arg("view").arg("-"), &array);
    assert!(out.status.success());
    assert!(stdout_array.contains("flat_one") && stdout_array.contains("no_ids"));
}

#[test]
fn view_filters_by_level_trace_and_text() {
    let (_, errors, _) = run(aitrace().args(["view", "--level", "error"]).arg(checkout()));
    assert_eq!(
        errors.matches("\ntrace ").count() + 1,
        1,
        "only the declined order: {errors}"
    );
    assert!(errors.contains("payment_declined") && !errors.contains("cart_validated"));

    let records = checkout_lines();
    let last = meta(records.last().unwrap())["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, one, _) = run(aitrace()
        .args(["view", "--trace", &last[..10]])
        .arg(checkout()));
    assert!(
        one.starts_with(&format!("trace {last}")) && one.matches("trace ").count() == 1,
        "{one}"
    );
    assert!(one.contains("o1003") && !one.contains("o1001"));

    let (_, grep, _) = run(aitrace()
        .args(["view", "--grep", "tx_o1001"])
        .arg(checkout()));
    assert!(
        grep.contains("payment_captured") && grep.contains("email_sent"),
        "{grep}"
    );
    assert!(
        !grep.contains("checkout_started") && !grep.contains("o1002"),
        "{grep}"
    );
}

#[test]
fn view_follow_prints_appended_records_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(checkout())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    std::fs::write(&path, format!("{}\n", lines[0])).unwrap();
    let mut child = aitrace()
        .args(["view", "--follow"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {needle:?}: {e}"),
            }
        }
    };
    let first = wait_for("process_order");
    assert!(first.contains("▸ process_order"), "{first}");
    // Append the rest in two writes, the first ending mid-line.
    let rest = lines[1..].join("\n") + "\n";
    let (a, b) = rest.split_at(rest.len() / 2);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(a.as_bytes()).unwrap();
    file.flush().unwrap();
    file.write_all(b.as_bytes()).unwrap();
    drop(file);
    let declined = wait_for("◂ charge_payment 0.");
    let declined = if declined.contains('✖') {
        declined
    } else {
        wait_for("✖ card 4000000000000002 declined")
    };
    assert!(declined.contains("◂ charge_payment"), "{declined}");
    wait_for("checkout_completed  order_id=o1003");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "--follow did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn view_follow_for_stops_by_itself_and_lists_open_spans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.jsonl");
    let line = std::fs::read_to_string(checkout())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(&path, line + "\n").unwrap();
    let started = Instant::now();
    let (out, stdout, stderr) = run(aitrace()
        .args(["view", "--follow", "--follow-for", "0.3"])
        .arg(&path));
    assert!(out.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stdout.contains("still open: process_order"), "{stdout}");
}

/// The JSON a report embeds.
fn embedded(page: &str) -> Json {
    let open = r#"<script type="application/json" id="aitrace-data">"#;
    let start = page.find(open).expect("data element") + open.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

#[test]
fn report_embeds_every_trace_and_record_of_the_checkout_example() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let (out, _, stderr) = run(aitrace().arg("report").arg(checkout()).arg("-o").arg(&html));
    assert!(out.status.success(), "{stderr}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    for external in [
        "http://", "https://", "//cdn", "src=", "href=", "@import", "url(",
    ] {
        assert!(
            !page.contains(external),
            "the page loads nothing: found {external}"
        );
    }
    let data = embedded(&page);
    let expected = checkout_lines();
    assert_eq!(
        data["records"].as_array().unwrap(),
        &expected,
        "every record, as written"
    );
    let mut trace_ids: Vec<&str> = expected
        .iter()
        .map(|r| meta(r)["trace_id"].as_str().unwrap())
        .collect();
    trace_ids.dedup();
    let traces = data["traces"].as_array().unwrap();
    let listed: Vec<&str> = traces
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, trace_ids, "each trace once, in start order");
    for (trace, id) in traces.iter().zip(&trace_ids) {
        let count = expected
            .iter()
            .filter(|r| meta(r)["trace_id"] == *id)
            .count();
        assert_eq!(trace["records"], count);
        assert_eq!(trace["name"], "process_order");
        assert!(trace["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(trace["start"].as_str().unwrap().ends_with('Z'));
    }
    let errors: Vec<bool> = traces
        .iter()
        .map(|t| t["error"].as_bool().unwrap())
        .collect();
    assert_eq!(errors, [false, true, false], "the declined payment");
}

#[test]
fn validate_accepts_the_example_and_reports_each_problem_with_its_line() {
    let (out, stdout, stderr) = run(aitrace().arg("validate").arg(checkout()));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("49 records checked in 1 files, 0 problems"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(checkout())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(
        &bad,
        format!(
            "{good}\n{}\n{{\"__tracer_meta__\":{{\"timestamp\":\"2026-11-27T10:15:02.316023Z\",\"event\":\"e\",\"level\":\"warn\",\"trace_id\":\"7902F7B02E9E2B9CE0C11A928F3E2153\",\"span_id\":\"c945084284bd5c4f\"}}}}\nnot json\n",
            good.replace("\"level\":\"info\"", "\"level\":7")
        ),
    )
    .unwrap();
    let (out, stdout, _) = run(aitrace().arg("validate").arg(&bad));
    assert_eq!(out.status.code(), Some(1));
    let name = bad.display().to_string();
    assert!(
        stdout.contains(&format!("{name}:line 2: level is 7, not a string")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{name}:line 3: level \"warn\" is not one of")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{name}:line 3: trace_id \"7902F7B02E9E2B9CE0C11A928F3E2153\""
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{name}:line 4: not JSON")),
        "{stdout}"
    );
    assert!(!stdout.contains("line 1:"), "{stdout}");
}

#[test]
fn send_delivers_in_batches_and_deletes_only_files_whose_every_record_was_acknowledged() {
    let server = IngestServer::start(Answer::Reference);
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("aitrace-unsent-1.jsonl");
    std::fs::copy(checkout(), &whole).unwrap();
    let damaged = dir.path().join("aitrace-unsent-2.jsonl");
    let first = std::fs::read_to_string(checkout())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(&damaged, format!("{first}\n{{\"torn\":\n")).unwrap();

    let (out, stdout, stderr) = run(aitrace().arg("send").arg(&whole).arg(&damaged).args([
        "--to",
        &server.url,
        "--batch-size",
        "20",
        "--delete-after",
    ]));
    assert_eq!(
        out.status.code(),
        Some(1),
        "an invalid line is not delivered: {stderr}"
    );
    assert_eq!(stdout, "", "data only on stdout; the summary is on stderr");
    assert!(
        stderr.contains("aitrace-unsent-2.jsonl:line 2: skipped as invalid"),
        "{stderr}"
    );
    assert!(stderr.contains("sent 50 records"), "{stderr}");
    assert!(
        stderr.contains("1 skipped as invalid, 0 failed"),
        "{stderr}"
    );
    assert!(!whole.exists(), "fully acknowledged: deleted");
    assert!(damaged.exists(), "a file with an invalid line is kept");

    let sizes: Vec<usize> = server
        .batches()
        .iter()
        .map(|b| b.as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [20, 20, 9, 1], "batches never span files");
    let mut expected = checkout_lines();
    expected.push(serde_json::from_str(&first).unwrap());
    assert_eq!(
        server.records(),
        expected,
        "records arrive exactly as written"
    );
}

#[test]
fn send_retries_transient_failures_and_fails_loudly_when_nothing_answers() {
    let server = FaultServer::start();
    server.script([Fault::Status(503), Fault::RetryAfter(429, "0".into())]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.jsonl");
    std::fs::copy(checkout(), &file).unwrap();
    let (out, _, stderr) =
        run(aitrace()
            .arg("send")
            .arg(&file)
            .args(["--to", &server.url, "--delete-after"]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(server.requests(), 3, "two refusals, then delivered");
    assert_eq!(server.records().len(), 49);
    assert!(!file.exists());

    std::fs::copy(checkout(), &file).unwrap();
    let (out, _, stderr) = run(aitrace().arg("send").arg(&file).args([
        "--to",
        &dead_url(),
        "--attempts",
        "2",
        "--delete-after",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("was not delivered") && stderr.contains("after 2 attempts"),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 skipped as invalid, 49 failed"),
        "{stderr}"
    );
    assert!(file.exists(), "nothing acknowledged: kept");
}

/// `aitrace send` retries and counts each batch itself, from the answer of
/// a flush on its own thread: `AITRACE_BACKGROUND=1`, exported for a
/// service, made its flushes background ones, which report records the
/// delivery thread gave up on as handled, so `--delete-after` deleted a
/// file nothing had received.
#[test]
fn send_ignores_aitrace_background_and_keeps_what_was_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.jsonl");
    std::fs::copy(checkout(), &file).unwrap();
    let (out, _, stderr) = run(aitrace()
        .env("AITRACE_BACKGROUND", "1")
        .env("TMPDIR", dir.path())
        .arg("send")
        .arg(&file)
        .args(["--to", &dead_url(), "--attempts", "2", "--delete-after"]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("0 skipped as invalid, 49 failed"),
        "{stderr}"
    );
    assert!(file.exists(), "nothing acknowledged: kept");
}

/// Records a server refuses for good are set aside by the direct flush,
/// which then reports `Ok`: `send` counted them as sent, exited 0 and
/// `--delete-after` deleted the only copy outside a temp folder.
#[test]
fn send_counts_refused_records_as_failed_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.jsonl");
    std::fs::copy(checkout(), &file).unwrap();
    let server = IngestServer::start(Answer::Status(403, "no such key".into()));
    let (out, _, stderr) = run(aitrace()
        .env("TMPDIR", dir.path())
        .arg("send")
        .arg(&file)
        .args(["--to", &server.url, "--delete-after"]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sent 0 records") && stderr.contains("49 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(file.exists(), "nothing stored: kept");
}

#[test]
fn send_to_an_html_target_writes_one_report_of_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("all.html");
    let (out, _, stderr) = run(aitrace()
        .arg("send")
        .arg(checkout())
        .arg(checkout())
        .args(["--batch-size", "7", "--to"])
        .arg(&html));
    assert!(out.status.success(), "{stderr}");
    let data = embedded(&std::fs::read_to_string(&html).unwrap());
    assert_eq!(data["records"].as_array().unwrap().len(), 98);
    assert_eq!(data["traces"].as_array().unwrap().len(), 3);
}

/// A spool folder as the core lays it out: batches named
/// `<micros>-<pid>-<seq>.jsonl`, `rejected/` with `.reason` files, `corrupt/`.
fn spool_fixture(root: &Path) -> PathBuf {
    let output = root.join("http-0123456789abcdef");
    std::fs::create_dir_all(output.join("rejected")).unwrap();
    std::fs::create_dir_all(output.join("corrupt")).unwrap();
    let lines: Vec<String> = std::fs::read_to_string(checkout())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    std::fs::write(
        output.join("00001795774502316023-0000000042-000001.jsonl"),
        lines[..30].join("\n") + "\n",
    )
    .unwrap();
    std::fs::write(
        output.join("00001795774503000000-0000000042-000002.jsonl"),
        lines[30..].join("\n") + "\n",
    )
    .unwrap();
    std::fs::write(
        output.join("rejected/00001795774501000000-0000000042-000009.jsonl"),
        lines[0].clone() + "\n",
    )
    .unwrap();
    std::fs::write(
        output.join("rejected/00001795774501000000-0000000042-000009.reason"),
        "HTTP 400: bad batch\n",
    )
    .unwrap();
    std::fs::write(
        output.join("corrupt/00001795774500000000-0000000042-000003.jsonl"),
        "{\"torn",
    )
    .unwrap();
    output
}

#[test]
fn spool_lists_pending_rejected_and_corrupt_batches() {
    let dir = tempfile::tempdir().unwrap();
    let output = spool_fixture(dir.path());
    let (out, stdout, stderr) = run(aitrace().arg("spool").arg(dir.path()));
    assert!(out.status.success(), "{stderr}");
    let pending_bytes = std::fs::metadata(checkout()).unwrap().len();
    assert!(
        stdout.starts_with(&format!("{}\n", output.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  pending: 2 batches, 49 records, {pending_bytes} bytes, oldest 2026-11-27T10:15:02Z"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("  rejected: 1 batches\n    00001795774501000000-0000000042-000009.jsonl (1 records): HTTP 400: bad batch"), "{stdout}");
    assert!(stdout.contains("  corrupt: 1 files"), "{stdout}");
}

#[test]
fn spool_replay_delivers_pending_batches_and_deletes_them_once_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let output = spool_fixture(dir.path());
    let server = IngestServer::start(Answer::Status(503, "down".into()));
    let (out, _, stderr) = run(aitrace().arg("spool").arg(dir.path()).args([
        "--replay",
        "--attempts",
        "1",
        "--to",
        &server.url,
    ]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&output)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .count(),
        2,
        "kept"
    );

    server.set_answer(Answer::Reference);
    let (out, _, stderr) =
        run(aitrace()
            .arg("spool")
            .arg(dir.path())
            .args(["--replay", "--to", &server.url]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sent 49 records") && stderr.contains("2 files deleted"),
        "{stderr}"
    );
    assert_eq!(server.records(), checkout_lines());
    assert_eq!(
        std::fs::read_dir(&output)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .count(),
        0
    );
    assert!(
        output
            .join("rejected/00001795774501000000-0000000042-000009.jsonl")
            .exists(),
        "rejected batches are not replayed"
    );
}

#[test]
fn every_command_has_help_with_an_example_and_errors_are_one_line() {
    for command in ["view", "report", "send", "spool", "validate"] {
        let (out, stdout, _) = run(aitrace().args([command, "--help"]));
        assert!(out.status.success());
        assert!(
            stdout.contains("Example") && stdout.contains(&format!("aitrace {command} ")),
            "{command}: {stdout}"
        );
    }
    let (out, stdout, _) = run(aitrace().arg("--version"));
    assert!(out.status.success() && stdout.starts_with("aitrace "));

    let (out, stdout, stderr) = run(aitrace().args(["view", "/no/such/file.jsonl"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("aitrace: error: cannot read /no/such/file.jsonl"),
        "{stderr}"
    );

    let (out, _, stderr) = run(aitrace().args(["send", "x.jsonl", "--to", "http://[::1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.starts_with("aitrace: error: bad target"), "{stderr}");
}

/// A record line in the namespaced layout.
fn line(ts_micros: u64, event: &str, trace: &str, span: u64, parent: Option<u64>) -> String {
    let secs = 1_795_774_502 + ts_micros / 1_000_000;
    let time = humantime::format_rfc3339_micros(
        std::time::UNIX_EPOCH
            + Duration::from_secs(secs)
            + Duration::from_micros(ts_micros % 1_000_000),
    );
    let parent = parent.map_or("null".to_owned(), |p| format!("\"{p:016x}\""));
    let provisional = if event.ends_with(".start") {
        r#","provisional":true"#
    } else {
        ""
    };
    format!(
        r#"{{"__tracer_meta__":{{"timestamp":"{time}","event":"{event}","level":"info","trace_id":"{trace}","span_id":"{span:016x}","parent_span_id":{parent}{provisional}}}}}"#
    )
}

#[test]
fn view_merges_several_files_into_one_trace() {
    // Two services' files: the caller's root span in one, the callee's span
    // (its parent the caller's) in the other.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("service_a.jsonl");
    let b = dir.path().join("service_b.jsonl");
    std::fs::write(
        &a,
        [
            line(0, "checkout.start", trace, 1, None),
            line(900, "checkout.end", trace, 1, None),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    std::fs::write(
        &b,
        [
            line(100, "price.start", trace, 2, Some(1)),
            line(800, "price.end", trace, 2, Some(1)),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    let (out, stdout, stderr) = run(aitrace().arg("view").arg(&a).arg(&b));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.matches("trace ").count(), 1, "one trace: {stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let root = lines
        .iter()
        .find(|l| l.contains("▸ checkout"))
        .expect("caller's span");
    let child = lines
        .iter()
        .find(|l| l.contains("▸ price"))
        .expect("callee's span");
    let depth = |l: &str| l.len() - l.trim_start().len();
    assert_eq!(
        depth(child),
        depth(root) + 2,
        "the callee's span under the caller's:\n{stdout}"
    );
    assert!(!stdout.contains("not seen"), "{stdout}");

    // --follow reads one growing file, and says so when given two.
    let (out, _, stderr) = run(aitrace().args(["view", "--follow"]).arg(&a).arg(&b));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("--follow reads one file, not 2"),
        "{stderr}"
    );
}

#[test]
fn view_draws_a_chain_of_ten_thousand_nested_spans() {
    // Recursing once per level overflowed the stack at 5,000 levels in a
    // debug build; building the tree was quadratic.
    const DEPTH: u64 = 10_000;
    let trace = "7902f7b02e9e2b9ce0c11a928f3e2153";
    let mut lines = Vec::new();
    for s in 1..=DEPTH {
        lines.push(line(
            s,
            &format!("level{s}.start"),
            trace,
            s,
            (s > 1).then(|| s - 1),
        ));
    }
    for s in (1..=DEPTH).rev() {
        lines.push(line(
            3 * DEPTH - s,
            &format!("level{s}.end"),
            trace,
            s,
            (s > 1).then(|| s - 1),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let started = Instant::now();
    let (out, stdout, stderr) = run(aitrace().arg("view").arg(&file));
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stdout.matches('▸').count(), DEPTH as usize);
    let deepest = stdout
        .lines()
        .find(|l| {
            l.contains(&format!("▸ level{DEPTH} ")) || l.ends_with(&format!("▸ level{DEPTH}"))
        })
        .expect("the deepest span is drawn");
    assert!(deepest.contains(&format!("[depth {DEPTH}]")), "{deepest}");
    assert!(
        deepest.len() < 200,
        "indentation stops growing: {} bytes",
        deepest.len()
    );
    // Every span sits one level below the one before it.
    let depth_of = |n: u64| {
        let l = stdout
            .lines()
            .find(|l| l.ends_with(&format!("▸ level{n}")) || l.contains(&format!("▸ level{n} ")))
            .unwrap();
        l.len() - l.trim_start().len()
    };
    assert_eq!(depth_of(2), depth_of(1) + 2);
    assert_eq!(depth_of(30), depth_of(29) + 2);
}

#[test]
fn spool_lists_batches_whose_times_cannot_be_shown_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let output = spool_fixture(dir.path());
    let record = checkout_lines()[0].to_string() + "\n";
    // A name whose time is past the year 9999, and a file named without a
    // time whose modification time is before 1970.
    std::fs::write(output.join("999999999999999999-1.jsonl"), &record).unwrap();
    let old = output.join("batch.jsonl");
    std::fs::write(&old, &record).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH - Duration::from_secs(86_400))
        .unwrap();
    let (out, stdout, stderr) = run(aitrace().arg("spool").arg(dir.path()));
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(
        stdout.contains("  pending: 4 batches, 51 records"),
        "{stdout}"
    );
    assert!(
        stdout.contains(", oldest 2026-11-27T10:15:02Z"),
        "what can be read is shown: {stdout}"
    );
    assert!(
        stdout.contains("    999999999999999999-1.jsonl: time unknown: the time in its name (999999999999999999 µs) is past the year 9999"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    batch.jsonl: time unknown: its modification time is before 1970"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  corrupt: 1 files"),
        "the rest is still listed: {stdout}"
    );
}

#[test]
fn validate_flags_an_end_without_a_start_and_a_time_no_record_can_hold() {
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    // A span that starts in one file and ends in the other is whole; the
    // `request.end` of a span whose start was never written is not.
    std::fs::write(&a, line(0, "checkout.start", trace, 1, None) + "\n").unwrap();
    let far = line(0, "late", trace, 1, None)
        .replace("2026-11-27T10:15:02.000000Z", "9999-12-31T23:59:59.999999Z");
    assert!(far.contains("9999-12-31"), "{far}");
    std::fs::write(
        &b,
        [
            line(5, "checkout.end", trace, 1, None),
            line(7, "request.end", trace, 9, Some(1)),
            far,
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    let (out, stdout, stderr) = run(aitrace().arg("validate").arg(&a).arg(&b));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let b = b.display();
    assert!(
        stdout.contains(&format!(
            "{b}:line 2: request.end has no request.start (span 0000000000000009)"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("checkout.end has no"), "{stdout}");
    assert!(
        stdout.contains(&format!("{b}:line 3: timestamp \"9999-12-31T23:59:59.999999Z\" is outside what a record holds (1970-01-01T00:00:00Z to 2554-07-21T23:34:33.709551615Z)")),
        "{stdout}"
    );
    assert!(
        stderr.contains("4 records checked in 2 files, 2 problems"),
        "{stderr}"
    );
}

#[test]
fn spool_lists_and_replays_the_folder_a_second_process_spooled_to() {
    // A second process on one spool folder spools to `<output>/extra-N`.
    let dir = tempfile::tempdir().unwrap();
    let output = spool_fixture(dir.path());
    let extra = output.join("extra-1");
    std::fs::create_dir(&extra).unwrap();
    let lines = checkout_lines();
    std::fs::write(
        extra.join("00001795774509000000-0000000043-000001.jsonl"),
        format!("{}\n{}\n", lines[0], lines[1]),
    )
    .unwrap();
    let (out, stdout, stderr) = run(aitrace().arg("spool").arg(dir.path()));
    assert!(out.status.success(), "{stderr}");
    let listed = stdout
        .split_once(&format!("{}\n", extra.display()))
        .unwrap_or_else(|| panic!("extra-1 listed: {stdout}"))
        .1;
    assert!(
        listed.starts_with("  pending: 1 batches, 2 records"),
        "{stdout}"
    );
    // Given the output folder itself, too.
    let (_, stdout, _) = run(aitrace().arg("spool").arg(&output));
    assert!(
        stdout.contains(&format!(
            "{}\n  pending: 1 batches, 2 records",
            extra.display()
        )),
        "{stdout}"
    );

    let server = IngestServer::start(Answer::Reference);
    let (out, _, stderr) =
        run(aitrace()
            .arg("spool")
            .arg(dir.path())
            .args(["--replay", "--to", &server.url]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(server.records().len(), 49 + 2, "{stderr}");
    assert!(
        !extra
            .join("00001795774509000000-0000000043-000001.jsonl")
            .exists()
    );
}

/// Runs `cmd`, reads the first line of its stdout and closes the pipe, as
/// `| head -1` does; then waits for it.
fn first_line_then_hang_up(cmd: &mut Command) -> (String, Output) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The read end is dropped here, as `head` exits.
    (first, child.wait_with_output().unwrap())
}

#[test]
fn view_ends_quietly_when_its_reader_goes_away() {
    // `aitrace view big.jsonl | head -1`: the pipe closes early.
    let trace = "7902f7b02e9e2b9ce0c11a928f3e2153";
    let lines: Vec<String> = (1..=20_000u64)
        .map(|i| line(i, &format!("step_{i}"), trace, 1, None))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (first, out) = first_line_then_hang_up(aitrace().arg("view").arg(&file));
    assert!(first.starts_with("trace "), "{first}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn follow_for_alone_follows_and_stops() {
    let (out, stdout, stderr) = run(aitrace()
        .args(["view", "--follow-for", "0.2"])
        .arg(checkout()));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("process_order"), "{stdout}");
}

#[test]
fn send_refuses_a_list_of_targets_instead_of_posting_to_a_path_with_a_comma() {
    let server = IngestServer::start(Answer::Reference);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.jsonl");
    let to = format!("{},file://{}", server.url, file.display());
    let (out, _, stderr) = run(aitrace().arg("send").arg(checkout()).args(["--to", &to]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--to takes one target, not a list"),
        "{stderr}"
    );
    assert!(server.records().is_empty());
    assert!(!file.exists());
}

/// Found in review: `spool --replay` took no lock, so it sent and deleted
/// the batches of a folder a live process spools to (an `extra-N` folder
/// of a second process, say). A folder another process holds is skipped
/// and named; the others still replay.
#[test]
fn spool_replay_skips_a_folder_another_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let output = spool_fixture(dir.path());
    let extra = output.join("extra-1");
    std::fs::create_dir(&extra).unwrap();
    let lines = checkout_lines();
    let held_batch = extra.join("00001795774509000000-0000000043-000001.jsonl");
    std::fs::write(&held_batch, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    // This test is the live process: it holds `extra-1` as the library does.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(extra.join(".lock"))
        .unwrap();
    fs4::FileExt::try_lock(&lock).unwrap();

    let server = IngestServer::start(Answer::Reference);
    let (out, _, stderr) =
        run(aitrace()
            .arg("spool")
            .arg(dir.path())
            .args(["--replay", "--to", &server.url]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        server.records().len(),
        49,
        "only the free folder's batches: {stderr}"
    );
    assert!(held_batch.exists(), "the held folder's batch is kept");
    assert!(
        stderr.contains(&format!("skipped {}", extra.display())),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&output)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .count(),
        0,
        "the free folder was replayed"
    );

    // Released, it replays.
    drop(lock);
    let (out, _, stderr) =
        run(aitrace()
            .arg("spool")
            .arg(dir.path())
            .args(["--replay", "--to", &server.url]));
    assert!(out.status.success(), "{stderr}");
    assert!(!held_batch.exists(), "{stderr}");
    assert_eq!(server.records().len(), 49 + 2);
}

#[test]
fn view_says_which_traces_retention_kept_whole_and_why() {
    // What retention by outcome writes: the held debug records, then the
    // local root's `.end` with `aitrace.retention`. The second trace was
    // not held (retention off), so it says nothing.
    let kept = "0af7651916cd43dd8448eb211c80319c";
    let plain = "4bf92f3577b34da6a3ce929d0e0e4736";
    let input = [
        format!(
            r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.000000Z","event":"checkout.start","level":"info","trace_id":"{kept}","span_id":"00f067aa0ba902b7","parent_span_id":null,"provisional":true}}}}"#
        ),
        format!(
            r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.002000Z","event":"cart_loaded","level":"debug","trace_id":"{kept}","span_id":"00f067aa0ba902b7","parent_span_id":null}},"items":3}}"#
        ),
        format!(
            r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.012000Z","event":"checkout.end","level":"error","trace_id":"{kept}","span_id":"00f067aa0ba902b7","parent_span_id":null}},"error":"declined","duration_ms":12.0,"aitrace.retention":"failed"}}"#
        ),
        format!(
            r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:01.000000Z","event":"search.start","level":"info","trace_id":"{plain}","span_id":"b7ad6b7169203331","parent_span_id":null,"provisional":true}}}}"#
        ),
        format!(
            r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:01.004000Z","event":"search.end","level":"info","trace_id":"{plain}","span_id":"b7ad6b7169203331","parent_span_id":null}},"duration_ms":4.0}}"#
        ),
    ]
    .join("\n");
    let (out, stdout, stderr) = run_with_stdin(aitrace().arg("view"), &input);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(
            &format!("trace {kept}  checkout  3 records, 12.0ms  kept whole: failed  ERROR")
                .as_str()
        ),
        "{stdout}"
    );
    assert!(
        lines.contains(&format!("trace {plain}  search  2 records, 4.0ms").as_str()),
        "{stdout}"
    );
    assert_eq!(stdout.matches("kept whole").count(), 1, "{stdout}");
    assert!(
        !stdout.contains("aitrace.retention="),
        "shown once, not as a field: {stdout}"
    );

    // --follow shows it on the root's end as it arrives.
    let (out, followed, stderr) = run_with_stdin(aitrace().args(["view", "--follow", "-"]), &input);
    assert!(out.status.success(), "{stderr}");
    let end = followed
        .lines()
        .find(|l| l.contains("◂ checkout"))
        .expect("the root's end");
    assert!(
        end.ends_with("◂ checkout 12.0ms ✖ declined  kept whole: failed"),
        "{followed}"
    );
    assert_eq!(followed.matches("kept whole").count(), 1, "{followed}");
}

#[test]
fn view_shows_the_fields_recorded_on_a_span_s_end_and_escapes_control_characters() {
    let trace = "7902f7b02e9e2b9ce0c11a928f3e2153";
    let input = [
        format!(
            r#"{{"sku":"A1","__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.000001Z","event":"pick.start","level":"info","trace_id":"{trace}","span_id":"aaaaaaaaaaaaaaaa","provisional":true}}}}"#
        ),
        format!(
            r#"{{"warehouse":"north","duration_ms":0.5,"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.000501Z","event":"pick.end","level":"info","trace_id":"{trace}","span_id":"aaaaaaaaaaaaaaaa"}}}}"#
        ),
        format!(
            r#"{{"__tracer_meta__":{{"timestamp":"2026-11-27T10:00:00.000600Z","event":"two\nlines\tand\u0001","level":"info","trace_id":"{trace}"}}}}"#
        ),
    ]
    .join("\n");
    let (out, stdout, stderr) = run_with_stdin(aitrace().arg("view"), &input);
    assert!(out.status.success(), "{stderr}");
    let pick = stdout.lines().find(|l| l.contains("▸ pick")).unwrap();
    assert!(pick.contains("sku=A1"), "{pick}");
    assert!(pick.contains("warehouse=north"), "{pick}");
    assert!(
        !pick.contains("duration_ms="),
        "shown as the duration: {pick}"
    );
    assert!(
        stdout.contains(r"two\nlines\tand\u{1}"),
        "one line per record: {stdout}"
    );
}

/// `/dev/full`: every write to it fails with "no space left on device".
fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

/// A file of `n` records without a timestamp: `n` problems for `validate`,
/// `n` skipped lines for `report`.
fn records_without_time(dir: &Path, n: usize) -> PathBuf {
    let file = dir.join("untimed.jsonl");
    std::fs::write(&file, "{}\n".repeat(n)).unwrap();
    file
}

#[test]
fn commands_that_cannot_write_their_output_say_so_and_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = records_without_time(dir.path(), 3_000);

    // `validate > /dev/full`: its problems cannot be shown.
    let out = output_without_panic(
        aitrace().arg("validate").arg(&file),
        dev_full(),
        Stdio::piped(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write"), "{stderr}");

    // `validate 2> /dev/full`: the problems still go to stdout.
    let (_, problems, _) = run(aitrace().arg("validate").arg(&file));
    assert!(problems.lines().count() >= 3_000, "{problems}");
    let out = output_without_panic(
        aitrace().arg("validate").arg(&file),
        Stdio::piped(),
        dev_full(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), problems);

    // `report 2> /dev/full`: the report is written all the same.
    let html = dir.path().join("r.html");
    let mut report = aitrace();
    report
        .arg("report")
        .arg(&file)
        .arg(checkout())
        .arg("-o")
        .arg(&html);
    let out = output_without_panic(&mut report, Stdio::piped(), dev_full());
    assert!(out.status.success());
    assert!(std::fs::read_to_string(&html).unwrap().contains("checkout"));

    // `spool DIR > /dev/full`.
    let root = dir.path().join("spool");
    spool_fixture(&root);
    let out = output_without_panic(
        aitrace().arg("spool").arg(&root),
        dev_full(),
        Stdio::piped(),
    );
    assert_eq!(out.status.code(), Some(1));

    // `send ... 2> /dev/full`: its summary cannot be shown; what it did is
    // still in its exit code.
    let copy = dir.path().join("copy.jsonl");
    let mut send = aitrace();
    send.arg("send").arg(checkout()).arg("--to").arg(&copy);
    let out = output_without_panic(&mut send, Stdio::piped(), dev_full());
    assert!(out.status.success());
    let copied = std::fs::read_to_string(&copy).unwrap();
    assert_eq!(copied.lines().count(), checkout_lines().len());
}

/// Runs `cmd` with this stdout and stderr, and checks it did not panic.
fn output_without_panic(cmd: &mut Command, stdout: Stdio, stderr: Stdio) -> Output {
    let out = cmd.stdout(stdout).stderr(stderr).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    out
}

#[test]
fn validate_ends_quietly_when_its_reader_goes_away_and_still_fails() {
    // `aitrace validate big.jsonl | head -1`: more problems than a pipe holds.
    let dir = tempfile::tempdir().unwrap();
    let file = records_without_time(dir.path(), 100_000);
    let (first, out) = first_line_then_hang_up(aitrace().arg("validate").arg(&file));
    assert!(first.contains("missing timestamp"), "{first}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Problems were found: not 0, even though the rest was not wanted.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn report_names_the_first_bad_lines_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = records_without_time(dir.path(), 3_000);
    let html = dir.path().join("r.html");
    let (out, _, stderr) = run(aitrace()
        .arg("report")
        .arg(&file)
        .arg(checkout())
        .arg("-o")
        .arg(&html));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 25, "{} lines on stderr", lines.len());
    assert!(lines[0].contains(":line 1: skipped"), "{stderr}");
    assert!(stderr.contains("3000 skipped"), "{stderr}");
}

#[test]
fn a_file_that_starts_with_a_byte_order_mark_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bom.jsonl");
    let text = std::fs::read_to_string(checkout()).unwrap();
    std::fs::write(&file, format!("\u{feff}{text}")).unwrap();
    let (out, stdout, stderr) = run(aitrace().arg("validate").arg(&file));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn report_to_a_dash_writes_the_page_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, stderr) = run(aitrace()
        .current_dir(dir.path())
        .arg("report")
        .arg(checkout())
        .args(["-o", "-"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("<html"), "{stdout:.200}");
    assert!(embedded(&stdout).to_string().contains("checkout"));
    assert!(!dir.path().join("-").exists());
}

#[test]
fn validate_flags_a_span_that_is_its_own_parent_and_a_loop_of_parents() {
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loops.jsonl");
    let lines = [
        // Whole: a root and its child.
        line(0, "root.start", trace, 1, None),
        line(1, "child.start", trace, 2, Some(1)),
        // Its own parent.
        line(2, "selfish.start", trace, 3, Some(3)),
        // Three spans whose parents go round.
        line(3, "a.start", trace, 4, Some(6)),
        line(4, "b.start", trace, 5, Some(4)),
        line(5, "c.start", trace, 6, Some(5)),
        // Under the loop, not in it: said once, for the loop.
        line(6, "d.start", trace, 7, Some(6)),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (out, stdout, stderr) = run(aitrace().arg("validate").arg(&file));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let name = file.display();
    assert!(
        stdout.contains(&format!(
            "{name}:line 3: selfish.start is its own parent (span 0000000000000003)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{name}:line 4: a.start's parents go round in a loop back to it (span 0000000000000004, 3 spans): a viewer cannot place them under a root"
        )),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}

#[test]
fn view_says_a_parent_in_a_loop_is_in_a_loop_not_unseen() {
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let lines = [
        line(0, "lost.start", trace, 1, Some(9)),
        line(1, "selfish.start", trace, 3, Some(3)),
        line(2, "a.start", trace, 4, Some(5)),
        line(3, "b.start", trace, 5, Some(4)),
    ];
    let (out, stdout, stderr) = run_with_stdin(aitrace().arg("view"), &(lines.join("\n") + "\n"));
    assert!(out.status.success(), "{stderr}");
    let said = |name: &str| {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("▸ {name}")))
            .unwrap();
        line.to_owned()
    };
    assert!(
        said("lost").contains("(parent 0000000000000009 not seen)"),
        "{stdout}"
    );
    for name in ["selfish", "a", "b"] {
        assert!(said(name).contains("in a loop of parents"), "{stdout}");
        assert!(!said(name).contains("not seen"), "{stdout}");
    }
}
