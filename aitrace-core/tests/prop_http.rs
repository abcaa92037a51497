//! Property tests of what an HTTP output reads from a server: any
//! `Retry-After` value and any answer body give a value or a clear error,
//! never a panic. Served by a tiny server on 127.0.0.1 that answers each
//! request with whatever the test set last.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use aitrace_core::{BufferedLogger, Direct, ErrorKind, OnFailure, Output};
use parking_lot::Mutex;
use proptest::prelude::*;

/// Answers every request with the raw bytes last set, then closes.
struct RawServer {
    url: String,
    answer: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

impl RawServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (answer, stop) = (answer.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &answer.lock());
                    }
                }
            })
        };
        RawServer {
            url: format!("http://{addr}/api/ingest"),
            answer,
            stop,
            thread: Some(thread),
            addr,
        }
    }

    fn answer(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut raw = format!("HTTP/1.1 {status} Whatever\r\n").into_bytes();
        for (name, value) in headers {
            raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        raw.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        raw.extend_from_slice(body);
        *self.answer.lock() = raw;
    }
}

/// Reads one request (head and `Content-Length` body) and writes `answer`.
fn serve(stream: TcpStream, answer: &[u8]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut stream = reader.into_inner();
    stream.write_all(answer)?;
    stream.flush()
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn logger(url: &str) -> BufferedLogger {
    let output = Output::http_builder(url)
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    BufferedLogger::builder().output(output).build()
}

fn retry_after() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,25}",
        " {0,2}[0-9]{1,4} {0,2}",
        (0u64..4_000_000_000).prop_map(|secs| httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + Duration::from_secs(secs)
        )),
        "[ -~]{0,40}",
        "-[0-9]{1,5}|[0-9]+\\.[0-9]+|[0-9]e[0-9]",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_retry_after_gives_a_bounded_delay_or_none(value in retry_after()) {
        let server = RawServer::start();
        let log = logger(&server.url);
        server.answer(429, &[("Retry-After", &value)], b"slow down");
        log.info("x").emit();
        let err = log.flush().unwrap_err();
        log.clear();
        prop_assert_eq!(err.kind(), ErrorKind::HttpStatus, "{}", err);
        prop_assert_eq!(err.status(), Some(429));
        prop_assert!(err.is_transient());
        let delay = err.retry_after();
        prop_assert!(delay.is_none_or(|d| d <= Duration::from_secs(600)), "{:?}", delay);
        let trimmed = value.trim();
        if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            let expected = trimmed.parse::<u64>().ok().map(|s| Duration::from_secs(s.min(600)));
            prop_assert_eq!(delay, expected, "{:?}", value);
        }
    }

    #[test]
    fn any_answer_body_gives_a_report_or_a_bounded_error(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600),
            any::<String>().prop_map(String::into_bytes),
            (any::<i64>(), "[a-z]{0,5}").prop_map(|(n, k)| {
                format!(r#"{{"ingested": {n}, "{k}": [1]}}"#).into_bytes()
            }),
            any::<String>().prop_map(|s| serde_json::json!({ "ingested": s }).to_string().into_bytes()),
            "\\[|\\{|null|[0-9]{1,30}".prop_map(String::into_bytes),
        ],
        status in prop::sample::select(vec![200u16, 201, 204, 400, 500]),
    ) {
        let server = RawServer::start();
        let dir = tempfile::tempdir().unwrap();
        let output = Output::http_builder(&server.url)
            .request_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let log = BufferedLogger::builder()
            .output(output)
            .delivery(Direct::new().on_failure(OnFailure::FallbackFile(dir.path().join("refused.jsonl"))))
            .build();
        let body = if status == 204 { Vec::new() } else { body };
        server.answer(status, &[], &body);
        log.info("x").emit();
        let result = log.flush();
        log.clear();
        if (200..300).contains(&status) {
            let report = result.unwrap();
            let expected = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|answer| answer.get("ingested")?.as_u64())
                .map(|n| n as usize);
            prop_assert_eq!(report.ingested(), expected);
            prop_assert_eq!(report.records(), 1);
        } else if status == 400 {
            // Refused for good: set aside, and the report says why.
            let report = result.unwrap();
            prop_assert_eq!(report.rejected(), 1, "{:?}", report);
            let text = report.deliveries()[0].rejection().unwrap_or_default().to_owned();
            prop_assert!(text.contains(&format!("HTTP {status}")), "{}", text);
            // The body is quoted by its first 512 characters, at most.
            prop_assert!(text.chars().count() < 512 + 200, "{}", text.len());
        } else {
            let err = result.unwrap_err();
            prop_assert_eq!(err.kind(), ErrorKind::HttpStatus);
            prop_assert_eq!(err.status(), Some(status));
            let text = err.to_string();
            prop_assert!(text.contains(&format!("HTTP {status}")), "{}", text);
            prop_assert!(text.chars().count() < 512 + 200, "{}", text.len());
            prop_assert!(err.fallback_path().is_some(), "{}", text);
        }
    }
}
