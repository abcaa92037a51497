//! Issue 19: a user-defined output gets what the HTTP output gets. One table
//! of behaviour scenarios, each run over the HTTP output (against the
//! testkit's servers on 127.0.0.1) and over an output defined here with only
//! the public export API (a scripted exporter), asserting the same outcome:
//!
//! | row | scenario |
//! | --- | --- |
//! | `transient_failures_are_retried_then_delivered` | (a) retries with backoff, then delivery |
//! | `retry_after_is_honoured` | (b) the next try waits for `Retry-After` |
//! | `refused_for_good_is_set_aside_and_not_retried` | (c) `rejected/` with the reason; dropped and rejected |
//! | `partly_accepted_is_counted` | (d) delivered n-k, rejected k (HTTP side: OTLP's `partialSuccess`) |
//! | `the_spool_is_replayed_after_a_restart` | (e) a second logger on the same spool delivers it |
//! | `the_breaker_opens_after_consecutive_failures` | (f) the output is left alone while it is open |
//!
//! Each scenario is one generic function over [`Subject`]: how to make the
//! output and script its answers.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use aitrace_core::export::{Accepted, Batch, Export, Input};
use aitrace_core::{
    Background, BreakerPolicy, BufferedLogger, Builder, Error, Output, RetryPolicy, Stats,
};
use aitrace_testkit::{Fault, FaultServer};

/// Every wait's bound; a pass takes a small part of it.
const WAIT: Duration = Duration::from_secs(20);

/// What the receiver answers to one try.
#[derive(Clone, Debug)]
enum Answer {
    Ok,
    /// A failure that may pass (HTTP 503).
    Transient,
    /// A failure that may pass, asking for the next try no sooner than this.
    RetryAfter(Duration),
    /// Refused for good (HTTP 403), with this reason.
    Refused(&'static str),
    /// Took the batch but refused this many records, with this reason.
    Partly(usize, &'static str),
}

/// An output and the receiver behind it, as a scenario drives them.
trait Subject {
    /// A new output to the receiver: called again for a restarted process.
    fn output(&self) -> Output;
    /// Answers the next tries as listed, then as the default.
    fn script(&self, answers: Vec<Answer>);
    /// While failing, every try is answered [`Answer::Transient`] once the
    /// script is used up.
    fn fail_all(&self, failing: bool);
    /// When each try reached the receiver, in order.
    fn tries(&self) -> Vec<Instant>;
    /// Records the receiver took (duplicates included).
    fn received(&self) -> usize;
    /// Waits until the receiver took at least `n` records, at most `timeout`.
    fn wait_received(&self, n: usize, timeout: Duration) -> bool;
    /// The delay the receiver can really ask for, given the one wanted
    /// (HTTP's `Retry-After` counts whole seconds).
    fn retry_after(&self, wanted: Duration) -> Duration {
        wanted
    }
    /// What the reason for a [`Answer::Refused`] says.
    fn refusal(&self, reason: &'static str) -> String {
        reason.to_owned()
    }
}

// ---- the user-defined output -------------------------------------------

/// What the scripted exporter and the test share: kept in an `Arc`, so two
/// exporters (a process and its restart) answer from one script and count
/// into one place.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    script: VecDeque<Answer>,
    failing: bool,
    tries: Vec<Instant>,
    lines: Vec<String>,
}

/// An exporter written as a user would: only `aitrace_core::export` and
/// `Error`'s public constructors.
struct Scripted(Arc<Shared>);

impl Export for Scripted {
    fn name(&self) -> String {
        "scripted".to_owned()
    }

    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn input(&self) -> Input {
        Input::Lines
    }

    fn export(&self, batch: &Batch<'_>) -> Result<Accepted, Error> {
        let mut state = self.0.state.lock().unwrap();
        state.tries.push(Instant::now());
        let answer = state.script.pop_front().unwrap_or(if state.failing {
            Answer::Transient
        } else {
            Answer::Ok
        });
        let take = |state: &mut State| {
            let lines = std::str::from_utf8(batch.lines()).unwrap();
            state.lines.extend(lines.lines().map(str::to_owned));
            self.0.changed.notify_all();
        };
        match answer {
            Answer::Ok => {
                take(&mut state);
                Ok(Accepted::all())
            }
            Answer::Transient => Err(Error::retry_later("scripted: unavailable")),
            Answer::RetryAfter(delay) => Err(Error::retry_later("scripted: busy").after(delay)),
            Answer::Refused(reason) => Err(Error::refused(reason)),
            Answer::Partly(rejected, reason) => {
                take(&mut state);
                Ok(Accepted::partly(rejected, reason))
            }
        }
    }
}

struct Custom(Arc<Shared>);

fn custom() -> Custom {
    Custom(Arc::default())
}

impl Subject for Custom {
    fn output(&self) -> Output {
        Output::new(Scripted(self.0.clone()))
    }

