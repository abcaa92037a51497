//! The wall clock records are stamped with, read cheaply, from one source
//! for the whole process.
//!
//! `SystemTime::now()` and its conversion to nanoseconds cost some 35 ns
//! here, a tenth of capturing an event. The CPU's counter (through
//! [`quanta`], which checks that it is invariant and otherwise reads the
//! OS's monotonic clock) costs about 10. The process keeps **one anchor**:
//! a reading of the counter tied to a reading of the system clock, and a
//! rate correction. Every stamp, on every thread, is the anchor's wall time
//! plus the counter's progress since (corrected by the rate), so stamps and
//! the durations taken from them agree by construction (a span's `.end`
//! minus its `.start` is its `duration_ms`, see
//! [`duration_ms`](crate::wire::duration_ms)), and two threads stamping at
//! the same moment get the same time. A thread reads its stamps off a
//! straight line it draws from the anchor in the counter's own ticks (a
//! subtraction, a multiplication and a shift a stamp), and draws it again
//! at each of its checks and when a slew ends.
//!
//! Each thread compares the anchor's time with the system clock at most
//! every [`CHECK_NANOS`] of the counter, from a reading of the system
//! clock taken between two counter readings close together (so a thread
//! preempted between them, the cause of stamps milliseconds away from
//! their durations when each thread re-anchored itself every 10 ms, never
//! moves the anchor):
//!
//! * within [`DEADBAND_NANOS`] of it, nothing changes;
//! * up to [`STEP_NANOS`] away (the counter's calibration drifting a few
//!   parts per million, or a small adjustment of the system clock), the
//!   anchor **slews**: it is re-taken where it stands, so no stamp jumps,
//!   with a rate that closes the gap over [`SLEW_NANOS`] (at most
//!   [`MAX_SLEW_PPM`]); stamps keep moving forward on every thread;
//! * further away (an NTP step, a user setting the time), it **steps** to
//!   the system clock, forward or back. On one thread stamps never go back
//!   by less than [`STEP_NANOS`]: such a correction is held until time
//!   catches up.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// How often each thread compares the anchor's time with the system clock.
pub const CHECK_NANOS: u64 = 100_000_000;
/// How far the anchor's time may be from the system clock with nothing
/// done about it.
pub const DEADBAND_NANOS: u64 = 20_000;
/// How far the anchor's time may be from the system clock and still be
/// corrected by slewing; further away, it steps.
pub const STEP_NANOS: u64 = 10_000_000;
/// How long a slew takes to close the gap it corrects (longer when that
/// would be faster than [`MAX_SLEW_PPM`]).
pub const SLEW_NANOS: u64 = 200_000_000;
/// The fastest slew, in parts per million of the counter's rate: a span
/// timed while the clock slews is off by at most this share.
pub const MAX_SLEW_PPM: u64 = 20_000;
/// How far apart the two counter readings around a reading of the system
/// clock may be for it to count, at the least; where reading the system
/// clock is slower (a hypervisor without a vDSO clock), four times the
/// closest pair seen so far.
const TIGHT_NANOS: u64 = 2_000;

/// A reading of the counter, the wall time it stands for, and the slew
/// applied from there: `rate` (parts per 2^32 of the counter's progress)
/// for the first `span` nanoseconds of it, which adds up to the gap it
/// closes, and nothing after (however long until the next check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Anchor {
    counter: u64,
    wall: u64,
    rate: i64,
    span: u64,
}

/// A thread's copy of the anchor, the generation it is of, when (in the
/// counter's nanoseconds since the anchor) it next compares the anchor
/// with the system clock, the last stamp it gave, and the line its usual
/// stamps are read off.
#[derive(Clone, Copy, Debug)]
struct Local {
    anchor: Anchor,
    generation: u64,
    next_check: u64,
    last: u64,
    line: Line,
}

/// The anchor's time as a straight line in the counter's raw ticks, for
/// a thread's usual stamps: `wall` plus `per_tick` nanoseconds per 2^32
/// ticks past counter reading `origin`, for `len` ticks. While the anchor
/// slews, the line starts at the anchor's reading with the slew folded
/// into its rate, and ends where the slew does; after, it starts there, at
/// the counter's own rate. It ends at the thread's next check. A usual
/// stamp is a subtraction, a multiplication and a shift off it, the same
/// for every thread with the same anchor.
#[derive(Clone, Copy, Debug, Default)]
struct Line {
    origin: u64,
    wall: u64,
    per_tick: u64,
    len: u64,
}

