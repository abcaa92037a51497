//! [`Builder`]: a logger's settings, from code or the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8};

use parking_lot::{Mutex, RwLock};
use std::time::Duration;

use super::{BufferedLogger, Shared};
use crate::buffer::{Buffer, DEFAULT_BACKGROUND_CAPACITY, DEFAULT_CAPACITY, OverflowPolicy};
use crate::delivery::{Background, BackgroundConfig, Direct, OnFailure, Processor};
use crate::error::{ConfigError, Result};
use crate::filter::{DEFAULT_MIN_LEVEL, Filter};
use crate::level::Level;
use crate::output::Output;
use crate::record::Record;
use crate::redact::{Hook, Redaction, Redactor, Verdict};
use crate::retry::{BreakerPolicy, RetryPolicy};
use crate::spool::DEFAULT_SPOOL_MAX_BYTES;
use crate::stats::Ledger;
use crate::target::TARGET_ENV;

/// Configures a [`BufferedLogger`].
///
/// | setting | default | environment |
/// |---|---|---|
/// | [`output`](Self::output) / [`target`](Self::target) | stdout | `LOG_TRG` ([`env::TARGET_ENV`](crate::env::TARGET_ENV)): one target string or several, comma-separated |
/// | [`min_level`](Self::min_level) / [`filter`](Self::filter) | [`DEFAULT_MIN_LEVEL`](crate::DEFAULT_MIN_LEVEL) (`info`) | `AITRACE_LEVEL`, else `RUST_LOG` (a level or directives: [`Filter`]) |
/// | [`on_failure`](Self::on_failure) | [`OnFailure::Retain`] | |
/// | [`capacity`](Self::capacity) | [`DEFAULT_CAPACITY`] records ([`DEFAULT_BACKGROUND_CAPACITY`] with a background sender) | `AITRACE_CAPACITY` |
/// | [`overflow`](Self::overflow) | [`OverflowPolicy::DropNewest`] | |
/// | [`background`](Self::background) | off (flush on the calling thread) | `AITRACE_BACKGROUND`: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` |
/// | [`batch_size`](Self::batch_size) | [`DEFAULT_BATCH_SIZE`] | `AITRACE_BATCH_SIZE` |
/// | [`flush_interval`](Self::flush_interval) | [`DEFAULT_FLUSH_INTERVAL`] | `AITRACE_FLUSH_INTERVAL_MS` |
/// | [`retry`](Self::retry) | [`RetryPolicy::default`] | |
/// | [`breaker`](Self::breaker) | [`BreakerPolicy::default`] | |
/// | [`spool_dir`](Self::spool_dir) | none | `AITRACE_SPOOL_DIR` |
/// | [`spool_max_bytes`](Self::spool_max_bytes) | [`DEFAULT_SPOOL_MAX_BYTES`] | |
/// | [`flush_timeout`](Self::flush_timeout) | [`DEFAULT_FLUSH_TIMEOUT`] | |
/// | [`shutdown_timeout`](Self::shutdown_timeout) | [`DEFAULT_SHUTDOWN_TIMEOUT`] | |
/// | [`record_ids`](Self::record_ids) | off | |
/// | [`redactor`](Self::redactor) | [`Redactor::default`]: values of sensitive keys redacted | |
/// | [`before_send`](Self::before_send) | none | |
///
/// Values set in code win over the environment. The retry, breaker and spool
/// settings apply to background delivery, which a long-running service
/// wants: without it, records are sent only when the program flushes (or
/// exits), so a server's output stays empty while it runs.
/// `AITRACE_BACKGROUND=1` turns it on without a code change.
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
    filter: Option<Filter>,
    on_failure: OnFailure,
    capacity: Option<usize>,
    overflow: OverflowPolicy,
    background: Option<bool>,
    batch_size: Option<usize>,
    flush_interval: Option<Duration>,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    spool_dir: Option<PathBuf>,
    spool_max_bytes: Option<u64>,
    flush_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
    record_ids: bool,
    redactor: Option<Redactor>,
    before_send: Option<Hook>,
    /// Set when a spool from `AITRACE_SPOOL_DIR` could not be used.
    no_spool_env: bool,
}

