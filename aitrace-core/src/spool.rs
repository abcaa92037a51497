//! The disk spool: batches an output could not take, kept as JSON Lines files
//! until it answers again, by this process or the next one.
//!
//! Each output has its own folder under the spool root, and exactly one
//! thread (the delivery thread) owns a [`Spool`] at a time: every write,
//! eviction, replay and deletion goes through it, so nothing else can move a
//! file under it. Files have stable identities ([`FileId`]): a replay that
//! succeeds deletes the file it read, never "whatever is oldest now".
//!
//! A batch is written to a `.tmp` file, synced and renamed to
//! `<micros>-<pid>-<seq>.jsonl`, so a reader never sees half a batch on a
//! filesystem that keeps renames in order. Files found at open are checked
//! (each line a JSON value, the last one ended); a damaged file (a torn write
//! on a filesystem that reorders, a truncated file, bytes that are not JSON)
//! is moved to `corrupt/`, counted and never replayed.
//!
//! Batches the output refused for good go to `rejected/` with a `.reason`
//! file and are not replayed. `rejected/` and `corrupt/` each have their own
//! bound (a quarter of the spool's), their oldest files deleted to make room.
//!
//! One process owns a folder at a time: it holds the lock on `.lock` in it
//! (an advisory lock the system releases when the process ends, however it
//! ends). A process that finds the folder owned (a second replica with the
//! same settings, a restart while the old process still drains) takes a
//! subfolder of its own, `extra-1`, `extra-2`, … (each locked the same way),
//! and says so once on stderr. The owner of the main folder adopts, at open,
//! the batches of every `extra-N` no process owns (one whose process ended),
//! so nothing is stranded there; a process that takes an `extra-N` replays
//! what is in it as its own. Before it is used, a folder is written to once:
//! a folder that is read-only or on a full disk is an error at start, not at
//! the first batch.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{ConfigError, Error, ErrorKind, Result};

/// The most bytes a spool folder holds by default; the oldest files are
/// evicted (and counted as dropped) to make room.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The folder, inside an output's spool folder, of batches refused for good.
pub(crate) const REJECTED_DIR: &str = "rejected";
/// The folder, inside an output's spool folder, of damaged files set aside.
pub(crate) const CORRUPT_DIR: &str = "corrupt";
/// The lock file the owner of a spool folder holds.
pub(crate) const LOCK_FILE: &str = ".lock";
/// The name of the subfolders, `extra-1` and up, that processes take when
/// another owns the folder.
pub(crate) const EXTRA_PREFIX: &str = "extra-";
/// The most `extra-N` subfolders tried before giving up.
const MAX_EXTRA: u32 = 16;
/// The file written and removed at open to see that the folder takes writes.
const WRITE_CHECK: &str = ".write-check";

/// A spool file's identity, stable while the [`Spool`] that made it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileId(u64);

#[derive(Debug)]
struct SpoolFile {
    id: FileId,
    path: PathBuf,
    bytes: u64,
    records: u64,
}

/// What a write did to make room.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Records in older files deleted to make room (now dropped).
    pub(crate) evicted: u64,
}

/// Why a spooled batch cannot be read back.
#[derive(Debug)]
pub(crate) enum Unreadable {
    /// The file is gone (deleted by hand or by another process).
    Gone,
    /// The file no longer holds what was written; it was moved to `corrupt/`.
    Corrupt(String),
}

/// A damaged file found in a spool and moved aside.
#[derive(Debug)]
pub(crate) struct Quarantined {
    pub(crate) path: PathBuf,
    pub(crate) reason: String,
}

/// Files set aside in a subfolder (`rejected/`, `corrupt/`), oldest first,
/// kept within a bound by deleting the oldest.
#[derive(Debug, Default)]
struct SetAside {
    files: VecDeque<(PathBuf, u64)>,
    bytes: u64,
}

