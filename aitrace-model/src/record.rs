//! The owned record every frontend produces and every output writes.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::{nanos_since_epoch, now_nanos};
use crate::ids::{SpanId, TraceId};
use crate::level::Level;
use crate::value::Value;
use crate::wire::{self, Phase};

mod fields;
use fields::Fields;

/// The trace position of a record: which span of which trace it belongs to.
///
/// # Examples
///
/// ```
/// use aitrace_model::{SpanContext, SpanId, TraceId};
///
/// let root = SpanContext::new_root();
/// let child = root.new_child();
/// assert_eq!(child.trace_id(), root.trace_id());
/// assert_eq!(child.parent_span_id(), Some(root.span_id()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
}

impl SpanContext {
    /// A context from its parts.
    #[inline]
    pub const fn new(trace_id: TraceId, span_id: SpanId, parent_span_id: Option<SpanId>) -> Self {
        SpanContext {
            trace_id,
            span_id,
            parent_span_id,
        }
    }

    /// A new root span in a new trace, with random ids.
    #[inline]
    pub fn new_root() -> Self {
        SpanContext::new(TraceId::random(), SpanId::random(), None)
    }

    /// A new child of this span: same trace, a random span id, this span as parent.
    #[inline]
    pub fn new_child(&self) -> Self {
        SpanContext::new(self.trace_id, SpanId::random(), Some(self.span_id))
    }

    /// The trace this span belongs to.
    #[inline]
    pub const fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This span's own id.
    #[inline]
    pub const fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The enclosing span, `None` for a root span.
    #[inline]
    pub const fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }
}

/// Where in the source a record was made.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Location {
    file: Option<Cow<'static, str>>,
    function: Option<Cow<'static, str>>,
    /// 0 when unknown (lines are 1-based).
    line: u32,
}

impl Location {
    /// A location from the compiler's `#[track_caller]` information.
    #[inline]
    pub fn from_caller(loc: &'static std::panic::Location<'static>) -> Self {
        Location {
            file: Some(Cow::Borrowed(loc.file())),
            line: loc.line(),
            function: None,
        }
    }

    /// A location from its parts.
    #[inline]
    pub fn new(
        file: Option<Cow<'static, str>>,
        line: Option<u32>,
        function: Option<Cow<'static, str>>,
    ) -> Self {
        Location {
            file,
            line: line.unwrap_or(0),
            function,
        }
    }

    /// The same location with `function` as its function or module path
    /// (the file kept as it is: a borrowed one is not copied).
    #[inline]
    pub fn with_function(self, function: impl Into<Cow<'static, str>>) -> Self {
        Location {
            function: Some(function.into()),
            ..self
        }
    }

    /// Sets the function or module path in place (what
    /// [`with_function`](Self::with_function) does to a location it owns).
    #[inline]
    pub fn set_function(&mut self, function: impl Into<Cow<'static, str>>) {
        self.function = Some(function.into());
    }

    /// The source file, as the compiler or frontend gave it.
    #[inline]
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The 1-based line.
    #[inline]
    pub fn line(&self) -> Option<u32> {
        (self.line > 0).then_some(self.line)
    }

    /// The function or module path.
    #[inline]
    pub fn function(&self) -> Option<&str> {
        self.function.as_deref()
    }

    /// The file, line and function, when neither string was copied (both
    /// `&'static` or absent): what a compact lifecycle record can hold.
    #[inline]
    pub fn static_parts(&self) -> Option<(Option<&'static str>, u32, Option<&'static str>)> {
        fn part(s: &Option<Cow<'static, str>>) -> Option<Option<&'static str>> {
            match s {
                None => Some(None),
                Some(Cow::Borrowed(s)) => Some(Some(s)),
                Some(Cow::Owned(_)) => None,
            }
        }
        Some((part(&self.file)?, self.line, part(&self.function)?))
    }
}

/// What a [`Record`] is ([`Record::kind`]): an event, or one of the two
/// lifecycle records a span writes (WIRE_FORMAT.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// An event: anything that is not a span's lifecycle record.
    Event,
    /// A span's `NAME.start`, written when it opens (provisional).
    SpanStart,
    /// A span's `NAME.end`, written when it closes.
    SpanEnd,
}

