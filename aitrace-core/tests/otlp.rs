//! The OTLP/HTTP output against a real receiver on 127.0.0.1 that decodes
//! every request with the `opentelemetry-proto` types: every field of log
//! records and spans, both encodings, gzip, headers, the environment,
//! retryable statuses, `partialSuccess`, bad answers and the spool.
#![cfg(feature = "otlp")]

use std::process::Command;
use std::time::Duration;

use aitrace_core::{
    Background, BufferedLogger, Direct, ErrorKind, Level, Output, Protocol, RetryPolicy,
    SpanContext, Value,
};
use aitrace_testkit::proto::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use aitrace_testkit::{OtlpAnswer, OtlpReceiver};

const WAIT: Duration = Duration::from_secs(10);

fn output(rx: &OtlpReceiver, protocol: Protocol) -> Output {
    let exporter = Output::otlp_builder()
        .endpoint(&rx.endpoint)
        .protocol(protocol)
        .service_name("shop")
        .resource_attribute("deployment.environment.name", "test")
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    Output::new(exporter)
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Av> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn s(text: &str) -> Av {
    Av::StringValue(text.to_owned())
}

/// Every field the issue lists, for one encoding.
fn check_every_field(protocol: Protocol) {
    let rx = OtlpReceiver::start();
    let log = BufferedLogger::builder()
        .output(output(&rx, protocol))
        .min_level(Level::Trace)
        .build();
    // The records' clock keeps within a millisecond of the system clock
    // (`clock::tests::stays_within_a_millisecond_of_the_system_clock_and_never_goes_back`),
    // but may run up to that far behind it: a stamp taken microseconds
    // after this reading can be earlier than it (seen once in CI).
    let before = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64)
        - 1_000_000;
    let (outer_cx, inner_cx) = {
        let outer = log.span("checkout").field("user_id", "u2").enter();
        let inner = log.span("charge").enter();
        log.event(Level::Warn, "card_checked")
            .logger("shop::pay")
            .field("total", 469.74)
            .field("items", 3)
            .field("big", u64::MAX)
            .field("ok", true)
            .field("tags", vec!["a", "b"])
            .field(
                "address",
                Value::Object(vec![("city".to_owned(), Value::from("Brno"))].into()),
            )
            .field("raw", Value::Bytes(vec![0xde, 0xad].into()))
            .field("nan", f64::NAN)
            .emit();
        inner.fail("card declined");
        let cx = (outer.context(), inner.context());
        drop(inner);
        drop(outer);
        cx
    };
    log.info("no_span").emit();
    let report = log.flush().unwrap();
    assert_eq!(report.records(), 6, "{report:?}");

    let requests = rx.requests();
    assert!(requests.iter().all(|r| r.error.is_none()), "{requests:?}");
    let content_type = match protocol {
        Protocol::HttpJson => "application/json",
        _ => "application/x-protobuf",
    };
    assert!(requests.iter().all(|r| r.content_type == content_type));
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/traces", "/v1/logs"]);

    // Resource and scope.
    let logs = requests[1].logs.as_ref().unwrap();
    let resource = logs.resource_logs[0].resource.as_ref().unwrap();
    assert_eq!(attr(&resource.attributes, "service.name"), Some(&s("shop")));
    assert_eq!(
        attr(&resource.attributes, "deployment.environment.name"),
        Some(&s("test"))
    );
    assert_eq!(
        attr(&resource.attributes, "telemetry.sdk.name"),
        Some(&s("aitrace-rs"))
    );
    let scopes: Vec<_> = logs.resource_logs[0]
        .scope_logs
        .iter()
        .map(|s| s.scope.as_ref().unwrap().name.as_str())
        .collect();
    assert!(scopes.contains(&"shop::pay"), "{scopes:?}");

    // The event.
    let records = rx.log_records();
    assert_eq!(records.len(), 2, "lifecycle records went to traces");
    let event = records
        .iter()
        .find(|r| r.body.as_ref().and_then(|b| b.value.as_ref()) == Some(&s("card_checked")))
        .unwrap();
    assert!(event.time_unix_nano >= before);
    assert_eq!(event.observed_time_unix_nano, event.time_unix_nano);
    assert_eq!(event.severity_number, 13);
    assert_eq!(event.severity_text, "WARN");
    assert_eq!(event.trace_id, inner_cx.trace_id().to_bytes());
    assert_eq!(event.span_id, inner_cx.span_id().to_bytes());
    assert_eq!(event.flags, 1);
    let a = &event.attributes;
    assert_eq!(attr(a, "total"), Some(&Av::DoubleValue(469.74)));
    assert_eq!(attr(a, "items"), Some(&Av::IntValue(3)));
    assert_eq!(attr(a, "big"), Some(&s(&u64::MAX.to_string())));
    assert_eq!(attr(a, "ok"), Some(&Av::BoolValue(true)));
    assert_eq!(attr(a, "nan"), Some(&s("NaN")));
    assert_eq!(attr(a, "raw"), Some(&Av::BytesValue(vec![0xde, 0xad])));
    let Some(Av::ArrayValue(tags)) = attr(a, "tags") else {
        panic!("tags: {a:?}")
    };
    assert_eq!(
        tags.values,
        [
            AnyValue {
                value: Some(s("a"))
            },
            AnyValue {
                value: Some(s("b"))
            }
        ]
    );
    let Some(Av::KvlistValue(address)) = attr(a, "address") else {
        panic!("address: {a:?}")
    };
    assert_eq!(attr(&address.values, "city"), Some(&s("Brno")));
    assert_eq!(
        attr(a, "code.file.path"),
        Some(&s("aitrace-core/tests/otlp.rs"))
    );
    assert!(matches!(attr(a, "code.line.number"), Some(Av::IntValue(n)) if *n > 0));
    // The event outside any span has no ids.
    let plain = records.iter().find(|r| r.span_id.is_empty()).unwrap();
    assert_eq!(plain.severity_number, 9);
    assert_eq!(plain.severity_text, "INFO");
    assert!(plain.trace_id.is_empty());

    // The spans: one tree, parent first in time, error status with message.
    let spans = rx.spans();
    assert_eq!(spans.len(), 2);
    let outer = spans.iter().find(|s| s.name == "checkout").unwrap();
    let inner = spans.iter().find(|s| s.name == "charge").unwrap();
    assert_eq!(outer.trace_id, outer_cx.trace_id().to_bytes());
    assert_eq!(outer.span_id, outer_cx.span_id().to_bytes());
    assert!(outer.parent_span_id.is_empty());
    assert_eq!(inner.parent_span_id, outer.span_id);
    assert_eq!(inner.trace_id, outer.trace_id);
    assert!(outer.start_time_unix_nano <= inner.start_time_unix_nano);
    assert!(inner.end_time_unix_nano <= outer.end_time_unix_nano);
    assert!(outer.start_time_unix_nano >= before);
    assert_eq!(attr(&outer.attributes, "user_id"), Some(&s("u2")));
    assert!(attr(&outer.attributes, "duration_ms").is_none());
    let status = inner.status.as_ref().unwrap();
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    assert_eq!(status.message, "card declined");
    assert_eq!(
        outer.status.as_ref().map_or(0, |s| s.code),
        0,
        "STATUS_CODE_UNSET"
    );
    assert_eq!(outer.kind, 1, "SPAN_KIND_INTERNAL");
}

