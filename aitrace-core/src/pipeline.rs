//! Background delivery: a dispatcher thread that drains the buffer in
//! batches, and one worker thread per output that delivers them with
//! retries, a circuit breaker and a disk spool.
//!
//! Application threads only push into the buffer; every I/O happens on these
//! threads, which are marked as sending so their own logging is never
//! captured. A flush request is an epoch number: the dispatcher drains the
//! buffer and queues a marker behind the batches of every worker; a flush is
//! done when every worker has passed its marker.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::buffer::Buffer;
use crate::error::{Error, ErrorKind, Result};
use crate::logger::{FlushReport, mark_sending_thread};
use crate::output::{Delivery, Output, Payload};
use crate::record::Record;
use crate::retry::{Breaker, BreakerPolicy, RetryPolicy};
use crate::spool::Spool;
use crate::stats::OutputCounters;

#[derive(Clone, Debug)]
pub(crate) struct PipelineConfig {
    pub(crate) batch_size: usize,
    pub(crate) interval: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) breaker: BreakerPolicy,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) spool_max_bytes: u64,
    pub(crate) max_queued_batches: usize,
}

const ABANDONED: &str = "shutdown while a send hung";

enum Job {
    Batch(Arc<Vec<Record>>),
    Marker(u64),
    Shutdown,
}

struct Queue {
    jobs: VecDeque<Job>,
    batches: usize,
    tally: Delivery,
}

struct Worker {
    index: usize,
    output: Output,
    counters: Arc<OutputCounters>,
    queue: Mutex<Queue>,
    ready: Condvar,
    spool: Mutex<Option<Spool>>,
    told_refusal: std::sync::atomic::AtomicBool,
    /// The batch being sent, so a shutdown can spool it if the send hangs.
    in_flight: Mutex<Option<Arc<Vec<Record>>>>,
    /// Set when a shutdown spooled this worker's batches in its place.
    abandoned: std::sync::atomic::AtomicBool,
}

struct Control {
    requested: u64,
    epoch_records: usize,
    done: Vec<u64>,
    reports: Vec<Delivery>,
    shutdown: Option<Instant>,
    exited: usize,
    dispatcher_exited: bool,
    wakers: Vec<(u64, Waker)>,
    earliest_async_deadline: Option<Instant>,
}

pub(crate) struct Shared {
    buffer: Arc<Buffer>,
    config: PipelineConfig,
    workers: Vec<Arc<Worker>>,
    control: Mutex<Control>,
    changed: Condvar,
    /// Signalled when a worker takes a batch off its queue.
    room_lock: Mutex<()>,
    room: Condvar,
}