/// One structured log record, owned, ready to buffer and encode later.
///
/// Built with [`Record::builder`]; read with the getters. Frontend adapters
/// convert their borrowed event into a `Record` and hand it to
/// `aitrace_core::BufferedLogger::capture`.
///
/// # Examples
///
/// ```
/// use aitrace_model::{Level, Record, Value};
///
/// let record = Record::builder(Level::Info, "checkout_started")
///     .logger("shop::checkout")
///     .field("user_id", "u2")
///     .field("total", 469.74)
///     .build();
/// assert_eq!(record.event(), "checkout_started");
/// assert_eq!(record.field("total"), Some(&Value::F64(469.74)));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[repr(align(64))]
pub struct Record {
    /// Nanoseconds since the Unix epoch (8 bytes instead of `SystemTime`'s 16).
    timestamp: u64,
    level: Level,
    provisional: bool,
    span_end: bool,
    id: Option<std::num::NonZeroU64>,
    event: Cow<'static, str>,
    logger: Option<Cow<'static, str>>,
    context: Option<SpanContext>,
    location: Location,
    fields: Fields,
}

impl Record {
    /// Starts a record at `level` named `event`, timestamped now.
    #[inline]
    pub fn builder(level: Level, event: impl Into<Cow<'static, str>>) -> RecordBuilder {
        RecordBuilder {
            record: Record {
                timestamp: now_nanos(),
                level,
                provisional: false,
                span_end: false,
                id: None,
                event: event.into(),
                logger: None,
                context: None,
                location: Location::default(),
                fields: Fields::default(),
            },
        }
    }