#[test]
fn protobuf_carries_every_field() {
    check_every_field(Protocol::HttpProtobuf);
}

#[test]
fn json_carries_every_field() {
    check_every_field(Protocol::HttpJson);
}

#[test]
fn gzip_and_headers_are_sent() {
    let rx = OtlpReceiver::start();
    let out = Output::otlp_builder()
        .endpoint(format!("{}/", rx.endpoint))
        .gzip(true)
        .header("x-api-key", "s3cret")
        .build()
        .unwrap();
    assert!(!format!("{out:?} {out}").contains("s3cret"));
    let log = BufferedLogger::builder().output(out).build();
    log.info("hello").emit();
    log.flush().unwrap();
    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].gzip);
    assert!(
        requests[0]
            .headers
            .contains(&("x-api-key".to_owned(), "s3cret".to_owned()))
    );
    assert_eq!(rx.log_records().len(), 1);
}

/// Configured only through `OTEL_*` and `LOG_TRG=otlp`, in a child process.
#[test]
#[ignore = "run by `the_standard_environment_configures_everything` as a child process"]
fn env_child() {
    let log = BufferedLogger::new();
    {
        let _span = log.span("job").enter();
        log.info("inside").field("n", 1).emit();
    }
    let report = log.flush().unwrap();
    println!("\nOUTPUT {}", log.outputs()[0]);
    println!("RECORDS {}", report.records());
}

