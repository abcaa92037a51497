//! Settings of the OTLP output: code first, then the standard `OTEL_*`
//! environment, then the specification's defaults.

use std::path::PathBuf;
use std::time::Duration;

use aitrace_model::Value;
use aitrace_model::{ConfigError, Result};

/// The base endpoint when none is configured (OTLP/HTTP's default port).
pub const DEFAULT_OTLP_ENDPOINT: &str = "http://localhost:4318";
/// How long each step of one export request may take when
/// `OTEL_EXPORTER_OTLP_TIMEOUT` does not say (the specification's default,
/// 10 s; see [`OtlpOutputBuilder::request_timeout`]).
pub const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);

/// The variable that turns [span events](OtlpOutputBuilder::span_events) on.
pub(crate) const SPAN_EVENTS_VAR: &str = "AITRACE_OTLP_SPAN_EVENTS";

/// How an OTLP output encodes its requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// `http/protobuf`: binary protobuf, `Content-Type: application/x-protobuf`
    /// (the specification's default).
    #[default]
    HttpProtobuf,
    /// `http/json`: the protobuf JSON mapping, `Content-Type: application/json`.
    HttpJson,
}

impl Protocol {
    /// Reads `http/protobuf` or `http/json`; `grpc` and anything else is an
    /// error naming what is supported.
    fn parse(text: &str, from: &str) -> Result<Self, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            "grpc" => Err(ConfigError::invalid_target(format!(
                "{from}=grpc: aitrace speaks OTLP over HTTP only; use http/protobuf \
                     (port 4318) or http/json"
            ))),
            other => Err(ConfigError::invalid_target(format!(
                "{from}={other:?}: expected http/protobuf or http/json"
            ))),
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "application/x-protobuf",
            Protocol::HttpJson => "application/json",
        }
    }

    /// The name the specification gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }
}

/// The two OTLP signals this output sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Logs,
    Traces,
}

impl Signal {
    fn path(self) -> &'static str {
        match self {
            Signal::Logs => "v1/logs",
            Signal::Traces => "v1/traces",
        }
    }

    fn env(self) -> &'static str {
        match self {
            Signal::Logs => "LOGS",
            Signal::Traces => "TRACES",
        }
    }
}

/// Which signals an output sends, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Signals {
    /// Log records go to the logs endpoint (not `OTEL_LOGS_EXPORTER=none`).
    pub(crate) logs: bool,
    /// Span lifecycles go as spans to the traces endpoint.
    pub(crate) spans: bool,
    /// Log records go on their spans as span events too.
    pub(crate) span_events: bool,
}

/// Everything one signal's requests need, resolved.
#[derive(Clone)]
pub(crate) struct SignalConfig {
    pub(crate) url: String,
    pub(crate) protocol: Protocol,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) gzip: bool,
    pub(crate) timeout: Duration,
    pub(crate) ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SignalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalConfig")
            .field("url", &crate::transport::redact_url(&self.url))
            .field("protocol", &self.protocol)
            .field("headers", &crate::transport::RedactedHeaders(&self.headers))
            .field("gzip", &self.gzip)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Settings of an OTLP output; see `aitrace_core::Output::otlp_builder`.
