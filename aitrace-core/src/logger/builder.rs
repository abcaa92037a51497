//! [`Builder`]: a logger's settings, from code or the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8};

use parking_lot::{Mutex, RwLock};
use std::time::Duration;

use super::{BufferedLogger, Shared};
use crate::buffer::{Buffer, DEFAULT_BACKGROUND_CAPACITY, DEFAULT_CAPACITY, OverflowPolicy};
use crate::delivery::mode::{
    BACKGROUND_ENV, BATCH_SIZE_ENV, DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL,
    DEFAULT_FLUSH_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, FLUSH_INTERVAL_ENV, SPOOL_DIR_ENV,
};
use crate::delivery::{
    Background, BackgroundConfig, BackgroundProcessor, DeliveryMode, Direct, DirectProcessor,
    OnFailure, Processor,
};
use crate::error::{ConfigError, Result};
use crate::filter::{DEFAULT_MIN_LEVEL, Filter};
use crate::level::Level;
use crate::output::Output;
use crate::output::target::TARGET_ENV;
use crate::record::Record;
use crate::redact::{Hook, Redaction, Redactor, Verdict};
use crate::retention::{Holder, Retention};
use crate::retry::{BreakerPolicy, RetryPolicy};
use crate::spool::DEFAULT_SPOOL_MAX_BYTES;
use crate::stats::Ledger;

/// Configures a [`BufferedLogger`].
///
/// | setting | default | environment |
/// |---|---|---|
/// | [`output`](Self::output) / [`target`](Self::target) | stdout | `LOG_TRG` ([`env::TARGET_ENV`](crate::env::TARGET_ENV)): one target string or several, comma-separated |
/// | [`min_level`](Self::min_level) / [`filter`](Self::filter) | [`DEFAULT_MIN_LEVEL`](crate::DEFAULT_MIN_LEVEL) (`info`) | `AITRACE_LEVEL`, else `RUST_LOG` (a level or directives: [`Filter`]) |
/// | [`delivery`](Self::delivery) | [`Direct`]: a flush sends on the calling thread | `AITRACE_BACKGROUND`: `1`/`true`/`yes`/`on` chooses [`Background`], `0`/`false`/`no`/`off` [`Direct`] |
/// | [`capacity`](Self::capacity) | [`DEFAULT_CAPACITY`] records ([`DEFAULT_BACKGROUND_CAPACITY`] with background delivery) | `AITRACE_CAPACITY` |
/// | [`overflow`](Self::overflow) | [`OverflowPolicy::DropNewest`] | |
/// | [`flush_timeout`](Self::flush_timeout) | [`DEFAULT_FLUSH_TIMEOUT`] | |
/// | [`shutdown_timeout`](Self::shutdown_timeout) | [`DEFAULT_SHUTDOWN_TIMEOUT`] | |
/// | [`record_ids`](Self::record_ids) | off | |
/// | [`redactor`](Self::redactor) | [`Redactor::default`]: values of sensitive keys redacted | |
/// | [`before_send`](Self::before_send) | none | |
///
/// Values set in code win over the environment. The settings above apply
/// to both delivery modes; each mode has settings of its own, given with
/// it: [`Direct`]'s failure handling, [`Background`]'s batching, retries,
/// breaker and spool (each with its defaults and environment variables). Background delivery is what a
/// long-running service wants: with direct delivery, records are sent only
/// when the program flushes (or exits), so a server's output stays empty
/// while it runs. `AITRACE_BACKGROUND=1` turns it on without a code change.
///
/// The 0.1 spelling, [`background`](Self::background) and a setter per
/// mode's setting on the builder itself, still compiles (deprecated) and
/// behaves as it did.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use aitrace_core::delivery::OverflowPolicy;
/// use aitrace_core::{Background, BufferedLogger, Output};
///
/// let log = BufferedLogger::builder()
///     .output(Output::http("http://localhost:8000/api/ingest")?)
///     .output(Output::file("/var/log/app/trace.jsonl"))
///     .delivery(
///         Background::new()
///             .batch_size(512)
///             .flush_interval(Duration::from_secs(2))
///             .spool_dir("/var/spool/app-aitrace"),
///     )
///     .capacity(100_000)
///     .overflow(OverflowPolicy::DropOldest)
///     .try_build()?;
/// let _guard = log.delivery_guard(); // delivers or spools the rest at exit
/// # Ok::<(), aitrace_core::Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "call `build` to get the logger"]
pub struct Builder {
    outputs: Vec<Output>,
    filter: Option<Filter>,
    capacity: Option<usize>,
    overflow: OverflowPolicy,
    /// Whether code chose background delivery (`None`: the environment
    /// chooses). The settings of both modes are kept apart from the
    /// choice, for the 0.1 setters, which set them without choosing.
    in_background: Option<bool>,
    direct: Direct,
    background: Background,
    /// Set by the deprecated 0.1 setters until `delivery` merges what they set.
    set_by_0_1_setters: bool,
    flush_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
    record_ids: bool,
    redactor: Option<Redactor>,
    before_send: Option<Hook>,
    retention: Option<Retention>,
    /// Set when a spool from `AITRACE_SPOOL_DIR` could not be used.
    no_spool_env: bool,
}

