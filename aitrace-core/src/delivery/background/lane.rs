//! One output's delivery state, owned by the delivery thread: its queue of
//! batches, the send in flight, the retry it waits for, its circuit breaker
//! and its spool. Only the delivery thread touches a lane, so the spool has
//! exactly one owner and every record's whereabouts change in one place.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::sender::{Job, Load};
use crate::delivery::{Refusal, split_budget};
use crate::diagnostics::Diagnostics;
use crate::error::Error;
use crate::flush_report::Delivery;
use crate::output::Output;
use crate::record::Record;
use crate::retry::{Breaker, RetryPolicy};
use crate::spool::{FileId, Spool, Unreadable};
use crate::stats::OutputStats;

/// A batch from the buffer, numbered in drain order (the same number for
/// every output), so a flush knows when everything before it is settled.
#[derive(Clone, Debug)]
pub(super) struct Batch {
    pub(super) seq: u64,
    pub(super) records: Arc<Vec<Record>>,
}

/// Work for the output: a fresh batch, or a spool file to replay.
#[derive(Debug)]
enum Work {
    Batch(Batch),
    Replay {
        file: FileId,
        lines: Arc<Vec<u8>>,
        count: usize,
    },
}

impl Work {
    fn load(&self) -> Load {
        match self {
            Work::Batch(batch) => Load::Records(batch.records.clone()),
            Work::Replay { lines, count, .. } => Load::Lines(lines.clone(), *count),
        }
    }

    fn seq(&self) -> Option<u64> {
        match self {
            Work::Batch(batch) => Some(batch.seq),
            Work::Replay { .. } => None,
        }
    }
}

/// A copy of the buffer to send once, for `flush_keep`: in parts like a
/// batch, but never retried, spooled or counted, and leaving the breaker
/// as it is. It waits for the sender like any work, so the output is only
/// ever called from its sender thread.
#[derive(Debug)]
pub(super) struct BufferCopy {
    /// The owner's number for it (the same for every output).
    pub(super) id: u64,
    pub(super) records: Arc<Vec<Record>>,
}

#[derive(Debug)]
struct InFlight {
    job: u64,
    work: Work,
    attempt: u32,
}

pub(super) struct Lane {
    pub(super) index: usize,
    pub(super) output: Output,
    jobs: Sender<Job>,
    queue: VecDeque<Batch>,
    current: Option<InFlight>,
    /// Copies waiting for the sender, sent before queued work.
    copies: VecDeque<BufferCopy>,
    /// The copy being sent: its job and its id.
    copy_in_flight: Option<(u64, u64)>,
    /// Each copy's outcome, by id, for the owner to collect.
    pub(super) copy_answers: Vec<(u64, crate::Result<Delivery>)>,
    /// Work that failed for a transient reason, and when to try again.
    waiting: Option<(InFlight, Instant)>,
    breaker: Breaker,
    pub(super) spool: Option<Spool>,
    /// What this output did since the last flush report.
    pub(super) tally: Delivery,
    next_job: u64,
    /// Alternates fresh batches and replays so a busy output still drains
    /// its spool.
    replay_next: bool,
    /// While closing: a replay failed, so stop replaying.
    replay_failed: bool,
    /// What is left of each split batch's [`split_budget`], by its `seq`
    /// (its halves keep it).
    split_budgets: HashMap<u64, u32>,
}

/// A generous guess of a record's encoded size, to cut what is set aside at
/// once into spool files of at most a quarter of the spool.
const APPROX_RECORD_BYTES: u64 = 1024;

/// Where a lane reports what it did: the books, and stderr.
pub(super) struct Books<'a> {
    pub(super) stats: &'a mut OutputStats,
    pub(super) diagnostics: &'a Diagnostics,
    /// Where a delivered batch's vector goes for reuse.
    pub(super) spare: &'a mut Vec<Vec<Record>>,
}

