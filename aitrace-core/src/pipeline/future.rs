//! `FlushFuture`: awaiting a background flush without blocking a thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use super::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::logger::FlushReport;

/// A flush awaited without blocking the thread; see
/// [`BufferedLogger::flush_async`](crate::BufferedLogger::flush_async).
#[must_use = "futures do nothing unless polled"]
pub struct FlushFuture {
    state: FlushState,
}

pub(super) enum FlushState {
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
    pub(super) fn from_state(state: FlushState) -> Self {
        FlushFuture { state }
    }

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