///
/// Each setting is taken from code when set there, else from the standard
/// environment variables (the per-signal `OTEL_EXPORTER_OTLP_LOGS_*` and
/// `…_TRACES_*` before the general `OTEL_EXPORTER_OTLP_*`), else from the
/// specification's default:
///
/// | setting | variables | default |
/// |---|---|---|
/// | [`endpoint`](Self::endpoint) | `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/logs`, `/v1/traces` appended); `…_LOGS_ENDPOINT`, `…_TRACES_ENDPOINT` (used as given) | `http://localhost:4318` |
/// | [`protocol`](Self::protocol) | `OTEL_EXPORTER_OTLP[_LOGS\|_TRACES]_PROTOCOL`: `http/protobuf`, `http/json` | `http/protobuf` |
/// | [`header`](Self::header) | `OTEL_EXPORTER_OTLP[_LOGS\|_TRACES]_HEADERS`: `k=v,k2=v2`, values percent-decoded | none |
/// | [`gzip`](Self::gzip) | `OTEL_EXPORTER_OTLP[_LOGS\|_TRACES]_COMPRESSION`: `gzip` or `none` | none |
/// | [`request_timeout`](Self::request_timeout) | `OTEL_EXPORTER_OTLP[_LOGS\|_TRACES]_TIMEOUT`: milliseconds | 10 s |
/// | [`connect_timeout`](Self::connect_timeout) | none | [`DEFAULT_CONNECT_TIMEOUT`](aitrace_model::transport::DEFAULT_CONNECT_TIMEOUT), at most the request timeout |
/// | [`ca_file`](Self::ca_file) | `OTEL_EXPORTER_OTLP[_LOGS\|_TRACES]_CERTIFICATE`: a PEM file of trusted CAs | the system's trust store |
/// | [`service_name`](Self::service_name) | `OTEL_SERVICE_NAME`, then `service.name` in `OTEL_RESOURCE_ATTRIBUTES` | `unknown_service:<executable>` |
/// | [`resource_attribute`](Self::resource_attribute) | `OTEL_RESOURCE_ATTRIBUTES`: `k=v,k2=v2`, values percent-decoded | `telemetry.sdk.*` |
/// | [`span_events`](Self::span_events) | `AITRACE_OTLP_SPAN_EVENTS`: `1` or `0` | off |
/// | which signals are sent | `OTEL_LOGS_EXPORTER`, `OTEL_TRACES_EXPORTER`: `none` turns one off (not both) | both |
///
/// A variable that cannot be read (a protocol of `grpc`, a timeout that is
/// not a number, an endpoint without a host) makes [`build`](Self::build)
/// fail with an error naming it; a malformed entry in a `k=v` list is
/// skipped with one line on stderr, and a header whose name or value
/// cannot be sent is an error. Neither the messages nor `Debug` show a
/// header's value or an endpoint's user-info.
#[must_use = "call `build` to get the output"]
pub struct OtlpOutputBuilder {
    pub(crate) endpoint: Option<String>,
    pub(crate) logs_endpoint: Option<String>,
    pub(crate) traces_endpoint: Option<String>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) gzip: Option<bool>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) service_name: Option<String>,
    pub(crate) resource: Vec<(String, Value)>,
    pub(crate) spans: bool,
    pub(crate) logs: Option<bool>,
    pub(crate) span_events: Option<bool>,
    pub(crate) env: Env,
}

/// A snapshot of the `OTEL_*` variables, taken when the builder is made.
#[derive(Clone, Debug, Default)]
pub(crate) struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    pub(crate) fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .filter(|(k, _)| k.starts_with("OTEL_") || k.starts_with(SPAN_EVENTS_VAR))
                .collect(),
        }
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// A variable's value; set-but-empty counts as unset, as the
    /// specification asks.
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Whether `OTEL_LOGS_EXPORTER` or `OTEL_TRACES_EXPORTER` leaves its
    /// signal on: unset or `otlp` is on, `none` off; another exporter
    /// (`console`) is not one this output has, so it is taken as `otlp`
    /// with one line on stderr.
    fn exporter_on(&self, name: &str) -> bool {
        let Some(list) = self.get(name) else {
            return true;
        };
        let names: Vec<String> = list
            .split(',')
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.iter().all(|n| n == "none") {
            return false;
        }
        if names.iter().any(|n| n != "otlp" && n != "none") {
            crate::diagnostics::say_once(name, || {
                format!("{name}={list:?}: the OTLP output sends OTLP only (or nothing with none)")
            });
        }
        true
    }

    /// A setting: from code when given, else read from the per-signal or
    /// general variable (a value `parse` cannot read is an error naming
    /// the variable and what was `expected`), else `None`.
    fn setting<T>(
        &self,
        signal: Signal,
        code: Option<T>,
        suffix: &str,
        parse: fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        match (code, self.signal(signal, suffix)) {
            (Some(value), _) => Ok(Some(value)),
            (None, Some((name, v))) => parse(v).map(Some).ok_or_else(|| {
                ConfigError::invalid_target(format!("{name}={v:?}: expected {expected}"))
            }),
            (None, None) => Ok(None),
        }
    }

    /// The per-signal variable, else the general one, with the name read.
    fn signal(&self, signal: Signal, suffix: &str) -> Option<(String, &str)> {
        let specific = format!("OTEL_EXPORTER_OTLP_{}_{suffix}", signal.env());
        if let Some(v) = self.get(&specific) {
            return Some((specific, v));
        }
        let general = format!("OTEL_EXPORTER_OTLP_{suffix}");
        self.get(&general).map(|v| (general, v))
    }
}

