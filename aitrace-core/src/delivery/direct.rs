//! Direct delivery: a flush sends on the calling thread, as the Python tool
//! does. What an output acknowledged is never sent to it again: a failed
//! output keeps its own unacknowledged records for the next flush.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::parts::{send_copy, send_in_parts};
use super::{FlushFuture, Processor};
use crate::buffer::Buffer;
use crate::diagnostics::Diagnostics;
use crate::encode::Layout;
use crate::error::{Error, ErrorKind, Result};
use crate::file;
use crate::flush_report::{Delivery, FlushReport};
use crate::output::Output;
use crate::record::Record;
use crate::reentrancy::SendingGuard;
use crate::stats::Ledger;

/// What a flush on the calling thread does with records an output failed
/// to take.
///
/// Records an output refused for good (a 4xx other than 408 and 429, an
/// OTLP non-retryable status) are never kept: they would block every later
/// flush. A batch refused for what it holds (400, 413, 422) is sent again
/// in halves until only the records at fault are refused; those are written
/// to the fallback file, or with `Retain` to an
/// `aitrace-unsent-PID-TIME.jsonl` file in the temp folder, counted as
/// dropped and refused, named on stderr (once a minute per output) and in
/// the flush's [`Delivery`](crate::Delivery).
///
/// With `Retain`, one logger writes at most 64 MiB of refused records to
/// its `aitrace-unsent-…` file (a wrong token refuses every flush for
/// good, and would otherwise fill the temp folder): past that, refused
/// records are still counted as dropped and refused but not written, and
/// stderr says so once. A `FallbackFile` is the user's own file and has no
/// such bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFailure {
    /// Keep them for the next flush (the default). When every output failed
    /// they go back in the buffer, ahead of newer ones; when only some did,
    /// each failed output keeps its own (counted as in flight), so an output
    /// that took them never gets them twice. If the last handle drops with
    /// records still unsent, they are written to a fallback file in the temp
    /// folder.
    #[default]
    Retain,
    /// Append them to this JSON Lines file, as the Python tool does; the
    /// error names the file and the first such write is told on stderr.
    FallbackFile(PathBuf),
}

pub(crate) struct DirectProcessor {
    buffer: Arc<Buffer>,
    outputs: Vec<Output>,
    ledger: Arc<Ledger>,
    on_failure: OnFailure,
    /// The most records one output keeps for the next flush.
    retain_limit: usize,
    /// Each output's unacknowledged records, oldest first. Held for the
    /// whole flush, so flushes run one at a time.
    retained: Mutex<Vec<Vec<Record>>>,
    told_fallback: AtomicBool,
    /// Where refused records go without a fallback file, chosen at the
    /// first refusal.
    set_aside_path: OnceLock<PathBuf>,
    /// The most bytes of refused records written to `set_aside_path`
    /// ([`UNSENT_FILE_LIMIT`]; smaller in tests).
    unsent_limit: u64,
    /// Bytes of refused records written to `set_aside_path` so far.
    unsent_written: AtomicU64,
    /// Whether stderr was told that `unsent_limit` was reached.
    told_unsent_full: AtomicBool,
    diagnostics: Diagnostics,
}

impl std::fmt::Debug for DirectProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectProcessor")
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

/// The outcome of sending one flush's records to every output.
struct Sent {
    records: usize,
    deliveries: Vec<Delivery>,
    /// Failed outputs, by index, with the error.
    failures: Vec<(usize, Error)>,
}

impl DirectProcessor {
    pub(crate) fn new(
        buffer: Arc<Buffer>,
        outputs: Vec<Output>,
        ledger: Arc<Ledger>,
        on_failure: OnFailure,
        retain_limit: usize,
    ) -> Self {
        let retained = Mutex::new(vec![Vec::new(); outputs.len()]);
        DirectProcessor {
            buffer,
            outputs,
            ledger,
            on_failure,
            retain_limit: retain_limit.max(1),
            retained,
            told_fallback: AtomicBool::new(false),
            set_aside_path: OnceLock::new(),
            unsent_limit: UNSENT_FILE_LIMIT,
            unsent_written: AtomicU64::new(0),
            told_unsent_full: AtomicBool::new(false),
            diagnostics: Diagnostics::default(),
        }
    }

