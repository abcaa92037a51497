//! What a flush did: [`FlushReport`] and each output's [`Delivery`].

use std::fmt;
use std::path::{Path, PathBuf};

/// What a flush sent, and where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub(crate) records: usize,
    pub(crate) deliveries: Vec<Delivery>,
}

impl FlushReport {
    /// How many records the flush took from the buffer.
    pub fn records(&self) -> usize {
        self.records
    }

    /// What each output did, in the order the outputs were added.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// The `ingested` count of the first output that reported one (HTTP).
    pub fn ingested(&self) -> Option<usize> {
        self.deliveries.iter().find_map(Delivery::ingested)
    }

    /// Records some server received but did not store (the reference
    /// server skips records without trace and span ids).
    pub fn skipped(&self) -> usize {
        self.deliveries.iter().map(Delivery::skipped).sum()
    }

    /// Records the outputs acknowledged, summed over the outputs (two
    /// outputs that each took 10 records make 20).
    pub fn delivered(&self) -> usize {
        self.deliveries.iter().map(Delivery::records).sum()
    }

    /// Records the receivers refused, summed over the outputs; see
    /// [`Delivery::rejected`]. They are counted in [`dropped`](Self::dropped) too.
    pub fn rejected(&self) -> usize {
        self.deliveries.iter().map(Delivery::rejected).sum()
    }

    /// Records the outputs gave up on, refused ones included, summed over
    /// the outputs; see [`Delivery::dropped`].
    pub fn dropped(&self) -> usize {
        self.deliveries.iter().map(Delivery::dropped).sum()
    }

    /// Records written to a spool folder to be replayed later (background
    /// delivery), summed over the outputs.
    pub fn spooled(&self) -> usize {
        self.deliveries.iter().map(Delivery::spooled).sum()
    }

    /// Whether every output acknowledged every record: nothing refused,
    /// dropped or spooled.
    pub fn is_complete(&self) -> bool {
        self.dropped() == 0 && self.spooled() == 0
    }
}

/// One line for people: `17 records: 17 delivered, 0 refused, 0 dropped`,
/// then what was spooled, what a receiver said when it refused records and
/// where they were written, when there is any.
///
/// ```
/// # use aitrace_core::FlushReport;
/// assert_eq!(
///     FlushReport::default().to_string(),
///     "0 records: 0 delivered, 0 refused, 0 dropped"
/// );
/// ```
impl fmt::Display for FlushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} records", self.records)?;
        if self.deliveries.len() > 1 {
            write!(f, " to {} outputs", self.deliveries.len())?;
        }
        write!(
            f,
            ": {} delivered, {} refused, {} dropped",
            self.delivered(),
            self.rejected(),
            self.dropped()
        )?;
        if self.spooled() > 0 {
            write!(f, ", {} spooled", self.spooled())?;
        }
        if let Some(n) = self.ingested() {
            write!(f, ", {n} ingested")?;
        }
        for d in self.deliveries.iter().filter(|d| d.rejected > 0) {
            if let Some(why) = &d.rejection {
                write!(f, "; refused: {why}")?;
            }
            if let Some(path) = &d.fallback_path {
                write!(f, "; written to {}", path.display())?;
            }
        }
        Ok(())
    }
}

/// What one output did with a flush's records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub(crate) output: String,
    pub(crate) records: usize,
    pub(crate) ingested: Option<usize>,
    pub(crate) spooled: usize,
    pub(crate) dropped: usize,
    pub(crate) rejected: usize,
    pub(crate) rejection: Option<String>,
    pub(crate) fallback_path: Option<PathBuf>,
}

impl Delivery {
    pub(crate) fn named(output: String) -> Self {
        Delivery {
            output,
            ..Delivery::default()
        }
    }

    /// Adds what one batch's acknowledgement said.
    pub(crate) fn add_delivered(&mut self, records: usize, ingested: Option<usize>) {
        self.records += records;
        if let Some(n) = ingested {
            self.ingested = Some(self.ingested.unwrap_or(0) + n);
        }
    }

    /// Adds records a server refused in an accepted request.
    pub(crate) fn add_rejected(&mut self, rejected: usize, rejection: Option<&str>) {
        self.rejected += rejected;
        self.dropped += rejected;
        if let Some(message) = rejection {
            self.rejection = Some(message.to_owned());
        }
    }

    /// The output, as its `Display` shows it (URLs redacted).
    pub fn output(&self) -> &str {
        &self.output
    }

    /// How many records it acknowledged.
    pub fn records(&self) -> usize {
        self.records
    }

    /// How many records went to the spool folder instead (background
    /// delivery), to be replayed when the output recovers.
    pub fn spooled(&self) -> usize {
        self.spooled
    }

    /// How many records this output gave up on: those the receiver
    /// [`rejected`](Self::rejected), in any mode, and in background delivery
    /// those that failed with no spool configured.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Records the receiver refused: a whole batch refused for good (a 4xx
    /// other than 408 and 429, or an OTLP non-retryable status), or records
    /// of an accepted request it refused itself (an OTLP `partialSuccess`).
    /// Counted as [`dropped`](Self::dropped), not in [`records`](Self::records).
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// What the receiver said about the records it refused, when it did.
    pub fn rejection(&self) -> Option<&str> {
        self.rejection.as_deref()
    }

    /// Where refused records were written (delivery on the calling thread:
    /// the [`OnFailure::FallbackFile`](crate::OnFailure::FallbackFile), else
    /// an `aitrace-unsent-….jsonl` file in the temp folder). Background
    /// delivery keeps them in the spool's `rejected/` folder instead.
    pub fn fallback_path(&self) -> Option<&Path> {
        self.fallback_path.as_deref()
    }

    /// How many the server said it stored (`{"ingested": N}`), for HTTP.
    pub fn ingested(&self) -> Option<usize> {
        self.ingested
    }

    /// Records sent that the server did not store: the reference server skips
    /// records without a trace and span id.
    pub fn skipped(&self) -> usize {
        self.ingested.map_or(0, |n| self.records.saturating_sub(n))
    }
}