impl std::fmt::Debug for OtlpOutputBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are secrets (API keys), and so is user-info.
        let url = |url: &Option<String>| url.as_deref().map(crate::transport::redact_url);
        f.debug_struct("OtlpOutputBuilder")
            .field("endpoint", &url(&self.endpoint))
            .field("logs_endpoint", &url(&self.logs_endpoint))
            .field("traces_endpoint", &url(&self.traces_endpoint))
            .field("protocol", &self.protocol)
            .field("headers", &crate::transport::RedactedHeaders(&self.headers))
            .field("gzip", &self.gzip)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("service_name", &self.service_name)
            .field("spans", &self.spans)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

impl OtlpOutputBuilder {
    /// Settings starting from the standard `OTEL_*` variables, read now;
    /// what is set in code wins.
    pub fn from_env() -> Self {
        OtlpOutputBuilder::new(Env::from_process())
    }

    pub(crate) fn new(env: Env) -> Self {
        OtlpOutputBuilder {
            endpoint: None,
            logs_endpoint: None,
            traces_endpoint: None,
            protocol: None,
            headers: Vec::new(),
            gzip: None,
            timeout: None,
            connect_timeout: None,
            ca_file: None,
            service_name: None,
            resource: Vec::new(),
            spans: true,
            logs: None,
            span_events: None,
            env,
        }
    }

    /// The base endpoint, such as `http://collector:4318`: logs go to
    /// `BASE/v1/logs` and spans to `BASE/v1/traces`. Wins over every
    /// `…_ENDPOINT` variable.
    pub fn endpoint(mut self, base: impl Into<String>) -> Self {
        self.endpoint = Some(base.into());
        self
    }

    /// The full URL logs are posted to, used as given.
    pub fn logs_endpoint(mut self, url: impl Into<String>) -> Self {
        self.logs_endpoint = Some(url.into());
        self
    }

