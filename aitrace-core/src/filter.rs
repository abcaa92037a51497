//! Which records a logger keeps: a level, or `RUST_LOG`-style directives
//! (`info,hyper=warn,my_crate::db=debug`) parsed by `env_filter`, the
//! crate `env_logger` uses.

use std::fmt;

use crate::error::{ConfigError, Result};
use crate::level::Level;

/// The environment variable that sets a logger's filter: a level
/// (`debug`) or directives (`info,hyper=warn`). It wins over [`RUST_LOG_ENV`].
pub const LEVEL_ENV: &str = "AITRACE_LEVEL";

/// The environment variable read for directives when [`LEVEL_ENV`] is unset,
/// as `env_logger` and tracing's `EnvFilter` do.
pub const RUST_LOG_ENV: &str = "RUST_LOG";

/// The least severe level kept when neither code nor the environment says:
/// `info`, as tracing's `fmt` subscriber and `env_logger`'s examples use, so
/// dependencies' debug and trace logging stays out unless asked for.
pub const DEFAULT_MIN_LEVEL: Level = Level::Info;

/// Which records a logger keeps.
///
/// Either one level for every record, or directives in the syntax
/// `RUST_LOG` uses: a comma-separated list of `target=level`, `target` or
/// `level`, the most specific (longest) matching target winning. A record's
/// target is its logger (a `tracing` or `log` target, an slog module), or
/// for the core's own API the module path of the call site. `off` keeps
/// nothing. The `/regex` message filter of `env_logger` is not supported.
///
/// # Examples
///
/// ```
/// use aitrace_core::Level;
/// use aitrace_core::filter::Filter;
///
/// let filter = Filter::parse("info,hyper=warn,shop::db=debug").unwrap();
/// assert!(filter.enabled(Level::Info, "shop::checkout"));
/// assert!(!filter.enabled(Level::Info, "hyper::client"));
/// assert!(filter.enabled(Level::Debug, "shop::db::pool"));
/// assert_eq!(filter.max_level(), Some(Level::Debug));
/// assert!(Filter::parse("info,=nonsense").is_err());
/// ```
#[derive(Clone)]
pub struct Filter {
    /// The most verbose level any directive keeps; `None` keeps nothing.
    max: Option<Level>,
    /// Per-target directives, when there are any.
    targets: Option<env_filter::Filter>,
}

impl Filter {
    /// Keeps records at `level` and more severe, whatever their target.
    pub fn level(level: Level) -> Self {
        Filter {
            max: Some(level),
            targets: None,
        }
    }

    /// Parses a level or `RUST_LOG`-style directives; an error names what
    /// cannot be read.
    pub fn parse(directives: &str) -> Result<Self, ConfigError> {
        let text = directives.trim();
        if let Ok(level) = text.parse::<Level>() {
            return Ok(Filter::level(level));
        }
        let mut builder = env_filter::Builder::new();
        builder.try_parse(text).map_err(|e| {
            ConfigError::invalid_filter(format!("invalid level or directives {text:?}: {e}"))
        })?;
        let filter = builder.build();
        let max = from_log_filter(filter.filter());
        Ok(Filter {
            max,
            targets: Some(filter),
        })
    }

