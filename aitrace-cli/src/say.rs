//! The command's own output: data on stdout, diagnostics on stderr.
//! `println!` and `eprintln!` panic when the write fails (a reader that went
//! away, a full disk): these do not.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Writes a line on stderr, like `eprintln!`; a line that cannot be
/// written is lost, as there is nowhere left to say so.
macro_rules! diag {
    ($($arg:tt)*) => {
        $crate::say::diagnostic(format_args!($($arg)*))
    };
}
pub(crate) use diag;

/// See [`diag`].
pub(crate) fn diagnostic(args: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{args}");
}

/// Skipped lines named one by one on stderr; the rest are only counted
/// (a broken file of 100,000 lines is not 100,000 lines of diagnostics).
const BAD_LINES_NAMED: usize = 20;

static BAD_LINES: AtomicUsize = AtomicUsize::new(0);

/// A line skipped as bad: named on stderr for the first
/// [`BAD_LINES_NAMED`] of the command, then one line says the rest are not.
pub(crate) fn bad_line(args: fmt::Arguments<'_>) {
    match BAD_LINES.fetch_add(1, Ordering::Relaxed) {
        n if n < BAD_LINES_NAMED => diagnostic(args),
        BAD_LINES_NAMED => diagnostic(format_args!(
            "aitrace: more lines skipped; only the first {BAD_LINES_NAMED} are named"
        )),
        _ => {}
    }
}

/// A write to stdout failed. A reader that went away (`| head`) wants no
/// more: the command ends quietly, with `broken_pipe_exit` (0 when what it
/// printed was all it had to say, 1 when printing meant a problem was
/// found). Anything else is an error the command reports.
pub(crate) fn stdout_error(e: io::Error, broken_pipe_exit: i32) -> String {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(broken_pipe_exit);
    }
    format!("cannot write: {e}")
}