    /// The full URL spans are posted to, used as given.
    pub fn traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.traces_endpoint = Some(url.into());
        self
    }

    /// The encoding of requests.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Adds a header to every request (an API key, say), after those of
    /// `OTEL_EXPORTER_OTLP_HEADERS`; a header set in both is sent with the
    /// value given here. Values never appear in `Debug` output or errors.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Compresses request bodies with gzip.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = Some(gzip);
        self
    }

    /// How long each step of one export request may take once connected
    /// (sending its head and body, waiting for the answer, reading it), as
    /// for `aitrace_core::HttpOutputBuilder::request_timeout`;
    /// else `OTEL_EXPORTER_OTLP[_LOGS|_TRACES]_TIMEOUT`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The 0.1 name of [`request_timeout`](Self::request_timeout).
    #[deprecated(
        since = "0.2.0",
        note = "renamed `request_timeout`, as the HTTP output's"
    )]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.request_timeout(timeout)
    }

    /// How long connecting may take, as for
    /// `aitrace_core::HttpOutputBuilder::connect_timeout`;
    /// by default [`DEFAULT_CONNECT_TIMEOUT`](aitrace_model::transport::DEFAULT_CONNECT_TIMEOUT),
    /// or the request timeout when that is shorter.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// A PEM file of the certificate authorities to trust for `https`
    /// endpoints, instead of the system's trust store (a self-hosted
    /// collector with its own CA).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The resource's `service.name`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute (`deployment.environment.name`, say); wins
    /// over the same key in `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Whether span lifecycle records (`NAME.start`/`NAME.end`) are sent as
    /// OTLP spans to the traces endpoint (the default) rather than as log
    /// records to the logs endpoint; `OTEL_TRACES_EXPORTER=none` turns
    /// them off too.
    pub fn spans(mut self, spans: bool) -> Self {
        self.spans = spans;
        self
    }

    /// Whether events go to the logs endpoint as log records (the
    /// default): `false` sends spans only, for a backend with no logs
    /// endpoint (Jaeger, Arize Phoenix), as `OTEL_LOGS_EXPORTER=none` does;
    /// set here, it wins over that variable. With [`span_events`](Self::span_events)
    /// on, events still reach the backend, on their spans.
    pub fn logs(mut self, logs: bool) -> Self {
        self.logs = Some(logs);
        self
    }

    /// Also attaches each log record to its span as a span event (its
    /// name, time and fields, as tracing-opentelemetry does), for backends
    /// that draw a span's events from the span itself and have no logs
    /// endpoint: Jaeger, Zipkin, Arize Phoenix. Off by default; the
    /// environment turns it on with `AITRACE_OTLP_SPAN_EVENTS=1`.
    ///
    /// A record whose span has not ended yet is remembered until its
    /// `.end` comes (in a later batch), as the span's start is, within the
    /// same bounds; at most 128 events go on one span, the rest are counted
    /// in its `dropped_events_count`. A record whose span was exported in
    /// an earlier batch, or that has no span, is only a log record.
    ///
    /// The records still go to the logs endpoint too, unless
    /// `OTEL_LOGS_EXPORTER=none` turns that signal off: then nothing waits
    /// in memory, a record whose span ends in the same batch is delivered
    /// as its event, and the others (no span, a span that ends later or
    /// never, past 128 events) are counted as dropped, with the reason.
    pub fn span_events(mut self, on: bool) -> Self {
        self.span_events = Some(on);
        self
    }

    /// Which signals are sent and whether span events are on: code, then
    /// `OTEL_LOGS_EXPORTER` / `OTEL_TRACES_EXPORTER` (`none` turns a
    /// signal off) and [`SPAN_EVENTS_VAR`].
    pub(crate) fn signals(&self) -> Result<Signals, ConfigError> {
        let logs = self
            .logs
            .unwrap_or_else(|| self.env.exporter_on("OTEL_LOGS_EXPORTER"));
        let traces = self.env.exporter_on("OTEL_TRACES_EXPORTER");
        if !(logs || traces && self.spans) {
            return Err(ConfigError::invalid_target(
                "no signal left: logs are off (OTEL_LOGS_EXPORTER=none or .logs(false)) \
                 and spans are off (OTEL_TRACES_EXPORTER=none or .spans(false)): the OTLP \
                 output would send nothing; turn one on, or choose another target"
                    .to_owned(),
            ));
        }
        let span_events = match (self.span_events, self.env.get(SPAN_EVENTS_VAR)) {
            (Some(on), _) => on,
            (None, None) => false,
            (None, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::invalid_target(format!(
                        "{SPAN_EVENTS_VAR}={v:?}: expected 1 or 0 (true or false)"
                    )));
                }
            },
        };
        let spans = self.spans && traces;
        Ok(Signals {
            logs,
            spans,
            span_events: span_events && spans,
        })
    }

    /// The settings of one signal, resolved.
    pub(crate) fn signal(&self, signal: Signal) -> Result<SignalConfig, ConfigError> {
        let env = &self.env;
        let specific = match signal {
            Signal::Logs => &self.logs_endpoint,
            Signal::Traces => &self.traces_endpoint,
        };
        // A base endpoint is checked before `/v1/…` is appended, so that
        // `http://` does not become a request to the host `v1`.
        let base = |base: &str, from: &str| -> Result<String, ConfigError> {
            check_endpoint(base, from)?;
            Ok(signal_url(base, signal))
        };
        let url = match (specific, &self.endpoint) {
            (Some(url), _) => url.clone(),
            (None, Some(endpoint)) => base(endpoint, "endpoint")?,
            (None, None) => {
                let name = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.env());
                match env.get(&name) {
                    Some(url) => url.to_owned(),
                    None => match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
                        Some(endpoint) => base(endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT")?,
                        None => signal_url(DEFAULT_OTLP_ENDPOINT, signal),
                    },
                }
            }
        };
        check_endpoint(&url, "endpoint")?;
        let protocol = match self.protocol {
            Some(p) => p,
            None => match env.signal(signal, "PROTOCOL") {
                Some((name, v)) => Protocol::parse(v, &name)?,
                None => Protocol::default(),
            },
        };
        let gzip = env
            .setting(
                signal,
                self.gzip,
                "COMPRESSION",
                |v| match v.to_ascii_lowercase().as_str() {
                    "gzip" => Some(true),
                    "none" => Some(false),
                    _ => None,
                },
                "gzip or none",
            )?
            .unwrap_or(false);
        let timeout = env
            .setting(
                signal,
                self.timeout,
                "TIMEOUT",
                |v| {
                    v.parse::<u64>().ok().map(|ms| match ms {
                        0 => DEFAULT_OTLP_TIMEOUT,
                        ms => Duration::from_millis(ms),
                    })
                },
                "a whole number of milliseconds",
            )?
            .unwrap_or(DEFAULT_OTLP_TIMEOUT);
        let ca_file = self.ca_file.clone().or_else(|| {
            env.signal(signal, "CERTIFICATE")
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut headers = Vec::new();
        if let Some((name, list)) = env.signal(signal, "HEADERS") {
            headers = parse_key_values(list, &name);
            check_headers(&headers, &name)?;
        }
        for (k, v) in &self.headers {
            headers.retain(|(name, _): &(String, String)| !name.eq_ignore_ascii_case(k));
            headers.push((k.clone(), v.clone()));
        }
        Ok(SignalConfig {
            url,
            protocol,
            headers,
            gzip,
            timeout,
            ca_file,
        })
    }

    /// The resource attributes: `telemetry.sdk.*`, then
    /// `OTEL_RESOURCE_ATTRIBUTES`, then code; `service.name` last.
    pub(crate) fn resource(&self) -> Vec<(String, Value)> {
        let mut attrs: Vec<(String, Value)> = vec![
            ("telemetry.sdk.name".into(), Value::from("aitrace-rs")),
            ("telemetry.sdk.language".into(), Value::from("rust")),
            (
                "telemetry.sdk.version".into(),
                Value::from(env!("CARGO_PKG_VERSION")),
            ),
        ];
        fn set(attrs: &mut Vec<(String, Value)>, key: String, value: Value) {
            attrs.retain(|(k, _)| *k != key);
            attrs.push((key, value));
        }
        if let Some(list) = self.env.get("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in parse_resource_attributes(list) {
                set(&mut attrs, k, Value::from(v));
            }
        }
        for (k, v) in &self.resource {
            set(&mut attrs, k.clone(), v.clone());
        }
        let service = self
            .service_name
            .clone()
            .or_else(|| self.env.get("OTEL_SERVICE_NAME").map(str::to_owned));
        match service {
            Some(name) => set(&mut attrs, "service.name".into(), Value::from(name)),
            None if !attrs.iter().any(|(k, _)| k == "service.name") => {
                set(
                    &mut attrs,
                    "service.name".into(),
                    Value::from(unknown_service()),
                );
            }
            None => {}
        }
        attrs
    }
}

