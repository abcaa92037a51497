//! Delivery: how buffered records reach the outputs.
//!
//! Two implementations of one interface, the way OpenTelemetry's SDK has a
//! simple and a batch log processor and the provider knows neither:
//!
//! * [`Direct`]: a flush runs on the calling thread (the default);
//! * [`Background`]: one delivery thread owns every output's state and
//!   spool, and one I/O thread per output performs the sends it asks for.
//!
//! The handle ([`BufferedLogger`](crate::BufferedLogger)) holds a
//! `Box<dyn Processor>` and never asks which one it has. Dependencies run
//! one way: handle → delivery → outputs, buffer, spool, ledger.

use std::time::Duration;

use crate::error::Result;
use crate::report::FlushReport;

mod background;
mod direct;
mod ticket;

pub(crate) use background::{Background, BackgroundConfig};
pub(crate) use direct::Direct;
pub use direct::OnFailure;
pub use ticket::FlushFuture;

/// What the handle asks of delivery.
pub(crate) trait Processor: Send + Sync + std::fmt::Debug {
    /// Delivers what was captured before the call, waiting up to `timeout`.
    fn flush(&self, timeout: Duration) -> Result<FlushReport>;

    /// [`flush`](Self::flush) as a future that never blocks its thread.
    fn flush_async(&self, timeout: Duration) -> FlushFuture;

    /// Asks for a flush without waiting (a no-op where flushes are direct).
    fn trigger(&self) {}

    /// Delivers or sets aside what is buffered within `timeout` and stops;
    /// later flushes deliver nothing more in the background.
    fn shutdown(&self, timeout: Duration) -> Result<FlushReport>;

    /// The last handle is gone: like [`shutdown`](Self::shutdown), then puts
    /// whatever is left somewhere durable (the spool, else a fallback file).
    /// Never takes much longer than `timeout`.
    fn close(&self, timeout: Duration);
}
