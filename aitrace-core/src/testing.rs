//! An in-memory output, for testing adapters and applications without I/O.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::encode::Layout;
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
}

impl InMemoryOutput {
    pub(crate) fn receive(&self, records: &[Record], layout: Layout) {
        let mut received = self.inner.lock();
        received.batches += 1;
        for record in records {
            received.json.push(layout.to_json(record));
            received.records.push(record.clone());
        }
    }

    /// Every record received, in order.
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
