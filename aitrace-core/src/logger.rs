//! `BufferedLogger`: the shared buffer, its outputs and `flush`.

use std::cell::Cell;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::buffer::{Buffer, DEFAULT_BACKGROUND_CAPACITY, DEFAULT_CAPACITY, OverflowPolicy};
use crate::context;
use crate::encode::Layout;
use crate::error::{Error, ErrorKind, Result};
use crate::file;
use crate::level::Level;
use crate::output::{Delivery, Output};
use crate::pipeline::{FlushFuture, Pipeline, PipelineConfig};
use crate::record::Record;
use crate::retry::{BreakerPolicy, RetryPolicy};
use crate::spool::DEFAULT_SPOOL_MAX_BYTES;
use crate::stats::{OutputCounters, Stats};

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

/// Marks the current thread as a sender for good (the background threads).
pub(crate) fn mark_sending_thread() {
    SENDING.with(|s| s.set(true));
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
    pub(crate) records: usize,
    pub(crate) deliveries: Vec<Delivery>,
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
/// By default a flush runs on the calling thread. With
/// [`Builder::background`] a sender thread delivers in batches instead, with
/// retries, a circuit breaker and an optional disk spool, and application
/// threads never do I/O.
///
/// When the last handle drops, what is still buffered is flushed (background:
/// delivered or spooled within the shutdown timeout); if that fails the
/// records are written to a fallback file (its path printed on stderr).
/// Handles held in statics (a global subscriber) are never dropped: keep a
/// [`DeliveryGuard`] in `main`, or call [`shutdown`](Self::shutdown) before
/// exit. `std::process::exit` runs no destructors at all, so records still
/// buffered when it is called are lost: shut down first.
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
    buffer: Arc<Buffer>,
    outputs: Vec<Output>,
    counters: Vec<Arc<OutputCounters>>,
    pipeline: Option<Pipeline>,
    min_level: AtomicU8,
    on_failure: OnFailure,
    record_ids: bool,
    flush_timeout: Duration,
    shutdown_timeout: Duration,
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
    /// a batch, are dropped. When the buffer is full the
    /// [`OverflowPolicy`] applies.
    #[inline]
    pub fn capture(&self, mut record: Record) {
        if !self.enabled(record.level()) || is_sending() {
            return;
        }
        if !record.has_context() {
            record.set_context(context::current());
        }
        if self.shared.record_ids && record.record_id().is_none() {
            record.assign_id();
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

    /// Drops every buffered record (they count as neither delivered nor
    /// dropped in [`stats`](Self::stats); they were discarded on purpose).
    pub fn clear(&self) {
        self.shared.buffer.clear();
    }

    /// The outputs a flush sends to.
    pub fn outputs(&self) -> &[Output] {
        &self.shared.outputs
    }

    /// Sends every buffered record to every output and empties the buffer.
    ///
    /// Without a background sender, the flush runs here; on failure the
    /// records are handled as [`OnFailure`] says (by default put back in the
    /// buffer) and the error tells where they are. With one, it asks the
    /// sender to deliver everything captured before the call and waits up to
    /// the flush timeout; the report says what each output delivered, spooled
    /// or dropped, and a timeout error says how much is still on its way.
    pub fn flush(&self) -> Result<FlushReport> {
        self.flush_timeout(self.shared.flush_timeout)
    }

    /// [`flush`](Self::flush) with its own timeout (background delivery).
    pub fn flush_timeout(&self, timeout: Duration) -> Result<FlushReport> {
        match &self.shared.pipeline {
            Some(pipeline) => pipeline.flush(timeout),
            None => self.flush_inner(true),
        }
    }

    /// Asks the background sender to deliver what is buffered, without
    /// waiting. Without a background sender this does nothing.
    pub fn trigger_flush(&self) {
        if let Some(pipeline) = &self.shared.pipeline {
            pipeline.trigger();
        }
    }

    /// A flush to `.await` on an async runtime without blocking its thread
    /// (background delivery; it completes when the sender is done or at the
    /// flush timeout, checked at least once per flush interval). Without a
    /// background sender the flush runs when this is called.
    pub fn flush_async(&self) -> FlushFuture {
        match &self.shared.pipeline {
            Some(pipeline) => pipeline.flush_async(self.shared.flush_timeout),
            None => FlushFuture::ready(self.flush_inner(true)),
        }
    }

    /// Sends every buffered record but keeps them buffered
    /// (Python's `flush(clear_after=False)`). Always on the calling thread.
    pub fn flush_keep(&self) -> Result<FlushReport> {
        self.flush_inner(false)
    }

    /// Delivers or spools what is buffered and stops the background sender,
    /// within `timeout`; later captures stay buffered until the last handle
    /// drops. Without a background sender it is a flush.
    pub fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        match &self.shared.pipeline {
            Some(pipeline) => pipeline.shutdown(timeout),
            None => self.flush_inner(true),
        }
    }

    /// A guard that shuts delivery down (within the shutdown timeout) when
    /// it drops: keep it in `main` when a handle lives in a global
    /// subscriber or logger.
    pub fn delivery_guard(&self) -> DeliveryGuard {
        DeliveryGuard {
            logger: self.clone(),
        }
    }

    /// Delivery counters, readable at any time.
    pub fn stats(&self) -> Stats {
        let (captured, dropped) = self.shared.buffer.counts();
        let outputs = self
            .shared
            .outputs
            .iter()
            .zip(&self.shared.counters)
            .map(|(o, c)| c.snapshot(o.to_string()))
            .collect();
        Stats::new(captured, dropped, self.len() as u64, outputs)
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
            shared.buffer.drain_for_delivery()
        } else {
            shared.buffer.snapshot()
        };
        if records.is_empty() {
            return Ok(FlushReport::default());
        }
        let counters = if clear { &shared.counters[..] } else { &[] };
        match send_all(&shared.outputs, counters, &records) {
            Ok(deliveries) => Ok(FlushReport {
                records: records.len(),
                deliveries,
            }),
            Err(err) if !clear => Err(err),
            Err(err) => Err(shared.handle_failure(err, records)),
        }
    }
}