#[test]
fn the_standard_environment_configures_everything() {
    for (protocol, content_type) in [
        ("http/json", "application/json"),
        ("http/protobuf", "application/x-protobuf"),
    ] {
        let rx = OtlpReceiver::start();
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["env_child", "--exact", "--ignored", "--nocapture"])
            .env("LOG_TRG", "otlp")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env(
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc,x-b=2",
            )
            .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
            .env("OTEL_SERVICE_NAME", "from-env")
            .env("OTEL_RESOURCE_ATTRIBUTES", "team=core,region=eu%2Dwest")
            .env_remove("AITRACE_LEVEL")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("RECORDS 3"), "{stdout}");
        assert!(
            stdout.contains(&format!("OUTPUT otlp {} ({protocol})", rx.endpoint)),
            "{stdout}"
        );
        let requests = rx.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        for r in &requests {
            assert_eq!(r.content_type, content_type);
            assert!(r.gzip);
            assert!(
                r.headers
                    .contains(&("authorization".to_owned(), "Bearer abc".to_owned())),
                "{:?}",
                r.headers
            );
        }
        let logs = requests.iter().find_map(|r| r.logs.as_ref()).unwrap();
        let resource = logs.resource_logs[0].resource.as_ref().unwrap();
        assert_eq!(
            attr(&resource.attributes, "service.name"),
            Some(&s("from-env"))
        );
        assert_eq!(attr(&resource.attributes, "region"), Some(&s("eu-west")));
        assert_eq!(rx.spans().len(), 1);
        assert_eq!(rx.spans()[0].name, "job");
        assert_eq!(rx.log_records()[0].span_id, rx.spans()[0].span_id);
    }
}

#[test]
fn a_misconfigured_environment_is_a_clear_error() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["env_child", "--exact", "--ignored", "--nocapture"])
        .env("LOG_TRG", "otlp")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // An unusable LOG_TRG falls back to stdout, saying why.
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
            || stdout.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn only_retryable_statuses_are_retried_honouring_retry_after() {
    let rx = OtlpReceiver::start();
    rx.script([OtlpAnswer::Status {
        status: 503,
        retry_after: Some(1),
        body: Vec::new(),
        content_type: "text/plain".into(),
    }]);
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpProtobuf))
        .delivery(
            Background::new()
                .flush_interval(Duration::from_millis(10))
                .retry(RetryPolicy::default().initial_backoff(Duration::from_millis(1))),
        )
        .build();
    log.info("a").emit();
    assert!(rx.wait_for(WAIT, |rx| rx.log_records().len() == 1));
    let requests = rx.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 honoured: {waited:?}"
    );
    // The receiver has the record before the delivery thread has its
    // answer: settle it before reading the books.
    log.flush_timeout(WAIT).unwrap();
    let gap = log.stats();
    assert_eq!(gap.retried, 1);
    assert_eq!(gap.delivered, 1);

    // 500 is not retryable in OTLP: refused once, counted as dropped.
    rx.script([OtlpAnswer::rpc_status(500, "boom")]);
    log.info("b").emit();
    log.flush_timeout(WAIT).unwrap();
    let stats = log.stats();
    assert_eq!(rx.requests().len(), 3, "not retried");
    assert_eq!(stats.dropped, 1);
    assert_eq!(stats.retried, 1);
    assert!(stats.is_balanced(), "{stats:?}");
}

#[test]
fn an_error_answer_names_the_status_and_the_servers_message() {
    let rx = OtlpReceiver::start();
    rx.script([OtlpAnswer::rpc_status(503, "overloaded")]);
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("refused.jsonl");
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpProtobuf))
        .delivery(Direct::new().on_failure(aitrace_core::OnFailure::FallbackFile(fallback.clone())))
        .build();
    log.info("a").emit();
    let err = log.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::HttpStatus);
    assert_eq!(err.status(), Some(503));
    assert!(err.is_transient());
    assert!(err.to_string().contains("HTTP 503: overloaded"), "{err}");

    // A non-retryable status: the report names it, the record is set aside
    // (issue 18, item 4), never sent again.
    let rx = OtlpReceiver::start();
    rx.script([OtlpAnswer::rpc_status(400, "timestamp out of range")]);
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpProtobuf))
        .delivery(Direct::new().on_failure(aitrace_core::OnFailure::FallbackFile(fallback.clone())))
        .build();
    log.info("a").emit();
    let report = log.flush().unwrap();
    let delivery = &report.deliveries()[0];
    assert_eq!((delivery.records(), delivery.rejected()), (0, 1));
    let why = delivery.rejection().unwrap();
    assert!(why.contains("HTTP 400: timestamp out of range"), "{why}");
    assert_eq!(delivery.fallback_path(), Some(fallback.as_path()));
    log.info("b").emit();
    log.flush().unwrap();
    assert_eq!(rx.requests().len(), 2, "`a` once, then `b`");
    assert_eq!(rx.log_records().len(), 1, "`b` accepted");
}

