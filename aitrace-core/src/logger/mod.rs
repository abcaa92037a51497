//! `BufferedLogger`: the handle applications and adapters hold. It owns the
//! buffer and the books and delegates delivery to a
//! [`Processor`](crate::delivery::Processor), direct or background, without
//! knowing which.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use parking_lot::{Mutex, RwLock};
use std::time::Duration;

use crate::buffer::Buffer;
use crate::context;
use crate::delivery::{DirectProcessor, FlushFuture, Processor};
use crate::error::Result;
use crate::filter::Filter;
use crate::flush_report::FlushReport;
use crate::level::Level;
use crate::lifecycle::Lifecycle;
use crate::output::Output;
use crate::record::Record;
use crate::redact::{Redaction, Redactor};
use crate::reentrancy::is_sending;
use crate::stats::{Ledger, Stats};

pub(crate) mod builder;

pub use builder::{Builder, CAPACITY_ENV};
// Defined with the delivery modes; `env` names them from here.
pub use crate::delivery::mode::{
    BACKGROUND_ENV, BATCH_SIZE_ENV, FLUSH_INTERVAL_ENV, SPOOL_DIR_ENV,
};

/// `min_level` when nothing is kept (`off`).
const OFF: u8 = Level::Error as u8 + 1;

/// Called with a logger's new most verbose level when its filter changes.
pub(crate) type LevelWatcher = Box<dyn Fn(Option<Level>) + Send + Sync>;

/// A cheap-to-clone handle to one shared record buffer and its outputs.
///
/// Every clone, every thread and every adapter writes into the same buffer;
/// capturing a record only moves it into a per-thread shard (no encoding, no
/// I/O, no lock shared by all threads). [`flush`](Self::flush) encodes the
/// buffered records in capture order and sends them.
///
/// By default a flush runs on the calling thread. With background delivery
/// ([`Builder::delivery`] with a [`Background`](crate::Background)) a
/// delivery thread sends in batches instead, with
/// retries, a circuit breaker and an optional disk spool, and application
/// threads never do I/O.
///
/// When the last handle drops, what is still buffered is delivered within
/// the shutdown timeout; what cannot be goes to the spool (background, with
/// one) or to a fallback file (its path printed on stderr). Dropping never
/// takes much longer than the shutdown timeout. Handles held in statics (a
/// global subscriber) are never dropped: keep a [`DeliveryGuard`] in `main`,
/// or call [`shutdown`](Self::shutdown) before exit. `std::process::exit`
/// runs no destructors at all, so records still buffered when it is called
/// are lost: shut down first.
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
    ledger: Arc<Ledger>,
    processor: Box<dyn Processor>,
    /// The most verbose level any target keeps (`OFF`: none): the one
    /// check every record pays.
    min_level: AtomicU8,
    /// Set when the filter has per-target directives, kept in `filter`.
    targeted: AtomicBool,
    filter: RwLock<Filter>,
    level_watchers: Mutex<Vec<LevelWatcher>>,
    record_ids: bool,
    /// The `before_send` hook and the redactor; `None` when both are off.
    redaction: Option<Redaction>,
    flush_timeout: Duration,
    shutdown_timeout: Duration,
    /// Retention by outcome; `None` when it is off.
    retention: Option<crate::retention::Holder>,
    /// Whether span lifecycle records may be buffered compact (nothing
    /// redacts, hooks or holds them on their way in).
    compact_spans: bool,
}

impl Shared {
    /// Decides every trace retention still holds (as its `at_shutdown`
    /// says) into the buffer, before delivery stops.
    fn release_held(&self) {
        if let Some(holder) = &self.retention {
            let buffer = &self.buffer;
            holder.drain(&mut |record| buffer.push(record));
        }
    }
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

    /// Whether a record at `level` would be kept by some target. Frontends
    /// check this first, so a filtered-out event costs next to nothing.
    #[inline]
    pub fn enabled(&self, level: Level) -> bool {
        level as u8 >= self.shared.min_level.load(Ordering::Relaxed)
    }

    /// Whether a record at `level` from `target` (a logger name or module
    /// path) would be kept, per-target directives included.
    #[inline]
    pub fn enabled_for(&self, level: Level, target: &str) -> bool {
        self.enabled(level)
            && (!self.shared.targeted.load(Ordering::Relaxed)
                || self.shared.filter.read().enabled(level, target))
    }

    /// The most verbose level kept by some target (`Error` when the filter
    /// keeps nothing; see [`filter`](Self::filter)).
    pub fn min_level(&self) -> Level {
        Level::from_u8(self.shared.min_level.load(Ordering::Relaxed)).unwrap_or(Level::Error)
    }

    /// The filter in force.
    pub fn filter(&self) -> Filter {
        self.shared.filter.read().clone()
    }

    /// Keeps records at `level` and more severe from every target, for
    /// every handle (per-target directives are dropped). Adapters that keep
    /// a level of their own follow (`log::max_level` with `aitrace-log`).
    pub fn set_min_level(&self, level: Level) {
        self.set_filter(Filter::level(level));
    }