/// The most emptied batch vectors kept for reuse, and the most memory
/// they may hold together (outside the buffer's capacity).
const MAX_SPARE_BATCHES: usize = 8;
const MAX_SPARE_BYTES: usize = 4 << 20;

impl Books<'_> {
    /// Keeps a settled batch's vector for the next drain, when no one else
    /// holds the batch (another output may still be sending it).
    fn recycle(&mut self, records: Arc<Vec<Record>>) {
        let bytes = |v: &Vec<Record>| v.capacity() * size_of::<Record>();
        let kept: usize = self.spare.iter().map(bytes).sum();
        if self.spare.len() < MAX_SPARE_BATCHES {
            if let Ok(mut records) = Arc::try_unwrap(records) {
                if kept + bytes(&records) <= MAX_SPARE_BYTES {
                    records.clear();
                    self.spare.push(records);
                }
            }
        }
    }
}

impl Lane {
    pub(super) fn new(
        index: usize,
        output: Output,
        jobs: Sender<Job>,
        breaker: Breaker,
        spool: Option<Spool>,
    ) -> Self {
        let tally = Delivery::named(output.to_string());
        Lane {
            index,
            output,
            jobs,
            queue: VecDeque::new(),
            current: None,
            copies: VecDeque::new(),
            copy_in_flight: None,
            copy_answers: Vec::new(),
            waiting: None,
            breaker,
            spool,
            tally,
            next_job: 0,
            replay_next: false,
            replay_failed: false,
            split_budgets: HashMap::new(),
        }
    }

    /// Batches queued, sending or waiting for a retry (a copy being sent
    /// counts as one).
    pub(super) fn load(&self) -> usize {
        self.queue.len()
            + usize::from(self.current.is_some())
            + usize::from(self.waiting.is_some())
            + usize::from(self.copy_in_flight.is_some())
    }

    /// Whether the sender is busy with a job.
    fn sending(&self) -> bool {
        self.current.is_some() || self.copy_in_flight.is_some()
    }

    /// Answers the copies not started yet as closed: a shutdown's deadline
    /// is for the batches, not for copies asked for just before it.
    pub(super) fn cancel_copies(&mut self) {
        for copy in self.copies.drain(..) {
            let closed = crate::Error::new(
                crate::ErrorKind::Closed,
                "the logger was shut down before the copy was sent",
            );
            self.copy_answers.push((copy.id, Err(closed)));
        }
    }

    /// Queues a copy to send once (see [`BufferCopy`]).
    pub(super) fn offer_copy(&mut self, copy: BufferCopy) {
        self.copies.push_back(copy);
    }

    /// Drops copy `id` if it is still waiting (its caller gave up).
    pub(super) fn forget_copy(&mut self, id: u64) {
        self.copies.retain(|c| c.id != id);
    }

    /// The oldest batch not yet delivered, spooled or dropped.
    pub(super) fn oldest_unsettled(&self) -> Option<u64> {
        let current = self.current.as_ref().and_then(|f| f.work.seq());
        let waiting = self.waiting.as_ref().and_then(|(f, _)| f.work.seq());
        let queued = self.queue.iter().map(|b| b.seq).min();
        [current, waiting, queued].into_iter().flatten().min()
    }

    /// Nothing queued, in flight or waiting.
    pub(super) fn is_idle(&self) -> bool {
        self.load() == 0
    }

