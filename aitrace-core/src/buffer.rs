//! The shared, sharded record buffer.
//!
//! Capturing threads append to one of several shards, each behind its own
//! lock, chosen by a per-thread index, so two threads rarely contend. A thread
//! always uses the same shard, so each shard holds its threads' records in
//! capture order; a drain merges the shards by timestamp, which keeps every
//! thread's order and gives capture order across threads to the clock's
//! resolution.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::record::Record;

/// Aligns a shard to its own cache lines so neighbours do not false-share.
#[repr(align(128))]
struct Shard(Mutex<Vec<Record>>);

pub(crate) struct Buffer {
    shards: Box<[Shard]>,
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
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (cores * 2).next_power_of_two().clamp(4, 64);
        Buffer {
            shards: (0..count).map(|_| Shard(Mutex::new(Vec::new()))).collect(),
        }
    }

    fn shard(&self) -> &Mutex<Vec<Record>> {
        &self.shards[thread_index() & (self.shards.len() - 1)].0
    }

    pub(crate) fn push(&self, record: Record) {
        self.shard().lock().push(record);
    }

    /// Puts records taken by [`drain`](Self::drain) back in front of anything
    /// captured since, keeping their order.
    pub(crate) fn restore(&self, mut records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let mut shard = self.shards[0].0.lock();
        records.append(&mut shard);
        *shard = records;
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }

    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            std::mem::take(&mut *shard.0.lock());
        }
    }

    /// Takes every buffered record, in capture order.
    pub(crate) fn drain(&self) -> Vec<Record> {
        let parts: Vec<Vec<Record>> = self
            .shards
            .iter()
            .map(|s| std::mem::take(&mut *s.0.lock()))
            .filter(|v| !v.is_empty())
            .collect();
        merge(parts)
    }

    /// Copies every buffered record, in capture order.
    pub(crate) fn snapshot(&self) -> Vec<Record> {
        let parts: Vec<Vec<Record>> = self
            .shards
            .iter()
            .map(|s| s.0.lock().clone())
            .filter(|v| !v.is_empty())
            .collect();
        merge(parts)
    }
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
            heap.push(Reverse((r.timestamp(), i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        if let Some(record) = iters[i].next() {
            out.push(record);
        }
        if let Some(next) = iters[i].peek() {
            heap.push(Reverse((next.timestamp(), i)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Level;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64, name: &'static str) -> Record {
        Record::builder(Level::Info, name)
            .timestamp(UNIX_EPOCH + Duration::from_secs(secs))
            .build()
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
        let buffer = Buffer::new();
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
}
