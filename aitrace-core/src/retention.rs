//! Retention by outcome: a trace's verbose records are held until its
//! local root span ends, then shipped whole if the trace failed, was slow
//! or is sampled, and discarded otherwise.
//!
//! Records at or above the *ship level* flow as they always do. Events
//! below it that belong to a trace followed here (the trace of a span
//! opened in this process) are held in memory, per trace. A trace's *local
//! roots* are its spans whose parent is not a span of this process (no
//! parent, or a remote one from a `traceparent`); when the last open local
//! root ends, the trace is decided, with hindsight:
//!
//! * the trace **failed** (a span ended in error, a panic unwound through
//!   one, or an `error` record was logged in it), or it was **slow** (the
//!   root took at least the [latency threshold](Retention::latency)), or it
//!   is **sampled** (its trace id falls in the [kept ratio](Retention::keep_ratio),
//!   or, [parent-based](Retention::parent_based), an upstream sent it with
//!   the W3C `sampled` flag): every held record ships, in order, with its
//!   original timestamps, and the root's `.end` record says why in an
//!   `aitrace.retention` field (`failed`, `slow` or `sampled`);
//! * otherwise the held records are discarded and counted as
//!   [sampled out](crate::delivery::Stats::sampled_out): a decision the
//!   user configured, never reported as loss.
//!
//! The decision is remembered for the trace's later records (a task that
//! outlives its request follows it; up to 1,024 decided traces per lock,
//! 16 locks). Span lifecycle records (`.start`/`.end`) are never held, so
//! the span tree on the wire stays whole, whatever is discarded.
//!
//! Held records count against a [memory bound](Retention::max_bytes) of
//! their own; past it, the oldest trace's held records are let go at once
//! ([`Retention::on_evict`]: discarded, counted as dropped and evicted, or
//! shipped), and the trace stays undecided: its later records are held, and
//! a later failure ships them. A root that never ends (a long-running task)
//! is decided window by window: once [`Retention::max_hold`] has passed,
//! the first record captured after it (there is no timer thread; the
//! records' own timestamps are the clock) decides what is held as if the
//! root ended then, and a new hold begins. At shutdown every trace still
//! held is decided: a failed one ships, the others as
//! [`Retention::at_shutdown`] says. Records outside any span are never
//! held.
//!
//! The `traceparent` this service sends still says `sampled` (it records
//! the trace's spans, and that is what W3C's flag means), or passes on an
//! upstream's flag; with [`Retention::head_sampling`], it says `sampled`
//! only when the trace id is in the kept ratio, for services downstream
//! that run retention parent-based.
//!
//! ```
//! use std::time::Duration;
//! use aitrace_core::retention::Retention;
//! use aitrace_core::{BufferedLogger, Level};
//!
//! let log = BufferedLogger::builder()
//!     .target("-")?
//!     .min_level(Level::Debug) // capture debug ...
//!     .retention(
//!         Retention::new()
//!             .ship_level(Level::Info) // ... ship it only with a failed, slow or sampled trace
//!             .latency(Duration::from_millis(500))
//!             .keep_ratio(0.01),
//!     )
//!     .build();
//! log.span("handle_request").in_scope(|_| {
//!     log.debug("cache_miss").field("key", "u2").emit(); // held
//!     log.info("done").emit(); // ships now
//! }); // the root ended well: `cache_miss` is discarded, unless sampled
//! # Ok::<(), aitrace_core::ConfigError>(())
//! ```
//!
//! | setting | default | environment (read when code did not set it) |
//! |---|---|---|
//! | [`ship_level`](Retention::ship_level) | [`DEFAULT_SHIP_LEVEL`] (`info`) | `AITRACE_SHIP_LEVEL` (setting it turns retention on) |
//! | [`latency`](Retention::latency) | none | `AITRACE_RETENTION_LATENCY_MS` |
//! | [`keep_ratio`](Retention::keep_ratio) | 0 | `OTEL_TRACES_SAMPLER=traceidratio` or `parentbased_traceidratio` with `OTEL_TRACES_SAMPLER_ARG` |
//! | [`parent_based`](Retention::parent_based) | `true` | `false` with `OTEL_TRACES_SAMPLER=traceidratio` |
//! | [`head_sampling`](Retention::head_sampling) | `false` | |
//! | [`max_bytes`](Retention::max_bytes) | [`DEFAULT_MAX_HELD_BYTES`] | `AITRACE_RETENTION_MAX_BYTES` |
//! | [`max_hold`](Retention::max_hold) | [`DEFAULT_MAX_HOLD`] | |
//! | [`on_evict`](Retention::on_evict) | [`Decision::Discard`] | |
//! | [`at_shutdown`](Retention::at_shutdown) | [`Decision::Ship`] | |

use std::time::Duration;

use crate::level::Level;

mod holder;

pub(crate) use holder::Holder;

