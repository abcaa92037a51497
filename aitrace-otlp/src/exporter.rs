//! Posting OTLP requests and reading the answers (OTLP/HTTP, spec 1.x):
//! which statuses are retried, `Retry-After`, `partialSuccess`, and the
//! `google.rpc.Status` an error answer carries.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use parking_lot::Mutex;
use prost::Message as _;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{OtlpOutputBuilder, Protocol, SPAN_EVENTS_VAR, Signal, SignalConfig, Signals};
use crate::convert::{self, OpenSpans};
use crate::json::{logs_json, resource_json, traces_json};
use crate::proto_common::resource_protobuf;
use crate::proto_logs::logs_protobuf;
use crate::proto_traces::traces_protobuf;
use crate::transport::RawAnswer;
use aitrace_model::Record;
use aitrace_model::scratch::{MAX_KEPT_BODY, Scratch, with_scratch};
use aitrace_model::{ConfigError, Error, ErrorKind, Result};

/// `google.rpc.Status`, the body of an OTLP error answer. Only the fields
/// read here; prost skips the rest (`details`).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// One signal's endpoint, ready to post to.
struct Endpoint {
    config: SignalConfig,
    client: crate::transport::HttpClient,
}

/// What the server refused of an accepted request (`partialSuccess`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) count: u64,
    pub(crate) message: String,
}

/// The OTLP output's sending half: the two endpoints, the resource, and
/// the span starts waiting for their ends.
pub struct OtlpExporter {
    /// `None` when the logs signal is off (`OTEL_LOGS_EXPORTER=none`).
    logs: Option<Endpoint>,
    /// `None` when span lifecycles go as log records.
    traces: Option<Endpoint>,
    /// The resource's attributes, encoded once in each encoding.
    resource_protobuf: Vec<u8>,
    resource_json: Vec<u8>,
    signals: Signals,
    open: Mutex<OpenSpans>,
    /// Shown in `Display` and errors.
    name: String,
    /// What the spool folder's name is made from: the name `Display` gave
    /// before it named both endpoints, so spooled batches are found again.
    slug_name: String,
    /// Whether the line about a backend without logs was said.
    said_no_logs: AtomicBool,
}

thread_local! {
    static BODY: Scratch = const { Scratch::new(Vec::new()) };
}

impl OtlpExporter {
    pub(crate) fn new(builder: &OtlpOutputBuilder) -> Result<Self, ConfigError> {
        let endpoint = |signal| -> Result<Endpoint, ConfigError> {
            let config = builder.signal(signal)?;
            check_url(&config.url)?;
            let signal_name = match signal {
                Signal::Logs => "logs",
                Signal::Traces => "traces",
            };
            crate::transport::check_headers(
                &config.headers,
                &format!(
                    "the OTLP {signal_name} headers (from code or OTEL_EXPORTER_OTLP_HEADERS)"
                ),
            )?;
            let client = crate::transport::HttpClient::new(
                (builder.connect_timeout)
                    .unwrap_or(crate::transport::DEFAULT_CONNECT_TIMEOUT.min(config.timeout)),
                config.timeout,
                config.ca_file.as_deref(),
            )?;
            Ok(Endpoint { config, client })
        };
        let signals = builder.signals()?;
        let logs = signals.logs.then(|| endpoint(Signal::Logs)).transpose()?;
        let traces = signals
            .spans
            .then(|| endpoint(Signal::Traces))
            .transpose()?;
        let name = display_name(logs.as_ref(), traces.as_ref());
        let slug_name = match logs.as_ref().or(traces.as_ref()) {
            Some(e) => format!(
                "otlp {} ({})",
                crate::transport::redact_url(&e.config.url),
                e.config.protocol.as_str()
            ),
            None => name.clone(),
        };
        let resource = builder.resource();
        Ok(OtlpExporter {
            resource_protobuf: resource_protobuf(&resource),
            resource_json: resource_json(&resource),
            signals,
            open: Mutex::new(OpenSpans::default()),
            logs,
            traces,
            name,
            slug_name,
            said_no_logs: AtomicBool::new(false),
        })
    }

