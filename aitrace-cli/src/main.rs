//! `aitrace`: view, report, resend and check aitrace records.
//!
//! ```text
//! aitrace view trace.jsonl              # trace trees in the terminal
//! aitrace report trace.jsonl -o r.html  # one self-contained HTML report
//! aitrace send unsent.jsonl --to http://localhost:8000/api/ingest
//! aitrace spool /var/spool/my-service   # what waits, what was refused
//! aitrace validate trace.jsonl          # problems with their line numbers
//! ```
//!
//! Data goes to stdout, diagnostics to stderr; exit 0 on success, 1 when a
//! record was not delivered or a problem was found, 2 on a usage error.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod input;
mod model;
mod say;
mod send;
mod spool;
mod validate;
mod view;

/// View, report, resend and check aitrace records (JSON Lines in the aitrace wire format).
#[derive(Debug, Parser)]
#[command(name = "aitrace", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show records as trace trees in the terminal.
    ///
    /// One tree per trace: spans (NAME.start/NAME.end sharing a span_id) with
    /// their durations, records indented under their span, errors with their
    /// message. Reads JSON Lines (namespaced, compat or flat layout) or a JSON
    /// array; bad lines are reported on stderr with their number and skipped.
    /// Several files are read as one: two services' files show their shared
    /// traces as one tree.
    #[command(after_help = "Examples:\n  \
        aitrace view trace.jsonl\n  \
        aitrace view service_a.jsonl service_b.jsonl\n  \
        cargo run --example checkout | aitrace view --level warning\n  \
        aitrace view --follow service.jsonl --grep order_id")]
    View {
        /// JSON Lines files or JSON arrays, `-` for stdin (the default).
        #[arg(default_value = "-")]
        files: Vec<String>,
        /// Keep reading as the file grows (like `tail -f`; one file only); Ctrl-C stops.
        #[arg(short, long)]
        follow: bool,
        /// Follow, and stop after this many seconds (implies --follow).
        #[arg(long, value_name = "SECONDS")]
        follow_for: Option<f64>,
        /// Show records at this level and above (trace, debug, info, warning, error).
        #[arg(short, long, value_parser = parse_level)]
        level: Option<usize>,
        /// Show only this trace (a prefix of its id is enough).
        #[arg(short, long, value_name = "ID")]
        trace: Option<String>,
        /// Show only records whose JSON contains this text.
        #[arg(short, long, value_name = "TEXT")]
        grep: Option<String>,
    },
    /// Write one self-contained HTML report (no network) of records.
    ///
    /// The report lists traces (name, start, duration, record count, error),
    /// draws each as a collapsible tree and a timeline, filters by level and
    /// text, and shows every record's fields on click.
    #[command(after_help = "Example:\n  aitrace report trace.jsonl older.jsonl -o report.html")]
    Report {
        /// JSON Lines files or JSON arrays, `-` for stdin.
        #[arg(required = true)]
        files: Vec<String>,
        /// The HTML file to write, `-` for stdout.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Resend JSON Lines files (fallback files, spool batches) to a target.
    ///
    /// Records go through the library's outputs in batches, each retried on
    /// transient failures. A summary goes to stderr; exit 1 if any record
    /// was not delivered.
    #[command(after_help = "Examples:\n  \
        aitrace send /tmp/aitrace-unsent-*.jsonl --to http://localhost:8000/api/ingest --delete-after\n  \
        aitrace send old.jsonl --to report.html")]
    Send {
        /// JSON Lines files or JSON arrays, `-` for stdin.
        #[arg(required = true)]
        files: Vec<String>,
        /// Where to: an http(s) URL, a file path, `-` for stdout, `*.html` for a report.
        #[arg(long, value_name = "TARGET")]
        to: String,
        #[command(flatten)]
        delivery: DeliveryArgs,
        /// Delete each file whose every record was acknowledged.
        #[arg(long)]
        delete_after: bool,
    },
    /// Show what waits in a spool folder, or deliver it now.
    ///
    /// Per output folder: pending batches, records, bytes and the oldest;
    /// batches refused for good (rejected/) with their reasons; damaged files
    /// set aside (corrupt/). A replay skips, and names, an output folder a
    /// live process holds.
    #[command(after_help = "Examples:\n  \
        aitrace spool /var/spool/my-service\n  \
        aitrace spool /var/spool/my-service --replay --to http://localhost:8000/api/ingest")]
    Spool {
        /// The spool folder (`spool_dir`), or one output folder in it.
        dir: PathBuf,
        /// Deliver the pending batches now; each is deleted once acknowledged.
        #[arg(long, requires = "to")]
        replay: bool,
        /// Where to replay to.
        #[arg(long, value_name = "TARGET", requires = "replay")]
        to: Option<String>,
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// Check records against the wire format; each problem with its line.
    #[command(after_help = "Example:\n  aitrace validate trace.jsonl && echo valid")]
    Validate {
        /// JSON Lines files or JSON arrays, `-` for stdin.
        #[arg(required = true)]
        files: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct DeliveryArgs {
    /// Records per batch.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Attempts per batch, the first included.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: u32,
}

fn parse_level(text: &str) -> Result<usize, String> {
    let level: aitrace_core::Level = text.parse().map_err(|e| format!("{e}"))?;
    Ok(model::level_rank(level.as_str()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            say::diag!("aitrace: error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Runs a command; `Ok(false)` when it finished but something was not
/// delivered or not valid.
fn run(command: Command) -> Result<bool, String> {
    match command {
        Command::View {
            files,
            follow,
            follow_for,
            level,
            trace,
            grep,
        } => {
            let filters = view::Filters {
                min_level: level.unwrap_or(0),
                trace,
                grep,
            };
            if follow || follow_for.is_some() {
                let [file] = files.as_slice() else {
                    return Err(format!(
                        "--follow reads one file, not {} (view them without --follow)",
                        files.len()
                    ));
                };
                let limit = follow_for
                    .map(|s| {
                        Duration::try_from_secs_f64(s).map_err(|e| format!("--follow-for: {e}"))
                    })
                    .transpose()?;
                view::follow(file, &filters, limit)?;
            } else {
                view::view(&files, &filters)?;
            }
            Ok(true)
        }
        Command::Report { files, output } => {
            let mut records = Vec::new();
            let mut skipped = 0;
            for file in &files {
                let text = input::read_source(file)?;
                for item in input::parse(&text) {
                    let record = item.object.and_then(|_| {
                        aitrace_core::Record::from_json(&item.text).map_err(|e| e.to_string())
                    });
                    match record {
                        Ok(record) => records.push(record),
                        Err(e) => {
                            say::bad_line(format_args!(
                                "aitrace: {}:{}: skipped: {e}",
                                input::name(file),
                                item.pos
                            ));
                            skipped += 1;
                        }
                    }
                }
            }
            if output.as_os_str() == "-" {
                let out = std::io::BufWriter::new(std::io::stdout().lock());
                aitrace_report::write_html_report(&records, out).map_err(|e| {
                    // A reader that went away is the io error behind it.
                    match std::error::Error::source(&e)
                        .and_then(|source| source.downcast_ref::<std::io::Error>())
                    {
                        Some(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
                            say::stdout_error(std::io::Error::from(io.kind()), 0)
                        }
                        _ => e.to_string(),
                    }
                })?;
            } else {
                let out = std::fs::File::create(&output)
                    .map_err(|e| format!("cannot create {}: {e}", output.display()))?;
                aitrace_report::write_html_report(&records, std::io::BufWriter::new(out))
                    .map_err(|e| e.to_string())?;
            }
            say::diag!(
                "aitrace: wrote {} ({} records{})",
                output.display(),
                records.len(),
                if skipped > 0 {
                    format!(", {skipped} skipped")
                } else {
                    String::new()
                }
            );
            Ok(true)
        }
        Command::Send {
            files,
            to,
            delivery,
            delete_after,
        } => {
            let sender = send::Sender::new(&to, settings(&delivery, delete_after))?;
            let mut summary = send::Summary::default();
            sender.send_files(&files, &mut summary)?;
            summary.print(sender.target());
            Ok(summary.all_delivered())
        }
        Command::Spool {
            dir,
            replay,
            to,
            delivery,
        } => match (replay, to) {
            (true, Some(to)) => {
                let sender = send::Sender::new(&to, settings(&delivery, true))?;
                let mut summary = send::Summary::default();
                spool::replay(&dir, &sender, &mut summary)?;
                summary.print(sender.target());
                Ok(summary.all_delivered())
            }
            _ => {
                spool::list(&dir)?;
                Ok(true)
            }
        },
        Command::Validate { files } => Ok(validate::validate(&files)? == 0),
    }
}

fn settings(delivery: &DeliveryArgs, delete_after: bool) -> send::Settings {
    send::Settings {
        batch: delivery.batch_size as usize,
        attempts: delivery.attempts,
        delete_after,
    }
}