    /// Sends `records` to `output` once, for
    /// [`send_logs`](crate::send_logs), as a flush sends what it took from
    /// the buffer: again in halves where the output refuses what a part
    /// holds, the parts refused for what they hold set aside in an
    /// `aitrace-unsent-….jsonl` file (named in the report and on stderr) and
    /// counted in the report. Nothing is kept, since the caller still has
    /// the records, so two answers are the caller's error, as they were
    /// when `send_logs` was one request: a refusal of the whole request
    /// that is not about what it holds (a 401 for a wrong token: nothing is
    /// set aside), and a failure that may pass, which says how many records
    /// at the end of the slice were not sent ([`Error::retained`]): the ones
    /// before them were delivered or set aside, and must not be sent again.
    pub(crate) fn send_once(output: Output, records: &[Record]) -> Result<FlushReport> {
        let buffer = Arc::new(Buffer::new(1, Default::default(), usize::MAX));
        let ledger = Arc::new(Ledger::new([output.to_string()]));
        let once = DirectProcessor::new(
            buffer,
            vec![output],
            ledger,
            OnFailure::Retain,
            records.len(),
        );
        let _sending = SendingGuard::enter();
        let mut sent = send_in_parts(&once.outputs[0], records);
        let whole = 0..records.len();
        if let [(part, err)] = &sent.refused[..] {
            if *part == whole && !err.refuses_content() {
                let (_, err) = sent.refused.pop().expect("one refusal");
                return Err(err);
            }
        }
        for (part, err) in &sent.refused {
            once.set_aside(0, &records[part.clone()], err, &mut sent.delivery);
        }
        if let Some((first_unsent, err)) = sent.failed {
            return Err(err.with_unsent_tail(records.len() - first_unsent));
        }
        Ok(FlushReport {
            records: records.len(),
            deliveries: vec![sent.delivery],
        })
    }

    /// Takes the buffer's records into flight for every output.
    fn take_batch(&self) -> Vec<Record> {
        let mut books = self.ledger.lock();
        let batch = self.buffer.drain_for_delivery();
        for o in books.iter_mut() {
            o.in_flight += batch.len() as u64;
        }
        batch
    }

    /// Sends `batch` (after what each output still owes) to every output.
    fn send(&self, retained: &mut [Vec<Record>], batch: &[Record]) -> Sent {
        let _sending = SendingGuard::enter();
        let mut deliveries = Vec::with_capacity(self.outputs.len());
        let mut failures = Vec::new();
        for (i, output) in self.outputs.iter().enumerate() {
            let owed = &mut retained[i];
            if !owed.is_empty() {
                owed.extend(batch.iter().cloned());
            }
            let records: &[Record] = if owed.is_empty() { batch } else { owed };
            if records.is_empty() {
                deliveries.push(Delivery::named(output.to_string()));
                continue;
            }
            let mut sent = send_in_parts(output, records);
            self.ledger.lock()[i].acknowledge(
                sent.acknowledged as u64,
                sent.delivery.rejected as u64,
                false,
                sent.delivery.rejection.as_deref(),
            );
            for (part, err) in &sent.refused {
                self.set_aside(i, &records[part.clone()], err, &mut sent.delivery);
            }
            match sent.failed {
                None => owed.clear(),
                Some((first_unsent, err)) => {
                    if first_unsent > 0 {
                        // The records before it are settled: keep the rest.
                        let rest = records[first_unsent..].to_vec();
                        *owed = rest;
                    }
                    self.ledger.lock()[i].failed_flushes += 1;
                    failures.push((i, err));
                }
            }
            deliveries.push(sent.delivery);
        }
        Sent {
            records: batch.len(),
            deliveries,
            failures,
        }
    }