impl SetAside {
    /// Lists what an earlier process left in `dir`.
    fn list(dir: &Path) -> Self {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return SetAside::default();
        };
        let mut found: Vec<(PathBuf, u64)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
            .collect();
        found.sort();
        SetAside {
            bytes: found.iter().map(|(_, b)| b).sum(),
            files: found.into(),
        }
    }

    /// Deletes the oldest files (and their `.reason`) until `bytes` more fit
    /// within `bound`.
    fn make_room(&mut self, bytes: u64, bound: u64) {
        while self.bytes + bytes > bound {
            let Some((path, size)) = self.files.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(path.with_extension("reason"));
            self.bytes -= size;
        }
    }

    fn add(&mut self, path: PathBuf, bytes: u64) {
        self.bytes += bytes;
        self.files.push_back((path, bytes));
    }
}

/// Where a spool is when the folder asked for was owned by another process.
#[derive(Debug)]
pub(crate) struct Busy {
    /// The folder asked for.
    pub(crate) asked: PathBuf,
    /// What its lock file says of its owner (a process id), if anything.
    pub(crate) owner: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    /// Held open (and locked) while this spool owns `dir`.
    _lock: File,
    /// Set when `dir` is an `extra-N` subfolder because another process
    /// owns the folder asked for.
    busy: Option<Busy>,
    max_bytes: u64,
    files: VecDeque<SpoolFile>,
    total_bytes: u64,
    rejected: SetAside,
    corrupt: SetAside,
    next_id: u64,
    seq: u64,
    /// Records found at open, left by an earlier process.
    recovered: u64,
    /// Damaged files moved aside since open, not yet reported.
    quarantined: Vec<Quarantined>,
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

/// Takes the lock of the spool folder `dir` (creating both), or `None` when
/// another process holds it.
fn lock_dir(dir: &Path) -> Result<Option<File>, ConfigError> {
    create_private_dir(dir).map_err(|e| {
        ConfigError::io(
            format_args!("cannot create spool folder {}", dir.display()),
            e,
        )
    })?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let cannot = |e| {
        ConfigError::io(
            format_args!("cannot write in spool folder {}", dir.display()),
            e,
        )
    };
    let file = options.open(dir.join(LOCK_FILE)).map_err(cannot)?;
    // Called by its path: std's inherent `File::try_lock` (Rust 1.89) would
    // otherwise be picked where it exists.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {
            // Who owns it, for the message of the next process to come;
            // best effort (a full disk may refuse even this).
            let _ = file.set_len(0);
            let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
            Ok(Some(file))
        }
        Err(fs4::TryLockError::WouldBlock) => Ok(None),
        Err(fs4::TryLockError::Error(e)) => Err(ConfigError::io(
            format_args!("cannot lock spool folder {}", dir.display()),
            e,
        )),
    }
}

/// Takes the first `extra-N` subfolder of `dir` no other process owns.
fn take_extra(dir: &Path) -> Result<(PathBuf, File), ConfigError> {
    for n in 1..=MAX_EXTRA {
        let extra = dir.join(format!("{EXTRA_PREFIX}{n}"));
        if let Some(lock) = lock_dir(&extra)? {
            return Ok((extra, lock));
        }
    }
    Err(ConfigError::io(
        format_args!(
            "spool folder {} and its {MAX_EXTRA} {EXTRA_PREFIX}N subfolders",
            dir.display()
        ),
        std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            "all in use by other processes",
        ),
    ))
}

/// Moves into `dir` (which this process owns) the batches of each of its
/// `extra-N` subfolders that no process owns, so they are replayed.
fn adopt_extras(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let extra = entry.path();
        let name = entry.file_name();
        let is_extra = name.to_str().is_some_and(|n| n.starts_with(EXTRA_PREFIX));
        if !is_extra || !extra.is_dir() {
            continue;
        }
        let Ok(Some(_lock)) = lock_dir(&extra) else {
            continue; // its owner is alive: its batches are its own
        };
        let Ok(files) = std::fs::read_dir(&extra) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("jsonl") => {
                    let target = dir.join(file.file_name());
                    if !target.exists() {
                        let _ = std::fs::rename(&path, target);
                    }
                }
                Some("tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
    }
}

