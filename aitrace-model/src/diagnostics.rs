//! Lines on stderr about delivery, rate-limited: a bad API key or a full
//! disk must not flood the application's stderr. An exporter of your own
//! may say what goes wrong through [`say_once`].

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often one kind of diagnostic is printed at most.
pub const DIAGNOSTIC_INTERVAL: Duration = Duration::from_secs(60);

/// Prints each kind of line at most once per [`DIAGNOSTIC_INTERVAL`],
/// saying how many were held back in between.
#[derive(Debug, Default)]
pub struct Diagnostics {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Diagnostics {
    /// Prints `message` unless a line of the same `kind` was printed less
    /// than the interval ago; returns whether it printed.
    pub fn say(&self, kind: &str, message: impl FnOnce() -> String) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock();
        let held_back = match seen.get_mut(kind) {
            Some((last, held)) if now.duration_since(*last) < DIAGNOSTIC_INTERVAL => {
                *held += 1;
                return false;
            }
            Some((last, held)) => {
                *last = now;
                std::mem::take(held)
            }
            None => {
                seen.insert(kind.to_owned(), (now, 0));
                0
            }
        };
        drop(seen);
        if held_back > 0 {
            eprintln!(
                "aitrace: {} ({held_back} more like it held back)",
                message()
            );
        } else {
            eprintln!("aitrace: {}", message());
        }
        true
    }
}

/// The diagnostics of the whole process, for what no logger owns (a
/// frontend's setup, settings read from the environment); see
/// `aitrace_core::adapter::diagnose`.
pub static PROCESS: LazyLock<Diagnostics> = LazyLock::new(Diagnostics::default);

/// [`Diagnostics::say`] on the process-wide instance.
pub fn say_once(kind: &str, message: impl FnOnce() -> String) -> bool {
    PROCESS.say(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval() {
        let d = Diagnostics::default();
        assert!(d.say("rejected", || "first".into()));
        assert!(!d.say("rejected", || unreachable!("held back")));
        assert!(d.say("spool", || "another kind".into()));
    }
}
