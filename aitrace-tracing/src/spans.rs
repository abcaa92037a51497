//! Where the aitrace layers of one registry keep the state of each span:
//! a table keyed by the span's `Id`, shared by those layers.
//!
//! The registry offers each span's extensions for this, but a value put
//! there is boxed (one allocation per span, and its free at close), and
//! each visit costs a lookup of the span (two atomic operations on its
//! reference count) and its extensions' lock (two more). The table is
//! sharded by id and takes one lock per visit (a [`ShortLock`]: one atomic
//! instruction); a closed span's slot is filled by a later span in place,
//! so a steady stream of spans allocates nothing and moves no state in or
//! out of the table.
//!
//! A registry gives a span's `Id` to no other span while it is open, and the
//! layers remove a span's entry when it closes (a layer that is dropped, by
//! `reload`, takes its state of open spans out), so within one registry the
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

/// A shard's spans: their states in slots, found by `Id` through an index.
/// A closed span's slot stays, emptied, for the next span to fill in place:
/// a state (some 190 bytes) is neither moved into the map when its span
/// opens nor out of it when it closes. A shard keeps as many slots as it
/// ever held spans at once.
pub(crate) struct Map<T> {
    index: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    slots: Vec<T>,
    free: Vec<u32>,
}

impl<T> Map<T> {
    fn new() -> Self {
        Map {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Span `id`'s state.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let slot = *self.index.get(&id)?;
        self.slots.get_mut(slot as usize)
    }

    /// A free slot, now span `id`'s, holding what its last span's
    /// [`release`](Self::release) left for the caller to fill; `None` when
    /// there is none (then [`insert`](Self::insert)).
    #[inline]
    pub(crate) fn reuse(&mut self, id: u64) -> Option<&mut T> {
        let slot = self.free.pop()?;
        self.index.insert(id, slot);
        self.slots.get_mut(slot as usize)
    }

    /// Span `id`'s state in a new slot.
    pub(crate) fn insert(&mut self, id: u64, state: T) {
        // A shard holding 2^32 spans at once has other troubles; its
        // index would wrap and find the wrong slots: refuse instead.
        let Ok(slot) = u32::try_from(self.slots.len()) else {
            return;
        };
        self.slots.push(state);
        self.index.insert(id, slot);
    }

    /// Takes span `id` out of the index and frees its slot, whose state the
    /// caller empties for the next span (a slot is not dropped).
    #[inline]
    pub(crate) fn release(&mut self, id: u64) -> Option<&mut T> {
        let slot = self.index.remove(&id)?;
        self.free.push(slot);
        self.slots.get_mut(slot as usize)
    }

    /// How many spans the shard holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.len()
    }
}

impl<T> Table<T> {
    pub(crate) fn new() -> Self {
        Table {
            shards: (0..SHARDS)
                .map(|_| Shard(ShortLock::new(Map::new())))
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
        self.lock(id).get_mut(id).map(f)
    }

    /// Keeps the spans whose state `keep` (which may change it) says to
    /// keep, and frees the others' slots.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&mut T) -> bool) {
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock();
            let Map { index, slots, free } = &mut *shard;
            index.retain(|_, slot| {
                let Some(state) = slots.get_mut(*slot as usize) else {
                    return false;
                };
                let kept = keep(state);
                if !kept {
                    free.push(*slot);
                }
                kept
            });
        }
    }

    /// How many spans the table holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }

    /// How many slots the table keeps (its spans' and free ones).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().slots.len()).sum()
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
        for id in 1..=1_000u64 {
            assert_eq!(table.with(id, |v| *v), Some(id * 2));
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
            assert_eq!(table.lock(id).release(id).copied(), Some(id * 2));
            assert_eq!(table.lock(id).release(id), None, "released once");
        }
        assert_eq!(table.len(), 0);
        // New spans take the freed slots, which hold what the old left,
        // and get new ones where their shard has none free.
        let (mut reused, mut added) = (0, 0);
        for id in 1_001..=2_000u64 {
            let mut shard = table.lock(id);
            match shard.reuse(id) {
                Some(slot) => {
                    assert!(*slot <= 2_000 && *slot % 2 == 0, "an old span's state");
                    *slot = id;
                    reused += 1;
                }
                None => {
                    shard.insert(id, id);
                    added += 1;
                }
            }
        }
        for id in 1_001..=2_000u64 {
            assert_eq!(table.with(id, |v| *v), Some(id));
        }
        assert_eq!(table.len(), 1_000);
        assert_eq!(table.slots(), 1_000 + added);
        assert!(reused > added, "{reused} slots reused, {added} added");
    }
}
