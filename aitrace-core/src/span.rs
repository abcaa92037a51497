//! Spans with lifecycle records (`NAME.start`/`NAME.end`) and `trace_context`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::time::Instant;

use crate::context::{self, ContextGuard};
use crate::error::Result;
use crate::level::Level;
use crate::logger::BufferedLogger;
use crate::record::{Location, Record, SpanContext};
use crate::report::FlushReport;
use crate::value::Value;

/// The user field on a `.end` record that holds the span's duration.
pub const DURATION_FIELD: &str = "duration_ms";
/// The user field on a failed span's `.end` record that holds the error.
pub const ERROR_FIELD: &str = "error";

/// A span about to open; see [`BufferedLogger::span`].
#[derive(Debug)]
#[must_use = "a span opens only when `enter` or `in_scope` is called"]
pub struct SpanBuilder<'a> {
    logger: &'a BufferedLogger,
    name: Cow<'static, str>,
    level: Level,
    location: Location,
    fields: Vec<(Cow<'static, str>, Value)>,
}

impl<'a> SpanBuilder<'a> {
    /// Adds a field to the span's `.start` record.
    pub fn field(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    /// The level of the lifecycle records (default `info`; a failed span's
    /// `.end` is always `error`).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Sets the function or module path written on the lifecycle records.
    pub fn function(mut self, function: impl Into<Cow<'static, str>>) -> Self {
        self.location = Location::new(
            self.location.file().map(|f| Cow::Owned(f.to_owned())),
            self.location.line(),
            Some(function.into()),
        );
        self
    }

    /// Opens the span as a child of the current one (or as a new root),
    /// writes `NAME.start`, and makes it current until the guard drops.
    pub fn enter(self) -> SpanGuard {
        self.enter_as(context::new_span())
    }

    fn enter_as(self, span: SpanContext) -> SpanGuard {
        let logger = self.logger;
        if logger.enabled(self.level) {
            let mut start = Record::builder(self.level, format!("{}.start", self.name))
                .span_context(span)
                .location(self.location.clone())
                .provisional(true)
                .reserve_fields(self.fields.len());
            for (key, value) in self.fields {
                start.push_field(key, value);
            }
            logger.capture(start.build());
        }
        SpanGuard {
            logger: logger.clone(),
            name: self.name,
            level: self.level,
            location: self.location,
            context: span,
            started: Instant::now(),
            end: RefCell::new(EndState::default()),
            _current: context::attach(span),
        }
    }

    /// Runs `f` inside the span; a panic in `f` ends the span at `error`
    /// level and carries on unwinding.
    pub fn in_scope<T>(self, f: impl FnOnce(&SpanGuard) -> T) -> T {
        let guard = self.enter();
        f(&guard)
    }

    /// Runs `f` inside the span; an `Err` ends it at `error` level with the
    /// error's text in the `error` field.
    pub fn try_in_scope<T, E: fmt::Display>(
        self,
        f: impl FnOnce(&SpanGuard) -> Result<T, E>,
    ) -> Result<T, E> {
        let guard = self.enter();
        let result = f(&guard);
        if let Err(err) = &result {
            guard.fail(err);
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
pub struct SpanGuard {
    logger: BufferedLogger,
    name: Cow<'static, str>,
    level: Level,
    location: Location,
    context: SpanContext,
    started: Instant,
    end: RefCell<EndState>,
    _current: ContextGuard,
}

impl SpanGuard {
    /// The span's ids, to hand to another thread or task.
    pub fn context(&self) -> SpanContext {
        self.context
    }

    /// Marks the span failed; its `.end` record is written at `error` level
    /// with `error` set to this text.
    pub fn fail(&self, error: impl fmt::Display) {
        self.end.borrow_mut().error = Some(error.to_string());
    }

    /// Adds a field to the span's `.end` record.
    pub fn record(&self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.end
            .borrow_mut()
            .fields
            .push((key.into(), value.into()));
    }

    /// Ends the span now (the same as dropping it).
    pub fn end(self) {}
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        let EndState { mut error, fields } = std::mem::take(&mut *self.end.borrow_mut());
        if error.is_none() && std::thread::panicking() {
            error = Some("panicked".to_owned());
        }
        let level = if error.is_some() {
            Level::Error
        } else {
            self.level
        };
        if !self.logger.enabled(level) {
            return;
        }
        let duration_ms = self.started.elapsed().as_micros() as f64 / 1000.0;
        let mut end = Record::builder(level, format!("{}.end", self.name))
            .span_context(self.context)
            .location(self.location.clone())
            .reserve_fields(fields.len() + 2);
        for (key, value) in fields {
            end.push_field(key, value);
        }
        end.push_field(DURATION_FIELD, duration_ms);
        if let Some(error) = error {
            end.push_field(ERROR_FIELD, error);
        }
        self.logger.capture(end.build());
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

/// A traced unit of work that flushes when it ends; see
/// [`BufferedLogger::trace_context`].
#[must_use = "the trace ends, and flushes, as soon as this drops"]
pub struct TraceContext {
    span: Option<SpanGuard>,
    logger: BufferedLogger,
}

impl TraceContext {
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

impl Drop for TraceContext {
    fn drop(&mut self) {
        if self.span.take().is_some() {
            if let Err(err) = self.logger.flush() {
                eprintln!("aitrace: flush at the end of a trace context failed: {err}");
            }
        }
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
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
    pub fn trace_context(&self, name: impl Into<Cow<'static, str>>) -> TraceContext {
        let builder = self.span(name);
        self.clear();
        TraceContext {
            span: Some(builder.enter()),
            logger: self.clone(),
        }
    }

    /// [`trace_context`](Self::trace_context) around a closure; returns its value.
    #[track_caller]
    pub fn in_trace_context<T>(
        &self,
        name: impl Into<Cow<'static, str>>,
        f: impl FnOnce(&SpanGuard) -> T,
    ) -> T {
        let trace = self.trace_context(name);
        f(trace.span())
    }
}
