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
//! # Supported Rust versions
//!
//! Rust 1.85 or newer, like the rest of the workspace.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod drain;

pub use drain::{AitraceDrain, level_from_slog};

pub use slog;