/// Shuts a logger's delivery down when dropped; see
/// [`BufferedLogger::delivery_guard`]. Never waits much past the shutdown
/// timeout.
#[derive(Debug)]
#[must_use = "delivery is shut down as soon as the guard drops"]
pub struct DeliveryGuard {
    logger: BufferedLogger,
}

impl Drop for DeliveryGuard {
    fn drop(&mut self) {
        if let Err(err) = self.logger.shutdown(self.logger.shared.shutdown_timeout) {
            eprintln!("aitrace: {err}");
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
        if let Some(pipeline) = &self.pipeline {
            if let Err(err) = pipeline.shutdown(self.shutdown_timeout) {
                eprintln!("aitrace: {err}");
            }
        }
        let records = self.buffer.drain();
        if records.is_empty() {
            return;
        }
        let Err(err) = send_all(&self.outputs, &self.counters, &records) else {
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

/// Sends to every output on this thread, counting into `counters` when given.
fn send_all(
    outputs: &[Output],
    counters: &[Arc<OutputCounters>],
    records: &[Record],
) -> Result<Vec<Delivery>> {
    let _sending = SendingGuard::enter();
    let mut deliveries = Vec::with_capacity(outputs.len());
    let mut first_error = None;
    for (i, output) in outputs.iter().enumerate() {
        let counter = counters.get(i);
        match output.send(records) {
            Ok(delivery) => {
                if let Some(c) = counter {
                    OutputCounters::add(&c.delivered, records.len());
                }
                deliveries.push(delivery);
            }
            Err(err) => {
                if let Some(c) = counter {
                    OutputCounters::add(&c.failed_flushes, 1);
                }
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
    let deliveries = send_all(std::slice::from_ref(&output), &[], records)?;
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
/// | [`capacity`](Self::capacity) | [`DEFAULT_CAPACITY`] records ([`DEFAULT_BACKGROUND_CAPACITY`] with a background sender) | `AITRACE_CAPACITY` |
/// | [`overflow`](Self::overflow) | [`OverflowPolicy::DropNewest`] | |
/// | [`background`](Self::background) | off (flush on the calling thread) | |
/// | [`batch_size`](Self::batch_size) | [`DEFAULT_BATCH_SIZE`] | `AITRACE_BATCH_SIZE` |
/// | [`flush_interval`](Self::flush_interval) | [`DEFAULT_FLUSH_INTERVAL`] | `AITRACE_FLUSH_INTERVAL_MS` |
/// | [`retry`](Self::retry) | [`RetryPolicy::default`] | |
/// | [`breaker`](Self::breaker) | [`BreakerPolicy::default`] | |
/// | [`spool_dir`](Self::spool_dir) | none | `AITRACE_SPOOL_DIR` |
/// | [`spool_max_bytes`](Self::spool_max_bytes) | [`DEFAULT_SPOOL_MAX_BYTES`] | |
/// | [`flush_timeout`](Self::flush_timeout) | [`DEFAULT_FLUSH_TIMEOUT`] | |
/// | [`shutdown_timeout`](Self::shutdown_timeout) | [`DEFAULT_SHUTDOWN_TIMEOUT`] | |
/// | [`record_ids`](Self::record_ids) | off | |
///
/// Values set in code win over the environment. The retry, breaker and spool
/// settings apply to background delivery.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use aitrace_core::{BufferedLogger, Output, OverflowPolicy};
///
/// let log = BufferedLogger::builder()
///     .output(Output::http("http://localhost:8000/api/ingest")?)
///     .output(Output::file("/var/log/app/trace.jsonl"))
///     .background(true)
///     .batch_size(512)
///     .flush_interval(Duration::from_secs(2))
///     .capacity(100_000)
///     .overflow(OverflowPolicy::DropOldest)
///     .spool_dir("/var/spool/app-aitrace")
///     .try_build()?;
/// let _guard = log.delivery_guard(); // delivers or spools the rest at exit
/// # Ok::<(), aitrace_core::Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "call `build` to get the logger"]
pub struct Builder {
    outputs: Vec<Output>,
    min_level: Option<Level>,
    on_failure: OnFailure,
    capacity: Option<usize>,
    overflow: OverflowPolicy,
    background: bool,
    batch_size: Option<usize>,
    flush_interval: Option<Duration>,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    flush_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
    record_ids: bool,
}

/// Records per batch, by default (background delivery).
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// How often the background sender flushes, by default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long [`BufferedLogger::flush`] waits for background delivery, by default.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a shutdown (the last handle's drop, a [`DeliveryGuard`]) may take, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(value) => Some(value),
        Err(_) => {
            eprintln!("aitrace: ignoring {name}={text:?}: not a number");
            None
        }
    }
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

    /// What a flush on the calling thread does with a batch an output refused.
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// How many records the buffer holds before the overflow policy applies
    /// (to within 32 per shard; nothing is allocated up front).
    pub fn capacity(mut self, records: usize) -> Self {
        self.capacity = Some(records);
        self
    }

    /// What capturing does when the buffer is full.
    pub fn overflow(mut self, overflow: OverflowPolicy) -> Self {
        self.overflow = overflow;
        self
    }

    /// Delivers from a background thread: application threads never do
    /// I/O and never need an async runtime.
    pub fn background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// Records per batch; the sender also wakes when this many are buffered.
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = Some(records.max(1));
        self
    }

    /// How often the background sender flushes what is buffered.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = Some(interval);
        self
    }

    /// How failed batches are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// When an output's circuit breaker opens.
    pub fn breaker(mut self, breaker: BreakerPolicy) -> Self {
        self.breaker = breaker;
        self
    }

    /// A folder for batches that cannot be delivered now (one subfolder per
    /// output), replayed when the output answers again, also by the next
    /// process started with the same folder. Without one, such batches are
    /// dropped and counted.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// The most bytes each output's spool holds; the oldest batches are
    /// evicted, and counted as dropped, to make room.
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.spool_max_bytes = Some(bytes);
        self
    }

    /// How long [`BufferedLogger::flush`] waits for background delivery.
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = Some(timeout);
        self
    }

    /// How long a shutdown may take before what is left is spooled.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// Gives every record a random `record_id` (written in the metadata), so
    /// a reader can drop the duplicates at-least-once delivery may make.
    pub fn record_ids(mut self, on: bool) -> Self {
        self.record_ids = on;
        self
    }

    /// The logger. Reads the environment for what was not set in code;
    /// unusable values fall back to the defaults with a line on stderr, and a
    /// background sender that cannot start (its spool folder cannot be
    /// created) falls back to flushing on the calling thread. Use
    /// [`try_build`](Self::try_build) to get that error instead.
    pub fn build(self) -> BufferedLogger {
        self.assemble().unwrap_or_else(|(err, builder)| {
            eprintln!("aitrace: {err}; delivering without a background sender");
            let mut builder = *builder;
            builder.background = false;
            builder
                .assemble()
                .unwrap_or_else(|_| unreachable!("no background sender to start"))
        })
    }

    /// The logger, or the error that kept its background sender from starting.
    pub fn try_build(self) -> Result<BufferedLogger> {
        self.assemble().map_err(|(err, _)| err)
    }

    #[allow(clippy::result_large_err)]
    fn assemble(self) -> std::result::Result<BufferedLogger, (Error, Box<Builder>)> {
        let outputs = if self.outputs.is_empty() {
            vec![Output::from_env().unwrap_or_else(|err| {
                eprintln!("aitrace: {err}; writing to stdout instead");
                Output::stdout()
            })]
        } else {
            self.outputs.clone()
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
        let capacity = self
            .capacity
            .or_else(|| env_number("AITRACE_CAPACITY"))
            .unwrap_or(if self.background {
                DEFAULT_BACKGROUND_CAPACITY
            } else {
                DEFAULT_CAPACITY
            });
        let batch_size = self
            .batch_size
            .or_else(|| env_number("AITRACE_BATCH_SIZE"))
            .unwrap_or(DEFAULT_BATCH_SIZE)
            .max(1);
        let interval = self
            .flush_interval
            .or_else(|| env_number("AITRACE_FLUSH_INTERVAL_MS").map(Duration::from_millis))
            .unwrap_or(DEFAULT_FLUSH_INTERVAL);
        let spool_dir = self.spool_dir.clone().or_else(|| {
            std::env::var_os("AITRACE_SPOOL_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let trigger = if self.background {
            batch_size
        } else {
            usize::MAX
        };
        let buffer = Arc::new(Buffer::new(capacity, self.overflow, trigger));
        let counters: Vec<_> = outputs.iter().map(|_| Arc::default()).collect();
        let pipeline = if self.background {
            let config = PipelineConfig {
                batch_size,
                interval,
                retry: self.retry,
                breaker: self.breaker,
                spool_dir,
                spool_max_bytes: self.spool_max_bytes.unwrap_or(DEFAULT_SPOOL_MAX_BYTES),
                max_queued_batches: (capacity / batch_size).clamp(2, 64),
            };
            match Pipeline::start(buffer.clone(), &outputs, &counters, config) {
                Ok(pipeline) => Some(pipeline),
                Err(err) => return Err((err, Box::new(self))),
            }
        } else {
            None
        };
        Ok(BufferedLogger {
            shared: Arc::new(Shared {
                buffer,
                outputs,
                counters,
                pipeline,
                min_level: AtomicU8::new(min_level as u8),
                on_failure: self.on_failure,
                record_ids: self.record_ids,
                flush_timeout: self.flush_timeout.unwrap_or(DEFAULT_FLUSH_TIMEOUT),
                shutdown_timeout: self.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
                flush_lock: Mutex::new(()),
                told_fallback: AtomicBool::new(false),
            }),
        })
    }
}
