//! The shared, sharded, bounded record buffer.
//!
//! Capturing threads append to one of several shards, each behind its own
//! lock, chosen by a per-thread index, so two threads rarely contend. A thread
//! always uses the same shard, so each shard holds its threads' records in
//! capture order; a drain merges the shards by timestamp, which keeps every
//! thread's order and gives capture order across threads to the clock's
//! resolution.
//!
//! The capacity is checked against a sloppy counter: each shard publishes its
//! count to one shared atomic every [`PUBLISH_EVERY`] records, so capturing
//! threads do not all write one cache line. The bound holds to within
//! `PUBLISH_EVERY` records per shard.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::lifecycle::Lifecycle;
use crate::lock::{ShortGuard, ShortLock};
use crate::record::Record;

/// A shard's lock: released with a plain store, where `parking_lot`'s and
/// the standard library's mutexes release with an atomic read-modify-write
/// (to learn whether to wake a sleeper). A span takes it twice and an event
/// once, nearly always uncontended (a shard per thread up to twice the
/// cores), so the second atomic was a tenth of what a span cost. A thread
/// that finds it taken yields until it is free; every hold is short (a
/// push, a swap of deques, a copy of a shard for `records()`, a count;
/// records are made from compact entries after the lock is released),
/// except `clear` and `restore`, which drop or move a whole shard's
/// records: called by hand or after a failed direct flush.
type ShardLock = ShortLock<ShardState>;
type ShardGuard<'a> = ShortGuard<'a, ShardState>;

/// How many records the buffer holds, by default, before its
/// [`OverflowPolicy`] applies, when flushes are made by hand (the buffer is
/// the batch). Nothing is allocated up front.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// The default capacity with a background sender, which empties the buffer
/// every batch or interval: room for an outage of some seconds at high rates
/// without holding hundreds of megabytes.
pub const DEFAULT_BACKGROUND_CAPACITY: usize = 1 << 16;

const PUBLISH_EVERY: usize = 32;

pub(crate) use crate::wire::DROPPED_EVENT;

/// What capturing does when the buffer is full. Every record dropped is
/// counted in [`Stats::dropped`](crate::Stats::dropped), and the next batch
/// carries an `aitrace.dropped` warning record with the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Drop the record being captured (the default; what OpenTelemetry's
    /// batch processor does).
    #[default]
    DropNewest,
    /// Drop the oldest record buffered by the capturing thread's shard to make
    /// room (the newest record is dropped when that shard is empty).
    DropOldest,
    /// Wait up to this long for room (made by a flush), then drop the record.
    /// The capturing thread blocks: never use it on an async runtime's thread.
    Block(Duration),
}

/// What the buffer holds: a record, or a span's lifecycle record kept
/// compact until it leaves the buffer ([`Lifecycle`]).
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    Record(Record),
    Lifecycle(Lifecycle),
}

impl Entry {
    #[inline]
    fn timestamp_nanos(&self) -> u64 {
        match self {
            Entry::Record(record) => record.timestamp_nanos(),
            Entry::Lifecycle(lifecycle) => lifecycle.stamp(),
        }
    }

    #[inline]
    fn into_record(self) -> Record {
        match self {
            Entry::Record(record) => record,
            Entry::Lifecycle(lifecycle) => lifecycle.to_record(),
        }
    }
}

#[derive(Default)]
struct ShardState {
    records: VecDeque<Entry>,
    /// An emptied deque kept for reuse by the next drain, so a steady
    /// stream does not allocate (and page-fault) a new one every batch.
    spare: VecDeque<Entry>,
    /// Records pushed but not yet added to `Buffer::published`.
    unpublished: usize,
    /// Records ever appended, and ever taken out (drained, dropped as the
    /// oldest, cleared): a flush waits until `removed` passes the `added`
    /// it saw, shard by shard.
    added: u64,
    removed: u64,
    captured: u64,
    dropped: u64,
    /// Records a `before_send` hook dropped on this shard's threads (never
    /// captured).
    before_send_dropped: u64,
}

/// A value on cache lines of its own.
#[repr(align(128))]
struct OwnLine<T>(T);

impl<T> std::ops::Deref for OwnLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Aligns a shard to its own cache lines so neighbours do not false-share.
#[repr(align(128))]
struct Shard(ShardLock);

