//! A span's lifecycle record in compact form, for the buffer.
//!
//! A span writes two records (WIRE_FORMAT.md §2): `NAME.start` when it
//! opens, `NAME.end` with its `duration_ms` when it closes. Most spans carry
//! nothing else: a static name, a static location, their ids and the two
//! stamps. Building each as a [`Record`] (some 300 bytes, set field by
//! field, redacted, moved into the buffer) was most of what a span cost.
//! A [`Lifecycle`] is what such a record holds, and nothing more; the
//! buffer keeps it as it is and makes the [`Record`] when the record leaves
//! the buffer (a flush, a batch, [`BufferedLogger::records`]), with the same
//! contents as a record built at capture. It is still written when the
//! span opens (a flush while the span is open sends its `.start`,
//! provisional).
//!
//! [`BufferedLogger::records`]: crate::BufferedLogger::records

use std::num::NonZeroU64;

use crate::level::Level;
use crate::record::{Location, Record, SpanContext};
use crate::wire::{self, DURATION_FIELD, Phase};

/// A span's `NAME.start` or `NAME.end` record with nothing but a static
/// name and location, its ids, its stamp and (for `.end`) its duration: what
/// a frontend hands to [`adapter::capture_lifecycle`](crate::adapter::capture_lifecycle)
/// instead of a [`Record`] when its span has no fields and did not fail.
///
/// ```
/// use aitrace_core::adapter::{self, Lifecycle};
/// use aitrace_core::{BufferedLogger, Level, SpanContext};
///
/// let log = BufferedLogger::builder().target("-")?.build();
/// let span = SpanContext::new_root();
/// let started = adapter::now_nanos();
/// adapter::capture_lifecycle(&log, Lifecycle::start(Level::Info, "job", span, started));
/// let ended = started + 1_500_000;
/// adapter::capture_lifecycle(&log, Lifecycle::end(Level::Info, "job", span, started, ended));
/// let records = log.records();
/// assert_eq!(records[0].event(), "job.start");
/// assert!(records[0].is_provisional());
/// assert_eq!(records[1].event(), "job.end");
/// assert_eq!(records[1].field("duration_ms"), Some(&1.5.into()));
/// # log.clear();
/// # Ok::<(), aitrace_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// Nanoseconds since the Unix epoch.
    stamp: u64,
    /// For an `.end`: its `.start`'s stamp, which `duration_ms` is taken
    /// from.
    started: u64,
    context: SpanContext,
    name: &'static str,
    logger: Option<&'static str>,
    file: Option<&'static str>,
    function: Option<&'static str>,
    id: Option<NonZeroU64>,
    /// The line, level and phase in one word, set in one store: the record
    /// is copied by words on its way into the buffer, and a word read back
    /// right after it was written in pieces (a `u32`, two bytes) stalls the
    /// copy until the pieces are in the cache (some 15 cycles). With
    /// `started` not an `Option`, the whole fits in 128 bytes, which the
    /// compiler copies inline.
    tail: Tail,
}

/// A lifecycle record's line (bits 0–31), level (32–39) and phase (bit 40:
/// `.end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tail(u64);

impl Tail {
    const END: u64 = 1 << 40;

    #[inline]
    fn new(level: Level, end: bool) -> Self {
        Tail((u64::from(level as u8) << 32) | if end { Self::END } else { 0 })
    }

    #[inline]
    fn with_line(self, line: u32) -> Self {
        Tail((self.0 & !u64::from(u32::MAX)) | u64::from(line))
    }

    #[inline]
    fn line(self) -> u32 {
        self.0 as u32
    }

    #[inline]
    fn level(self) -> Level {
        Level::from_u8((self.0 >> 32) as u8).unwrap_or(Level::Info)
    }

    #[inline]
    fn end(self) -> bool {
        self.0 & Self::END != 0
    }
}

impl Lifecycle {
    /// The `.start` of span `context` named `name`, stamped `stamp`
    /// (nanoseconds since the Unix epoch: [`adapter::now_nanos`](crate::adapter::now_nanos)).
    #[inline]
    pub fn start(level: Level, name: &'static str, context: SpanContext, stamp: u64) -> Self {
        Lifecycle {
            stamp,
            started: stamp,
            context,
            name,
            logger: None,
            file: None,
            function: None,
            id: None,
            tail: Tail::new(level, false),
        }
    }

    /// The `.end` of span `context`, whose `.start` was stamped `started`,
    /// stamped `stamp`; its `duration_ms` is the difference of the two
    /// stamps as the wire format shows them ([`wire::duration_ms`]).
    #[inline]
    pub fn end(
        level: Level,
        name: &'static str,
        context: SpanContext,
        started: u64,
        stamp: u64,
    ) -> Self {
        Lifecycle {
            started,
            tail: Tail::new(level, true),
            ..Lifecycle::start(level, name, context, stamp)
        }
    }

    /// The logger (a `tracing` target, a module path) the record names.
    #[inline]
    pub fn logger(mut self, logger: &'static str) -> Self {
        self.logger = Some(logger);
        self
    }

    /// The source file and line (0: unknown).
    #[inline]
    pub fn location(mut self, file: Option<&'static str>, line: u32) -> Self {
        self.file = file;
        self.tail = self.tail.with_line(line);
        self
    }

    /// The function or module path.
    #[inline]
    pub fn function(mut self, function: Option<&'static str>) -> Self {
        self.function = function;
        self
    }

    /// Nanoseconds since the Unix epoch.
    #[inline]
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    /// The span's ids.
    #[inline]
    pub fn context(&self) -> SpanContext {
        self.context
    }

    #[inline]
    pub(crate) fn has_id(&self) -> bool {
        self.id.is_some()
    }

    #[inline]
    pub(crate) fn assign_id(&mut self) {
        self.id = NonZeroU64::new(fastrand::u64(1..));
    }

    /// The record it stands for, as a frontend would have built it.
    pub fn to_record(&self) -> Record {
        let (end, line) = (self.tail.end(), self.tail.line());
        let phase = if end { Phase::End } else { Phase::Start };
        let mut record = Record::builder(
            self.tail.level(),
            wire::lifecycle_event_static(self.name, phase),
        )
        .provisional(!end)
        .span_end(end);
        record.set_timestamp_nanos(self.stamp);
        record.set_span_context(self.context);
        if let Some(logger) = self.logger {
            record.set_logger(logger);
        }
        record.set_location(Location::new(
            self.file.map(Into::into),
            (line > 0).then_some(line),
            self.function.map(Into::into),
        ));
        if end {
            record.push_field(DURATION_FIELD, wire::duration_ms(self.started, self.stamp));
        }
        let record = match self.id {
            Some(id) => record.record_id(id),
            None => record,
        };
        record.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_in_what_the_compiler_copies_inline() {
        assert!(size_of::<Lifecycle>() <= 128, "{}", size_of::<Lifecycle>());
    }

    #[test]
    fn the_tail_keeps_line_level_and_phase_apart() {
        for level in Level::ALL {
            for end in [false, true] {
                for line in [0, 1, 4_242, u32::MAX] {
                    let tail = Tail::new(level, end).with_line(7).with_line(line);
                    assert_eq!((tail.level(), tail.end(), tail.line()), (level, end, line));
                }
            }
        }
    }
}