pub(crate) struct Pipeline {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pipeline {
    pub(crate) fn start(
        buffer: Arc<Buffer>,
        outputs: &[Output],
        counters: &[Arc<OutputCounters>],
        config: PipelineConfig,
    ) -> Result<Self> {
        let mut workers = Vec::with_capacity(outputs.len());
        for (index, (output, counters)) in outputs.iter().zip(counters).enumerate() {
            let spool = match &config.spool_dir {
                Some(root) => {
                    let spool = Spool::open(root.join(output.slug()), config.spool_max_bytes)?;
                    counters
                        .spool_pending
                        .store(spool.pending(), std::sync::atomic::Ordering::Relaxed);
                    Some(spool)
                }
                None => None,
            };
            workers.push(Arc::new(Worker {
                index,
                output: output.clone(),
                counters: counters.clone(),
                queue: Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    batches: 0,
                    tally: Delivery::default(),
                }),
                ready: Condvar::new(),
                spool: Mutex::new(spool),
                told_refusal: std::sync::atomic::AtomicBool::new(false),
                in_flight: Mutex::new(None),
                abandoned: std::sync::atomic::AtomicBool::new(false),
            }));
        }
        let n = workers.len();
        let shared = Arc::new(Shared {
            buffer,
            config,
            workers,
            control: Mutex::new(Control {
                requested: 0,
                epoch_records: 0,
                done: vec![0; n],
                reports: vec![Delivery::default(); n],
                shutdown: None,
                exited: 0,
                dispatcher_exited: false,
                wakers: Vec::new(),
                earliest_async_deadline: None,
            }),
            changed: Condvar::new(),
            room_lock: Mutex::new(()),
            room: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(n + 1);
        for worker in &shared.workers {
            let (shared, worker) = (shared.clone(), worker.clone());
            threads.push(spawn(format!("aitrace-out-{}", worker.index), move || {
                run_worker(&shared, &worker);
            })?);
        }
        let dispatcher = {
            let shared = shared.clone();
            spawn("aitrace-sender".to_owned(), move || run_dispatcher(&shared))?
        };
        shared.buffer.set_sender(dispatcher.thread().clone());
        threads.push(dispatcher);
        Ok(Pipeline {
            shared,
            threads: Mutex::new(threads),
        })
    }

    fn request(&self) -> Result<u64> {
        let mut control = self.shared.control.lock();
        if control.shutdown.is_some() {
            return Err(Error::new(ErrorKind::Closed, "the logger was shut down"));
        }
        control.requested += 1;
        let epoch = control.requested;
        drop(control);
        self.shared.wake_dispatcher();
        Ok(epoch)
    }

    /// Asks for a flush without waiting for it.
    pub(crate) fn trigger(&self) {
        let _ = self.request();
    }

    pub(crate) fn flush(&self, timeout: Duration) -> Result<FlushReport> {
        let epoch = self.request()?;
        let deadline = Instant::now() + timeout;
        let mut control = self.shared.control.lock();
        while !control.done.iter().all(|&d| d >= epoch) {
            if self
                .shared
                .changed
                .wait_until(&mut control, deadline)
                .timed_out()
            {
                drop(control);
                return Err(self.timed_out(timeout));
            }
        }
        Ok(control.report())
    }

    fn timed_out(&self, timeout: Duration) -> Error {
        let left = self.shared.in_flight();
        Error::new(
            ErrorKind::TimedOut,
            format!(
                "flush did not finish within {timeout:?}; {left} records still buffered or queued"
            ),
        )
        .with_retained(left)
    }

    pub(crate) fn flush_async(&self, timeout: Duration) -> FlushFuture {
        let state = match self.request() {
            Ok(epoch) => {
                let deadline = Instant::now() + timeout;
                let mut control = self.shared.control.lock();
                control.earliest_async_deadline = Some(
                    control
                        .earliest_async_deadline
                        .map_or(deadline, |d| d.min(deadline)),
                );
                drop(control);
                self.shared.buffer.wake_sender();
                FlushState::Waiting {
                    shared: self.shared.clone(),
                    epoch,
                    deadline,
                    timeout,
                }
            }
            Err(err) => FlushState::Done(Some(Err(err))),
        };
        FlushFuture { state }
    }

    /// Delivers or spools what is buffered, then stops the threads. Never
    /// waits much past `timeout`: batches still queued at the deadline are
    /// spooled (or, without a spool, dropped and counted).
    pub(crate) fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        let started = Instant::now();
        // Most of the budget for a normal flush, the rest for spooling.
        if self.shared.control.lock().shutdown.is_some() {
            return Ok(FlushReport::default()); // already shut down
        }
        let flushed = self.flush(timeout.mul_f64(0.8));
        let deadline = started + timeout;
        {
            let mut control = self.shared.control.lock();
            if control.shutdown.is_some() {
                return flushed;
            }
            control.shutdown = Some(deadline);
        }
        self.shared.changed.notify_all();
        self.shared.wake_dispatcher();
        for worker in &self.shared.workers {
            worker.ready.notify_all();
        }
        let expected = self.shared.workers.len() + 1;
        let mut control = self.shared.control.lock();
        // The dispatcher does no I/O: it hands its last batches over promptly.
        let dispatcher_deadline = Instant::now().max(deadline) + Duration::from_secs(2);
        while !control.dispatcher_exited {
            if self
                .shared
                .changed
                .wait_until(&mut control, dispatcher_deadline)
                .timed_out()
            {
                break;
            }
        }
        let grace = deadline + Duration::from_millis(500);
        while control.exited < expected {
            if self
                .shared
                .changed
                .wait_until(&mut control, grace)
                .timed_out()
            {
                break;
            }
        }
        let all_exited = control.exited >= expected;
        drop(control);
        if !all_exited {
            // A worker is stuck (a hung server): keep what it holds.
            for worker in &self.shared.workers {
                worker.abandon();
            }
        }
        let threads = std::mem::take(&mut *self.threads.lock());
        if all_exited {
            for thread in threads {
                let _ = thread.join();
            }
        } else {
            eprintln!(
                "aitrace: a send outlived the shutdown deadline; its batch was spooled (or dropped without a spool)"
            );
        }
        let left = self.shared.in_flight();
        match flushed {
            Ok(report) if left == 0 => Ok(report),
            Ok(_) | Err(_) if left > 0 => Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "shutdown did not finish within {timeout:?}; {left} records were not delivered"
                ),
            )
            .with_retained(left)),
            other => other,
        }
    }
}

