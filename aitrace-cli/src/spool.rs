//! `aitrace spool`: what waits in a spool folder, and replaying it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::say;
use crate::send::{Sender, Summary};

const REJECTED: &str = "rejected";
const CORRUPT: &str = "corrupt";
/// The subfolders a process spools to while another holds the output folder.
const EXTRA_PREFIX: &str = "extra-";

/// The `.jsonl` files directly in `dir`, oldest name first.
fn batches(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The output folders of a spool root: its subfolders, or the folder itself
/// when it holds batches (an output folder given directly); after each, the
/// `extra-N` subfolders a second process spooled to while another held it.
pub(crate) fn output_folders(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut folders = Vec::new();
    if !batches(root).is_empty() || root.join(REJECTED).is_dir() || root.join(CORRUPT).is_dir() {
        folders.push(root.to_path_buf());
        folders.extend(extras(root));
    }
    for folder in subfolders(root)? {
        if !is_extra(&folder) {
            folders.push(folder.clone());
            folders.extend(extras(&folder));
        }
    }
    Ok(folders)
}

/// The subfolders of `dir` but `rejected/` and `corrupt/`, by name.
fn subfolders(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut folders: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name != REJECTED && name != CORRUPT
        })
        .collect();
    folders.sort();
    Ok(folders)
}

fn is_extra(folder: &Path) -> bool {
    folder
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(EXTRA_PREFIX))
}

/// An output folder's `extra-N` subfolders.
fn extras(output: &Path) -> Vec<PathBuf> {
    subfolders(output)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| is_extra(f))
        .collect()
}

/// When a batch was spooled: the micros its name starts with, else its
/// mtime; an error says why neither can be shown.
fn written_at(path: &Path) -> Result<SystemTime, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let micros: Option<u64> = name.split('-').next().and_then(|m| m.parse().ok());
    match micros {
        Some(us) if us > 0 => UNIX_EPOCH
            .checked_add(Duration::from_micros(us))
            .filter(|&t| showable(t))
            .ok_or_else(|| format!("the time in its name ({us} µs) is past the year 9999")),
        _ => {
            let mtime = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map_err(|e| format!("no modification time: {e}"))?;
            if showable(mtime) {
                Ok(mtime)
            } else {
                Err("its modification time is before 1970 or past 9999".to_owned())
            }
        }
    }
}

/// Whether RFC 3339 can show `time` (humantime panics outside 1970..=9999).
fn showable(time: SystemTime) -> bool {
    const YEAR_10000: Duration = Duration::from_secs(253_402_300_800);
    time.duration_since(UNIX_EPOCH)
        .is_ok_and(|since| since < YEAR_10000)
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| {
            b.split(|&c| c == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count()
        })
        .unwrap_or(0)
}

/// Prints each output folder's state on stdout.
pub(crate) fn list(root: &Path) -> Result<(), String> {
    let folders = output_folders(root)?;
    let mut out = std::io::stdout().lock();
    write_list(&mut out, root, folders)
        .and_then(|()| out.flush())
        .map_err(|e| say::stdout_error(e, 0))
}

fn write_list(out: &mut impl Write, root: &Path, folders: Vec<PathBuf>) -> std::io::Result<()> {
    if folders.is_empty() {
        writeln!(out, "{}: no output folders", root.display())?;
    }
    for folder in folders {
        let pending = batches(&folder);
        let records: usize = pending.iter().map(|p| count_lines(p)).sum();
        let bytes: u64 = pending
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        writeln!(out, "{}", folder.display())?;
        write!(
            out,
            "  pending: {} batches, {records} records, {bytes} bytes",
            pending.len()
        )?;
        let (times, unreadable): (Vec<_>, Vec<_>) = pending
            .iter()
            .map(|p| (p, written_at(p)))
            .partition(|(_, time)| time.is_ok());
        match times.iter().filter_map(|(_, t)| t.as_ref().ok()).min() {
            Some(&oldest) => writeln!(
                out,
                ", oldest {}",
                humantime::format_rfc3339_seconds(oldest)
            )?,
            None => writeln!(out)?,
        }
        for (batch, time) in unreadable {
            if let Err(why) = time {
                writeln!(
                    out,
                    "    {}: time unknown: {why}",
                    batch.file_name().unwrap_or_default().to_string_lossy()
                )?;
            }
        }
        let rejected = batches(&folder.join(REJECTED));
        writeln!(out, "  rejected: {} batches", rejected.len())?;
        for batch in &rejected {
            let reason = std::fs::read_to_string(batch.with_extension("reason"))
                .map(|r| r.trim().replace('\n', " "))
                .unwrap_or_else(|_| "(no reason recorded)".to_owned());
            writeln!(
                out,
                "    {} ({} records): {reason}",
                batch.file_name().unwrap_or_default().to_string_lossy(),
                count_lines(batch)
            )?;
        }
        let corrupt = batches(&folder.join(CORRUPT)).len();
        writeln!(out, "  corrupt: {corrupt} files")?;
    }
    Ok(())
}

/// The lock file the library holds in each spool output folder while a
/// logger spools there (`aitrace-core`'s `spool::LOCK_FILE`).
const LOCK_FILE: &str = ".lock";

/// Takes the lock of the output folder `folder` as the library does, or
/// says on stderr why the folder is skipped (another process holds it, or
/// it cannot be locked) and returns `None`.
fn lock_folder(folder: &Path) -> Option<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let path = folder.join(LOCK_FILE);
    let file = match options.open(&path) {
        Ok(file) => file,
        Err(e) => {
            say::diag!(
                "aitrace: skipped {}: cannot open {}: {e}",
                folder.display(),
                path.display()
            );
            return None;
        }
    };
    // Called by its path: std's inherent `File::try_lock` (Rust 1.89) would
    // otherwise be picked where it exists.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Some(file),
        Err(fs4::TryLockError::WouldBlock) => {
            let owner = std::fs::read_to_string(&path)
                .ok()
                .map(|pid| pid.trim().to_owned())
                .filter(|pid| !pid.is_empty())
                .map_or_else(String::new, |pid| format!(" (process {pid})"));
            say::diag!(
                "aitrace: skipped {}: another process{owner} is spooling there; \
                 replay it once that process has stopped",
                folder.display()
            );
            None
        }
        Err(fs4::TryLockError::Error(e)) => {
            say::diag!("aitrace: skipped {}: cannot lock it: {e}", folder.display());
            None
        }
    }
}

/// Delivers every pending batch of every output folder no other process
/// holds (each is locked as the library locks it, for the whole replay,
/// so that a live logger's folder is neither sent twice nor deleted under
/// it); each file is deleted once all its records were acknowledged.
pub(crate) fn replay(root: &Path, sender: &Sender, summary: &mut Summary) -> Result<(), String> {
    let mut files = Vec::new();
    let mut locks = Vec::new();
    for folder in output_folders(root)? {
        let Some(lock) = lock_folder(&folder) else {
            continue;
        };
        locks.push(lock);
        files.extend(
            batches(&folder)
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned()),
        );
    }
    let result = sender.send_files(&files, summary);
    drop(locks);
    result
}
