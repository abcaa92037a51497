//! One I/O thread per output: it encodes and sends what the delivery thread
//! hands it, one job at a time, and answers with the outcome. It owns no
//! state: a send that hangs holds up nothing but this thread.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::Command;
use crate::delivery::parts::send_copy;
use crate::error::{Error, ErrorKind, Result};
use crate::flush_report::Delivery;
use crate::output::Output;
use crate::record::Record;
use crate::reentrancy::mark_sending_thread;
use crate::scratch::MAX_KEPT_BODY;

/// What to send.
#[derive(Clone, Debug)]
pub(super) enum Load {
    /// A batch from the buffer.
    Records(Arc<Vec<Record>>),
    /// A batch read back from the spool: JSON Lines in the output's layout.
    Lines(Arc<Vec<u8>>, usize),
    /// A copy of the buffer for `flush_keep`, sent in parts
    /// ([`send_copy`]).
    Copy(Arc<Vec<Record>>),
}

impl Load {
    pub(super) fn len(&self) -> usize {
        match self {
            Load::Records(records) | Load::Copy(records) => records.len(),
            Load::Lines(_, count) => *count,
        }
    }
}

pub(super) struct Job {
    pub(super) id: u64,
    pub(super) load: Load,
}

pub(super) fn run(lane: usize, output: &Output, jobs: &Receiver<Job>, answers: &Sender<Command>) {
    mark_sending_thread();
    let mut body = Vec::new();
    for job in jobs {
        // A panic in an output (a bug) must not leave the delivery thread
        // waiting for an answer that never comes.
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            send(output, &job.load, &mut body)
        }));
        let outcome = sent.unwrap_or_else(|_| {
            body = Vec::new();
            Err(Error::new(
                ErrorKind::Io,
                "the output panicked while sending",
            ))
        });
        if body.capacity() > MAX_KEPT_BODY {
            body = Vec::new();
        }
        // Let go of the batch before answering, so the delivery thread
        // holds the last reference and can reuse its vector.
        let Job { id, load } = job;
        drop(load);
        let answer = Command::Sent {
            lane,
            job: id,
            outcome,
        };
        if answers.send(answer).is_err() {
            break; // delivery has stopped
        }
    }
}

/// Sends one load; on success, what the output said of it.
fn send(output: &Output, load: &Load, body: &mut Vec<u8>) -> Result<Delivery> {
    match load {
        Load::Records(records) => output.deliver(Some(records), None, records.len(), body),
        Load::Lines(lines, count) => output.deliver(None, Some(lines), *count, body),
        Load::Copy(records) => send_copy(output, records),
    }
}
