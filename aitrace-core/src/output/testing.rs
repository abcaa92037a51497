//! An in-memory output, for testing adapters and applications without I/O.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::record::Record;

/// The records an in-memory [`Output`](crate::Output) received, with the JSON
/// each was encoded as. Made by [`Output::in_memory`](crate::Output::in_memory).
///
/// # Examples
///
/// ```
/// use aitrace_core::{BufferedLogger, Output};
///
/// let (output, memory) = Output::in_memory();
/// let logger = BufferedLogger::builder().output(output).build();
/// logger.info("hello").field("n", 1).emit();
/// logger.flush().unwrap();
/// assert_eq!(memory.records()[0].event(), "hello");
/// assert_eq!(memory.json()[0]["n"], 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct InMemoryOutput {
    inner: Arc<Mutex<Received>>,
}

#[derive(Debug, Default)]
struct Received {
    records: Vec<Record>,
    json: Vec<String>,
    batches: usize,
    fail_next: usize,
}

impl InMemoryOutput {
    pub(crate) fn receive(&self, records: Option<&[Record]>, lines: &[u8]) -> crate::Result<()> {
        let mut received = self.inner.lock();
        if received.fail_next > 0 {
            received.fail_next -= 1;
            return Err(crate::Error::new(
                crate::ErrorKind::Connect,
                "in-memory output told to fail",
            ));
        }
        received.batches += 1;
        if let Some(records) = records {
            received.records.extend_from_slice(records);
        }
        let text = String::from_utf8_lossy(lines);
        received.json.extend(text.lines().map(str::to_owned));
        Ok(())
    }

    /// Makes the next `n` deliveries fail with a connection error.
    pub fn fail_next(&self, n: usize) {
        self.inner.lock().fail_next = n;
    }

    /// Every record received with its `Record` at hand, in order (records
    /// replayed from a spool arrive only as JSON; see [`json`](Self::json)).
    pub fn records(&self) -> Vec<Record> {
        self.inner.lock().records.clone()
    }

    /// Every record received, encoded and parsed back.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.inner
            .lock()
            .json
            .iter()
            .map(|text| serde_json::from_str(text).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    /// How many batches were received.
    pub fn batches(&self) -> usize {
        self.inner.lock().batches
    }

    /// Forgets everything received.
    pub fn clear(&self) {
        let mut received = self.inner.lock();
        received.records.clear();
        received.json.clear();
        received.batches = 0;
    }
}

impl crate::export::Export for InMemoryOutput {
    fn name(&self) -> String {
        "memory".to_owned()
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn export(&self, batch: &crate::export::Batch<'_>) -> crate::Result<crate::export::Accepted> {
        self.receive(Some(&batch.records()), batch.lines())?;
        Ok(crate::export::Accepted::all())
    }
}
