//! Spans: [`SpanBuilder`] and [`SpanGuard`] write lifecycle records
//! (`NAME.start`/`NAME.end`), [`FlushingTrace`] is the root span of
//! `trace_context`, and [`TraceParent`] carries a span across processes
//! (W3C Trace Context).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use crate::clock::now_nanos;
use crate::context::{self, ContextGuard};
use crate::error::Result;
use crate::flush_report::FlushReport;
use crate::level::Level;
use crate::lifecycle::Lifecycle;
use crate::logger::BufferedLogger;
use crate::propagation::{self, RemoteTraceGuard};
use crate::record::{Location, Record, SpanContext};
use crate::value::Value;
use crate::wire::{self, DURATION_FIELD, ERROR_FIELD, Phase};

pub use crate::propagation::TraceParent;

pub(crate) mod unwinding;

/// A span about to open; see [`BufferedLogger::span`].
#[derive(Debug)]
#[must_use = "a span opens only when `enter` or `in_scope` is called"]
pub struct SpanBuilder<'a> {
    logger: &'a BufferedLogger,
    name: Cow<'static, str>,
    level: Level,
    location: Location,
    fields: Vec<(Cow<'static, str>, Value)>,
    remote_parent: Option<TraceParent>,
}

impl<'a> SpanBuilder<'a> {
    /// Adds a field to the span's `.start` record.
    pub fn field(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    /// The level of the lifecycle records (default `info`; a failed span's
    /// `.end` is always `error`). A span whose level the logger's filter does
    /// not keep writes no records at all, failed or not, and is not made
    /// current: what happens inside it belongs to the span around it.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Sets the function or module path written on the lifecycle records.
    pub fn function(mut self, function: impl Into<Cow<'static, str>>) -> Self {
        self.location = self.location.with_function(function);
        self
    }

    /// Makes the span the child of a span in another process, whose
    /// `traceparent` (and `tracestate`) headers `parent` holds: the span
    /// takes the remote trace id and has the remote span as parent, so the
    /// spans and records inside it continue that trace, and
    /// [`TraceParent::current`] inside them passes it on with the remote
    /// flags and `tracestate`. `None` (no header, or one that did not
    /// parse) leaves the builder as it was: a child of the current span or
    /// a new trace.
    ///
    /// ```
    /// use aitrace_core::{BufferedLogger, TraceParent};
    ///
    /// let log = BufferedLogger::builder().target("-")?.build();
    /// let header = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// let parent = header.and_then(|h| TraceParent::parse(h).ok());
    /// log.span("handle_request").remote_parent(parent.as_ref()).in_scope(|span| {
    ///     assert_eq!(span.context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    ///     assert_eq!(span.context().parent_span_id().unwrap().to_string(), "00f067aa0ba902b7");
    /// });
    /// # log.clear();
    /// # Ok::<(), aitrace_core::Error>(())
    /// ```
    pub fn remote_parent<'p>(mut self, parent: impl Into<Option<&'p TraceParent>>) -> Self {
        if let Some(parent) = parent.into() {
            self.remote_parent = Some(parent.clone());
        }
        self
    }

    /// Opens the span as a child of the current one (or of its
    /// [`remote_parent`](Self::remote_parent), or as a new root), writes
    /// `NAME.start`, and makes it current until the guard drops.
    ///
    /// Its records' `function` is the module path derived from the source
    /// file (`src/shop/checkout.rs` → `shop::checkout`, `examples/checkout.rs`
    /// → `checkout`), unless [`function`](Self::function) set one; the
    /// closure forms ([`in_scope`](Self::in_scope), …) name the function
    /// that calls them instead.
    pub fn enter(mut self) -> SpanGuard {
        let logger = self.logger.clone();
        let mut guard = self.open();
        guard.logger = Some(logger);
        guard
    }

    /// Opens the span, with a guard that does not hold the logger: it ends
    /// the span only when [`SpanGuard::finish`] is called with the logger.
    /// Takes what it needs out of the builder, which is left empty: read
    /// where it is, a builder (some 170 bytes) is not copied per span.
    #[inline(always)]
    fn open(&mut self) -> SpanGuard {
        // Stamped first: the counter's read takes some 30 cycles, done
        // while the span's ids are worked out instead of before the push.
        let now = now_nanos();
        // Read once, for the parent and for the entry that makes it current.
        let otel = context::Otel::now();
        match self.remote_parent.take() {
            Some(parent) => {
                let (span, remote) = propagation::remote_child(&parent);
                self.enter_as(span, Some(remote), otel, now)
            }
            None => self.enter_as(context::new_span_with(otel), None, otel, now),
        }
    }

