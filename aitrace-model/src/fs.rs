//! Files written whole: a reader sees the old file or the new one.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `tmp` (created `0600`, truncated), syncs it and
/// renames it over `path`: a reader sees the old file or the new one, never
/// half of one, and the new one survives a crash once this returns. `tmp`
/// is removed when a step fails. The HTML report and the spool write
/// through it.
pub fn replace_private(path: &Path, tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let write = || -> std::io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(tmp);
    })
}
