//! `AitraceLayer`: tracing events and spans into an aitrace buffer.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use aitrace_core::adapter::{Lifecycle, RemoteTraceGuard};
use aitrace_core::wire::{self, DURATION_FIELD, ERROR_FIELD, Phase};
use aitrace_core::{
    BufferedLogger, Level, Location, Record, RecordBuilder, SpanContext, TraceParent, Value,
    adapter, context,
};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record as SpanValues};
use tracing_core::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The span field whose value, a W3C `traceparent` header, makes the span
/// the child of a span in another process.
pub const TRACEPARENT_FIELD: &str = "traceparent";
/// The span field that holds the `tracestate` header going with
/// [`TRACEPARENT_FIELD`].
pub const TRACESTATE_FIELD: &str = "tracestate";
/// The span field that names a span's records in place of its static
/// name (`info_span!("HTTP request", otel.name = %"GET /users/{id}")`), as
/// tracing-opentelemetry reads it.
pub const OTEL_NAME_FIELD: &str = "otel.name";
/// The span field that, recorded as `"error"` (any case), fails the span as
/// an `ERROR` event inside it does, as tracing-opentelemetry reads it.
pub const OTEL_STATUS_CODE_FIELD: &str = "otel.status_code";
/// The span field whose text is a failed span's `error` (else `error.type`'s,
/// else `"error"`).
pub const OTEL_STATUS_MESSAGE_FIELD: &str = "otel.status_message";
/// The OpenTelemetry attribute naming the class of a failure.
const ERROR_TYPE_FIELD: &str = "error.type";

/// A [`tracing_subscriber::Layer`] that turns events into aitrace records and
/// spans into `NAME.start`/`NAME.end` lifecycle records, buffered in a
/// [`BufferedLogger`].
///
/// * An event's `message` is the record's event name; its other fields keep
///   their types (integers, floats, bools, strings; `Debug` text otherwise).
///   The target is the logger; file, line and module path the location.
/// * A span gets ids when it is created: a child of the span current in
///   `aitrace_core::context` (the innermost entered tracing, aitrace or
///   OpenTelemetry span), or of its explicit `parent:`, else a new root. A
///   span created with a valid `traceparent` field (and optionally
///   `tracestate`), W3C headers from another process, is instead the child
///   of that remote span, in its trace. With the `opentelemetry` feature, a
///   span that tracing-opentelemetry also exports takes its OpenTelemetry
///   ids when it is first entered (see the crate docs). Its `.start` record
///   is written when it is first entered, so it carries the fields recorded
///   until then; fields recorded later go on its `.end` record, with
///   `duration_ms`.
/// * An event without a message is named `error` when it has an `error`
///   field, else after its target (tracing would name it `event FILE:LINE`);
///   a name given with `name:` stays.
/// * An `ERROR` event inside a span (as `#[instrument(err)]` emits) ends the
///   span at `error` level with the event's `error` field, or its message,
///   in `error`. So does a panic that unwinds through it (an `#[instrument]`
///   function that panics), with the panic's message (`"panicked"` when the
///   payload is not a string); see [`aitrace_core::SpanGuard`] for how.
///   [`AitraceLayer::new`] installs the process-wide panic hook this takes
///   (unless `AITRACE_PANIC_HOOK=0`; see
///   [`aitrace_core::adapter::watch_panics`]).
/// * While a span is entered it is `aitrace_core`'s current span on that
///   thread, so `log`, `slog` and core-API records inside it carry its ids.
///
/// The layer does no filtering of its own beyond the logger's minimum level;
/// compose it with `EnvFilter` or a per-layer filter for more.
///
/// Each record also passes the logger's own filter (default `info`, see
/// [`aitrace_core::Filter`]), in addition to tracing's filters: to keep
/// `debug` records with a `DEBUG` per-layer filter, lower the logger's level
/// too (`min_level`, `AITRACE_LEVEL` or `RUST_LOG`). A span the logger's
/// filter does not keep writes no records, whatever happens inside it (an
/// `ERROR` event in tower-http's `DEBUG` `request` span writes no
/// `request.end`), and is not made current, so records and spans inside it
/// belong to the nearest kept span around it, which an error inside does
/// not fail. Whether a span is kept is decided when it is created: a
/// filter changed while it is open (`set_min_level`) does not change it, so
/// a span writes its `.start` and `.end` or neither.
///
/// Several layers can sit on one registry (each with its own logger and
/// filter, say). A span gets one set of ids, picked by the first layer that
/// sees it, so every logger sees the same trace; each layer writes its own
/// `.start`/`.end` records. A clone is a separate layer writing into the same
/// logger. Give the layers the same span filter: a span kept by one logger
/// and filtered out by another is still the current span of the records
/// inside it, so the second logger's tree references a span it never got.
#[derive(Debug)]
pub struct AitraceLayer {
    logger: BufferedLogger,
    id: LayerId,
    #[cfg(feature = "opentelemetry")]
    registered: crate::otel::Registered,
}

