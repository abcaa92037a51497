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
    line: u32,
    level: Level,
    /// `.end` (else `.start`). With `started` not an `Option`, the whole
    /// fits in 128 bytes, which the compiler copies inline.
    end: bool,
}

impl Lifecycle {
    /// The `.start` of span `context` named `name`, stamped `stamp`
    /// (nanoseconds since the Unix epoch: [`adapter::now_nanos`](crate::adapter::now_nanos)).
    #[inline]
    pub fn start(level: Level, name: &'static str, context: SpanContext, stamp: u64) -> Self {
        Lifecycle {
            stamp,
            started: stamp,
            end: false,
            context,
            name,
            level,
            logger: None,
            file: None,
            line: 0,
            function: None,
            id: None,
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
            end: true,
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
        self.line = line;
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
        let phase = if self.end { Phase::End } else { Phase::Start };
        let mut record =
            Record::builder(self.level, wire::lifecycle_event_static(self.name, phase))
                .provisional(!self.end)
                .span_end(self.end);
        record.set_timestamp_nanos(self.stamp);
        record.set_span_context(self.context);
        if let Some(logger) = self.logger {
            record.set_logger(logger);
        }
        record.set_location(Location::new(
            self.file.map(Into::into),
            (self.line > 0).then_some(self.line),
            self.function.map(Into::into),
        ));
        if self.end {
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
}