/// The buffer's counters, read together; see [`Buffer::tally`].
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) captured: u64,
    pub(crate) dropped: u64,
    pub(crate) discarded: u64,
    pub(crate) before_send_dropped: u64,
    pub(crate) buffered: u64,
}

pub(crate) struct Buffer {
    shards: Box<[Shard]>,
    capacity: usize,
    overflow: OverflowPolicy,
    /// Records buffered, less each shard's `unpublished`. On a cache line
    /// of its own: every thread's push reads it and every 32nd writes it,
    /// and a write must not take from the other threads the line of the
    /// fields every push reads (the shards, the capacity).
    published: OwnLine<AtomicUsize>,
    /// Ring the doorbell when this many records are buffered.
    batch_trigger: usize,
    /// Tells the delivery thread a batch is ready (or room is needed); a
    /// channel of one, so ringing a bell already rung costs nothing.
    doorbell: OnceLock<crossbeam_channel::Sender<()>>,
    /// Set when the bell is rung, cleared by the delivery thread before
    /// every drain: while set, capturing threads need not ring, and
    /// they read this flag instead of the channel's state, which the
    /// delivery thread writes at every receive (a cache line passed back
    /// and forth at every record past the batch trigger).
    bell_pending: std::sync::atomic::AtomicBool,
    space_lock: Mutex<()>,
    space: Condvar,
    waiting: AtomicUsize,
    reported_dropped: AtomicU64,
    /// `aitrace.dropped` records written by the buffer itself.
    reports: AtomicU64,
    /// Records thrown away by `clear`.
    discarded: AtomicU64,
    /// Set when nothing drains the buffer any more (delivery stopped):
    /// `Block` then drops at once instead of waiting for room in vain.
    undrained: std::sync::atomic::AtomicBool,
}

static NEXT_THREAD_INDEX: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn thread_index() -> usize {
    THREAD_INDEX.with(|cell| {
        let mut index = cell.get();
        if index == usize::MAX {
            index = NEXT_THREAD_INDEX.fetch_add(1, Ordering::Relaxed);
            cell.set(index);
        }
        index
    })
}

