//! Instants computed from durations a user may set to anything.

use std::time::{Duration, Instant};

/// About a century: what "wait forever" becomes.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, saturating at about a century from now instead of panicking
/// (`Duration::MAX` is a natural way to say "wait forever").
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FOREVER)).unwrap_or(now)
}

/// `later(Instant::now(), d)`.
pub(crate) fn from_now(d: Duration) -> Instant {
    later(Instant::now(), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now + Duration::from_secs(3600));
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
