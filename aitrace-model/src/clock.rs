//! The wall clock records are stamped with, read cheaply, from one source
//! for the whole process.
//!
//! `SystemTime::now()` and its conversion to nanoseconds cost some 35 ns
//! here, a tenth of capturing an event. The CPU's counter (through
//! [`quanta`], which checks that it is invariant and otherwise reads the
//! OS's monotonic clock) costs about 10. The process keeps **one anchor**:
//! a reading of the counter tied to a reading of the system clock. Every
//! stamp, on every thread, is that wall time plus the counter's progress
//! since, so stamps and the durations taken from them agree by
//! construction (a span's `.end` minus its `.start` is its `duration_ms`,
//! see [`duration_ms`](crate::wire::duration_ms)).
//!
//! The anchor moves only when the system clock has moved away from it by
//! more than [`STEP_NANOS`]: an NTP step, a user setting the time, or the
//! counter's calibration error (a few tens of parts per million) adding up.
//! Each thread compares the two at most every [`CHECK_NANOS`], and only
//! from a reading of the system clock taken between two counter readings
//! close together, so a thread preempted between them (the cause of stamps
//! milliseconds away from their durations, when each thread re-anchored
//! itself every 10 ms) never moves the anchor. On one thread stamps never
//! go back: a correction backwards of less than [`HOLD_BACK_NANOS`] is held
//! until time catches up; a larger step back of the system clock is
//! followed, as `SystemTime` would.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// How far the system clock may be from the anchor's time before the
/// anchor moves to it.
pub const STEP_NANOS: u64 = 200_000;
/// How often each thread compares the anchor's time with the system clock.
pub const CHECK_NANOS: u64 = 100_000_000;
/// A correction backwards smaller than this is held on each thread (its
/// stamps stay put until time catches up); a larger one is followed.
pub const HOLD_BACK_NANOS: u64 = 10_000_000;
/// How far apart the two counter readings around a reading of the system
/// clock may be for it to count.
const TIGHT_NANOS: u64 = 2_000;

/// The counter, calibrated once per process when the first logger is built
/// (quanta measures it against the OS clock for 0.5 ms here, and for up to
/// 200 ms where the counter is hard to pin down).
static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();

/// A reading of the counter and the wall time it stands for.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    counter: u64,
    wall: u64,
}

/// The process's anchor, and its generation: threads keep a copy, and
/// take the anchor again when the generation moved (one atomic load per
/// stamp, of a line that is written once per re-anchoring).
static ANCHOR: Mutex<Option<Anchor>> = Mutex::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// A thread's copy of the anchor, the generation it is of, when the thread
/// last compared it with the system clock, and the last stamp it gave.
#[derive(Clone, Copy)]
struct Local {
    anchor: Anchor,
    generation: u64,
    checked: u64,
    last: u64,
}

