//! Redaction at capture: what the default redactor removes and keeps, value
//! patterns, the `before_send` hook (edits, drops, panics), and that every
//! place a record can end up (a file, an HTTP server, the spool, `send_logs`)
//! only ever sees the redacted record.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aitrace_core::wire::REDACTED;
use aitrace_core::{
    Background, BufferedLogger, Level, Output, Record, Redactor, Value, Verdict, send_logs,
};
use aitrace_testkit::{Answer, IngestServer, dead_url};
use common::{http, output_dirs};
use serde_json::{Value as Json, json};

const SECRET: &str = "hunter2-s3cr3t";

/// The user data of each JSON line in `path`.
fn lines(path: &Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn file_logger(path: &Path, redactor: Option<Redactor>) -> BufferedLogger {
    let builder = BufferedLogger::builder()
        .output(Output::file(path))
        .min_level(Level::Trace);
    match redactor {
        Some(redactor) => builder.redactor(redactor).build(),
        None => builder.build(),
    }
}

/// One record with secrets under sensitive keys at several depths and
/// harmless keys that look alike.
fn emit_secrets(log: &BufferedLogger) {
    log.info("login")
        .field("user", "u2")
        .field("password", SECRET)
        .field("api_key", 42)
        .field("Authorization", format!("Bearer {SECRET}"))
        .field(
            "db",
            Value::from_serialize(
                &json!({"host": "db1", "password": SECRET, "pool": [{"token": SECRET}]}),
            ),
        )
        .field("token_count", 812)
        .field("author", "ann")
        .emit();
}

#[test]
fn the_default_redacts_sensitive_keys_at_every_depth_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let log = file_logger(&path, None);
    emit_secrets(&log);
    assert_eq!(
        log.records()[0].field("password"),
        Some(&Value::from(REDACTED))
    );
    log.flush().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    let record = &lines(&path)[0];
    assert_eq!(record["password"], REDACTED);
    assert_eq!(record["api_key"], REDACTED, "any type becomes the marker");
    assert_eq!(record["Authorization"], REDACTED);
    assert_eq!(
        record["db"],
        json!({"host": "db1", "password": REDACTED, "pool": [{"token": REDACTED}]})
    );
    assert_eq!(record["token_count"], 812);
    assert_eq!(record["author"], "ann");
    assert_eq!(record["user"], "u2");
}

#[test]
fn redactor_none_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let log = file_logger(&path, Some(Redactor::none()));
    emit_secrets(&log);
    log.flush().unwrap();
    let record = &lines(&path)[0];
    assert_eq!(record["password"], SECRET);
    assert_eq!(record["db"]["pool"][0]["token"], SECRET);
}

#[test]
fn value_patterns_redact_matches_in_values_and_the_event_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let redactor = Redactor::default()
        .key("ssn")
        .with_common_value_patterns()
        .value_pattern(r"\b\d{3}-\d{2}-\d{4}\b")
        .unwrap();
    let log = file_logger(&path, Some(redactor));
    log.warn(format!("retrying GET /cb?access_token={SECRET}&page=2"))
        .field("ssn", 78051120)
        .field("note", "customer 078-05-1120 called")
        .field("dsn", format!("postgres://app:{SECRET}@db/main"))
        .field(
            "nested",
            Value::from_serialize(&json!([{"header": format!("Bearer {SECRET}")}])),
        )
        .field("plain", "nothing to hide")
        .emit();
    log.flush().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(SECRET) && !text.contains("1120"), "{text}");
    let record = &lines(&path)[0];
    assert_eq!(
        record["__tracer_meta__"]["event"],
        "retrying GET /cb?access_token=[REDACTED]&page=2"
    );
    assert_eq!(record["ssn"], REDACTED);
    assert_eq!(record["note"], "customer [REDACTED] called");
    assert_eq!(record["dsn"], "postgres://app:[REDACTED]@db/main");
    assert_eq!(record["nested"][0]["header"], "Bearer [REDACTED]");
    assert_eq!(record["plain"], "nothing to hide");
}

/// Whether `digits` (separators skipped) pass the Luhn check.
fn luhn_valid(digits: &str) -> bool {
    let digits = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'));
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| match (i % 2, d * 2) {
            (0, _) => d,
            (_, doubled) if doubled > 9 => doubled - 9,
            (_, doubled) => doubled,
        })
        .sum();
    sum % 10 == 0
}

