//! The wall clock records are stamped with, read cheaply.
//!
//! `SystemTime::now()` and its conversion to nanoseconds cost some 35 ns
//! here, a tenth of capturing an event. The CPU's counter (through
//! [`quanta`], which checks that it is invariant and otherwise reads the
//! OS's monotonic clock) costs about 10. Each thread anchors the counter to
//! the system clock and reads the system clock again every
//! `RESYNC_NANOS` (10 ms), so the counter's calibration error (a few tens of
//! parts per million) never adds up to more than a fraction of a
//! microsecond, and clock changes (NTP steps, a user setting the time) are
//! seen within that interval, as `SystemTime` would see them.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a thread stamps records from the counter before it reads the
/// system clock again.
const RESYNC_NANOS: u64 = 10_000_000;

/// The counter, calibrated once per process when the first logger is built
/// (quanta measures it against the OS clock for 0.5 ms here, and for up to
/// 200 ms where the counter is hard to pin down).
static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();

/// A thread's reading of the system clock and of the counter at one moment,
/// and the last time it gave.
#[derive(Clone, Copy)]
struct Anchor {
    counter: u64,
    wall: u64,
    last: u64,
}

thread_local! {
    static ANCHOR: Cell<Option<Anchor>> = const { Cell::new(None) };
}

/// A time as nanoseconds since the Unix epoch, clamped to what a `u64` holds
/// (years 1970 to 2554).
pub fn nanos_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.subsec_nanos()))
    })
}

/// Calibrates the counter now rather than at the first record.
pub fn warm_up() {
    COUNTER.get_or_init(quanta::Clock::new);
}

/// Now, as nanoseconds since the Unix epoch. On one thread it never goes
/// back by less than `RESYNC_NANOS` (10 ms) (a re-anchoring's correction is held
/// until time catches up); a larger step back of the system clock is
/// followed.
#[inline]
pub fn now_nanos() -> u64 {
    let counter = COUNTER.get_or_init(quanta::Clock::new);
    let raw = counter.raw();
    ANCHOR
        .try_with(|cell| {
            let previous = cell.get();
            let mut anchor = match previous {
                Some(a)
                    if raw >= a.counter
                        && counter.delta_as_nanos(a.counter, raw) < RESYNC_NANOS =>
                {
                    a
                }
                _ => anchored(counter, previous.map_or(0, |a| a.last)),
            };
            // 0 when the anchor is newer than `raw` (just made): its time.
            let since = counter.delta_as_nanos(anchor.counter, raw);
            let mut now = anchor.wall.saturating_add(since);
            if now < anchor.last && anchor.last - now < RESYNC_NANOS {
                now = anchor.last;
            }
            anchor.last = now;
            cell.set(Some(anchor));
            now
        })
        .unwrap_or_else(|_| nanos_since_epoch(SystemTime::now()))
}

/// A new anchor: the system clock read between two readings of the
/// counter and tied to their midpoint, the closest pair of up to four tries
/// (far apart, the thread was preempted between them, which would put every
/// later stamp ahead by as long); two within 2 µs end the tries.
#[cold]
fn anchored(clock: &quanta::Clock, last: u64) -> Anchor {
    /// How far apart the two counter readings may be.
    const TIGHT_NANOS: u64 = 2_000;
    let read = || {
        let before = clock.raw();
        let wall = nanos_since_epoch(SystemTime::now());
        let after = clock.raw();
        let midpoint = before + after.saturating_sub(before) / 2;
        (clock.delta_as_nanos(before, after), midpoint, wall)
    };
    let mut best = read();
    for _ in 1..4 {
        if best.0 <= TIGHT_NANOS {
            break;
        }
        best = best.min(read());
    }
    let (_, counter, wall) = best;
    Anchor {
        counter,
        wall,
        last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_now() -> u64 {
        nanos_since_epoch(SystemTime::now())
    }

    #[test]
    fn stays_within_a_millisecond_of_the_system_clock_and_never_goes_back() {
        let mut last = 0;
        let started = std::time::Instant::now();
        // Long enough to cross several re-anchorings.
        while started.elapsed() < std::time::Duration::from_millis(60) {
            let before = system_now();
            let now = now_nanos();
            let after = system_now();
            assert!(now >= last, "went back: {last} then {now}");
            assert!(
                now + 1_000_000 >= before && now <= after + 1_000_000,
                "{before} <= {now} <= {after}, to within 1 ms"
            );
            last = now;
        }
    }

    #[test]
    fn times_before_the_epoch_and_far_ahead_are_clamped() {
        assert_eq!(
            nanos_since_epoch(UNIX_EPOCH - std::time::Duration::from_secs(1)),
            0
        );
        let far = UNIX_EPOCH + std::time::Duration::from_secs(u64::MAX / 2);
        assert_eq!(nanos_since_epoch(far), u64::MAX);
    }
}
