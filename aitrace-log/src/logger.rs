//! `AitraceLogger`: a `log::Log` writing into an aitrace buffer.

use std::borrow::Cow;

use aitrace_core::{BufferedLogger, Level, Record, RecordBuilder, Value};
use log::kv::{self, VisitSource, VisitValue};
use log::{LevelFilter, Log, Metadata, SetLoggerError};

/// A [`log::Log`] that turns `log` records into aitrace records in a
/// [`BufferedLogger`].
///
/// The message is the event name, the target the logger, file, line and module
/// path the location, and `log`'s key-values (the `kv` feature) typed user
/// fields. Records made while the calling thread sends a batch are dropped, so
/// the HTTP sender's own logging (`ureq`, `rustls`) never loops back.
#[derive(Debug)]
pub struct AitraceLogger {
    logger: BufferedLogger,
    /// A cap of this logger's own, below the `BufferedLogger`'s filter.
    cap: LevelFilter,
}

/// Maps a `log` level to an aitrace level.
pub fn level_from_log(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warn,
        log::Level::Info => Level::Info,
        log::Level::Debug => Level::Debug,
        log::Level::Trace => Level::Trace,
    }
}

fn level_filter_of(level: Option<Level>) -> LevelFilter {
    match level {
        None => LevelFilter::Off,
        Some(Level::Trace) => LevelFilter::Trace,
        Some(Level::Debug) => LevelFilter::Debug,
        Some(Level::Info) => LevelFilter::Info,
        Some(Level::Warn) => LevelFilter::Warn,
        Some(Level::Error) => LevelFilter::Error,
    }
}

impl AitraceLogger {
    /// A logger writing into `logger`, keeping what the `BufferedLogger`'s
    /// filter keeps (its level, or `RUST_LOG`-style directives by target).
    pub fn new(logger: BufferedLogger) -> Self {
        AitraceLogger {
            logger,
            cap: LevelFilter::Trace,
        }
    }

    /// Configures a logger; see [`Builder`].
    pub fn builder(logger: BufferedLogger) -> Builder {
        Builder {
            logger: AitraceLogger::new(logger),
        }
    }

    /// The most verbose level this logger keeps now.
    pub fn max_level(&self) -> LevelFilter {
        self.cap
            .min(level_filter_of(self.logger.filter().max_level()))
    }
}

impl Log for AitraceLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.cap
            && (self.logger).enabled_for(level_from_log(metadata.level()), metadata.target())
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) || aitrace_core::adapter::is_sending() {
            return;
        }
        let event: Cow<'static, str> = match record.args().as_str() {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(record.args().to_string()),
        };
        // The target is usually the module path, which `log` gives as a
        // `'static` string: borrow that instead of copying the target.
        let target: Cow<'static, str> = match record.module_path_static() {
            Some(module) if module == record.target() => Cow::Borrowed(module),
            _ => Cow::Owned(record.target().to_owned()),
        };
        let mut builder = Record::builder(level_from_log(record.level()), event).logger(target);
        builder = match record.file_static() {
            Some(file) => builder.file(file),
            None => match record.file() {
                Some(file) => builder.file(file.to_owned()),
                None => builder,
            },
        };
        if let Some(line) = record.line() {
            builder = builder.line(line);
        }
        builder = match record.module_path_static() {
            Some(module) => builder.function(module),
            None => match record.module_path() {
                Some(module) => builder.function(module.to_owned()),
                None => builder,
            },
        };
        let source = record.key_values();
        let count = source.count();
        if count > 0 {
            builder = builder.reserve_fields(count);
            let _ = source.visit(&mut KeyValues(&mut builder));
        }
        self.logger.capture(builder.build());
    }

    /// Flushes the buffer; failures are reported on the flush's own terms
    /// (records kept or written to the fallback file), not here.
    fn flush(&self) {
        let _ = self.logger.flush();
    }
}

/// Configures an [`AitraceLogger`].
#[derive(Debug)]
#[must_use = "call `init` or `build`"]
pub struct Builder {
    logger: AitraceLogger,
}

impl Builder {
    /// Keeps records at `level` and more severe at most, whatever the
    /// `BufferedLogger`'s filter allows (default: no cap of its own).
    pub fn max_level(mut self, level: LevelFilter) -> Self {
        self.logger.cap = level;
        self
    }

    /// The logger, for composing with other `log` implementations.
    pub fn build(self) -> AitraceLogger {
        self.logger
    }

    /// Installs the logger as `log`'s global logger and sets `log`'s max
    /// level to match; later changes of the `BufferedLogger`'s filter
    /// ([`BufferedLogger::set_min_level`]) move `log::max_level` with them.
    /// Fails if a global logger is already set.
    pub fn init(self) -> Result<(), SetLoggerError> {
        let (max_level, cap) = (self.logger.max_level(), self.logger.cap);
        let buffered = self.logger.logger.clone();
        log::set_boxed_logger(Box::new(self.logger))?;
        log::set_max_level(max_level);
        aitrace_core::adapter::on_level_change(&buffered, move |max| {
            log::set_max_level(cap.min(level_filter_of(max)));
        });
        Ok(())
    }
}

/// Installs an [`AitraceLogger`] writing into `logger` as `log`'s global
/// logger.
pub fn init(logger: BufferedLogger) -> Result<(), SetLoggerError> {
    AitraceLogger::builder(logger).init()
}

struct KeyValues<'a>(&'a mut RecordBuilder);

impl<'kvs> VisitSource<'kvs> for KeyValues<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let mut typed = TypedValue(None);
        let _ = value.visit(&mut typed);
        let value = typed.0.unwrap_or_else(|| Value::from_display(&value));
        self.0.push_field(key.as_str().to_owned(), value);
        Ok(())
    }
}

struct TypedValue(Option<Value>);

impl<'v> VisitValue<'v> for TypedValue {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        self.0 = Some(Value::from_display(&value));
        Ok(())
    }

    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.0 = Some(Value::Null);
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.0 = Some(Value::U64(value));
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.0 = Some(Value::I64(value));
        Ok(())
    }

    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        self.0 = Some(Value::from(value));
        Ok(())
    }

    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        self.0 = Some(Value::from(value));
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        self.0 = Some(Value::F64(value));
        Ok(())
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.0 = Some(Value::Bool(value));
        Ok(())
    }

    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        self.0 = Some(Value::from(value));
        Ok(())
    }

    fn visit_char(&mut self, value: char) -> Result<(), kv::Error> {
        self.0 = Some(Value::from(value));
        Ok(())
    }
}
