//! The delivery modes as settings types: [`Direct`] and [`Background`],
//! each holding only the settings its mode honours, and [`DeliveryMode`],
//! what [`Builder::delivery`](crate::Builder::delivery) takes.

use std::path::PathBuf;
use std::time::Duration;

use super::direct::OnFailure;
use crate::retry::{BreakerPolicy, RetryPolicy};

/// How long [`BufferedLogger::flush`](crate::BufferedLogger::flush) waits for background delivery, by default.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a shutdown (the last handle's drop, a [`DeliveryGuard`](crate::DeliveryGuard)) may take, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Records per batch, by default ([`Background::batch_size`]).
pub const DEFAULT_BATCH_SIZE: usize = 512;
/// How often the delivery thread sends what is buffered, by default
/// ([`Background::flush_interval`]).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The environment variable that chooses the delivery when code did not
/// ([`Builder::delivery`](crate::Builder::delivery)): `1`, `true`, `yes`
/// or `on` chooses [`Background`] (its settings from the environment and
/// the defaults), `0`, `false`, `no` or `off` [`Direct`].
pub const BACKGROUND_ENV: &str = "AITRACE_BACKGROUND";
/// The environment variable for [`Background::batch_size`].
pub const BATCH_SIZE_ENV: &str = "AITRACE_BATCH_SIZE";
/// The environment variable for [`Background::flush_interval`], in milliseconds.
pub const FLUSH_INTERVAL_ENV: &str = "AITRACE_FLUSH_INTERVAL_MS";
/// The environment variable for [`Background::spool_dir`].
pub const SPOOL_DIR_ENV: &str = "AITRACE_SPOOL_DIR";

/// How a logger delivers its records: what
/// [`Builder::delivery`](crate::Builder::delivery) takes, from a [`Direct`]
/// or a [`Background`].
///
/// When code does not choose, `AITRACE_BACKGROUND`
/// ([`BACKGROUND_ENV`](crate::env::BACKGROUND_ENV)) does, and [`Direct`]
/// when it is unset.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DeliveryMode {
    /// A flush sends on the calling thread.
    Direct(Direct),
    /// A delivery thread sends in batches.
    Background(Background),
}

impl From<Direct> for DeliveryMode {
    fn from(direct: Direct) -> Self {
        DeliveryMode::Direct(direct)
    }
}

impl From<Background> for DeliveryMode {
    fn from(background: Background) -> Self {
        DeliveryMode::Background(background)
    }
}

/// Direct delivery, the default: a flush sends on the calling thread, and
/// nothing is sent until the program flushes (or the last handle drops).
/// What suits a command-line tool or a test.
///
/// | setting | default | environment |
/// |---|---|---|
/// | [`on_failure`](Self::on_failure) | [`OnFailure::Retain`] | |
///
/// # Examples
///
/// ```
/// use aitrace_core::delivery::OnFailure;
/// use aitrace_core::{BufferedLogger, Direct, Output};
///
/// let log = BufferedLogger::builder()
///     .output(Output::file("/dev/null"))
///     .delivery(Direct::new().on_failure(OnFailure::FallbackFile("unsent.jsonl".into())))
///     .build();
/// log.info("hello").emit();
/// assert_eq!(log.flush()?.delivered(), 1);
/// # Ok::<(), aitrace_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "pass it to `Builder::delivery`"]
pub struct Direct {
    pub(crate) on_failure: OnFailure,
}

impl Direct {
    /// These settings, with `earlier`'s where these are the defaults (see
    /// [`Background::over`]).
    pub(crate) fn over(self, earlier: Direct) -> Direct {
        Direct {
            on_failure: if self.on_failure == OnFailure::default() {
                earlier.on_failure
            } else {
                self.on_failure
            },
        }
    }

    /// Direct delivery with the defaults.
    pub fn new() -> Self {
        Direct::default()
    }

    /// What a flush does with a batch an output failed to take (see
    /// [`OnFailure`]).
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }
}

/// Background delivery: one delivery thread batches the buffer by size and
/// interval and owns each output's retries, circuit breaker and disk
/// spool; one I/O thread per output sends. Application threads never do
/// I/O and never need an async runtime, and records are sent as they come,
/// which is what a long-running service wants.
///
/// | setting | default | environment |
/// |---|---|---|
/// | [`batch_size`](Self::batch_size) | [`DEFAULT_BATCH_SIZE`] | `AITRACE_BATCH_SIZE` ([`BATCH_SIZE_ENV`](crate::env::BATCH_SIZE_ENV)) |
/// | [`flush_interval`](Self::flush_interval) | [`DEFAULT_FLUSH_INTERVAL`] | `AITRACE_FLUSH_INTERVAL_MS` ([`FLUSH_INTERVAL_ENV`](crate::env::FLUSH_INTERVAL_ENV)) |
/// | [`retry`](Self::retry) | [`RetryPolicy::default`] | |
/// | [`breaker`](Self::breaker) | [`BreakerPolicy::default`] | |
/// | [`spool_dir`](Self::spool_dir) | none | `AITRACE_SPOOL_DIR` ([`SPOOL_DIR_ENV`](crate::env::SPOOL_DIR_ENV)) |
/// | [`spool_max_bytes`](Self::spool_max_bytes) | [`DEFAULT_SPOOL_MAX_BYTES`](crate::DEFAULT_SPOOL_MAX_BYTES) | |
///
/// Values set here win over the environment, which is read when the
/// logger is built. `AITRACE_BACKGROUND=1` chooses background delivery
/// with these settings from the environment when code chose no delivery.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use aitrace_core::{Background, BufferedLogger, Output};
///
/// let log = BufferedLogger::builder()
///     .output(Output::http("http://localhost:8000/api/ingest")?)
///     .delivery(
///         Background::new()
///             .batch_size(512)
///             .flush_interval(Duration::from_secs(2))
///             .spool_dir("/var/spool/app-aitrace"),
///     )
///     .try_build()?;
/// let _guard = log.delivery_guard(); // delivers or spools the rest at exit
/// # Ok::<(), aitrace_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "pass it to `Builder::delivery`"]
pub struct Background {
    pub(crate) batch_size: Option<usize>,
    pub(crate) flush_interval: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    pub(crate) breaker: BreakerPolicy,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) spool_max_bytes: Option<u64>,
}

impl Background {
    /// These settings, with `earlier`'s where these are the defaults: what
    /// `Builder::delivery` keeps of settings given before it by the 0.1
    /// setters.
    pub(crate) fn over(self, earlier: Background) -> Background {
        Background {
            batch_size: self.batch_size.or(earlier.batch_size),
            flush_interval: self.flush_interval.or(earlier.flush_interval),
            retry: if self.retry == RetryPolicy::default() {
                earlier.retry
            } else {
                self.retry
            },
            breaker: if self.breaker == BreakerPolicy::default() {
                earlier.breaker
            } else {
                self.breaker
            },
            spool_dir: self.spool_dir.or(earlier.spool_dir),
            spool_max_bytes: self.spool_max_bytes.or(earlier.spool_max_bytes),
        }
    }

    /// Background delivery with the defaults, and the environment for
    /// what the table above lists.
    pub fn new() -> Self {
        Background::default()
    }

    /// Records per batch; the delivery thread also wakes when this many are
    /// buffered. At least 1.
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = Some(records.max(1));
        self
    }

    /// How often the delivery thread sends what is buffered.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = Some(interval);
        self
    }

    /// How a batch that failed for a reason that may pass is retried.
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
    /// from [`Builder::try_build`](crate::Builder::try_build).
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
}
