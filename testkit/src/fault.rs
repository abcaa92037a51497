//! A fault-injecting HTTP ingest server on 127.0.0.1, written on `std::net`
//! so it can misbehave in ways a real server library will not: refuse
//! connections, hang, reset mid-response.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::Value as Json;

use crate::has_ids;

/// How the server answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 200 with `{"ingested": N}`, records stored.
    Ok,
    /// This status, records not stored.
    Status(u16),
    /// This status with a `Retry-After` header value.
    RetryAfter(u16, String),
    /// Waits, then answers as `Ok`.
    Slow(Duration),
    /// Reads the request and never answers (until the server stops).
    Hang,
    /// Stores the records, then closes the connection halfway through the answer.
    Reset,
    /// 413 when the batch holds more than this many records, else `Ok`.
    MaxRecords(usize),
    /// This status when the batch holds a record with this event (a bad
    /// record), else `Ok`.
    RefuseEvent(u16, String),
}

#[derive(Default)]
struct State {
    script: VecDeque<Fault>,
    default: Option<Fault>,
    records: Vec<Json>,
    batch_sizes: Vec<usize>,
    gzip_requests: usize,
    request_times: Vec<Instant>,
}

/// The server; stops when dropped.
#[derive(Debug)]
pub struct FaultServer {
    /// The ingest URL.
    pub url: String,
    addr: SocketAddr,
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    down: AtomicBool,
    stop: AtomicBool,
    requests: AtomicUsize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").finish_non_exhaustive()
    }
}

impl FaultServer {
    /// Starts a server answering `Ok` unless told otherwise.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
        });
        let thread = {
            let inner = inner.clone();
            std::thread::spawn(move || accept_loop(listener, addr, &inner))
        };
        FaultServer {
            url: format!("http://{addr}/api/ingest"),
            addr,
            inner,
            thread: Some(thread),
        }
    }

    /// Answers the next requests as listed, then as the default.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.state.lock().script.extend(faults);
    }

    /// How requests are answered once the script is used up.
    pub fn set_default(&self, fault: Fault) {
        self.inner.state.lock().default = Some(fault);
    }

    /// Stops listening (connections are refused) or starts again on the same port.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
        // Wait until the accept loop has acted on it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let refused =
                TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err();
            if refused == down {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "the fault server did not go {}",
            if down { "down" } else { "up" }
        );
    }

    /// Every stored record, in arrival order (duplicates included).
    pub fn records(&self) -> Vec<Json> {
        self.inner.state.lock().records.clone()
    }

    /// The size of each stored batch.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.inner.state.lock().batch_sizes.clone()
    }

    /// Requests that arrived with `Content-Encoding: gzip`.
    pub fn gzip_requests(&self) -> usize {
        self.inner.state.lock().gzip_requests
    }

    /// When each request arrived (its body read), in order.
    pub fn request_times(&self) -> Vec<Instant> {
        self.inner.state.lock().request_times.clone()
    }

    /// Requests received, answered or not.
    pub fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// Waits until `pred` holds for the stored records, or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Json]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.inner.state.lock();
        while !pred(&state.records) {
            if self
                .inner
                .changed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return pred(&state.records);
            }
        }
        true
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts records by `record_id`: (unique ids, duplicate deliveries).
pub fn count_unique(records: &[Json]) -> (usize, usize) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in records {
        let meta = r.get("__tracer_meta__").unwrap_or(r);
        let id = meta["record_id"]
            .as_str()
            .map_or_else(|| r.to_string(), str::to_owned);
        *seen.entry(id).or_default() += 1;
    }
    let dups = seen.values().map(|n| n - 1).sum();
    (seen.len(), dups)
}

fn accept_loop(listener: TcpListener, addr: SocketAddr, inner: &Arc<Inner>) {
    let mut listener = Some(listener);
    let mut handlers = Vec::new();
    while !inner.stop.load(Ordering::SeqCst) {
        let down = inner.down.load(Ordering::SeqCst);
        if down && listener.is_some() {
            listener = None;
        } else if !down && listener.is_none() {
            listener = TcpListener::bind(addr).ok();
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        l.set_nonblocking(true).ok();
        match l.accept() {
            Ok((stream, _)) => {
                let inner = inner.clone();
                handlers.push(std::thread::spawn(move || handle(stream, &inner)));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    for h in handlers {
        let _ = h.join();
    }
}

fn handle(stream: TcpStream, inner: &Inner) {
    stream.set_nonblocking(false).ok();
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    let mut content_length = 0;
    let mut gzip = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("content-encoding:") && lower.contains("gzip") {
            gzip = true;
        }
    }
    let mut body = vec![0; content_length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    inner.requests.fetch_add(1, Ordering::SeqCst);
    inner.state.lock().request_times.push(Instant::now());
    if gzip {
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .is_err()
        {
            let _ = respond(&mut writer, 400, "bad gzip", None);
            return;
        }
        body = plain;
    }
    let records: Vec<Json> = match serde_json::from_slice::<Json>(&body) {
        Ok(Json::Array(records)) => records,
        _ => {
            let _ = respond(
                &mut writer,
                422,
                r#"{"detail":"expected a JSON array"}"#,
                None,
            );
            return;
        }
    };
    let fault = {
        let mut state = inner.state.lock();
        if gzip {
            state.gzip_requests += 1;
        }
        let default = state.default.clone().unwrap_or(Fault::Ok);
        state.script.pop_front().unwrap_or(default)
    };
    let store = |inner: &Inner, records: Vec<Json>| -> usize {
        let stored = records.iter().filter(|r| has_ids(r)).count();
        let mut state = inner.state.lock();
        state.batch_sizes.push(records.len());
        state.records.extend(records);
        inner.changed.notify_all();
        stored
    };
    match fault {
        Fault::Ok => {
            let n = store(inner, records);
            let _ = respond(&mut writer, 200, &format!(r#"{{"ingested": {n}}}"#), None);
        }
        Fault::Status(status) => {
            let _ = respond(&mut writer, status, r#"{"detail":"injected fault"}"#, None);
        }
        Fault::RetryAfter(status, value) => {
            let _ = respond(
                &mut writer,
                status,
                r#"{"detail":"slow down"}"#,
                Some(&value),
            );
        }
        Fault::Slow(delay) => {
            std::thread::sleep(delay);
            let n = store(inner, records);
            let _ = respond(&mut writer, 200, &format!(r#"{{"ingested": {n}}}"#), None);
        }
        Fault::Hang => {
            while !inner.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Fault::Reset => {
            store(inner, records);
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"ing");
            let _ = writer.flush();
        }
        Fault::MaxRecords(max) if records.len() > max => {
            let _ = respond(&mut writer, 413, r#"{"detail":"payload too large"}"#, None);
        }
        Fault::RefuseEvent(status, event)
            if records
                .iter()
                .any(|r| r["__tracer_meta__"]["event"] == event.as_str()) =>
        {
            let _ = respond(
                &mut writer,
                status,
                r#"{"detail":"a record is not valid"}"#,
                None,
            );
        }
        Fault::MaxRecords(_) | Fault::RefuseEvent(..) => {
            let n = store(inner, records);
            let _ = respond(&mut writer, 200, &format!(r#"{{"ingested": {n}}}"#), None);
        }
    }
}

fn respond(
    writer: &mut TcpStream,
    status: u16,
    body: &str,
    retry_after: Option<&str>,
) -> std::io::Result<()> {
    let extra = retry_after.map_or(String::new(), |v| format!("Retry-After: {v}\r\n"));
    write!(
        writer,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    )?;
    writer.flush()
}