/// `unknown_service:<executable name>`, as the resource semantic
/// conventions ask when no name is given.
fn unknown_service() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    match exe {
        Some(exe) => format!("unknown_service:{exe}"),
        None => "unknown_service".to_owned(),
    }
}

/// An OTLP endpoint is an `http(s)://` URL with a host (and a port up to
/// 65535); the error names where it came from, never its user-info.
fn check_endpoint(url: &str, from: &str) -> Result<(), ConfigError> {
    let redacted = crate::transport::redact_url(url);
    let what = format!("OTLP {from}");
    let (url, _) = crate::transport::split_userinfo(url.trim());
    crate::transport::check_url(&url, &redacted, &what)
}

/// Headers read from `from` must be sendable; the error says which entry
/// and whether its name or value is wrong, and never shows the value, nor
/// the name, which holds the secret when a `:` was written for the `=`.
fn check_headers(headers: &[(String, String)], from: &str) -> Result<(), ConfigError> {
    for (i, (name, value)) in headers.iter().enumerate() {
        let what = if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            "name"
        } else if ureq::http::HeaderValue::from_str(value).is_err() {
            "value"
        } else {
            continue;
        };
        return Err(ConfigError::invalid_target(format!(
            "{from}: the header of entry {} has an invalid {what} (not shown: it may be a secret)",
            i + 1
        )));
    }
    Ok(())
}

