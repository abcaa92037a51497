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
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

mod future;
mod worker;

pub use future::FlushFuture;
use future::FlushState;
use worker::{Worker, run_worker};

use crate::buffer::Buffer;
use crate::error::{Error, ErrorKind, Result};
use crate::logger::{FlushReport, mark_sending_thread};
use crate::output::{Delivery, Output};
use crate::record::Record;
use crate::retry::{BreakerPolicy, RetryPolicy};
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
        FlushFuture::from_state(state)
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
