//! Retries with exponential backoff and jitter, and the circuit breaker.

use std::time::{Duration, Instant};

/// How a background sender retries a batch that failed for a transient
/// reason: a connection error, a timeout, HTTP 408, 429 or 5xx. Other
/// failures (another 4xx) are not retried.
///
/// The wait before retry `n` (from 1) is a random duration in
/// `[0, min(max_backoff, initial_backoff × 2ⁿ⁻¹)]` ("full jitter"), or the
/// server's `Retry-After` when it sent one (capped at ten minutes).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use aitrace_core::delivery::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(3)
///     .initial_backoff(Duration::from_millis(50));
/// assert_eq!(policy.attempts(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// Attempts per batch, by default (the first try included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The first backoff, by default.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest backoff, by default.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt per batch.
    pub fn none() -> Self {
        RetryPolicy::default().max_attempts(1)
    }

    /// Attempts per batch, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff before the first retry.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest backoff.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Attempts per batch.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before retry `retry` (1 for the first retry).
    pub(crate) fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(delay) = retry_after {
            return delay;
        }
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.max_backoff);
        let nanos = u64::try_from(exp.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// When a circuit breaker opens and how long it stays open.
///
/// After `failure_threshold` batches in a row fail (after their retries),
/// the output is not called for `cooldown`; batches go to the spool (or are
/// dropped without one). Then one batch probes it: success closes the
/// breaker, failure opens it again for twice as long, up to `max_cooldown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    failure_threshold: u32,
    cooldown: Duration,
    max_cooldown: Duration,
}

/// Failed batches in a row that open the breaker, by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// The first cool-down, by default. Probing a dead server is cheap, and a
/// short cool-down notices its recovery soon.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(2);

/// The longest cool-down after failed probes, by default.
pub const DEFAULT_MAX_COOLDOWN: Duration = Duration::from_secs(30);

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            cooldown: DEFAULT_COOLDOWN,
            max_cooldown: DEFAULT_MAX_COOLDOWN,
        }
    }
}

impl BreakerPolicy {
    /// Failed batches in a row that open the breaker (at least 1).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures.max(1);
        self
    }

    /// How long the breaker stays open the first time.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self.max_cooldown = self.max_cooldown.max(cooldown);
        self
    }

    /// The longest cool-down after repeated failed probes.
    pub fn max_cooldown(mut self, cooldown: Duration) -> Self {
        self.max_cooldown = cooldown.max(self.cooldown);
        self
    }
}

/// The breaker's state machine: closed → open → (cool-down) → probing.
#[derive(Debug)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    failures: u32,
    open_until: Option<Instant>,
    next_cooldown: Duration,
}

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy) -> Self {
        Breaker {
            policy,
            failures: 0,
            open_until: None,
            next_cooldown: policy.cooldown,
        }
    }

    /// Whether the output may be called now (closed, or a probe is due).
    pub(crate) fn allows(&self, now: Instant) -> bool {
        self.open_until.is_none_or(|until| now >= until)
    }

    /// When an open breaker lets a probe through.
    pub(crate) fn reopens_at(&self) -> Option<Instant> {
        self.open_until
    }

    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.next_cooldown = self.policy.cooldown;
    }

    /// Records a failed batch; true when the breaker opened (again).
    pub(crate) fn failure(&mut self, now: Instant) -> bool {
        self.failures += 1;
        if self.open_until.is_some() || self.failures >= self.policy.failure_threshold {
            self.open_until = Some(crate::deadline::later(now, self.next_cooldown));
            self.next_cooldown =
                (self.next_cooldown.saturating_mul(2)).min(self.policy.max_cooldown);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1));
        for retry in 1..40 {
            let cap = Duration::from_millis(100 * (1u64 << (retry - 1).min(20)))
                .min(Duration::from_secs(1));
            assert!(p.backoff(retry, None) <= cap);
        }
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3, None)).collect();
        assert!(spread.len() > 10, "jittered");
    }

    #[test]
    fn breaker_opens_after_the_threshold_probes_and_backs_off() {
        let policy = BreakerPolicy::default()
            .failure_threshold(2)
            .cooldown(Duration::from_secs(1));
        let mut b = Breaker::new(policy);
        let t0 = Instant::now();
        assert!(!b.failure(t0));
        assert!(b.allows(t0));
        assert!(b.failure(t0));
        assert!(!b.allows(t0 + Duration::from_millis(999)));
        assert!(b.allows(t0 + Duration::from_secs(1)), "probe due");
        // The probe fails: open again, for twice as long.
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.failure(t1));
        assert!(!b.allows(t1 + Duration::from_millis(1999)));
        assert!(b.allows(t1 + Duration::from_secs(2)));
        b.success();
        assert!(b.allows(t1));
        assert!(!b.failure(t1), "the count starts again");
    }
}
