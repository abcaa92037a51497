//! The delivery thread: the one owner of every output's lane (queue, send
//! in flight, retry, breaker, spool). It never does network I/O, so it
//! always answers: it drains the buffer in batches, hands work (and the
//! copies `flush_keep` asks for) to the senders, acts on their answers,
//! completes flushes and copies, and keeps the books.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use super::lane::{Batch, Books, BufferCopy, Lane};
use super::{BackgroundConfig, Command, Stopped};
use crate::buffer::Buffer;
use crate::delivery::ticket::Ticket;
use crate::diagnostics::Diagnostics;
use crate::error::{Error, ErrorKind, Result};
use crate::flush_report::{Delivery, FlushReport};
use crate::reentrancy::mark_sending_thread;
use crate::stats::Ledger;

/// The longest the delivery thread sleeps without looking around.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// A flush waiting for what was captured before it.
struct PendingFlush {
    ticket: Arc<Ticket>,
    /// The last batch it waits for, once the buffer was emptied after it
    /// was asked for; `None` while there is still buffer to drain.
    through: Option<u64>,
    /// When to wake an async waiter to see its deadline passed.
    wake_at: Option<Instant>,
    /// The buffer's watermark when it was asked for: once every record
    /// before it was drained, it waits only for the batches they went into
    /// (under steady load the buffer is never empty).
    mark: Vec<u64>,
}

/// A copy of the buffer on its way to every output (`flush_keep`).
struct PendingCopy {
    id: u64,
    ticket: Arc<Ticket>,
    records: usize,
    /// Each output's outcome, by lane, as they come.
    answers: Vec<Option<Result<Delivery>>>,
}

pub(super) struct Owner {
    pub(super) inbox: Receiver<Command>,
    pub(super) doorbell: Receiver<()>,
    pub(super) buffer: Arc<Buffer>,
    pub(super) ledger: Arc<Ledger>,
    pub(super) config: BackgroundConfig,
    pub(super) lanes: Vec<Lane>,
    pub(super) diagnostics: Diagnostics,
    pub(super) stopped: Arc<Stopped>,
    flushes: Vec<PendingFlush>,
    copies: Vec<PendingCopy>,
    /// The id of the last copy asked for.
    last_copy: u64,
    /// The number of the last batch drained.
    seq: u64,
    /// Records drained since the last flush report.
    drained: usize,
    bell: bool,
    /// No output had room at the last look: the doorbell is not listened to
    /// (a ring would only wake this thread to find no room) until an answer
    /// or a timer frees some.
    stalled: bool,
    next_tick: Instant,
    closing: Option<(Instant, Arc<Ticket>)>,
    /// Emptied batch vectors, reused by the next drains: a batch is some
    /// hundred kilobytes, and a fresh one each time meant page faults (and,
    /// with glibc, memory mapped and unmapped) at every batch.
    spare: Vec<Vec<crate::record::Record>>,
}

impl Owner {
    pub(super) fn new(
        inbox: Receiver<Command>,
        doorbell: Receiver<()>,
        buffer: Arc<Buffer>,
        ledger: Arc<Ledger>,
        config: BackgroundConfig,
        lanes: Vec<Lane>,
        stopped: Arc<Stopped>,
    ) -> Self {
        let next_tick = crate::deadline::from_now(config.interval);
        Owner {
            inbox,
            doorbell,
            buffer,
            ledger,
            config,
            lanes,
            diagnostics: Diagnostics::default(),
            stopped,
            flushes: Vec::new(),
            copies: Vec::new(),
            last_copy: 0,
            seq: 0,
            drained: 0,
            bell: false,
            stalled: false,
            next_tick,
            closing: None,
            spare: Vec::new(),
        }
    }