    fn script(&self, answers: Vec<Answer>) {
        self.0.state.lock().unwrap().script.extend(answers);
    }

    fn fail_all(&self, failing: bool) {
        self.0.state.lock().unwrap().failing = failing;
    }

    fn tries(&self) -> Vec<Instant> {
        self.0.state.lock().unwrap().tries.clone()
    }

    fn received(&self) -> usize {
        self.0.state.lock().unwrap().lines.len()
    }

    fn wait_received(&self, n: usize, timeout: Duration) -> bool {
        let state = self.0.state.lock().unwrap();
        let (state, _) = self
            .0
            .changed
            .wait_timeout_while(state, timeout, |s| s.lines.len() < n)
            .unwrap();
        state.lines.len() >= n
    }
}

// ---- the HTTP ingest output against the fault server -------------------

struct Http(FaultServer);

fn http() -> Http {
    Http(FaultServer::start())
}

impl Subject for Http {
    fn output(&self) -> Output {
        Output::http_builder(&self.0.url)
            .connect_timeout(Duration::from_millis(500))
            .request_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    fn script(&self, answers: Vec<Answer>) {
        self.0
            .script(answers.into_iter().map(|answer| match answer {
                Answer::Ok => Fault::Ok,
                Answer::Transient => Fault::Status(503),
                Answer::RetryAfter(delay) => {
                    Fault::RetryAfter(503, whole_seconds(delay).to_string())
                }
                Answer::Refused(_) => Fault::Status(403),
                Answer::Partly(..) => unreachable!("the ingest endpoint has no partial answer"),
            }));
    }

    fn fail_all(&self, failing: bool) {
        self.0.set_default(if failing {
            Fault::Status(503)
        } else {
            Fault::Ok
        });
    }

    fn tries(&self) -> Vec<Instant> {
        self.0.request_times()
    }

    fn received(&self) -> usize {
        self.0.records().len()
    }

    fn wait_received(&self, n: usize, timeout: Duration) -> bool {
        self.0.wait_for(timeout, |records| records.len() >= n)
    }

    fn retry_after(&self, wanted: Duration) -> Duration {
        Duration::from_secs(whole_seconds(wanted))
    }

    fn refusal(&self, _: &'static str) -> String {
        "HTTP 403".to_owned()
    }
}

fn whole_seconds(delay: Duration) -> u64 {
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
}

// ---- the OTLP output, for the partial answer the ingest endpoint lacks --

#[cfg(feature = "otlp")]
mod otlp {
    use super::*;
    use aitrace_testkit::{OtlpAnswer, OtlpReceiver};

    pub(super) struct Otlp(OtlpReceiver);

    pub(super) fn otlp() -> Otlp {
        Otlp(OtlpReceiver::start())
    }

    impl Subject for Otlp {
        fn output(&self) -> Output {
            let exporter = Output::otlp_builder()
                .endpoint(&self.0.endpoint)
                .request_timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            Output::new(exporter)
        }

        fn script(&self, answers: Vec<Answer>) {
            let status = |status, retry_after| OtlpAnswer::Status {
                status,
                retry_after,
                body: Vec::new(),
                content_type: "application/x-protobuf".to_owned(),
            };
            self.0
                .script(answers.into_iter().map(|answer| match answer {
                    Answer::Ok => OtlpAnswer::Ok,
                    Answer::Transient => status(503, None),
                    Answer::RetryAfter(delay) => status(503, Some(whole_seconds(delay))),
                    Answer::Refused(reason) => OtlpAnswer::rpc_status(403, reason),
                    Answer::Partly(rejected, reason) => {
                        OtlpAnswer::Partial(rejected as i64, reason.to_owned())
                    }
                }));
        }

        fn fail_all(&self, failing: bool) {
            self.0.set_down(failing);
        }

        fn tries(&self) -> Vec<Instant> {
            self.0.requests().iter().map(|r| r.at).collect()
        }

        fn received(&self) -> usize {
            self.0.log_records().len()
        }

        fn wait_received(&self, n: usize, timeout: Duration) -> bool {
            self.0.wait_for(timeout, |rx| rx.log_records().len() >= n)
        }

