//! [`ShortLock`]: the lock of state held a few loads and stores at a time
//! on every record or span (the buffer's shards, the `tracing` layer's
//! span table).

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// A lock for state that is held for a few loads and stores, on the hot
/// path of every record or span: one atomic instruction to take it and a
/// plain store to release it (a `std` or `parking_lot` mutex spends a
/// second atomic instruction on the release). A waiter yields its core,
/// and every 64th time sleeps 50 µs, so one the scheduler would always run
/// first (a real-time thread beside a preempted holder of normal
/// priority, which yielding never lets run) still lets the holder finish.
///
/// Never hold it while calling code that may take it again (capturing a
/// record, a user's `Debug`): it is not reentrant, and a thread that
/// takes it twice waits for itself.
///
/// ```
/// use aitrace_core::adapter::ShortLock;
///
/// let lock = ShortLock::new(0u64);
/// *lock.lock() += 1;
/// assert_eq!(*lock.lock(), 1);
/// ```
pub struct ShortLock<T>(spin::mutex::SpinMutex<T, YieldThenSleep>);

/// Holds a [`ShortLock`] until it drops.
pub struct ShortGuard<'a, T>(spin::mutex::SpinMutexGuard<'a, T>);

impl<T> ShortLock<T> {
    /// A lock holding `value`.
    pub const fn new(value: T) -> Self {
        ShortLock(spin::mutex::SpinMutex::new(value))
    }

    /// Waits for the lock and takes it.
    #[inline]
    pub fn lock(&self) -> ShortGuard<'_, T> {
        ShortGuard(self.0.lock())
    }
}

impl<T: Default> Default for ShortLock<T> {
    fn default() -> Self {
        ShortLock::new(T::default())
    }
}

impl<T> fmt::Debug for ShortLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShortLock").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for ShortGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShortGuard").finish_non_exhaustive()
    }
}

impl<T> Deref for ShortGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for ShortGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// How a thread waits for a [`ShortLock`] another holds; see there.
struct YieldThenSleep;

impl spin::relax::RelaxStrategy for YieldThenSleep {
    fn relax() {
        thread_local! {
            static WAITS: Cell<u32> = const { Cell::new(0) };
        }
        let waits = WAITS
            .try_with(|waits| {
                let n = waits.get().wrapping_add(1);
                waits.set(n);
                n
            })
            .unwrap_or(0);
        if waits % 64 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_taking_turns_lose_no_update() {
        let lock = ShortLock::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                });
            }
        });
        assert_eq!(*lock.lock(), 40_000);
    }
}
