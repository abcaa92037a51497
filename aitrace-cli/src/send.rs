//! `aitrace send` and `aitrace spool --replay`: records from files delivered
//! through the core's outputs, in batches, with retries.

use std::io::IsTerminal;
use std::time::Duration;

use aitrace_core::{BufferedLogger, Direct, Level, OnFailure, Output, Record};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{input, say};

/// What became of one batch the server answered.
struct Sent {
    /// Taken, but not stored (`{"ingested": N}` below the batch's size).
    not_stored: usize,
    /// Refused for good: set aside in a file, not sent.
    refused: usize,
}

/// How files are sent.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) batch: usize,
    pub(crate) attempts: u32,
    pub(crate) delete_after: bool,
}

/// The outcome of sending some files.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) sent: usize,
    pub(crate) invalid: usize,
    pub(crate) failed: usize,
    /// Records the server received but did not store (no ids).
    pub(crate) not_stored: usize,
    pub(crate) deleted: usize,
}

impl Summary {
    pub(crate) fn print(&self, target: &str) {
        let mut line = format!(
            "aitrace: sent {} records to {target}, {} skipped as invalid, {} failed",
            self.sent, self.invalid, self.failed
        );
        if self.not_stored > 0 {
            line.push_str(&format!(
                "; the server stored {} fewer than it received (records without trace and span ids)",
                self.not_stored
            ));
        }
        if self.deleted > 0 {
            line.push_str(&format!("; {} files deleted", self.deleted));
        }
        say::diag!("{line}");
    }

    pub(crate) fn all_delivered(&self) -> bool {
        self.invalid == 0 && self.failed == 0
    }
}

/// A sender bound to one output for the whole run (an HTML target thus
/// gets every file's records in one report).
pub(crate) struct Sender {
    log: BufferedLogger,
    target: String,
    settings: Settings,
}

impl Sender {
    pub(crate) fn new(target: &str, settings: Settings) -> Result<Sender, String> {
        if target.contains(',') {
            // `LOG_TRG` separates targets with commas; here one is meant.
            return Err(format!(
                "--to takes one target, not a list: {target:?} (send to each in turn; a comma in a URL is written %2C)"
            ));
        }
        let output =
            Output::from_target(target).map_err(|e| format!("bad target {target:?}: {e}"))?;
        let log = BufferedLogger::builder()
            .output(output.clone())
            .min_level(Level::Trace)
            .delivery(Direct::new().on_failure(OnFailure::Retain))
            .build();
        Ok(Sender {
            log,
            target: output.to_string(),
            settings,
        })
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Sends every file; the bar counts records.
    pub(crate) fn send_files(&self, files: &[String], summary: &mut Summary) -> Result<(), String> {
        let mut loaded = Vec::new();
        for file in files {
            let text = input::read_source(file)?;
            let mut records = Vec::new();
            let mut invalid = 0;
            for item in input::parse(&text) {
                let record = item
                    .object
                    .map_err(|e| e.to_string())
                    .and_then(|_| Record::from_json(&item.text).map_err(|e| e.to_string()));
                match record {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        say::bad_line(format_args!(
                            "aitrace: {}:{}: skipped as invalid: {e}",
                            input::name(file),
                            item.pos
                        ));
                        invalid += 1;
                    }
                }
            }
            loaded.push((file, records, invalid));
        }
        let total: usize = loaded.iter().map(|(_, r, _)| r.len()).sum();
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} records {msg}") {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        for (file, records, invalid) in loaded {
            summary.invalid += invalid;
            let mut failed = 0;
            for batch in records.chunks(self.settings.batch.max(1)) {
                bar.set_message(input::name(file).to_owned());
                match self.send_batch(batch) {
                    Ok(Sent {
                        not_stored,
                        refused,
                    }) => {
                        // Refused records were set aside by the flush (it
                        // said where on stderr): not sent, so the file stays.
                        summary.sent += batch.len() - refused;
                        summary.not_stored += not_stored;
                        failed += refused;
                    }
                    Err(e) => {
                        bar.suspend(|| {
                            say::diag!(
                                "aitrace: {}: a batch of {} records was not delivered: {e}",
                                input::name(file),
                                batch.len()
                            )
                        });
                        failed += batch.len();
                    }
                }
                bar.inc(batch.len() as u64);
            }
            summary.failed += failed;
            if self.settings.delete_after && file != "-" {
                if failed == 0 && invalid == 0 {
                    std::fs::remove_file(file).map_err(|e| format!("cannot delete {file}: {e}"))?;
                    summary.deleted += 1;
                } else {
                    bar.suspend(|| {
                        say::diag!("aitrace: {file} kept: not every record was delivered")
                    });
                }
            }
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// One batch, retried on transient failures with exponential backoff
    /// (or the server's `Retry-After`). Returns how many the server refused
    /// (set aside by the flush) and how many it took but did not store.
    fn send_batch(&self, batch: &[Record]) -> Result<Sent, String> {
        for record in batch {
            self.log.capture(record.clone());
        }
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match self.log.flush() {
                Ok(report) => {
                    return Ok(Sent {
                        not_stored: report.skipped(),
                        refused: report.dropped().min(batch.len()),
                    });
                }
                Err(e) if e.is_transient() && attempt < self.settings.attempts => {
                    std::thread::sleep(
                        e.retry_after()
                            .unwrap_or(backoff)
                            .min(Duration::from_secs(30)),
                    );
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                Err(e) => {
                    self.log.clear();
                    return Err(format!("{e} (after {attempt} attempts)"));
                }
            }
        }
    }
}
