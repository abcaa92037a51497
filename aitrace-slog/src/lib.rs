//! A [`slog::Drain`] that buffers `slog` records as aitrace records, for the
//! aitrace server, viewer and editor plugin.
//!
//! ```
//! use aitrace_core::BufferedLogger;
//! use aitrace_slog::AitraceDrain;
//! use slog::{Drain, info, o};
//!
//! let log = BufferedLogger::new(); // output from LOG_TRG, stdout when unset
//! let root = slog::Logger::root(AitraceDrain::new(log.clone()).fuse(), o!("service" => "shop"));
//! let payments = root.new(o!("component" => "payments"));
//!
//! info!(payments, "checkout_started"; "user_id" => "u2", "total" => 469.74);
//! let report = log.flush()?;
//! assert_eq!(report.records(), 1);
//! # Ok::<(), aitrace_core::Error>(())
//! ```
//!
//! # Usage
//!
//! Build a `slog::Logger` on an [`AitraceDrain`]. The message is the event
//! name; the record's key-values and the logger's own (`o!(...)`) are typed
//! user fields (integers, floats, bools, strings; other values as their
//! `Display` text); the module is the logger; file, line and module the
//! location. `Critical` is written `error`, `Warning` `warning`. The drain
//! never fails (its error type is [`slog::Never`]) and composes with
//! `fuse()`, `filter_level()`, `Duplicate` and `slog-async`. Records inside
//! an aitrace span (including an entered `tracing` span, through
//! `aitrace-tracing`) carry its ids.
//!
//! # With `slog-async`
//!
//! `slog-async` runs the drains behind it on its worker thread, where no span
//! is current. Put a [`CaptureContext`] in front of it: it runs on the
//! logging thread and carries that thread's span in the record (under
//! [`CONTEXT_KEY`]), and the `AitraceDrain` behind the worker uses it. The
//! same goes for any drain that hands records to another thread.
//!
//! ```
//! use aitrace_core::BufferedLogger;
//! use aitrace_slog::{AitraceDrain, CaptureContext};
//! use slog::{Drain, o};
//!
//! let log = BufferedLogger::new();
//! let worker = slog_async::Async::new(AitraceDrain::new(log.clone()).fuse())
//!     .build()
//!     .fuse();
//! let root = slog::Logger::root(CaptureContext::new(worker).fuse(), o!("service" => "shop"));
//! log.span("checkout").in_scope(|_| {
//!     slog::info!(root, "checkout_started"; "user_id" => "u2"); // the span's ids
//! });
//! slog::info!(root, "idle"); // no span: no ids
//! drop(root); // the last handle joins the worker, which captures what is left
//! assert_eq!(log.len(), 4);
//! # log.clear();
//! ```
//!
//! Without it, records made through `slog-async` carry no ids (or the ids
//! of a span current on the worker thread). A record's timestamp is taken
//! when `AitraceDrain` builds it, on the worker thread.
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer, like the rest of the workspace.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod context;
mod drain;

pub use context::{CONTEXT_KEY, CaptureContext, TIME_KEY};
pub use drain::{AitraceDrain, level_from_slog};

pub use slog;
