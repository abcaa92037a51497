//! Shared pieces of the benchmarks in `benches/`: the OpenTelemetry
//! pipeline with a do-nothing exporter, a fast HTTP sink on 127.0.0.1 that
//! counts the records it receives, and a reader of the process's memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};

/// The standard event every bench emits through `tracing`: an INFO event
/// with a message and three fields (an integer, a short string, a float).
#[inline]
pub fn tracing_event() {
    tracing::info!(
        order_id = 42i64,
        user = "u2",
        total = 469.74f64,
        "checkout_started"
    );
}

/// The standard event through the core's own API.
#[inline]
pub fn core_event(log: &aitrace_core::BufferedLogger) {
    log.info("checkout_started")
        .field("order_id", 42i64)
        .field("user", "u2")
        .field("total", 469.74f64)
        .emit();
}

/// How many runs each comparison makes inside one bench invocation, its
/// peers alternated run by run; the ratio quoted is their median.
pub const RUNS: usize = 3;

/// Times `iters` calls of `work` in chunks of `chunk`, calling `between`
/// (not timed) after each chunk: what criterion's `iter_custom` is given,
/// with the aitrace buffer cleared between chunks.
pub fn timed_chunks(
    iters: u64,
    chunk: u64,
    mut work: impl FnMut(),
    mut between: impl FnMut(),
) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        let started = std::time::Instant::now();
        for _ in 0..n {
            work();
        }
        total += started.elapsed();
        between();
        left -= n;
    }
    total
}

/// The median of `values` (the upper middle one for an even count; 0 for
/// none).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// What a ratio must be.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// At most this (a cost: lower is better).
    AtMost(f64),
    /// At least this (a rate: higher is better).
    AtLeast(f64),
}

impl Target {
    fn holds(self, ratio: f64) -> bool {
        match self {
            Target::AtMost(t) => ratio <= t,
            Target::AtLeast(t) => ratio >= t,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::AtMost(t) => write!(f, "<= {t}"),
            Target::AtLeast(t) => write!(f, ">= {t}"),
        }
    }
}

/// Prints `ours ÷ theirs` run by run (the two lists are measured in the
/// same runs, alternated), the median ratio, and in how many runs `target`
/// holds. Returns the median ratio.
pub fn print_ratios(label: &str, ours: &[f64], theirs: &[f64], target: Target) -> f64 {
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    let runs: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    let held = ratios.iter().filter(|&&r| target.holds(r)).count();
    let median = median(&ratios);
    println!(
        "RATIO {label}: runs {}, median {median:.2}; target {target}: {} in {held} of {} runs",
        runs.join(" "),
        if held == ratios.len() { "met" } else { "held" },
        ratios.len()
    );
    median
}

/// Log records handed to any [`NoopExporter`] so far: what OpenTelemetry's
/// batch processor did not drop.
pub static OTEL_EXPORTED: AtomicU64 = AtomicU64::new(0);

/// An exporter that drops every batch (counting its records in
/// [`OTEL_EXPORTED`]): the floor of the OpenTelemetry path.
#[derive(Debug, Default)]
pub struct NoopExporter;

impl LogExporter for NoopExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        OTEL_EXPORTED.fetch_add(batch.iter().count() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A logger provider with the SDK's batch processor (default settings) over
/// the do-nothing exporter.
pub fn otel_batch_provider() -> SdkLoggerProvider {
    SdkLoggerProvider::builder()
        .with_batch_exporter(NoopExporter)
        .build()
}

/// Peak and current resident memory of this process, in bytes (Linux).
pub fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A fast HTTP sink on 127.0.0.1: reads each POST, counts the log records in
/// it (an aitrace JSON array, or OTLP/JSON `resourceLogs`), answers 200.
#[derive(Debug)]
pub struct Sink {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    records: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    /// Starts the sink.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let records = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (records, stop) = (records.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let records = records.clone();
                    std::thread::spawn(move || serve(stream, &records));
                }
            });
        }
        Sink {
            base,
            records,
            stop,
        }
    }

    /// Records received so far.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

fn serve(stream: TcpStream, records: &AtomicU64) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut length = 0;
        let mut gzip = false;
        let mut protobuf = false;
        let mut traces = false;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let lower = line.trim_end().to_ascii_lowercase();
            if lower.is_empty() {
                break;
            }
            if lower.starts_with("post ") && lower.contains("/v1/traces") {
                traces = true; // spans, not log records
            }
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("content-encoding:") && lower.contains("gzip") {
                gzip = true;
            }
            if lower.starts_with("content-type:") && lower.contains("protobuf") {
                protobuf = true;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if gzip {
            let mut plain = Vec::new();
            if flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .is_ok()
            {
                body = plain;
            }
        }
        let count = if traces {
            0
        } else if protobuf {
            count_protobuf_records(&body)
        } else {
            count_records(&body)
        };
        records.fetch_add(count, Ordering::Relaxed);
        let answer = r#"{"ingested": 0}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Log records in an OTLP protobuf logs request (0 for anything else),
/// counted by walking the wire format without decoding it, so the sink
/// costs both protobuf clients equally little: `resource_logs` (1) →
/// `scope_logs` (2) → `log_records` (2).
fn count_protobuf_records(body: &[u8]) -> u64 {
    let mut count = 0;
    for (field, resource_logs) in length_fields(body) {
        if field != 1 {
            continue;
        }
        for (field, scope_logs) in length_fields(resource_logs) {
            if field == 2 {
                count += length_fields(scope_logs).filter(|(f, _)| *f == 2).count() as u64;
            }
        }
    }
    count
}

/// The length-delimited fields of a message, (number, payload); other wire
/// types are skipped; a malformed message ends the walk.
fn length_fields(mut buf: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    std::iter::from_fn(move || {
        loop {
            let key = varint(&mut buf)?;
            let skip = match key & 7 {
                0 => {
                    varint(&mut buf)?;
                    0
                }
                1 => 8,
                5 => 4,
                2 => {
                    let len = usize::try_from(varint(&mut buf)?).ok()?;
                    let payload = buf.get(..len)?;
                    buf = &buf[len..];
                    return Some((key >> 3, payload));
                }
                _ => return None,
            };
            buf = buf.get(skip..)?;
        }
    })
}

/// Counts records without parsing the whole body, so the sink stays cheap:
/// each aitrace record has one `"__tracer_meta__":` key, each OTLP/JSON log
/// record one `"observedTimeUnixNano":` key.
fn count_records(body: &[u8]) -> u64 {
    let Ok(text) = std::str::from_utf8(body) else {
        return 0;
    };
    let aitrace = text.matches("\"__tracer_meta__\":").count();
    if aitrace > 0 {
        return aitrace as u64;
    }
    text.matches("\"observedTimeUnixNano\":").count() as u64
}
