//! Helpers shared by the delivery tests (each test file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use aitrace_core::{BufferedLogger, Output};

/// An HTTP output with a short connect timeout and this request timeout.
pub(crate) fn http(url: &str, request_timeout: Duration) -> Output {
    Output::http_builder(url)
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(request_timeout)
        .build()
        .unwrap()
}

/// `n` info records `work` with a field `i`.
pub(crate) fn emit(log: &BufferedLogger, n: usize) {
    for i in 0..n {
        log.info("work").field("i", i).emit();
    }
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// The per-output folders under a spool root, and the `extra-N` folders
/// in them (where a second owner of an output's folder spools: the same
/// output added twice).
pub(crate) fn output_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = subfolders(root);
    let extras = dirs.iter().flat_map(|d| subfolders(d)).filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("extra-"))
    });
    dirs.extend(extras.collect::<Vec<_>>());
    dirs
}

/// JSON Lines in the spool files below `root` (not `rejected/` or `corrupt/`).
pub(crate) fn spooled_lines(root: &Path) -> usize {
    output_dirs(root)
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum()
}
