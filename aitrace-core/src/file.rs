//! The JSON Lines file output: append-only, folders created, owner-only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{ConfigError, Error, Result};

use crate::wire::TIMESTAMP_PLACEHOLDER;

/// Expands a file target as WIRE_FORMAT.md §4 says: a leading `~` becomes the
/// home folder and `<YYYYMMDD_HHMMSS>` the given time, in UTC.
pub(crate) fn expand_path(target: &str, start: SystemTime) -> Result<PathBuf, ConfigError> {
    let mut text = target.to_owned();
    if text.contains(TIMESTAMP_PLACEHOLDER) {
        text = text.replace(TIMESTAMP_PLACEHOLDER, &compact_utc(start));
    }
    if text == "~" || text.starts_with("~/") {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid_target(format!(
                    "cannot expand `~` in {target:?}: HOME is not set"
                ))
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

/// Whether a target string is a `file:` URI (the scheme matched without
/// regard to case, as RFC 3986 says).
pub(crate) fn is_file_uri(target: &str) -> bool {
    target
        .get(..5)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("file:"))
}

/// The local path a `file:` URI names (RFC 8089): `file:///abs/path`,
/// `file://localhost/abs/path` or `file:/abs/path`, with percent-escapes
/// (`%20`) decoded. After `file://`, a path that does not begin with `/` or
/// `localhost/` is relative to the working folder, as users write it
/// (`file://logs.jsonl` is `logs.jsonl`). An empty or otherwise relative
/// path, a query or fragment, a malformed escape or one that decodes to
/// invalid UTF-8 or NUL is an `InvalidTarget` error.
pub(crate) fn path_from_file_uri(uri: &str) -> Result<String, ConfigError> {
    let invalid =
        |why: &str| ConfigError::invalid_target(format!("{uri:?} is not a local file URI: {why}"));
    let rest = uri.get(5..).unwrap_or_default();
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let localhost = authority_and_path
                .get(..10)
                .is_some_and(|host| host.eq_ignore_ascii_case("localhost/"));
            if localhost {
                &authority_and_path[9..]
            } else if authority_and_path.is_empty() {
                return Err(invalid("the path is empty"));
            } else {
                // `/abs`, or relative to the working folder.
                authority_and_path
            }
        }
        None => rest,
    };
    if !path.starts_with('/') && !rest.starts_with("//") {
        return Err(invalid(
            "write file:///abs/path, or file://rel/path for a path relative to the working folder",
        ));
    }
    if path.contains(['?', '#']) {
        return Err(invalid(
            "a file URI takes no query or fragment (write `?` as %3F, `#` as %23)",
        ));
    }
    let path = percent_decode(path).map_err(|why| invalid(&why))?;
    // `file:///C:/logs/app.jsonl` names `C:/logs/app.jsonl` on Windows.
    #[cfg(windows)]
    let path = {
        let b = path.as_bytes();
        if b.len() >= 3 && b[0] == b'/' && b[1].is_ascii_alphabetic() && b[2] == b':' {
            path[1..].to_owned()
        } else {
            path
        }
    };
    Ok(path)
}

/// Decodes `%XX` escapes into UTF-8 text.
fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let byte = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .ok_or_else(|| {
                format!(
                    "malformed percent-escape at byte {i} (`%` must be followed by two hex digits)"
                )
            })?;
        if byte == 0 {
            return Err(format!("`%00` at byte {i}: a path cannot hold NUL"));
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| "the percent-escapes do not decode to UTF-8".to_owned())
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
    append_whole(&mut file, bytes)
        .map_err(|e| Error::io(format_args!("cannot write {}", path.display()), e))
}

