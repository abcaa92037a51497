//! Test support for the aitrace workspace: a real ingest server on
//! 127.0.0.1 that behaves like the reference aitrace server (it stores only
//! records with a trace and span id) or answers as told, and wire-format checks;
//! and an in-memory logger with a record lookup, for tests that read records back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

mod fault;
mod otlp;
mod records;
mod tls;
pub use fault::{Fault, FaultServer, count_unique};
pub use otlp::{OtlpAnswer, OtlpReceiver, OtlpRequest, proto};
pub use records::{find, memory_logger};
use serde_json::Value as Json;
pub use tls::TlsServer;

/// How the server answers each request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with `{"ingested": N}`, N counting records with both ids.
    Reference,
    /// This status and body.
    Status(u16, String),
}

/// One request's headers, names lower-cased.
pub type Headers = Vec<(String, String)>;

/// A running ingest server; stops when dropped.
#[derive(Debug)]
pub struct IngestServer {
    /// The ingest URL, `http://127.0.0.1:PORT/api/ingest`.
    pub url: String,
    answer: Arc<Mutex<Answer>>,
    batches: Arc<Mutex<Vec<Json>>>,
    headers: Arc<Mutex<Vec<Headers>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl IngestServer {
    /// Starts a server answering as `answer` says.
    pub fn start(answer: Answer) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = server.server_addr().to_ip().expect("ip").port();
        let answer = Arc::new(Mutex::new(answer));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (answer, batches, headers, stop) = (
                answer.clone(),
                batches.clone(),
                headers.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(20))
                    else {
                        continue;
                    };
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    headers.lock().push(
                        request
                            .headers()
                            .iter()
                            .map(|h| {
                                (
                                    h.field.to_string().to_ascii_lowercase(),
                                    h.value.to_string(),
                                )
                            })
                            .collect(),
                    );
                    let parsed: Json = serde_json::from_str(&body).unwrap_or(Json::String(body));
                    let (status, text) = match answer.lock().clone() {
                        Answer::Reference => {
                            let stored = parsed
                                .as_array()
                                .map_or(0, |records| records.iter().filter(|r| has_ids(r)).count());
                            (200, format!(r#"{{"ingested": {stored}}}"#))
                        }
                        Answer::Status(status, text) => (status, text),
                    };
                    if (200..300).contains(&status) {
                        batches.lock().push(parsed);
                    }
                    let _ = request
                        .respond(tiny_http::Response::from_string(text).with_status_code(status));
                }
            })
        };
        IngestServer {
            url: format!("http://127.0.0.1:{port}/api/ingest"),
            answer,
            batches,
            headers,
            stop,
            thread: Some(thread),
        }
    }

    /// Changes how later requests are answered.
    pub fn set_answer(&self, answer: Answer) {
        *self.answer.lock() = answer;
    }

    /// The accepted batches, each a parsed JSON body.
    pub fn batches(&self) -> Vec<Json> {
        self.batches.lock().clone()
    }

    /// Every accepted record, in order.
    pub fn records(&self) -> Vec<Json> {
        self.batches()
            .into_iter()
            .flat_map(|b| b.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The headers of every request, names lower-cased.
    pub fn request_headers(&self) -> Vec<Headers> {
        self.headers.lock().clone()
    }
}

impl Drop for IngestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether a record carries a trace and a span id, as the reference server requires.
pub fn has_ids(record: &Json) -> bool {
    let meta = record.get("__tracer_meta__").unwrap_or(record);
    meta.get("trace_id").is_some_and(Json::is_string)
        && meta.get("span_id").is_some_and(Json::is_string)
}

/// A 127.0.0.1 URL on which nothing listens.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/api/ingest")
}

/// Checks one record against WIRE_FORMAT.md §1.
pub fn assert_wire_record(record: &Json) {
    let obj = record.as_object().expect("a record is an object");
    let meta = obj["__tracer_meta__"].as_object().expect("meta object");
    let ts = meta["timestamp"].as_str().expect("timestamp string");
    assert_eq!(ts.len(), 27, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    assert!(meta["event"].is_string());
    assert!(
        ["trace", "debug", "info", "warning", "error"].contains(&meta["level"].as_str().unwrap()),
        "{meta:?}"
    );
    if let Some(t) = meta.get("trace_id") {
        let t = t.as_str().unwrap();
        assert!(
            t.len() == 32
                && t.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(t, "0".repeat(32));
        let s = meta["span_id"].as_str().unwrap();
        assert!(
            s.len() == 16
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(s, "0".repeat(16));
    }
    if let Some(line) = meta.get("line") {
        assert!(line.as_u64().unwrap() >= 1);
    }
}