impl Control {
    fn report(&self) -> FlushReport {
        FlushReport {
            records: self.epoch_records,
            deliveries: self.reports.clone(),
        }
    }
}

impl Shared {
    fn shutdown_deadline(&self) -> Option<Instant> {
        self.control.lock().shutdown
    }

    fn in_flight(&self) -> usize {
        let queued: usize = self
            .workers
            .iter()
            .map(|w| {
                w.queue
                    .lock()
                    .jobs
                    .iter()
                    .map(|j| match j {
                        Job::Batch(b) => b.len(),
                        _ => 0,
                    })
                    .sum::<usize>()
                    + w.in_flight.lock().as_ref().map_or(0, |b| b.len())
            })
            .max()
            .unwrap_or(0);
        self.buffer.len() + queued
    }

    /// Sleeps up to `d`, waking early at shutdown.
    fn pause(&self, d: Duration) {
        let mut control = self.control.lock();
        if control.shutdown.is_none() {
            self.changed.wait_for(&mut control, d);
        }
    }

    fn wake_dispatcher(&self) {
        self.buffer.wake_sender();
        let _room = self.room_lock.lock();
        self.room.notify_all();
    }

    /// Whether every worker's queue is full: then the records stay in the
    /// buffer, where the overflow policy applies.
    fn all_full(&self) -> bool {
        let max = self.config.max_queued_batches;
        self.workers.iter().all(|w| w.queue.lock().batches >= max)
    }

    /// Drains the buffer into batches for every worker, as many as there is
    /// room for; returns the count and whether the buffer was emptied.
    fn dispatch(&self, force: bool) -> (usize, bool) {
        let size = self.config.batch_size.max(1);
        let limit = if force {
            usize::MAX
        } else {
            let max = self.config.max_queued_batches;
            let room = self
                .workers
                .iter()
                .map(|w| max.saturating_sub(w.queue.lock().batches))
                .max()
                .unwrap_or(0);
            room.saturating_mul(size)
        };
        let (batches, complete) = self.buffer.drain_batches(limit, size);
        let mut total = 0;
        let max = if force {
            usize::MAX
        } else {
            self.config.max_queued_batches
        };
        for batch in batches {
            total += batch.len();
            let batch = Arc::new(batch);
            for worker in &self.workers {
                worker.enqueue(batch.clone(), max);
            }
        }
        (total, complete)
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|e| Error::io(format_args!("cannot start thread {name}"), e))
}

