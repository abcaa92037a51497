//! A custom output, written as a user would in their own crate: records
//! stored in an embedded SQLite database (`rusqlite` with its `bundled`
//! feature, so nothing needs to be installed).
//!
//! ```sh
//! cargo run -p aitrace-examples --example sqlite -- /tmp/aitrace.sqlite3
//! ```
//!
//! Argument: the database file (default `aitrace.sqlite3` in the temp
//! folder). Its spool folder is the same path with `.spool` added. It
//! prints the flush report, how many tries were retried, and the table.
//!
//! The exporter implements [`Export`] and nothing else: the logger gives it
//! what it gives its built-in outputs, here background delivery, batching,
//! retries with backoff, the breaker, the spool and its replay, stats and
//! the flush at exit. It says what became of each batch:
//!
//! * a batch goes in one transaction, all or nothing;
//! * `SQLITE_BUSY` / `SQLITE_LOCKED` (another process holds the database
//!   past the busy timeout) is [`Error::retry_later`]: retried with backoff,
//!   spooled meanwhile;
//! * a constraint failure (the table's `CHECK`s on the event and the level,
//!   a `UNIQUE` record id stored twice) is [`Error::refused_content`]: the
//!   logger sends the batch again in halves, so only the record at fault is
//!   set aside, in the spool's `rejected/` folder with the reason.
//!
//! It reads [`Input::Lines`], the wire format's JSON Lines, and lets SQLite's
//! JSON functions pick the metadata out: the user fields are what remains
//! of each object once `__tracer_meta__` is removed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use aitrace_core::export::{Accepted, Batch, Export, Input};
use aitrace_core::output::Layout;
use aitrace_core::{Background, BufferedLogger, Error, Output};
use rusqlite::{Connection, ErrorCode};

/// The table: a column for each metadata key, the user fields as JSON text.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    id             INTEGER PRIMARY KEY,
    timestamp      TEXT NOT NULL,
    level          TEXT NOT NULL
                   CHECK (level IN ('trace', 'debug', 'info', 'warning', 'error')),
    event          TEXT NOT NULL CHECK (event <> ''),
    trace_id       TEXT,
    span_id        TEXT,
    parent_span_id TEXT,
    record_id      TEXT UNIQUE,
    fields         TEXT NOT NULL CHECK (json_valid(fields))
);";

/// One wire-format line in, one row out.
const INSERT: &str = "
INSERT INTO records
    (timestamp, level, event, trace_id, span_id, parent_span_id, record_id, fields)
SELECT
    json_extract(?1, '$.__tracer_meta__.timestamp'),
    json_extract(?1, '$.__tracer_meta__.level'),
    json_extract(?1, '$.__tracer_meta__.event'),
    json_extract(?1, '$.__tracer_meta__.trace_id'),
    json_extract(?1, '$.__tracer_meta__.span_id'),
    json_extract(?1, '$.__tracer_meta__.parent_span_id'),
    json_extract(?1, '$.__tracer_meta__.record_id'),
    json_remove(?1, '$.__tracer_meta__')";

/// An output storing records in a SQLite database.
struct SqliteExporter {
    path: PathBuf,
    // `Connection` is `Send` but not `Sync`; the logger calls `export` from
    // one thread at a time, so the lock is never contended.
    conn: Mutex<Connection>,
}

impl SqliteExporter {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        // Wait this long for another writer before SQLITE_BUSY: the
        // export's own bound, well within the logger's flush timeout.
        conn.busy_timeout(Duration::from_millis(500))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteExporter {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    fn insert(&self, lines: &[u8]) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                insert.execute([String::from_utf8_lossy(line)])?;
            }
        }
        // Dropped without a commit on any error above: rolled back.
        tx.commit()
    }
}

/// What the logger should do with a batch SQLite did not take.
fn outcome(err: rusqlite::Error) -> Error {
    let message = format!("sqlite: {err}");
    let code = err.sqlite_error_code();
    let outcome = match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::retry_later(message),
        Some(ErrorCode::ConstraintViolation) => Error::refused_content(message),
        // A full disk or a failing one may recover.
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => {
            Error::retry_later(message)
        }
        // A read-only or corrupt database, a schema that does not fit.
        _ => Error::refused(message),
    };
    outcome.caused_by(err)
}

impl Export for SqliteExporter {
    fn name(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn input(&self) -> Input {
        Input::Lines
    }

    fn export(&self, batch: &Batch<'_>) -> Result<Accepted, Error> {
        if batch.layout() != Layout::Namespaced {
            return Err(Error::refused("sqlite: reads the namespaced layout only"));
        }
        self.insert(batch.lines()).map_err(|err| {
            let outcome = outcome(err);
            if outcome.is_transient() {
                // The logger retries it; a line says why it waits.
                eprintln!("{outcome}; retrying later");
            }
            outcome
        })?;
        Ok(Accepted::all())
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn shutdown(&self) -> Result<(), Error> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // Leave no `-wal`/`-shm` work behind (a no-op in the default mode).
        conn.execute_batch("PRAGMA optimize;").map_err(outcome)
    }
}

fn main() {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("aitrace.sqlite3"));
    let mut spool = path.clone().into_os_string();
    spool.push(".spool");

    let exporter = SqliteExporter::open(&path).expect("open the database");
    let log = BufferedLogger::builder()
        .output(Output::new(exporter))
        .delivery(Background::new().spool_dir(PathBuf::from(spool)))
        .record_ids(true)
        .build();

    log.span("import_orders").in_scope(|job| {
        log.info("import_started")
            .field("source", "orders.csv")
            .emit();
        for (order, total) in [("o-1", 19.5), ("o-2", 240.0)] {
            log.span("store_order")
                .field("order_id", order)
                .in_scope(|_| {
                    log.info("row_parsed").field("total", total).emit();
                    if total > 100.0 {
                        log.warn("large_order").field("total", total).emit();
                    }
                });
        }
        // Breaks the table's CHECK (event <> ''): SQLite refuses the batch,
        // the logger splits it and sets this one record aside.
        log.error("").field("why", "an event without a name").emit();
        job.record("orders", 2);
    });

    let report = log.flush().expect("flush");
    println!("{report}");
    println!("retries: {}", log.stats().retried);

    let conn = Connection::open(&path).expect("reopen the database");
    let mut query = conn
        .prepare(
            "SELECT level, event, trace_id, span_id, parent_span_id, fields
             FROM records ORDER BY id",
        )
        .expect("query");
    let rows = query
        .query_map([], |row| {
            Ok(format!(
                "{:<7} {:<20} trace={} span={} parent={} {}",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                row.get::<_, Option<String>>(4)?.unwrap_or_default(),
                row.get::<_, String>(5)?,
            ))
        })
        .expect("rows");
    for row in rows {
        println!("{}", row.expect("row"));
    }
}