    /// Whether a replay is possible now.
    fn can_replay(&self, now: Instant) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
            && self.breaker.allows(now)
            && !self.replay_failed
    }

    /// Whether a closing delivery thread is done with this lane.
    pub(super) fn is_finished(&self, now: Instant) -> bool {
        self.is_idle() && !self.can_replay(now)
    }

    /// When this lane wants to be looked at again, if it waits for a time.
    pub(super) fn next_wake(&self, now: Instant) -> Option<Instant> {
        if self.sending() {
            return None; // its answer wakes us
        }
        if let Some((_, at)) = &self.waiting {
            return Some(*at);
        }
        let has_work = !self.queue.is_empty() || self.spool.as_ref().is_some_and(|s| !s.is_empty());
        self.breaker.reopens_at().filter(|&at| has_work && at > now)
    }

    /// Takes a batch to send, or sets it aside when this output already has
    /// as many as it may queue (`limit`).
    pub(super) fn offer(&mut self, batch: Batch, limit: usize, books: &mut Books<'_>) {
        if self.load() < limit {
            self.queue.push_back(batch);
        } else {
            self.set_aside(&batch.records, "the output is too slow to keep up", books);
        }
    }

    /// Starts the next piece of work if the sender is idle: a copy, else a
    /// retry that is due, else a fresh batch or a replay in turn.
    pub(super) fn pump(&mut self, now: Instant, books: &mut Books<'_>) {
        if self.sending() {
            return;
        }
        while let Some(copy) = self.copies.pop_front() {
            // A copy goes before queued batches, but not through a pause
            // the output asked for (a retry waiting for its time, honouring
            // a Retry-After) nor an open breaker.
            let paused = self.waiting.as_ref().is_some_and(|(_, at)| now < *at);
            let why = if !self.breaker.allows(now) {
                "circuit breaker open, the output is not being called"
            } else if paused {
                "the output asked for a pause (a retry waits for its time)"
            } else {
                return self.start_copy(copy);
            };
            let output = &self.output;
            let refused = crate::Error::retry_later(format!("{output}: {why}"));
            self.copy_answers.push((copy.id, Err(refused)));
        }
        if let Some((_, at)) = &self.waiting {
            if now < *at {
                return;
            }
            let (work, _) = self.waiting.take().expect("checked");
            return self.start(work.work, work.attempt, books);
        }
        if !self.breaker.allows(now) {
            // Not calling the output: what is queued goes to the spool.
            while let Some(batch) = self.queue.pop_front() {
                self.set_aside(&batch.records, "circuit breaker open", books);
            }
            return;
        }
        loop {
            let replay = self.can_replay(now) && (self.replay_next || self.queue.is_empty());
            if !replay {
                if let Some(batch) = self.queue.pop_front() {
                    self.replay_next = true;
                    self.start(Work::Batch(batch), 1, books);
                }
                return;
            }
            self.replay_next = false;
            let spool = self.spool.as_mut().expect("can_replay");
            let (file, count) = spool.oldest().expect("can_replay");
            match spool.read(file) {
                Ok(lines) => {
                    let work = Work::Replay {
                        file,
                        lines: Arc::new(lines),
                        count: count as usize,
                    };
                    return self.start(work, 1, books);
                }
                Err(unreadable) => {
                    books.stats.drop_spooled(count);
                    let output = &self.output;
                    let dir = spool.dir().display().to_string();
                    match unreadable {
                        Unreadable::Gone => books.diagnostics.say("spool-gone", || {
                            format!("{output}: a spool file in {dir} disappeared before it was replayed; {count} records lost")
                        }),
                        Unreadable::Corrupt(why) => {
                            books.stats.corrupt_files += 1;
                            books.diagnostics.say("spool-corrupt", || {
                                format!("{output}: a spool file in {dir} was damaged ({why}); moved to corrupt/, {count} records lost")
                            })
                        }
                    };
                }
            }
        }
    }

    fn start_copy(&mut self, copy: BufferCopy) {
        self.next_job += 1;
        let job = Job {
            id: self.next_job,
            load: Load::Copy(copy.records),
        };
        // The sender is idle, so its slot is free unless its thread is gone.
        if self.jobs.try_send(job).is_ok() {
            self.copy_in_flight = Some((self.next_job, copy.id));
        } else {
            let gone = Error::new(
                crate::ErrorKind::Closed,
                "the output's sender thread stopped",
            );
            self.copy_answers.push((copy.id, Err(gone)));
        }
    }

    fn start(&mut self, work: Work, attempt: u32, books: &mut Books<'_>) {
        self.next_job += 1;
        let job = Job {
            id: self.next_job,
            load: work.load(),
        };
        self.current = Some(InFlight {
            job: job.id,
            work,
            attempt,
        });
        // The sender is idle (nothing in flight), so its slot is free; it
        // only fails if the sender thread is gone: then that is the answer.
        if self.jobs.try_send(job).is_err() {
            let gone = Error::new(
                crate::ErrorKind::Closed,
                "the output's sender thread stopped",
            );
            self.answered(self.next_job, Err(gone), Instant::now(), None, None, books);
        }
    }

    /// The sender's answer for job `job`. `retry` is the policy, or `None`
    /// for no retries. While closing (`until` is the shutdown's deadline),
    /// a lane with a spool retries no more (the spool keeps what failed),
    /// and one without retries only what is due before the deadline: it
    /// has nowhere else to put it.
    pub(super) fn answered(
        &mut self,
        job: u64,
        outcome: crate::Result<Delivery>,
        now: Instant,
        retry: Option<&RetryPolicy>,
        until: Option<Instant>,
        books: &mut Books<'_>,
    ) {
        if let Some((copy_job, id)) = self.copy_in_flight {
            if copy_job == job {
                self.copy_in_flight = None;
                self.copy_answers.push((id, outcome));
                return;
            }
        }
        let retry = retry.filter(|_| until.is_none() || self.spool.is_none());
        match &self.current {
            Some(flight) if flight.job == job => {}
            _ => return, // an answer for work already set aside
        }
        let flight = self.current.take().expect("checked");
        let count = flight.work.load().len();
        match outcome {
            Ok(delivery) => {
                self.breaker.success();
                books.stats.breaker_open = false;
                let rejected = delivery.rejected.min(count);
                let rejection = delivery.rejection.as_deref();
                match flight.work {
                    Work::Batch(batch) => {
                        books
                            .stats
                            .acknowledge(count as u64, rejected as u64, false, rejection);
                        books.recycle(batch.records);
                    }
                    Work::Replay { file, .. } => {
                        if let Some(spool) = self.spool.as_mut() {
                            spool.remove(file);
                        }
                        books
                            .stats
                            .acknowledge(count as u64, rejected as u64, true, rejection);
                    }
                }
                self.tally
                    .add_delivered(count - rejected, delivery.ingested);
                self.tally.add_rejected(rejected, rejection);
                if let Some(message) = rejection {
                    let output = &self.output;
                    books
                        .diagnostics
                        .say(&format!("partial-{}", self.index), || {
                            format!("{output}: {message}")
                        });
                }
            }
            Err(err) if Refusal::of(&err, count) == Refusal::Split => {
                self.split(flight.work, &err, books);
            }
            Err(err) if Refusal::of(&err, count) == Refusal::ForGood => {
                books.stats.failed_flushes += 1;
                self.reject(flight.work, &err, books);
            }
            Err(err) => {
                let replay = matches!(flight.work, Work::Replay { .. });
                let next = (retry.filter(|r| !replay && flight.attempt < r.attempts()))
                    .map(|r| {
                        crate::deadline::later(now, r.backoff(flight.attempt, err.retry_after()))
                    })
                    .filter(|at| until.is_none_or(|deadline| *at < deadline));
                if let Some(at) = next {
                    books.stats.retried += 1;
                    self.waiting = Some((
                        InFlight {
                            attempt: flight.attempt + 1,
                            ..flight
                        },
                        at,
                    ));
                    return;
                }
                books.stats.failed_flushes += 1;
                if self.breaker.failure(now) {
                    books.stats.breaker_open = true;
                    // An outage is said when it starts, not only when
                    // records are dropped: with a spool nothing else would
                    // tell (rate-limited, one line a minute per output).
                    let output = &self.output;
                    let pause = (self.breaker.reopens_at())
                        .map(|at| at.saturating_duration_since(now))
                        .unwrap_or_default();
                    let keeping = if self.spool.is_some() {
                        "batches go to the spool until it answers"
                    } else {
                        "and with no spool folder, what cannot be sent is dropped"
                    };
                    books
                        .diagnostics
                        .say(&format!("breaker-{}", self.index), || {
                            format!(
                                "{output}: {err}; not sent to for {} ms (circuit breaker open), {keeping}",
                                pause.as_millis()
                            )
                        });
                }
                match flight.work {
                    Work::Batch(batch) => self.set_aside(&batch.records, &err.to_string(), books),
                    Work::Replay { .. } => self.replay_failed = retry.is_none(),
                }
            }
        }
    }

    /// A server that refused what the work holds (see [`Refusal::Split`]):
    /// it goes again in two halves.
    fn split(&mut self, work: Work, why: &Error, books: &mut Books<'_>) {
        match work {
            Work::Batch(batch) => {
                if !self.spend_split(&batch) {
                    books.stats.failed_flushes += 1;
                    return self.reject(Work::Batch(batch), why, books);
                }
                let half = batch.records.len() / 2;
                let (a, b) = batch.records.split_at(half);
                for part in [b, a] {
                    self.queue.push_front(Batch {
                        seq: batch.seq,
                        records: Arc::new(part.to_vec()),
                    });
                }
            }
            Work::Replay { file, lines, count } => {
                let cut = lines
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .nth(count / 2 - 1)
                    .map_or(lines.len(), |(i, _)| i + 1);
                let (a, b) = lines.split_at(cut);
                let written = self.spool.as_mut().map(|spool| spool.split(file, a, b));
                if let Some(Err(err)) = written {
                    // Sending it whole again would meet the same refusal: give
                    // up on it rather than loop.
                    let err = Error::new(
                        crate::ErrorKind::Io,
                        format!("refused ({why}) and cannot be split: {err}"),
                    );
                    self.reject(Work::Replay { file, lines, count }, &err, books);
                }
            }
        }
    }

    /// Takes two requests from `batch`'s [`split_budget`]; false when it
    /// is spent, and the batch is to be set aside whole.
    fn spend_split(&mut self, batch: &Batch) -> bool {
        if !self.split_budgets.contains_key(&batch.seq) {
            // Forget the budgets of batches no longer here.
            let live = |seq: &u64| {
                let here = |b: &Batch| b.seq == *seq;
                self.queue.iter().any(here)
                    || [self.current.as_ref(), self.waiting.as_ref().map(|(w, _)| w)]
                        .into_iter()
                        .flatten()
                        .any(|f| matches!(&f.work, Work::Batch(b) if here(b)))
            };
            let stale: Vec<u64> = (self.split_budgets.keys())
                .copied()
                .filter(|seq| !live(seq))
                .collect();
            for seq in stale {
                self.split_budgets.remove(&seq);
            }
        }
        let left = (self.split_budgets)
            .entry(batch.seq)
            .or_insert_with(|| split_budget(batch.records.len()));
        if *left < 2 {
            return false;
        }
        *left -= 2;
        true
    }

    /// Work the output refused for good: kept in `rejected/` when there is a
    /// spool, and counted as dropped either way.
    fn reject(&mut self, work: Work, err: &Error, books: &mut Books<'_>) {
        let reason = err.to_string();
        let count = work.load().len();
        match work {
            Work::Batch(batch) => {
                if let Some(spool) = self.spool.as_mut() {
                    let lines = self.output.encode_lines(&batch.records);
                    let _ = spool.write_rejected(&lines, &reason);
                }
                books.stats.refuse(count as u64, false, &reason);
            }
            Work::Replay { file, .. } => {
                if let Some(spool) = self.spool.as_mut() {
                    spool.reject(file, &reason);
                }
                books.stats.refuse(count as u64, true, &reason);
            }
        }
        self.tally.add_rejected(count, Some(&reason));
        let output = &self.output;
        books
            .diagnostics
            .say(&format!("rejected-{}", self.index), || {
                format!("{output} refused a batch of {count} records, not retried: {reason}")
            });
    }

    /// Writes records to the spool, or drops them (counted) without one.
    /// Records too many for one spool file are written as several.
    fn set_aside(&mut self, records: &[Record], reason: &str, books: &mut Books<'_>) {
        let count = records.len();
        let too_big = self.spool.as_ref().is_some_and(|s| {
            count > 1 && (count as u64).saturating_mul(APPROX_RECORD_BYTES) > s.max_bytes() / 4
        });
        if too_big {
            let (a, b) = records.split_at(count / 2);
            self.set_aside(a, reason, books);
            return self.set_aside(b, reason, books);
        }
        let output = &self.output;
        let keep = match &self.current {
            Some(InFlight {
                work: Work::Replay { file, .. },
                ..
            }) => Some(*file),
            _ => None,
        };
        if let Some(spool) = self.spool.as_mut() {
            let lines = output.encode_lines(records);
            match spool.write(&lines, keep) {
                Ok(written) => {
                    books.stats.spool(count as u64);
                    books.stats.drop_spooled(written.evicted);
                    self.tally.spooled += count;
                    if written.evicted > 0 {
                        let evicted = written.evicted;
                        books.diagnostics.say(&format!("evicted-{}", self.index), || {
                            format!("{output}: the spool is full; dropped its {evicted} oldest records")
                        });
                    }
                    return;
                }
                Err(err) => {
                    books
                        .diagnostics
                        .say(&format!("spool-write-{}", self.index), || {
                            format!("{output}: {err}")
                        });
                }
            }
        }
        books.stats.drop_in_flight(count as u64);
        self.tally.dropped += count;
        let spool = if self.spool.is_some() {
            ""
        } else {
            "; configure a spool folder to keep them"
        };
        books
            .diagnostics
            .say(&format!("dropped-{}", self.index), || {
                format!("{output}: dropped {count} records ({reason}){spool}")
            });
    }

    /// Closing and out of time: what is queued, in flight (a send that
    /// hangs) or waiting for a retry goes to the spool, or is dropped and
    /// counted. A send still running may deliver its batch as well
    /// (at-least-once). Returns the records set aside.
    pub(super) fn abandon(&mut self, books: &mut Books<'_>) -> usize {
        // Everything in as few spool files as fit: one fsync per batch
        // would make a large backlog outlast the deadline by far.
        let mut left: Vec<Record> = Vec::new();
        let flights = [self.current.take(), self.waiting.take().map(|(f, _)| f)];
        for flight in flights.into_iter().flatten() {
            if let Work::Batch(batch) = flight.work {
                left.extend(batch.records.iter().cloned());
            }
        }
        for batch in std::mem::take(&mut self.queue) {
            left.extend(batch.records.iter().cloned());
        }
        if !left.is_empty() {
            self.set_aside(&left, "shutdown deadline", books);
        }
        left.len()
    }

    /// Shutdown begins: a batch waiting for a retry is set aside now (in
    /// the spool), unless this lane has no spool and the retry is due
    /// before the `deadline`.
    pub(super) fn stop_retrying(&mut self, deadline: Instant, books: &mut Books<'_>) {
        let due_in_time = matches!(&self.waiting, Some((_, at)) if *at < deadline);
        if self.spool.is_none() && due_in_time {
            return; // no spool to keep it: the retry is its one chance
        }
        if let Some((
            InFlight {
                work: Work::Batch(batch),
                ..
            },
            _,
        )) = self.waiting.take()
        {
            self.set_aside(&batch.records, "shutdown while retrying", books);
        }
    }
}