    /// What the spool folder's name is made from (stable across versions).
    pub(crate) fn slug_name(&self) -> &str {
        &self.slug_name
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Sends one batch: its finished spans to the traces endpoint (each
    /// with its events when span events are on), then its events to the
    /// logs endpoint. A failure of either fails the batch, which may be
    /// sent again whole (at least once), but spans already accepted are not
    /// sent again. When the traces endpoint took the spans and the logs
    /// endpoint refuses the events for good, the events are counted as
    /// refused and the spans as delivered. With the logs signal off, the
    /// events that go on no span are counted as refused, saying why. On
    /// success, what the servers refused in `partialSuccess` answers.
    pub(crate) fn send(&self, records: &[Record]) -> Result<Rejection> {
        let Signals {
            logs: logs_on,
            spans,
            span_events,
        } = self.signals;
        let logs = match &self.logs {
            Some(_) => convert::log_records(records, spans),
            None => Vec::new(),
        };
        let mut rejection = Rejection::default();
        let (spans_sent, wait) = match &self.traces {
            Some(traces) => {
                let mut open = self.open.lock();
                let (ids, mut wait, unattached) = {
                    let plan = open.plan(records, true, span_events);
                    if !plan.spans.is_empty() {
                        let refused =
                            self.post(traces, Signal::Traces, |protocol, body| match protocol {
                                Protocol::HttpProtobuf => {
                                    traces_protobuf(&plan.spans, &self.resource_protobuf, body);
                                }
                                Protocol::HttpJson => {
                                    traces_json(&plan.spans, &self.resource_json, body);
                                }
                            })?;
                        rejection.add(refused);
                    }
                    (plan.ids, plan.wait, plan.unattached + plan.capped)
                };
                open.exported(&ids);
                if !logs_on {
                    // Nothing else carries a record that goes on no span of
                    // this batch: one whose span ends later is not held
                    // (the books would call it delivered while it waits in
                    // memory, and lose it if its span never ends).
                    let unattached = if span_events {
                        unattached + std::mem::take(&mut wait).len()
                    } else {
                        convert::log_records(records, true).len()
                    };
                    if unattached > 0 {
                        rejection.add(Some(Rejection {
                            count: unattached as u64,
                            message: not_sent_as_logs(unattached, span_events),
                        }));
                    }
                }
                (!ids.is_empty(), wait)
            }
            None => (false, Vec::new()),
        };
        if let Some(endpoint) = self.logs.as_ref().filter(|_| !logs.is_empty()) {
            let sent = self.post(endpoint, Signal::Logs, |protocol, body| match protocol {
                Protocol::HttpProtobuf => {
                    logs_protobuf(&logs, &self.resource_protobuf, body);
                }
                Protocol::HttpJson => logs_json(&logs, &self.resource_json, body),
            });
            match sent {
                Ok(refused) => rejection.add(refused),
                Err(err) => {
                    self.say_no_logs(&err);
                    if spans_sent && !err.is_transient() {
                        rejection.add(Some(Rejection {
                            count: logs.len() as u64,
                            message: format!(
                                "the spans were delivered, the log records refused: {err}"
                            ),
                        }));
                    } else {
                        return Err(err);
                    }
                }
            }
        }
        if !wait.is_empty() {
            self.open.lock().wait(records, &wait);
        }
        // A refused span counts as one record, the refused at most what was sent.
        Ok(Rejection {
            count: rejection.count.min(records.len() as u64),
            ..rejection
        })
    }

    /// After the logs endpoint refused a batch: when its status says the
    /// backend has no logs endpoint (404, 405, 415; Jaeger, Zipkin and
    /// Phoenix have none), one line on stderr naming what to do.
    fn say_no_logs(&self, err: &Error) {
        if !matches!(err.status(), Some(404 | 405 | 415))
            || self.said_no_logs.swap(true, Ordering::Relaxed)
        {
            return;
        }
        let url = self
            .logs
            .as_ref()
            .map(|e| crate::transport::redact_url(&e.config.url))
            .unwrap_or_default();
        let events = if self.signals.span_events {
            String::new()
        } else {
            format!(
                "set {SPAN_EVENTS_VAR}=1 (or OtlpOutputBuilder::span_events) to attach log \
                 records to their spans as span events, and "
            )
        };
        eprintln!(
            "aitrace: {url} answered HTTP {}: this backend takes no logs (no /v1/logs); \
             {events}OTEL_LOGS_EXPORTER=none to stop sending them as logs",
            err.status().unwrap_or_default()
        );
    }

    fn post(
        &self,
        endpoint: &Endpoint,
        signal: Signal,
        encode: impl FnOnce(Protocol, &mut Vec<u8>),
    ) -> Result<Option<Rejection>> {
        with_scratch(&BODY, MAX_KEPT_BODY, |body| {
            encode(endpoint.config.protocol, body);
            self.post_body(endpoint, signal, body)
        })
    }

    fn post_body(
        &self,
        endpoint: &Endpoint,
        signal: Signal,
        body: &[u8],
    ) -> Result<Option<Rejection>> {
        let config = &endpoint.config;
        let url = crate::transport::redact_url(&config.url);
        let RawAnswer {
            status,
            retry_after,
            json: json_answer,
            body: text,
            read,
        } = endpoint.client.post(
            &config.url,
            &url,
            config.protocol.content_type(),
            config.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            config.gzip,
            body,
        )?;
        if !(200..300).contains(&status) {
            let message = error_message(&text, json_answer);
            return Err(Error::new(
                ErrorKind::HttpStatus,
                format!("{url} answered HTTP {status}: {message}"),
            )
            .with_status(status)
            .with_retry_after(retry_after)
            .with_transient(is_retryable(status)));
        }
        if let Err(e) = read {
            // Accepted (2xx): sending it again would only duplicate it.
            crate::diagnostics::say_once("otlp-answer", || {
                format!("{url} accepted a batch but its answer could not be read: {e}")
            });
            return Ok(None);
        }
        match partial_success(signal, &text, json_answer) {
            Ok(rejection) => Ok(rejection),
            Err(why) => {
                // The request was accepted (2xx): sending it again would only
                // duplicate it. Say what could not be read, once, and go on.
                crate::diagnostics::say_once("otlp-answer", || {
                    format!("{url} accepted a batch but its answer could not be read: {why}")
                });
                Ok(None)
            }
        }
    }
}

impl Rejection {
    fn add(&mut self, other: Option<Rejection>) {
        if let Some(other) = other {
            self.count += other.count;
            if self.message.is_empty() {
                self.message = other.message;
            } else if !other.message.is_empty() {
                self.message = format!("{}; {}", self.message, other.message);
            }
        }
    }
}

/// Why log records were not sent with the logs signal off.
fn not_sent_as_logs(count: usize, span_events: bool) -> String {
    if span_events {
        format!(
            "OTEL_LOGS_EXPORTER=none: {count} log records not sent (no span ending in \
             their batch to attach them to as span events, or past its 128 events)"
        )
    } else {
        format!(
            "OTEL_LOGS_EXPORTER=none: {count} log records not sent; {SPAN_EVENTS_VAR}=1 \
             attaches those of a span to it as span events"
        )
    }
}

/// `Display` of the output: the base endpoint when both signals go to
/// `BASE/v1/logs` and `BASE/v1/traces`, else each signal's URL.
fn display_name(logs: Option<&Endpoint>, traces: Option<&Endpoint>) -> String {
    let url = |e: &Endpoint| crate::transport::redact_url(&e.config.url);
    let protocol = |e: &Endpoint| e.config.protocol.as_str();
    match (logs, traces) {
        (Some(l), Some(t)) => {
            let (lu, tu) = (url(l), url(t));
            let base = lu
                .strip_suffix("/v1/logs")
                .filter(|base| tu.strip_suffix("/v1/traces") == Some(*base));
            match base {
                Some(base) if protocol(l) == protocol(t) => {
                    format!("otlp {base} ({})", protocol(l))
                }
                _ if protocol(l) == protocol(t) => format!("otlp {lu} + {tu} ({})", protocol(l)),
                _ => format!("otlp {lu} ({}) + {tu} ({})", protocol(l), protocol(t)),
            }
        }
        (Some(e), None) | (None, Some(e)) => format!("otlp {} ({})", url(e), protocol(e)),
        (None, None) => "otlp (nothing to send)".to_owned(),
    }
}

/// The statuses OTLP/HTTP says to retry.
pub(crate) fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The `partialSuccess` of a 2xx answer: `None` when everything was
/// accepted (an empty body, or no rejections). An answer that is neither
/// protobuf nor JSON of the response message is an error (text).
fn partial_success(
    signal: Signal,
    body: &[u8],
    json: bool,
) -> std::result::Result<Option<Rejection>, String> {
    if body.is_empty() {
        return Ok(None);
    }
    let (count, message) = match (signal, json) {
        (Signal::Logs, false) => {
            let r = ExportLogsServiceResponse::decode(body).map_err(|e| e.to_string())?;
            let p = r.partial_success.unwrap_or_default();
            (p.rejected_log_records, p.error_message)
        }
        (Signal::Logs, true) => json_partial_success(body, "rejectedLogRecords")?,
        (Signal::Traces, false) => {
            let r = ExportTraceServiceResponse::decode(body).map_err(|e| e.to_string())?;
            let p = r.partial_success.unwrap_or_default();
            (p.rejected_spans, p.error_message)
        }
        (Signal::Traces, true) => json_partial_success(body, "rejectedSpans")?,
    };
    if count <= 0 && message.is_empty() {
        return Ok(None);
    }
    let what = match (signal, count) {
        (Signal::Logs, 1) => "log record",
        (Signal::Logs, _) => "log records",
        (Signal::Traces, 1) => "span",
        (Signal::Traces, _) => "spans",
    };
    let message = if message.is_empty() {
        format!("the server refused {count} {what}")
    } else {
        format!("the server refused {count} {what}: {message}")
    };
    Ok(Some(Rejection {
        count: count.max(0) as u64,
        message,
    }))
}

/// `partialSuccess` of a JSON answer, read by hand: the protobuf JSON
/// mapping writes the int64 count as a string (the Collector does), which
/// the message types' serde does not take.
fn json_partial_success(
    body: &[u8],
    count_key: &str,
) -> std::result::Result<(i64, String), String> {
    let answer: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !answer.is_object() {
        return Err("the answer is not a JSON object".to_owned());
    }
    let Some(partial) = answer
        .get("partialSuccess")
        .or_else(|| answer.get("partial_success"))
    else {
        return Ok((0, String::new()));
    };
    let count_snake = if count_key == "rejectedSpans" {
        "rejected_spans"
    } else {
        "rejected_log_records"
    };
    let count = match partial.get(count_key).or_else(|| partial.get(count_snake)) {
        None | Some(serde_json::Value::Null) => 0,
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| format!("{count_key} is not a number: {s:?}"))?,
        Some(other) => return Err(format!("{count_key} is not a number: {other}")),
    };
    let message = partial
        .get("errorMessage")
        .or_else(|| partial.get("error_message"))
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    Ok((count, message))
}

/// The message of an error answer: a `google.rpc.Status` in protobuf or
/// JSON when it is one, else the start of the body as text.
fn error_message(body: &[u8], json: bool) -> String {
    let status = if json {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
    } else {
        RpcStatus::decode(body)
            .ok()
            .map(|s| s.message)
            .filter(|m| !m.is_empty() && !m.contains('\u{fffd}'))
    };
    let text = match status {
        Some(message) => message,
        None => String::from_utf8_lossy(body).into_owned(),
    };
    let prefix = crate::transport::text_prefix(&text);
    if prefix.is_empty() {
        return "(no body)".to_owned();
    }
    prefix
}

/// Fails early on a URL ureq could not post to.
fn check_url(url: &str) -> Result<(), ConfigError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(ConfigError::invalid_target(format!(
            "invalid OTLP endpoint {}: expected http:// or https://",
            crate::transport::redact_url(url)
        )));
    }
    url.parse::<ureq::http::Uri>().map_err(|e| {
        ConfigError::invalid_target(format!(
            "invalid OTLP endpoint {}: {e}",
            crate::transport::redact_url(url)
        ))
    })?;
    crate::transport::check_scheme(url, &crate::transport::redact_url(url))
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field(
                "logs",
                &self
                    .logs
                    .as_ref()
                    .map(|l| crate::transport::redact_url(&l.config.url)),
            )
            .field(
                "traces",
                &self
                    .traces
                    .as_ref()
                    .map(|t| crate::transport::redact_url(&t.config.url)),
            )
            .field(
                "protocol",
                &self
                    .logs
                    .as_ref()
                    .or(self.traces.as_ref())
                    .map(|e| e.config.protocol),
            )
            .finish_non_exhaustive()
    }
}