        fn retry_after(&self, wanted: Duration) -> Duration {
            Duration::from_secs(whole_seconds(wanted))
        }
    }
}
#[cfg(feature = "otlp")]
use otlp::otlp;

// ---- helpers -------------------------------------------------------------

/// Background delivery as the scenarios want it: batches cut by a flush,
/// quick retries, a breaker that needs two failed batches in a row.
fn settings() -> Background {
    Background::new()
        .batch_size(50)
        .flush_interval(Duration::from_secs(3600))
        .retry(
            RetryPolicy::default()
                .max_attempts(4)
                .initial_backoff(Duration::from_millis(5))
                .max_backoff(Duration::from_millis(20)),
        )
        .breaker(
            BreakerPolicy::default()
                .failure_threshold(2)
                .cooldown(Duration::from_millis(50)),
        )
}

/// A logger delivering to `output` with `settings`.
fn background(output: Output, settings: Background) -> Builder {
    BufferedLogger::builder()
        .output(output)
        .delivery(settings)
        .flush_timeout(WAIT)
        .shutdown_timeout(Duration::from_secs(5))
        .record_ids(true)
}

/// `n` plain events (no spans: an OTLP batch is then one logs request).
fn emit(log: &BufferedLogger, n: usize) {
    for i in 0..n {
        log.info("work").field("i", i).emit();
    }
}

/// Waits until `cond` holds for the logger's stats, at most [`WAIT`].
fn wait_stats(log: &BufferedLogger, cond: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = log.stats();
        if cond(&stats) || Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The one output folder under a spool root.
fn output_dir(spool: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

// ---- the scenarios, one generic function per row -----------------------

mod scenario {
    use super::*;

    /// (a) Transient failures are retried with backoff, then delivered.
    pub(super) fn transient_failures_are_retried_then_delivered(s: &impl Subject) {
        s.script(vec![Answer::Transient, Answer::Transient]);
        let log = background(s.output(), settings()).try_build().unwrap();
        emit(&log, 5);
        let report = log.flush().unwrap();
        let delivery = &report.deliveries()[0];
        assert_eq!(
            (delivery.records(), delivery.dropped(), delivery.spooled()),
            (5, 0, 0),
            "{report:?}"
        );
        assert_eq!(s.received(), 5);
        assert_eq!(s.tries().len(), 3, "two failures, then the delivery");
        let stats = log.stats();
        assert!(stats.retried >= 2, "{stats:?}");
        assert_eq!((stats.delivered, stats.dropped), (5, 0), "{stats:?}");
        assert!(stats.is_balanced(), "{stats:?}");
        assert!(!stats.outputs[0].breaker_open, "{stats:?}");
    }

    /// (b) A Retry-After is honoured: the second try is no sooner than it.
    pub(super) fn retry_after_is_honoured(s: &impl Subject) {
        let delay = s.retry_after(Duration::from_millis(300));
        s.script(vec![Answer::RetryAfter(Duration::from_millis(300))]);
        let log = background(s.output(), settings()).try_build().unwrap();
        emit(&log, 3);
        let report = log.flush().unwrap();
        assert_eq!(report.deliveries()[0].records(), 3, "{report:?}");
        let tries = s.tries();
        assert_eq!(tries.len(), 2, "one refusal, then the delivery");
        let waited = tries[1] - tries[0];
        assert!(waited >= delay, "waited {waited:?}, asked for {delay:?}");
        assert_eq!(log.stats().retried, 1);
        assert_eq!(s.received(), 3);
    }

    /// (c) Refused for good: set aside in `rejected/` with the reason,
    /// counted dropped and rejected, not retried.
    pub(super) fn refused_for_good_is_set_aside_and_not_retried(s: &impl Subject) {
        let spool = tempfile::tempdir().unwrap();
        s.script(vec![Answer::Refused("no such table: logs")]);
        let log = background(s.output(), settings().spool_dir(spool.path()))
            .try_build()
            .unwrap();
        emit(&log, 7);
        let report = log.flush().unwrap();
        let delivery = &report.deliveries()[0];
        assert_eq!(
            (delivery.records(), delivery.dropped(), delivery.rejected()),
            (0, 7, 7),
            "{report:?}"
        );
        assert_eq!(s.tries().len(), 1, "not retried");
        let stats = log.stats();
        assert_eq!(
            (
                stats.delivered,
                stats.dropped,
                stats.rejected,
                stats.retried
            ),
            (0, 7, 7, 0),
            "{stats:?}"
        );
        let reason = s.refusal("no such table: logs");
        assert!(
            stats.outputs[0]
                .last_rejection
                .as_deref()
                .is_some_and(|r| r.contains(&reason)),
            "{stats:?}"
        );
        let rejected = output_dir(spool.path()).join("rejected");
        let files: Vec<PathBuf> = std::fs::read_dir(&rejected)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let kept: usize = files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
            .sum();
        assert_eq!(kept, 7, "{files:?}");
        let why = files
            .iter()
            .find(|p| p.extension().is_some_and(|x| x == "reason"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .unwrap_or_else(|| panic!("no reason in {files:?}"));
        assert!(why.contains(&reason), "{why}");
        // The output is not given up on: the next batch goes through.
        emit(&log, 3);
        log.flush().unwrap();
        assert_eq!(s.received(), 3);
        assert!(log.stats().is_balanced());
    }

    /// (d) Partly accepted: delivered n-k, rejected k, with the reason.
    pub(super) fn partly_accepted_is_counted(s: &impl Subject) {
        s.script(vec![Answer::Partly(2, "2 records too old")]);
        let log = background(s.output(), settings()).try_build().unwrap();
        emit(&log, 10);
        let report = log.flush().unwrap();
        let delivery = &report.deliveries()[0];
        assert_eq!(
            (delivery.records(), delivery.rejected(), delivery.dropped()),
            (8, 2, 2),
            "{report:?}"
        );
        assert!(report.to_string().contains("2 records too old"), "{report}");
        let stats = log.stats();
        assert_eq!(
            (
                stats.delivered,
                stats.rejected,
                stats.dropped,
                stats.retried
            ),
            (8, 2, 2, 0),
            "{stats:?}"
        );
        assert!(stats.is_balanced(), "{stats:?}");
        assert_eq!(s.tries().len(), 1, "a partial answer is not retried");
    }

    /// (e) Spool replay after a restart: a first logger spools during an
    /// outage and shuts down; a second one on the same spool folder
    /// delivers it once the output answers again.
    pub(super) fn the_spool_is_replayed_after_a_restart(s: &impl Subject) {
        let spool = tempfile::tempdir().unwrap();
        s.fail_all(true);
        {
            let first = background(s.output(), settings().spool_dir(spool.path()))
                .try_build()
                .unwrap();
            emit(&first, 20);
            let report = first.flush().unwrap();
            assert_eq!(report.deliveries()[0].spooled(), 20, "{report:?}");
            first.shutdown(WAIT).unwrap();
            assert_eq!(first.stats().spool_pending, 20);
        }
        assert_eq!(s.received(), 0);

        s.fail_all(false);
        let second = background(s.output(), settings().spool_dir(spool.path()))
            .try_build()
            .unwrap();
        assert!(s.wait_received(20, WAIT), "replayed: {}", s.received());
        let stats = wait_stats(&second, |st| st.spool_pending == 0 && st.replayed == 20);
        assert_eq!((stats.replayed, stats.spool_pending), (20, 0), "{stats:?}");
        second.shutdown(WAIT).unwrap();
        assert_eq!(s.received(), 20, "each record once");
    }

    /// (f) The breaker opens after consecutive failed batches: while it is
    /// open the output is not called, and batches are spooled; once it
    /// answers again, the probe closes it and the spool is delivered.
    pub(super) fn the_breaker_opens_after_consecutive_failures(s: &impl Subject) {
        let spool = tempfile::tempdir().unwrap();
        s.fail_all(true);
        let log = background(
            s.output(),
            settings().spool_dir(spool.path()).breaker(
                BreakerPolicy::default()
                    .failure_threshold(2)
                    .cooldown(Duration::from_secs(2)),
            ),
        )
        .try_build()
        .unwrap();
        for _ in 0..2 {
            emit(&log, 5);
            log.flush().unwrap();
        }
        let stats = log.stats();
        assert!(stats.outputs[0].breaker_open, "{stats:?}");
        let tries = s.tries().len();
        assert!(tries >= 2, "each failed batch was tried: {tries}");

        emit(&log, 5);
        let report = log.flush().unwrap();
        assert_eq!(report.deliveries()[0].spooled(), 5, "{report:?}");
        assert_eq!(s.tries().len(), tries, "not called while open");
        assert_eq!(log.stats().spool_pending, 15);

        s.fail_all(false);
        assert!(s.wait_received(15, WAIT), "delivered: {}", s.received());
        let stats = wait_stats(&log, |st| {
            st.spool_pending == 0 && !st.outputs[0].breaker_open
        });
        assert!(!stats.outputs[0].breaker_open, "{stats:?}");
        assert_eq!((stats.delivered, stats.spool_pending), (15, 0), "{stats:?}");
        assert!(stats.is_balanced(), "{stats:?}");
    }
}

/// The table: each row's scenario run over each subject named.
macro_rules! table {
    ($($row:ident: [$($subject:ident),+ $(,)?];)*) => {$(
        mod $row {
            use super::*;
            $(
                #[test]
                fn $subject() {
                    scenario::$row(&super::$subject());
                }
            )+
        }
    )*};
}

table! {
    transient_failures_are_retried_then_delivered: [custom, http];
    retry_after_is_honoured: [custom, http];
    refused_for_good_is_set_aside_and_not_retried: [custom, http];
    the_spool_is_replayed_after_a_restart: [custom, http];
    the_breaker_opens_after_consecutive_failures: [custom, http];
}

#[cfg(feature = "otlp")]
table! {
    partly_accepted_is_counted: [custom, otlp];
}
