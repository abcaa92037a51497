//! The core's own frontend: emitting records without any logging library.

use std::borrow::Cow;

use crate::level::Level;
use crate::logger::BufferedLogger;
use crate::record::{Location, Record, RecordBuilder};
use crate::value::Value;

/// An event being built; [`emit`](Self::emit) buffers it.
///
/// Made by [`BufferedLogger::event`] and the level shortcuts, which capture
/// the caller's file and line. When the level is filtered out, every method
/// is a no-op and nothing is allocated.
#[derive(Debug)]
#[must_use = "an event is buffered only when `emit` is called"]
pub struct EventBuilder<'a> {
    logger: &'a BufferedLogger,
    builder: Option<RecordBuilder>,
}

impl EventBuilder<'_> {
    /// Adds a typed user field.
    #[inline(always)]
    pub fn field(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        if let Some(builder) = &mut self.builder {
            builder.push_field(key, value);
        }
        self
    }

    /// Adds a user field from any `serde::Serialize` value.
    #[inline]
    pub fn serde_field<T: serde::Serialize + ?Sized>(
        self,
        key: impl Into<Cow<'static, str>>,
        value: &T,
    ) -> Self {
        if self.builder.is_none() {
            return self;
        }
        self.field(key, Value::from_serialize(value))
    }

    /// Sets the logger name (default: none).
    #[inline]
    pub fn logger(mut self, logger: impl Into<Cow<'static, str>>) -> Self {
        self.builder = self.builder.map(|b| b.logger(logger));
        self
    }

    /// Sets the function or module path of the call site.
    #[inline]
    pub fn function(mut self, function: impl Into<Cow<'static, str>>) -> Self {
        self.builder = self.builder.map(|b| b.function(function));
        self
    }

    /// Buffers the event.
    #[inline(always)]
    pub fn emit(self) {
        if let Some(builder) = self.builder {
            self.logger.capture(builder.build());
        }
    }
}

impl BufferedLogger {
    /// Starts an event at `level`, located at the caller.
    ///
    /// ```
    /// use aitrace_core::{BufferedLogger, Level};
    ///
    /// let log = BufferedLogger::builder().target("-").unwrap().build();
    /// log.event(Level::Warn, "low_stock").field("sku", "A1").field("left", 2).emit();
    /// let record = &log.records()[0];
    /// assert!(record.location().file().is_some() && record.location().line().is_some());
    /// # log.clear();
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn event(&self, level: Level, name: impl Into<Cow<'static, str>>) -> EventBuilder<'_> {
        self.event_at(
            level,
            name,
            Location::from_caller(std::panic::Location::caller()),
        )
    }

    /// Starts an event at `level` with an explicit location (for macros and
    /// frontends that know the function name).
    #[inline(always)]
    pub fn event_at(
        &self,
        level: Level,
        name: impl Into<Cow<'static, str>>,
        location: Location,
    ) -> EventBuilder<'_> {
        let builder = self
            .enabled(level)
            .then(|| Record::builder(level, name).location(location));
        EventBuilder {
            logger: self,
            builder,
        }
    }

    /// Starts a `trace` event located at the caller.
    #[track_caller]
    #[inline]
    pub fn trace(&self, name: impl Into<Cow<'static, str>>) -> EventBuilder<'_> {
        self.event(Level::Trace, name)
    }

    /// Starts a `debug` event located at the caller.
    #[track_caller]
    #[inline]
    pub fn debug(&self, name: impl Into<Cow<'static, str>>) -> EventBuilder<'_> {
        self.event(Level::Debug, name)
    }

    /// Starts an `info` event located at the caller.
    #[track_caller]
    #[inline(always)]
    pub fn info(&self, name: impl Into<Cow<'static, str>>) -> EventBuilder<'_> {
        self.event(Level::Info, name)
    }

    /// Starts a `warning` event located at the caller.
    #[track_caller]
    #[inline]
    pub fn warn(&self, name: impl Into<Cow<'static, str>>) -> EventBuilder<'_> {
        self.event(Level::Warn, name)
    }

    /// Starts an `error` event located at the caller.
    #[track_caller]
    #[inline]
    pub fn error(&self, name: impl Into<Cow<'static, str>>) -> EventBuilder<'_> {
        self.event(Level::Error, name)
    }
}

/// Emits an event with fields, recording file, line and module path.
///
/// ```
/// use aitrace_core::{BufferedLogger, Level, event};
///
/// let log = BufferedLogger::builder().target("-").unwrap().build();
/// let user = "u2";
/// event!(log, Level::Info, "checkout_started", user_id = user, total = 469.74, items = 3);
/// let record = &log.records()[0];
/// assert_eq!(record.field("items"), Some(&3.into()));
/// assert_eq!(record.location().function(), Some(module_path!()));
/// # log.clear();
/// ```
#[macro_export]
macro_rules! event {
    ($logger:expr, $level:expr, $name:expr $(, $key:ident = $value:expr)* $(,)?) => {{
        let logger: &$crate::BufferedLogger = &$logger;
        let level: $crate::Level = $level;
        if logger.enabled(level) {
            logger
                .event_at(
                    level,
                    $name,
                    $crate::Location::new(
                        ::core::option::Option::Some(::core::file!().into()),
                        ::core::option::Option::Some(::core::line!()),
                        ::core::option::Option::Some(::core::module_path!().into()),
                    ),
                )
                $(.field(::core::stringify!($key), $value))*
                .emit();
        }
    }};
}

/// [`event!`] at `trace`.
#[macro_export]
macro_rules! trace {
    ($logger:expr, $($rest:tt)+) => { $crate::event!($logger, $crate::Level::Trace, $($rest)+) };
}

/// [`event!`] at `debug`.
#[macro_export]
macro_rules! debug {
    ($logger:expr, $($rest:tt)+) => { $crate::event!($logger, $crate::Level::Debug, $($rest)+) };
}

/// [`event!`] at `info`.
#[macro_export]
macro_rules! info {
    ($logger:expr, $($rest:tt)+) => { $crate::event!($logger, $crate::Level::Info, $($rest)+) };
}

/// [`event!`] at `warning`.
#[macro_export]
macro_rules! warn {
    ($logger:expr, $($rest:tt)+) => { $crate::event!($logger, $crate::Level::Warn, $($rest)+) };
}

/// [`event!`] at `error`.
#[macro_export]
macro_rules! error {
    ($logger:expr, $($rest:tt)+) => { $crate::event!($logger, $crate::Level::Error, $($rest)+) };
}
