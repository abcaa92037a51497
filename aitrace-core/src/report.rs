//! What a flush did: [`FlushReport`] and each output's [`Delivery`].

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

    /// How many records this output gave up on (background delivery: refused
    /// for good, or failed with no spool configured; and, in any mode,
    /// those a server [`rejected`](Self::rejected)).
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Records the server accepted the request of but refused itself (an
    /// OTLP `partialSuccess`); counted as dropped, not in [`records`](Self::records).
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// What the server said about the records it refused, when it did.
    pub fn rejection(&self) -> Option<&str> {
        self.rejection.as_deref()
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