/// The ship level, by default: `info` and above flow as always.
pub const DEFAULT_SHIP_LEVEL: Level = Level::Info;
/// How many bytes held records may take, by default (64 MiB).
pub const DEFAULT_MAX_HELD_BYTES: usize = 64 << 20;
/// How long a trace whose root never ends is held before it is decided.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(60);

/// The environment variable that names the ship level and turns retention
/// on when code did not choose.
pub const SHIP_LEVEL_ENV: &str = "AITRACE_SHIP_LEVEL";
/// The environment variable for [`Retention::latency`], in milliseconds.
pub const LATENCY_ENV: &str = "AITRACE_RETENTION_LATENCY_MS";
/// The environment variable for [`Retention::max_bytes`].
pub const MAX_BYTES_ENV: &str = "AITRACE_RETENTION_MAX_BYTES";
/// OpenTelemetry's sampler variable: `traceidratio` or
/// `parentbased_traceidratio` sets [`Retention::keep_ratio`] from
/// [`SAMPLER_ARG_ENV`].
pub const SAMPLER_ENV: &str = "OTEL_TRACES_SAMPLER";
/// OpenTelemetry's sampler argument: the ratio, from 0 to 1.
pub const SAMPLER_ARG_ENV: &str = "OTEL_TRACES_SAMPLER_ARG";

/// What becomes of held records decided without their root's end (at
/// eviction, at shutdown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Decision {
    /// They ship.
    #[default]
    Ship,
    /// They are discarded and counted.
    Discard,
}

/// Why a trace's held records shipped, as the root's `.end` record says in
/// its `aitrace.retention` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kept {
    /// A span ended in error, or an `error` record was logged.
    Failed,
    /// The root took at least the latency threshold.
    Slow,
    /// The trace id is in the kept ratio, or an upstream sampled it.
    Sampled,
}

impl Kept {
    /// The word the `aitrace.retention` field holds.
    pub fn as_str(self) -> &'static str {
        match self {
            Kept::Failed => "failed",
            Kept::Slow => "slow",
            Kept::Sampled => "sampled",
        }
    }
}

/// The field a kept trace's root `.end` record carries: why it was kept
/// (defined with the wire format's other names).
pub use crate::wire::RETENTION_FIELD;

/// Settings of retention by outcome; see the [module docs](self).
#[derive(Clone, Debug)]
#[must_use = "give it to `Builder::retention`"]
pub struct Retention {
    pub(crate) ship_level: Option<Level>,
    pub(crate) latency: Option<Duration>,
    pub(crate) keep_ratio: Option<f64>,
    pub(crate) max_bytes: Option<usize>,
    pub(crate) max_hold: Duration,
    pub(crate) on_evict: Decision,
    pub(crate) at_shutdown: Decision,
    pub(crate) parent_based: Option<bool>,
    pub(crate) head_sampling: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            ship_level: None,
            latency: None,
            keep_ratio: None,
            max_bytes: None,
            max_hold: DEFAULT_MAX_HOLD,
            on_evict: Decision::Discard,
            at_shutdown: Decision::Ship,
            parent_based: None,
            head_sampling: false,
        }
    }
}

impl Retention {
    /// Retention with the defaults, and the environment for what the table
    /// in the [module docs](self) lists.
    pub fn new() -> Self {
        Retention::default()
    }

    /// Records below this level are held with their trace (default
    /// [`DEFAULT_SHIP_LEVEL`]). The logger's own level still decides what
    /// is captured at all: set it lower (`debug`) for there to be
    /// something to hold.
    pub fn ship_level(mut self, level: Level) -> Self {
        self.ship_level = Some(level);
        self
    }

    /// A trace whose root span takes at least this long ships whole.
    pub fn latency(mut self, threshold: Duration) -> Self {
        self.latency = Some(threshold);
        self
    }

    /// The share of successful traces kept whole, from 0 to 1, decided by
    /// trace id (its last 8 bytes: every aitrace service keeps the same
    /// ids; an OpenTelemetry SDK's ratio sampler may pick another set). A
    /// value outside 0 to 1 is clamped; `NaN` is 0.
    pub fn keep_ratio(mut self, ratio: f64) -> Self {
        self.keep_ratio = Some(ratio);
        self
    }

    /// The most memory held records may take, in bytes (their
    /// `Record::memory_size`); past it the oldest trace is decided at once.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Whether an upstream's W3C `sampled` flag decides a successful
    /// trace, instead of the kept ratio (default `true`, as OpenTelemetry's
    /// `parentbased_traceidratio`; `OTEL_TRACES_SAMPLER=traceidratio` turns
    /// it off). A failed or slow trace ships either way.
    pub fn parent_based(mut self, on: bool) -> Self {
        self.parent_based = Some(on);
        self
    }

    /// Whether the `traceparent` sent for a trace started here says
    /// `sampled` only when its id is in the kept ratio (default `false`:
    /// it says `sampled`, since this service records the trace's spans,
    /// and W3C's flag means "may have recorded"). Turn it on when the
    /// services downstream run aitrace retention parent-based, so that they
    /// keep the same traces whole. It is process-wide: the last logger
    /// built with it sets it, and unsets it when dropped.
    pub fn head_sampling(mut self, on: bool) -> Self {
        self.head_sampling = on;
        self
    }

