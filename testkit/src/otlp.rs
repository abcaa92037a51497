//! An OTLP/HTTP receiver on 127.0.0.1: it decodes every request with the
//! `opentelemetry-proto` message types (protobuf, or the JSON mapping,
//! gzip-compressed or not), keeps what it decoded, and answers as told.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message as _;

pub use opentelemetry_proto::tonic as proto;

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum OtlpAnswer {
    /// 200 with an empty response message in the request's encoding.
    Ok,
    /// 200 with a `partialSuccess` refusing this many items, with a message.
    Partial(i64, String),
    /// This status, a `Retry-After` when given, and this body and content type.
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
        /// The body.
        body: Vec<u8>,
        /// Its content type.
        content_type: String,
    },
    /// 200 with a body that is not a response message.
    Garbage,
}

impl OtlpAnswer {
    /// A status with a `google.rpc.Status` protobuf body carrying `message`.
    pub fn rpc_status(status: u16, message: &str) -> Self {
        #[derive(Clone, PartialEq, prost::Message)]
        struct RpcStatus {
            #[prost(int32, tag = "1")]
            code: i32,
            #[prost(string, tag = "2")]
            message: String,
        }
        OtlpAnswer::Status {
            status,
            retry_after: None,
            body: RpcStatus {
                code: 3,
                message: message.to_owned(),
            }
            .encode_to_vec(),
            content_type: "application/x-protobuf".to_owned(),
        }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct OtlpRequest {
    /// The path posted to (`/v1/logs`, `/v1/traces`).
    pub path: String,
    /// `Content-Type`.
    pub content_type: String,
    /// Whether it came gzip-compressed.
    pub gzip: bool,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The decoded logs request, for `/v1/logs`.
    pub logs: Option<ExportLogsServiceRequest>,
    /// The decoded traces request, for `/v1/traces`.
    pub traces: Option<ExportTraceServiceRequest>,
    /// Why the body could not be decoded, if it could not (answered 400).
    pub error: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct State {
    requests: Vec<OtlpRequest>,
    script: VecDeque<OtlpAnswer>,
    down: bool,
}

/// A running OTLP receiver; stops when dropped.
pub struct OtlpReceiver {
    /// The base endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    /// Starts a receiver that accepts everything.
    pub fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = server.server_addr().to_ip().expect("ip").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(20)) else {
                        continue;
                    };
                    handle(&state, request);
                }
            })
        };
        OtlpReceiver {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Answers the next requests as listed, then `Ok` again.
    pub fn script(&self, answers: impl IntoIterator<Item = OtlpAnswer>) {
        self.state.lock().script.extend(answers);
    }

    /// While down, every request is answered 503 and not kept.
    pub fn set_down(&self, down: bool) {
        self.state.lock().down = down;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<OtlpRequest> {
        self.state.lock().requests.clone()
    }

    /// Every log record received in requests that were accepted.
    pub fn log_records(&self) -> Vec<LogRecord> {
        self.state
            .lock()
            .requests
            .iter()
            .filter_map(|r| r.logs.as_ref())
            .flat_map(|l| &l.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| s.log_records.iter().cloned())
            .collect()
    }

    /// Every span received.
    pub fn spans(&self) -> Vec<Span> {
        self.state
            .lock()
            .requests
            .iter()
            .filter_map(|r| r.traces.as_ref())
            .flat_map(|t| &t.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.iter().cloned())
            .collect()
    }

    /// Waits until `pred` holds for what was received, at most `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&OtlpReceiver) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(state: &Mutex<State>, mut request: tiny_http::Request) {
    let path = request.url().to_owned();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let content_type = header("content-type");
    let gzip = header("content-encoding").eq_ignore_ascii_case("gzip");
    let mut raw = Vec::new();
    let _ = request.as_reader().read_to_end(&mut raw);
    let (answer, down) = {
        let mut state = state.lock();
        (state.script.pop_front(), state.down)
    };
    if down {
        let _ = request.respond(tiny_http::Response::empty(503));
        return;
    }
    let json = content_type.starts_with("application/json");
    let mut received = OtlpRequest {
        path: path.clone(),
        content_type: content_type.clone(),
        gzip,
        headers,
        logs: None,
        traces: None,
        error: None,
        at: Instant::now(),
    };
    let body = if gzip {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(format!("bad gzip: {e}")),
        }
    } else {
        Ok(raw)
    };
    let decoded = body.and_then(|body| {
        if !(json || content_type.starts_with("application/x-protobuf")) {
            return Err(format!("unexpected content type {content_type:?}"));
        }
        match path.as_str() {
            "/v1/logs" if json => serde_json::from_slice::<ExportLogsServiceRequest>(&body)
                .map(|r| received.logs = Some(r))
                .map_err(|e| e.to_string()),
            "/v1/logs" => ExportLogsServiceRequest::decode(&body[..])
                .map(|r| received.logs = Some(r))
                .map_err(|e| e.to_string()),
            "/v1/traces" if json => serde_json::from_slice::<ExportTraceServiceRequest>(&body)
                .map(|r| received.traces = Some(r))
                .map_err(|e| e.to_string()),
            "/v1/traces" => ExportTraceServiceRequest::decode(&body[..])
                .map(|r| received.traces = Some(r))
                .map_err(|e| e.to_string()),
            other => Err(format!("unexpected path {other}")),
        }
    });
    let answer = match decoded {
        Err(e) => {
            received.error = Some(e.clone());
            OtlpAnswer::Status {
                status: 400,
                retry_after: None,
                body: e.into_bytes(),
                content_type: "text/plain".into(),
            }
        }
        Ok(()) => answer.unwrap_or(OtlpAnswer::Ok),
    };
    let accepted = matches!(
        answer,
        OtlpAnswer::Ok | OtlpAnswer::Partial(..) | OtlpAnswer::Garbage
    );
    if !accepted {
        received.logs = None;
        received.traces = None;
    }
    state.lock().requests.push(received);
    let logs = path == "/v1/logs";
    let respond = |status: u16, body: Vec<u8>, content_type: &str| {
        let header = tiny_http::Header::from_bytes("Content-Type", content_type).expect("header");
        tiny_http::Response::from_data(body)
            .with_status_code(status)
            .with_header(header)
    };
    let encoding = if json {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    let response = match answer {
        OtlpAnswer::Ok => respond(200, response_body(logs, json, None), encoding),
        OtlpAnswer::Partial(n, message) => {
            respond(200, response_body(logs, json, Some((n, message))), encoding)
        }
        OtlpAnswer::Garbage => respond(200, b"<html>ok</html>".to_vec(), "text/html"),
        OtlpAnswer::Status {
            status,
            retry_after,
            body,
            content_type,
        } => {
            let mut response = respond(status, body, &content_type);
            if let Some(secs) = retry_after {
                response = response.with_header(
                    tiny_http::Header::from_bytes("Retry-After", secs.to_string()).expect("header"),
                );
            }
            response
        }
    };
    let _ = request.respond(response);
}

fn response_body(logs: bool, json: bool, partial: Option<(i64, String)>) -> Vec<u8> {
    if logs {
        let response = ExportLogsServiceResponse {
            partial_success: partial.map(|(n, m)| ExportLogsPartialSuccess {
                rejected_log_records: n,
                error_message: m,
            }),
        };
        if json {
            serde_json::to_vec(&response).expect("json")
        } else {
            response.encode_to_vec()
        }
    } else {
        let response = ExportTraceServiceResponse {
            partial_success: partial.map(|(n, m)| ExportTracePartialSuccess {
                rejected_spans: n,
                error_message: m,
            }),
        };
        if json {
            serde_json::to_vec(&response).expect("json")
        } else {
            response.encode_to_vec()
        }
    }
}