#[test]
fn common_value_patterns_redact_card_numbers_in_the_message_and_at_every_depth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let log = file_logger(
        &path,
        Some(Redactor::default().with_common_value_patterns()),
    );
    let cards = [
        "4242 4242 4242 4242",
        "4000000000000002",
        "5555-5555-5555-4444",
        "3782 822463 10005",
        "30569309025904",
    ];
    // Order ids and timestamps of card length that fail the Luhn check.
    let kept = ["4000000000000003", "1700000000000", "1234-5678-9012-3456"];
    for number in cards {
        assert!(luhn_valid(number), "{number}");
    }
    for number in kept {
        assert!(!luhn_valid(number), "{number}");
    }
    log.info(format!("paid with {} today", cards[0]))
        .field("card", cards[1])
        .field(
            "payment",
            Value::from_serialize(
                &json!({"method": [{"number": cards[2], "note": format!("amex ({})", cards[3])}]}),
            ),
        )
        .field("pan", format!("pan={};", cards[4]))
        .field("order_id", kept[0])
        .field("sent_at_ms", kept[1])
        .field("ref", format!("ref {}", kept[2]))
        .emit();
    log.flush().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for number in cards {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !text.contains(number) && !text.contains(&digits),
            "{number} in {text}"
        );
    }
    let record = &lines(&path)[0];
    assert_eq!(
        record["__tracer_meta__"]["event"],
        "paid with [REDACTED] today"
    );
    assert_eq!(record["card"], REDACTED);
    assert_eq!(record["payment"]["method"][0]["number"], REDACTED);
    assert_eq!(record["payment"]["method"][0]["note"], "amex ([REDACTED])");
    assert_eq!(record["pan"], "pan=[REDACTED];");
    assert_eq!(record["order_id"], kept[0]);
    assert_eq!(record["sent_at_ms"], kept[1]);
    assert_eq!(record["ref"], format!("ref {}", kept[2]));
}

#[test]
fn common_value_patterns_redact_card_numbers_held_as_integers_at_every_depth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let log = file_logger(
        &path,
        Some(Redactor::default().with_common_value_patterns()),
    );
    log.info("paid")
        .field("card", 4242424242424242u64)
        .field("pan", 4000000000000002i64)
        .field("negative", -5555555555554444i64)
        .field(
            "payment",
            Value::from_serialize(&json!({"method": [{"number": 378282246310005u64}]})),
        )
        // Integers of card length that fail the Luhn check, and short ones.
        .field("order_id", 4000000000000003u64)
        .field("sent_at_ms", 1700000000000i64)
        .field("count", 42u64)
        .emit();
    log.flush().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for number in [
        "4242424242424242",
        "4000000000000002",
        "5555555555554444",
        "378282246310005",
    ] {
        assert!(!text.contains(number), "{number} in {text}");
    }
    let record = &lines(&path)[0];
    assert_eq!(record["card"], REDACTED);
    assert_eq!(record["pan"], REDACTED);
    assert_eq!(record["negative"], REDACTED);
    assert_eq!(record["payment"]["method"][0]["number"], REDACTED);
    assert_eq!(record["order_id"], 4000000000000003u64);
    assert_eq!(record["sent_at_ms"], 1700000000000i64);
    assert_eq!(record["count"], 42);
    // Without the common value patterns, integers are left alone.
    let plain = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .build();
    plain.info("paid").field("card", 4242424242424242u64).emit();
    assert_eq!(
        plain.records()[0].field("card"),
        Some(&Value::U64(4242424242424242))
    );
}

#[test]
fn the_default_redactor_leaves_string_values_alone() {
    let log = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .build();
    log.info("login")
        .field("note", format!("password={SECRET}"))
        .emit();
    assert_eq!(
        log.records()[0].field("note"),
        Some(&Value::from(format!("password={SECRET}")))
    );
}

#[test]
fn the_hook_edits_and_drops_records_and_the_redactor_runs_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let log = BufferedLogger::builder()
        .output(Output::file(&path))
        .before_send(|record| {
            if record.event() == "health_check" {
                return Verdict::Drop;
            }
            record.retain_fields(|key, _| key != "email");
            for (key, value) in record.fields_mut() {
                if key == "user" {
                    *value = Value::from("anonymous");
                }
            }
            // A field the hook adds under a sensitive key is still redacted.
            record.set_field("session", SECRET);
            Verdict::Keep
        })
        .build();
    for _ in 0..3 {
        log.info("health_check").emit();
    }
    log.info("login")
        .field("user", "u2")
        .field("email", "u2@example.com")
        .emit();
    let stats = log.stats();
    assert_eq!(
        (stats.captured, stats.before_send_dropped),
        (1, 3),
        "{stats:?}"
    );
    assert!(stats.is_balanced(), "{stats:?}");
    log.flush().unwrap();
    let records = lines(&path);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["user"], "anonymous");
    assert_eq!(records[0]["session"], REDACTED);
    assert!(records[0].get("email").is_none());
    assert!(log.stats().is_balanced());
}