/// A file that can be appended to and cut back: what [`append_whole`] needs.
trait Appendable: Write {
    fn len(&self) -> std::io::Result<u64>;
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

impl Appendable for File {
    fn len(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Appends all of `bytes` or nothing: a write that fails part way (a full
/// disk) is cut back to the length before it, so the file never holds a
/// partial line, and a retry writes each record once.
///
/// The cut assumes this append is the only writer while it runs: it is made
/// only if the file's length is still exactly its length before plus the
/// bytes this append wrote. If another writer (another process, or another
/// output of this process on the same path) appended in between, the file
/// is left as it is, so their lines are not cut, and a line on stderr says
/// that a partial line may remain.
fn append_whole(file: &mut impl Appendable, bytes: &[u8]) -> std::io::Result<()> {
    let before = file.len()?;
    let mut written: u64 = 0;
    let mut rest = bytes;
    let result = loop {
        if rest.is_empty() {
            break file.flush();
        }
        match file.write(rest) {
            Ok(0) => {
                break Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                ));
            }
            Ok(n) => {
                written += n as u64;
                rest = &rest[n..];
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let Err(err) = result else {
        return Ok(());
    };
    if written == 0 {
        return Err(err);
    }
    match file.len() {
        Ok(now) if now == before + written => {}
        Ok(_) => {
            eprintln!(
                "aitrace: a write failed part way ({err}) while another writer appended to the \
                 same file: it was not cut back, and a partial line may remain"
            );
            return Err(std::io::Error::new(
                err.kind(),
                format!(
                    "{err}; another writer appended meanwhile, so the partial write was not cut back"
                ),
            ));
        }
        Err(cut) => {
            return Err(std::io::Error::new(
                err.kind(),
                format!("{err}; and the partial write could not be cut back ({cut})"),
            ));
        }
    }
    match file.truncate(before) {
        Ok(()) => Err(err),
        Err(cut) => Err(std::io::Error::new(
            err.kind(),
            format!("{err}; and the partial write could not be cut back ({cut})"),
        )),
    }
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

/// A JSON Lines file output: each batch appended whole.
#[derive(Debug)]
pub(crate) struct FileOutput {
    path: PathBuf,
}

impl FileOutput {
    pub(crate) fn new(path: PathBuf) -> Self {
        FileOutput { path }
    }
}

impl crate::export::Export for FileOutput {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn export(&self, batch: &crate::export::Batch<'_>) -> Result<crate::export::Accepted> {
        append(&self.path, batch.lines())?;
        Ok(crate::export::Accepted::all())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// A file on a disk that fills up after `room` more bytes.
    struct SmallDisk {
        bytes: Vec<u8>,
        room: usize,
        cut_fails: bool,
        /// What another writer appends after this one's first write.
        other: Option<Vec<u8>>,
    }

    impl Write for SmallDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.room).min(7); // short writes, as a kernel may do
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "no space left on device",
                ));
            }
            self.bytes.extend_from_slice(&buf[..n]);
            self.room -= n;
            if let Some(other) = self.other.take() {
                self.bytes.extend_from_slice(&other);
            }
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Appendable for SmallDisk {
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.bytes.len() as u64)
        }

        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            if self.cut_fails {
                return Err(std::io::Error::other("read-only now"));
            }
            self.bytes.truncate(len as usize);
            Ok(())
        }
    }

    /// Issue 18, item 17: an append that fails part way leaves the file as
    /// it was; one that fits is written whole.
    #[test]
    fn a_failed_append_is_cut_back_to_the_length_before_it() {
        let line = b"{\"event\":\"work\"}\n".repeat(10);
        let mut disk = SmallDisk {
            bytes: b"{\"event\":\"before\"}\n".to_vec(),
            room: 100,
            cut_fails: false,
            other: None,
        };
        let before = disk.bytes.clone();
        let err = append_whole(&mut disk, &line).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
        assert_eq!(
            String::from_utf8_lossy(&disk.bytes),
            String::from_utf8_lossy(&before),
            "no partial line is left"
        );

        disk.room = line.len();
        append_whole(&mut disk, &line).unwrap();
        assert_eq!(disk.bytes.len(), before.len() + line.len());

        // When even the cut fails, the error says so.
        disk.room = 3;
        disk.cut_fails = true;
        let err = append_whole(&mut disk, &line).unwrap_err();
        assert!(err.to_string().contains("could not be cut back"), "{err}");
    }

