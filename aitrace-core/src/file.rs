//! The JSON Lines file output: append-only, folders created, owner-only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};

/// The placeholder replaced by the start time in a file target.
pub const TIMESTAMP_PLACEHOLDER: &str = "<YYYYMMDD_HHMMSS>";

/// Expands a file target as WIRE_FORMAT.md §4 says: a leading `~` becomes the
/// home folder and `<YYYYMMDD_HHMMSS>` the given time, in UTC.
pub(crate) fn expand_path(target: &str, start: SystemTime) -> Result<PathBuf> {
    let mut text = target.to_owned();
    if text.contains(TIMESTAMP_PLACEHOLDER) {
        text = text.replace(TIMESTAMP_PLACEHOLDER, &compact_utc(start));
    }
    if text == "~" || text.starts_with("~/") {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                Error::new(
                    crate::ErrorKind::InvalidTarget,
                    format!("cannot expand `~` in {target:?}: HOME is not set"),
                )
            })?;
        let rest = text.trim_start_matches('~').trim_start_matches('/');
        let mut path = PathBuf::from(home);
        if !rest.is_empty() {
            path.push(rest);
        }
        return Ok(path);
    }
    Ok(PathBuf::from(text))
}

/// `20261127_101502` for a time, in UTC.
pub(crate) fn compact_utc(time: SystemTime) -> String {
    let iso = humantime::format_rfc3339_seconds(time).to_string(); // 2026-11-27T10:15:02Z
    let digits: String = iso.chars().filter(char::is_ascii_digit).collect();
    format!("{}_{}", &digits[..8], &digits[8..14])
}

/// Appends `bytes` to `path`, creating the folders above it and, when the file
/// is new, creating it readable and writable by its owner only.
pub(crate) fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format_args!("cannot create {}", parent.display()), e))?;
    }
    let mut file = open_append(path)
        .map_err(|e| Error::io(format_args!("cannot open {}", path.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|e| Error::io(format_args!("cannot write {}", path.display()), e))
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamp_placeholder_and_home() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_774_502);
        assert_eq!(compact_utc(t), "20261127_101502");
        let p = expand_path("logs/run_<YYYYMMDD_HHMMSS>.jsonl", t).unwrap();
        assert_eq!(p, PathBuf::from("logs/run_20261127_101502.jsonl"));
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            expand_path("~/a.jsonl", t).unwrap(),
            Path::new(&home).join("a.jsonl")
        );
        assert_eq!(expand_path("a~b", t).unwrap(), PathBuf::from("a~b"));
    }
}
