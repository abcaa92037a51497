//! A flush's result on its way to whoever waits for it, blocking
//! ([`Ticket::wait`]) or async ([`FlushFuture`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::flush_report::FlushReport;

/// One flush's outcome, filled in once by the delivery side.
#[derive(Debug, Default)]
pub(crate) struct Ticket {
    state: Mutex<TicketState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct TicketState {
    result: Option<Result<FlushReport>>,
    /// The one task to wake: replaced, never accumulated, on each poll.
    waker: Option<Waker>,
    /// The waiter stopped waiting (its timeout passed, or the future was
    /// dropped) before an outcome came: no one will read it.
    abandoned: bool,
}

impl Ticket {
    /// Fills in the outcome (the first call wins) and wakes the waiter.
    pub(crate) fn complete(&self, result: Result<FlushReport>) {
        let mut state = self.state.lock();
        if state.result.is_some() {
            return;
        }
        state.result = Some(result);
        let waker = state.waker.take();
        drop(state);
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the waiter gave up before an outcome came.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.state.lock().abandoned
    }

    /// The waiter stops waiting (unless an outcome already came).
    fn abandon(&self) {
        let mut state = self.state.lock();
        if state.result.is_none() {
            state.abandoned = true;
        }
    }

    /// Wakes the async waiter without an outcome (its deadline passed).
    pub(crate) fn nudge(&self) {
        if let Some(waker) = self.state.lock().waker.take() {
            waker.wake();
        }
    }

    /// Waits for the outcome until `deadline`; `None` at the deadline.
    pub(crate) fn wait(&self, deadline: Instant) -> Option<Result<FlushReport>> {
        let mut state = self.state.lock();
        while state.result.is_none() {
            if self.done.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        let result = state.result.take();
        state.abandoned = result.is_none();
        result
    }

    fn poll(&self, cx: &TaskContext<'_>) -> Option<Result<FlushReport>> {
        let mut state = self.state.lock();
        if let Some(result) = state.result.take() {
            return Some(result);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        None
    }
}

/// A flush awaited without blocking the thread; see
/// [`BufferedLogger::flush_async`](crate::BufferedLogger::flush_async).
///
/// The delivery thread completes it, or wakes it at its deadline (it needs
/// no timer from the runtime); if delivery stops, it completes with an error.
#[must_use = "futures do nothing unless polled"]
pub struct FlushFuture {
    state: FutureState,
}

enum FutureState {
    Ready(Option<Result<FlushReport>>),
    Waiting {
        ticket: Arc<Ticket>,
        deadline: Instant,
        timeout: Duration,
        /// Records still on their way, for the timeout error.
        left: Box<dyn Fn() -> usize + Send + Sync>,
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
            state: FutureState::Ready(Some(result)),
        }
    }

    pub(crate) fn waiting(
        ticket: Arc<Ticket>,
        deadline: Instant,
        timeout: Duration,
        left: impl Fn() -> usize + Send + Sync + 'static,
    ) -> Self {
        FlushFuture {
            state: FutureState::Waiting {
                ticket,
                deadline,
                timeout,
                left: Box::new(left),
            },
        }
    }
}

/// The error of a flush that gave up at its timeout.
pub(crate) fn timed_out(timeout: Duration, left: usize) -> Error {
    Error::new(
        ErrorKind::FlushTimedOut,
        format!(
            "flush did not finish within {timeout:?}; {left} records still buffered or on their way"
        ),
    )
    .with_retained(left)
}

impl Future for FlushFuture {
    type Output = Result<FlushReport>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let result = match &mut self.state {
            FutureState::Ready(result) => result.take().unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Closed,
                    "flush future polled after completion",
                ))
            }),
            FutureState::Waiting {
                ticket,
                deadline,
                timeout,
                left,
            } => match ticket.poll(cx) {
                Some(result) => result,
                None if Instant::now() >= *deadline => {
                    ticket.abandon();
                    Err(timed_out(*timeout, left()))
                }
                None => return Poll::Pending,
            },
        };
        self.state = FutureState::Ready(None);
        Poll::Ready(result)
    }
}

impl Drop for FlushFuture {
    fn drop(&mut self) {
        // Dropped while waiting: no one reads the outcome.
        if let FutureState::Waiting { ticket, .. } = &self.state {
            ticket.abandon();
        }
    }
}
