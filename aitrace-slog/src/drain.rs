//! `AitraceDrain`: a `slog::Drain` writing into an aitrace buffer.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use aitrace_core::{BufferedLogger, Level, Record, SpanContext, Value};
use slog::{Drain, KV, Key, OwnedKVList};

use crate::context::{CONTEXT_KEY, TIME_KEY, parse_carried};

/// A [`slog::Drain`] that turns `slog` records into aitrace records in a
/// [`BufferedLogger`].
///
/// The message is the event name, the module the logger, file, line and
/// module the location; the record's key-values and the logger's own
/// (`o!(...)`) become typed user fields (a record's value wins over the
/// logger's for the same key, a child logger's over its parent's). Its error
/// type is [`slog::Never`], so `fuse()` costs nothing; it composes with
/// `filter_level()`, `Duplicate` and the other drain combinators.
///
/// A record gets the ids of the span current on the thread that calls the
/// drain, and the time it does, unless it carries the logging thread's span
/// and the time of the call under [`CONTEXT_KEY`](crate::CONTEXT_KEY) and
/// [`TIME_KEY`](crate::TIME_KEY): behind `slog-async`, put a
/// [`CaptureContext`](crate::CaptureContext) in front.
#[derive(Clone, Debug)]
pub struct AitraceDrain {
    logger: BufferedLogger,
}

impl AitraceDrain {
    /// A drain writing into `logger`.
    pub fn new(logger: BufferedLogger) -> Self {
        AitraceDrain { logger }
    }
}

/// Maps a `slog` level to an aitrace level (`Critical` is written `error`).
pub fn level_from_slog(level: slog::Level) -> Level {
    match level {
        slog::Level::Critical | slog::Level::Error => Level::Error,
        slog::Level::Warning => Level::Warn,
        slog::Level::Info => Level::Info,
        slog::Level::Debug => Level::Debug,
        slog::Level::Trace => Level::Trace,
    }
}

impl Drain for AitraceDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let level = level_from_slog(record.level());
        if !self.logger.enabled_for(level, record.module()) || aitrace_core::adapter::is_sending() {
            return Ok(());
        }
        let event: Cow<'static, str> = match record.msg().as_str() {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(record.msg().to_string()),
        };
        let function = match record.function() {
            "" => record.module(),
            function => function,
        };
        let mut fields = Fields {
            fields: Vec::new(),
            carried: None,
            time: None,
        };
        // The logger's values come newest child first: keep the first of each key.
        let _ = values.serialize(record, &mut fields);
        let mut seen = Vec::with_capacity(fields.fields.len());
        fields.fields.retain(|(k, _)| {
            let new = !seen.contains(k);
            seen.push(k.clone());
            new
        });
        // The record's own key-values come after the logger's, so they win.
        let _ = record.kv().serialize(record, &mut fields);
        let mut builder = Record::builder(level, event)
            .logger(record.module())
            .file(record.file())
            .line(record.line())
            .function(function)
            .reserve_fields(fields.fields.len());
        for (key, value) in fields.fields {
            builder.push_field(key, value);
        }
        // The span of the thread that logged the record, when a drain in
        // front carried it here; else `capture` takes this thread's span.
        if let Some(Some(context)) = fields.carried {
            builder = builder.span_context(context);
        }
        // Likewise the time of the logging call, not of this capture.
        if let Some(nanos) = fields.time {
            builder = builder.timestamp(UNIX_EPOCH + Duration::from_nanos(nanos));
        }
        self.logger.capture(builder.build());
        Ok(())
    }

    fn is_enabled(&self, level: slog::Level) -> bool {
        self.logger.enabled(level_from_slog(level))
    }
}

struct Fields {
    fields: Vec<(Cow<'static, str>, Value)>,
    /// The logging thread's span, from a [`CONTEXT_KEY`] value.
    carried: Option<Option<SpanContext>>,
    /// The time of the logging call, from a [`TIME_KEY`] value.
    time: Option<u64>,
}

impl Fields {
    fn push(&mut self, key: Key, value: Value) -> slog::Result {
        self.fields.push((Cow::Borrowed(key), value));
        Ok(())
    }

    /// Takes a [`CONTEXT_KEY`] value that holds a span (or "none"); any
    /// other value under that key is a user field.
    fn carried(&mut self, key: Key, text: &str) -> bool {
        if key != CONTEXT_KEY {
            return false;
        }
        match parse_carried(text) {
            Some(carried) => {
                self.carried = Some(carried);
                true
            }
            None => false,
        }
    }
}

macro_rules! emit {
    ($($method:ident: $t:ty),* $(,)?) => {$(
        fn $method(&mut self, key: Key, value: $t) -> slog::Result {
            self.push(key, Value::from(value))
        }
    )*};
}

impl slog::Serializer for Fields {
    emit!(
        emit_usize: usize, emit_isize: isize, emit_bool: bool, emit_char: char,
        emit_u8: u8, emit_i8: i8, emit_u16: u16, emit_i16: i16, emit_u32: u32,
        emit_i32: i32, emit_f32: f32, emit_i64: i64, emit_f64: f64,
        emit_u128: u128, emit_i128: i128,
    );

    fn emit_u64(&mut self, key: Key, value: u64) -> slog::Result {
        if key == TIME_KEY {
            self.time = Some(value);
            return Ok(());
        }
        self.push(key, Value::from(value))
    }

    fn emit_str(&mut self, key: Key, value: &str) -> slog::Result {
        if self.carried(key, value) {
            return Ok(());
        }
        self.push(key, Value::from(value))
    }

    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.push(key, Value::Null)
    }

    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.push(key, Value::Null)
    }

    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments<'_>) -> slog::Result {
        let value = match value.as_str() {
            Some(text) => Value::from_static(text),
            None => {
                let text = value.to_string();
                if self.carried(key, &text) {
                    return Ok(());
                }
                Value::from(text)
            }
        };
        self.push(key, value)
    }
}