impl AitraceLayer {
    /// A layer that writes into `logger`'s buffer.
    pub fn new(logger: BufferedLogger) -> Self {
        adapter::watch_panics();
        AitraceLayer {
            logger,
            id: LayerId::next(),
            #[cfg(feature = "opentelemetry")]
            registered: Default::default(),
        }
    }

    /// The logger this layer writes into.
    pub fn logger(&self) -> &BufferedLogger {
        &self.logger
    }
}

impl Clone for AitraceLayer {
    /// A separate layer (with span state of its own) on the same logger.
    fn clone(&self) -> Self {
        AitraceLayer::new(self.logger.clone())
    }
}

/// Tells apart the layers of one registry: each keeps its own state in a
/// span's extensions, which hold one value per type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LayerId(u64);

impl LayerId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        LayerId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What the aitrace layers keep in a span's extensions: the span's ids and
/// timing, shared by every layer, and each layer's own state.
struct SpanData {
    context: SpanContext,
    /// When the span was made (nanoseconds since the Unix epoch, the core's
    /// clock): its `.start` stamp, and the start of its `duration_ms`.
    created: u64,
    level: Level,
    layers: Layers,
    /// For a span with a `traceparent` field: keeps the remote trace's flags
    /// and `tracestate` known until the span closes.
    _remote: Option<RemoteTraceGuard>,
    /// Whether the ids may still be replaced by tracing-opentelemetry's.
    #[cfg(feature = "opentelemetry")]
    otel_pending: bool,
}

impl SpanData {
    fn layer_mut(&mut self, id: LayerId) -> Option<&mut LayerState> {
        self.layers.iter_mut().find(|l| l.id == id)
    }

    fn take_layer(&mut self, id: LayerId) -> Option<LayerState> {
        self.layers.take(id)
    }
}

/// Each layer's state of a span: the first inline (one layer on a
/// registry is the usual case, and then a span allocates nothing here),
/// the others in a list.
#[derive(Default)]
struct Layers {
    first: Option<LayerState>,
    more: Vec<LayerState>,
}

impl Layers {
    fn one(state: LayerState) -> Self {
        Layers {
            first: Some(state),
            more: Vec::new(),
        }
    }

    fn push(&mut self, state: LayerState) {
        match &self.first {
            None => self.first = Some(state),
            Some(_) => self.more.push(state),
        }
    }

    fn take(&mut self, id: LayerId) -> Option<LayerState> {
        if self.first.as_ref().is_some_and(|l| l.id == id) {
            return self.first.take();
        }
        let i = self.more.iter().position(|l| l.id == id)?;
        Some(self.more.swap_remove(i))
    }