/// The environment variable for [`Builder::capacity`].
pub const CAPACITY_ENV: &str = "AITRACE_CAPACITY";
/// The environment variable for [`Builder::batch_size`].
pub const BATCH_SIZE_ENV: &str = "AITRACE_BATCH_SIZE";
/// The environment variable for [`Builder::flush_interval`], in milliseconds.
pub const FLUSH_INTERVAL_ENV: &str = "AITRACE_FLUSH_INTERVAL_MS";
/// The environment variable for [`Builder::spool_dir`].
pub const SPOOL_DIR_ENV: &str = "AITRACE_SPOOL_DIR";
/// The environment variable for [`Builder::background`]: `1`, `true`,
/// `yes` or `on` turns background delivery on, `0`, `false`, `no` or `off`
/// leaves it off.
pub const BACKGROUND_ENV: &str = "AITRACE_BACKGROUND";

/// Records per batch, by default (background delivery).
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// How often the background sender flushes, by default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long [`BufferedLogger::flush`] waits for background delivery, by default.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a shutdown (the last handle's drop, a [`DeliveryGuard`](crate::DeliveryGuard)) may take, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The outputs `LOG_TRG` names: each entry that cannot be used is left out
/// with a line on stderr saying why; stdout when none can.
fn outputs_from_env() -> Vec<Output> {
    let outputs: Vec<Output> = Output::each_from_env()
        .into_iter()
        .filter_map(|entry| match entry {
            Ok(output) => Some(output),
            Err(err) => {
                eprintln!("aitrace: {err}; leaving this {TARGET_ENV} entry out");
                None
            }
        })
        .collect();
    if outputs.is_empty() {
        eprintln!("aitrace: writing to stdout instead");
        return vec![Output::stdout()];
    }
    outputs
}

/// A positive number from the environment; anything else is ignored with a
/// line on stderr (a capacity or batch of 0 would drop every record).
fn env_number<T: std::str::FromStr + PartialEq + Default>(name: &str) -> Option<T> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(value) if value != T::default() => Some(value),
        _ => {
            eprintln!("aitrace: ignoring {name}={text:?}: not a positive number");
            None
        }
    }
}

/// A yes or no from the environment; anything else is ignored with a line
/// on stderr.
pub(crate) fn env_flag(name: &str) -> Option<bool> {
    let text = std::env::var(name).ok()?;
    match text.trim().to_ascii_lowercase().as_str() {
        "" => None,
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => {
            eprintln!(
                "aitrace: ignoring {name}={text:?}: expected 1, true, yes, on, 0, false, no or off"
            );
            None
        }
    }
}

impl Builder {
    /// Adds an output: an [`Output`], or any exporter
    /// ([`Export`](crate::export::Export)), which becomes one. Several may
    /// be added; each flush sends to all.
    pub fn output(mut self, output: impl Into<Output>) -> Self {
        self.outputs.push(output.into());
        self
    }

    /// Adds the output a target string names (see [`Output`]); fails as
    /// [`Output::from_target`] does.
    pub fn target(self, target: &str) -> Result<Self, ConfigError> {
        Ok(self.output(Output::from_target(target)?))
    }

    /// Keeps only records at `level` or more severe, from every target.
    pub fn min_level(self, level: Level) -> Self {
        self.filter(Filter::level(level))
    }

