//! How buffered records reach the outputs: [`Direct`] (a flush sends on
//! the calling thread, the default) or [`Background`] (a delivery thread
//! sends in batches, with retries, a circuit breaker and a disk spool).
//! Each holds only the settings its mode honours;
//! [`Builder::delivery`](crate::Builder::delivery) takes either. Here too:
//! the buffer's bound ([`OverflowPolicy`]), what a flush returns
//! ([`FlushReport`]) and the counters a service reads to monitor delivery
//! ([`Stats`]).
//!
//! ```
//! use std::time::Duration;
//! use aitrace_core::BufferedLogger;
//! use aitrace_core::delivery::{Background, RetryPolicy};
//!
//! let log = BufferedLogger::builder()
//!     .target("-")?
//!     .delivery(
//!         Background::new()
//!             .flush_interval(Duration::from_millis(200))
//!             .retry(RetryPolicy::default().max_attempts(3)),
//!     )
//!     .build();
//! log.info("started").emit();
//! log.flush()?; // waits until the delivery thread has sent it
//! # Ok::<(), aitrace_core::Error>(())
//! ```
//!
//! Inside the crate, the two are two implementations of one interface, the
//! way OpenTelemetry's SDK has a simple and a batch log processor and the
//! provider knows neither:
//!
//! * `DirectProcessor`: a flush runs on the calling thread;
//! * `BackgroundProcessor`: one delivery thread owns every output's state
//!   and spool, and one I/O thread per output performs the sends it asks
//!   for.
//!
//! The handle ([`BufferedLogger`](crate::BufferedLogger)) holds a
//! `Box<dyn Processor>` and never asks which one it has. Dependencies run
//! one way: handle → delivery → outputs, buffer, spool, ledger.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

use crate::record::Record;

mod background;
mod direct;
pub(crate) mod mode;
mod parts;
mod ticket;

pub use crate::buffer::{DEFAULT_BACKGROUND_CAPACITY, DEFAULT_CAPACITY, OverflowPolicy};
pub use crate::flush_report::{Delivery, FlushReport};
pub use crate::retry::{
    BreakerPolicy, DEFAULT_COOLDOWN, DEFAULT_FAILURE_THRESHOLD, DEFAULT_INITIAL_BACKOFF,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_COOLDOWN, RetryPolicy,
};
pub use crate::spool::DEFAULT_SPOOL_MAX_BYTES;
pub use crate::stats::{OutputStats, Stats};
pub(crate) use background::{BackgroundConfig, BackgroundProcessor};
pub(crate) use direct::DirectProcessor;
pub use direct::OnFailure;
pub use mode::{
    Background, DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL, DEFAULT_FLUSH_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT, DeliveryMode, Direct,
};
pub use ticket::FlushFuture;

/// What the handle asks of delivery.
pub(crate) trait Processor: Send + Sync + std::fmt::Debug {
    /// Delivers what was captured before the call, waiting up to `timeout`.
    fn flush(&self, timeout: Duration) -> Result<FlushReport>;

    /// [`flush`](Self::flush) as a future that never blocks its thread.
    fn flush_async(&self, timeout: Duration) -> FlushFuture;

    /// Asks for a flush without waiting (a no-op where flushes are direct).
    fn trigger(&self) {}

    /// Sends a copy of `records` to every output the way a batch goes (in
    /// halves where an output refuses what a part holds), never beside this
    /// delivery's own sends to the same output, and waits up to `timeout`.
    /// The caller keeps the records: nothing is set aside, retried, spooled
    /// or counted in the books. For
    /// [`flush_keep`](crate::BufferedLogger::flush_keep).
    fn send_copy(&self, records: Arc<Vec<Record>>, timeout: Duration) -> Result<FlushReport>;

    /// Delivers or sets aside what is buffered within `timeout` and stops;
    /// later flushes deliver nothing more in the background.
    fn shutdown(&self, timeout: Duration) -> Result<FlushReport>;

    /// The last handle is gone: like [`shutdown`](Self::shutdown), then puts
    /// whatever is left somewhere durable (the spool, else a fallback file).
    /// Never takes much longer than `timeout`.
    fn close(&self, timeout: Duration);
}

/// What to do with a batch an output failed to take: one answer for both
/// deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The failure may pass (no connection, a timeout, 408, 429, 5xx, an
    /// OTLP retryable status): send the batch again later.
    Transient,
    /// The server refused what the batch holds (400, 413, 422, or an
    /// exporter's [`Error::refused_content`](crate::Error::refused_content)) and the
    /// batch holds more than one record: send it again at once in two
    /// halves, so that only the records at fault are set aside.
    Split,
    /// Refused for good (another 4xx, an OTLP non-retryable status): set
    /// aside with the reason and counted as dropped, never sent again.
    ForGood,
}

/// How many more requests the parts of one refused batch of `count`
/// records may take, in all, once it is split: enough to find a few bad
/// records (about `2·log2(count)` requests each), not the `2·count − 1` a
/// server that refuses every request (an HTTPS port spoken to in plain
/// HTTP) would cost. Past it, a refused part is set aside whole.
pub(crate) fn split_budget(count: usize) -> u32 {
    8 + 4 * (usize::BITS - count.leading_zeros())
}

impl Refusal {
    /// How to treat `err`, the answer to a batch of `count` records.
    ///
    /// Statuses that refuse any request to the endpoint (401, 403, 404,
    /// 405, 415) are not split: each half would be refused too.
    pub(crate) fn of(err: &Error, count: usize) -> Refusal {
        if err.is_transient() {
            Refusal::Transient
        } else if count > 1 && err.refuses_content() {
            Refusal::Split
        } else {
            Refusal::ForGood
        }
    }
}
