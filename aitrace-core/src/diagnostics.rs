//! Lines on stderr about delivery, rate-limited: a bad API key or a full
//! disk must not flood the application's stderr.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often one kind of diagnostic is printed at most.
pub(crate) const DIAGNOSTIC_INTERVAL: Duration = Duration::from_secs(60);

/// Prints each kind of line at most once per [`DIAGNOSTIC_INTERVAL`],
/// saying how many were held back in between.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Diagnostics {
    /// Prints `message` unless a line of the same `kind` was printed less
    /// than the interval ago; returns whether it printed.
    pub(crate) fn say(&self, kind: &str, message: impl FnOnce() -> String) -> bool {
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

/// The exit report's line when records were dropped: their total since the
/// logger started (the buffer's overflow drops included) and where, as
/// `(total, line)`; `None` when nothing was dropped. The lines printed as
/// drops happen are rate-limited (one per [`DIAGNOSTIC_INTERVAL`]), so only
/// this one gives the whole count.
pub(crate) fn drops_in_all(
    overflow: u64,
    outputs: &[crate::stats::OutputStats],
) -> Option<(u64, String)> {
    let total = overflow + outputs.iter().map(|o| o.dropped).sum::<u64>();
    if total == 0 {
        return None;
    }
    let mut parts: Vec<String> = (outputs.iter())
        .filter(|o| o.dropped > 0)
        .map(|o| format!("{}: {}", o.output, o.dropped))
        .collect();
    if overflow > 0 {
        parts.push(format!("buffer full: {overflow}"));
    }
    let records = if total == 1 { "record" } else { "records" };
    Some((
        total,
        format!(
            "{total} {records} dropped in all since the logger started ({})",
            parts.join("; ")
        ),
    ))
}

/// As delivery stops: the line of [`drops_in_all`] on stderr, when it
/// counts drops that no earlier call told of (`told` keeps the total told;
/// the lines printed as drops happen are rate-limited, so they may have
/// held most of them back).
pub(crate) fn report_drops_in_all(
    overflow: u64,
    outputs: &[crate::stats::OutputStats],
    told: &std::sync::atomic::AtomicU64,
) {
    let Some((total, line)) = drops_in_all(overflow, outputs) else {
        return;
    };
    if total > told.swap(total, std::sync::atomic::Ordering::SeqCst) {
        eprintln!("aitrace: {line}");
    }
}

/// The diagnostics of the whole process, for what no logger owns (a
/// frontend's setup, settings read from the environment); see
/// [`crate::adapter::diagnose`].
pub(crate) static PROCESS: LazyLock<Diagnostics> = LazyLock::new(Diagnostics::default);

/// [`Diagnostics::say`] on the process-wide instance.
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(crate) fn say_once(kind: &str, message: impl FnOnce() -> String) -> bool {
    PROCESS.say(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_in_all_name_each_output_and_the_buffer() {
        let output = |name: &str, dropped| crate::stats::OutputStats {
            output: name.into(),
            dropped,
            ..Default::default()
        };
        assert!(drops_in_all(0, &[output("a", 0)]).is_none());
        let (total, line) = drops_in_all(3, &[output("a", 4900), output("b", 0)]).unwrap();
        assert_eq!(total, 4903);
        assert_eq!(
            line,
            "4903 records dropped in all since the logger started (a: 4900; buffer full: 3)"
        );
    }

    #[test]
    fn one_line_per_kind_per_interval() {
        let d = Diagnostics::default();
        assert!(d.say("rejected", || "first".into()));
        assert!(!d.say("rejected", || unreachable!("held back")));
        assert!(d.say("spool", || "another kind".into()));
    }
}