    /// Keeps the records `filter` keeps: a level, or `RUST_LOG`-style
    /// directives per target (see [`Filter`]).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
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
    /// I/O and never need an async runtime, and records are sent as they
    /// come (every [`flush_interval`](Self::flush_interval) or
    /// [`batch_size`](Self::batch_size) records), which is what a
    /// long-running service wants. Off by default, or as
    /// `AITRACE_BACKGROUND` says when this is not called.
    pub fn background(mut self, background: bool) -> Self {
        self.background = Some(background);
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
    ///
    /// One process owns an output's folder at a time; a second process
    /// started with the same folder spools to an `extra-N` subfolder of its
    /// own and says so on stderr, and the next owner of the folder replays
    /// what such a subfolder's ended process left. The folder is written to
    /// once at start: one that is read-only or on a full disk is an error
    /// from [`try_build`](Self::try_build).
    ///
    /// A spool is part of [background](Self::background) delivery: without
    /// it, the folder is not used, and a line on stderr says so.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// The most bytes each output's spool holds; the oldest batches are
    /// evicted, and counted as dropped, to make room. Its `rejected/` and
    /// `corrupt/` folders hold at most a quarter of it each, oldest deleted
    /// first.
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

    /// How records are redacted at capture, before they are buffered, so
    /// no output, spool or fallback file ever sees what it removes.
    ///
    /// On by default with [`Redactor::default`] (the values of
    /// [`DEFAULT_REDACTED_KEYS`](crate::DEFAULT_REDACTED_KEYS) become
    /// `"[REDACTED]"`): a secret that reached a shared log store cannot be
    /// recalled, while an over-redacted field is visible and fixed with
    /// [`Redactor::allow_key`]. [`Redactor::none`] turns redaction off.
    ///
    /// ```
    /// use aitrace_core::{BufferedLogger, Output, Redactor, Value};
    ///
    /// let log = BufferedLogger::builder()
    ///     .output(Output::file("/dev/null"))
    ///     .redactor(Redactor::default().key("ssn").with_common_value_patterns())
    ///     .build();
    /// log.info("signup").field("ssn", "078-05-1120").field("password", "hunter2").emit();
    /// let record = &log.records()[0];
    /// assert_eq!(record.field("ssn"), Some(&Value::from("[REDACTED]")));
    /// assert_eq!(record.field("password"), Some(&Value::from("[REDACTED]")));
    /// ```
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// A hook that sees each record at capture, after the level filter and
    /// before the [`redactor`](Self::redactor), and may edit it
    /// ([`Record::fields_mut`], [`Record::set_field`],
    /// [`Record::retain_fields`]) or drop it ([`Verdict::Drop`]; counted in
    /// [`Stats::before_send_dropped`](crate::Stats::before_send_dropped)).
    /// The redactor runs after it, so a field the hook adds is redacted too.
    ///
    /// It runs on the capturing thread, for every record kept by the
    /// filter (span `.start`/`.end` records included): keep it cheap.
    /// Records logged from inside a hook, to any logger, skip hooks (so a
    /// hook that logs cannot recurse). If the hook panics, the
    /// record is dropped (it may be half edited), the logger carries on,
    /// and a line on stderr says so, at most once a minute (besides what
    /// the panic hook prints).
    ///
    /// ```
    /// use aitrace_core::{BufferedLogger, Output, Verdict};
    ///
    /// let log = BufferedLogger::builder()
    ///     .output(Output::file("/dev/null"))
    ///     .before_send(|record| {
    ///         if record.event() == "health_check" {
    ///             return Verdict::Drop;
    ///         }
    ///         record.retain_fields(|key, _| key != "email");
    ///         Verdict::Keep
    ///     })
    ///     .build();
    /// log.info("health_check").emit();
    /// log.info("login").field("user", "u2").field("email", "u2@example.com").emit();
    /// assert_eq!(log.records().len(), 1);
    /// assert_eq!(log.records()[0].field("email"), None);
    /// assert_eq!(log.stats().before_send_dropped, 1);
    /// ```
    pub fn before_send<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut Record) -> Verdict + Send + Sync + 'static,
    {
        self.before_send = Some(Hook(Arc::new(hook)));
        self
    }

    /// The logger. Reads the environment for what was not set in code;
    /// unusable values fall back to the defaults with a line on stderr. If
    /// the spool folder cannot be used, background delivery still starts,
    /// without a spool, and says so on stderr. Use
    /// [`try_build`](Self::try_build) to get that error instead.
    pub fn build(self) -> BufferedLogger {
        match self.assemble() {
            Ok(logger) => logger,
            Err(err) => {
                eprintln!("aitrace: {err}; delivering in the background without a spool");
                let mut builder = self;
                builder.spool_dir = None;
                builder.no_spool_env = true;
                builder.assemble().unwrap_or_else(|err| {
                    eprintln!("aitrace: {err}; delivering on the calling thread");
                    builder.background = Some(false);
                    builder
                        .assemble()
                        .unwrap_or_else(|_| unreachable!("direct delivery starts no thread"))
                })
            }
        }
    }

