//! `AitraceLayer`: tracing events and spans into an aitrace buffer.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

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

use crate::spans::Table;

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
///   carries the time the span was created, and is written when it is
///   first entered (or when it closes, if it never was), so it carries the
///   fields recorded until then; fields recorded later go on its `.end`
///   record, with `duration_ms`.
/// * An event without a message is named `error` when it has an `error`
///   field, else after its target (tracing would name it `event FILE:LINE`);
///   a name given with `name:` stays.
/// * An `ERROR` event inside a span (as `#[instrument(err)]` emits) ends the
///   span at `error` level with the event's `error` field, or its message,
///   in `error`. So does a panic that unwinds through it (an `#[instrument]`
///   function that panics), with the panic's message (`"panicked"` when the
///   payload is not a string); see [`aitrace_core::SpanGuard`] for how. A
///   span created while its thread unwinds (by a `Drop`) is not failed by
///   that panic.
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
/// `request.end`), and is not made current: records and spans inside it
/// belong to the nearest kept span around it when it was made, which an
/// error inside does not fail, also where that span is not entered (a
/// library's `debug_span!` task spawned inside a request's span, polled on
/// another thread). A span another aitrace layer on the registry keeps is
/// current inside it for every logger. (A span a per-layer filter drops
/// never reaches the layer: what is made inside it, in a task of its own,
/// starts a trace.) Whether a span is kept is decided when it is created:
/// a filter changed while it is open (`set_min_level`) does not change it,
/// so a span writes its `.start` and `.end` or neither.
///
/// Several layers can sit on one registry (each with its own logger and
/// filter, say). A span gets one set of ids, picked by the first layer that
/// sees it, so every logger sees the same trace; each layer writes its own
/// `.start`/`.end` records. A clone is a separate layer writing into the same
/// logger. Give the layers the same span filter: a span kept by one logger
/// and filtered out by another is still the current span of the records
/// inside it, so the second logger's tree references a span it never got.
///
/// Span state lives in a table the aitrace layers of one
/// `tracing_subscriber::Registry` share, and a span without fields
/// allocates nothing in steady state. While an aitrace layer in the
/// process is not registered with its subscriber (inside an `Option` or a
/// `Vec` of layers, wrappers that do not pass
/// `Layer::on_register_dispatch` on, or swapped in through `reload`), or on
/// a subscriber that is not a `Registry`, the aitrace layers keep span
/// state in the spans' extensions instead: one allocation per span (two
/// past two aitrace layers on the subscriber), the same ids and trees. A
/// span that opens while a layer is being swapped in through `reload` may
/// get other ids in that layer's logger, and a span open across the swap
/// gets no `.end` from the replaced layer (nor from its replacement, which
/// never saw it open).
#[derive(Debug)]
pub struct AitraceLayer {
    logger: BufferedLogger,
    id: LayerId,
    /// The span table of this layer's registry, shared with the other
    /// aitrace layers on it (see `spans.rs`); set when the layer is
    /// registered with a `tracing_subscriber::Registry`. Unset (a layer in
    /// a wrapper that does not pass the registration on, or on another
    /// subscriber), the layers keep span state in the spans' extensions.
    spans: OnceLock<Arc<Table<SpanData>>>,
    /// Counted in [`UNREGISTERED`]: added to a subscriber (or seen
    /// working) and not registered with one.
    unregistered: AtomicBool,
    /// Whether a subscriber registered this layer (`on_register_dispatch`).
    seen_dispatch: AtomicBool,
    #[cfg(feature = "opentelemetry")]
    registered: crate::otel::Registered,
}

/// Aitrace layers in this process that were added to a subscriber
/// (`Layer::on_layer`) or started working (a layer swapped in through
/// `reload` is told neither) and were not registered with it
/// (`on_register_dispatch`, which `Option`, a `Vec` of layers and a layer
/// joined by `and_then` inside them do not pass on). Such a layer has no
/// table and keeps its spans in their extensions. The aitrace layers of one
/// subscriber must agree on where a span's state is, or each gives the span
/// ids of its own and the core's span stack mixes them; which layers share
/// a subscriber cannot be told through every wrapper, so while any such
/// layer lives, every aitrace layer in the process puts new spans in the
/// extensions (as all did before the table, an allocation per span).
static UNREGISTERED: AtomicUsize = AtomicUsize::new(0);