/// The environment variable for [`Builder::capacity`].
pub const CAPACITY_ENV: &str = "AITRACE_CAPACITY";

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

    /// How records reach the outputs: [`Direct`] (a flush sends on the
    /// calling thread) or [`Background`] (a delivery thread sends in
    /// batches, with retries, a circuit breaker and a disk spool), each with
    /// the settings of its own. When this is not called,
    /// `AITRACE_BACKGROUND` chooses (`1`: [`Background`], its settings
    /// from the environment and the defaults), else [`Direct`].
    ///
    /// Called again, the last call wins, with its settings. Settings given
    /// before it by the deprecated 0.1 setters (`batch_size`, `retry`, …)
    /// stay where the mode given here leaves them at their defaults.
    ///
    /// ```
    /// use aitrace_core::{Background, BufferedLogger};
    ///
    /// let log = BufferedLogger::builder()
    ///     .target("-")?
    ///     .delivery(Background::new().batch_size(100))
    ///     .build();
    /// log.info("hello").emit();
    /// assert_eq!(log.flush()?.records(), 1);
    /// # Ok::<(), aitrace_core::Error>(())
    /// ```
    pub fn delivery(mut self, mode: impl Into<DeliveryMode>) -> Self {
        match mode.into() {
            // Settings given before by the 0.1 setters stay where the mode
            // leaves them at their defaults; an earlier `delivery` does not.
            DeliveryMode::Direct(direct) => {
                self.in_background = Some(false);
                let earlier = std::mem::take(&mut self.direct);
                self.direct = match std::mem::take(&mut self.set_by_0_1_setters) {
                    true => direct.over(earlier),
                    false => direct,
                };
            }
            DeliveryMode::Background(background) => {
                self.in_background = Some(true);
                let earlier = std::mem::take(&mut self.background);
                self.background = match std::mem::take(&mut self.set_by_0_1_setters) {
                    true => background.over(earlier),
                    false => background,
                };
            }
        }
        self
    }

    /// How long [`BufferedLogger::flush`] (and
    /// [`flush_keep`](BufferedLogger::flush_keep)) waits: for the delivery
    /// thread with background delivery, for a flush already running on
    /// another thread with direct delivery.
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
    /// use aitrace_core::redact::Redactor;
    /// use aitrace_core::{BufferedLogger, Output, Value};
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
    /// hook that logs cannot recurse). While the hook looks at a span's
    /// `.start` or `.end`, the span is not current: its parent is (none
    /// for a root), so a record the hook logs belongs to the parent, inside
    /// the parent's window, and one logged at a root's `.end` belongs to
    /// no span. Such a record is buffered before the record the hook is
    /// looking at, though stamped after it. If the hook panics, the
    /// record is dropped (it may be half edited), the logger carries on,
    /// and a line on stderr says so, at most once a minute (besides what
    /// the panic hook prints).
    ///
    /// ```
    /// use aitrace_core::redact::Verdict;
    /// use aitrace_core::{BufferedLogger, Output};
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

    /// Retention by outcome: records below the ship level are held per
    /// trace until its local root span ends, then shipped whole if the
    /// trace failed, was slow or is sampled, and discarded otherwise; see
    /// [`retention`](crate::retention). Off by default; `AITRACE_SHIP_LEVEL`
    /// turns it on when code does not call this.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
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
                builder.background.spool_dir = None;
                builder.no_spool_env = true;
                builder.assemble().unwrap_or_else(|err| {
                    eprintln!("aitrace: {err}; delivering on the calling thread");
                    builder.in_background = Some(false);
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
            .in_background
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
        let settings = &self.background;
        let batch_size = settings
            .batch_size
            .or_else(|| env_number(BATCH_SIZE_ENV))
            .unwrap_or(DEFAULT_BATCH_SIZE)
            .max(1);
        let interval = settings
            .flush_interval
            .or_else(|| env_number(FLUSH_INTERVAL_ENV).map(Duration::from_millis))
            .unwrap_or(DEFAULT_FLUSH_INTERVAL)
            // A zero interval would have the delivery thread drain in a spin.
            .max(Duration::from_millis(1));
        let spool_dir = settings.spool_dir.clone().or_else(|| {
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
                retry: settings.retry,
                breaker: settings.breaker,
                spool_dir,
                spool_max_bytes: settings.spool_max_bytes.unwrap_or(DEFAULT_SPOOL_MAX_BYTES),
                max_queued_batches: (capacity / batch_size).clamp(2, 64),
            };
            Box::new(BackgroundProcessor::start(
                buffer.clone(),
                outputs.clone(),
                ledger.clone(),
                config,
            )?)
        } else {
            if let Some(dir) = &spool_dir {
                eprintln!(
                    "aitrace: spool folder {} not used: it takes background delivery \
                     (.delivery(Background::new()) or {BACKGROUND_ENV}=1); failed batches \
                     are kept for the next flush, then written to a fallback file",
                    dir.display()
                );
            }
            Box::new(DirectProcessor::new(
                buffer.clone(),
                outputs.clone(),
                ledger.clone(),
                self.direct.on_failure.clone(),
                capacity,
            ))
        };
        let redaction = Redaction::new(
            self.before_send.clone(),
            self.redactor.clone().unwrap_or_default(),
        );
        let retention = (self.retention.clone())
            .or_else(Retention::from_env)
            .map(|retention| Holder::new(retention.resolve()));
        // A lifecycle record may wait in the buffer as it is only when
        // nothing would look at it on its way in: no hook, a redactor that
        // leaves its name and `duration_ms` alone, no retention (which
        // watches spans open and close).
        let compact_spans = retention.is_none()
            && redaction
                .as_ref()
                .is_none_or(Redaction::leaves_lifecycle_alone);
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
                redaction,
                flush_timeout: self.flush_timeout.unwrap_or(DEFAULT_FLUSH_TIMEOUT),
                shutdown_timeout: self.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
                retention,
                compact_spans,
            }),
        })
    }
}

