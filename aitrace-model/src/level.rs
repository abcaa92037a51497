//! Severity levels, written lower case as the wire format wants.

use std::fmt;
use std::str::FromStr;

/// The severity of a record, from least to most severe.
///
/// Written lower case on the wire; [`Level::Warn`] is written `warning`, as the
/// Python tool does.
///
/// # Examples
///
/// ```
/// use aitrace_model::Level;
///
/// assert_eq!(Level::Warn.as_str(), "warning");
/// assert_eq!("WARN".parse::<Level>(), Ok(Level::Warn));
/// assert!(Level::Error > Level::Info);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that was handled.
    Warn = 3,
    /// A failure.
    Error = 4,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 5] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ];

    /// The wire name: `trace`, `debug`, `info`, `warning` or `error`.
    #[inline]
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }

    #[inline]
    pub const fn from_u8(n: u8) -> Option<Level> {
        match n {
            0 => Some(Level::Trace),
            1 => Some(Level::Debug),
            2 => Some(Level::Info),
            3 => Some(Level::Warn),
            4 => Some(Level::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a string names no [`Level`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLevelError(String);

impl fmt::Display for ParseLevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown level {:?} (expected trace, debug, info, warn[ing], error)",
            self.0
        )
    }
}

impl std::error::Error for ParseLevelError {}

impl FromStr for Level {
    type Err = ParseLevelError;

    /// Parses a level name, ignoring case: `trace`, `debug`, `info`,
    /// `warn`/`warning`, `error`, and `critical`/`fatal` as `error`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Ok(Level::Trace),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warn),
            "error" | "critical" | "fatal" => Ok(Level::Error),
            _ => Err(ParseLevelError(s.to_owned())),
        }
    }
}
