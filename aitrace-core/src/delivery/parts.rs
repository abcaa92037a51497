//! Sending one output a batch in parts, on one thread: again in halves the
//! parts it refuses for what they hold. How a direct flush sends, and how
//! a copy of the buffer ([`BufferedLogger::flush_keep`](crate::BufferedLogger::flush_keep))
//! is sent in either delivery. (A background batch is split by its lane
//! instead, a request per job, so that retries and the spool apply to each
//! part.)

use std::ops::Range;

use super::{Refusal, split_budget};
use crate::error::{Error, Result};
use crate::flush_report::Delivery;
use crate::output::Output;
use crate::record::Record;

/// What sending one output its records in parts came to.
pub(super) struct PartsSent {
    /// What the output said, refusals included.
    pub(super) delivery: Delivery,
    /// Records in the parts the output answered 2xx to (those it
    /// refused in an accepted request included).
    pub(super) acknowledged: usize,
    /// Parts refused for good, with the answer.
    pub(super) refused: Vec<(Range<usize>, Error)>,
    /// A failure that may pass: the first record not sent, and the error.
    /// Every record from there on is unsent.
    pub(super) failed: Option<(usize, Error)>,
}

/// Sends `records` to `output`, and again in halves the parts it refuses
/// for what they hold ([`Refusal::Split`]), as background delivery does,
/// so that one bad record does not hold up the others, within
/// [`split_budget`] requests. Parts go in order and stop at the first
/// failure that may pass.
pub(super) fn send_in_parts(output: &Output, records: &[Record]) -> PartsSent {
    let mut sent = PartsSent {
        delivery: Delivery::named(output.to_string()),
        acknowledged: 0,
        refused: Vec::new(),
        failed: None,
    };
    let mut parts: Vec<Range<usize>> = Vec::with_capacity(8);
    parts.push(0..records.len());
    let mut budget = split_budget(records.len());
    while let Some(part) = parts.pop() {
        match output.send(&records[part.clone()]) {
            Ok(answer) => {
                let rejected = answer.rejected.min(part.len());
                sent.acknowledged += part.len();
                sent.delivery
                    .add_delivered(part.len() - rejected, answer.ingested);
                sent.delivery
                    .add_rejected(rejected, answer.rejection.as_deref());
            }
            Err(err) => match Refusal::of(&err, part.len()) {
                Refusal::Split if budget >= 2 => {
                    budget -= 2;
                    let middle = part.start + part.len() / 2;
                    parts.push(middle..part.end);
                    parts.push(part.start..middle);
                }
                Refusal::Split | Refusal::ForGood => sent.refused.push((part, err)),
                Refusal::Transient => {
                    sent.failed = Some((part.start, err));
                    break;
                }
            },
        }
    }
    sent
}

/// Sends a copy of `records` to `output` in parts, for a caller that keeps
/// the records (they stay buffered): parts refused for good are reported in
/// the delivery (as rejected) and not set aside; a failure that may pass is
/// the error.
pub(super) fn send_copy(output: &Output, records: &[Record]) -> Result<Delivery> {
    let mut sent = send_in_parts(output, records);
    if let Some((_, err)) = sent.failed {
        return Err(err);
    }
    for (part, err) in &sent.refused {
        sent.delivery
            .add_rejected(part.len(), Some(&err.to_string()));
    }
    Ok(sent.delivery)
}