    /// Records output `i` refused for good: written to the fallback file
    /// (or this logger's `aitrace-unsent-….jsonl`, up to `unsent_limit`
    /// bytes), never sent again, counted as dropped and refused, and said
    /// on stderr (once a minute per output).
    fn set_aside(&self, i: usize, records: &[Record], err: &Error, delivery: &mut Delivery) {
        let reason = err.to_string();
        let written = match &self.on_failure {
            OnFailure::FallbackFile(path) => {
                write_fallback(path, records).map(|()| Some(path.clone()))
            }
            OnFailure::Retain => self.write_unsent(records),
        };
        {
            let mut books = self.ledger.lock();
            books[i].failed_flushes += 1;
            books[i].refuse(records.len() as u64, false, &reason);
        }
        delivery.add_rejected(records.len(), Some(&reason));
        let output = &self.outputs[i];
        let count = records.len();
        match written {
            Ok(Some(path)) => {
                self.diagnostics.say(&format!("rejected-{i}"), || {
                    format!(
                        "{output} refused {count} records, not sent again: {reason}; written to {}",
                        path.display()
                    )
                });
                delivery.fallback_path = Some(path);
            }
            Ok(None) => {
                self.diagnostics.say(&format!("rejected-{i}"), || {
                    format!(
                        "{output} refused {count} records, not sent again: {reason}; not written (the unsent file is full)"
                    )
                });
            }
            Err(write_err) => {
                self.diagnostics.say(&format!("rejected-lost-{i}"), || {
                    format!("{output} refused {count} records ({reason}), and {write_err}: they are lost")
                });
            }
        }
    }