    /// Replaces the filter, for every handle; see [`set_min_level`](Self::set_min_level).
    pub fn set_filter(&self, filter: Filter) {
        let max = filter.max_level();
        let mut current = self.shared.filter.write();
        self.shared
            .targeted
            .store(!filter.is_level_only(), Ordering::Relaxed);
        self.shared
            .min_level
            .store(max.map_or(OFF, |l| l as u8), Ordering::Relaxed);
        *current = filter;
        drop(current);
        for watch in self.shared.level_watchers.lock().iter() {
            watch(max);
        }
    }

    /// Calls `watch` with the most verbose level kept each time the filter
    /// changes (for [`crate::adapter::on_level_change`]).
    pub(crate) fn watch_level(&self, watch: LevelWatcher) {
        self.shared.level_watchers.lock().push(watch);
    }

    /// Buffers a record built elsewhere (by an adapter, say).
    ///
    /// A record without a span gets the span current on this thread. Records
    /// the [`Filter`] does not keep (its target is the record's logger, else
    /// its function), and records made while this thread is sending a batch,
    /// are dropped. Then the [`before_send`](crate::Builder::before_send)
    /// hook and the [`Redactor`] run, so the buffer only ever holds
    /// redacted records. When the buffer is full the
    /// [`OverflowPolicy`](crate::OverflowPolicy) applies.
    #[inline]
    pub fn capture(&self, record: Record) {
        if !self.enabled(record.level()) || is_sending() {
            return;
        }
        if self.shared.targeted.load(Ordering::Relaxed) {
            let target = record
                .logger()
                .or(record.location().function())
                .unwrap_or("");
            if !self.shared.filter.read().enabled(record.level(), target) {
                return;
            }
        }
        self.keep(record);
    }

    /// [`capture`](Self::capture) without the filter: for the `.end` of a
    /// span whose `.start` the filter kept, so that a filter changed while
    /// the span was open leaves no `.start` without its `.end`.
    pub(crate) fn capture_unfiltered(&self, record: Record) {
        if is_sending() {
            return;
        }
        self.keep(record);
    }

    /// Buffers a span's lifecycle record the way
    /// [`capture_unfiltered`](Self::capture_unfiltered) buffers a record:
    /// compact when nothing would change or hold it on its way in, else as
    /// the [`Record`] it stands for.
    #[inline(always)]
    pub(crate) fn capture_lifecycle(&self, mut lifecycle: Lifecycle) {
        if is_sending() {
            return;
        }
        if !self.shared.compact_spans {
            return self.keep(lifecycle.to_record());
        }
        if self.shared.record_ids && !lifecycle.has_id() {
            lifecycle.assign_id();
        }
        self.shared.buffer.push_lifecycle(&lifecycle);
    }

    /// Buffers a record the filter kept.
    #[inline]
    fn keep(&self, mut record: Record) {
        if !record.has_context() {
            record.set_context(context::current());
        }
        if self.shared.record_ids && record.record_id().is_none() {
            record.assign_id();
        }
        if let Some(redaction) = &self.shared.redaction {
            if !redaction.apply(&mut record) {
                self.shared.buffer.count_before_send_dropped();
                return;
            }
        }
        if let Some(holder) = &self.shared.retention {
            let buffer = &self.shared.buffer;
            if let Some(record) = holder.offer(record, &mut |held| buffer.push(held)) {
                buffer.push(record);
            }
            return;
        }
        self.shared.buffer.push(record);
    }

    /// How many records are buffered.
    pub fn len(&self) -> usize {
        self.shared.buffer.len()
    }