    /// Opens the span for the closure forms: the span ends when the scope
    /// drops, also while a panic unwinds, borrowing the logger instead of
    /// holding a handle of its own.
    ///
    /// `function` names the function the closure was written in, used when
    /// none was set. Not generic, so the span's code is not repeated per
    /// closure.
    #[inline(never)]
    fn scope(&mut self, function: Option<&'static str>) -> Scope<'a> {
        self.default_function(function);
        let logger = self.logger;
        Scope {
            guard: self.open(),
            logger,
        }
    }

    /// Sets `function` (the function a closure was written in, from
    /// [`enclosing_function`]) as the records' function when none was set.
    #[inline]
    fn default_function(&mut self, function: Option<&'static str>) {
        if let (None, Some(function)) = (self.location.function(), function) {
            self.location.set_function(function);
        }
    }

    // Inlined into `open`, so the builder is not copied into it.
    #[inline(always)]
    fn enter_as(
        &mut self,
        span: SpanContext,
        remote: Option<RemoteTraceGuard>,
        otel: context::Otel,
        now: u64,
    ) -> SpanGuard {
        if self.location.function().is_none() {
            let module = match self.location.static_parts() {
                // The usual case, a call site's file: its module made once.
                Some((Some(file), _, _)) => module_of_static_file(file).map(Cow::Borrowed),
                _ => (self.location.file())
                    .and_then(module_of_file)
                    .map(Cow::Owned),
            };
            if let Some(module) = module {
                self.location.set_function(module);
            }
        }
        let logger = self.logger;
        let target = self.location.function().unwrap_or("");
        if !logger.enabled_for(self.level, target) {
            // Filtered out: no records, and not current.
            return SpanGuard {
                logger: None,
                name: std::mem::take(&mut self.name),
                level: self.level,
                location: std::mem::take(&mut self.location),
                context: context::current_with(otel).unwrap_or(span),
                started: now,
                end: RefCell::new(None),
                opened_unwinding: false,
                _current: None,
                _remote: None,
            };
        }
        let started = match compact(&self.name, &self.location) {
            // No fields and nothing copied: the logger buffers it compact
            // (or makes the record, when something must read it on its way in).
            Some((name, (file, line, function))) if self.fields.is_empty() => {
                let started = now;
                let start = Lifecycle::start(self.level, name, span, started)
                    .location(file, line)
                    .function(function);
                logger.capture_lifecycle(start);
                started
            }
            _ => self.start_record(span, now),
        };
        let opened_unwinding = unwinding::span_opened();
        SpanGuard {
            logger: None,
            name: std::mem::take(&mut self.name),
            level: self.level,
            location: std::mem::take(&mut self.location),
            context: span,
            started,
            end: RefCell::new(None),
            opened_unwinding,
            _current: Some(context::attach_with(span, otel)),
            _remote: remote,
        }
    }

    /// Writes the span's `.start` as a [`Record`] (it has fields, or a
    /// name or location that is not static); returns its stamp. Out of
    /// line: the compact path stays small.
    #[cold]
    #[inline(never)]
    fn start_record(&mut self, span: SpanContext, now: u64) -> u64 {
        // Set through `&mut`, not by chained calls: each by-value step can
        // cost a copy of the record (some 300 bytes).
        let mut start = Record::builder(self.level, lifecycle_event(&self.name, Phase::Start))
            .provisional(true);
        start.set_timestamp_nanos(now);
        start.set_span_context(span);
        start.set_location(self.location.clone());
        start.reserve(self.fields.len());
        for (key, value) in std::mem::take(&mut self.fields) {
            start.push_field(key, value);
        }
        self.logger.capture_unfiltered(start.build());
        now
    }

    /// Runs `f` inside the span; a panic in `f` ends the span at `error`
    /// level, with the panic's message in `error`, and carries on
    /// unwinding. The lifecycle records' `function` is
    /// the path of the function `f` is written in (`shop::checkout` for a
    /// closure in `fn checkout` of module `shop`), unless
    /// [`function`](Self::function) set one.
    pub fn in_scope<T, F: FnOnce(&SpanGuard) -> T>(mut self, f: F) -> T {
        let scope = self.scope(enclosing_function::<F>());
        f(&scope.guard)
    }

    /// Runs `f` inside the span; an `Err` ends it at `error` level with the
    /// error's text in the `error` field. `function` as for
    /// [`in_scope`](Self::in_scope).
    pub fn try_in_scope<T, E: fmt::Display, F: FnOnce(&SpanGuard) -> Result<T, E>>(
        mut self,
        f: F,
    ) -> Result<T, E> {
        let scope = self.scope(enclosing_function::<F>());
        let result = f(&scope.guard);
        if let Err(err) = &result {
            scope.guard.fail(err);
        }
        result
    }
}

#[derive(Default)]
struct EndState {
    error: Option<String>,
    fields: Vec<(Cow<'static, str>, Value)>,
}

/// An open span: current on this thread until it drops, when it writes
/// `NAME.end` with its duration (at `error` level if it failed or a panic is
/// unwinding through it). Not `Send`.
///
/// A span a panic unwinds through has the panic's message in `error` when
/// it is a `&str` or a `String` (what `panic!` and `expect` make), and
/// `"panicked"` otherwise. The message comes from a panic hook the first
/// span installs, once per process, which calls the hook that was there
/// before; a hook set later that does not call the one it replaced leaves
/// `"panicked"` (or the message of a panic caught inside the span before
/// the hook was replaced: nothing tells the span that a later panic was not
/// seen). A span opened while its thread unwinds (by a `Drop`) is not
/// failed by that panic, which does not unwind through it. Installing the
/// hook is process-wide and not atomic (a hook another thread sets
/// meanwhile is lost); `AITRACE_PANIC_HOOK=0` leaves the process's hook
/// alone (spans then say `"panicked"`), see
/// [`adapter::watch_panics`](crate::adapter::watch_panics).
pub struct SpanGuard {
    /// `None` in the closure forms, whose [`Scope`] ends the span with the
    /// logger it borrows (no handle cloned per span).
    logger: Option<BufferedLogger>,
    name: Cow<'static, str>,
    level: Level,
    location: Location,
    context: SpanContext,
    /// The `.start` record's stamp (nanoseconds since the Unix epoch).
    started: u64,
    /// What `fail` and `record` add, boxed when they first do (they
    /// allocate then anyway): the guard of a span without them stays small.
    end: RefCell<Option<Box<EndState>>>,
    /// Opened while its thread was unwinding from a panic (by a `Drop`):
    /// that panic does not unwind through it, so it does not fail it.
    opened_unwinding: bool,
    /// `None` for a span the logger's filter does not keep: it writes no
    /// lifecycle records and never becomes current, so records and spans
    /// inside it belong to the span around it and the tree has no gaps.
    _current: Option<ContextGuard>,
    /// For a span with a remote parent: keeps the remote trace's flags and
    /// `tracestate` for [`TraceParent::current`] until the span ends.
    _remote: Option<RemoteTraceGuard>,
}

impl SpanGuard {
    /// The span's ids, to hand to another thread or task (for a span the
    /// filter does not keep, the ids of the span around it).
    pub fn context(&self) -> SpanContext {
        self.context
    }

