//! Background delivery: application threads only push into the buffer;
//! one delivery thread owns everything that changes while records are on
//! their way (see `owner.rs`), and one sender thread per output does the
//! I/O it is handed (see `sender.rs`). The handle below only sends the
//! delivery thread commands over a channel and waits on tickets.
//!
//! ```text
//! app threads ──push──▶ Buffer ──doorbell──▶ delivery thread ──Job──▶ sender 0 ──▶ output 0
//!                                     ▲        (lanes, spools,  ──Job──▶ sender 1 ──▶ output 1
//! handle ──Flush/Copy/Shutdown (inbox)┘         ledger)        ◀─Sent── senders
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};

mod lane;
mod owner;
mod sender;

use super::direct::{report_unsent, unsent_file_path};
use super::ticket::{Ticket, timed_out};
use super::{FlushFuture, Processor};
use crate::buffer::Buffer;
use crate::error::{ConfigError, Error, ErrorKind, Result};
use crate::flush_report::FlushReport;
use crate::output::Output;
use crate::record::Record;
use crate::retry::{Breaker, BreakerPolicy, RetryPolicy};
use crate::spool::Spool;
use crate::stats::Ledger;
use lane::Lane;
use owner::Owner;

/// How long past its deadline a shutdown waits for the delivery thread,
/// which does no network I/O (only spool writes), to hand over.
const HANDOVER_GRACE: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub(crate) struct BackgroundConfig {
    pub(crate) batch_size: usize,
    pub(crate) interval: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) breaker: BreakerPolicy,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) spool_max_bytes: u64,
    pub(crate) max_queued_batches: usize,
}

/// What the delivery thread is told.
pub(super) enum Command {
    /// Deliver what was captured before this; wake an async waiter at `wake_at`.
    Flush {
        ticket: Arc<Ticket>,
        wake_at: Option<Instant>,
    },
    /// Send a copy of these records to every output once (`flush_keep`).
    Copy {
        records: Arc<Vec<Record>>,
        ticket: Arc<Ticket>,
    },
    /// Deliver or set aside everything by `deadline`, then stop.
    Shutdown {
        deadline: Instant,
        ticket: Arc<Ticket>,
    },
    /// A sender's answer for one job.
    Sent {
        lane: usize,
        job: u64,
        outcome: Result<crate::flush_report::Delivery>,
    },
}

/// Filled in by the delivery thread as it stops: the spools it owned, now
/// owned by whoever takes them (the last handle's drop).
#[derive(Debug, Default)]
pub(super) struct Stopped {
    spools: Mutex<Option<Vec<Option<Spool>>>>,
    done: Condvar,
}

impl Stopped {
    fn stop(&self, spools: Vec<Option<Spool>>) {
        *self.spools.lock() = Some(spools);
        self.done.notify_all();
    }

    /// Waits until `deadline` for the delivery thread to stop.
    fn wait(&self, deadline: Instant) -> bool {
        let mut spools = self.spools.lock();
        while spools.is_none() {
            if self.done.wait_until(&mut spools, deadline).timed_out() {
                break;
            }
        }
        spools.is_some()
    }
}

pub(crate) struct BackgroundProcessor {
    inbox: Sender<Command>,
    buffer: Arc<Buffer>,
    ledger: Arc<Ledger>,
    outputs: Vec<Output>,
    stopped: Arc<Stopped>,
    owner: Mutex<Option<JoinHandle<()>>>,
    /// Whether a shutdown was asked for.
    closed: std::sync::atomic::AtomicBool,
    /// The drops told of by the last exit report (see [`Self::report_drops`]).
    reported_drops: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for BackgroundProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundProcessor")
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ConfigError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|e| ConfigError::io(format_args!("cannot start thread {name}"), e))
}