impl AitraceLayer {
    /// A layer that writes into `logger`'s buffer.
    pub fn new(logger: BufferedLogger) -> Self {
        adapter::watch_panics();
        AitraceLayer {
            logger,
            id: LayerId::next(),
            spans: OnceLock::new(),
            unregistered: AtomicBool::new(false),
            seen_dispatch: AtomicBool::new(false),
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

impl AitraceLayer {
    /// The table new spans go to: this layer's registry's, while no aitrace
    /// layer in the process is unregistered (see [`UNREGISTERED`]).
    #[inline]
    fn table_for_new_spans(&self) -> Option<&Arc<Table<SpanData>>> {
        let table = self.spans.get()?;
        (UNREGISTERED.load(Ordering::Acquire) == 0).then_some(table)
    }

    /// Counts this layer in [`UNREGISTERED`], once.
    fn count_unregistered(&self) {
        if !self.unregistered.swap(true, Ordering::AcqRel) {
            UNREGISTERED.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Takes this layer out of [`UNREGISTERED`] if it was counted.
    fn uncount_unregistered(&self) {
        if self.unregistered.swap(false, Ordering::AcqRel) {
            UNREGISTERED.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for AitraceLayer {
    /// Takes this layer's state of the spans still open out of the table
    /// (a layer replaced through `reload` sees no more `on_close`, and its
    /// state would keep their entries, and their `Id`s, forever), and
    /// uncounts it if it was unregistered.
    fn drop(&mut self) {
        self.uncount_unregistered();
        if let Some(table) = self.spans.get() {
            let mut remotes = Vec::new();
            table.retain(|data| {
                drop(data.take_layer(self.id));
                if data.layers.is_empty() {
                    remotes.extend(data._remote.take());
                }
                !data.layers.is_empty()
            });
            drop(remotes); // after the shards' locks
        }
    }
}

/// Tells apart the layers of one registry: each keeps its own state of a
/// span beside the others'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LayerId(u64);

impl LayerId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        LayerId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// The span table the aitrace layers of the registry at `address` share,
/// made by the first of them registered.
fn table_of_registry(address: usize) -> Arc<Table<SpanData>> {
    static TABLES: Mutex<Vec<(usize, Weak<Table<SpanData>>)>> = Mutex::new(Vec::new());
    let mut tables = TABLES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // A registry that is gone took its layers, and their tables, with it;
    // another may be made at its address later.
    tables.retain(|(_, table)| table.strong_count() > 0);
    if let Some(table) = (tables.iter())
        .find(|(at, _)| *at == address)
        .and_then(|(_, table)| table.upgrade())
    {
        return table;
    }
    let table = Arc::new(Table::new());
    tables.push((address, Arc::downgrade(&table)));
    table
}

/// What the aitrace layers keep of a span (in their registry's table, or
/// its extensions): the span's ids and timing, shared by every layer, and
/// each layer's own state.
struct SpanData {
    meta: &'static Metadata<'static>,
    /// The span's ids; or, while no aitrace layer keeps the span (`around`),
    /// the ids of the span records inside it belong to.
    context: SpanContext,
    /// When the span was made (nanoseconds since the Unix epoch, the core's
    /// clock): its `.start` stamp, and the start of its `duration_ms`.
    created: u64,
    level: Level,
    /// No aitrace layer keeps the span, and `context` is the nearest kept
    /// span around it when it was made: made current on each of its
    /// enters, on whatever thread, so a `debug_span!` task spawned inside a
    /// request span keeps the request's trace where the request is not
    /// entered. (A flag in the padding: the state stays 192 bytes.)
    around: bool,
    layers: Layers,
    /// For a span with a `traceparent` field: keeps the remote trace's flags
    /// and `tracestate` known until the span closes.
    _remote: Option<RemoteTraceGuard>,
    /// Whether the ids may still be replaced by tracing-opentelemetry's.
    #[cfg(feature = "opentelemetry")]
    otel_pending: bool,
}

impl SpanData {
    /// Adds a layer's state to a span another aitrace layer saw first. A
    /// layer that keeps a span none kept so far gives it the ids it would
    /// have given it first (`context`, as [`AitraceLayer::new_data`] takes
    /// them).
    fn join(&mut self, state: LayerState, context: impl FnOnce() -> SpanContext) {
        if state.kept && self.around {
            self.context = context();
            self.around = false;
            #[cfg(feature = "opentelemetry")]
            {
                self.otel_pending = true;
            }
        }
        self.layers.push(state);
    }

    fn layer_mut(&mut self, id: LayerId) -> Option<&mut LayerState> {
        self.layers.iter_mut().find(|l| l.id == id)
    }

    fn take_layer(&mut self, id: LayerId) -> Option<LayerState> {
        self.layers.take(id)
    }
}

/// Each layer's state of a span: the first two inline (one layer on a
/// registry is the usual case, two with per-layer filters a documented
/// one, and then a span allocates nothing here), the others in a list.
#[derive(Default)]
struct Layers {
    first: Option<LayerState>,
    second: Option<LayerState>,
    more: Vec<LayerState>,
}

impl Layers {
    fn one(state: LayerState) -> Self {
        Layers {
            first: Some(state),
            ..Layers::default()
        }
    }

    fn push(&mut self, state: LayerState) {
        if self.first.is_none() {
            self.first = Some(state);
        } else if self.second.is_none() {
            self.second = Some(state);
        } else {
            self.more.push(state);
        }
    }

    fn take(&mut self, id: LayerId) -> Option<LayerState> {
        for slot in [&mut self.first, &mut self.second] {
            if slot.as_ref().is_some_and(|l| l.id == id) {
                return slot.take();
            }
        }
        let i = self.more.iter().position(|l| l.id == id)?;
        Some(self.more.swap_remove(i))
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.second.is_none() && self.more.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &LayerState> {
        self.first.iter().chain(&self.second).chain(&self.more)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut LayerState> {
        (self.first.iter_mut())
            .chain(&mut self.second)
            .chain(&mut self.more)
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
    /// Created while its thread was unwinding from a panic (by a `Drop`):
    /// that panic does not unwind through it, so it does not fail it.
    opened_unwinding: bool,
    /// What few spans have, boxed when first needed (each allocates then
    /// anyway): the state of the usual span stays small, to move in and
    /// out of the table.
    rare: Option<Box<Rare>>,
}

/// What few spans have; see [`LayerState::rare`].
#[derive(Default)]
struct Rare {
    error: Option<String>,
    /// The name its records carry when an `otel.name` field gave one by
    /// the time `.start` was written.
    name: Option<Box<str>>,
    /// The status fields (`otel.status_code`, `otel.status_message`,
    /// `error.type`) the `.start` record took: the `.end` decides the
    /// status from them and those recorded since, the latest winning.
    status: Vec<(Cow<'static, str>, Value)>,
}

impl LayerState {
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }

    fn name(&self) -> Option<&str> {
        self.rare.as_ref()?.name.as_deref()
    }
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

/// What a `.start` needs once it is taken from a span's state: written
/// after the state's lock is released.
struct Start {
    fields: Vec<(Cow<'static, str>, Value)>,
    /// The name from `otel.name`, when the span has one.
    name: Option<Box<str>>,
}

/// A span's state as a layer's `on_close` takes it.
struct Closed {
    meta: &'static Metadata<'static>,
    context: SpanContext,
    created: u64,
    level: Level,
    state: LayerState,
}

impl AitraceLayer {
    /// Runs `f` on the state of span `id`: in the registry's table, or in
    /// its extensions.
    #[inline]
    fn data<S, R>(
        &self,
        id: &Id,
        ctx: &Context<'_, S>,
        f: impl FnOnce(&mut SpanData) -> R,
    ) -> Option<R>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut f = Some(f);
        if let Some(table) = self.spans.get() {
            // The usual case; a span put in the extensions (while a layer
            // was unregistered, see `UNREGISTERED`) is looked for there after.
            let found = table.with(id.into_u64(), |data| f.take().map(|f| f(data)));
            if let Some(found) = found {
                return found;
            }
        }
        let span = ctx.span(id)?;
        let mut extensions = span.extensions_mut();
        extensions
            .get_mut::<SpanData>()
            .and_then(|data| f.take().map(|f| f(data)))
    }

    /// [`data`](Self::data), for a span already looked up.
    #[inline]
    fn data_of<S, R>(&self, span: &SpanRef<'_, S>, f: impl FnOnce(&mut SpanData) -> R) -> Option<R>
    where
        S: for<'a> LookupSpan<'a>,
    {
        let mut f = Some(f);
        if let Some(table) = self.spans.get() {
            let found = table.with(span.id().into_u64(), |data| f.take().map(|f| f(data)));
            if let Some(found) = found {
                return found;
            }
        }
        (span.extensions_mut().get_mut::<SpanData>()).and_then(|data| f.take().map(|f| f(data)))
    }

    /// The ids of a new span without a remote parent. A contextual span is
    /// a child of the span current on this thread, which the layers'
    /// `on_enter` made the core's current span (as for events); one with an
    /// explicit parent is a child of the nearest ancestor this layer's
    /// logger keeps (one it filters out writes nothing, so it cannot be a
    /// parent in the tree).
    fn local_context<S>(&self, id: &Id, ctx: &Context<'_, S>, attrs: &Attributes<'_>) -> SpanContext
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if attrs.is_contextual() {
            return context::new_span();
        }
        let parent = if attrs.is_root() {
            None
        } else {
            ctx.span(id)
                .and_then(|span| self.nearest_kept(span.scope().skip(1)))
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
            let kept = self.data_of(&span, |data| {
                data.layers.iter().any(|l| l.id == self.id && l.kept)
            })?;
            if !kept {
                return None;
            }
            self.settle_ids(&span, true);
            self.data_of(&span, |data| data.context)
        })
    }

    /// What records inside new span `id` belong to when no aitrace
    /// layer keeps it: the span current here, for a contextual span (the
    /// core's stack is every layer's); for an explicit parent, the nearest
    /// ancestor some aitrace layer keeps (or what records inside that one
    /// belong to), and nothing when there is none. Called only for a span
    /// this layer's logger does not keep.
    fn around<S>(
        &self,
        id: &Id,
        ctx: &Context<'_, S>,
        attrs: &Attributes<'_>,
    ) -> Option<SpanContext>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if attrs.is_contextual() {
            return context::current();
        }
        let span = ctx.span(id)?;
        span.scope().skip(1).find_map(|ancestor| {
            self.data_of(&ancestor, |data| {
                (data.around || data.layers.iter().any(|l| l.kept)).then_some(data.context)
            })
            .flatten()
        })
    }

    /// [`settle_ids`](Self::settle_ids) for span `id`, looked up only when
    /// its ids may still change.
    #[cfg(feature = "opentelemetry")]
    fn settle<S>(&self, id: &Id, ctx: &Context<'_, S>, diagnose: bool)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if self.data(id, ctx, |data| data.otel_pending) != Some(true) {
            return;
        }
        if let Some(span) = ctx.span(id) {
            self.settle_ids(&span, diagnose);
        }
    }

    #[cfg(not(feature = "opentelemetry"))]
    #[inline(always)]
    fn settle<S>(&self, _id: &Id, _ctx: &Context<'_, S>, _diagnose: bool)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
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
        let pending = self
            .data_of(span, |data| data.otel_pending.then_some(data.context))
            .flatten();
        let Some(own) = pending else {
            return;
        };
        // A span inside one that continues a caller's trace (a
        // `traceparent` field) stays in that trace, as its parent did.
        let in_remote_trace = own.parent_span_id().is_some()
            && span.scope().skip(1).any(|ancestor| {
                self.data_of(&ancestor, |data| {
                    data._remote.is_some() && data.context.trace_id() == own.trace_id()
                }) == Some(true)
            });
        // Without holding the span's state: tracing-opentelemetry locks
        // the span's extensions.
        let found = self.registered.ids(&span.id());
        let outcome = self.data_of(span, |data| {
            if !std::mem::take(&mut data.otel_pending) {
                return None; // another thread settled it meanwhile
            }
            Some(match found {
                Ok((trace_id, _))
                    if (data._remote.is_some() || in_remote_trace)
                        && trace_id != data.context.trace_id() =>
                {
                    // A `traceparent` field put the span in the caller's
                    // trace and OpenTelemetry's span is elsewhere: keep
                    // the caller's trace.
                    Err(None)
                }
                Ok((trace_id, span_id)) => {
                    let parent = data
                        .context
                        .parent_span_id()
                        .filter(|_| data.context.trace_id() == trace_id);
                    data.context = SpanContext::new(trace_id, span_id, parent);
                    Ok(())
                }
                Err(missing) => Err(Some(missing)),
            })
        });
        match outcome.flatten() {
            Some(Err(None)) => {
                aitrace_core::adapter::diagnose("otel-remote-parent", || {
                    format!(
                        "span `{}` has a traceparent field but its OpenTelemetry span is in \
                     another trace; aitrace keeps the caller's trace. Give \
                     tracing-opentelemetry the same parent (`set_parent`) so both agree",
                        span.metadata().name()
                    )
                });
            }
            Some(Err(Some(missing))) if diagnose => {
                crate::otel::report(missing, span.metadata().name());
            }
            _ => {}
        }
    }

    #[cfg(not(feature = "opentelemetry"))]
    #[inline(always)]
    fn settle_ids<S>(&self, _span: &SpanRef<'_, S>, _diagnose: bool)
    where
        S: for<'a> LookupSpan<'a>,
    {
    }

    /// Takes what a span's `.start` is written from out of its state
    /// (called with the state locked; the `.start` is written after).
    /// `None` when the logger does not keep the span.
    fn take_start(state: &mut LayerState) -> Option<Start> {
        state.start_written = true;
        let fields = std::mem::take(&mut state.fields);
        if !state.kept {
            return None;
        }
        if fields.is_empty() {
            return Some(Start { fields, name: None });
        }
        if let Some(name) = field_str(&fields, OTEL_NAME_FIELD).filter(|name| !name.is_empty()) {
            state.rare().name = Some(name.into());
        }
        let mut status = (fields.iter())
            .filter(|(key, _)| STATUS_FIELDS.contains(&&**key))
            .peekable();
        if status.peek().is_some() {
            state.rare().status.extend(status.cloned());
        }
        Some(Start {
            name: state.name().map(Into::into),
            fields,
        })
    }

    fn write_start(
        &self,
        meta: &'static Metadata<'static>,
        level: Level,
        context: SpanContext,
        created: u64,
        start: Start,
    ) {
        let Start { fields, name } = start;
        if fields.is_empty() {
            // Nothing but the name, location and ids: buffered compact.
            let start = Lifecycle::start(level, meta.name(), context, created);
            return adapter::capture_lifecycle(&self.logger, located(start, meta));
        }
        // Set through `&mut`, not by chained calls: each by-value step can
        // cost a copy of the record.
        let mut builder =
            Record::builder(level, lifecycle_event(name.as_deref(), meta, Phase::Start))
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

    /// This layer's state of span `id`, taken at its close, with the
    /// span's own; the span leaves the registry's table with its last
    /// layer.
    fn take_closed<S>(&self, id: &Id, ctx: &Context<'_, S>) -> Option<Closed>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let take = |data: &mut SpanData| {
            let state = data.take_layer(self.id)?;
            Some(Closed {
                meta: data.meta,
                context: data.context,
                created: data.created,
                level: data.level,
                state,
            })
        };
        if let Some(table) = self.spans.get() {
            let key = id.into_u64();
            let mut shard = table.lock(key);
            if let Some(data) = shard.get_mut(key) {
                let closed = take(data);
                if data.layers.is_empty() {
                    // The slot stays for the next span; the remote trace's
                    // guard is dropped after the lock (it runs code of its
                    // own).
                    let remote = shard.release(key).and_then(|data| data._remote.take());
                    drop(shard);
                    drop(remote);
                }
                return closed;
            }
        }
        let span = ctx.span(id)?;
        let mut extensions = span.extensions_mut();
        extensions.get_mut::<SpanData>().and_then(take)
    }

    /// Writes a span's `.end` as a [`Record`]: it has fields, a status,
    /// an error or an `otel.name`, or a panic ends it.
    #[cold]
    fn end_record(
        &self,
        meta: &'static Metadata<'static>,
        level: Level,
        context: SpanContext,
        created: u64,
        state: LayerState,
        panic: Option<String>,
    ) {
        let Rare {
            mut error,
            name,
            status: start_status,
        } = state.rare.map(|rare| *rare).unwrap_or_default();
        match status(&start_status, &state.fields) {
            Status::Error(text) => {
                error.get_or_insert(text);
            }
            // As in tracing-opentelemetry: a span declared ok is, whatever
            // an error event inside it said (a panic still fails it).
            Status::Ok => error = None,
            Status::Unset => {}
        }
        if let Some(panic) = panic {
            error.get_or_insert(panic);
        }
        let level = if error.is_some() { Level::Error } else { level };
        if state.fields.is_empty() && error.is_none() && name.is_none() {
            let end = Lifecycle::end(level, meta.name(), context, created, adapter::now_nanos());
            return adapter::capture_lifecycle(&self.logger, located(end, meta));
        }
        let mut builder =
            Record::builder(level, lifecycle_event(name.as_deref(), meta, Phase::End))
                .span_end(true);
        locate(&mut builder, meta);
        builder.set_span_context(context);
        builder.reserve(state.fields.len() + 2);
        for (key, value) in state.fields {
            builder.push_field(key, value);
        }
        // From the two stamps, so the `.end` minus the `.start` is it.
        builder.push_field(
            DURATION_FIELD,
            wire::duration_ms(created, builder.timestamp_nanos()),
        );
        if let Some(error) = error {
            builder.push_field(ERROR_FIELD, error);
        }
        // Its `.start` was written: the `.end` too, whatever the filter says now.
        adapter::capture_span_end(&self.logger, builder.build());
    }

    /// The state of a span no aitrace layer has seen yet: its ids (from a
    /// `traceparent` field, or `context`), its stamp and `state`.
    fn new_data(
        attrs: &Attributes<'_>,
        state: LayerState,
        context: impl FnOnce() -> SpanContext,
        around: Option<SpanContext>,
    ) -> SpanData {
        let meta = attrs.metadata();
        let (context, remote) = Self::ids(&state, context);
        // A span continuing a caller's trace keeps its ids.
        let around = around.filter(|_| remote.is_none());
        SpanData {
            meta,
            context: around.unwrap_or(context),
            created: adapter::now_nanos(),
            level: level_from_tracing(meta.level()),
            around: around.is_some(),
            layers: Layers::one(state),
            _remote: remote,
            // A span no layer keeps writes no ids: none to settle.
            #[cfg(feature = "opentelemetry")]
            otel_pending: around.is_none(),
        }
    }

    /// [`new_data`](Self::new_data) written into `slot`, a closed span's
    /// emptied state, field by field: nothing the size of the state is
    /// moved.
    fn refill(
        slot: &mut SpanData,
        attrs: &Attributes<'_>,
        state: LayerState,
        context: impl FnOnce() -> SpanContext,
        around: Option<SpanContext>,
    ) {
        let meta = attrs.metadata();
        let (context, remote) = Self::ids(&state, context);
        let around = around.filter(|_| remote.is_none());
        slot.meta = meta;
        slot.context = around.unwrap_or(context);
        slot.around = around.is_some();
        slot.created = adapter::now_nanos();
        slot.level = level_from_tracing(meta.level());
        slot.layers.push(state);
        slot._remote = remote;
        #[cfg(feature = "opentelemetry")]
        {
            slot.otel_pending = around.is_none();
        }
    }

    /// A new span's ids: from its `traceparent` field, or `context`.
    /// Always inline: returned through memory, the ids were read back by
    /// wider words than they were written in, a stall of some 20 cycles
    /// every span.
    #[inline(always)]
    fn ids(
        state: &LayerState,
        context: impl FnOnce() -> SpanContext,
    ) -> (SpanContext, Option<RemoteTraceGuard>) {
        match remote_parent_of(&state.fields) {
            Some(parent) => {
                let (context, remote) = adapter::remote_child(&parent);
                (context, Some(remote))
            }
            None => (context(), None),
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for AitraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Once per span, not on each enter (each poll of an instrumented
        // future): the hook overwrites the message at each panic.
        let opened_unwinding = adapter::watch_panics();
        let meta = attrs.metadata();
        let mut state = LayerState {
            id: self.id,
            fields: Vec::new(),
            kept: (self.logger).enabled_for(level_from_tracing(meta.level()), meta.target()),
            start_written: false,
            opened_unwinding,
            rare: None,
        };
        if !attrs.fields().is_empty() {
            attrs.record(&mut FieldVisitor::fields_only(&mut state.fields));
        }
        let around = if state.kept {
            None
        } else {
            self.around(id, &ctx, attrs)
        };
        let key = id.into_u64();
        if self.spans.get().is_none() && !self.seen_dispatch.load(Ordering::Acquire) {
            // Working without having been registered: swapped in through
            // `reload` (told neither `on_layer` nor the registration).
            self.count_unregistered();
        }
        // A span with an explicit parent takes its ids from the parent's
        // state: read before this span's shard is locked.
        let explicit = (!attrs.is_contextual()).then(|| self.local_context(id, &ctx, attrs));
        let context = || explicit.unwrap_or_else(context::new_span);
        let Some(table) = self.table_for_new_spans() else {
            if let Some(table) = self.spans.get() {
                // Another layer put the span in the table before an
                // unregistered layer turned up: join it there.
                let mut shard = table.lock(key);
                if let Some(data) = shard.get_mut(key) {
                    return data.join(state, context);
                }
            }
            return self.new_span_in_extensions(id, &ctx, attrs, state, context, around);
        };
        let mut shard = table.lock(key);
        if let Some(data) = shard.get_mut(key) {
            // Another aitrace layer saw the span first and gave it its ids.
            return data.join(state, context);
        }
        match shard.reuse(key) {
            Some(slot) => Self::refill(slot, attrs, state, context, around),
            None => shard.insert(key, Self::new_data(attrs, state, context, around)),
        }
    }

    fn on_layer(&mut self, _subscriber: &mut S) {
        // Until `on_register_dispatch` says otherwise (every wrapper passes
        // `on_layer` on; `Option` and `Vec` do not pass the registration).
        self.count_unregistered();
    }

    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        if let Some(registry) = subscriber.downcast_ref::<tracing_subscriber::Registry>() {
            // A layer sits in one subscriber; a second registration is the same.
            let address = registry as *const tracing_subscriber::Registry as usize;
            let _ = self.spans.get_or_init(|| table_of_registry(address));
        }
        // Registered: with a table, or (another subscriber) with all its
        // aitrace layers on the extensions alike.
        self.seen_dispatch.store(true, Ordering::Release);
        self.uncount_unregistered();
        #[cfg(feature = "opentelemetry")]
        self.registered.set(subscriber);
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        // Visited before the state is locked: a field's `Debug` may emit.
        let mut fields = Vec::new();
        values.record(&mut FieldVisitor::fields_only(&mut fields));
        self.data(id, &ctx, |data| {
            if let Some(state) = data.layer_mut(self.id) {
                state.fields.append(&mut fields);
            }
        });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.settle(id, &ctx, true);
        // The `.start`, taken out on the first enter, goes straight where
        // it is read: inside the tuple, it was moved twice and read back by
        // wider words than it was written in.
        let mut start = None;
        let entered = self.data(id, &ctx, |data| {
            let state = data.layer_mut(self.id)?;
            if !state.start_written {
                start = Self::take_start(state);
            }
            // What this layer makes current: the span, when its logger
            // keeps it; the span its records belong to, when no aitrace
            // layer keeps it; else nothing (a layer that keeps it makes it
            // current).
            let push = state.kept || data.around;
            let context = data.context;
            Some((push, data.meta, data.level, context, data.created))
        });
        let Some((push, meta, level, context, created)) = entered.flatten() else {
            return;
        };
        if let Some(start) = start {
            self.write_start(meta, level, context, created, start);
        }
        // Every layer's `on_exit` pops one entry of the span if there is
        // one: pushed on each enter or on none, the stack stays balanced.
        if push {
            adapter::push_current_keyed(context, self.id.0, id.into_non_zero_u64());
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // By this layer and the span's `Id` (unique in this layer's
        // registry): no lookup of the span. A span this layer pushed
        // nothing for (another layer keeps it, or there is nothing around
        // it) finds nothing.
        adapter::pop_current_keyed(self.id.0, id.into_non_zero_u64());
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // A span never entered: tracing-opentelemetry, when it runs first,
        // has exported it already, and there are no ids to find then.
        self.settle(&id, &ctx, false);
        let Some(Closed {
            meta,
            context,
            created,
            level,
            mut state,
        }) = self.take_closed(&id, &ctx)
        else {
            return;
        };
        if !state.start_written {
            if let Some(start) = Self::take_start(&mut state) {
                self.write_start(meta, level, context, created, start);
            }
        }
        if !state.kept {
            return; // a span the filter does not keep writes nothing, failed or not
        }
        let panic = adapter::span_panic_error(state.opened_unwinding);
        if state.fields.is_empty() && state.rare.is_none() && panic.is_none() {
            // The usual span: no fields, no status, no error.
            let end = Lifecycle::end(level, meta.name(), context, created, adapter::now_nanos());
            return adapter::capture_lifecycle(&self.logger, located(end, meta));
        }
        self.end_record(meta, level, context, created, state, panic);
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
    /// `on_new_span` for a layer that keeps span state in the spans'
    /// extensions (no registry table; see the `spans` field), with the ids
    /// `on_new_span` works out for the table too.
    fn new_span_in_extensions<S>(
        &self,
        id: &Id,
        ctx: &Context<'_, S>,
        attrs: &Attributes<'_>,
        state: LayerState,
        context: impl FnOnce() -> SpanContext,
        around: Option<SpanContext>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
            // Another aitrace layer saw the span first and gave it its ids.
            return data.join(state, context);
        }
        let data = Self::new_data(attrs, state, context, around);
        span.extensions_mut().insert(data);
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
            self.data_of(span, |data| {
                // A span the filter does not keep writes nothing, and the
                // spans around it did not fail: the event, under the
                // nearest kept span, is what tells.
                if let Some(state) = data.layer_mut(self.id).filter(|state| state.kept) {
                    // `#[instrument(err)]` puts the error in an `error` field.
                    state
                        .rare()
                        .error
                        .get_or_insert_with(|| match record.field(ERROR_FIELD) {
                            Some(Value::Str(text)) => text.to_string(),
                            _ => record.event().to_owned(),
                        });
                }
            });
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aitrace_core::{BufferedLogger, Level, Record};
    use aitrace_testkit::find;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;

    use super::*;

    fn logger() -> BufferedLogger {
        aitrace_testkit::memory_logger(Level::Info).0
    }

    /// Whether new spans go to the table depends on every aitrace layer in
    /// the process (see `UNREGISTERED`): the tests that look at the table,
    /// and the one that makes unregistered layers, take turns.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A layer that lends its span table to the test once registered.
    struct Spy(AitraceLayer, Arc<OnceLock<Arc<Table<SpanData>>>>);

    impl<S> tracing_subscriber::Layer<S> for Spy
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_register_dispatch(&self, subscriber: &Dispatch) {
            tracing_subscriber::Layer::<S>::on_register_dispatch(&self.0, subscriber);
            if let Some(table) = self.0.spans.get() {
                let _ = self.1.set(table.clone());
            }
        }
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            self.0.on_new_span(attrs, id, ctx)
        }
        fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
            self.0.on_record(id, values, ctx)
        }
        fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
            self.0.on_enter(id, ctx)
        }
        fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
            self.0.on_exit(id, ctx)
        }
        fn on_close(&self, id: Id, ctx: Context<'_, S>) {
            self.0.on_close(id, ctx)
        }
        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            self.0.on_event(event, ctx)
        }
    }

    fn spy(log: &BufferedLogger) -> (Spy, Arc<OnceLock<Arc<Table<SpanData>>>>) {
        let table = Arc::new(OnceLock::new());
        (Spy(AitraceLayer::new(log.clone()), table.clone()), table)
    }

    #[test]
    fn a_span_leaves_the_table_when_its_last_layer_closes_it() {
        let _serial = serial();
        let info = logger();
        let debug = aitrace_testkit::memory_logger(Level::Debug).0;
        let (first, table) = spy(&info);
        let (second, shared) = spy(&debug);
        let subscriber = tracing_subscriber::registry()
            .with(first.with_filter(LevelFilter::INFO))
            .with(second.with_filter(LevelFilter::DEBUG));
        tracing::subscriber::with_default(subscriber, || {
            let table = table.get().expect("registered with the registry");
            let shared = shared.get().expect("registered with the registry");
            assert!(Arc::ptr_eq(table, shared), "one table per registry");
            let order = tracing::info_span!("order").entered();
            // Seen by the second layer only (the first one's filter says no).
            let detail = tracing::debug_span!("detail");
            // Never entered, closed on another thread.
            let handed = tracing::info_span!("handed");
            assert_eq!(table.len(), 3);
            // The registry closes a parent through the thread's default.
            let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || drop(handed))
            })
            .join()
            .unwrap();
            detail.in_scope(|| tracing::error!("failed"));
            drop(detail);
            assert_eq!(table.len(), 1);
            drop(order);
            assert_eq!(table.len(), 0, "every closed span left the table");
        });
        for log in [&info, &debug] {
            let records = log.records();
            assert_eq!(
                find(&records, "handed.end").parent_span_id(),
                find(&records, "order.start").span_id()
            );
        }
        assert_eq!(debug.records().len(), 7, "{:?}", debug.records());
        let records = debug.records();
        assert_eq!(
            find(&records, "detail.end").field("error"),
            Some(&"failed".into())
        );
    }

    #[test]
    fn a_span_in_a_closed_span_s_slot_takes_nothing_of_its_state() {
        let _serial = serial();
        const SPANS: usize = 256;
        let log = logger();
        let (layer, table) = spy(&log);
        let subscriber = tracing_subscriber::registry().with(layer);
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..SPANS {
                let old = tracing::info_span!("old", traceparent = header, otel.name = "renamed");
                old.in_scope(|| tracing::error!(code = 7, "failed"));
                old.record("traceparent", "set later");
            }
            let table = table.get().unwrap();
            assert_eq!(table.len(), 0);
            for _ in 0..SPANS {
                tracing::info_span!("new").in_scope(|| {});
            }
            let slots = table.slots();
            assert!(
                slots < 2 * SPANS,
                "new spans took closed spans' slots: {slots}"
            );
        });
        let records = log.records();
        let old = find(&records, "renamed.end");
        assert_eq!(
            old.trace_id().unwrap().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(old.field("error"), Some(&"failed".into()));
        let starts: Vec<_> = records
            .iter()
            .filter(|r| r.event() == "new.start")
            .collect();
        let ends: Vec<_> = records.iter().filter(|r| r.event() == "new.end").collect();
        assert_eq!((starts.len(), ends.len()), (SPANS, SPANS));
        for (start, end) in starts.iter().zip(&ends) {
            assert_ne!(start.trace_id(), old.trace_id(), "not the old remote trace");
            assert_eq!(start.parent_span_id(), None);
            assert_eq!(start.fields().count(), 0);
            assert_eq!(end.span_context(), start.span_context());
            assert_eq!(end.level(), Level::Info);
            let keys: Vec<_> = end.fields().map(|(k, _)| k).collect();
            assert_eq!(keys, ["duration_ms"]);
        }
    }

    #[test]
    fn registries_open_at_once_keep_their_spans_apart() {
        let _serial = serial();
        let (a, b) = (logger(), logger());
        let (layer_a, table_a) = spy(&a);
        let (layer_b, table_b) = spy(&b);
        let registry_a = tracing::Dispatch::new(tracing_subscriber::registry().with(layer_a));
        let registry_b = tracing::Dispatch::new(tracing_subscriber::registry().with(layer_b));
        assert!(!Arc::ptr_eq(table_a.get().unwrap(), table_b.get().unwrap()));
        // Both registries give their first span the same `Id`.
        let span_a = tracing::dispatcher::with_default(&registry_a, || tracing::info_span!("a"));
        let span_b = tracing::dispatcher::with_default(&registry_b, || tracing::info_span!("b"));
        assert_eq!(span_a.id(), span_b.id());
        tracing::dispatcher::with_default(&registry_a, || span_a.in_scope(|| {}));
        tracing::dispatcher::with_default(&registry_b, || span_b.in_scope(|| {}));
        drop((span_a, span_b));
        let (a, b) = (a.records(), b.records());
        let events = |records: &[Record]| {
            records
                .iter()
                .map(|r| r.event().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(events(&a), ["a.start", "a.end"]);
        assert_eq!(events(&b), ["b.start", "b.end"]);
        assert_ne!(a[0].trace_id(), b[0].trace_id());
        assert_eq!(a[0].span_context(), a[1].span_context());
        assert_eq!(b[0].span_context(), b[1].span_context());
    }

    #[test]
    fn layers_in_a_vec_keep_span_state_in_the_extensions_and_share_ids() {
        let _serial = serial();
        // A `Vec` of layers does not pass the registration on: no table.
        let (one, two) = (logger(), logger());
        let (first, table) = spy(&one);
        let (second, _) = spy(&two);
        let layers: Vec<Box<dyn tracing_subscriber::Layer<_> + Send + Sync>> =
            vec![Box::new(first), Box::new(second)];
        let subscriber = tracing_subscriber::registry().with(layers);
        tracing::subscriber::with_default(subscriber, || {
            assert!(table.get().is_none());
            tracing::info_span!("order", id = 7).in_scope(|| {
                let parent = tracing::Span::current();
                tracing::info_span!(parent: &parent, "explicit").in_scope(|| {
                    tracing::error!("failed");
                });
            });
        });
        let (one, two) = (one.records(), two.records());
        assert_eq!(one.len(), 5, "{one:?}");
        for name in [
            "order.start",
            "explicit.start",
            "failed",
            "explicit.end",
            "order.end",
        ] {
            assert_eq!(
                find(&one, name).span_context(),
                find(&two, name).span_context(),
                "{name}"
            );
        }
        assert_eq!(
            find(&one, "explicit.start").parent_span_id(),
            find(&one, "order.start").span_id()
        );
        assert_eq!(
            find(&one, "explicit.end").field("error"),
            Some(&"failed".into())
        );
        assert_eq!(find(&one, "order.start").field("id"), Some(&7i64.into()));
    }
}