/// Writes (and syncs) a block in `dir`, then removes it: a folder that is
/// read-only or on a full disk fails here.
fn check_writable(dir: &Path) -> Result<(), ConfigError> {
    let path = dir.join(WRITE_CHECK);
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&path)?;
        file.write_all(&[b'\n'; 4096])?;
        file.sync_data()
    };
    let result = write();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| {
        ConfigError::io(
            format_args!("cannot write in spool folder {}", dir.display()),
            e,
        )
    })
}

/// Checks that `bytes` are whole JSON Lines: each line one JSON value, the
/// last one ended by a newline. Returns the line count or what is wrong.
pub(crate) fn check_lines(bytes: &[u8]) -> std::result::Result<u64, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    if !bytes.ends_with(b"\n") {
        return Err("the last line is not ended (a torn or truncated write)".into());
    }
    let mut count = 0;
    for (i, line) in bytes[..bytes.len() - 1].split(|&b| b == b'\n').enumerate() {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            return Err(format!("line {} is not JSON: {e}", i + 1));
        }
        count += 1;
    }
    Ok(count)
}

impl Spool {
    /// Opens (creating) an output's spool folder, taking its lock (or, when
    /// another process holds it, an `extra-N` subfolder's: see
    /// [`busy`](Self::busy)), checks that it takes a write, and lists what an
    /// earlier process left there, oldest first. Leftover `.tmp` files (a
    /// crash mid-write) are removed; damaged files are moved to `corrupt/`
    /// and listed by [`take_quarantined`](Self::take_quarantined).
    pub(crate) fn open(dir: PathBuf, max_bytes: u64) -> Result<Self, ConfigError> {
        let (dir, lock, busy) = match lock_dir(&dir)? {
            Some(lock) => {
                adopt_extras(&dir);
                (dir, lock, None)
            }
            None => {
                let owner = std::fs::read_to_string(dir.join(LOCK_FILE))
                    .ok()
                    .map(|text| text.trim().to_owned())
                    .filter(|text| !text.is_empty());
                let (extra, lock) = take_extra(&dir)?;
                (extra, lock, Some(Busy { asked: dir, owner }))
            }
        };
        check_writable(&dir)?;
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            ConfigError::io(
                format_args!("cannot read spool folder {}", dir.display()),
                e,
            )
        })?;
        let mut spool = Spool {
            rejected: SetAside::list(&dir.join(REJECTED_DIR)),
            corrupt: SetAside::list(&dir.join(CORRUPT_DIR)),
            dir,
            _lock: lock,
            busy,
            max_bytes,
            files: VecDeque::new(),
            total_bytes: 0,
            next_id: 0,
            seq: 0,
            recovered: 0,
            quarantined: Vec::new(),
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("jsonl") if path.is_file() => found.push(path),
                Some("tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
        found.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        for path in found {
            let Ok(bytes) = std::fs::read(&path) else {
                continue; // gone meanwhile, or unreadable: not ours to replay
            };
            match check_lines(&bytes) {
                Ok(records) => {
                    let id = spool.new_id();
                    spool.total_bytes += bytes.len() as u64;
                    spool.recovered += records;
                    spool.files.push_back(SpoolFile {
                        id,
                        path,
                        bytes: bytes.len() as u64,
                        records,
                    });
                }
                Err(reason) => spool.quarantine_path(&path, reason),
            }
        }
        Ok(spool)
    }

    /// Where this spool is when another process owned the folder asked for.
    pub(crate) fn busy(&self) -> Option<&Busy> {
        self.busy.as_ref()
    }

    fn new_id(&mut self) -> FileId {
        self.next_id += 1;
        FileId(self.next_id)
    }

    /// The folder this spool keeps its files in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The most bytes the spool holds.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Records waiting in spool files.
    pub(crate) fn pending(&self) -> u64 {
        self.files.iter().map(|f| f.records).sum()
    }

    /// Records found at open, left by an earlier process.
    pub(crate) fn recovered(&self) -> u64 {
        self.recovered
    }

    /// Bytes in `rejected/`.
    #[cfg(test)]
    pub(crate) fn rejected_bytes(&self) -> u64 {
        self.rejected.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The damaged files moved aside since the last call.
    pub(crate) fn take_quarantined(&mut self) -> Vec<Quarantined> {
        std::mem::take(&mut self.quarantined)
    }

    fn next_name(&mut self, ext: &str) -> String {
        self.seq += 1;
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        format!(
            "{micros:020}-{:010}-{:06}.{ext}",
            std::process::id(),
            self.seq
        )
    }

    /// Writes a batch of JSON Lines as a new file, newest. To make room the
    /// oldest files are deleted, except `keep` (a file being replayed), and
    /// their records returned as evicted. A batch larger than the whole
    /// spool is refused, and so is one that does not fit beside `keep`.
    pub(crate) fn write(&mut self, lines: &[u8], keep: Option<FileId>) -> Result<Written> {
        let bytes = lines.len() as u64;
        let kept = keep
            .and_then(|id| self.files.iter().find(|f| f.id == id))
            .map_or(0, |f| f.bytes);
        if bytes + kept > self.max_bytes {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "a batch of {bytes} bytes does not fit in the spool ({} bytes)",
                    self.max_bytes
                ),
            ));
        }
        let mut written = Written::default();
        while self.total_bytes + bytes > self.max_bytes {
            let Some(i) = self.files.iter().position(|f| Some(f.id) != keep) else {
                break;
            };
            if let Some(oldest) = self.files.remove(i) {
                let _ = std::fs::remove_file(&oldest.path);
                self.total_bytes -= oldest.bytes;
                written.evicted += oldest.records;
            }
        }
        let name = self.next_name("jsonl");
        let path = self.dir.join(name);
        write_atomically(&path, lines)?;
        let id = self.new_id();
        self.total_bytes += bytes;
        self.files.push_back(SpoolFile {
            id,
            path,
            bytes,
            records: count_lines(lines),
        });
        Ok(written)
    }

    /// The oldest file, to replay next, and its record count.
    pub(crate) fn oldest(&self) -> Option<(FileId, u64)> {
        self.files.front().map(|f| (f.id, f.records))
    }

    /// Reads a file back for replay. A file that is gone is forgotten; one
    /// that no longer holds its batch is moved to `corrupt/`. Either way its
    /// records are no longer pending (the caller counts them).
    pub(crate) fn read(&mut self, id: FileId) -> std::result::Result<Vec<u8>, Unreadable> {
        let Some(i) = self.files.iter().position(|f| f.id == id) else {
            return Err(Unreadable::Gone);
        };
        let (path, records) = (self.files[i].path.clone(), self.files[i].records);
        let problem = match std::fs::read(&path) {
            Ok(bytes) => match check_lines(&bytes) {
                Ok(n) if n == records => return Ok(bytes),
                Ok(n) => format!("it holds {n} records where {records} were written"),
                Err(reason) => reason,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget(i);
                return Err(Unreadable::Gone);
            }
            Err(e) => format!("cannot read it: {e}"),
        };
        self.forget(i);
        self.quarantine_path(&path, problem.clone());
        Err(Unreadable::Corrupt(problem))
    }

    fn forget(&mut self, index: usize) -> Option<SpoolFile> {
        let file = self.files.remove(index)?;
        self.total_bytes -= file.bytes;
        Some(file)
    }

    /// Deletes a file once its batch was delivered; returns its record count.
    pub(crate) fn remove(&mut self, id: FileId) -> Option<u64> {
        let i = self.files.iter().position(|f| f.id == id)?;
        let file = self.forget(i)?;
        let _ = std::fs::remove_file(&file.path);
        Some(file.records)
    }

    /// Replaces a file by two smaller ones holding the same lines (a server
    /// that answered 413), in its place in the replay order.
    pub(crate) fn split(&mut self, id: FileId, first: &[u8], second: &[u8]) -> Result<()> {
        let Some(i) = self.files.iter().position(|f| f.id == id) else {
            return Ok(());
        };
        let stem = self.files[i]
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let a = self.dir.join(format!("{stem}-a.jsonl"));
        let b = self.dir.join(format!("{stem}-b.jsonl"));
        write_atomically(&a, first)?;
        if let Err(err) = write_atomically(&b, second) {
            let _ = std::fs::remove_file(&a);
            return Err(err);
        }
        let old = self.forget(i).map(|f| f.path);
        let (ida, idb) = (self.new_id(), self.new_id());
        for (offset, (id, path, lines)) in
            [(ida, a, first), (idb, b, second)].into_iter().enumerate()
        {
            self.total_bytes += lines.len() as u64;
            self.files.insert(
                i + offset,
                SpoolFile {
                    id,
                    path,
                    bytes: lines.len() as u64,
                    records: count_lines(lines),
                },
            );
        }
        if let Some(old) = old {
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    }

    /// Moves a file the output refused for good to `rejected/`, with the
    /// reason; returns its record count.
    pub(crate) fn reject(&mut self, id: FileId, reason: &str) -> Option<u64> {
        let i = self.files.iter().position(|f| f.id == id)?;
        let file = self.forget(i)?;
        if let Ok(lines) = std::fs::read(&file.path) {
            let _ = self.write_rejected(&lines, reason);
        }
        let _ = std::fs::remove_file(&file.path);
        Some(file.records)
    }

    /// Keeps a batch the output refused for good, with the reason, for a
    /// person to look at; it is not replayed. The oldest rejected batches
    /// are deleted to keep `rejected/` within a quarter of the spool's bound;
    /// a batch larger than that is not kept.
    pub(crate) fn write_rejected(&mut self, lines: &[u8], reason: &str) -> Result<PathBuf> {
        let bound = self.max_bytes / 4;
        let bytes = lines.len() as u64;
        if bytes > bound {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "a refused batch of {bytes} bytes is larger than rejected/ may hold ({bound} bytes)"
                ),
            ));
        }
        self.rejected.make_room(bytes, bound);
        let dir = self.dir.join(REJECTED_DIR);
        create_private_dir(&dir)
            .map_err(|e| Error::io(format_args!("cannot create {}", dir.display()), e))?;
        let name = self.next_name("jsonl");
        let path = dir.join(name);
        write_atomically(&path, lines)?;
        let _ = std::fs::write(path.with_extension("reason"), reason);
        self.rejected.add(path.clone(), bytes);
        Ok(path)
    }

    /// Moves a damaged file to `corrupt/` (or deletes it if it cannot be
    /// moved, or is larger than `corrupt/` may hold). The oldest files there
    /// are deleted to keep it within a quarter of the spool's bound, as
    /// `rejected/` is.
    fn quarantine_path(&mut self, path: &Path, reason: String) {
        let dir = self.dir.join(CORRUPT_DIR);
        let target = dir.join(path.file_name().unwrap_or_default());
        let bound = self.max_bytes / 4;
        let bytes = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
        if bytes <= bound {
            self.corrupt.make_room(bytes, bound);
        }
        let moved = bytes <= bound
            && create_private_dir(&dir).is_ok()
            && std::fs::rename(path, &target).is_ok();
        if moved {
            let _ = std::fs::write(target.with_extension("reason"), &reason);
            self.corrupt.add(target.clone(), bytes);
        } else {
            let _ = std::fs::remove_file(path);
        }
        self.quarantined.push(Quarantined {
            path: if moved { target } else { path.to_owned() },
            reason,
        });
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    aitrace_model::fs::replace_private(path, &path.with_extension("tmp"), bytes).map_err(|e| {
        Error::io(
            format_args!("cannot write spool file {}", path.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests;