impl Buffer {
    pub(crate) fn new(capacity: usize, overflow: OverflowPolicy, batch_trigger: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (cores * 2).next_power_of_two().clamp(4, 64);
        Buffer {
            shards: (0..count)
                .map(|_| Shard(ShardLock::new(ShardState::default())))
                .collect(),
            capacity: capacity.max(1),
            overflow,
            published: OwnLine(AtomicUsize::new(0)),
            batch_trigger: batch_trigger.max(1),
            doorbell: OnceLock::new(),
            bell_pending: std::sync::atomic::AtomicBool::new(false),
            space_lock: Mutex::new(()),
            space: Condvar::new(),
            waiting: AtomicUsize::new(0),
            reported_dropped: AtomicU64::new(0),
            reports: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            undrained: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The bell to ring when a batch is ready; its receiver is the
    /// delivery thread's.
    pub(crate) fn set_doorbell(&self, bell: crossbeam_channel::Sender<()>) {
        let _ = self.doorbell.set(bell);
    }

    /// Says that nothing will drain the buffer any more.
    pub(crate) fn set_undrained(&self) {
        self.undrained.store(true, Ordering::SeqCst);
        self.made_space(); // wake `Block` waiters, who now drop
    }

    /// Tells the delivery thread to drain a batch.
    pub(crate) fn wake_sender(&self) {
        if self.bell_pending.load(Ordering::Relaxed) {
            return;
        }
        if let Some(bell) = self.doorbell.get() {
            self.bell_pending.store(true, Ordering::Relaxed);
            let _ = bell.try_send(());
        }
    }

    /// Called by the delivery thread before every drain, so a record pushed
    /// after that drain rings again. (A capturing thread that still reads
    /// `true` pushed under a shard lock the drain takes after this store,
    /// so the drain sees its record.)
    pub(crate) fn clear_ring(&self) {
        self.bell_pending.store(false, Ordering::Relaxed);
    }

    fn shard(&self) -> &ShardLock {
        &self.shards[thread_index() & (self.shards.len() - 1)].0
    }

    fn is_full(&self, shard: &ShardState) -> bool {
        self.published.load(Ordering::Relaxed) + shard.unpublished >= self.capacity
    }

    /// Buffers a record, or drops it as the overflow policy says.
    #[inline]
    pub(crate) fn push(&self, record: Record) {
        let mut shard = self.shard().lock();
        shard.captured += 1;
        if self.is_full(&shard) {
            return self.overflow(shard, Entry::Record(record));
        }
        // The record moves once, into its slot (not through a tuple or a
        // binding shared with the overflow path: each was a copy of it).
        self.append(shard, Entry::Record(record));
    }

    /// Buffers a span's lifecycle record as it is (made into a [`Record`]
    /// when it leaves the buffer), or drops it as the overflow policy says.
    ///
    /// By reference, and not inlined: the caller has just written the
    /// lifecycle, and reading it back by wider words than it was written in
    /// stalls until the stores are done. Read after the lock's atomic
    /// instruction, which waits for them anyway, it does not.
    #[inline(never)]
    pub(crate) fn push_lifecycle(&self, lifecycle: &Lifecycle) {
        let mut shard = self.shard().lock();
        shard.captured += 1;
        if self.is_full(&shard) {
            return self.overflow_lifecycle(shard, lifecycle);
        }
        self.append(shard, Entry::Lifecycle(*lifecycle));
    }

    /// [`overflow`](Self::overflow) for a lifecycle, made an entry here:
    /// made in `push_lifecycle`, the entry (320 bytes, aligned to 64) took
    /// a frame of its own there on every push.
    #[cold]
    #[inline(never)]
    fn overflow_lifecycle(&self, shard: ShardGuard<'_>, lifecycle: &Lifecycle) {
        self.overflow(shard, Entry::Lifecycle(*lifecycle));
    }

    /// Appends to a shard that has room, and rings when a batch is ready.
    #[inline(always)]
    fn append(&self, mut shard: ShardGuard<'_>, record: Entry) {
        shard.records.push_back(record);
        shard.added += 1;
        shard.unpublished += 1;
        let ready = if shard.unpublished >= PUBLISH_EVERY {
            let n = std::mem::take(&mut shard.unpublished);
            self.published.fetch_add(n, Ordering::Relaxed) + n >= self.batch_trigger
        } else {
            shard.records.len() >= self.batch_trigger
        };
        drop(shard);
        if ready {
            self.wake_sender();
        }
    }

    /// The overflow policy, applied to `record` with its shard full.
    #[cold]
    #[inline(never)]
    fn overflow(&self, mut shard: ShardGuard<'_>, record: Entry) {
        match self.overflow {
            OverflowPolicy::DropNewest => {
                shard.dropped += 1;
                drop(shard);
                self.wake_sender();
            }
            OverflowPolicy::DropOldest => {
                shard.dropped += 1;
                if shard.records.pop_front().is_some() {
                    shard.records.push_back(record);
                    shard.removed += 1;
                    shard.added += 1;
                }
                drop(shard);
                self.wake_sender();
            }
            OverflowPolicy::Block(_) if self.undrained.load(Ordering::Relaxed) => {
                shard.dropped += 1;
            }
            OverflowPolicy::Block(timeout) => {
                // Not counted while it waits: a stats snapshot meanwhile
                // must find it neither captured nor anywhere else.
                shard.captured -= 1;
                drop(shard);
                self.wake_sender();
                let mut shard = self.wait_for_space(timeout);
                shard.captured += 1;
                if self.is_full(&shard) {
                    shard.dropped += 1;
                } else {
                    self.append(shard, record);
                }
            }
        }
    }

    /// Counts a record a `before_send` hook dropped, on the calling
    /// thread's shard (no counter shared by every capturing thread).
    pub(crate) fn count_before_send_dropped(&self) {
        self.shard().lock().before_send_dropped += 1;
    }

    fn wait_for_space(&self, timeout: Duration) -> ShardGuard<'_> {
        let deadline = crate::deadline::from_now(timeout);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.space_lock.lock();
        loop {
            let full = {
                let shard = self.shard().lock();
                self.is_full(&shard)
            };
            if !full
                || self.undrained.load(Ordering::SeqCst)
                || self.space.wait_until(&mut guard, deadline).timed_out()
            {
                break;
            }
        }
        drop(guard);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.shard().lock()
    }

    fn made_space(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = self.space_lock.lock();
            self.space.notify_all();
        }
    }