    /// How many of the buffered records are span lifecycle records kept in
    /// compact form ([`adapter::Lifecycle`](crate::adapter::Lifecycle)).
    /// For tests and benchmarks; not part of the supported API.
    #[doc(hidden)]
    pub fn compact_len(&self) -> usize {
        self.shared.buffer.compact_len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies of the buffered records, in capture order (Python's `get_logs`).
    pub fn records(&self) -> Vec<Record> {
        self.shared.buffer.snapshot()
    }

    /// Drops every buffered record (counted in [`Stats::discarded`]: they
    /// were thrown away on purpose, not lost).
    pub fn clear(&self) {
        let _books = self.shared.ledger.lock();
        self.shared.buffer.clear();
    }

    /// The outputs a flush sends to.
    pub fn outputs(&self) -> &[Output] {
        &self.shared.outputs
    }

    /// Sends every buffered record to every output and empties the buffer.
    ///
    /// Without a background sender, the flush runs here; on failure the
    /// records are handled as [`OnFailure`](crate::OnFailure) says (by
    /// default kept for the next flush) and the error tells where they are.
    /// With one, it asks the delivery thread to deliver everything captured
    /// before the call and waits up to the flush timeout; the report says
    /// what each output delivered, spooled or dropped, and a timeout error
    /// says how much is still on its way.
    pub fn flush(&self) -> Result<FlushReport> {
        self.flush_timeout(self.shared.flush_timeout)
    }

    /// [`flush`](Self::flush) with its own timeout.
    pub fn flush_timeout(&self, timeout: Duration) -> Result<FlushReport> {
        self.shared.processor.flush(timeout)
    }

    /// Asks the background sender to deliver what is buffered, without
    /// waiting. Without a background sender this does nothing.
    pub fn trigger_flush(&self) {
        self.shared.processor.trigger();
    }

    /// A flush to `.await` on an async runtime without blocking its thread
    /// (background delivery; it completes when the delivery thread is done,
    /// or at the flush timeout, needing no timer from the runtime). Without a
    /// background sender the flush runs when this is called.
    pub fn flush_async(&self) -> FlushFuture {
        self.shared.processor.flush_async(self.shared.flush_timeout)
    }

    /// Sends a copy of every buffered record to every output and keeps them
    /// buffered (Python's `flush(clear_after=False)`), so the next flush
    /// sends them again.
    ///
    /// The copy goes the way a flush's batch goes, never beside it: on the
    /// calling thread after any flush running there (direct delivery), or
    /// from each output's sender thread, before its queued batches
    /// (background delivery). It waits up to the flush timeout for its turn
    /// (direct) or for the delivery thread's answer (background); on the
    /// calling thread, the sends themselves are bounded by each output's
    /// own request timeouts, not by the flush timeout. An output
    /// that refuses what part of the copy holds gets it again in halves,
    /// and the records at fault are in the report's
    /// [`rejected`](FlushReport::rejected). The copy is sent once: not
    /// retried, spooled, set aside nor counted in [`stats`](Self::stats),
    /// since the records are still buffered and the flush that takes them
    /// does all that. A failure that may pass is the error.
    pub fn flush_keep(&self) -> Result<FlushReport> {
        let records = self.shared.buffer.snapshot();
        if records.is_empty() {
            return Ok(FlushReport::default());
        }
        (self.shared.processor).send_copy(Arc::new(records), self.shared.flush_timeout)
    }

    /// Delivers or spools what is buffered and stops the background sender,
    /// within `timeout`; later captures stay buffered until the last handle
    /// drops. Without a background sender it is a flush; when that fails,
    /// what no output took is written to the fallback file (or an
    /// `aitrace-unsent-PID-TIME.jsonl` in the temp folder), as when the last
    /// handle drops, and the error's [`fallback_path`](crate::Error::fallback_path)
    /// names it. Call it before `std::process::exit`, which runs no
    /// destructors.
    pub fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        self.shared.release_held();
        self.shared.processor.shutdown(timeout)
    }

    /// A guard that shuts delivery down (within the shutdown timeout) when
    /// it drops: keep it in `main` when a handle lives in a global
    /// subscriber or logger.
    pub fn delivery_guard(&self) -> DeliveryGuard {
        DeliveryGuard {
            logger: self.clone(),
        }
    }

    /// Delivery counters, readable at any time; a consistent snapshot (see
    /// [`Stats`] for the balance it always satisfies).
    pub fn stats(&self) -> Stats {
        let books = self.shared.ledger.lock();
        // Retention's counts first: a record it releases meanwhile is then
        // counted on both sides of the balance, never on one only.
        let retention = (self.shared.retention.as_ref())
            .map(|holder| holder.counts())
            .unwrap_or_default();
        let tally = self.shared.buffer.tally();
        Stats::new(
            tally.captured,
            tally.dropped,
            tally.discarded,
            tally.before_send_dropped,
            tally.buffered,
            retention,
            books.clone(),
        )
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

impl Drop for Shared {
    fn drop(&mut self) {
        self.release_held();
        self.processor.close(self.shutdown_timeout);
        for output in &self.outputs {
            output.shutdown_exporter();
        }
    }
}

/// Sends `records` to the output a target string names, once, without a
/// buffer (Python's `send_logs`).
///
/// They go as a direct flush sends: on the calling thread, again in halves
/// where the output refuses what a part holds, so that only the records at
/// fault are refused. Those are set aside in an
/// `aitrace-unsent-PID-TIME.jsonl` file in the temp folder (said on stderr,
/// named by the report's [`fallback_path`](crate::Delivery::fallback_path))
/// and counted in the report's [`rejected`](FlushReport::rejected), and the
/// call returns `Ok`. Nothing is kept, since the caller has the records:
/// a refusal of the whole request that is not about what it holds (a 401
/// or 403 for a wrong token) is the error, and nothing is set aside; a
/// failure that may pass (no connection, a timeout, a 5xx) is the error,
/// and [`Error::retained`](crate::Error::retained) says how many records
/// at the end of `records` were not sent (those before them were delivered
/// or set aside: send only the rest again).
///
/// What is sent is redacted with [`Redactor::default`], as a logger's
/// records are; to choose the redactor, call [`Redactor::redact`] on the
/// records and send them through a logger built with
/// `.redactor(Redactor::none())`.
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
    let redactor = Redactor::default();
    let records: Vec<Record> = (records.iter().cloned())
        .map(|mut record| {
            redactor.redact(&mut record);
            record
        })
        .collect();
    DirectProcessor::send_once(output, &records)
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
            .field("filter", &*self.shared.filter.read())
            .field("redaction", &self.shared.redaction)
            .field("delivery", &self.shared.processor)
            .field("buffered", &self.len())
            .finish()
    }
}