    /// Marks the span failed; its `.end` record is written at `error` level
    /// with `error` set to this text.
    pub fn fail(&self, error: impl fmt::Display) {
        self.end.borrow_mut().get_or_insert_default().error = Some(error.to_string());
    }

    /// Adds a field to the span's `.end` record.
    pub fn record(&self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.end
            .borrow_mut()
            .get_or_insert_default()
            .fields
            .push((key.into(), value.into()));
    }

    /// Ends the span now (the same as dropping it).
    pub fn end(self) {}
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(logger) = self.logger.take() {
            self.finish(&logger);
        }
    }
}

/// A span opened by a closure form, ended when it drops (also during a
/// panic's unwinding).
struct Scope<'a> {
    guard: SpanGuard,
    logger: &'a BufferedLogger,
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        self.guard.finish(self.logger);
    }
}

impl SpanGuard {
    /// Writes the span's `.end`, at `error` level if it failed or a panic
    /// is unwinding through it; called once, by whichever of the guard and
    /// its [`Scope`] holds the logger.
    fn finish(&mut self, logger: &BufferedLogger) {
        // No longer current once it ends; popped before the `.end` is
        // pushed, while the counter's read (some 30 cycles) completes.
        let Some(current) = self._current.take() else {
            return; // a span the filter does not keep writes nothing
        };
        let now = now_nanos();
        drop(current);
        let panic = unwinding::span_error(self.opened_unwinding);
        // Read in place (no borrow flag: `&mut self`), not moved out: the
        // usual span recorded nothing on its end.
        if let (None, None, Some((name, (file, line, function)))) = (
            &panic,
            self.end.get_mut(),
            compact(&self.name, &self.location),
        ) {
            let end = Lifecycle::end(self.level, name, self.context, self.started, now)
                .location(file, line)
                .function(function);
            return logger.capture_lifecycle(end);
        }
        self.end_record(logger, panic, now);
    }