impl Line {
    /// The wall time of counter reading `raw`, when the line holds there.
    #[inline]
    fn at(&self, raw: u64) -> Option<u64> {
        let ticks = raw.wrapping_sub(self.origin);
        (ticks < self.len).then(|| self.time(ticks))
    }

    /// The wall time `ticks` past the origin. Within the line, the product
    /// is at most the nanoseconds to the thread's next check: it fits.
    #[inline]
    fn time(&self, ticks: u64) -> u64 {
        let nanos = (u128::from(ticks) * u128::from(self.per_tick)) >> 32;
        self.wall.saturating_add(nanos as u64)
    }
}

impl Local {
    /// `now` as this thread's next stamp: never back by less than
    /// [`STEP_NANOS`] from its last one.
    #[inline]
    fn give(&mut self, now: u64) -> u64 {
        let now = if now < self.last && self.last - now < STEP_NANOS {
            self.last
        } else {
            now
        };
        self.last = now;
        now
    }
}

/// An atomic on a cache line of its own: read on every stamp, it must not
/// share one with another crate's busy counter.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded(AtomicU64);

/// The process's clock: the counter, the one anchor and its generation
/// (threads keep a copy, and take the anchor again when the generation
/// moved), and the closest pair of counter readings seen around a system
/// clock reading.
struct ProcessClock {
    counter: quanta::Clock,
    /// The counter's nanoseconds per 2^32 of its ticks (never 0).
    per_tick: u64,
    /// Reads the system clock (a fake one in tests).
    system: Box<dyn Fn() -> u64 + Send + Sync>,
    anchor: Mutex<Option<Anchor>>,
    generation: Padded,
    closest: AtomicU64,
}

/// The counter, calibrated once per process when the first logger is built
/// (quanta measures it against the OS clock for 0.5 ms here, and for up to
/// 200 ms where the counter is hard to pin down).
static CLOCK: OnceLock<ProcessClock> = OnceLock::new();

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
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

fn system_now() -> u64 {
    nanos_since_epoch(SystemTime::now())
}

#[inline]
fn process_clock() -> &'static ProcessClock {
    // Read inline on every stamp; made once, out of line.
    match CLOCK.get() {
        Some(clock) => clock,
        None => made_clock(),
    }
}

#[cold]
#[inline(never)]
fn made_clock() -> &'static ProcessClock {
    CLOCK.get_or_init(|| ProcessClock::new(quanta::Clock::new(), Box::new(system_now)))
}

/// Calibrates the counter and sets the anchor now rather than at the first
/// record.
pub fn warm_up() {
    let clock = process_clock();
    clock.shared(&mut clock.lock());
}

