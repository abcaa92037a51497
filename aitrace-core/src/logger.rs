//! `BufferedLogger`: the shared buffer, its outputs and `flush`.

use std::cell::Cell;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::buffer::Buffer;
use crate::context;
use crate::encode::Layout;
use crate::error::{Error, ErrorKind, Result};
use crate::file;
use crate::level::Level;
use crate::output::{Delivery, Output};
use crate::record::Record;

/// The environment variable that sets the least severe level kept.
pub const LEVEL_ENV: &str = "AITRACE_LEVEL";

/// The least severe level kept when neither code nor [`LEVEL_ENV`] says.
pub const DEFAULT_MIN_LEVEL: Level = Level::Trace;

/// How long a flush waits for another flush of the same logger to finish.
pub const DEFAULT_FLUSH_WAIT: Duration = Duration::from_secs(60);

thread_local! {
    /// Set while this thread sends a batch, so the sender's own logging (ureq
    /// and its TLS stack log through `log`) never loops back into a buffer.
    static SENDING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is inside a flush. Adapters may check it to
/// skip work early; [`BufferedLogger::capture`] already drops such records.
pub fn is_sending() -> bool {
    SENDING.with(Cell::get)
}

struct SendingGuard(bool);

impl SendingGuard {
    fn enter() -> Self {
        SendingGuard(SENDING.with(|s| s.replace(true)))
    }
}

impl Drop for SendingGuard {
    fn drop(&mut self) {
        let previous = self.0;
        SENDING.with(|s| s.set(previous));
    }
}

/// What happens to a batch that an output failed to take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFailure {
    /// Put the records back in the buffer, ahead of newer ones, for the next
    /// flush (the default). If the last handle drops with records still
    /// unsent, they are written to a fallback file in the temp folder.
    #[default]
    Retain,
    /// Append the batch to this JSON Lines file, as the Python tool does;
    /// the error names the file and the first such write is told on stderr.
    FallbackFile(PathBuf),
}

/// What a flush sent, and where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    records: usize,
    deliveries: Vec<Delivery>,
}

impl FlushReport {
    /// How many records the flush sent.
    pub fn records(&self) -> usize {
        self.records
    }

    /// What each output accepted.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// The `ingested` count of the first output that reported one (HTTP).
    pub fn ingested(&self) -> Option<usize> {
        self.deliveries.iter().find_map(Delivery::ingested)
    }

    /// Records some server received but did not store (the reference
    /// server skips records without trace and span ids).
    pub fn skipped(&self) -> usize {
        self.deliveries.iter().map(Delivery::skipped).sum()
    }
}

/// A cheap-to-clone handle to one shared record buffer and its outputs.
///
/// Every clone, every thread and every adapter writes into the same buffer;
/// capturing a record only moves it into a per-thread shard (no encoding, no
/// I/O, no lock shared by all threads). [`flush`](Self::flush) encodes the
/// buffered records in capture order and sends them.
///
/// When the last handle drops, what is still buffered is flushed; if that
/// fails the records are written to a fallback file (its path printed on
/// stderr). Handles held in statics are never dropped: flush before exit.
///
/// # Examples
///
/// ```
/// use aitrace_core::BufferedLogger;
///
/// let log = BufferedLogger::builder().target("-").unwrap().build();
/// log.info("checkout_started").field("user_id", "u2").field("total", 469.74).emit();
/// assert_eq!(log.len(), 1);
/// let report = log.flush().unwrap(); // one JSON line on stdout
/// assert_eq!(report.records(), 1);
/// assert!(log.is_empty());
/// ```
#[derive(Clone)]
pub struct BufferedLogger {
    shared: Arc<Shared>,
}

struct Shared {
    buffer: Buffer,
    outputs: Vec<Output>,
    min_level: AtomicU8,
    on_failure: OnFailure,
    flush_lock: Mutex<()>,
    told_fallback: AtomicBool,
}

impl BufferedLogger {
    /// A logger whose output comes from `LOG_TRG` (stdout when unset) and
    /// whose level comes from `AITRACE_LEVEL`. An unusable `LOG_TRG` falls
    /// back to stdout with a line on stderr.
    pub fn new() -> Self {
        Builder::default().build()
    }

