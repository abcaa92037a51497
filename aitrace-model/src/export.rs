//! The export trait: how a batch leaves the process, for the built-in
//! outputs and for any a user writes.
//!
//! An `aitrace_core::Output` wraps one [`Export`]. Whatever the
//! implementation, the logger gives it the same machinery: direct and
//! background delivery, batching, retries with backoff (honouring
//! `Retry-After`), the circuit breaker, the disk spool and its replay after
//! a restart, splitting a batch refused for what it holds, stats, and the
//! flush at exit. The exporter only sends one batch and says what became of
//! it, as OpenTelemetry's `LogExporter` does.
//!
//! # Examples
//!
//! An output that counts lines, in a user's own crate:
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use aitrace_model::export::{Accepted, Batch, Export};
//! use aitrace_model::{Error, Layout};
//!
//! #[derive(Default)]
//! struct Counter(AtomicUsize);
//!
//! impl Export for Counter {
//!     fn name(&self) -> String {
//!         "counter".to_owned()
//!     }
//!
//!     fn export(&self, batch: &Batch<'_>) -> Result<Accepted, Error> {
//!         // JSON Lines in the output's layout, one record a line.
//!         let lines = batch.lines().split(|b| *b == b'\n').filter(|l| !l.is_empty());
//!         self.0.fetch_add(lines.count(), Ordering::Relaxed);
//!         Ok(Accepted::all())
//!     }
//! }
//!
//! // What a logger does at each delivery; with aitrace-core, hand it over
//! // as `BufferedLogger::builder().output(Counter::default())`.
//! let counter = Counter::default();
//! let lines = b"{\"event\":\"a\"}\n{\"event\":\"b\"}\n";
//! counter.export(&Batch::new(None, lines, None, 2, Layout::default()))?;
//! assert_eq!(counter.0.load(Ordering::Relaxed), 2);
//! # Ok::<(), Error>(())
//! ```
//!
//! A failure says what to do next: [`Error::retry_later`] for one that may
//! pass (the batch is retried with backoff, spooled when a spool is set),
//! [`Error::refused`] for a batch refused for good (set aside, counted as
//! dropped, never sent again), [`Error::refused_content`] when the refusal
//! is about what the batch holds (it is sent again in halves, so only the
//! records at fault are set aside), and [`Accepted::partly`] when the
//! receiver took some records and refused others.

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

use crate::encode::Layout;
use crate::error::Error;
use crate::record::Record;

/// A destination for batches of records; see the [module docs](self).
///
/// Every delivery, `flush_keep` included, calls `export` from one thread
/// at a time per output (but see [`shutdown`](Export::shutdown) for a hung
/// one): the flushing thread in direct delivery (one flush
/// at a time), the output's `aitrace-send-N` thread in background
/// delivery. Which thread varies, so an exporter is `Send + Sync` (a
/// `Mutex` around a connection will do). It should bound its own
/// waits (a network call with timeouts): a hung exporter holds its output's
/// batches, never the others'. Anything it logs through a frontend wired to
/// the same logger is dropped while it runs, so it cannot feed itself.
pub trait Export: Send + Sync + 'static {
    /// A short name for `Display`, stats and diagnostics: a URL without its
    /// user-info, a path, a word. It never carries a secret.
    fn name(&self) -> String;

    /// A word for the kind of destination (`"sqlite"`, `"http"`), which
    /// starts the name of its spool folder. Default `"custom"`.
    fn kind(&self) -> &'static str {
        "custom"
    }

    /// What names its spool folder, with [`kind`](Self::kind): keep it
    /// stable across versions, so a restarted process finds what an earlier
    /// one spooled. Default its [`name`](Self::name).
    fn spool_key(&self) -> String {
        self.name()
    }

    /// What the exporter reads from a [`Batch`], encoded once before
    /// `export` is called. Default [`Input::Lines`].
    fn input(&self) -> Input {
        Input::Lines
    }

    /// Sends one batch. `Ok` with what the receiver accepted; `Err` with an
    /// error made by [`Error::retry_later`], [`Error::refused`] or
    /// [`Error::refused_content`] (or any [`Error`]: connection errors,
    /// timeouts and HTTP 408, 429 and 5xx statuses are retried, other
    /// statuses refused).
    ///
    /// A batch is all or nothing: after an `Err`, the batch (or, after
    /// `refused_content`, each half of it) is sent again, so return `Err`
    /// only when none of it was stored — write it in one transaction, as
    /// `examples/sqlite.rs` does — or make storing idempotent (by the
    /// `record_id` that `aitrace_core::Builder::record_ids`
    /// adds). Records of a batch the receiver took in part are
    /// [`Accepted::partly`].
    fn export(&self, batch: &Batch<'_>) -> Result<Accepted, Error>;

    /// The local file it writes, if it writes one.
    fn path(&self) -> Option<&Path> {
        None
    }

    /// Called once when the logger's last handle drops, after its last
    /// batch was delivered or set aside: close connections, sync files.
    /// At the shutdown timeout it is called all the same, so an `export`
    /// that hangs past it (a network call without a timeout) may still be
    /// running: it must not assume it is the last call.
    fn shutdown(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// What an exporter reads from a batch; see [`Export::input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Input {
    /// JSON Lines in the output's [`Layout`]: [`Batch::lines`].
    Lines,
    /// One JSON array in the output's layout, as the aitrace ingest
    /// endpoint takes: [`Batch::array`].
    Array,
    /// The records themselves: [`Batch::records`] (read back from JSON Lines
    /// when a batch is replayed from the spool).
    Records,
}

/// One batch for an exporter: the records, encoded as its
/// [`input`](Export::input) asks.
pub struct Batch<'a> {
    records: Option<&'a [Record]>,
    lines: &'a [u8],
    array: Option<&'a [u8]>,
    count: usize,
    layout: Layout,
    decoded: OnceLock<(Vec<Record>, usize)>,
}

