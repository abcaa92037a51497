//! One delivery thread per output: encode, send with retries, split on
//! 413, reject, spool, replay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Job, Queue, Shared, wake_async};
use crate::error::Error;
use crate::logger::mark_sending_thread;
use crate::output::{Delivery, Output, Payload};
use crate::record::Record;
use crate::retry::Breaker;
use crate::spool::Spool;
use crate::stats::OutputCounters;

pub(super) const ABANDONED: &str = "shutdown while a send hung";

pub(super) struct Worker {
    pub(super) index: usize,
    pub(super) output: Output,
    pub(super) counters: Arc<OutputCounters>,
    pub(super) queue: Mutex<Queue>,
    pub(super) ready: Condvar,
    pub(super) spool: Mutex<Option<Spool>>,
    pub(super) told_refusal: std::sync::atomic::AtomicBool,
    /// The batch being sent, so a shutdown can spool it if the send hangs.
    pub(super) in_flight: Mutex<Option<Arc<Vec<Record>>>>,
    /// Set when a shutdown spooled this worker's batches in its place.
    pub(super) abandoned: std::sync::atomic::AtomicBool,
}

impl Worker {
    pub(super) fn push(&self, job: Job) {
        self.queue.lock().jobs.push_back(job);
        self.ready.notify_one();
    }

    /// Queues a batch, or spools (else drops) it when the queue is full, so
    /// a slow output never holds back the dispatcher or the other outputs.
    pub(super) fn enqueue(&self, batch: Arc<Vec<Record>>, max_batches: usize) {
        let abandoned = self.abandoned.load(std::sync::atomic::Ordering::SeqCst);
        let mut queue = self.queue.lock();
        if queue.batches < max_batches && !abandoned {
            queue.batches += 1;
            queue.jobs.push_back(Job::Batch(batch));
            drop(queue);
            self.ready.notify_one();
            return;
        }
        drop(queue);
        let lines = self.output.encode_lines(&batch);
        let reason = if abandoned {
            ABANDONED
        } else {
            "the output is too slow to keep up"
        };
        self.spool_or_drop(&lines, batch.len(), reason);
    }

    /// Spools the batch in flight and everything queued, for a shutdown
    /// that cannot wait for this worker any longer.
    pub(super) fn abandon(&self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(batch) = self.in_flight.lock().take() {
            let lines = self.output.encode_lines(&batch);
            self.spool_or_drop(&lines, batch.len(), ABANDONED);
        }
        let jobs = std::mem::take(&mut self.queue.lock().jobs);
        for job in jobs {
            if let Job::Batch(batch) = job {
                let lines = self.output.encode_lines(&batch);
                self.spool_or_drop(&lines, batch.len(), ABANDONED);
            }
        }
    }

    fn next_job(&self, shared: &Shared) -> Option<Job> {
        let mut queue = self.queue.lock();
        if queue.jobs.is_empty() {
            let replay_due = !self.spool.lock().as_ref().is_none_or(Spool::is_empty);
            let wait = if replay_due {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            };
            let wait = if shared.shutdown_deadline().is_some() {
                Duration::from_millis(10)
            } else {
                wait
            };
            self.ready.wait_for(&mut queue, wait);
        }
        let job = queue.jobs.pop_front();
        if let Some(Job::Batch(_)) = job {
            queue.batches -= 1;
            drop(queue);
            let _room = shared.room_lock.lock();
            shared.room.notify_all();
        }
        job
    }

    fn tally(&self, f: impl FnOnce(&mut Delivery)) {
        f(&mut self.queue.lock().tally);
    }