#[test]
fn a_panicking_hook_drops_only_its_record_and_poisons_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let log = BufferedLogger::builder()
        .output(Output::file(&path))
        .before_send(|record| {
            if record.field("boom").is_some() {
                panic!("hook bug");
            }
            Verdict::Keep
        })
        .build();
    log.info("before").emit();
    log.info("bad").field("boom", true).emit();
    // From other threads too, while and after the hook panics.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    if i % 25 == 0 {
                        log.info("bad").field("t", t).field("boom", true).emit();
                    }
                    log.info("work").field("t", t).emit();
                }
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .expect("a panic in the hook never reaches the caller");
    }
    log.info("after").emit();
    let stats = log.stats();
    assert_eq!(stats.before_send_dropped, 1 + 4 * 2, "{stats:?}");
    assert_eq!(stats.captured, 2 + 4 * 50, "{stats:?}");
    log.flush().unwrap();
    let events: Vec<String> = lines(&path)
        .iter()
        .map(|r| r["__tracer_meta__"]["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.len(), 2 + 4 * 50);
    assert_eq!(events.first().map(String::as_str), Some("before"));
    assert_eq!(events.last().map(String::as_str), Some("after"));
    assert!(log.stats().is_balanced());
}

#[test]
fn records_the_hook_logs_itself_skip_the_hook_but_not_the_redactor() {
    let calls = Arc::new(AtomicUsize::new(0));
    let slot: Arc<std::sync::OnceLock<BufferedLogger>> = Arc::default();
    let log = {
        let (calls, slot) = (calls.clone(), slot.clone());
        BufferedLogger::builder()
            .output(Output::file("/dev/null"))
            .before_send(move |record| {
                calls.fetch_add(1, Ordering::Relaxed);
                if record.event() == "login" {
                    if let Some(log) = slot.get() {
                        log.info("audit").field("password", SECRET).emit();
                    }
                }
                Verdict::Keep
            })
            .build()
    };
    slot.set(log.clone()).unwrap();
    log.info("login").emit();
    assert_eq!(calls.load(Ordering::Relaxed), 1, "no recursion");
    let records = log.records();
    let events: Vec<&str> = records.iter().map(Record::event).collect();
    assert_eq!(events, ["audit", "login"]);
    assert_eq!(records[0].field("password"), Some(&Value::from(REDACTED)));
}

#[test]
fn span_start_and_end_records_are_redacted() {
    let log = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .build();
    log.span("login")
        .field("password", SECRET)
        .in_scope(|span| {
            span.record("refresh_token", SECRET);
            span.record("items", 3);
        });
    let records = log.records();
    let start = records.iter().find(|r| r.event() == "login.start").unwrap();
    let end = records.iter().find(|r| r.event() == "login.end").unwrap();
    assert_eq!(start.field("password"), Some(&Value::from(REDACTED)));
    assert_eq!(end.field("refresh_token"), Some(&Value::from(REDACTED)));
    assert_eq!(end.field("items"), Some(&Value::I64(3)));
}

#[test]
fn an_http_server_receives_only_redacted_records() {
    let server = IngestServer::start(Answer::Reference);
    let log = BufferedLogger::builder()
        .output(http(&server.url, Duration::from_secs(5)))
        .redactor(Redactor::default().with_common_value_patterns())
        .build();
    log.in_trace_context("request", |_| emit_secrets(&log));
    let records = server.records();
    assert_eq!(records.len(), 3, "start, login, end: {records:?}");
    let body = serde_json::to_string(&records).unwrap();
    assert!(!body.contains(SECRET), "{body}");
    let login = records
        .iter()
        .find(|r| r["__tracer_meta__"]["event"] == "login")
        .unwrap();
    assert_eq!(login["password"], REDACTED);
    assert_eq!(login["db"]["password"], REDACTED);
    assert_eq!(login["token_count"], 812);
}

#[test]
fn the_spool_never_holds_a_secret() {
    let spool = tempfile::tempdir().unwrap();
    let log = BufferedLogger::builder()
        .output(http(&dead_url(), Duration::from_millis(500)))
        .delivery(Background::new().spool_dir(spool.path()))
        .shutdown_timeout(Duration::from_secs(2))
        .try_build()
        .unwrap();
    for _ in 0..5 {
        emit_secrets(&log);
    }
    let _ = log.shutdown(Duration::from_secs(2));
    drop(log);
    let files: Vec<_> = output_dirs(spool.path())
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    let spooled: Vec<Json> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .flat_map(|p| lines(p))
        .collect();
    assert_eq!(spooled.len(), 5, "{files:?}");
    assert!(spooled.iter().all(|r| r["password"] == REDACTED));
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "{}: {text}", file.display());
    }
}

#[test]
fn send_logs_redacts_the_records_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sent.jsonl");
    let records = vec![
        Record::builder(Level::Info, "login")
            .field("password", SECRET)
            .field("user", "u2")
            .build(),
    ];
    send_logs(&records, path.to_str().unwrap()).unwrap();
    let sent = &lines(&path)[0];
    assert_eq!(sent["password"], REDACTED);
    assert_eq!(sent["user"], "u2");
    // The caller's records are left as they were.
    assert_eq!(records[0].field("password"), Some(&Value::from(SECRET)));
}