impl<'a> Batch<'a> {
    /// A batch of `count` records: the records themselves when the caller
    /// has them (else they are decoded from `lines` when asked for), their
    /// JSON Lines in `layout`, and the JSON array when the exporter asked
    /// for one. Made by `aitrace-core`'s delivery; an exporter's own tests
    /// may make one too.
    pub fn new(
        records: Option<&'a [Record]>,
        lines: &'a [u8],
        array: Option<&'a [u8]>,
        count: usize,
        layout: Layout,
    ) -> Self {
        Batch {
            records,
            lines,
            array,
            count,
            layout,
            decoded: OnceLock::new(),
        }
    }

    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The layout its JSON is written in (the output's).
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The records as JSON Lines, one a line, each ending in `\n`. Always
    /// there for [`Input::Lines`]; for the other inputs, there when the batch
    /// is replayed from the spool, else empty.
    pub fn lines(&self) -> &'a [u8] {
        self.lines
    }

    /// The records as one JSON array, for [`Input::Array`].
    pub fn array(&self) -> Option<&'a [u8]> {
        self.array
    }

    /// The records. For a batch replayed from the spool they are read back
    /// from its JSON Lines (once); a line that cannot be read back is left
    /// out and counted in [`unreadable`](Self::unreadable).
    pub fn records(&self) -> Cow<'_, [Record]> {
        match self.records {
            Some(records) => Cow::Borrowed(records),
            None => Cow::Borrowed(&self.decode().0),
        }
    }

    /// How many lines of a replayed batch could not be read back as records
    /// (0 when the records are at hand).
    pub fn unreadable(&self) -> usize {
        match self.records {
            Some(_) => 0,
            None => self.decode().1,
        }
    }

    fn decode(&self) -> &(Vec<Record>, usize) {
        self.decoded.get_or_init(|| {
            let (records, unreadable) = crate::decode::records_from_lines(self.lines);
            (records, unreadable.map_or(0, |(n, _)| n))
        })
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("len", &self.count)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// What a receiver accepted of a batch; see [`Export::export`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    ingested: Option<usize>,
    rejected: usize,
    reason: Option<String>,
}

impl Accepted {
    /// Every record was taken.
    pub fn all() -> Self {
        Accepted::default()
    }

    /// Every record was taken, and the receiver says it stored `n` of them
    /// (the aitrace server's `{"ingested": N}`; the rest it skipped). It is
    /// reported as `FlushReport::ingested` in `aitrace-core`.
    pub fn ingested(n: usize) -> Self {
        Accepted {
            ingested: Some(n),
            ..Accepted::default()
        }
    }

    /// The receiver took the batch but refused `rejected` of its records for
    /// good, saying `reason` (as OTLP's `partialSuccess` does): they are
    /// counted as dropped and refused, the others as delivered.
    pub fn partly(rejected: usize, reason: impl Into<String>) -> Self {
        Accepted {
            rejected,
            reason: Some(reason.into()),
            ..Accepted::default()
        }
    }

    /// How many records the receiver refused.
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// How many records the receiver says it stored, when it says
    /// ([`Accepted::ingested`]).
    pub fn stored(&self) -> Option<usize> {
        self.ingested
    }

    /// Why the receiver refused some records ([`Accepted::partly`]).
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}