    /// Appends refused records to this logger's `aitrace-unsent-….jsonl`
    /// while it holds less than `unsent_limit` bytes: the whole lines that
    /// fit are written, the rest are not (said on stderr once). Returns the
    /// path if any were written.
    fn write_unsent(&self, records: &[Record]) -> Result<Option<PathBuf>> {
        let path = self.set_aside_path.get_or_init(unsent_file_path);
        let mut body = Vec::with_capacity(records.len() * 320);
        Layout::Namespaced.write_lines(&mut body, records);
        let room = self
            .unsent_limit
            .saturating_sub(self.unsent_written.load(Ordering::Relaxed));
        // Whole lines only: a line ends at its only b'\n' (JSON escapes it).
        let fits = if body.len() as u64 <= room {
            body.len()
        } else {
            body[..room as usize]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |end| end + 1)
        };
        let left_out = body[fits..].iter().filter(|&&b| b == b'\n').count();
        if left_out > 0 && !self.told_unsent_full.swap(true, Ordering::Relaxed) {
            eprintln!(
                "aitrace: {} holds the most refused records one logger writes there ({} bytes): \
                 records refused from now on are counted as dropped and not written",
                path.display(),
                self.unsent_limit
            );
        }
        if fits == 0 {
            return Ok(None);
        }
        file::append(path, &body[..fits])?;
        self.unsent_written
            .fetch_add(fits as u64, Ordering::Relaxed);
        Ok(Some(path.clone()))
    }

    /// Deals with the records of failed outputs as [`OnFailure`] says and
    /// returns the error to give the caller.
    fn handle_failures(
        &self,
        retained: &mut [Vec<Record>],
        batch: Vec<Record>,
        failures: Vec<(usize, Error)>,
    ) -> Error {
        let all_failed = failures.len() == self.outputs.len();
        let mut failures = failures;
        let mut wrote_fallback = false;
        if let OnFailure::FallbackFile(path) = &self.on_failure {
            let mut first_written: Option<Error> = None;
            let mut unwritten = Vec::new();
            for (i, err) in failures {
                let records: &[Record] = if retained[i].is_empty() {
                    &batch
                } else {
                    &retained[i]
                };
                match write_fallback(path, records) {
                    Ok(()) => {
                        self.ledger.lock()[i].drop_in_flight(records.len() as u64);
                        retained[i].clear();
                        if !self.told_fallback.swap(true, Ordering::Relaxed) {
                            eprintln!(
                                "aitrace: delivery failed ({err}); batch written to {}",
                                path.display()
                            );
                        }
                        first_written.get_or_insert(err);
                    }
                    Err(write_err) => {
                        eprintln!("aitrace: cannot write fallback file: {write_err}");
                        unwritten.push((i, err));
                    }
                }
            }
            failures = unwritten;
            match first_written {
                Some(err) if failures.is_empty() => return err.with_fallback_path(path.clone()),
                // Some outputs' records are in the file: the rest are kept
                // per output, never put back for every output.
                Some(_) => wrote_fallback = true,
                None => {}
            }
        }
        // Retain. When every output failed and none owed anything before,
        // the batch goes back to the buffer as it was.
        let nothing_owed = failures.iter().all(|(i, _)| retained[*i].is_empty());
        if all_failed && nothing_owed && !wrote_fallback {
            let n = batch.len();
            let mut books = self.ledger.lock();
            self.buffer.restore(batch);
            for o in books.iter_mut() {
                o.in_flight -= (n as u64).min(o.in_flight);
            }
            let (_, err) = failures.into_iter().next().expect("a failure");
            return err.with_retained(n);
        }
        let mut kept = 0;
        let mut first: Option<Error> = None;
        for (i, err) in failures {
            let owed = &mut retained[i];
            if owed.is_empty() {
                owed.extend(batch.iter().cloned());
            }
            if owed.len() > self.retain_limit {
                let excess = owed.len() - self.retain_limit;
                owed.drain(..excess);
                self.ledger.lock()[i].drop_in_flight(excess as u64);
            }
            kept = kept.max(owed.len());
            first.get_or_insert(err);
        }
        first.expect("a failure").with_retained(kept)
    }

    /// Writes every record still kept for an output, and what is buffered,
    /// to the fallback file (or an `aitrace-unsent-….jsonl`), counted as
    /// dropped; returns `err` naming the file.
    fn spill(&self, err: Error) -> Error {
        let Some(mut retained) = self.retained.try_lock() else {
            return err;
        };
        let batch = self.take_batch();
        let mut unsent = Vec::new();
        {
            let mut books = self.ledger.lock();
            for (owed, books) in retained.iter_mut().zip(books.iter_mut()) {
                books.drop_in_flight((owed.len() + batch.len()) as u64);
                unsent.append(owed);
            }
        }
        unsent.extend(batch);
        if unsent.is_empty() {
            return err;
        }
        let path = match &self.on_failure {
            OnFailure::FallbackFile(path) => path.clone(),
            OnFailure::Retain => unsent_file_path(),
        };
        let err = err.with_retained(0);
        if report_unsent(&path, &unsent, &err.to_string()) {
            err.with_fallback_path(path)
        } else {
            err
        }
    }

    fn run(&self, wait: Duration) -> Result<FlushReport> {
        let Some(mut retained) = self.retained.try_lock_for(wait) else {
            return Err(Error::new(
                ErrorKind::FlushTimedOut,
                format!("another flush did not finish within {wait:?}"),
            ));
        };
        let batch = self.take_batch();
        if batch.is_empty() && retained.iter().all(Vec::is_empty) {
            return Ok(FlushReport::default());
        }
        let sent = self.send(&mut retained, &batch);
        if sent.failures.is_empty() {
            return Ok(FlushReport {
                records: sent.records,
                deliveries: sent.deliveries,
            });
        }
        Err(self.handle_failures(&mut retained, batch, sent.failures))
    }
}

impl Processor for DirectProcessor {
    fn flush(&self, timeout: Duration) -> Result<FlushReport> {
        self.run(timeout)
    }