impl BackgroundProcessor {
    /// Opens the spools and starts the threads. Fails if a spool folder
    /// cannot be used or a thread cannot start.
    pub(crate) fn start(
        buffer: Arc<Buffer>,
        outputs: Vec<Output>,
        ledger: Arc<Ledger>,
        config: BackgroundConfig,
    ) -> Result<Self, ConfigError> {
        let mut spools = Vec::with_capacity(outputs.len());
        for output in &outputs {
            spools.push(match &config.spool_dir {
                Some(root) => Some(Spool::open(
                    root.join(output.slug()),
                    config.spool_max_bytes,
                )?),
                None => None,
            });
        }
        let (inbox, commands) = crossbeam_channel::unbounded();
        let (bell, doorbell) = crossbeam_channel::bounded(1);
        let mut lanes = Vec::with_capacity(outputs.len());
        {
            let mut stats = ledger.lock();
            for (index, (output, mut spool)) in outputs.iter().zip(spools).enumerate() {
                if let Some(spool) = spool.as_mut() {
                    if let Some(busy) = spool.busy() {
                        let owner = match busy.owner.as_deref() {
                            Some(pid) if pid == std::process::id().to_string() => {
                                "another output of this process (the same target twice)".to_owned()
                            }
                            Some(pid) => format!("another process ({pid})"),
                            None => "another process".to_owned(),
                        };
                        eprintln!(
                            "aitrace: {output}: spool folder {} is in use by {owner}; this output spools to {}",
                            busy.asked.display(),
                            spool.dir().display()
                        );
                    }
                    let quarantined = spool.take_quarantined();
                    let s = &mut stats[index];
                    s.recovered = spool.recovered();
                    s.spool_pending = spool.pending();
                    s.corrupt_files = quarantined.len() as u64;
                    if let Some(first) = quarantined.first() {
                        eprintln!(
                            "aitrace: {output}: {} damaged spool files moved aside, first {} ({})",
                            quarantined.len(),
                            first.path.display(),
                            first.reason
                        );
                    }
                }
                let (jobs, job_queue) = crossbeam_channel::bounded(1);
                let (sender_output, answers) = (output.clone(), inbox.clone());
                spawn(format!("aitrace-send-{index}"), move || {
                    sender::run(index, &sender_output, &job_queue, &answers);
                })?;
                lanes.push(Lane::new(
                    index,
                    output.clone(),
                    jobs,
                    Breaker::new(config.breaker),
                    spool,
                ));
            }
        }
        let stopped = Arc::new(Stopped::default());
        let owner = Owner::new(
            commands,
            doorbell,
            buffer.clone(),
            ledger.clone(),
            config,
            lanes,
            stopped.clone(),
        );
        let owner = spawn("aitrace-delivery".into(), move || owner.run())?;
        buffer.set_doorbell(bell);
        Ok(BackgroundProcessor {
            inbox,
            buffer,
            ledger,
            outputs,
            stopped,
            owner: Mutex::new(Some(owner)),
            closed: std::sync::atomic::AtomicBool::new(false),
            reported_drops: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn closed_error() -> Error {
        Error::new(ErrorKind::Closed, "the logger was shut down")
    }

    /// Records still buffered or on their way to the slowest output.
    fn left(buffer: &Buffer, ledger: &Ledger) -> usize {
        let books = ledger.lock();
        let in_flight = books.iter().map(|o| o.in_flight).max().unwrap_or(0);
        buffer.len() + in_flight as usize
    }

    fn ask_flush(&self, wake_at: Option<Instant>) -> Result<Arc<Ticket>> {
        self.ask(|ticket| Command::Flush { ticket, wake_at })
    }

    /// Sends the delivery thread the command `make` builds around a new
    /// ticket, and returns the ticket.
    fn ask(&self, make: impl FnOnce(Arc<Ticket>) -> Command) -> Result<Arc<Ticket>> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Self::closed_error());
        }
        let ticket = Arc::new(Ticket::default());
        let command = make(ticket.clone());
        self.inbox.send(command).map_err(|_| Self::closed_error())?;
        // Delivery stops by setting `stopped`, then answering what is in
        // the inbox: a flush that arrived after that is answered here.
        if self.stopped.spools.lock().is_some() {
            ticket.complete(Err(Self::closed_error()));
        }
        Ok(ticket)
    }