    /// The logger, or the error that kept its background delivery from
    /// starting: a spool folder that cannot be created, read, locked or
    /// written to, a thread that cannot start
    /// ([`ErrorKind::Io`](crate::ErrorKind::Io)).
    pub fn try_build(self) -> Result<BufferedLogger, ConfigError> {
        self.assemble()
    }

    fn assemble(&self) -> Result<BufferedLogger, ConfigError> {
        crate::clock::warm_up();
        let outputs = if self.outputs.is_empty() {
            outputs_from_env()
        } else {
            self.outputs.clone()
        };
        let background = self
            .background
            .or_else(|| env_flag(BACKGROUND_ENV))
            .unwrap_or(false);
        let filter = self.filter.clone().unwrap_or_else(|| {
            Filter::from_env()
                .unwrap_or_else(|err| {
                    eprintln!("aitrace: {err}; keeping {DEFAULT_MIN_LEVEL} and above");
                    None
                })
                .unwrap_or_default()
        });
        let capacity = self
            .capacity
            .or_else(|| env_number(CAPACITY_ENV))
            .unwrap_or(if background {
                DEFAULT_BACKGROUND_CAPACITY
            } else {
                DEFAULT_CAPACITY
            });
        let batch_size = self
            .batch_size
            .or_else(|| env_number(BATCH_SIZE_ENV))
            .unwrap_or(DEFAULT_BATCH_SIZE)
            .max(1);
        let interval = self
            .flush_interval
            .or_else(|| env_number(FLUSH_INTERVAL_ENV).map(Duration::from_millis))
            .unwrap_or(DEFAULT_FLUSH_INTERVAL)
            // A zero interval would have the delivery thread drain in a spin.
            .max(Duration::from_millis(1));
        let spool_dir = self.spool_dir.clone().or_else(|| {
            std::env::var_os(SPOOL_DIR_ENV)
                .filter(|v| !v.is_empty() && !self.no_spool_env)
                .map(PathBuf::from)
        });
        let trigger = if background { batch_size } else { usize::MAX };
        let buffer = Arc::new(Buffer::new(capacity, self.overflow, trigger));
        let ledger = Arc::new(Ledger::new(outputs.iter().map(ToString::to_string)));
        let processor: Box<dyn Processor> = if background {
            let config = BackgroundConfig {
                batch_size,
                interval,
                retry: self.retry,
                breaker: self.breaker,
                spool_dir,
                spool_max_bytes: self.spool_max_bytes.unwrap_or(DEFAULT_SPOOL_MAX_BYTES),
                max_queued_batches: (capacity / batch_size).clamp(2, 64),
            };
            Box::new(Background::start(
                buffer.clone(),
                outputs.clone(),
                ledger.clone(),
                config,
            )?)
        } else {
            if let Some(dir) = &spool_dir {
                eprintln!(
                    "aitrace: spool folder {} not used: it takes background delivery \
                     (.background(true) or {BACKGROUND_ENV}=1); failed batches are kept \
                     for the next flush, then written to a fallback file",
                    dir.display()
                );
            }
            Box::new(Direct::new(
                buffer.clone(),
                outputs.clone(),
                ledger.clone(),
                self.on_failure.clone(),
                capacity,
            ))
        };
        Ok(BufferedLogger {
            shared: Arc::new(Shared {
                buffer,
                outputs,
                ledger,
                processor,
                min_level: AtomicU8::new(filter.max_level().map_or(super::OFF, |l| l as u8)),
                targeted: AtomicBool::new(!filter.is_level_only()),
                filter: RwLock::new(filter),
                level_watchers: Mutex::new(Vec::new()),
                record_ids: self.record_ids,
                redaction: Redaction::new(
                    self.before_send.clone(),
                    self.redactor.clone().unwrap_or_default(),
                ),
                flush_timeout: self.flush_timeout.unwrap_or(DEFAULT_FLUSH_TIMEOUT),
                shutdown_timeout: self.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            }),
        })
    }
}