/// The 0.1 spelling: whether to deliver in the background, and each mode's
/// settings on the builder itself, given to either mode. Each forwards to
/// the settings of its mode without choosing the mode (as in 0.1, a
/// setting for the mode not chosen is ignored), so
/// `.batch_size(100)` still applies when `AITRACE_BACKGROUND=1` chooses
/// background delivery.
impl Builder {
    /// Delivers from a background thread (`true`) or on the calling thread
    /// (`false`), keeping the settings given with the other 0.1 setters.
    #[deprecated(
        since = "0.2.0",
        note = "use `.delivery(Background::new())` (with its settings) or `.delivery(Direct::new())`"
    )]
    pub fn background(mut self, background: bool) -> Self {
        self.in_background = Some(background);
        self
    }

    /// [`Background::batch_size`], whichever mode is chosen.
    #[deprecated(
        since = "0.2.0",
        note = "use `.delivery(Background::new().batch_size(records))`"
    )]
    pub fn batch_size(mut self, records: usize) -> Self {
        self.background = self.background.batch_size(records);
        self.set_by_0_1_setters = true;
        self
    }

    /// [`Background::flush_interval`], whichever mode is chosen.
    #[deprecated(
        since = "0.2.0",
        note = "use `.delivery(Background::new().flush_interval(interval))`"
    )]
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.background = self.background.flush_interval(interval);
        self.set_by_0_1_setters = true;
        self
    }

    /// [`Background::retry`], whichever mode is chosen.
    #[deprecated(
        since = "0.2.0",
        note = "use `.delivery(Background::new().retry(retry))`"
    )]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.background = self.background.retry(retry);
        self.set_by_0_1_setters = true;
        self
    }

    /// [`Background::breaker`], whichever mode is chosen.
    #[deprecated(
        since = "0.2.0",
        note = "use `.delivery(Background::new().breaker(breaker))`"
    )]
    pub fn breaker(mut self, breaker: BreakerPolicy) -> Self {
        self.background = self.background.breaker(breaker);
        self.set_by_0_1_setters = true;
        self
    }

    /// [`Background::spool_dir`], whichever mode is chosen: with direct
    /// delivery the folder is not used, and a line on stderr says so.
    #[deprecated(
        since = "0.2.0",
        note = "use `.delivery(Background::new().spool_dir(dir))`"
    )]
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.background = self.background.spool_dir(dir);
        self.set_by_0_1_setters = true;
        self
    }

    /// [`Background::spool_max_bytes`], whichever mode is chosen.
    #[deprecated(
        since = "0.2.0",
        note = "use `.delivery(Background::new().spool_max_bytes(bytes))`"
    )]
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.background = self.background.spool_max_bytes(bytes);
        self.set_by_0_1_setters = true;
        self
    }

    /// [`Direct::on_failure`], whichever mode is chosen (background
    /// delivery does not use it).
    #[deprecated(
        since = "0.2.0",
        note = "use `.delivery(Direct::new().on_failure(on_failure))`"
    )]
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.direct = self.direct.on_failure(on_failure);
        self.set_by_0_1_setters = true;
        self
    }
}
