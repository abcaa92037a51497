//! What the server and client tests share: a logger behind an
//! `AitraceLayer`, a tokio runtime whose every thread reports to it, and
//! axum apps served on 127.0.0.1.

#![allow(dead_code, unreachable_pub)] // each test file uses a part

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use aitrace_core::{BufferedLogger, Level, Record, Value};
use aitrace_tracing::AitraceLayer;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

/// How long any one test step may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A logger, the dispatcher that writes into it, and a multi-threaded
/// runtime (two workers, as on CI) whose threads all use that dispatcher:
/// a task that moves between threads keeps reporting to the same logger.
pub struct Setup {
    pub log: BufferedLogger,
    pub dispatch: Dispatch,
    pub runtime: tokio::runtime::Runtime,
}

impl Setup {
    /// Every record at `info` or above (hyper and reqwest log at `debug`),
    /// kept in memory.
    pub fn new() -> Self {
        Setup::with_logger(aitrace_testkit::memory_logger(Level::Info).0)
    }

    pub fn with_logger(log: BufferedLogger) -> Self {
        let dispatch =
            Dispatch::new(tracing_subscriber::registry().with(AitraceLayer::new(log.clone())));
        let for_threads = dispatch.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || {
                // For the thread's whole life: it serves only this test.
                std::mem::forget(tracing::dispatcher::set_default(&for_threads));
            })
            .build()
            .expect("a tokio runtime");
        Setup {
            log,
            dispatch,
            runtime,
        }
    }

    /// Runs `future` to completion (or fails the test after [`TIMEOUT`]),
    /// on this thread with the dispatcher too.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        tracing::dispatcher::with_default(&self.dispatch, || {
            self.runtime.block_on(async {
                tokio::time::timeout(TIMEOUT, future)
                    .await
                    .expect("the test's requests finish in time")
            })
        })
    }

    /// Serves `app` on 127.0.0.1 on a port of its own, in the runtime.
    pub fn serve(&self, app: axum::Router) -> SocketAddr {
        self.run(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1");
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            addr
        })
    }

    /// The records captured so far, once every span named `ends` has
    /// written its `.end`: a span can end after the response arrives (the
    /// server drops the body after the last frame goes out).
    pub fn records_once_ended(&self, ends: usize) -> Vec<Record> {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let records = self.log.records();
            let ended = records
                .iter()
                .filter(|r| r.event().ends_with(".end"))
                .count();
            if ended >= ends {
                return records;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{ended} of {ends} spans ended: {:#?}",
                events(&records)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

pub fn events(records: &[Record]) -> Vec<&str> {
    records.iter().map(Record::event).collect()
}

/// Every record named `event`, in capture order.
pub fn named<'a>(records: &'a [Record], event: &str) -> Vec<&'a Record> {
    records.iter().filter(|r| r.event() == event).collect()
}

/// The one record named `event`.
pub fn one<'a>(records: &'a [Record], event: &str) -> &'a Record {
    let found = named(records, event);
    assert_eq!(found.len(), 1, "one {event} in {:#?}", events(records));
    found[0]
}

pub fn text(record: &Record, field: &str) -> Option<String> {
    record
        .field(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub fn int(record: &Record, field: &str) -> Option<i64> {
    match record.field(field)? {
        Value::I64(n) => Some(*n),
        Value::U64(n) => i64::try_from(*n).ok(),
        _ => None,
    }
}

/// How each span's `.end` named `event` came out, in capture order: its
/// level, its status code (the field `status`) and its `error.type`.
pub fn outcomes(
    records: &[Record],
    event: &str,
    status: &str,
) -> Vec<(Level, Option<i64>, Option<String>)> {
    named(records, event)
        .into_iter()
        .map(|r| (r.level(), int(r, status), text(r, "error.type")))
        .collect()
}

/// A reqwest client with the middleware.
pub fn client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(aitrace_http::ReqwestMiddleware::new())
        .build()
}