#[test]
fn partial_success_is_counted_as_dropped_with_its_message() {
    for protocol in [Protocol::HttpProtobuf, Protocol::HttpJson] {
        let rx = OtlpReceiver::start();
        rx.script([OtlpAnswer::Partial(2, "2 records too old".into())]);
        let log = BufferedLogger::builder()
            .output(output(&rx, protocol))
            .delivery(Background::new())
            .build();
        for i in 0..5 {
            log.info("e").field("i", i).emit();
        }
        let report = log.flush_timeout(WAIT).unwrap();
        let stats = log.stats();
        assert_eq!(stats.delivered, 3, "{stats:?}");
        assert_eq!(stats.dropped, 2);
        assert_eq!(stats.rejected, 2);
        assert!(
            stats.outputs[0]
                .last_rejection
                .as_deref()
                .is_some_and(|m| m.contains("2 records too old")),
            "{stats:?}"
        );
        assert!(stats.is_balanced(), "{stats:?}");
        let delivery = &report.deliveries()[0];
        assert_eq!(
            (delivery.records(), delivery.rejected()),
            (3, 2),
            "{report:?}"
        );
        assert!(delivery.rejection().unwrap().contains("too old"));
    }
}

#[test]
fn an_answer_that_is_not_a_response_message_still_counts_the_batch_delivered() {
    let rx = OtlpReceiver::start();
    rx.script([OtlpAnswer::Garbage]);
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpProtobuf))
        .build();
    log.info("a").emit();
    let report = log.flush().unwrap();
    assert_eq!(report.records(), 1);
    assert_eq!(rx.requests().len(), 1, "a 2xx is never sent again");
}

#[test]
fn spooled_batches_are_replayed_as_otlp() {
    let rx = OtlpReceiver::start();
    let dir = tempfile::tempdir().unwrap();
    rx.set_down(true);
    let cx = SpanContext::new_root();
    {
        let log = BufferedLogger::builder()
            .output(output(&rx, Protocol::HttpJson))
            .delivery(
                Background::new()
                    .retry(RetryPolicy::none())
                    .spool_dir(dir.path()),
            )
            .build();
        let span = log.span("batch").enter();
        log.info("spooled").field("k", "v").emit();
        drop(span);
        aitrace_core::context::in_context(cx, || log.info("in_cx").emit());
        let _ = log.flush_timeout(WAIT);
        let stats = log.stats();
        assert_eq!(stats.spool_pending, 4, "{stats:?}");
        log.shutdown(WAIT).unwrap();
    }
    rx.set_down(false);
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpJson))
        .delivery(Background::new().spool_dir(dir.path()))
        .build();
    assert!(rx.wait_for(WAIT, |rx| rx.log_records().len() == 2
        && rx.spans().len() == 1));
    let records = rx.log_records();
    let spooled = records
        .iter()
        .find(|r| r.body.as_ref().and_then(|b| b.value.as_ref()) == Some(&s("spooled")))
        .unwrap();
    assert_eq!(attr(&spooled.attributes, "k"), Some(&s("v")));
    assert_eq!(spooled.span_id, rx.spans()[0].span_id);
    assert!(
        records
            .iter()
            .any(|r| r.trace_id == cx.trace_id().to_bytes())
    );
    log.shutdown(WAIT).unwrap();
    let stats = log.stats();
    assert_eq!(stats.replayed, 4, "{stats:?}");
    assert!(stats.is_balanced());
}

#[test]
fn target_strings_make_otlp_outputs() {
    let out = Output::from_target("otlp+http://127.0.0.1:4318").unwrap();
    assert_eq!(
        out.to_string(),
        "otlp http://127.0.0.1:4318 (http/protobuf)"
    );
    assert_eq!(out.kind(), "otlp");
    let err = Output::otlp("ftp://x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTarget);
}

/// A user event named like a span end stays an event.
#[test]
fn an_event_named_like_a_span_end_is_a_log_record() {
    let rx = OtlpReceiver::start();
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpProtobuf))
        .build();
    {
        let _span = log.span("request").enter();
        log.info("download.end").field("duration_ms", 12).emit();
    }
    log.flush().unwrap();
    let spans = rx.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].name, "request");
    let logs = rx.log_records();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].body.as_ref().unwrap().value,
        Some(s("download.end"))
    );
    assert_eq!(attr(&spans[0].attributes, "duration_ms"), None);
}

