//! Where the aitrace layers of one registry keep the state of each span:
//! a table keyed by the span's `Id`, shared by those layers.
//!
//! The registry offers each span's extensions for this, but a value put
//! there is boxed (one allocation per span, and its free at close), and
//! each visit costs a lookup of the span (two atomic operations on its
//! reference count) and its extensions' lock (two more). The table is
//! sharded by id and takes one lock per visit (a [`ShortLock`]: one atomic
//! instruction); its maps keep their room, so a steady stream of spans
//! allocates nothing.
//!
//! A registry gives a span's `Id` to no other span while it is open, and the
//! layers remove a span's entry when it closes, so within one registry the
//! `Id` is a key. Layers of different registries never share a table.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use aitrace_core::adapter::{ShortGuard, ShortLock};

/// Shards: enough that threads working on different spans rarely meet.
const SHARDS: usize = 64;

/// Fibonacci hashing's multiplier (2^64 divided by the golden ratio).
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// A span's state by its `Id`, in shards.
pub(crate) struct Table<T> {
    shards: Box<[Shard<T>]>,
}

/// One shard, on cache lines of its own.
#[repr(align(128))]
struct Shard<T>(ShortLock<Map<T>>);

/// A shard's map.
pub(crate) type Map<T> = HashMap<u64, T, BuildHasherDefault<IdHasher>>;

impl<T> Table<T> {
    pub(crate) fn new() -> Self {
        Table {
            shards: (0..SHARDS)
                .map(|_| Shard(ShortLock::new(Map::default())))
                .collect(),
        }
    }

    /// The shard that holds span `id`, locked. Hold it for a few loads and
    /// stores, never while capturing a record or running user code (a
    /// record's hook or a field's `Debug` may emit an event, which visits
    /// the table).
    #[inline]
    pub(crate) fn lock(&self, id: u64) -> ShortGuard<'_, Map<T>> {
        self.shards[(id.wrapping_mul(MIX) >> 58) as usize % SHARDS]
            .0
            .lock()
    }

    /// Runs `f` on span `id`'s state, if the table has it.
    #[inline]
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.lock(id).get_mut(&id).map(f)
    }

    /// How many spans the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }
}

impl<T> fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table").finish_non_exhaustive()
    }
}

/// Hashes a span `Id` (a number already: a slab index and a generation) by
/// one multiplication.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(MIX);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(MIX);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_id_in_every_shard() {
        let table = Table::new();
        for id in 1..=1_000u64 {
            table.lock(id).insert(id, id * 2);
        }
        assert_eq!(table.len(), 1_000);
        for id in 1..=1_000u64 {
            assert_eq!(table.with(id, |v| *v), Some(id * 2));
        }
        assert_eq!(table.with(1_001, |v| *v), None);
        let used = (1..=1_000u64)
            .map(|id| (id.wrapping_mul(MIX) >> 58) as usize)
            .collect::<std::collections::HashSet<_>>();
        assert_eq!(used.len(), SHARDS, "ids spread over every shard");
        for id in 1..=1_000u64 {
            assert_eq!(table.lock(id).remove(&id), Some(id * 2));
        }
        assert_eq!(table.len(), 0);
    }
}