    fn iter(&self) -> impl Iterator<Item = &LayerState> {
        self.first.iter().chain(&self.more)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut LayerState> {
        self.first.iter_mut().chain(&mut self.more)
    }
}

/// One layer's state of a span.
struct LayerState {
    id: LayerId,
    /// Fields for the `.start` record until it is written, then for `.end`.
    fields: Vec<(Cow<'static, str>, Value)>,
    /// Whether this layer's logger keeps the span, decided once when the
    /// span is created: a filter changed while it is open must not leave a
    /// `.start` without its `.end`, or an `.end` without its `.start`.
    kept: bool,
    start_written: bool,
    error: Option<String>,
    /// The name its records carry when an `otel.name` field gave one by
    /// the time `.start` was written.
    name: Option<Box<str>>,
    /// The status fields (`otel.status_code`, `otel.status_message`,
    /// `error.type`) the `.start` record took: the `.end` decides the
    /// status from them and those recorded since, the latest winning.
    status: Vec<(Cow<'static, str>, Value)>,
}

/// Maps a `tracing` level to an aitrace level.
pub fn level_from_tracing(level: &tracing_core::Level) -> Level {
    match *level {
        tracing_core::Level::TRACE => Level::Trace,
        tracing_core::Level::DEBUG => Level::Debug,
        tracing_core::Level::INFO => Level::Info,
        tracing_core::Level::WARN => Level::Warn,
        _ => Level::Error,
    }
}

/// A compact lifecycle record with the span's target and location.
#[inline]
fn located(lifecycle: Lifecycle, meta: &'static Metadata<'static>) -> Lifecycle {
    lifecycle
        .logger(meta.target())
        .location(meta.file(), meta.line().unwrap_or(0))
        .function(meta.module_path())
}

#[inline]
fn locate(builder: &mut RecordBuilder, meta: &'static Metadata<'static>) {
    builder.set_logger(meta.target());
    builder.set_location(location_of(meta));
}

impl AitraceLayer {
    /// The ids of a new span without a remote parent. A contextual span is
    /// a child of the span current on this thread, which the layers'
    /// `on_enter` made the core's current span (as for events); one with an
    /// explicit parent is a child of the nearest ancestor this layer's
    /// logger keeps (one it filters out writes nothing, so it cannot be a
    /// parent in the tree).
    fn local_context<S>(&self, span: &SpanRef<'_, S>, attrs: &Attributes<'_>) -> SpanContext
    where
        S: for<'a> LookupSpan<'a>,
    {
        if attrs.is_contextual() {
            return context::new_span();
        }
        let parent = if attrs.is_root() {
            None
        } else {
            self.nearest_kept(span.scope().skip(1))
        };
        match parent {
            Some(parent) => parent.new_child(),
            None if attrs.is_root() => SpanContext::new_root(),
            None => context::new_span(),
        }
    }

    /// The ids of the first of `spans` (a span and its ancestors, innermost
    /// first) that this layer's logger keeps: a span it filters out writes
    /// nothing, so it cannot hold records or be a parent in the tree.
    fn nearest_kept<'a, S>(
        &self,
        mut spans: impl Iterator<Item = SpanRef<'a, S>>,
    ) -> Option<SpanContext>
    where
        S: for<'b> LookupSpan<'b> + 'a,
    {
        spans.find_map(|span| {
            let kept = {
                let extensions = span.extensions();
                let data = extensions.get::<SpanData>()?;
                data.layers.iter().any(|l| l.id == self.id && l.kept)
            };
            if !kept {
                return None;
            }
            self.settle_ids(&span, true);
            let extensions = span.extensions();
            extensions.get::<SpanData>().map(|data| data.context)
        })
    }

    /// With the `opentelemetry` feature, the first time a span's ids are
    /// needed (first enter, an explicit child or event, close): takes the
    /// trace and span id tracing-opentelemetry gave it. The parent stays
    /// the one aitrace chose when it is in that trace, and is dropped when
    /// not (a parent set with `set_parent` from another process is not
    /// visible through tracing-opentelemetry's API). Without OpenTelemetry
    /// data the span keeps its own ids, and `diagnose` says so once.
    #[cfg(feature = "opentelemetry")]
    fn settle_ids<S>(&self, span: &SpanRef<'_, S>, diagnose: bool)
    where
        S: for<'a> LookupSpan<'a>,
    {
        let pending = span
            .extensions()
            .get::<SpanData>()
            .filter(|data| data.otel_pending)
            .map(|data| data.context);
        let Some(own) = pending else {
            return;
        };
        // A span inside one that continues a caller's trace (a
        // `traceparent` field) stays in that trace, as its parent did.
        let in_remote_trace = own.parent_span_id().is_some()
            && span.scope().skip(1).any(|ancestor| {
                let extensions = ancestor.extensions();
                extensions.get::<SpanData>().is_some_and(|data| {
                    data._remote.is_some() && data.context.trace_id() == own.trace_id()
                })
            });
        // Without holding the extensions: tracing-opentelemetry locks them.
        let found = self.registered.ids(&span.id());
        let mut extensions = span.extensions_mut();
        let Some(data) = extensions.get_mut::<SpanData>() else {
            return;
        };
        if !std::mem::take(&mut data.otel_pending) {
            return; // another thread settled it meanwhile
        }
        match found {
            Ok((trace_id, _))
                if (data._remote.is_some() || in_remote_trace)
                    && trace_id != data.context.trace_id() =>
            {
                // A `traceparent` field put the span in the caller's trace and
                // OpenTelemetry's span is elsewhere: keep the caller's trace.
                drop(extensions);
                aitrace_core::adapter::diagnose("otel-remote-parent", || {
                    format!(
                        "span `{}` has a traceparent field but its OpenTelemetry span is in \
                         another trace; aitrace keeps the caller's trace. Give \
                         tracing-opentelemetry the same parent (`set_parent`) so both agree",
                        span.metadata().name()
                    )
                });
            }
            Ok((trace_id, span_id)) => {
                let parent = data
                    .context
                    .parent_span_id()
                    .filter(|_| data.context.trace_id() == trace_id);
                data.context = SpanContext::new(trace_id, span_id, parent);
            }
            Err(missing) if diagnose => {
                drop(extensions);
                crate::otel::report(missing, span.metadata().name());
            }
            Err(_) => {}
        }
    }

    #[cfg(not(feature = "opentelemetry"))]
    #[inline(always)]
    fn settle_ids<S>(&self, _span: &SpanRef<'_, S>, _diagnose: bool)
    where
        S: for<'a> LookupSpan<'a>,
    {
    }

    fn write_start(
        &self,
        meta: &'static Metadata<'static>,
        level: Level,
        context: SpanContext,
        created: u64,
        state: &mut LayerState,
    ) {
        state.start_written = true;
        let fields = std::mem::take(&mut state.fields);
        if !state.kept {
            return;
        }
        if let Some(name) = field_str(&fields, OTEL_NAME_FIELD).filter(|name| !name.is_empty()) {
            state.name = Some(name.into());
        }
        state.status.extend(
            (fields.iter())
                .filter(|(key, _)| STATUS_FIELDS.contains(&&**key))
                .cloned(),
        );
        if fields.is_empty() {
            // Nothing but the name, location and ids: buffered compact.
            let start = Lifecycle::start(level, meta.name(), context, created);
            return adapter::capture_lifecycle(&self.logger, located(start, meta));
        }
        // Set through `&mut`, not by chained calls: each by-value step can
        // cost a copy of the record.
        let mut builder = Record::builder(
            level,
            lifecycle_event(state.name.as_deref(), meta, Phase::Start),
        )
        .provisional(true);
        locate(&mut builder, meta);
        builder.set_span_context(context);
        builder.reserve(fields.len());
        builder.set_timestamp_nanos(created);
        for (key, value) in fields {
            builder.push_field(key, value);
        }
        // Kept or not was decided when the span was made.
        adapter::capture_span_end(&self.logger, builder.build());
    }
}

impl<S> tracing_subscriber::Layer<S> for AitraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Once per span, not on each enter (each poll of an instrumented
        // future): the hook overwrites the message at each panic.
        adapter::watch_panics();
        let meta = attrs.metadata();
        let mut state = LayerState {
            id: self.id,
            fields: Vec::new(),
            kept: (self.logger).enabled_for(level_from_tracing(meta.level()), meta.target()),
            start_written: false,
            error: None,
            name: None,
            status: Vec::new(),
        };
        attrs.record(&mut FieldVisitor::fields_only(&mut state.fields));
        // Held until the data is in: one lock per span, not two. What runs
        // meanwhile locks only the span's ancestors (never a descendant
        // while holding an ancestor, so never in the opposite order).
        let mut extensions = span.extensions_mut();
        if let Some(data) = extensions.get_mut::<SpanData>() {
            // Another aitrace layer saw the span first and gave it its ids.
            data.layers.push(state);
            return;
        }
        let (context, remote) = match remote_parent_of(&state.fields) {
            Some(parent) => {
                let (context, remote) = adapter::remote_child(&parent);
                (context, Some(remote))
            }
            None => (self.local_context(&span, attrs), None),
        };
        let data = SpanData {
            context,
            created: adapter::now_nanos(),
            level: level_from_tracing(attrs.metadata().level()),
            layers: Layers::one(state),
            _remote: remote,
            #[cfg(feature = "opentelemetry")]
            otel_pending: true,
        };
        extensions.insert(data);
    }

    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        #[cfg(feature = "opentelemetry")]
        self.registered.set(subscriber);
        #[cfg(not(feature = "opentelemetry"))]
        let _ = subscriber;
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions
            .get_mut::<SpanData>()
            .and_then(|data| data.layer_mut(self.id))
        {
            values.record(&mut FieldVisitor::fields_only(&mut state.fields));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        self.settle_ids(&span, true);
        let mut extensions = span.extensions_mut();
        let Some(data) = extensions.get_mut::<SpanData>() else {
            return;
        };
        let (level, context, created) = (data.level, data.context, data.created);
        let Some(state) = data.layer_mut(self.id) else {
            return;
        };
        if !state.start_written {
            self.write_start(span.metadata(), level, context, created, state);
        }
        // Each layer whose logger keeps the span pushes it; every layer's
        // `on_exit` pops one entry of it if there is one, so the stack stays
        // balanced. A span the logger filters out is not current: records
        // inside it belong to the span around it.
        if state.kept {
            adapter::push_current_keyed(context, self.id.0, id.into_non_zero_u64());
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // By this layer and the span's `Id` (unique in this layer's
        // registry): no lookup of the span. A span this layer did not keep
        // pushed nothing, and finds nothing.
        adapter::pop_current_keyed(self.id.0, id.into_non_zero_u64());
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        // A span never entered: tracing-opentelemetry, when it runs first,
        // has exported it already, and there are no ids to find then.
        self.settle_ids(&span, false);
        let mut extensions = span.extensions_mut();
        let Some(data) = extensions.get_mut::<SpanData>() else {
            return;
        };
        let Some(mut state) = data.take_layer(self.id) else {
            return;
        };
        let meta = span.metadata();
        if !state.start_written {
            self.write_start(meta, data.level, data.context, data.created, &mut state);
        }
        if !state.kept {
            return; // a span the filter does not keep writes nothing, failed or not
        }
        match status(&state.status, &state.fields) {
            Status::Error(text) => {
                state.error.get_or_insert(text);
            }
            // As in tracing-opentelemetry: a span declared ok is, whatever
            // an error event inside it said (a panic still fails it).
            Status::Ok => state.error = None,
            Status::Unset => {}
        }
        if let Some(panic) = adapter::panic_error() {
            state.error.get_or_insert(panic);
        }
        let level = if state.error.is_some() {
            Level::Error
        } else {
            data.level
        };
        if state.fields.is_empty() && state.error.is_none() && state.name.is_none() {
            let (context, created) = (data.context, data.created);
            drop(extensions);
            let end = Lifecycle::end(level, meta.name(), context, created, adapter::now_nanos());
            return adapter::capture_lifecycle(&self.logger, located(end, meta));
        }
        let mut builder = Record::builder(
            level,
            lifecycle_event(state.name.as_deref(), meta, Phase::End),
        )
        .span_end(true);
        locate(&mut builder, meta);
        builder.set_span_context(data.context);
        builder.reserve(state.fields.len() + 2);
        for (key, value) in state.fields {
            builder.push_field(key, value);
        }
        // From the two stamps, so the `.end` minus the `.start` is it.
        builder.push_field(
            DURATION_FIELD,
            wire::duration_ms(data.created, builder.timestamp_nanos()),
        );
        if let Some(error) = state.error {
            builder.push_field(ERROR_FIELD, error);
        }
        drop(extensions);
        // Its `.start` was written: the `.end` too, whatever the filter says now.
        adapter::capture_span_end(&self.logger, builder.build());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = level_from_tracing(meta.level());
        if !self.logger.enabled_for(level, meta.target()) || adapter::is_sending() {
            return;
        }
        // Set through `&mut`, not by chained calls: a record is some 300
        // bytes, and each by-value step can cost a copy of it.
        let mut builder = Record::builder(level, meta.name());
        builder.set_logger(meta.target());
        builder.set_location(location_of(meta));
        builder.reserve(meta.fields().len().saturating_sub(1));
        let mut visitor = FieldVisitor {
            fields: Sink::Record(&mut builder),
            message: None,
            take_message: true,
        };
        event.record(&mut visitor);
        let message = visitor.message.take();
        // A contextual event belongs to the span current on this thread,
        // which `on_enter` made the core's current span: reading the core's
        // thread-local stack avoids a registry lookup (and its reference
        // count, shared between threads) on every event.
        let span_context = if event.is_contextual() {
            context::current()
        } else {
            // An explicit parent, or the nearest ancestor of it the logger keeps.
            (event.parent())
                .and_then(|id| ctx.span(id))
                .and_then(|span| self.nearest_kept(span.scope()))
        };
        match message {
            Some(message) => builder.set_event(message),
            None => name_without_message(&mut builder, meta),
        }
        if let Some(span_context) = span_context {
            builder.set_span_context(span_context);
        }
        if level == Level::Error {
            let record = builder.build();
            self.note_error(event, &ctx, &record);
            self.logger.capture(record);
        } else {
            // Built in the call: one copy of the record fewer.
            self.logger.capture(builder.build());
        }
    }
}

impl AitraceLayer {
    /// Remembers an error event's text on its span (the span's `.end`
    /// record and the OTLP span status carry it).
    #[cold]
    fn note_error<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, record: &Record)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if let Some(span) = &ctx.event_span(event) {
            let mut extensions = span.extensions_mut();
            let Some(data) = extensions.get_mut::<SpanData>() else {
                return;
            };
            // A span the filter does not keep writes nothing, and the spans
            // around it did not fail: the event, under the nearest kept
            // span, is what tells.
            if let Some(state) = data.layer_mut(self.id).filter(|state| state.kept) {
                // `#[instrument(err)]` puts the error in an `error` field.
                state
                    .error
                    .get_or_insert_with(|| match record.field(ERROR_FIELD) {
                        Some(Value::Str(text)) => text.to_string(),
                        _ => record.event().to_owned(),
                    });
            }
        }
    }
}

/// Names an event that has no message: tracing makes up
/// `event FILE:LINE`, which tells a reader little. `error` when it has an
/// `error` field (what `#[instrument(err)]` emits), else its target; a name
/// given with `name:` stays.
#[cold]
fn name_without_message(builder: &mut RecordBuilder, meta: &'static Metadata<'static>) {
    let made_up = || {
        let rest = meta.name().strip_prefix("event ")?;
        let line = rest.strip_prefix(meta.file()?)?.strip_prefix(':')?;
        Some(line.parse::<u32>().ok()? == meta.line()?)
    };
    if made_up() != Some(true) {
        return; // `Record::builder` already took `meta.name()`
    }
    if meta.fields().field(ERROR_FIELD).is_some() {
        builder.set_event(ERROR_FIELD);
    } else {
        builder.set_event(meta.target());
    }
}

/// A number that names a callsite for as long as the process runs.
fn callsite_key(callsite: &tracing_core::callsite::Identifier) -> usize {
    // The address of the callsite's static (what `Identifier` compares).
    callsite.0 as *const dyn tracing_core::Callsite as *const () as usize
}

/// The remote parent a span's `traceparent` and `tracestate` fields give,
/// if the header parses (one that does not is ignored, as W3C asks: the
/// span starts where it would without it).
fn remote_parent_of(fields: &[(Cow<'static, str>, Value)]) -> Option<TraceParent> {
    let parent = TraceParent::parse(field_str(fields, TRACEPARENT_FIELD)?).ok()?;
    Some(match field_str(fields, TRACESTATE_FIELD) {
        Some(state) => parent.with_trace_state(state),
        None => parent,
    })
}

/// A lifecycle record's event: after `otel.name` when the span has one,
/// else after its static name (made once per name, then borrowed).
#[inline]
fn lifecycle_event(
    renamed: Option<&str>,
    meta: &'static Metadata<'static>,
    phase: Phase,
) -> Cow<'static, str> {
    match renamed {
        Some(name) => Cow::Owned(wire::lifecycle_event(name, phase)),
        None => Cow::Borrowed(wire::lifecycle_event_static(meta.name(), phase)),
    }
}

/// The last string value of field `name` in a span's list.
fn field_str<'a>(fields: &'a [(Cow<'static, str>, Value)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.as_str())
}

/// The fields a span's status is read from.
const STATUS_FIELDS: [&str; 3] = [
    OTEL_STATUS_CODE_FIELD,
    OTEL_STATUS_MESSAGE_FIELD,
    ERROR_TYPE_FIELD,
];

/// A span's status, as its `otel.status_code` field says.
enum Status {
    /// `error`, with the span's `error` text: its `otel.status_message`,
    /// else its `error.type`, else `"error"`.
    Error(String),
    Ok,
    Unset,
}

/// The status the latest values of the status fields give: those recorded
/// since `.start` (`end`), else those it took (`start`).
fn status(start: &[(Cow<'static, str>, Value)], end: &[(Cow<'static, str>, Value)]) -> Status {
    if start.is_empty() && !end.iter().any(|(key, _)| key == OTEL_STATUS_CODE_FIELD) {
        return Status::Unset; // the usual case: no status at all
    }
    let latest = |name| field_str(end, name).or_else(|| field_str(start, name));
    match latest(OTEL_STATUS_CODE_FIELD) {
        Some(code) if code.eq_ignore_ascii_case("error") => {
            let text = latest(OTEL_STATUS_MESSAGE_FIELD)
                .or_else(|| latest(ERROR_TYPE_FIELD))
                .unwrap_or("error");
            Status::Error(text.to_owned())
        }
        Some(code) if code.eq_ignore_ascii_case("ok") => Status::Ok,
        _ => Status::Unset,
    }
}

#[inline]
fn location_of(meta: &'static Metadata<'static>) -> Location {
    Location::new(
        meta.file().map(Cow::Borrowed),
        meta.line(),
        meta.module_path().map(Cow::Borrowed),
    )
}

/// Turns tracing fields into typed values; `message` becomes the event name.
struct FieldVisitor<'a> {
    fields: Sink<'a>,
    message: Option<Cow<'static, str>>,
    /// Events take their `message` as the name; spans keep it as a field.
    take_message: bool,
}

/// Where a visitor puts the fields: a span's list, or straight into the
/// record an event becomes (no list of its own to allocate).
enum Sink<'a> {
    List(&'a mut Vec<(Cow<'static, str>, Value)>),
    Record(&'a mut aitrace_core::RecordBuilder),
}

impl<'a> FieldVisitor<'a> {
    fn fields_only(fields: &'a mut Vec<(Cow<'static, str>, Value)>) -> Self {
        FieldVisitor {
            fields: Sink::List(fields),
            message: None,
            take_message: false,
        }
    }

    #[inline(always)]
    fn push(&mut self, field: &Field, value: Value) {
        let key = Cow::Borrowed(field.name());
        match &mut self.fields {
            Sink::List(list) => list.push((key, value)),
            Sink::Record(record) => record.push_field(key, value),
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::U64(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, Value::from(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && self.take_message {
            self.message = Some(Cow::Owned(value.to_owned()));
        } else {
            self.push(field, Value::from(value));
        }
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.push(field, Value::Bytes(value.into()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.push(field, Value::from(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && self.take_message {
            let callsite = field.callsite();
            self.message = Some(crate::message::message(callsite_key(&callsite), value));
        } else {
            self.push(field, Value::from_debug(value));
        }
    }
}