fn one_span_and_one_event(log: &BufferedLogger) {
    let _span = log.span("job").enter();
    log.info("step").emit();
}

/// Spans accepted and logs failing for a moment: the retry sends the logs,
/// not the spans again.
#[test]
fn a_retry_after_the_logs_request_failed_does_not_send_the_spans_twice() {
    let rx = OtlpReceiver::start();
    rx.script([
        OtlpAnswer::Ok,
        OtlpAnswer::Status {
            status: 503,
            retry_after: None,
            body: Vec::new(),
            content_type: "text/plain".into(),
        },
    ]);
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpProtobuf))
        .delivery(
            Background::new()
                .retry(RetryPolicy::default().initial_backoff(Duration::from_millis(1))),
        )
        .build();
    one_span_and_one_event(&log);
    log.flush_timeout(WAIT).unwrap();
    let paths: Vec<String> = rx.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/traces", "/v1/logs", "/v1/logs"]);
    assert_eq!(rx.spans().len(), 1);
    assert_eq!(rx.log_records().len(), 1);
    let stats = log.stats();
    assert_eq!((stats.delivered, stats.dropped), (3, 0), "{stats:?}");
    assert!(stats.is_balanced());
}

/// Spans accepted and logs refused for good: the span's records count as
/// delivered, the event as refused, with the server's words.
#[test]
fn logs_refused_after_the_spans_were_accepted_are_counted_apart() {
    let rx = OtlpReceiver::start();
    rx.script([
        OtlpAnswer::Ok,
        OtlpAnswer::rpc_status(400, "bad log record"),
    ]);
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpProtobuf))
        .delivery(Background::new())
        .build();
    one_span_and_one_event(&log);
    log.flush_timeout(WAIT).unwrap();
    let stats = log.stats();
    assert_eq!(rx.spans().len(), 1);
    assert_eq!(
        (stats.delivered, stats.dropped, stats.rejected),
        (2, 1, 1),
        "{stats:?}"
    );
    assert!(
        stats.outputs[0]
            .last_rejection
            .as_deref()
            .is_some_and(|m| m.contains("bad log record")),
        "{stats:?}"
    );
    assert!(stats.is_balanced());
}

#[test]
fn partial_success_in_direct_mode_is_reported_as_dropped() {
    let rx = OtlpReceiver::start();
    rx.script([OtlpAnswer::Partial(2, "too old".into())]);
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpJson))
        .build();
    for i in 0..5 {
        log.info("e").field("i", i).emit();
    }
    let report = log.flush().unwrap();
    let delivery = &report.deliveries()[0];
    assert_eq!(
        (delivery.records(), delivery.rejected(), delivery.dropped()),
        (3, 2, 2),
        "{report:?}"
    );
    // The report's totals, and the line a caller prints (issue 18, item 9).
    assert_eq!(
        (report.delivered(), report.rejected(), report.dropped()),
        (3, 2, 2)
    );
    assert!(!report.is_complete());
    let line = report.to_string();
    assert!(
        line.starts_with("5 records: 3 delivered, 2 refused, 2 dropped")
            && line.contains("too old"),
        "{line}"
    );
    let stats = log.stats();
    assert_eq!((stats.delivered, stats.dropped), (3, 2));
    assert!(stats.is_balanced());
}

#[test]
fn a_header_that_cannot_be_sent_fails_the_build() {
    let err = Output::otlp_builder()
        .endpoint("http://127.0.0.1:4318")
        .header("x-key", "a\nb")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTarget);
    assert!(err.to_string().contains("x-key"), "{err}");
    assert!(!err.to_string().contains("a\nb"));
    let err = Output::otlp_builder()
        .endpoint("http://127.0.0.1:4318")
        .header("bad name", "v")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("invalid name"), "{err}");
}