    pub(super) fn run(mut self) {
        mark_sending_thread();
        let set_aside = loop {
            let now = Instant::now();
            if let Some((deadline, _)) = &self.closing {
                if now >= *deadline {
                    break self.abandon();
                }
            }
            // Senders first: an idle sender with a batch queued starts it
            // before the buffer is drained (which moves every record), then
            // again after, for what the drain queued.
            self.pump(now);
            self.dispatch(now);
            self.pump(now);
            self.settle_flushes(now);
            self.settle_copies();
            if self.closing.is_some()
                && self.buffer.len() == 0
                && self.lanes.iter().all(|l| l.is_finished(now))
            {
                break 0;
            }
            let wake = self.next_wake(now);
            let never = crossbeam_channel::never();
            let doorbell = if self.stalled { &never } else { &self.doorbell };
            select! {
                recv(self.inbox) -> command => match command {
                    Ok(command) => self.handle(command),
                    Err(_) => break self.abandon(), // every handle is gone
                },
                recv(doorbell) -> _ => self.bell = true,
                default(wake.saturating_duration_since(now)) => {}
            }
            // Take whatever else arrived before looking around again.
            while let Ok(command) = self.inbox.try_recv() {
                self.handle(command);
            }
        };
        self.finish(set_aside);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Flush { ticket, wake_at } => self.flushes.push(PendingFlush {
                ticket,
                through: None,
                wake_at,
                mark: self.buffer.watermark(),
            }),
            Command::Copy { records, ticket } => {
                if self.closing.is_some() {
                    ticket.complete(Err(closed()));
                    return;
                }
                self.last_copy += 1;
                let id = self.last_copy;
                for lane in &mut self.lanes {
                    let records = records.clone();
                    lane.offer_copy(BufferCopy { id, records });
                }
                self.copies.push(PendingCopy {
                    id,
                    ticket,
                    records: records.len(),
                    answers: self.lanes.iter().map(|_| None).collect(),
                });
            }
            Command::Shutdown { deadline, ticket } => {
                if self.closing.is_none() {
                    self.closing = Some((deadline, ticket));
                    let mut stats = self.ledger.lock();
                    for lane in &mut self.lanes {
                        let mut books = Books {
                            stats: &mut stats[lane.index],
                            diagnostics: &self.diagnostics,
                            spare: &mut self.spare,
                        };
                        lane.stop_retrying(deadline, &mut books);
                        lane.cancel_copies();
                    }
                } else {
                    ticket.complete(Ok(FlushReport::default()));
                }
            }
            Command::Sent { lane, job, outcome } => {
                let until = self.closing.as_ref().map(|(deadline, _)| *deadline);
                let mut stats = self.ledger.lock();
                let lane = &mut self.lanes[lane];
                let mut books = Books {
                    stats: &mut stats[lane.index],
                    diagnostics: &self.diagnostics,
                    spare: &mut self.spare,
                };
                let retry = Some(&self.config.retry);
                lane.answered(job, outcome, Instant::now(), retry, until, &mut books);
            }
        }
    }

    /// Drains the buffer into batches when one is due, as far as the
    /// outputs have room: when none has, the records stay in the buffer,
    /// where the overflow policy applies.
    fn dispatch(&mut self, now: Instant) {
        let closing = self.closing.is_some();
        let draining = self.flushes.iter().any(|f| f.through.is_none());
        let tick = now >= self.next_tick;
        if tick {
            self.next_tick = crate::deadline::later(now, self.config.interval);
        }
        if !(self.bell || tick || draining || closing) {
            return;
        }
        let size = self.config.batch_size;
        let limit = if closing {
            usize::MAX
        } else {
            let max = self.config.max_queued_batches;
            let room = self
                .lanes
                .iter()
                .map(|l| max.saturating_sub(l.load()))
                .max()
                .unwrap_or(0);
            room.saturating_mul(size)
        };
        self.stalled = limit == 0;
        if self.stalled {
            return; // wait for room: an answer from a sender wakes us
        }
        self.bell = false;
        let mut stats = self.ledger.lock();
        self.buffer.clear_ring();
        let (batches, complete) = self.buffer.drain_batches(limit, size, &mut self.spare);
        let total: usize = batches.iter().map(Vec::len).sum();
        for s in stats.iter_mut() {
            s.in_flight += total as u64;
        }
        self.drained += total;
        let queue_limit = if closing {
            usize::MAX
        } else {
            self.config.max_queued_batches
        };
        for records in batches {
            self.seq += 1;
            let batch = Batch {
                seq: self.seq,
                records: Arc::new(records),
            };
            for lane in &mut self.lanes {
                let mut books = Books {
                    stats: &mut stats[lane.index],
                    diagnostics: &self.diagnostics,
                    spare: &mut self.spare,
                };
                lane.offer(batch.clone(), queue_limit, &mut books);
            }
        }
        drop(stats);
        for flush in self.flushes.iter_mut().filter(|f| f.through.is_none()) {
            if complete || self.buffer.passed(&flush.mark) {
                flush.through = Some(self.seq);
            }
        }
        if !complete {
            self.bell = true; // more to drain as soon as there is room
        }
    }

    fn pump(&mut self, now: Instant) {
        let mut stats = self.ledger.lock();
        for lane in &mut self.lanes {
            let mut books = Books {
                stats: &mut stats[lane.index],
                diagnostics: &self.diagnostics,
                spare: &mut self.spare,
            };
            lane.pump(now, &mut books);
        }
    }

    /// Completes the flushes whose batches are all settled, and wakes async
    /// waiters whose deadline passed.
    fn settle_flushes(&mut self, now: Instant) {
        let oldest = self.lanes.iter().filter_map(Lane::oldest_unsettled).min();
        let settled = |f: &PendingFlush| f.through.is_some_and(|t| oldest.is_none_or(|o| o > t));
        if (self.flushes.iter()).any(|f| settled(f) && !f.ticket.is_abandoned()) {
            let report = self.report();
            self.flushes.retain(|f| {
                if settled(f) {
                    f.ticket.complete(Ok(report.clone()));
                    false
                } else {
                    true
                }
            });
        } else {
            // Only flushes whose callers gave up are settled: no one reads
            // their report, so what happened stays counted for the next
            // one (a later flush's, or the shutdown's).
            self.flushes.retain(|f| !settled(f));
        }
        for flush in &mut self.flushes {
            if flush.wake_at.is_some_and(|at| now >= at) {
                flush.wake_at = None;
                flush.ticket.nudge();
            }
        }
    }

    /// Collects the outputs' answers to copies, and completes each copy
    /// every output answered: its report, or the first failure. A copy
    /// whose caller gave up is forgotten where it still waits.
    fn settle_copies(&mut self) {
        for lane in &mut self.lanes {
            for (id, outcome) in lane.copy_answers.drain(..) {
                if let Some(copy) = self.copies.iter_mut().find(|c| c.id == id) {
                    copy.answers[lane.index] = Some(outcome);
                }
            }
        }
        let lanes = &mut self.lanes;
        self.copies.retain_mut(|copy| {
            if copy.ticket.is_abandoned() {
                lanes.iter_mut().for_each(|lane| lane.forget_copy(copy.id));
                return false;
            }
            if copy.answers.iter().any(Option::is_none) {
                return true;
            }
            let answers = copy.answers.drain(..).flatten();
            let deliveries: Result<Vec<Delivery>> = answers.collect();
            copy.ticket
                .complete(deliveries.map(|deliveries| FlushReport {
                    records: copy.records,
                    deliveries,
                }));
            false
        });
    }

    /// What every output did since the last report.
    fn report(&mut self) -> FlushReport {
        FlushReport {
            records: std::mem::take(&mut self.drained),
            deliveries: self
                .lanes
                .iter_mut()
                .map(|l| {
                    let name = l.output.to_string();
                    std::mem::replace(&mut l.tally, crate::flush_report::Delivery::named(name))
                })
                .collect(),
        }
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + MAX_IDLE;
        if self.closing.is_none() {
            wake = wake.min(self.next_tick);
        }
        if let Some((deadline, _)) = &self.closing {
            wake = wake.min(*deadline);
        }
        if self.bell && self.closing.is_none() && !self.stalled {
            // Drained as far as room allowed: look again when a lane frees.
            wake = wake.min(now + Duration::from_millis(50));
        }
        for lane in &self.lanes {
            if let Some(at) = lane.next_wake(now) {
                wake = wake.min(at);
            }
        }
        for flush in &self.flushes {
            if let Some(at) = flush.wake_at {
                wake = wake.min(at);
            }
        }
        wake
    }

    /// Out of time: every lane sets aside what it still holds.
    fn abandon(&mut self) -> usize {
        let mut stats = self.ledger.lock();
        let mut set_aside = 0;
        for lane in &mut self.lanes {
            let mut books = Books {
                stats: &mut stats[lane.index],
                diagnostics: &self.diagnostics,
                spare: &mut self.spare,
            };
            set_aside = set_aside.max(lane.abandon(&mut books));
        }
        set_aside
    }

    /// Hands the spools back, answers every waiter and stops the senders
    /// (dropping their job channels; a sender stuck in a send stops when it
    /// returns).
    fn finish(mut self, set_aside: usize) {
        let report = self.report();
        let closing = self.closing.take();
        let stopped_early = || {
            Error::new(
                ErrorKind::FlushTimedOut,
                format!(
                    "shutdown ran out of time; {set_aside} records were spooled or, without a spool, dropped"
                ),
            )
            .with_retained(set_aside)
        };
        let result: Result<FlushReport> = if set_aside > 0 {
            Err(stopped_early())
        } else {
            Ok(report.clone())
        };
        let spools = self.lanes.iter_mut().map(|l| l.spool.take()).collect();
        self.buffer.set_undrained();
        self.stopped.stop(spools);
        // A flush that raced the shutdown into the inbox is answered too.
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Flush { ticket, .. }
                | Command::Shutdown { ticket, .. }
                | Command::Copy { ticket, .. } => ticket.complete(Err(closed())),
                Command::Sent { .. } => {}
            }
        }
        // A copy not every output answered by now gets no more answers.
        for copy in self.copies.drain(..) {
            copy.ticket.complete(Err(Error::new(
                ErrorKind::Closed,
                "the logger was shut down before every output took the copy",
            )));
        }
        for flush in self.flushes.drain(..) {
            flush.ticket.complete(if set_aside > 0 {
                Err(stopped_early())
            } else {
                Ok(report.clone())
            });
        }
        if let Some((_, ticket)) = closing {
            ticket.complete(result);
        }
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the logger was shut down")
}