    /// As delivery stops: the total of records dropped since the logger
    /// started, on stderr (see [`crate::diagnostics::report_drops_in_all`]).
    fn report_drops(&self) {
        let overflow = self.buffer.tally().dropped;
        let books = self.ledger.lock();
        crate::diagnostics::report_drops_in_all(overflow, &books, &self.reported_drops);
    }

    /// Puts what is still buffered after delivery stopped in the spools
    /// handed back (else a fallback file); local file I/O only.
    fn set_aside_leftovers(&self) {
        let mut books = self.ledger.lock();
        let records = self.buffer.drain_for_delivery();
        if records.is_empty() {
            return;
        }
        let n = records.len() as u64;
        for o in books.iter_mut() {
            o.in_flight += n;
        }
        let mut spools = self.stopped.spools.lock();
        let mut unsent = false;
        for (i, output) in self.outputs.iter().enumerate() {
            let spool = spools.as_mut().and_then(|s| s[i].as_mut());
            let written = spool.map(|spool| spool.write(&output.encode_lines(&records), None));
            match written {
                Some(Ok(written)) => {
                    books[i].spool(n);
                    books[i].drop_spooled(written.evicted);
                }
                _ => {
                    books[i].drop_in_flight(n);
                    unsent = true;
                }
            }
        }
        drop(spools);
        drop(books);
        if unsent {
            report_unsent(&unsent_file_path(), &records, "delivery had stopped");
        }
    }
}

impl Processor for BackgroundProcessor {
    fn flush(&self, timeout: Duration) -> Result<FlushReport> {
        let deadline = crate::deadline::from_now(timeout);
        let ticket = self.ask_flush(None)?;
        match ticket.wait(deadline) {
            Some(result) => result,
            None => Err(timed_out(timeout, Self::left(&self.buffer, &self.ledger))),
        }
    }

    fn flush_async(&self, timeout: Duration) -> FlushFuture {
        // One deadline for the future and the delivery thread that wakes it.
        let deadline = crate::deadline::from_now(timeout);
        match self.ask_flush(Some(deadline)) {
            Ok(ticket) => {
                let (buffer, ledger) = (self.buffer.clone(), self.ledger.clone());
                FlushFuture::waiting(ticket, deadline, timeout, move || {
                    Self::left(&buffer, &ledger)
                })
            }
            Err(err) => FlushFuture::ready(Err(err)),
        }
    }

    fn trigger(&self) {
        self.buffer.wake_sender();
    }

    /// Through the delivery thread: each output's sender sends the copy
    /// when it is free (before queued batches).
    fn send_copy(&self, records: Arc<Vec<Record>>, timeout: Duration) -> Result<FlushReport> {
        let deadline = crate::deadline::from_now(timeout);
        let count = records.len();
        let ticket = self.ask(|ticket| Command::Copy { records, ticket })?;
        ticket.wait(deadline).unwrap_or_else(|| {
            Err(Error::new(
                ErrorKind::FlushTimedOut,
                format!(
                    "a copy of {count} records was not sent to every output within {timeout:?}"
                ),
            ))
        })
    }

    fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        if self.closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(FlushReport::default()); // already shut down
        }
        let deadline = crate::deadline::from_now(timeout);
        let ticket = Arc::new(Ticket::default());
        let command = Command::Shutdown {
            deadline,
            ticket: ticket.clone(),
        };
        if self.inbox.send(command).is_err() {
            return Err(Self::closed_error());
        }
        let grace = crate::deadline::later(deadline, HANDOVER_GRACE);
        let result = ticket.wait(grace);
        if self.stopped.wait(grace) {
            if let Some(owner) = self.owner.lock().take() {
                let _ = owner.join(); // it has handed over and is returning
            }
        }
        self.report_drops();
        result.unwrap_or_else(|| {
            Err(Error::new(
                ErrorKind::FlushTimedOut,
                format!("the delivery thread did not stop within {timeout:?}"),
            ))
        })
    }

    fn close(&self, timeout: Duration) {
        if let Err(err) = self.shutdown(timeout) {
            eprintln!("aitrace: {err}");
        }
        // Spools handed back are written here; without them (no spool, or
        // a delivery thread that did not stop) leftovers go to a file.
        self.set_aside_leftovers();
        self.report_drops();
    }
}