/// A 200 whose body breaks off: the batch was accepted, so it is not sent
/// again.
#[test]
fn an_accepted_batch_whose_answer_breaks_off_is_not_sent_again() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut served = 0;
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = reader.into_inner();
            // Promises 100 bytes, sends 3, hangs up.
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
                .unwrap();
            served += 1;
        }
        served
    });
    let log = BufferedLogger::builder()
        .output(
            Output::otlp_builder()
                .endpoint(&endpoint)
                .request_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
        .delivery(
            Background::new()
                .retry(RetryPolicy::default().initial_backoff(Duration::from_millis(1))),
        )
        .build();
    log.info("once").emit();
    log.flush_timeout(WAIT).unwrap();
    let stats = log.stats();
    assert_eq!((stats.delivered, stats.retried), (1, 0), "{stats:?}");
    drop(log);
    assert_eq!(server.join().unwrap(), 1, "sent once");
}

fn events_of(span: &aitrace_testkit::proto::trace::v1::Span) -> Vec<&str> {
    span.events.iter().map(|e| e.name.as_str()).collect()
}

/// With span events on, each log record goes to its span as a span event
/// too (name, time, attributes), for backends that draw events from the
/// span (Jaeger, Phoenix, Zipkin); a span that ends in a later batch gets
/// the events of the earlier ones.
#[test]
fn span_events_attach_log_records_to_their_spans() {
    for protocol in [Protocol::HttpProtobuf, Protocol::HttpJson] {
        let rx = OtlpReceiver::start();
        let log = BufferedLogger::builder()
            .output(
                Output::otlp_builder()
                    .endpoint(&rx.endpoint)
                    .protocol(protocol)
                    .span_events(true)
                    .build()
                    .unwrap(),
            )
            .build();
        let span = log.span("checkout").enter();
        log.warn("card_checked")
            .field("total", 12.5)
            .field("card", "****4242")
            .emit();
        log.flush().unwrap(); // the span has not ended: its event waits for it
        assert!(rx.spans().is_empty());
        log.info("paid").emit();
        drop(span);
        log.info("outside").emit();
        log.flush().unwrap();
        let spans = rx.spans();
        assert_eq!(spans.len(), 1, "{spans:?}");
        assert_eq!(events_of(&spans[0]), ["card_checked", "paid"]);
        let checked = &spans[0].events[0];
        let record = rx
            .log_records()
            .into_iter()
            .find(|r| r.body.as_ref().and_then(|b| b.value.as_ref()) == Some(&s("card_checked")))
            .unwrap();
        assert_eq!(checked.time_unix_nano, record.time_unix_nano);
        assert_eq!(
            attr(&checked.attributes, "total"),
            Some(&Av::DoubleValue(12.5))
        );
        assert_eq!(attr(&checked.attributes, "card"), Some(&s("****4242")));
        assert_eq!(attr(&checked.attributes, "level"), Some(&s("WARN")));
        assert!(attr(&checked.attributes, "code.file.path").is_some());
        // Still sent as log records too.
        assert_eq!(rx.log_records().len(), 3);
        let stats = log.stats();
        assert_eq!((stats.delivered, stats.dropped), (5, 0), "{stats:?}");
    }
}

/// Without the option, spans carry no events (today's behaviour).
#[test]
fn span_events_are_off_by_default() {
    let rx = OtlpReceiver::start();
    let log = BufferedLogger::builder()
        .output(output(&rx, Protocol::HttpProtobuf))
        .build();
    one_span_and_one_event(&log);
    log.flush().unwrap();
    assert!(rx.spans()[0].events.is_empty());
}