thread_local! {
    static LOCAL: Cell<Option<Local>> = const { Cell::new(None) };
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

/// Calibrates the counter and sets the anchor now rather than at the first
/// record.
pub fn warm_up() {
    let counter = COUNTER.get_or_init(quanta::Clock::new);
    current_anchor(counter);
}

/// Now, as nanoseconds since the Unix epoch, from the process's one anchor
/// (see the module docs). On one thread it never goes back by less than
/// [`HOLD_BACK_NANOS`].
#[inline]
pub fn now_nanos() -> u64 {
    let counter = COUNTER.get_or_init(quanta::Clock::new);
    let raw = counter.raw();
    LOCAL
        .try_with(|cell| {
            let generation = GENERATION.load(Ordering::Acquire);
            let mut local = match cell.get() {
                Some(local) if local.generation == generation && raw >= local.anchor.counter => {
                    local
                }
                previous => refreshed(counter, previous),
            };
            let mut now = wall_at(counter, local.anchor, raw);
            if now.saturating_sub(local.checked) >= CHECK_NANOS {
                local.checked = now;
                if let Some(anchor) = check(counter, local.anchor) {
                    local.anchor = anchor;
                    local.generation = GENERATION.load(Ordering::Acquire);
                    now = wall_at(counter, anchor, counter.raw());
                }
            }
            if now < local.last && local.last - now < HOLD_BACK_NANOS {
                now = local.last;
            }
            local.last = now;
            cell.set(Some(local));
            now
        })
        .unwrap_or_else(|_| wall_at(counter, current_anchor(counter), counter.raw()))
}

/// The wall time the counter reading `raw` stands for.
#[inline]
fn wall_at(counter: &quanta::Clock, anchor: Anchor, raw: u64) -> u64 {
    if raw <= anchor.counter {
        // Read just before the anchor was taken on another core.
        return anchor.wall;
    }
    anchor
        .wall
        .saturating_add(counter.delta_as_nanos(anchor.counter, raw))
}

/// This thread's copy of the process's anchor, taken anew.
#[cold]
fn refreshed(counter: &quanta::Clock, previous: Option<Local>) -> Local {
    let generation = GENERATION.load(Ordering::Acquire);
    let anchor = current_anchor(counter);
    Local {
        anchor,
        generation,
        checked: previous.map_or_else(|| wall_at(counter, anchor, counter.raw()), |p| p.checked),
        last: previous.map_or(0, |p| p.last),
    }
}

/// The process's anchor, made on the first call.
fn current_anchor(counter: &quanta::Clock) -> Anchor {
    *shared_anchor().get_or_insert_with(|| {
        // The first anchor waits a little for a reading close together,
        // then takes what it gets.
        (0..64)
            .find_map(|_| read_tight(counter))
            .unwrap_or_else(|| read(counter).1)
    })
}

/// The lock on the process's anchor (a `Copy` value no panic can leave
/// half-written, so a poisoned lock is taken as it is).
fn shared_anchor() -> MutexGuard<'static, Option<Anchor>> {
    ANCHOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Compares `anchor` with the system clock; when they are more than
/// [`STEP_NANOS`] apart, moves the process's anchor (unless another thread
/// did meanwhile) and returns the new one. A reading that is not close
/// together changes nothing.
#[cold]
fn check(counter: &quanta::Clock, anchor: Anchor) -> Option<Anchor> {
    let reading = read_tight(counter)?;
    let ours = wall_at(counter, anchor, reading.counter);
    if ours.abs_diff(reading.wall) <= STEP_NANOS {
        return None;
    }
    let mut shared = shared_anchor();
    let current = shared.get_or_insert(reading);
    if current.counter < reading.counter {
        *current = reading;
        GENERATION.fetch_add(1, Ordering::Release);
    }
    Some(*current)
}

/// The system clock read between two readings of the counter and tied to
/// their midpoint, when they are at most [`TIGHT_NANOS`] apart (best of
/// four tries); `None` when the thread was preempted in every try.
fn read_tight(counter: &quanta::Clock) -> Option<Anchor> {
    let mut best = read(counter);
    for _ in 1..4 {
        if best.0 <= TIGHT_NANOS {
            break;
        }
        let next = read(counter);
        if next.0 < best.0 {
            best = next;
        }
    }
    let (spread, anchor) = best;
    (spread <= TIGHT_NANOS).then_some(anchor)
}

/// The system clock read between two readings of the counter, tied to
/// their midpoint, and how far apart they were.
fn read(counter: &quanta::Clock) -> (u64, Anchor) {
    let before = counter.raw();
    let wall = nanos_since_epoch(SystemTime::now());
    let after = counter.raw();
    let midpoint = before + after.saturating_sub(before) / 2;
    let spread = counter.delta_as_nanos(before, after);
    (
        spread,
        Anchor {
            counter: midpoint,
            wall,
        },
    )
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
        // Long enough to cross a few checks.
        while started.elapsed() < std::time::Duration::from_millis(250) {
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
    fn threads_share_one_anchor() {
        now_nanos();
        let here = LOCAL.with(|l| l.get().unwrap().anchor);
        let there = std::thread::spawn(|| {
            now_nanos();
            LOCAL.with(|l| l.get().unwrap().anchor)
        })
        .join()
        .unwrap();
        // The same reading, unless a check moved it between the two.
        let moved =
            LOCAL.with(|l| l.get().unwrap().generation) != GENERATION.load(Ordering::Acquire);
        assert!(
            moved || (here.counter, here.wall) == (there.counter, there.wall),
            "{here:?} here, {there:?} on another thread"
        );
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