    /// Writes the span's `.end` as a [`Record`] (it failed, has fields, or
    /// a name or location that is not static). Out of line: the compact
    /// path stays small.
    #[cold]
    #[inline(never)]
    fn end_record(&mut self, logger: &BufferedLogger, panic: Option<String>, now: u64) {
        let EndState { mut error, fields } = *self.end.get_mut().take().unwrap_or_default();
        if let Some(panic) = panic {
            error.get_or_insert(panic);
        }
        let level = if error.is_some() {
            Level::Error
        } else {
            self.level
        };
        let mut end =
            Record::builder(level, lifecycle_event(&self.name, Phase::End)).span_end(true);
        end.set_timestamp_nanos(now);
        end.set_span_context(self.context);
        end.set_location(self.location.clone());
        end.reserve(fields.len() + 2);
        // From the two stamps, as a reader subtracting them finds it.
        let duration_ms = wire::duration_ms(self.started, end.timestamp_nanos());
        for (key, value) in fields {
            end.push_field(key, value);
        }
        end.push_field(DURATION_FIELD, duration_ms);
        if let Some(error) = error {
            end.push_field(ERROR_FIELD, error);
        }
        // Its `.start` was written: the `.end` too, even when the filter was
        // raised since.
        logger.capture_unfiltered(end.build());
    }
}

impl fmt::Debug for SpanGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanGuard")
            .field("name", &self.name)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// A root span that cleared the buffer when it started and flushes when it
/// ends (Python's `trace_context`); see [`BufferedLogger::trace_context`].
/// Not to be confused with W3C Trace Context, which is [`TraceParent`].
#[must_use = "the trace ends, and flushes, as soon as this drops"]
pub struct FlushingTrace {
    span: Option<SpanGuard>,
    logger: BufferedLogger,
}

impl FlushingTrace {
    /// The root span.
    pub fn span(&self) -> &SpanGuard {
        self.span.as_ref().expect("present until finished")
    }

    /// Ends the span, flushes, and returns the flush report.
    pub fn finish(mut self) -> Result<FlushReport> {
        self.span.take();
        self.logger.flush()
    }
}

impl Drop for FlushingTrace {
    fn drop(&mut self) {
        if self.span.take().is_some() {
            if let Err(err) = self.logger.flush() {
                eprintln!("aitrace: flush at the end of a trace context failed: {err}");
            }
        }
    }
}

impl fmt::Debug for FlushingTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushingTrace")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

/// The static name and location parts of a span whose lifecycle records
/// can be buffered compact ([`Lifecycle`]); `None` when a string was copied.
#[inline]
#[allow(clippy::ptr_arg)] // whether the name is borrowed is the point
#[allow(clippy::type_complexity)]
fn compact(
    name: &Cow<'static, str>,
    location: &Location,
) -> Option<(
    &'static str,
    (Option<&'static str>, u32, Option<&'static str>),
)> {
    match name {
        Cow::Borrowed(name) => Some((name, location.static_parts()?)),
        Cow::Owned(_) => None,
    }
}

/// A lifecycle record's event: borrowed, made once, for a `&'static` name.
#[inline]
#[allow(clippy::ptr_arg)] // whether the name is borrowed is the point
fn lifecycle_event(name: &Cow<'static, str>, phase: Phase) -> Cow<'static, str> {
    match name {
        Cow::Borrowed(name) => Cow::Borrowed(wire::lifecycle_event_static(name, phase)),
        Cow::Owned(name) => Cow::Owned(wire::lifecycle_event(name, phase)),
    }
}

/// The path of the function a closure was written in (`shop::checkout`
/// for `shop::checkout::{{closure}}`); `None` for anything but a closure.
fn enclosing_function<F>() -> Option<&'static str> {
    let full = std::any::type_name::<F>();
    let mut name = full;
    while let Some(outer) = name.strip_suffix("::{{closure}}") {
        name = outer;
    }
    (name.len() < full.len() && !name.is_empty()).then_some(name)
}