/// tracing-opentelemetry's special fields on a span: `otel.name`,
/// `otel.kind`, `otel.status_code`, `otel.status_message` set the exported
/// span's name, kind and status, and are not attributes; a kind that cannot
/// be read stays an attribute and the span is internal.
#[test]
fn otel_special_fields_set_name_kind_and_status() {
    for protocol in [Protocol::HttpProtobuf, Protocol::HttpJson] {
        let rx = OtlpReceiver::start();
        let log = BufferedLogger::builder()
            .output(output(&rx, protocol))
            .build();
        for (name, kind) in [
            ("a", "server"),
            ("b", "CLIENT"),
            ("c", "producer"),
            ("d", "consumer"),
            ("e", "internal"),
            ("f", "sideways"),
        ] {
            log.span(name).field("otel.kind", kind).enter().end();
        }
        {
            let span = log
                .span("handler")
                .field("otel.name", "GET /users/{id}")
                .field("otel.kind", "server")
                .enter();
            span.record("otel.status_code", "error");
            span.record("otel.status_message", "upstream timed out");
        }
        {
            // `ok` wins over the error field's status.
            let span = log.span("retried").field("otel.status_code", "OK").enter();
            span.fail("first try failed");
        }
        log.flush().unwrap();
        let spans = rx.spans();
        let kind = |name: &str| spans.iter().find(|s| s.name == name).unwrap().kind;
        assert_eq!(
            ["a", "b", "c", "d", "e", "f"].map(kind),
            [2, 3, 4, 5, 1, 1],
            "{protocol:?}"
        );
        let f = spans.iter().find(|s| s.name == "f").unwrap();
        assert_eq!(attr(&f.attributes, "otel.kind"), Some(&s("sideways")));
        let a = spans.iter().find(|s| s.name == "a").unwrap();
        assert!(attr(&a.attributes, "otel.kind").is_none(), "{a:?}");
        let handler = spans.iter().find(|s| s.name == "GET /users/{id}").unwrap();
        assert_eq!(handler.kind, 2);
        let status = handler.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (2, "upstream timed out")
        );
        assert!(
            handler
                .attributes
                .iter()
                .all(|kv| !kv.key.starts_with("otel.")),
            "{:?}",
            handler.attributes
        );
        let retried = spans.iter().find(|s| s.name == "retried").unwrap();
        let status = retried.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (1, ""),
            "STATUS_CODE_OK"
        );
    }
}

/// The environment half: `AITRACE_OTLP_SPAN_EVENTS`, `OTEL_LOGS_EXPORTER`
/// and `OTEL_TRACES_EXPORTER`, in a child process.
#[test]
#[ignore = "run by the tests below as a child process"]
fn signals_child() {
    let log = BufferedLogger::new();
    for round in 0..2 {
        {
            let _span = log.span("job").field("round", round).enter();
            log.info("inside").field("n", 1).emit();
        }
        log.info("outside").emit();
        let _ = log.flush();
    }
    let stats = log.stats();
    println!("\nOUTPUT {}", log.outputs()[0]);
    println!(
        "STATS delivered={} dropped={} balanced={}",
        stats.delivered,
        stats.dropped,
        stats.is_balanced()
    );
    if let Some(why) = stats.outputs[0].last_rejection.as_deref() {
        println!("WHY {why}");
    }
}

fn signals_child_with(rx: &OtlpReceiver, env: &[(&str, &str)]) -> (String, String) {
    run_child("signals_child", rx, env)
}