    /// Puts records taken by [`drain`](Self::drain) back in front of anything
    /// captured since, keeping their order.
    pub(crate) fn restore(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let n = records.len();
        let mut shard = self.shards[0].0.lock();
        shard.added += n as u64;
        let mut restored: VecDeque<Entry> = records.into_iter().map(Entry::Record).collect();
        restored.append(&mut shard.records);
        shard.records = restored;
        self.published.fetch_add(n, Ordering::Relaxed);
    }

    /// How many entries are lifecycle records kept compact.
    pub(crate) fn compact_len(&self) -> usize {
        (self.shards.iter())
            .map(|s| {
                let shard = s.0.lock();
                (shard.records.iter())
                    .filter(|e| matches!(e, Entry::Lifecycle(_)))
                    .count()
            })
            .sum()
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().records.len()).sum()
    }

    /// Takes every buffered record, in capture order.
    pub(crate) fn drain(&self) -> Vec<Record> {
        let taken: Vec<VecDeque<Entry>> = self
            .shards
            .iter()
            .filter_map(|s| {
                let mut shard = s.0.lock();
                if shard.records.is_empty() {
                    return None;
                }
                let records = std::mem::take(&mut shard.records);
                shard.removed += records.len() as u64;
                let unpublished = std::mem::take(&mut shard.unpublished);
                self.published
                    .fetch_sub(records.len() - unpublished, Ordering::Relaxed);
                Some(records)
            })
            .collect();
        self.made_space();
        // Made into records with no lock held.
        let parts = (taken.into_iter())
            .map(|entries| entries.into_iter().map(Entry::into_record).collect())
            .collect();
        merge(parts)
    }

    /// Drops every buffered record, keeping each shard's allocation for the
    /// records to come.
    pub(crate) fn clear(&self) -> usize {
        let mut n = 0;
        for s in self.shards.iter() {
            let mut shard = s.0.lock();
            let len = shard.records.len();
            let unpublished = std::mem::take(&mut shard.unpublished);
            self.published
                .fetch_sub(len - unpublished, Ordering::Relaxed);
            shard.records.clear();
            shard.removed += len as u64;
            n += len;
        }
        self.discarded.fetch_add(n as u64, Ordering::Relaxed);
        self.made_space();
        n
    }

    /// Copies every buffered record, in capture order.
    pub(crate) fn snapshot(&self) -> Vec<Record> {
        // Copied under each lock, made into records with none held.
        let copies: Vec<Vec<Entry>> = (self.shards.iter())
            .map(|s| s.0.lock().records.iter().cloned().collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .collect();
        let parts = (copies.into_iter())
            .map(|entries| entries.into_iter().map(Entry::into_record).collect())
            .collect();
        merge(parts)
    }

    /// What the buffer has seen, each shard read under its lock so the
    /// counts agree with each other; `captured` includes the
    /// `aitrace.dropped` reports the buffer wrote itself. Exact while nothing
    /// drains the buffer meanwhile (the caller holds the books' lock).
    pub(crate) fn tally(&self) -> Tally {
        let mut tally = Tally {
            captured: self.reports.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            ..Tally::default()
        };
        for s in self.shards.iter() {
            let shard = s.0.lock();
            tally.captured += shard.captured;
            tally.dropped += shard.dropped;
            tally.before_send_dropped += shard.before_send_dropped;
            tally.buffered += shard.records.len() as u64;
        }
        tally
    }

    /// Takes every buffered record for delivery, in capture order, followed
    /// by an `aitrace.dropped` warning when records were dropped for overflow
    /// since the last such report: the flush made on the calling thread.
    pub(crate) fn drain_for_delivery(&self) -> Vec<Record> {
        let mut records = self.drain();
        let dropped = self.take_unreported_drops();
        if dropped > 0 {
            self.reports.fetch_add(1, Ordering::Relaxed);
            records.push(dropped_report(dropped));
        }
        records
    }

    /// Takes up to `limit` records (plus an `aitrace.dropped` report when
    /// there were overflow drops) as batches of `batch_size`, in capture
    /// order, without building one big vector: the background sender's drain.
    /// The flag says whether the buffer was emptied.
    pub(crate) fn drain_batches(
        &self,
        limit: usize,
        batch_size: usize,
        spare: &mut Vec<Vec<Record>>,
    ) -> (Vec<Vec<Record>>, bool) {
        /// The largest deque kept as a spare (records).
        const MAX_SPARE: usize = 1 << 16;
        let batch_size = batch_size.max(1);
        let mut taken: Vec<(usize, VecDeque<Entry>)> = Vec::new();
        for (i, s) in self.shards.iter().enumerate() {
            let mut shard = s.0.lock();
            if shard.records.is_empty() {
                continue;
            }
            let spare = std::mem::take(&mut shard.spare);
            let records = std::mem::replace(&mut shard.records, spare);
            // Taken records stay counted as buffered until they are handed
            // out below: while the merge runs, capturing threads must not see
            // room that the put-back would then overfill.
            let unpublished = std::mem::take(&mut shard.unpublished);
            self.published.fetch_add(unpublished, Ordering::Relaxed);
            taken.push((i, records));
        }
        let total: usize = taken.iter().map(|(_, r)| r.len()).sum();
        let mut taken_len = vec![0; self.shards.len()];
        for (i, records) in &taken {
            taken_len[*i] = records.len();
        }
        let mut batches = Vec::with_capacity(total.min(limit) / batch_size + 1);
        // A reused vector when one is spare, else a new one of `n`.
        let fresh = |spare: &mut Vec<Vec<Record>>, n: usize| match spare.pop() {
            Some(v) if v.capacity() >= n => v,
            _ => Vec::with_capacity(n),
        };
        let mut current = fresh(spare, batch_size.min(total + 1));
        let emit = |record: Record,
                    batches: &mut Vec<Vec<Record>>,
                    current: &mut Vec<Record>,
                    spare: &mut Vec<Vec<Record>>| {
            current.push(record);
            if current.len() == batch_size {
                batches.push(std::mem::replace(current, fresh(spare, batch_size)));
            }
        };
        let dropped = self.take_unreported_drops();
        // The drop report fits within the limit, so it is never the batch
        // that finds no room.
        let mut left = limit.saturating_sub(usize::from(dropped > 0)).min(total);
        if taken.len() == 1 {
            // One shard: its records move into batches a run at a time
            // (one copy each, not two through `pop_front`).
            let deque = &mut taken[0].1;
            while left > 0 && !deque.is_empty() {
                let n = (batch_size - current.len()).min(left).min(deque.len());
                current.extend(deque.drain(..n).map(Entry::into_record));
                left -= n;
                if current.len() == batch_size {
                    batches.push(std::mem::replace(&mut current, fresh(spare, batch_size)));
                }
            }
        } else if taken.len() > 1 {
            let mut heap: BinaryHeap<Reverse<(u64, usize)>> = taken
                .iter()
                .enumerate()
                .filter_map(|(k, (_, d))| d.front().map(|e| Reverse((e.timestamp_nanos(), k))))
                .collect();
            while left > 0 {
                let Some(Reverse((_, k))) = heap.pop() else {
                    break;
                };
                let deque = &mut taken[k].1;
                if let Some(entry) = deque.pop_front() {
                    emit(entry.into_record(), &mut batches, &mut current, spare);
                    left -= 1;
                }
                if let Some(next) = deque.front() {
                    heap.push(Reverse((next.timestamp_nanos(), k)));
                }
            }
        }
        if dropped > 0 {
            self.reports.fetch_add(1, Ordering::Relaxed);
            emit(dropped_report(dropped), &mut batches, &mut current, spare);
        }
        if current.is_empty() {
            spare.push(current); // taken for nothing: back for the next drain
        } else {
            batches.push(current);
        }
        let mut complete = true;
        let mut handed_out = total;
        for (i, mut rest) in taken {
            let mut shard = self.shards[i].0.lock();
            shard.removed += (taken_len[i] - rest.len()) as u64;
            let emptied = if rest.is_empty() {
                rest
            } else {
                complete = false;
                handed_out -= rest.len();
                rest.append(&mut shard.records);
                std::mem::replace(&mut shard.records, rest)
            };
            if emptied.capacity() <= MAX_SPARE && emptied.capacity() > shard.spare.capacity() {
                shard.spare = emptied;
            }
        }
        self.published.fetch_sub(handed_out, Ordering::Relaxed);
        self.made_space();
        (batches, complete)
    }

    /// Where each shard stands now: a flush asked for now is owed every
    /// record added so far.
    pub(crate) fn watermark(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.0.lock().added).collect()
    }

    /// Whether every record added before `mark` was taken out.
    pub(crate) fn passed(&self, mark: &[u64]) -> bool {
        self.shards
            .iter()
            .zip(mark)
            .all(|(s, &added)| s.0.lock().removed >= added)
    }

    /// Records dropped for overflow since the last call.
    pub(crate) fn take_unreported_drops(&self) -> u64 {
        let dropped: u64 = self.shards.iter().map(|s| s.0.lock().dropped).sum();
        let before = self.reported_dropped.swap(dropped, Ordering::Relaxed);
        dropped.saturating_sub(before)
    }
}