    /// How long a trace is held when its root does not end.
    pub fn max_hold(mut self, hold: Duration) -> Self {
        self.max_hold = hold;
        self
    }

    /// What becomes of the oldest trace's held records when the memory
    /// bound is reached: [`Decision::Discard`] (the default; counted as
    /// dropped and evicted) or [`Decision::Ship`]. The trace stays
    /// undecided either way.
    pub fn on_evict(mut self, decision: Decision) -> Self {
        self.on_evict = decision;
        self
    }

    /// What becomes of the traces still held at shutdown that did not
    /// fail (a failed one ships): [`Decision::Ship`] (the default) or
    /// [`Decision::Discard`] (counted as sampled out).
    pub fn at_shutdown(mut self, decision: Decision) -> Self {
        self.at_shutdown = decision;
        self
    }

    /// Retention from the environment alone, when `AITRACE_SHIP_LEVEL` is
    /// set (an unreadable level is said on stderr and the default ship
    /// level used; see [`resolve`](Self::resolve)).
    pub(crate) fn from_env() -> Option<Retention> {
        std::env::var_os(SHIP_LEVEL_ENV)?;
        Some(Retention::new())
    }

    /// The settings resolved: code, then the environment, then defaults.
    pub(crate) fn resolve(&self) -> Resolved {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let say = |name: &str, value: &str, why: &str| {
            aitrace_model::diagnostics::say_once(name, || {
                format!("{name}={value:?}: {why}; ignored")
            });
        };
        let ship_level = self.ship_level.unwrap_or_else(|| {
            env(SHIP_LEVEL_ENV)
                .and_then(|v| match v.trim().parse::<Level>() {
                    Ok(level) => Some(level),
                    Err(e) => {
                        say(SHIP_LEVEL_ENV, &v, &e.to_string());
                        None
                    }
                })
                .unwrap_or(DEFAULT_SHIP_LEVEL)
        });
        let latency = self.latency.or_else(|| {
            let v = env(LATENCY_ENV)?;
            match v.trim().parse::<u64>() {
                Ok(ms) => Some(Duration::from_millis(ms)),
                Err(_) => {
                    say(LATENCY_ENV, &v, "expected milliseconds");
                    None
                }
            }
        });
        // OpenTelemetry's samplers: `traceidratio` ignores the parent's
        // flag, `parentbased_traceidratio` honours it.
        let sampler = env(SAMPLER_ENV).map(|v| v.trim().to_ascii_lowercase());
        let ratio_sampler = matches!(
            sampler.as_deref(),
            Some("traceidratio" | "parentbased_traceidratio")
        );
        let keep_ratio = self
            .keep_ratio
            .or_else(|| {
                if !ratio_sampler {
                    return None;
                }
                let v = env(SAMPLER_ARG_ENV).unwrap_or_else(|| "1".to_owned());
                match v.trim().parse::<f64>() {
                    Ok(ratio) => Some(ratio),
                    Err(_) => {
                        say(SAMPLER_ARG_ENV, &v, "expected a ratio from 0 to 1");
                        None
                    }
                }
            })
            .unwrap_or(0.0);
        let parent_based = self
            .parent_based
            .unwrap_or(sampler.as_deref() != Some("traceidratio"));
        let max_bytes = self.max_bytes.or_else(|| {
            let v = env(MAX_BYTES_ENV)?;
            match v.trim().parse::<usize>() {
                Ok(n) => Some(n),
                Err(_) => {
                    say(MAX_BYTES_ENV, &v, "expected a number of bytes");
                    None
                }
            }
        });
        Resolved {
            ship_level,
            latency,
            keep_below: ratio_threshold(keep_ratio),
            max_bytes: max_bytes.unwrap_or(DEFAULT_MAX_HELD_BYTES),
            max_hold: self.max_hold,
            on_evict: self.on_evict,
            at_shutdown: self.at_shutdown,
            parent_based,
            head_sampling: self.head_sampling,
        }
    }
}

/// Retention's settings, resolved.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) ship_level: Level,
    pub(crate) latency: Option<Duration>,
    /// A trace is sampled when its id's last 8 bytes, as a number, are
    /// below this (`u64::MAX` with a ratio of 1 keeps all but one id in
    /// 2^64, which is all of them in practice).
    pub(crate) keep_below: u64,
    pub(crate) max_bytes: usize,
    pub(crate) max_hold: Duration,
    pub(crate) on_evict: Decision,
    pub(crate) at_shutdown: Decision,
    pub(crate) parent_based: bool,
    pub(crate) head_sampling: bool,
}

/// The threshold of a ratio: ids whose last 8 bytes are below it are kept.
fn ratio_threshold(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        0
    } else if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio * u64::MAX as f64) as u64
    }
}
