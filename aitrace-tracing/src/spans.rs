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
///
/// The index is two levels: a span is found by one comparison in `direct`,
/// at a place its `Id` picks, unless another span held that place when it
/// opened; then it is in `overflow`. A shard holds few spans at once, and
/// a hash map's insert, lookups and remove were a tenth of what a layer's
/// span cost.
pub(crate) struct Map<T> {
    /// `(id, slot)`, `id` 0 where free (a span `Id` is never 0).
    direct: Box<[(u64, u32)]>,
    overflow: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    slots: Vec<T>,
    free: Vec<u32>,
}

/// Places in a shard's `direct` index.
const DIRECT: usize = 64;

/// Spans a shard's overflow holds before it first grows.
const OVERFLOW: usize = 8;

/// Where span `id` goes in its shard's `direct` index: other bits of the
/// hash than those that pick the shard.
#[inline]
fn direct_place(id: u64) -> usize {
    (id.wrapping_mul(MIX) >> 52) as usize % DIRECT
}

impl<T> Map<T> {
    fn new() -> Self {
        Map {
            direct: vec![(0, 0); DIRECT].into_boxed_slice(),
            // Made with room for a few: two spans can meet in a direct
            // place at any time (a span's `Id` changes with each reuse of
            // its registry slot), and the first meeting would allocate.
            overflow: HashMap::with_capacity_and_hasher(OVERFLOW, Default::default()),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Span `id`'s slot number.
    #[inline]
    fn slot_of(&self, id: u64) -> Option<u32> {
        match self.direct[direct_place(id)] {
            (held, slot) if held == id => Some(slot),
            _ if self.overflow.is_empty() => None,
            _ => self.overflow.get(&id).copied(),
        }
    }

    /// Makes `slot` span `id`'s (which the shard does not hold).
    #[inline]
    fn index(&mut self, id: u64, slot: u32) {
        match &mut self.direct[direct_place(id)] {
            place @ (0, _) => *place = (id, slot),
            _ => {
                self.overflow.insert(id, slot);
            }
        }
    }

    /// Span `id`'s state.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let slot = self.slot_of(id)?;
        self.slots.get_mut(slot as usize)
    }

    /// A free slot, now span `id`'s, holding what its last span's
    /// [`release`](Self::release) left for the caller to fill; `None` when
    /// there is none (then [`insert`](Self::insert)).
    #[inline]
    pub(crate) fn reuse(&mut self, id: u64) -> Option<&mut T> {
        let slot = self.free.pop()?;
        self.index(id, slot);
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
        self.index(id, slot);
    }

    /// Takes span `id` out of the index and frees its slot, whose state the
    /// caller empties for the next span (a slot is not dropped).
    #[inline]
    pub(crate) fn release(&mut self, id: u64) -> Option<&mut T> {
        let slot = match &mut self.direct[direct_place(id)] {
            place if place.0 == id => std::mem::take(place).1,
            _ => self.overflow.remove(&id)?,
        };
        self.free.push(slot);
        self.slots.get_mut(slot as usize)
    }

    /// Keeps the spans whose state `keep` (which may change it) says to
    /// keep, and frees the others' slots.
    fn retain(&mut self, mut keep: impl FnMut(&mut T) -> bool) {
        let Map {
            direct,
            overflow,
            slots,
            free,
        } = self;
        let mut kept = |slot: u32| {
            let Some(state) = slots.get_mut(slot as usize) else {
                return false;
            };
            let kept = keep(state);
            if !kept {
                free.push(slot);
            }
            kept
        };
        for place in direct.iter_mut().filter(|place| place.0 != 0) {
            if !kept(place.1) {
                *place = (0, 0);
            }
        }
        overflow.retain(|_, slot| kept(*slot));
    }

    /// How many spans the shard holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.direct.iter().filter(|place| place.0 != 0).count() + self.overflow.len()
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
            shard.0.lock().retain(&mut keep);
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

    /// Spans whose ids pick the same shard and the same direct place: the
    /// first is indexed there, the others in the overflow; each is found,
    /// released once, and kept or dropped by `retain`, wherever it is.
    #[test]
    fn spans_sharing_a_direct_place_are_found_in_the_overflow() {
        let table = Table::new();
        let place = |id: u64| ((id.wrapping_mul(MIX) >> 58) as usize, direct_place(id));
        let same: Vec<u64> = (1..).filter(|&id| place(id) == place(1)).take(5).collect();
        for &id in &same {
            table.lock(id).insert(id, id);
        }
        {
            let shard = table.lock(same[0]);
            assert_eq!(shard.direct[direct_place(same[0])], (same[0], 0));
            assert_eq!(shard.overflow.len(), 4);
        }
        for &id in &same {
            assert_eq!(table.with(id, |v| *v), Some(id));
        }
        // The direct place is freed: the others are still found, and a new
        // span takes the place.
        assert_eq!(table.lock(same[0]).release(same[0]).copied(), Some(same[0]));
        assert_eq!(table.with(same[0], |v| *v), None);
        for &id in &same[1..] {
            assert_eq!(table.with(id, |v| *v), Some(id));
        }
        let newcomer = (same[4] + 1..).find(|&id| place(id) == place(1)).unwrap();
        *table.lock(newcomer).reuse(newcomer).unwrap() = newcomer;
        assert_eq!(
            table.lock(newcomer).direct[direct_place(newcomer)].0,
            newcomer
        );
        assert_eq!(table.with(newcomer, |v| *v), Some(newcomer));
        // One in the overflow released, once.
        assert_eq!(table.lock(same[2]).release(same[2]).copied(), Some(same[2]));
        assert_eq!(table.lock(same[2]).release(same[2]), None);
        // Retain over both levels: the span in the direct place goes, and
        // one in the overflow; the others stay and are found.
        let (gone, kept) = ([newcomer, same[3]], [same[1], same[4]]);
        table.retain(|v| !gone.contains(v));
        for id in gone {
            assert_eq!(table.with(id, |v| *v), None, "{id} went");
        }
        for id in kept {
            assert_eq!(table.with(id, |v| *v), Some(id), "{id} stayed");
        }
        assert_eq!(table.len(), 2);
        // The direct place is free again, and its slot free once.
        let later = (newcomer + 1..).find(|&id| place(id) == place(1)).unwrap();
        let mut shard = table.lock(later);
        assert_eq!(shard.direct[direct_place(later)], (0, 0));
        let free = shard.free.len();
        shard.insert(later, later);
        assert_eq!(shard.direct[direct_place(later)].0, later);
        assert_eq!(shard.free.len(), free, "a new slot, the freed ones kept");
        let mut freed = shard.free.clone();
        freed.sort_unstable();
        freed.dedup();
        assert_eq!(freed.len(), free, "no slot freed twice");
    }
}