    /// Configures a logger in code; settings made there win over the environment.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Whether a record at `level` would be kept. Frontends check this before
    /// building a record, so a filtered-out event costs next to nothing.
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        level as u8 >= self.shared.min_level.load(Ordering::Relaxed)
    }

    /// The least severe level kept.
    pub fn min_level(&self) -> Level {
        Level::from_u8(self.shared.min_level.load(Ordering::Relaxed)).unwrap_or(Level::Trace)
    }

    /// Changes the least severe level kept, for every handle.
    pub fn set_min_level(&self, level: Level) {
        self.shared.min_level.store(level as u8, Ordering::Relaxed);
    }

    /// Buffers a record built elsewhere (by an adapter, say).
    ///
    /// A record without a span gets the span current on this thread. Records
    /// below the minimum level, and records made while this thread is sending
    /// a batch, are dropped.
    pub fn capture(&self, mut record: Record) {
        if !self.enabled(record.level()) || is_sending() {
            return;
        }
        if !record.has_context() {
            record.set_context(context::current());
        }
        self.shared.buffer.push(record);
    }

    /// How many records are buffered.
    pub fn len(&self) -> usize {
        self.shared.buffer.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies of the buffered records, in capture order (Python's `get_logs`).
    pub fn records(&self) -> Vec<Record> {
        self.shared.buffer.snapshot()
    }

    /// Drops every buffered record.
    pub fn clear(&self) {
        self.shared.buffer.clear();
    }

    /// The outputs a flush sends to.
    pub fn outputs(&self) -> &[Output] {
        &self.shared.outputs
    }

    /// Sends every buffered record to every output and empties the buffer.
    ///
    /// On failure the records are handled as [`OnFailure`] says (by default
    /// put back in the buffer) and the error tells where they are.
    pub fn flush(&self) -> Result<FlushReport> {
        self.flush_inner(true)
    }

    /// Sends every buffered record but keeps them buffered
    /// (Python's `flush(clear_after=False)`).
    pub fn flush_keep(&self) -> Result<FlushReport> {
        self.flush_inner(false)
    }

    fn flush_inner(&self, clear: bool) -> Result<FlushReport> {
        let shared = &*self.shared;
        let Some(_flushing) = shared.flush_lock.try_lock_for(DEFAULT_FLUSH_WAIT) else {
            return Err(Error::new(
                ErrorKind::TimedOut,
                format!("another flush did not finish within {DEFAULT_FLUSH_WAIT:?}"),
            ));
        };
        let records = if clear {
            shared.buffer.drain()
        } else {
            shared.buffer.snapshot()
        };
        if records.is_empty() {
            return Ok(FlushReport::default());
        }
        match send_all(&shared.outputs, &records) {
            Ok(deliveries) => Ok(FlushReport {
                records: records.len(),
                deliveries,
            }),
            Err(err) if !clear => Err(err),
            Err(err) => Err(shared.handle_failure(err, records)),
        }
    }
}

impl Shared {
    fn handle_failure(&self, err: Error, records: Vec<Record>) -> Error {
        if let OnFailure::FallbackFile(path) = &self.on_failure {
            match write_fallback(path, &records) {
                Ok(()) => {
                    if !self.told_fallback.swap(true, Ordering::Relaxed) {
                        eprintln!(
                            "aitrace: delivery failed ({err}); batch written to {}",
                            path.display()
                        );
                    }
                    return err.with_fallback_path(path.clone());
                }
                Err(write_err) => {
                    eprintln!("aitrace: cannot write fallback file: {write_err}");
                }
            }
        }
        let n = records.len();
        self.buffer.restore(records);
        err.with_retained(n)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let records = self.buffer.drain();
        if records.is_empty() {
            return;
        }
        let Err(err) = send_all(&self.outputs, &records) else {
            return;
        };
        let path = match &self.on_failure {
            OnFailure::FallbackFile(path) => path.clone(),
            OnFailure::Retain => std::env::temp_dir().join(format!(
                "aitrace-unsent-{}-{}.jsonl",
                std::process::id(),
                file::compact_utc(SystemTime::now())
            )),
        };
        match write_fallback(&path, &records) {
            Ok(()) => eprintln!(
                "aitrace: {} records could not be delivered ({err}); written to {}",
                records.len(),
                path.display()
            ),
            Err(write_err) => eprintln!(
                "aitrace: {} records lost: delivery failed ({err}) and {write_err}",
                records.len()
            ),
        }
    }
}

fn write_fallback(path: &std::path::Path, records: &[Record]) -> Result<()> {
    let mut body = Vec::with_capacity(records.len() * 320);
    Layout::Namespaced.write_lines(&mut body, records);
    file::append(path, &body)
}

fn send_all(outputs: &[Output], records: &[Record]) -> Result<Vec<Delivery>> {
    let _sending = SendingGuard::enter();
    let mut deliveries = Vec::with_capacity(outputs.len());
    let mut first_error = None;
    for output in outputs {
        match output.send(records) {
            Ok(delivery) => deliveries.push(delivery),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(deliveries),
    }
}

/// Sends `records` to the output a target string names, once, without a
/// buffer (Python's `send_logs`).
///
/// ```no_run
/// use aitrace_core::{Level, Record, send_logs};
///
/// let records = vec![Record::builder(Level::Info, "hello").build()];
/// let report = send_logs(&records, "http://localhost:8000/api/ingest")?;
/// println!("server stored {:?} of {}", report.ingested(), report.records());
/// # Ok::<(), aitrace_core::Error>(())
/// ```
pub fn send_logs(records: &[Record], target: &str) -> Result<FlushReport> {
    let output = Output::from_target(target)?;
    let deliveries = send_all(std::slice::from_ref(&output), records)?;
    Ok(FlushReport {
        records: records.len(),
        deliveries,
    })
}

// A panic while a lock is held cannot leave the buffer half-updated: each
// critical section is a single push, take or swap of a `Vec`, and parking_lot
// locks do not poison. So a logger stays usable across `catch_unwind`, which
// `slog::Logger::root` requires of its drain.
impl std::panic::UnwindSafe for BufferedLogger {}
impl std::panic::RefUnwindSafe for BufferedLogger {}

impl Default for BufferedLogger {
    fn default() -> Self {
        BufferedLogger::new()
    }
}

impl fmt::Debug for BufferedLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedLogger")
            .field("outputs", &self.shared.outputs)
            .field("min_level", &self.min_level())
            .field("on_failure", &self.shared.on_failure)
            .field("buffered", &self.len())
            .finish()
    }
}