fn dropped_report(dropped: u64) -> Record {
    Record::builder(crate::Level::Warn, DROPPED_EVENT)
        .logger("aitrace")
        .field("dropped", dropped)
        .field("reason", "buffer full")
        .build()
}

/// Merges per-shard runs by timestamp without reordering any run.
fn merge(mut parts: Vec<Vec<Record>>) -> Vec<Record> {
    match parts.len() {
        0 => return Vec::new(),
        1 => return parts.pop().unwrap_or_default(),
        _ => {}
    }
    let total = parts.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total);
    let mut iters: Vec<_> = parts
        .into_iter()
        .map(|p| p.into_iter().peekable())
        .collect();
    let mut heap = BinaryHeap::with_capacity(iters.len());
    for (i, it) in iters.iter_mut().enumerate() {
        if let Some(r) = it.peek() {
            heap.push(Reverse((r.timestamp_nanos(), i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        if let Some(record) = iters[i].next() {
            out.push(record);
        }
        if let Some(next) = iters[i].peek() {
            heap.push(Reverse((next.timestamp_nanos(), i)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Level;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64, name: &'static str) -> Record {
        Record::builder(Level::Info, name)
            .timestamp(UNIX_EPOCH + Duration::from_secs(secs))
            .build()
    }

    fn unbounded() -> Buffer {
        Buffer::new(usize::MAX, OverflowPolicy::DropNewest, usize::MAX)
    }

    #[test]
    fn merge_orders_by_time_but_never_reorders_a_run() {
        // The second run's clock stepped back: its order must survive.
        let merged = merge(vec![
            vec![at(1, "a1"), at(3, "a3")],
            vec![at(2, "b2"), at(0, "b0"), at(4, "b4")],
        ]);
        let names: Vec<_> = merged.iter().map(Record::event).collect();
        assert_eq!(names, ["a1", "b2", "b0", "a3", "b4"]);
    }

    #[test]
    fn restore_puts_records_first() {
        let buffer = unbounded();
        buffer.push(at(1, "old"));
        let taken = buffer.drain();
        buffer.push(at(2, "new"));
        buffer.restore(taken);
        let names: Vec<_> = buffer
            .drain()
            .iter()
            .map(|r| r.event().to_owned())
            .collect();
        assert_eq!(names, ["old", "new"]);
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn drop_newest_keeps_the_first_records_and_counts_the_rest() {
        let buffer = Buffer::new(100, OverflowPolicy::DropNewest, usize::MAX);
        for i in 0..250u64 {
            buffer.push(Record::builder(Level::Info, "r").field("i", i).build());
        }
        let kept = buffer.drain();
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[99].field("i"), Some(&99u64.into()));
        let t = buffer.tally();
        assert_eq!((t.captured, t.dropped), (250, 150));
        assert_eq!(buffer.take_unreported_drops(), 150);
        assert_eq!(buffer.take_unreported_drops(), 0);
        // Room again after the drain.
        buffer.push(at(1, "again"));
        assert_eq!(buffer.len(), 1);
    }

    #[test]
    fn drain_batches_reuses_spare_vectors_and_loses_nothing() {
        let buffer = unbounded();
        let numbers = |batches: &[Vec<Record>]| -> Vec<u64> {
            (batches.iter().flatten())
                .map(|r| match r.field("i") {
                    Some(crate::Value::U64(i)) => *i,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        // A spare big enough, one too small, and a drain that ends exactly
        // on a full batch (its next vector is taken for nothing).
        let roomy = Vec::with_capacity(3);
        let roomy_at = roomy.as_ptr();
        let mut spare = vec![Vec::with_capacity(1), roomy];
        for i in 0..6u64 {
            buffer.push(Record::builder(Level::Info, "r").field("i", i).build());
        }
        let (batches, complete) = buffer.drain_batches(usize::MAX, 3, &mut spare);
        assert!(complete);
        assert_eq!(numbers(&batches), [0, 1, 2, 3, 4, 5]);
        assert_eq!(
            batches[0].as_ptr(),
            roomy_at,
            "the roomy spare is used first"
        );
        assert_eq!(spare.len(), 1, "the unused vector goes back: {spare:?}");
        assert!(spare[0].is_empty() && spare[0].capacity() >= 3);
        // The vector put back is used by the next drain.
        let back_at = spare[0].as_ptr();
        buffer.push(Record::builder(Level::Info, "r").field("i", 6u64).build());
        let (batches, _) = buffer.drain_batches(usize::MAX, 3, &mut spare);
        assert_eq!(numbers(&batches), [6]);
        assert_eq!(batches[0].as_ptr(), back_at);
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn drain_batches_cuts_in_order_and_puts_back_the_rest() {
        let buffer = unbounded();
        for i in 0..10u64 {
            buffer.push(Record::builder(Level::Info, "r").field("i", i).build());
        }
        let (batches, complete) = buffer.drain_batches(7, 3, &mut Vec::new());
        assert!(!complete);
        let sizes: Vec<_> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(batches[2][0].field("i"), Some(&6u64.into()));
        buffer.push(Record::builder(Level::Info, "r").field("i", 10u64).build());
        let (batches, complete) = buffer.drain_batches(usize::MAX, 100, &mut Vec::new());
        assert!(complete);
        let rest: Vec<_> = batches[0].iter().map(|r| r.field("i").cloned()).collect();
        let want: Vec<_> = (7..=10u64).map(|i| Some(i.into())).collect();
        assert_eq!(rest, want);
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn lifecycles_overflow_as_records_do() {
        let span = crate::SpanContext::new_root();
        let lifecycle = |i: u64| Lifecycle::start(Level::Info, "job", span, i);
        for (policy, first) in [
            (OverflowPolicy::DropNewest, 0),
            (OverflowPolicy::DropOldest, 150),
        ] {
            let buffer = Buffer::new(100, policy, usize::MAX);
            for i in 0..250u64 {
                buffer.push_lifecycle(&lifecycle(i));
            }
            let kept = buffer.drain();
            assert_eq!(kept.len(), 100, "{policy:?}");
            assert_eq!(kept[0].timestamp_nanos(), first, "{policy:?}");
            let t = buffer.tally();
            assert_eq!((t.captured, t.dropped), (250, 150), "{policy:?}");
        }
    }

    #[test]
    fn drop_oldest_keeps_the_last_records() {
        let buffer = Buffer::new(100, OverflowPolicy::DropOldest, usize::MAX);
        for i in 0..250u64 {
            buffer.push(Record::builder(Level::Info, "r").field("i", i).build());
        }
        let kept = buffer.drain();
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0].field("i"), Some(&150u64.into()));
        let t = buffer.tally();
        assert_eq!((t.captured, t.dropped), (250, 150));
    }

    #[test]
    fn block_waits_for_a_drain_then_gives_up_at_its_timeout() {
        let buffer = std::sync::Arc::new(Buffer::new(
            32,
            OverflowPolicy::Block(Duration::from_secs(10)),
            usize::MAX,
        ));
        for _ in 0..32 {
            buffer.push(at(1, "fill"));
        }
        let drainer = {
            let buffer = buffer.clone();
            std::thread::spawn(move || {
                while buffer.waiting.load(Ordering::SeqCst) == 0 {
                    std::thread::yield_now();
                }
                buffer.drain().len()
            })
        };
        buffer.push(at(2, "waited")); // blocks until the drain
        assert_eq!(drainer.join().unwrap(), 32);
        assert_eq!(buffer.drain().len(), 1);

        let quick = Buffer::new(
            32,
            OverflowPolicy::Block(Duration::from_millis(20)),
            usize::MAX,
        );
        for _ in 0..33 {
            quick.push(at(1, "r"));
        }
        let t = quick.tally();
        assert_eq!((t.captured, t.dropped), (33, 1));
    }
}