/// Its name: both endpoints and the protocol, never a header or user-info.
impl fmt::Display for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl crate::export::Export for OtlpExporter {
    fn name(&self) -> String {
        OtlpExporter::name(self).to_owned()
    }

    fn kind(&self) -> &'static str {
        "otlp"
    }

    /// The name it had before `Display` named both endpoints, so that
    /// batches spooled by earlier versions are found again.
    fn spool_key(&self) -> String {
        self.slug_name().to_owned()
    }

    fn input(&self) -> crate::export::Input {
        crate::export::Input::Records
    }

    /// A replayed batch is read back from its JSON Lines; a line that
    /// cannot be is counted as refused.
    fn export(&self, batch: &crate::export::Batch<'_>) -> Result<crate::export::Accepted> {
        let mut refused = self.send(&batch.records())?;
        let unreadable = batch.unreadable();
        if unreadable > 0 {
            refused.count += unreadable as u64;
            refused.message =
                format!("{unreadable} spooled records could not be read back as records");
        }
        Ok(if refused.count > 0 || !refused.message.is_empty() {
            crate::export::Accepted::partly(refused.count as usize, refused.message)
        } else {
            crate::export::Accepted::all()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the `tls` feature an `https` endpoint is refused when the
    /// output is built, not at its first send (run by `.ci/run`).
    #[cfg(not(feature = "tls"))]
    #[test]
    fn https_without_the_tls_feature_is_an_error_at_build() {
        let err = crate::OtlpOutputBuilder::from_env()
            .endpoint("https://127.0.0.1:4318")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidTarget);
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }

    #[test]
    fn both_signals_messages_are_kept() {
        let mut r = Rejection::default();
        r.add(Some(Rejection {
            count: 1,
            message: "spans: a".into(),
        }));
        r.add(None);
        r.add(Some(Rejection {
            count: 2,
            message: "logs: b".into(),
        }));
        assert_eq!((r.count, r.message.as_str()), (3, "spans: a; logs: b"));
    }

    #[test]
    fn only_the_statuses_otlp_names_are_retried() {
        for status in [429, 502, 503, 504] {
            assert!(is_retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 408, 413, 500, 501, 505] {
            assert!(!is_retryable(status), "{status}");
        }
    }

    #[test]
    fn error_answers_are_read_as_rpc_status_or_text() {
        let status = RpcStatus {
            code: 3,
            message: "bad timestamp".into(),
        };
        assert_eq!(
            error_message(&status.encode_to_vec(), false),
            "bad timestamp"
        );
        assert_eq!(
            error_message(br#"{"code":3,"message":"bad json"}"#, true),
            "bad json"
        );
        assert_eq!(
            error_message(b"<html>nope</html>", false),
            "<html>nope</html>"
        );
        assert_eq!(error_message(b"", false), "(no body)");
        let long = "x".repeat(2000);
        assert!(error_message(long.as_bytes(), true).ends_with('…'));
    }

    #[test]
    fn partial_success_is_read_in_both_encodings() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let answer = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            }),
        };
        let r = partial_success(Signal::Logs, &answer.encode_to_vec(), false)
            .unwrap()
            .unwrap();
        assert_eq!(r.count, 2);
        assert!(r.message.contains("too old"), "{}", r.message);
        let json = br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"x"}}"#;
        let r = partial_success(Signal::Traces, json, true)
            .unwrap()
            .unwrap();
        assert_eq!(r.count, 3);
        let json = br#"{"partialSuccess":{"rejectedLogRecords":4}}"#;
        let r = partial_success(Signal::Logs, json, true).unwrap().unwrap();
        assert_eq!(r.count, 4);
        assert!(
            partial_success(
                Signal::Logs,
                br#"{"partialSuccess":{"rejectedLogRecords":"x"}}"#,
                true
            )
            .is_err()
        );
        assert!(partial_success(Signal::Logs, b"[1]", true).is_err());
        assert_eq!(partial_success(Signal::Logs, b"", false), Ok(None));
        assert_eq!(partial_success(Signal::Logs, b"{}", true), Ok(None));
        assert!(partial_success(Signal::Logs, b"not json", true).is_err());
        assert!(partial_success(Signal::Logs, b"\xff\xff\xff", false).is_err());
    }
}
