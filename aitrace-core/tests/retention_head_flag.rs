//! Review of issue 21: the head sampling flag is process-wide state that a
//! logger with retention sets and nothing resets (its own file: one process).

use aitrace_core::retention::Retention;
use aitrace_core::{BufferedLogger, Level, Output, TraceParent};

/// A logger with retention (kept ratio 0) came and went; the logger now in
/// use has no retention and keeps every record, yet the headers it sends
/// still say "not sampled", and downstream parent-based samplers drop the
/// trace.
#[test]
fn a_logger_without_retention_sends_sampled_whatever_came_before() {
    let (output, _memory) = Output::in_memory();
    let with_retention = BufferedLogger::builder()
        .output(output)
        .min_level(Level::Debug)
        .retention(Retention::new())
        .build();
    drop(with_retention);
    let (output, _memory) = Output::in_memory();
    let log = BufferedLogger::builder().output(output).build();
    let header = log
        .span("request")
        .in_scope(|_| TraceParent::current().unwrap());
    assert!(
        header.is_sampled(),
        "{header}: a logger that keeps every record sends `not sampled`"
    );
}