    /// Found in review: a failed append is cut back only while this append
    /// was the only writer; another writer's line in between is kept.
    #[test]
    fn a_failed_append_is_not_cut_back_over_another_writers_lines() {
        let line = b"{\"event\":\"work\"}\n".repeat(10);
        let other = b"{\"event\":\"other process\"}\n".to_vec();
        let mut disk = SmallDisk {
            bytes: b"{\"event\":\"before\"}\n".to_vec(),
            room: 30,
            cut_fails: false,
            other: Some(other.clone()),
        };
        let err = append_whole(&mut disk, &line).unwrap_err();
        assert!(err.to_string().contains("not cut back"), "{err}");
        let text = String::from_utf8_lossy(&disk.bytes);
        assert!(
            text.contains("other process"),
            "another writer's line is kept: {text}"
        );

        // Alone, the same failure is cut back to the length before it.
        let mut disk = SmallDisk {
            bytes: b"{\"event\":\"before\"}\n".to_vec(),
            room: 30,
            cut_fails: false,
            other: None,
        };
        append_whole(&mut disk, &line).unwrap_err();
        assert_eq!(disk.bytes, b"{\"event\":\"before\"}\n");
    }

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

    fn invalid_target(target: &str) -> String {
        match crate::Output::from_target(target) {
            Ok(output) => panic!("{target:?} gave {output}"),
            Err(err) => {
                assert_eq!(err.kind(), crate::ErrorKind::InvalidTarget, "{err}");
                err.to_string()
            }
        }
    }

    #[test]
    fn file_uris_name_local_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap();
        let cases = [
            (format!("file://{base}/a.jsonl"), dir.path().join("a.jsonl")),
            (
                format!("FILE://LocalHost{base}/my%20logs/b%C3%A9.jsonl"),
                dir.path().join("my logs").join("b\u{e9}.jsonl"),
            ),
            (format!("file:{base}/c.jsonl"), dir.path().join("c.jsonl")),
            (
                format!("file://{base}/run_<YYYYMMDD_HHMMSS>.jsonl"),
                dir.path().join("run_20261127_101502.jsonl"),
            ),
        ];
        let start = UNIX_EPOCH + Duration::from_secs(1_795_774_502);
        for (uri, path) in cases {
            let output = crate::Output::from_target_at(&uri, start).unwrap();
            assert_eq!(output.path(), Some(path.as_path()), "{uri}");
        }

        // And records land there, not under a folder named `file:`.
        let uri = format!("file://{base}/my%20logs/app.jsonl");
        let log = crate::BufferedLogger::builder()
            .target(&uri)
            .unwrap()
            .build();
        log.info("written").emit();
        log.flush().unwrap();
        let text = std::fs::read_to_string(dir.path().join("my logs/app.jsonl")).unwrap();
        assert!(text.contains(r#""event":"written""#), "{text}");
        assert!(!Path::new("file:").exists());
    }

    #[test]
    fn bad_escapes_are_invalid_targets() {
        // Not another host: a path relative to the working folder.
        let output = crate::Output::from_target("file://otherhost/var/log/app.jsonl").unwrap();
        assert_eq!(
            output.path(),
            Some(Path::new("otherhost/var/log/app.jsonl"))
        );
        for bad in [
            "file:///var/log/a%2.jsonl",
            "file:///var/log/a%zz.jsonl",
            "file:///var/log/a.jsonl%",
            "file:///var/log/%FF.jsonl",
            "file:///var/log/a%00b",
        ] {
            assert!(invalid_target(bad).contains(bad), "{bad}");
        }
        for bad in [
            "file://",
            "file:",
            "file:relative/a.jsonl",
            "file:///a?b=1",
            "file:///a#b",
        ] {
            invalid_target(bad);
        }
    }

    #[test]
    fn plain_paths_are_unchanged() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_774_502);
        for (target, path) in [
            ("logs/a b%20.jsonl", PathBuf::from("logs/a b%20.jsonl")),
            ("./file.jsonl", PathBuf::from("./file.jsonl")),
            ("/var/log/app.jsonl", PathBuf::from("/var/log/app.jsonl")),
            ("filez:x", PathBuf::from("filez:x")),
            ("x_<YYYYMMDD_HHMMSS>", PathBuf::from("x_20261127_101502")),
        ] {
            let output = crate::Output::from_target_at(target, t).unwrap();
            assert_eq!(output.path(), Some(path.as_path()), "{target}");
        }
    }
}