/// Configures a [`BufferedLogger`].
///
/// | setting | default | environment |
/// |---|---|---|
/// | [`output`](Self::output) / [`target`](Self::target) | stdout | `LOG_TRG` ([`TARGET_ENV`](crate::TARGET_ENV)) |
/// | [`min_level`](Self::min_level) | [`DEFAULT_MIN_LEVEL`] | `AITRACE_LEVEL` ([`LEVEL_ENV`]) |
/// | [`on_failure`](Self::on_failure) | [`OnFailure::Retain`] | |
///
/// Values set in code win over the environment.
#[derive(Debug, Default)]
#[must_use = "call `build` to get the logger"]
pub struct Builder {
    outputs: Vec<Output>,
    min_level: Option<Level>,
    on_failure: OnFailure,
}

impl Builder {
    /// Adds an output. Several may be added; each flush sends to all.
    pub fn output(mut self, output: Output) -> Self {
        self.outputs.push(output);
        self
    }

    /// Adds the output a target string names (see [`Output`]).
    pub fn target(self, target: &str) -> Result<Self> {
        Ok(self.output(Output::from_target(target)?))
    }

    /// Keeps only records at `level` or more severe.
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = Some(level);
        self
    }

    /// What to do with a batch an output refused.
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// The logger. Reads `LOG_TRG` when no output was added and
    /// `AITRACE_LEVEL` when no level was set; unusable values fall back to
    /// the defaults with a line on stderr.
    pub fn build(self) -> BufferedLogger {
        let outputs = if self.outputs.is_empty() {
            vec![Output::from_env().unwrap_or_else(|err| {
                eprintln!("aitrace: {err}; writing to stdout instead");
                Output::stdout()
            })]
        } else {
            self.outputs
        };
        let min_level = self
            .min_level
            .unwrap_or_else(|| match std::env::var(LEVEL_ENV) {
                Ok(text) if !text.trim().is_empty() => text.parse().unwrap_or_else(|err| {
                    eprintln!("aitrace: {LEVEL_ENV}: {err}; keeping every level");
                    DEFAULT_MIN_LEVEL
                }),
                _ => DEFAULT_MIN_LEVEL,
            });
        BufferedLogger {
            shared: Arc::new(Shared {
                buffer: Buffer::new(),
                outputs,
                min_level: AtomicU8::new(min_level as u8),
                on_failure: self.on_failure,
                flush_lock: Mutex::new(()),
                told_fallback: AtomicBool::new(false),
            }),
        }
    }
}