/// [`module_of_file`] of a call site's file, made once per file for the
/// process and then borrowed, so a span opened with `enter` allocates
/// nothing and its records can be buffered compact. A program has as many
/// such files as its code has.
fn module_of_static_file(file: &'static str) -> Option<&'static str> {
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Slot = Cell<((usize, usize), Option<&'static str>)>;
    static MODULES: OnceLock<Mutex<HashMap<&'static str, Option<&'static str>>>> = OnceLock::new();
    thread_local! {
        /// The last files seen on this thread, by address: no lock, no
        /// hashing of the path on the usual path.
        static RECENT: [Slot; 8] = Default::default();
    }
    let address = (file.as_ptr() as usize, file.len());
    let slot = (address.0 >> 3) & 7;
    let cached = RECENT
        .try_with(|recent| recent[slot].get())
        .ok()
        .filter(|(seen, _)| *seen == address);
    if let Some((_, module)) = cached {
        return module;
    }
    let module = *(MODULES.get_or_init(Default::default))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(file)
        .or_insert_with(|| module_of_file(file).map(|m| &*Box::leak(m.into_boxed_str())));
    let _ = RECENT.try_with(|recent| recent[slot].set((address, module)));
    module
}

/// The module path a source file holds, as far as the path tells:
/// `src/shop/checkout.rs` → `shop::checkout`, `app/src/lib.rs` → `app`,
/// `examples/checkout.rs`, `tests/checkout.rs` and `src/bin/checkout.rs` →
/// `checkout`.
fn module_of_file(file: &str) -> Option<String> {
    let parts: Vec<&str> = file.strip_suffix(".rs")?.split(['/', '\\']).collect();
    let root = parts
        .iter()
        .rposition(|p| matches!(*p, "src" | "examples" | "tests" | "benches"))?;
    let mut module = &parts[root + 1..];
    let mut own_crate = parts[root] == "src";
    if own_crate && module.len() > 1 && module[0] == "bin" {
        module = &module[1..];
        own_crate = false;
    }
    if let [rest @ .., "lib" | "main" | "mod"] = module {
        module = rest;
    }
    // Under `src/`, the folder above names the crate when there is one.
    let krate = own_crate
        .then(|| root.checked_sub(1).map(|i| parts[i]))
        .flatten()
        .filter(|name| !name.is_empty() && *name != "." && *name != "..")
        .map(|name| name.replace('-', "_"));
    let path: Vec<String> = krate
        .into_iter()
        .chain(module.iter().map(|m| (*m).to_owned()))
        .collect();
    (!path.is_empty()).then(|| path.join("::"))
}

impl BufferedLogger {
    /// Starts a span named `name`, located at the caller.
    ///
    /// ```
    /// use aitrace_core::BufferedLogger;
    ///
    /// let log = BufferedLogger::builder().target("-").unwrap().build();
    /// log.span("reserve_inventory").field("sku", "A1").in_scope(|span| {
    ///     log.info("reserved").field("qty", 2).emit();
    ///     span.record("warehouse", "north");
    /// });
    /// let events: Vec<_> = log.records().iter().map(|r| r.event().to_owned()).collect();
    /// assert_eq!(events, ["reserve_inventory.start", "reserved", "reserve_inventory.end"]);
    /// # log.clear();
    /// ```
    #[track_caller]
    pub fn span(&self, name: impl Into<Cow<'static, str>>) -> SpanBuilder<'_> {
        SpanBuilder {
            logger: self,
            name: name.into(),
            level: Level::Info,
            location: Location::from_caller(std::panic::Location::caller()),
            fields: Vec::new(),
            remote_parent: None,
        }
    }

    /// The Python tool's `trace_context(name)`: clears the buffer, opens a
    /// span (a new root trace unless a span is current), and when the
    /// returned guard finishes or drops writes `NAME.end` and flushes, also
    /// while a panic unwinds.
    ///
    /// Clearing drops records other threads buffered and did not flush; share
    /// a logger between concurrent trace contexts only if that is wanted.
    #[track_caller]
    pub fn trace_context(&self, name: impl Into<Cow<'static, str>>) -> FlushingTrace {
        self.trace_context_of(self.span(name))
    }

    fn trace_context_of(&self, builder: SpanBuilder<'_>) -> FlushingTrace {
        self.clear();
        FlushingTrace {
            span: Some(builder.enter()),
            logger: self.clone(),
        }
    }

    /// [`trace_context`](Self::trace_context) around a closure; returns its value.
    #[track_caller]
    pub fn in_trace_context<T, F: FnOnce(&SpanGuard) -> T>(
        &self,
        name: impl Into<Cow<'static, str>>,
        f: F,
    ) -> T {
        let mut builder = self.span(name);
        builder.default_function(enclosing_function::<F>());
        let trace = self.trace_context_of(builder);
        f(trace.span())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Output;

    fn logger() -> BufferedLogger {
        BufferedLogger::builder()
            .output(Output::in_memory().0)
            .build()
    }

    fn location_of(log: &BufferedLogger, event: &str) -> Location {
        let records = log.records();
        log.clear();
        records
            .into_iter()
            .find(|r| r.event() == event)
            .unwrap_or_else(|| panic!("no {event}"))
            .location()
            .clone()
    }

    #[test]
    fn lifecycle_records_of_a_closure_name_the_function_that_runs_it() {
        let here = concat!(
            module_path!(),
            "::lifecycle_records_of_a_closure_name_the_function_that_runs_it"
        );
        let log = logger();
        for event in ["job.start", "job.end"] {
            let line = line!() + 1;
            log.span("job").in_scope(|_| {});
            let location = location_of(&log, event);
            assert_eq!(location.file(), Some(file!()), "{event}");
            assert_eq!(location.line(), Some(line), "{event}");
            assert_eq!(location.function(), Some(here), "{event}");
        }
        let line = line!() + 1;
        let _: Result<(), &str> = log.span("checked").try_in_scope(|_| Err("no"));
        let checked = location_of(&log, "checked.end");
        assert_eq!(checked.line(), Some(line));
        assert_eq!(checked.function(), Some(here));
        log.span("outer").in_scope(|_| {
            log.span("inner").in_scope(|_| {});
        });
        assert_eq!(location_of(&log, "inner.start").function(), Some(here));
        let (output, memory) = Output::in_memory();
        let flushed = BufferedLogger::builder().output(output).build();
        flushed.in_trace_context("traced", |_| {});
        for record in memory.records() {
            assert_eq!(
                record.location().function(),
                Some(here),
                "{}",
                record.event()
            );
        }
        assert_eq!(memory.records().len(), 2);
    }

    #[test]
    fn lifecycle_records_of_a_guard_name_the_module() {
        let log = logger();
        let line = line!() + 1;
        let guard = log.span("guarded").enter();
        drop(guard);
        let records = log.records();
        log.clear();
        for record in &records {
            let location = record.location();
            assert_eq!(location.file(), Some(file!()), "{}", record.event());
            assert_eq!(location.line(), Some(line), "{}", record.event());
            assert_eq!(
                location.function(),
                Some(module_path!().trim_end_matches("::tests")),
                "{}",
                record.event()
            );
        }
        assert_eq!(records.len(), 2);
        log.span("named").function("mine").enter().end();
        assert_eq!(location_of(&log, "named.end").function(), Some("mine"));
    }

    #[test]
    fn module_paths_from_source_files() {
        for (file, module) in [
            ("src/shop/checkout.rs", Some("shop::checkout")),
            ("src/shop/mod.rs", Some("shop")),
            ("app/src/lib.rs", Some("app")),
            (
                "my-app/src/shop/checkout.rs",
                Some("my_app::shop::checkout"),
            ),
            ("examples/checkout.rs", Some("checkout")),
            ("aitrace-core/tests/spans.rs", Some("spans")),
            ("src/bin/tool.rs", Some("tool")),
            ("src\\win\\path.rs", Some("win::path")),
            ("src/main.rs", None),
            ("main.rs", None),
            ("src/notes.txt", None),
            ("", None),
        ] {
            assert_eq!(module_of_file(file).as_deref(), module, "{file:?}");
        }
        assert_eq!(enclosing_function::<fn()>(), None);
        assert_eq!(enclosing_function::<u8>(), None);
    }
}