/// `BASE` + `/v1/logs`, with exactly one slash between.
fn signal_url(base: &str, signal: Signal) -> String {
    let base = base.trim();
    let base = base.strip_suffix('/').unwrap_or(base);
    format!("{base}/{}", signal.path())
}

/// A `k=v,k2=v2` list (W3C Baggage-like, as `OTEL_EXPORTER_OTLP_HEADERS` and
/// `OTEL_RESOURCE_ATTRIBUTES` are written): keys and values trimmed, values
/// percent-decoded; an entry without `=` or with an empty key is skipped
/// with one line on stderr.
pub(crate) fn parse_key_values(list: &str, from: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in list.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        match entry.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let value = String::from_utf8_lossy(&crate::transport::percent_decode(v.trim()))
                    .into_owned();
                out.push((k.trim().to_owned(), value));
            }
            _ => {
                crate::diagnostics::say_once("otlp-kv", || {
                    format!("{from}: skipped an entry that is not key=value")
                });
            }
        }
    }
    out
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `k=v` pairs, keys and values
/// percent-decoded; as the resource SDK specification asks, a variable with
/// an entry that cannot be read is discarded whole (with one line on stderr).
fn parse_resource_attributes(list: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        String::from_utf8(crate::transport::percent_decode(text.trim())).map_err(|_| ())
    };
    let mut out = Vec::new();
    for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
        let pair = entry
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or(())
            .and_then(|(k, v)| Ok((decode(k)?, decode(v)?)));
        match pair {
            Ok(pair) => out.push(pair),
            Err(()) => {
                crate::diagnostics::say_once("otlp-resource", || {
                    "OTEL_RESOURCE_ATTRIBUTES is ignored: an entry is not key=value \
                     in percent-encoded UTF-8"
                        .to_owned()
                });
                return Vec::new();
            }
        }
    }
    out
}

/// What an OTLP target string names ([`parse_target`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpTarget<'a> {
    /// `otlp`: everything from the `OTEL_*` variables.
    FromEnv,
    /// `otlp+http://host:4318` or `otlp+https://…`: that base endpoint.
    Endpoint(&'a str),
}