/// Now, as nanoseconds since the Unix epoch, from the process's one anchor
/// (see the module docs). On one thread it never goes back by less than
/// [`STEP_NANOS`].
///
/// Not inline: out of this crate, the thread's copy would be reached
/// through a call (a thread-local's address is known only here).
#[inline(never)]
pub fn now_nanos() -> u64 {
    let clock = process_clock();
    // Never borrowed twice (a stamp calls nothing that stamps); were it,
    // the stamp would come from the shared anchor alone.
    LOCAL
        .try_with(|cell| {
            cell.try_borrow_mut()
                .ok()
                .map(|mut local| clock.stamp(&mut local))
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| clock.stamp(&mut None))
}

impl ProcessClock {
    fn new(counter: quanta::Clock, system: Box<dyn Fn() -> u64 + Send + Sync>) -> Self {
        ProcessClock {
            // Never 0 (a counter slower than a tick per 2^32 ns has no
            // calibration that quanta gives): taken as nanoseconds then.
            per_tick: match counter.delta_as_nanos(1, 1 + (1 << 32)) {
                0 => 1 << 32,
                per_tick => per_tick,
            },
            counter,
            system,
            anchor: Mutex::new(None),
            generation: Padded::default(),
            closest: AtomicU64::new(u64::MAX),
        }
    }

    /// A stamp, for the thread whose copy of the anchor `local` is.
    #[inline]
    fn stamp(&self, local: &mut Option<Local>) -> u64 {
        let raw = self.counter.raw();
        let generation = self.generation.0.load(Ordering::Acquire);
        // The usual stamp: the thread's copy is current and its line holds
        // (no check is due and no slew ended). Everything else is out of
        // line, so this path saves few registers and sets up no frame for
        // the rest.
        if let Some(current) = local {
            if let (true, Some(now)) = (current.generation == generation, current.line.at(raw)) {
                return current.give(now);
            }
        }
        self.stamp_slow(local, raw, generation)
    }

    /// [`stamp`](Self::stamp) for a thread with no copy of the anchor, an
    /// old one, or one due for a check or past its slew; draws the
    /// thread's line anew from where it is.
    #[cold]
    #[inline(never)]
    fn stamp_slow(&self, local: &mut Option<Local>, raw: u64, generation: u64) -> u64 {
        // Worked on in place: the thread's copy is not copied out and back.
        let current = match local {
            Some(l) if l.generation == generation => l,
            _ => {
                let fresh = self.refreshed(*local, raw);
                local.insert(fresh)
            }
        };
        // 0 when `raw` was read before the anchor was taken on another core.
        let mut raw = raw;
        let mut since = self.nanos(current.anchor.counter, raw);
        if since >= current.next_check {
            current.next_check = since.saturating_add(CHECK_NANOS);
            if let Some((anchor, generation)) = self.check() {
                raw = self.counter.raw();
                since = self.nanos(anchor.counter, raw);
                current.anchor = anchor;
                current.generation = generation;
                current.next_check = since.saturating_add(CHECK_NANOS);
            }
        }
        current.line = self.line(current.anchor, raw, current.next_check);
        // Off the line, as the usual stamps are; the anchor's own time for
        // a counter read before the anchor was taken (on another core).
        let now = (current.line.at(raw)).unwrap_or(current.anchor.wall);
        current.give(now)
    }

    /// The straight line the anchor's time follows at counter reading
    /// `raw`, until `until` nanoseconds after the anchor: slewing before
    /// the slew's end, at the counter's own rate after it. Which of the
    /// two is decided in ticks, as the line is read, so the line drawn
    /// for a reading holds at that reading.
    fn line(&self, anchor: Anchor, raw: u64, until: u64) -> Line {
        let ticks = |nanos: u64| {
            u64::try_from((u128::from(nanos) << 32) / u128::from(self.per_tick)).unwrap_or(u64::MAX)
        };
        let at = raw.saturating_sub(anchor.counter);
        // Rounded to ticks, `until` may fall on the reading's own tick.
        let end = ticks(until).max(at.saturating_add(1));
        let slew_end = if anchor.rate == 0 {
            0
        } else {
            ticks(anchor.span)
        };
        let slewing = Line {
            origin: anchor.counter,
            wall: anchor.wall,
            per_tick: if anchor.rate == 0 {
                self.per_tick
            } else {
                let slew = (i128::from(self.per_tick) * i128::from(anchor.rate)) >> 32;
                u64::try_from((i128::from(self.per_tick) + slew).max(0)).unwrap_or(u64::MAX)
            },
            len: end.min(slew_end),
        };
        if at < slew_end {
            return slewing;
        }
        // Past the slew, at the counter's own rate, from where the slewing
        // line ends: the two join without a step either way.
        Line {
            origin: anchor.counter.wrapping_add(slew_end),
            wall: slewing.time(slew_end),
            per_tick: self.per_tick,
            len: end - slew_end,
        }
    }

    /// The counter's nanoseconds from reading `start` to reading `end`
    /// (0 when `end` is not after `start`), as the lines count them.
    #[inline]
    fn nanos(&self, start: u64, end: u64) -> u64 {
        let ticks = end.saturating_sub(start);
        u64::try_from((u128::from(ticks) * u128::from(self.per_tick)) >> 32).unwrap_or(u64::MAX)
    }

    /// The wall time the counter reading `raw` stands for, from `anchor`:
    /// off the line for that reading, as every stamp is.
    fn wall_at(&self, anchor: Anchor, raw: u64) -> u64 {
        let until = self.nanos(anchor.counter, raw).saturating_add(CHECK_NANOS);
        (self.line(anchor, raw, until).at(raw)).unwrap_or(anchor.wall)
    }

    /// This thread's copy of the process's anchor, taken anew.
    #[cold]
    fn refreshed(&self, previous: Option<Local>, raw: u64) -> Local {
        // The generation read under the lock: it is the anchor's.
        let mut shared = self.lock();
        let anchor = self.shared(&mut shared);
        let generation = self.generation.0.load(Ordering::Acquire);
        drop(shared);
        // A thread new to the anchor checks it after `CHECK_NANOS` of its own.
        let since = self.nanos(anchor.counter, raw);
        Local {
            anchor,
            generation,
            next_check: since.saturating_add(CHECK_NANOS),
            last: previous.map_or(0, |p| p.last),
            line: Line::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Anchor>> {
        // A `Copy` value no panic can leave half-written: a poisoned lock
        // is taken as it is.
        self.anchor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The process's anchor, made on the first call (waiting a little for a
    /// reading close together, then taking what it gets).
    fn shared(&self, anchor: &mut MutexGuard<'_, Option<Anchor>>) -> Anchor {
        *anchor.get_or_insert_with(|| {
            (0..64)
                .find_map(|_| self.read_tight())
                .unwrap_or_else(|| self.read().1)
        })
    }

    /// Compares the process's anchor with the system clock and corrects it
    /// as the module docs say; returns the new anchor and its generation
    /// when it moved. A reading that is not close together changes nothing.
    #[cold]
    fn check(&self) -> Option<(Anchor, u64)> {
        let reading = self.read_tight()?;
        let mut shared = self.lock();
        let anchor = match *shared {
            Some(anchor) => anchor,
            None => {
                *shared = Some(reading);
                return Some((reading, self.bump()));
            }
        };
        let ours = self.wall_at(anchor, reading.counter);
        let gap = i128::from(reading.wall) - i128::from(ours);
        let next = if gap.unsigned_abs() > u128::from(STEP_NANOS) {
            reading // a step: the system clock's time, forward or back
        } else if gap.unsigned_abs() > u128::from(DEADBAND_NANOS) {
            // A slew: re-taken where it stands (no jump), closing the gap
            // over `SLEW_NANOS`, or longer at the fastest rate allowed.
            let span = SLEW_NANOS.max(
                u64::try_from(gap.unsigned_abs() * 1_000_000 / u128::from(MAX_SLEW_PPM))
                    .unwrap_or(u64::MAX),
            );
            let rate = i64::try_from((gap << 32) / i128::from(span)).unwrap_or(0);
            Anchor {
                counter: reading.counter,
                wall: ours,
                rate,
                span,
            }
        } else {
            return None;
        };
        if next.counter <= anchor.counter {
            return None; // another thread moved it with a later reading
        }
        *shared = Some(next);
        Some((next, self.bump()))
    }

    /// Moves the generation on; called with the anchor's lock held.
    fn bump(&self) -> u64 {
        self.generation.0.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The system clock read between two readings of the counter and tied
    /// to their midpoint, when they are close together (best of four
    /// tries); `None` when the thread was preempted in every try.
    fn read_tight(&self) -> Option<Anchor> {
        let mut best = self.read();
        for _ in 1..4 {
            if best.0 <= TIGHT_NANOS {
                break;
            }
            let next = self.read();
            if next.0 < best.0 {
                best = next;
            }
        }
        let (spread, anchor) = best;
        let closest = self
            .closest
            .fetch_min(spread, Ordering::Relaxed)
            .min(spread);
        (spread <= TIGHT_NANOS.max(closest.saturating_mul(4))).then_some(anchor)
    }

    /// The system clock read between two readings of the counter, tied to
    /// their midpoint, and how far apart they were.
    fn read(&self) -> (u64, Anchor) {
        let before = self.counter.raw();
        let wall = (self.system)();
        let after = self.counter.raw();
        let midpoint = before + after.saturating_sub(before) / 2;
        let spread = self.nanos(before, after);
        (
            spread,
            Anchor {
                counter: midpoint,
                wall,
                rate: 0,
                span: 0,
            },
        )
    }
}

#[cfg(test)]
mod tests;