    /// The filter the environment sets: [`LEVEL_ENV`], else [`RUST_LOG_ENV`];
    /// `None` when neither is set (or both are empty). An unreadable value
    /// is an error naming the variable.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        for name in [LEVEL_ENV, RUST_LOG_ENV] {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() => {
                    if name == LEVEL_ENV {
                        check_level_words(&text)?;
                    }
                    return Filter::parse(&text)
                        .map(Some)
                        .map_err(|e| ConfigError::invalid_filter(format!("{name}: {e}")));
                }
                Ok(_) | Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::invalid_filter(format!(
                        "{name} is not valid UTF-8"
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The most verbose level some target keeps; `None` when nothing is kept.
    pub fn max_level(&self) -> Option<Level> {
        self.max
    }

    /// Whether a record at `level` with `target` is kept.
    pub fn enabled(&self, level: Level, target: &str) -> bool {
        if self.max.is_none_or(|max| level < max) {
            return false;
        }
        match &self.targets {
            None => true,
            Some(filter) => filter.enabled(
                &log::Metadata::builder()
                    .level(to_log(level))
                    .target(target)
                    .build(),
            ),
        }
    }

    /// Whether only the level matters (no per-target directives).
    pub(crate) fn is_level_only(&self) -> bool {
        self.targets.is_none()
    }
}

impl Default for Filter {
    fn default() -> Self {
        Filter::level(DEFAULT_MIN_LEVEL)
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("max_level", &self.max)
            .field("targets", &self.targets)
            .finish()
    }
}

/// In `AITRACE_LEVEL`, a bare word must be a level: `RUST_LOG` would read
/// `verbose` as a target (keeping only that target), which in a variable
/// named for a level is surely a typo that silences everything.
fn check_level_words(text: &str) -> Result<(), ConfigError> {
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if !word.contains('=')
            && word.parse::<Level>().is_err()
            && !word.eq_ignore_ascii_case("off")
        {
            return Err(ConfigError::invalid_filter(format!(
                "{LEVEL_ENV}={text:?}: {word:?} is not a level (trace, debug, info, warn, error, off); write TARGET=LEVEL for a target"
            )));
        }
    }
    Ok(())
}

fn to_log(level: Level) -> log::Level {
    match level {
        Level::Trace => log::Level::Trace,
        Level::Debug => log::Level::Debug,
        Level::Info => log::Level::Info,
        Level::Warn => log::Level::Warn,
        Level::Error => log::Level::Error,
    }
}

fn from_log_filter(level: log::LevelFilter) -> Option<Level> {
    match level {
        log::LevelFilter::Off => None,
        log::LevelFilter::Error => Some(Level::Error),
        log::LevelFilter::Warn => Some(Level::Warn),
        log::LevelFilter::Info => Some(Level::Info),
        log::LevelFilter::Debug => Some(Level::Debug),
        log::LevelFilter::Trace => Some(Level::Trace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn levels_and_directives() {
        let debug = Filter::parse(" DEBUG ").unwrap();
        assert!(debug.is_level_only());
        assert!(debug.enabled(Level::Debug, "anything"));
        assert!(!debug.enabled(Level::Trace, "anything"));

        let f = Filter::parse("warn,app=trace,app::noisy=error").unwrap();
        assert_eq!(f.max_level(), Some(Level::Trace));
        assert!(f.enabled(Level::Trace, "app::db"));
        assert!(!f.enabled(Level::Warn, "app::noisy::x"));
        assert!(f.enabled(Level::Warn, "hyper"));
        assert!(!f.enabled(Level::Info, "hyper"));
        // A bare target keeps everything from it.
        assert!(
            Filter::parse("mine")
                .unwrap()
                .enabled(Level::Trace, "mine::x")
        );
        // Nothing but a target: other targets keep nothing.
        assert!(
            !Filter::parse("mine=info")
                .unwrap()
                .enabled(Level::Error, "other")
        );

        let off = Filter::parse("off").unwrap();
        assert_eq!(off.max_level(), None);
        assert!(!off.enabled(Level::Error, ""));
    }

    #[test]
    fn a_bare_word_in_aitrace_level_must_be_a_level() {
        assert!(check_level_words("debug").is_ok());
        assert!(check_level_words("info, hyper=warn ,off").is_ok());
        let err = check_level_words("verbose").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFilter);
        assert!(
            err.to_string().contains("\"verbose\" is not a level"),
            "{err}"
        );
        assert!(check_level_words("warn,loud").is_err());
    }

    #[test]
    fn bad_directives_are_errors() {
        for bad in ["info,app=loud", "app=info=debug", "a=b=c"] {
            let err = Filter::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidFilter, "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
