//! A logger whose records stay in memory, and finding a record by its event.

use aitrace_core::{BufferedLogger, InMemoryOutput, Level, Output, Record};

/// A logger capturing `min_level` and above, whose flushes land in the
/// returned in-memory output (its buffered records are `log.records()`).
pub fn memory_logger(min_level: Level) -> (BufferedLogger, InMemoryOutput) {
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .min_level(min_level)
        .build();
    (log, memory)
}

/// The first record named `event`; panics naming the events there are.
pub fn find<'a>(records: &'a [Record], event: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.event() == event)
        .unwrap_or_else(|| {
            panic!(
                "no {event} in {:?}",
                records.iter().map(Record::event).collect::<Vec<_>>()
            )
        })
}
