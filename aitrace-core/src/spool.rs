//! The disk spool: batches an output could not take, kept as JSON Lines files
//! until it answers again, by this process or the next one.
//!
//! Each output has its own folder under the spool root. A batch is written
//! to a `.tmp` file and renamed to `<micros>-<pid>-<seq>.jsonl`, so a reader
//! never sees half a batch. Files are replayed oldest first and deleted once
//! delivered. Batches the output refused for good (a 4xx other than 408, 413
//! and 429) go to `rejected/` with a `.reason` file and are not replayed.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The most bytes a spool folder holds by default; the oldest files are
/// evicted (and counted as dropped) to make room.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
struct SpoolFile {
    path: PathBuf,
    bytes: u64,
    records: u64,
}

#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    files: VecDeque<SpoolFile>,
    total_bytes: u64,
    seq: u64,
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

impl Spool {
    /// Opens (creating) an output's spool folder and lists what an earlier
    /// process left there. Leftover `.tmp` files (a crash mid-write) are removed.
    pub(crate) fn open(dir: PathBuf, max_bytes: u64) -> Result<Self> {
        create_private_dir(&dir).map_err(|e| {
            Error::io(
                format_args!("cannot create spool folder {}", dir.display()),
                e,
            )
        })?;
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Error::io(
                format_args!("cannot read spool folder {}", dir.display()),
                e,
            )
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("jsonl") => {
                    if let Ok(bytes) = std::fs::read(&path) {
                        found.push(SpoolFile {
                            bytes: bytes.len() as u64,
                            records: count_lines(&bytes),
                            path,
                        });
                    }
                }
                Some("tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
        found.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
        let total_bytes = found.iter().map(|f| f.bytes).sum();
        Ok(Spool {
            dir,
            max_bytes,
            files: found.into(),
            total_bytes,
            seq: 0,
        })
    }

    /// Records waiting in spool files.
    pub(crate) fn pending(&self) -> u64 {
        self.files.iter().map(|f| f.records).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn next_name(&mut self, ext: &str) -> PathBuf {
        self.seq += 1;
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        self.dir.join(format!(
            "{micros:020}-{:010}-{:06}.{ext}",
            std::process::id(),
            self.seq
        ))
    }

    /// Writes a batch of JSON Lines. Returns how many older records were
    /// evicted to make room; a batch larger than the whole spool is refused.
    pub(crate) fn write(&mut self, lines: &[u8]) -> Result<u64> {
        let bytes = lines.len() as u64;
        if bytes > self.max_bytes {
            return Err(Error::new(
                crate::ErrorKind::Io,
                format!(
                    "a batch of {bytes} bytes is larger than the spool ({} bytes)",
                    self.max_bytes
                ),
            ));
        }
        let mut evicted = 0;
        while self.total_bytes + bytes > self.max_bytes {
            let Some(oldest) = self.files.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(&oldest.path);
            self.total_bytes -= oldest.bytes;
            evicted += oldest.records;
        }
        let path = self.next_name("jsonl");
        write_atomically(&path, lines)?;
        self.total_bytes += bytes;
        self.files.push_back(SpoolFile {
            path,
            bytes,
            records: count_lines(lines),
        });
        Ok(evicted)
    }

    /// The oldest batch: its lines and record count.
    pub(crate) fn oldest(&mut self) -> Option<(Vec<u8>, u64)> {
        loop {
            let file = self.files.front()?;
            match std::fs::read(&file.path) {
                Ok(lines) => return Some((lines, file.records)),
                // Gone (another process replayed it): forget it.
                Err(_) => {
                    self.remove_oldest();
                }
            }
        }
    }

    /// Deletes the oldest batch, once delivered.
    pub(crate) fn remove_oldest(&mut self) {
        if let Some(file) = self.files.pop_front() {
            let _ = std::fs::remove_file(&file.path);
            self.total_bytes -= file.bytes;
        }
    }

    /// Moves the oldest batch to `rejected/` with the reason next to it.
    pub(crate) fn reject_oldest(&mut self, reason: &str) {
        if let Some(file) = self.files.pop_front() {
            self.total_bytes -= file.bytes;
            if let Ok(lines) = std::fs::read(&file.path) {
                let _ = self.write_rejected(&lines, reason);
            }
            let _ = std::fs::remove_file(&file.path);
        }
    }

    /// Keeps a batch the output refused for good, with the reason, for a
    /// person to look at. It is not replayed.
    pub(crate) fn write_rejected(&mut self, lines: &[u8], reason: &str) -> Result<PathBuf> {
        let dir = self.dir.join("rejected");
        create_private_dir(&dir)
            .map_err(|e| Error::io(format_args!("cannot create {}", dir.display()), e))?;
        let name = self.next_name("jsonl");
        let path = dir.join(name.file_name().unwrap_or_default());
        write_atomically(&path, lines)?;
        let _ = std::fs::write(path.with_extension("reason"), reason);
        Ok(path)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(
            format_args!("cannot write spool file {}", path.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lists_replays_in_order_and_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path().join("out"), 100).unwrap();
        assert_eq!(spool.write(b"{\"a\":1}\n{\"a\":2}\n").unwrap(), 0);
        assert_eq!(spool.write(b"{\"b\":1}\n").unwrap(), 0);
        assert_eq!(spool.pending(), 3);
        // A later process sees the same files, oldest first.
        let mut again = Spool::open(dir.path().join("out"), 100).unwrap();
        assert_eq!(again.pending(), 3);
        assert_eq!(
            again.oldest().unwrap(),
            (b"{\"a\":1}\n{\"a\":2}\n".to_vec(), 2)
        );
        again.remove_oldest();
        assert_eq!(again.oldest().unwrap().1, 1);
        // Room is made by evicting the oldest.
        let big = vec![b'x'; 95];
        let mut big_lines = big.clone();
        big_lines.push(b'\n');
        assert_eq!(again.write(&big_lines).unwrap(), 1);
        assert_eq!(again.pending(), 1);
        assert!(again.write(&[b'y'; 200]).is_err());
        again.reject_oldest("HTTP 400: bad");
        assert!(again.is_empty());
        let rejected: Vec<_> = std::fs::read_dir(dir.path().join("out/rejected"))
            .unwrap()
            .collect();
        assert_eq!(rejected.len(), 2, "the batch and its reason");
    }

    #[test]
    fn leftover_tmp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.tmp"), b"half").unwrap();
        let spool = Spool::open(dir.path().to_path_buf(), 100).unwrap();
        assert!(spool.is_empty());
        assert!(!dir.path().join("x.tmp").exists());
    }
}