fn run_dispatcher(shared: &Shared) {
    mark_sending_thread();
    let interval = shared.config.interval;
    let mut next_tick = Instant::now() + interval;
    let mut drained_epoch = 0;
    let mut drained_since_marker = 0;
    loop {
        let (requested, shutdown) = {
            let control = shared.control.lock();
            (control.requested, control.shutdown)
        };
        let now = Instant::now();
        let due = shutdown.is_some()
            || requested > drained_epoch
            || now >= next_tick
            || shared.buffer.take_batch_ready();
        let (drained, complete) = if !due {
            (0, false)
        } else if shutdown.is_some() {
            shared.dispatch(true)
        } else if shared.all_full() {
            // Every output is busy: leave the records in the buffer and wait
            // for room (or a shutdown) instead of spinning.
            let mut room = shared.room_lock.lock();
            shared
                .room
                .wait_for(&mut room, interval.min(Duration::from_millis(50)));
            continue;
        } else {
            shared.dispatch(false)
        };
        drained_since_marker += drained;
        if now >= next_tick {
            next_tick = now + interval;
        }
        if due && !complete {
            shared.buffer.wake_sender(); // more to drain before a flush marker may follow
        }
        if complete && requested > drained_epoch {
            shared.control.lock().epoch_records = drained_since_marker;
            drained_since_marker = 0;
            drained_epoch = requested;
            for worker in &shared.workers {
                worker.push(Job::Marker(requested));
            }
        }
        if shutdown.is_some() && complete {
            for worker in &shared.workers {
                worker.push(Job::Shutdown);
            }
            break;
        }
        let park_until = {
            let mut control = shared.control.lock();
            wake_async(&mut control, now);
            control
                .earliest_async_deadline
                .map_or(next_tick, |d| d.min(next_tick))
        };
        std::thread::park_timeout(park_until.saturating_duration_since(Instant::now()));
    }
    let mut control = shared.control.lock();
    control.exited += 1;
    control.dispatcher_exited = true;
    shared.changed.notify_all();
}

/// Wakes async flushes that are done or past their deadline.
fn wake_async(control: &mut Control, now: Instant) {
    let done = control.done.iter().copied().min().unwrap_or(u64::MAX);
    let deadline_passed = control.earliest_async_deadline.is_some_and(|d| now >= d);
    if deadline_passed {
        control.earliest_async_deadline = None;
    }
    let mut i = 0;
    while i < control.wakers.len() {
        if deadline_passed || control.wakers[i].0 <= done {
            control.wakers.swap_remove(i).1.wake();
        } else {
            i += 1;
        }
    }
}

impl Worker {
    fn push(&self, job: Job) {
        self.queue.lock().jobs.push_back(job);
        self.ready.notify_one();
    }

    /// Queues a batch, or spools (else drops) it when the queue is full, so
    /// a slow output never holds back the dispatcher or the other outputs.
    fn enqueue(&self, batch: Arc<Vec<Record>>, max_batches: usize) {
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
    fn abandon(&self) {
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

fn run_worker(shared: &Shared, worker: &Worker) {
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

/// A flush awaited without blocking the thread; see
/// [`BufferedLogger::flush_async`](crate::BufferedLogger::flush_async).
#[must_use = "futures do nothing unless polled"]
pub struct FlushFuture {
    state: FlushState,
}

enum FlushState {
    Done(Option<Result<FlushReport>>),
    Waiting {
        shared: Arc<Shared>,
        epoch: u64,
        deadline: Instant,
        timeout: Duration,
    },
}

impl std::fmt::Debug for FlushFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushFuture").finish_non_exhaustive()
    }
}

impl FlushFuture {
    pub(crate) fn ready(result: Result<FlushReport>) -> Self {
        FlushFuture {
            state: FlushState::Done(Some(result)),
        }
    }
}

impl Future for FlushFuture {
    type Output = Result<FlushReport>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let (shared, epoch, deadline, timeout) = match &mut self.state {
            FlushState::Done(result) => {
                return Poll::Ready(result.take().unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Closed,
                        "flush future polled after completion",
                    ))
                }));
            }
            FlushState::Waiting {
                shared,
                epoch,
                deadline,
                timeout,
            } => (shared.clone(), *epoch, *deadline, *timeout),
        };
        let mut control = shared.control.lock();
        let result = if control.done.iter().all(|&d| d >= epoch) {
            Ok(control.report())
        } else if Instant::now() >= deadline {
            drop(control);
            let left = shared.in_flight();
            Err(Error::new(
                ErrorKind::TimedOut,
                format!("flush did not finish within {timeout:?}; {left} records still buffered or queued"),
            )
            .with_retained(left))
        } else {
            control.wakers.push((epoch, cx.waker().clone()));
            return Poll::Pending;
        };
        self.state = FlushState::Done(None);
        Poll::Ready(result)
    }
}