fn run_child(child: &str, rx: &OtlpReceiver, env: &[(&str, &str)]) -> (String, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([child, "--exact", "--ignored", "--nocapture"])
        .env("LOG_TRG", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint)
        .env_remove("AITRACE_LEVEL")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// `OTEL_LOGS_EXPORTER=none`: no request to `/v1/logs`. With span events
/// on, the records inside spans arrive as span events; the others are
/// counted as dropped, with the reason.
#[test]
fn logs_exporter_none_sends_no_logs_and_counts_what_it_cannot_attach() {
    let rx = OtlpReceiver::start();
    let (stdout, stderr) = signals_child_with(
        &rx,
        &[
            ("OTEL_LOGS_EXPORTER", "none"),
            ("AITRACE_OTLP_SPAN_EVENTS", "1"),
        ],
    );
    let paths: Vec<String> = rx.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().all(|p| p == "/v1/traces"), "{paths:?}");
    let spans = rx.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(
        spans.iter().all(|s| events_of(s) == ["inside"]),
        "{spans:?}"
    );
    // 8 records: 2 × (start, inside, end) delivered, 2 × outside dropped.
    assert!(
        stdout.contains("STATS delivered=6 dropped=2 balanced=true"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OTEL_LOGS_EXPORTER=none"), "{stdout}");
    assert!(
        stdout.contains(&format!("OUTPUT otlp {}/v1/traces", rx.endpoint)),
        "{stdout}"
    );
}

/// A child whose spans outlive a flush: `long` ends one batch later,
/// `forever` never ends.
#[test]
#[ignore = "a child process of logs_exporter_none_counts_an_event_whose_span_ends_later_as_not_sent"]
fn open_spans_child() {
    let log = BufferedLogger::new();
    let long = log.span("long").enter();
    log.info("early").emit();
    let _ = log.flush();
    log.info("late").emit();
    drop(long);
    let _ = log.flush();
    let forever = log.span("forever").enter();
    log.info("lost").emit();
    let _ = log.flush();
    let stats = log.stats();
    println!(
        "\nSTATS delivered={} dropped={} balanced={}",
        stats.delivered,
        stats.dropped,
        stats.is_balanced()
    );
    std::mem::forget(forever);
}

/// With the logs signal off, a record reaches the backend only as an event
/// of a span that ends in its batch: one whose span ends later, or never,
/// is counted as not sent. (It was held in memory and counted delivered,
/// and lost when its span never ended.)
#[test]
fn logs_exporter_none_counts_an_event_whose_span_ends_later_as_not_sent() {
    let rx = OtlpReceiver::start();
    let (stdout, stderr) = run_child(
        "open_spans_child",
        &rx,
        &[
            ("OTEL_LOGS_EXPORTER", "none"),
            ("AITRACE_OTLP_SPAN_EVENTS", "1"),
        ],
    );
    let spans = rx.spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(events_of(&spans[0]), ["late"], "{spans:?}");
    // long.start, late, long.end and forever.start (a start is counted with
    // its batch) delivered; early and lost were not sent.
    assert!(
        stdout.contains("STATS delivered=4 dropped=2 balanced=true"),
        "{stdout}\n{stderr}"
    );
}

/// `OTEL_TRACES_EXPORTER=none`: no request to `/v1/traces`; span
/// lifecycles go as log records, as with `.spans(false)`.
#[test]
fn traces_exporter_none_sends_lifecycles_as_log_records() {
    let rx = OtlpReceiver::start();
    let (stdout, stderr) = signals_child_with(&rx, &[("OTEL_TRACES_EXPORTER", "none")]);
    let paths: Vec<String> = rx.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().all(|p| p == "/v1/logs"), "{paths:?}");
    assert_eq!(rx.log_records().len(), 8);
    assert!(
        stdout.contains("STATS delivered=8 dropped=0 balanced=true"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("OUTPUT otlp {}/v1/logs", rx.endpoint)),
        "{stdout}"
    );
}

/// Both signals off: nothing could be sent, a clear error (`LOG_TRG`
/// falls back to stdout and says why).
#[test]
fn both_exporters_none_is_a_clear_error() {
    let err = Command::new(std::env::current_exe().unwrap())
        .args(["signals_child", "--exact", "--ignored", "--nocapture"])
        .env("LOG_TRG", "otlp")
        .env("OTEL_LOGS_EXPORTER", "none")
        .env("OTEL_TRACES_EXPORTER", "none")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&err.stdout),
        String::from_utf8_lossy(&err.stderr)
    );
    assert!(
        text.contains("logs are off (OTEL_LOGS_EXPORTER=none")
            && text.contains("spans are off (OTEL_TRACES_EXPORTER=none"),
        "{text}"
    );
}

/// A backend without a logs endpoint (404, 405, 415 on `/v1/logs`): one
/// line on stderr says so and names the option, however many batches.
#[test]
fn a_backend_without_logs_is_named_once_on_stderr() {
    let rx = OtlpReceiver::start();
    let refuse = || OtlpAnswer::Status {
        status: 405,
        retry_after: None,
        body: b"Method Not Allowed".to_vec(),
        content_type: "text/plain".into(),
    };
    rx.script([OtlpAnswer::Ok, refuse(), OtlpAnswer::Ok, refuse()]);
    let (stdout, stderr) = signals_child_with(&rx, &[]);
    assert_eq!(rx.spans().len(), 2, "{stdout}\n{stderr}");
    assert_eq!(
        stderr.matches("takes no logs").count(),
        1,
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("AITRACE_OTLP_SPAN_EVENTS=1"), "{stderr}");
    assert!(stderr.contains("OTEL_LOGS_EXPORTER=none"), "{stderr}");
}

/// `Display` names where both signals go.
#[test]
fn display_names_both_endpoints() {
    let out = Output::otlp_builder()
        .logs_endpoint("http://a:4318/v1/logs")
        .traces_endpoint("http://b:4318/v1/traces")
        .build()
        .unwrap();
    assert_eq!(
        out.to_string(),
        "otlp http://a:4318/v1/logs + http://b:4318/v1/traces (http/protobuf)"
    );
    let out = Output::otlp_builder()
        .endpoint("http://a:4318")
        .spans(false)
        .build()
        .unwrap();
    assert_eq!(
        out.to_string(),
        "otlp http://a:4318/v1/logs (http/protobuf)"
    );
}