/// The OTLP target strings, any case: `otlp` or `otlp+http(s)://…`; `None`
/// for another target.
pub fn parse_target(target: &str) -> Option<OtlpTarget<'_>> {
    let lower = target.get(..13).unwrap_or(target).to_ascii_lowercase();
    if lower == "otlp" {
        return Some(OtlpTarget::FromEnv);
    }
    if lower.starts_with("otlp+http://") || lower.starts_with("otlp+https://") {
        return Some(OtlpTarget::Endpoint(&target[5..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use aitrace_model::ErrorKind;

    fn builder(pairs: &[(&str, &str)]) -> OtlpOutputBuilder {
        OtlpOutputBuilder::new(Env::from_pairs(pairs))
    }

    #[test]
    fn defaults_follow_the_specification() {
        let b = builder(&[]);
        let logs = b.signal(Signal::Logs).unwrap();
        assert_eq!(logs.url, "http://localhost:4318/v1/logs");
        assert_eq!(logs.protocol, Protocol::HttpProtobuf);
        assert_eq!(logs.timeout, Duration::from_secs(10));
        assert!(!logs.gzip);
        assert!(logs.headers.is_empty());
        assert_eq!(
            b.signal(Signal::Traces).unwrap().url,
            "http://localhost:4318/v1/traces"
        );
        let resource = b.resource();
        let name = resource.iter().find(|(k, _)| k == "service.name").unwrap();
        assert!(name.1.as_str().unwrap().starts_with("unknown_service"));
    }

    #[test]
    fn the_environment_is_read_per_signal_then_in_general() {
        let b = builder(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base/"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/x"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=s%3Dcret, x-team = a b ,bad",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
            ("OTEL_SERVICE_NAME", "shop"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored,deployment.environment.name=prod%20eu",
            ),
        ]);
        let logs = b.signal(Signal::Logs).unwrap();
        let traces = b.signal(Signal::Traces).unwrap();
        assert_eq!(logs.url, "http://collector:4318/base/v1/logs");
        assert_eq!(traces.url, "http://tempo:4318/x");
        assert_eq!(logs.protocol, Protocol::HttpProtobuf);
        assert_eq!(traces.protocol, Protocol::HttpJson);
        assert_eq!(
            logs.headers,
            vec![
                ("api-key".to_owned(), "s=cret".to_owned()),
                ("x-team".to_owned(), "a b".to_owned())
            ]
        );
        assert!(logs.gzip && traces.gzip);
        assert_eq!(logs.timeout, Duration::from_millis(2500));
        assert_eq!(logs.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        let resource = b.resource();
        let get = |key: &str| {
            resource
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("service.name"), Some(Value::from("shop")));
        assert_eq!(
            get("deployment.environment.name"),
            Some(Value::from("prod eu"))
        );
        assert_eq!(get("telemetry.sdk.name"), Some(Value::from("aitrace-rs")));
    }

    #[test]
    fn code_wins_over_the_environment() {
        let b = builder(&[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://env:1/v1/logs"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "API-Key=env,keep=1"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "oops"),
            ("OTEL_SERVICE_NAME", "env"),
        ])
        .endpoint("http://code:4318")
        .protocol(Protocol::HttpProtobuf)
        .header("api-key", "code")
        .request_timeout(Duration::from_secs(1))
        .service_name("code")
        .resource_attribute("service.version", "1.2");
        let logs = b.signal(Signal::Logs).unwrap();
        assert_eq!(logs.url, "http://code:4318/v1/logs");
        assert_eq!(logs.protocol, Protocol::HttpProtobuf);
        assert_eq!(logs.timeout, Duration::from_secs(1));
        assert_eq!(
            logs.headers,
            vec![
                ("keep".to_owned(), "1".to_owned()),
                ("api-key".to_owned(), "code".to_owned())
            ]
        );
        let resource = b.resource();
        assert!(resource.contains(&("service.name".into(), Value::from("code"))));
        assert!(resource.contains(&("service.version".into(), Value::from("1.2"))));
    }

    #[test]
    fn unreadable_variables_are_errors_that_name_them() {
        let err = builder(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
            .signal(Signal::Logs)
            .unwrap_err();
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
            "{err}"
        );
        let err = builder(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10s")])
            .signal(Signal::Traces)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"),
            "{err}"
        );
        let err = builder(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")])
            .signal(Signal::Logs)
            .unwrap_err();
        assert!(err.to_string().contains("zstd"), "{err}");
        // Empty means unset.
        let ok = builder(&[("OTEL_EXPORTER_OTLP_PROTOCOL", " ")]).signal(Signal::Logs);
        assert_eq!(ok.unwrap().protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn resource_attributes_are_decoded_or_discarded_whole() {
        assert_eq!(
            parse_resource_attributes("a%3Db=c%2Cd, e = f "),
            vec![
                ("a=b".to_owned(), "c,d".to_owned()),
                ("e".to_owned(), "f".to_owned())
            ]
        );
        assert!(parse_resource_attributes("ok=1,broken").is_empty());
        assert!(parse_resource_attributes("ok=1,x=%FF").is_empty());
        assert!(parse_resource_attributes("=v").is_empty());
    }

    #[test]
    fn exporters_and_span_events_are_read_from_the_environment() {
        let signals = |pairs: &[(&str, &str)]| builder(pairs).signals();
        let on = Signals {
            logs: true,
            spans: true,
            span_events: false,
        };
        assert_eq!(signals(&[]).unwrap(), on);
        assert_eq!(
            signals(&[
                ("OTEL_LOGS_EXPORTER", "otlp"),
                ("OTEL_TRACES_EXPORTER", " ")
            ])
            .unwrap(),
            on
        );
        assert_eq!(
            signals(&[("OTEL_LOGS_EXPORTER", "None"), (SPAN_EVENTS_VAR, "true")]).unwrap(),
            Signals {
                logs: false,
                spans: true,
                span_events: true
            }
        );
        // No spans, no span events.
        assert_eq!(
            signals(&[("OTEL_TRACES_EXPORTER", "none"), (SPAN_EVENTS_VAR, "1")]).unwrap(),
            Signals {
                logs: true,
                spans: false,
                span_events: false
            }
        );
        // Another exporter is taken as otlp.
        assert_eq!(signals(&[("OTEL_LOGS_EXPORTER", "console")]).unwrap(), on);
        let err = signals(&[(SPAN_EVENTS_VAR, "maybe")]).unwrap_err();
        assert!(err.to_string().contains(SPAN_EVENTS_VAR), "{err}");
        // Code wins.
        let b = builder(&[(SPAN_EVENTS_VAR, "1")]).span_events(false);
        assert!(!b.signals().unwrap().span_events);
        let err = signals(&[
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidTarget);
    }

    /// Found in a user trial: a backend without a logs endpoint (Phoenix)
    /// needed `OTEL_LOGS_EXPORTER=none`; code could not say it.
    #[test]
    fn logs_set_in_code_win_over_the_variable() {
        let signals = builder(&[]).logs(false).signals().unwrap();
        assert!(!signals.logs && signals.spans);
        let signals = builder(&[("OTEL_LOGS_EXPORTER", "none")])
            .logs(true)
            .signals()
            .unwrap();
        assert!(signals.logs);
        let signals = builder(&[("OTEL_LOGS_EXPORTER", "none")])
            .signals()
            .unwrap();
        assert!(!signals.logs);
        let nothing = builder(&[]).logs(false).spans(false).signals();
        assert!(nothing.is_err(), "sends nothing: refused");
    }

    #[test]
    fn target_strings() {
        assert_eq!(parse_target("otlp"), Some(OtlpTarget::FromEnv));
        assert_eq!(parse_target("OTLP"), Some(OtlpTarget::FromEnv));
        assert_eq!(
            parse_target("otlp+http://c:4318"),
            Some(OtlpTarget::Endpoint("http://c:4318"))
        );
        assert_eq!(
            parse_target("otlp+https://c/otlp"),
            Some(OtlpTarget::Endpoint("https://c/otlp"))
        );
        assert_eq!(parse_target("otlp.jsonl"), None);
        assert_eq!(parse_target("otlp+ftp://x"), None);
    }
}