    /// On the calling thread, in turn with flushes (it waits for the one
    /// running, up to `timeout`).
    fn send_copy(&self, records: Arc<Vec<Record>>, timeout: Duration) -> Result<FlushReport> {
        let Some(_turn) = self.retained.try_lock_for(timeout) else {
            return Err(Error::new(
                ErrorKind::FlushTimedOut,
                format!("another flush did not finish within {timeout:?}"),
            ));
        };
        let _sending = SendingGuard::enter();
        // Every output gets its copy; the first failure is the answer.
        let sent: Vec<Result<Delivery>> = (self.outputs.iter())
            .map(|output| send_copy(output, &records))
            .collect();
        Ok(FlushReport {
            records: records.len(),
            deliveries: sent.into_iter().collect::<Result<_>>()?,
        })
    }

    fn flush_async(&self, timeout: Duration) -> FlushFuture {
        FlushFuture::ready(self.run(timeout))
    }

    /// A flush; if it fails, what no output took is written to the
    /// fallback file as when the last handle drops, so that an exit right
    /// after (`std::process::exit` runs no destructors) loses nothing.
    fn shutdown(&self, timeout: Duration) -> Result<FlushReport> {
        match self.run(timeout) {
            Err(err) if err.retained() > 0 && err.kind() != ErrorKind::FlushTimedOut => {
                Err(self.spill(err))
            }
            other => other,
        }
    }

    /// The last flush runs on a helper thread so that a slow output cannot
    /// hold the dropping thread past `timeout`; whatever no output
    /// acknowledged by then goes to the fallback file (a send still running
    /// may deliver it too: at-least-once).
    /// Reports the total of drops so far (the lines printed as they
    /// happened are rate-limited), then flushes; what that flush cannot
    /// deliver has a line of its own naming the file it went to.
    fn close(&self, timeout: Duration) {
        let overflow = self.buffer.tally().dropped;
        let books = self.ledger.lock();
        crate::diagnostics::report_drops_in_all(overflow, &books, &AtomicU64::new(0));
        drop(books);
        self.last_flush(timeout);
    }
}

impl DirectProcessor {
    /// [`Processor::close`]'s flush, on a helper thread so that a slow
    /// output cannot hold the dropping thread past `timeout`.
    fn last_flush(&self, timeout: Duration) {
        let deadline = crate::deadline::from_now(timeout);
        let Some(mut retained) = self.retained.try_lock_until(deadline) else {
            eprintln!("aitrace: a flush was still running when the last handle dropped");
            return;
        };
        let batch = Arc::new(self.take_batch());
        let owed: Vec<Vec<Record>> = retained.iter_mut().map(std::mem::take).collect();
        if batch.is_empty() && owed.iter().all(Vec::is_empty) {
            return;
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let outputs = self.outputs.clone();
        let job_batch = batch.clone();
        let job_owed = owed.clone();
        let started = std::thread::Builder::new()
            .name("aitrace-last-flush".into())
            .spawn(move || {
                let _sending = SendingGuard::enter();
                for (i, output) in outputs.iter().enumerate() {
                    let mut records = job_owed[i].clone();
                    records.extend(job_batch.iter().cloned());
                    let result = if records.is_empty() {
                        Ok(Delivery::default())
                    } else {
                        output.send(&records)
                    };
                    let _ = tx.send((i, result));
                }
            });
        let mut done = vec![None; self.outputs.len()];
        if started.is_ok() {
            while done.iter().any(Option::is_none) {
                match rx.recv_deadline(deadline) {
                    Ok((i, result)) => done[i] = Some(result.map_err(|e| e.to_string())),
                    Err(_) => break,
                }
            }
        }
        let mut unsent: Vec<Record> = Vec::new();
        let mut batch_unsent = false;
        let mut reasons = Vec::new();
        let mut books = self.ledger.lock();
        for (i, result) in done.into_iter().enumerate() {
            let n = (owed[i].len() + batch.len()) as u64;
            match result {
                Some(Ok(delivery)) => books[i].acknowledge(
                    n,
                    delivery.rejected as u64,
                    false,
                    delivery.rejection.as_deref(),
                ),
                failed => {
                    books[i].failed_flushes += 1;
                    books[i].drop_in_flight(n);
                    unsent.extend(owed[i].iter().cloned());
                    batch_unsent = true;
                    reasons.push(match failed {
                        Some(Err(e)) => format!("{}: {e}", self.outputs[i]),
                        _ => format!("{}: no answer within {timeout:?}", self.outputs[i]),
                    });
                }
            }
        }
        drop(books);
        if batch_unsent {
            unsent.extend(batch.iter().cloned());
        }
        if !unsent.is_empty() {
            let path = match &self.on_failure {
                OnFailure::FallbackFile(path) => path.clone(),
                OnFailure::Retain => unsent_file_path(),
            };
            report_unsent(&path, &unsent, &reasons.join("; "));
        }
    }
}

/// The most bytes of refused records one logger writes to its
/// `aitrace-unsent-….jsonl` with [`OnFailure::Retain`]: 64 MiB. Past it,
/// refused records are counted as dropped and not written.
pub(crate) const UNSENT_FILE_LIMIT: u64 = 64 << 20;

/// Where the last handle's undeliverable records go when no fallback file
/// was configured: `$TMPDIR/aitrace-unsent-PID-TIME.jsonl`.
pub(super) fn unsent_file_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "aitrace-unsent-{}-{}.jsonl",
        std::process::id(),
        file::compact_utc(SystemTime::now())
    ))
}