    fn update_pending(&self, spool: &Spool) {
        self.counters
            .spool_pending
            .store(spool.pending(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes a batch to the spool, or drops it (counted) when there is none.
    fn spool_or_drop(&self, lines: &[u8], count: usize, reason: &str) {
        if self.abandoned.load(std::sync::atomic::Ordering::SeqCst) && reason != ABANDONED {
            return; // the shutdown already spooled this batch
        }
        let mut spool = self.spool.lock();
        let written = match spool.as_mut() {
            Some(s) => match s.write(lines) {
                Ok(evicted) => {
                    OutputCounters::add(&self.counters.dropped, evicted as usize);
                    self.update_pending(s);
                    true
                }
                Err(err) => {
                    eprintln!("aitrace: {}: {err}", self.output);
                    false
                }
            },
            None => false,
        };
        drop(spool);
        if written {
            OutputCounters::add(&self.counters.spooled, count);
            self.tally(|t| t.spooled += count);
        } else {
            OutputCounters::add(&self.counters.dropped, count);
            self.tally(|t| t.dropped += count);
            if !self
                .told_refusal
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                eprintln!(
                    "aitrace: {}: dropped {count} records ({reason}); configure a spool folder to keep them",
                    self.output
                );
            }
        }
    }

    fn delivered(&self, count: usize, ingested: Option<usize>, replayed: bool) {
        OutputCounters::add(&self.counters.delivered, count);
        if replayed {
            OutputCounters::add(&self.counters.replayed, count);
        }
        self.tally(|t| {
            t.records += count;
            if let Some(n) = ingested {
                t.ingested = Some(t.ingested.unwrap_or(0) + n);
            }
        });
    }

    /// Delivers one batch with retries; failing that, spools it.
    fn send(&self, shared: &Shared, breaker: &mut Breaker, payload: &Payload<'_>) {
        let retry = shared.config.retry;
        let mut attempt = 1;
        loop {
            let now = Instant::now();
            let closing = shared.shutdown_deadline();
            if closing.is_some_and(|d| now >= d) {
                return self.spool_or_drop(
                    &lines_of(&self.output, payload),
                    payload.count,
                    "shutdown deadline",
                );
            }
            if !breaker.allows(now) {
                return self.spool_or_drop(
                    &lines_of(&self.output, payload),
                    payload.count,
                    "circuit breaker open",
                );
            }
            match self.output.deliver(payload) {
                Ok(delivery) => {
                    breaker.success();
                    self.counters
                        .breaker_open
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    return self.delivered(payload.count, delivery.ingested, false);
                }
                Err(err) if err.status() == Some(413) && payload.count > 1 => {
                    let lines = lines_of(&self.output, payload);
                    let (a, b) = split_payload(&Payload {
                        records: payload.records,
                        lines: &lines,
                        array: None,
                        count: payload.count,
                    });
                    self.send(shared, breaker, &a.as_payload());
                    self.send(shared, breaker, &b.as_payload());
                    return;
                }
                Err(err) if !err.is_transient() => {
                    OutputCounters::add(&self.counters.failed_flushes, 1);
                    return self.reject(payload, &err);
                }
                Err(err) => {
                    if attempt < retry.attempts() && closing.is_none() {
                        OutputCounters::add(&self.counters.retried, 1);
                        shared.pause(retry.backoff(attempt, err.retry_after()));
                        attempt += 1;
                        continue;
                    }
                    OutputCounters::add(&self.counters.failed_flushes, 1);
                    if breaker.failure(Instant::now()) {
                        self.counters
                            .breaker_open
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    return self.spool_or_drop(
                        &lines_of(&self.output, payload),
                        payload.count,
                        &err.to_string(),
                    );
                }
            }
        }
    }

    /// A batch refused for good: kept in `rejected/` when there is a spool,
    /// and counted as dropped either way.
    fn reject(&self, payload: &Payload<'_>, err: &Error) {
        let reason = err.to_string();
        if let Some(spool) = self.spool.lock().as_mut() {
            let _ = spool.write_rejected(&lines_of(&self.output, payload), &reason);
        }
        OutputCounters::add(&self.counters.dropped, payload.count);
        self.tally(|t| t.dropped += payload.count);
        eprintln!(
            "aitrace: {} refused a batch of {} records, not retried: {reason}",
            self.output, payload.count
        );
    }

    /// Replays the oldest spooled batch; false when there is nothing to do or
    /// the output still fails.
    fn replay_one(&self, breaker: &mut Breaker) -> bool {
        if !breaker.allows(Instant::now()) {
            return false;
        }
        let Some((lines, count)) = self.spool.lock().as_mut().and_then(Spool::oldest) else {
            return false;
        };
        let count = count as usize;
        let payload = Payload {
            records: None,
            lines: &lines,
            array: None,
            count,
        };
        match self.output.deliver(&payload) {
            Ok(delivery) => {
                breaker.success();
                self.counters
                    .breaker_open
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                if let Some(spool) = self.spool.lock().as_mut() {
                    spool.remove_oldest();
                    self.update_pending(spool);
                }
                self.delivered(count, delivery.ingested, true);
                true
            }
            Err(err) if err.status() == Some(413) && count > 1 => {
                let (a, b) = split_payload(&payload);
                if let Some(spool) = self.spool.lock().as_mut() {
                    if spool.write(&a.lines).is_ok() && spool.write(&b.lines).is_ok() {
                        spool.remove_oldest();
                    }
                    self.update_pending(spool);
                }
                true
            }
            Err(err) if !err.is_transient() => {
                if let Some(spool) = self.spool.lock().as_mut() {
                    spool.reject_oldest(&err.to_string());
                    self.update_pending(spool);
                }
                OutputCounters::add(&self.counters.dropped, count);
                true
            }
            Err(_) => {
                OutputCounters::add(&self.counters.failed_flushes, 1);
                if breaker.failure(Instant::now()) {
                    self.counters
                        .breaker_open
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                false
            }
        }
    }
}

pub(super) fn run_worker(shared: &Shared, worker: &Worker) {
    mark_sending_thread();
    // Reused for every batch: no fresh large allocation (and page faults) each time.
    let mut body = Vec::new();
    let mut breaker = Breaker::new(shared.config.breaker);
    loop {
        match worker.next_job(shared) {
            Some(Job::Batch(batch)) => {
                body.clear();
                // HTTP takes a JSON array: encode that directly, and JSON
                // Lines only if a failure sends the batch to the spool.
                let array = worker.output.is_http();
                if array {
                    worker.output.encode_array_into(&batch, &mut body);
                } else {
                    worker.output.encode_lines_into(&batch, &mut body);
                }
                *worker.in_flight.lock() = Some(batch.clone());
                worker.send(
                    shared,
                    &mut breaker,
                    &Payload {
                        records: Some(&batch),
                        lines: if array { &[] } else { &body },
                        array: array.then_some(&body[..]),
                        count: batch.len(),
                    },
                );
                // Taken by a shutdown that gave up on this worker: it was spooled.
                if worker.in_flight.lock().take().is_none() {
                    break;
                }
                // Under steady load the queue is never empty: replay one
                // spooled batch between new ones so the spool still drains.
                if shared.shutdown_deadline().is_none() {
                    worker.replay_one(&mut breaker);
                }
            }
            Some(Job::Marker(epoch)) => {
                let report = {
                    let mut queue = worker.queue.lock();
                    let mut report = std::mem::take(&mut queue.tally);
                    report.output = worker.output.to_string();
                    report
                };
                let mut control = shared.control.lock();
                control.done[worker.index] = epoch;
                control.reports[worker.index] = report;
                wake_async(&mut control, Instant::now());
                shared.changed.notify_all();
            }
            Some(Job::Shutdown) => {
                // A short-lived process still replays what an earlier one
                // spooled, while the output answers and time is left.
                while shared
                    .shutdown_deadline()
                    .is_some_and(|d| Instant::now() < d)
                    && worker.replay_one(&mut breaker)
                {}
                break;
            }
            None => {
                if shared.shutdown_deadline().is_none() {
                    // Idle: replay the spool while the output answers.
                    while worker.queue.lock().jobs.is_empty() && worker.replay_one(&mut breaker) {}
                }
            }
        }
    }
    let mut control = shared.control.lock();
    control.exited += 1;
    shared.changed.notify_all();
}

struct OwnedPayload {
    records: Option<Vec<Record>>,
    lines: Vec<u8>,
    count: usize,
}

impl OwnedPayload {
    fn as_payload(&self) -> Payload<'_> {
        Payload {
            records: self.records.as_deref(),
            lines: &self.lines,
            array: None,
            count: self.count,
        }
    }
}

/// A payload's JSON Lines, encoded from its records when only the array was.
fn lines_of<'p>(output: &Output, payload: &Payload<'p>) -> std::borrow::Cow<'p, [u8]> {
    match payload.records {
        Some(records) if payload.lines.is_empty() => {
            std::borrow::Cow::Owned(output.encode_lines(records))
        }
        _ => std::borrow::Cow::Borrowed(payload.lines),
    }
}

/// Splits a batch in two halves by record (for HTTP 413).
fn split_payload(payload: &Payload<'_>) -> (OwnedPayload, OwnedPayload) {
    let half = payload.count / 2;
    let cut = payload
        .lines
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(half.saturating_sub(1))
        .map_or(payload.lines.len(), |(i, _)| i + 1);
    let (first, second) = payload.lines.split_at(cut);
    let records = payload.records.map(|r| r.split_at(half.min(r.len())));
    (
        OwnedPayload {
            records: records.map(|(a, _)| a.to_vec()),
            lines: first.to_vec(),
            count: half,
        },
        OwnedPayload {
            records: records.map(|(_, b)| b.to_vec()),
            lines: second.to_vec(),
            count: payload.count - half,
        },
    )
}