    /// When the record was made.
    #[inline]
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_nanos(self.timestamp)
    }

    /// The timestamp as the wire format writes it: RFC 3339 in UTC with
    /// microseconds (`2026-11-27T10:15:02.316023Z`), for an exporter that
    /// stores records its own way.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use aitrace_model::{Level, Record};
    ///
    /// let at = UNIX_EPOCH + Duration::from_micros(1_795_774_502_316_023);
    /// let record = Record::builder(Level::Info, "paid").timestamp(at).build();
    /// assert_eq!(record.timestamp_text(), "2026-11-27T10:15:02.316023Z");
    /// ```
    pub fn timestamp_text(&self) -> String {
        humantime::format_rfc3339_micros(self.timestamp()).to_string()
    }

    #[inline]
    pub fn timestamp_nanos(&self) -> u64 {
        self.timestamp
    }

    /// Its severity.
    #[inline]
    pub fn level(&self) -> Level {
        self.level
    }

    /// The event name (the log message), or `NAME.start`/`NAME.end`.
    #[inline]
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The logger, target or module that produced it.
    #[inline]
    pub fn logger(&self) -> Option<&str> {
        self.logger.as_deref()
    }

    /// The span it belongs to, if any.
    #[inline]
    pub fn span_context(&self) -> Option<&SpanContext> {
        self.context.as_ref()
    }

    /// The trace id, when the record belongs to a span.
    #[inline]
    pub fn trace_id(&self) -> Option<TraceId> {
        self.context.map(|c| c.trace_id)
    }

    /// The span id, when the record belongs to a span.
    #[inline]
    pub fn span_id(&self) -> Option<SpanId> {
        self.context.map(|c| c.span_id)
    }

    /// The enclosing span of the record's span.
    #[inline]
    pub fn parent_span_id(&self) -> Option<SpanId> {
        self.context.and_then(|c| c.parent_span_id)
    }

    /// The call site.
    #[inline]
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// `true` only on `NAME.start` records.
    #[inline]
    pub fn is_provisional(&self) -> bool {
        self.provisional
    }

    /// `true` on a span's `NAME.end` lifecycle record (set by the frontend
    /// that wrote it; read back from JSON, a record named `….end` with a
    /// span and a `duration_ms` field is taken for one). The OTLP output
    /// turns it into a span.
    #[inline]
    pub fn is_span_end(&self) -> bool {
        self.span_end
    }

    /// What the record is: an event, or a span's opening or closing
    /// lifecycle record. A span start is provisional and its event ends in
    /// `.start` ([`wire::lifecycle`]); a span end is
    /// one its frontend marked ([`RecordBuilder::span_end`]), or one read
    /// back from JSON as [`is_span_end`](Record::is_span_end) says.
    ///
    /// ```
    /// use aitrace_model::{Level, Record, RecordKind};
    ///
    /// let start = Record::builder(Level::Info, "job.start").provisional(true).build();
    /// let end = Record::builder(Level::Info, "job.end").span_end(true).build();
    /// let named_only = Record::builder(Level::Info, "job.start").build();
    /// assert_eq!(start.kind(), RecordKind::SpanStart);
    /// assert_eq!(end.kind(), RecordKind::SpanEnd);
    /// assert_eq!(named_only.kind(), RecordKind::Event);
    /// ```
    #[inline]
    pub fn kind(&self) -> RecordKind {
        if self.span_end {
            RecordKind::SpanEnd
        } else if self.provisional
            && matches!(wire::lifecycle(&self.event), Some((_, Phase::Start)))
        {
            RecordKind::SpanStart
        } else {
            RecordKind::Event
        }
    }

    pub fn mark_span_end(&mut self) {
        self.span_end = true;
    }

    /// A random id given at capture when the logger was built with
    /// `aitrace_core::Builder::record_ids`, written as the meta key
    /// `record_id` so a reader can drop duplicates of at-least-once delivery.
    #[inline]
    pub fn record_id(&self) -> Option<std::num::NonZeroU64> {
        self.id
    }

    #[inline]
    pub fn assign_id(&mut self) {
        self.id = std::num::NonZeroU64::new(fastrand::u64(1..));
    }

    /// The user fields, in the order they were added.
    #[inline]
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.fields.as_slice().iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The user fields, in order, with their values open to change (for a
    /// `aitrace_core::Builder::before_send` hook).
    #[inline]
    pub fn fields_mut(&mut self) -> impl ExactSizeIterator<Item = (&str, &mut Value)> {
        self.fields
            .as_mut_slice()
            .iter_mut()
            .map(|(k, v)| (&**k, v))
    }

    /// Sets the user field `key`: replaces the value its last occurrence
    /// has (the one written), or adds the field at the end.
    ///
    /// ```
    /// use aitrace_model::{Level, Record, Value};
    ///
    /// let mut record = Record::builder(Level::Info, "login").field("user", "u2").build();
    /// record.set_field("user", "anonymous");
    /// record.set_field("tenant", 7);
    /// record.retain_fields(|key, _| key != "tenant");
    /// assert_eq!(record.field("user"), Some(&Value::from("anonymous")));
    /// assert_eq!(record.fields().count(), 1);
    /// ```
    pub fn set_field(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self
            .fields
            .as_mut_slice()
            .iter_mut()
            .rev()
            .find(|(k, _)| *k == key)
        {
            Some((_, slot)) => *slot = value,
            None => self.fields.push((key, value)),
        }
    }

    /// Keeps only the user fields for which `keep` returns `true`, in order.
    pub fn retain_fields(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        self.fields.retain(|(k, v)| keep(k, v));
    }

    /// Replaces the event name (the redactor's value patterns use it).
    #[inline]
    pub fn set_event(&mut self, event: impl Into<Cow<'static, str>>) {
        self.event = event.into();
    }

    /// The last value of the user field `key`.
    #[inline]
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.fields
            .as_slice()
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Approximate bytes of memory the record holds, itself included. For
    /// the memory benchmark; not part of the supported API.
    #[doc(hidden)]
    #[inline]
    pub fn memory_size(&self) -> usize {
        #[allow(clippy::ptr_arg)] // the point is to tell borrowed from owned
        fn cow(s: &Cow<'static, str>) -> usize {
            match s {
                Cow::Borrowed(_) => 0,
                Cow::Owned(s) => s.capacity(),
            }
        }
        let opt = |s: &Option<Cow<'static, str>>| s.as_ref().map_or(0, cow);
        size_of::<Record>()
            + cow(&self.event)
            + opt(&self.logger)
            + opt(&self.location.file)
            + opt(&self.location.function)
            + self.fields.heap_bytes()
            + self
                .fields
                .as_slice()
                .iter()
                .map(|(k, v)| cow(k) + v.heap_size())
                .sum::<usize>()
    }

    #[inline]
    pub fn raw_fields(&self) -> &[(Cow<'static, str>, Value)] {
        self.fields.as_slice()
    }

    #[inline]
    pub fn raw_fields_mut(&mut self) -> &mut [(Cow<'static, str>, Value)] {
        self.fields.as_mut_slice()
    }

    #[inline]
    pub fn set_context(&mut self, context: Option<SpanContext>) {
        self.context = context;
    }

    #[inline]
    pub fn has_context(&self) -> bool {
        self.context.is_some()
    }
}

/// Builds a [`Record`]; see [`Record::builder`].
#[derive(Debug)]
#[must_use = "a RecordBuilder does nothing until `build` is called"]
pub struct RecordBuilder {
    record: Record,
}

impl RecordBuilder {
    /// Sets the timestamp (default: when the builder was made).
    #[inline]
    pub fn timestamp(mut self, timestamp: SystemTime) -> Self {
        self.record.timestamp = nanos_since_epoch(timestamp);
        self
    }

    /// The timestamp, as nanoseconds since the Unix epoch: by default when
    /// the builder was made, from the same clock as every record's (for a
    /// span's `.end`, whose duration must agree with its stamps).
    #[inline]
    pub fn timestamp_nanos(&self) -> u64 {
        self.record.timestamp
    }

    /// Sets the timestamp as nanoseconds since the Unix epoch (a span's
    /// `.start`, stamped when the span was made).
    #[inline]
    pub fn set_timestamp_nanos(&mut self, nanos: u64) {
        self.record.timestamp = nanos;
    }

    /// Replaces the event name (for visitors that find the message late).
    #[inline]
    pub fn event(mut self, event: impl Into<Cow<'static, str>>) -> Self {
        self.record.event = event.into();
        self
    }

    /// Sets the logger, target or module name.
    #[inline]
    pub fn logger(mut self, logger: impl Into<Cow<'static, str>>) -> Self {
        self.record.logger = Some(logger.into());
        self
    }

    /// Places the record in a span. Without it, a logger fills in the span
    /// current on the capturing thread.
    #[inline]
    pub fn span_context(mut self, context: SpanContext) -> Self {
        self.record.context = Some(context);
        self
    }

    /// Sets the call site.
    #[inline]
    pub fn location(mut self, location: Location) -> Self {
        self.record.location = location;
        self
    }

    /// Sets the source file.
    #[inline]
    pub fn file(mut self, file: impl Into<Cow<'static, str>>) -> Self {
        self.record.location.file = Some(file.into());
        self
    }

    /// Sets the 1-based source line.
    #[inline]
    pub fn line(mut self, line: u32) -> Self {
        self.record.location.line = line;
        self
    }

    /// Sets the function or module path.
    #[inline]
    pub fn function(mut self, function: impl Into<Cow<'static, str>>) -> Self {
        self.record.location.function = Some(function.into());
        self
    }

    /// Marks the record provisional (`NAME.start` records).
    #[inline]
    pub fn provisional(mut self, provisional: bool) -> Self {
        self.record.provisional = provisional;
        self
    }

    /// Marks the record as a span's `NAME.end` lifecycle record (frontends
    /// that write spans set it; see [`Record::is_span_end`]).
    #[inline]
    pub fn span_end(mut self, span_end: bool) -> Self {
        self.record.span_end = span_end;
        self
    }

    /// Adds a user field. A later field with the same key wins on the wire.
    #[inline]
    pub fn field(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.record.fields.push((key.into(), value.into()));
        self
    }

    /// Adds many user fields at once (a visitor's collected fields, say).
    #[inline]
    pub fn fields<K, V>(mut self, fields: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<Cow<'static, str>>,
        V: Into<Value>,
    {
        let fields = fields.into_iter().map(|(k, v)| (k.into(), v.into()));
        self.record.fields.reserve(fields.size_hint().0);
        for field in fields {
            self.record.fields.push(field);
        }
        self
    }

    /// Replaces the user fields with a vector already in the record's own
    /// shape, without copying it (for adapters that collect fields first).
    #[inline]
    pub fn field_vec(mut self, fields: Vec<(Cow<'static, str>, Value)>) -> Self {
        self.record.fields = Fields::from(fields);
        self
    }

    /// Reserves room for `n` more fields.
    #[inline]
    pub fn reserve_fields(mut self, n: usize) -> Self {
        self.record.fields.reserve(n);
        self
    }

    /// Sets the record id (read back from the wire by `Record::from_json`).
    #[inline]
    pub fn record_id(mut self, id: std::num::NonZeroU64) -> Self {
        self.record.id = Some(id);
        self
    }

    /// Replaces the event name through a mutable reference (for adapters
    /// that learn it while visiting the fields).
    #[inline]
    pub fn set_event(&mut self, event: impl Into<Cow<'static, str>>) {
        self.record.event = event.into();
    }

    /// Sets the span context through a mutable reference.
    #[inline]
    pub fn set_span_context(&mut self, context: SpanContext) {
        self.record.context = Some(context);
    }

    /// Reserves room for `n` more fields through a mutable reference.
    #[inline]
    pub fn reserve(&mut self, n: usize) {
        self.record.fields.reserve(n);
    }

    /// Sets the logger, target or module name through a mutable reference.
    #[inline]
    pub fn set_logger(&mut self, logger: impl Into<Cow<'static, str>>) {
        self.record.logger = Some(logger.into());
    }

    /// Sets the call site through a mutable reference.
    #[inline]
    pub fn set_location(&mut self, location: Location) {
        self.record.location = location;
    }

    /// Adds a user field through a mutable reference (for visitors).
    #[inline(always)]
    pub fn push_field(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.record.fields.push((key.into(), value.into()));
    }

    /// The finished record.
    #[inline]
    pub fn build(self) -> Record {
        self.record
    }
}