/// Writes records that could not be delivered to `path` and says so on
/// stderr; whether they were written.
pub(super) fn report_unsent(path: &Path, records: &[Record], why: &str) -> bool {
    match write_fallback(path, records) {
        Ok(()) => {
            eprintln!(
                "aitrace: {} records could not be delivered ({why}); written to {}",
                records.len(),
                path.display()
            );
            true
        }
        Err(write_err) => {
            eprintln!(
                "aitrace: {} records lost: delivery failed ({why}) and {write_err}",
                records.len()
            );
            false
        }
    }
}

fn write_fallback(path: &Path, records: &[Record]) -> Result<()> {
    let mut body = Vec::with_capacity(records.len() * 320);
    Layout::Namespaced.write_lines(&mut body, records);
    file::append(path, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Level;

    /// Found in review: with `Retain`, a service refusing every flush for
    /// good (a wrong token) had every record written to the unsent file,
    /// without bound. Past the bound, refused records are counted as
    /// dropped and refused but not written.
    #[test]
    fn refused_records_past_the_unsent_file_limit_are_counted_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unsent.jsonl");
        let (output, _memory) = Output::in_memory();
        let buffer = Arc::new(Buffer::new(100, Default::default(), usize::MAX));
        let ledger = Arc::new(Ledger::new([output.to_string()]));
        let mut direct =
            DirectProcessor::new(buffer, vec![output], ledger.clone(), OnFailure::Retain, 100);
        direct.unsent_limit = 1000;
        direct.set_aside_path.set(path.clone()).unwrap();
        let records: Vec<Record> = (0..10)
            .map(|i| {
                Record::builder(Level::Info, "refused")
                    .field("i", i)
                    .build()
            })
            .collect();
        let mut one = Vec::new();
        Layout::Namespaced.write_lines(&mut one, &records[..1]);
        assert!(one.len() < 200, "a line is small: {}", one.len());
        let err = Error::new(ErrorKind::HttpStatus, "HTTP 403");
        let mut last = Delivery::default();
        for _ in 0..20 {
            last = Delivery::default();
            direct.set_aside(0, &records, &err, &mut last);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.len() <= 1000 && text.len() + 200 > 1000,
            "the file stops at its bound: {} bytes",
            text.len()
        );
        assert!(text.ends_with('\n'), "whole lines only");
        assert_eq!(last.fallback_path, None, "nothing written past the bound");
        assert_eq!(last.rejected, 10);
        let books = ledger.lock();
        assert_eq!((books[0].dropped, books[0].rejected), (200, 200));
    }
}
