//! A [`log::Log`] that buffers `log` records as aitrace records, for the
//! aitrace server, viewer and editor plugin.
//!
//! ```
//! use aitrace_core::BufferedLogger;
//!
//! let log = BufferedLogger::new(); // output from LOG_TRG, stdout when unset
//! aitrace_log::init(log.clone()).expect("no other global logger");
//!
//! log::info!(user_id = "u2", total = 469.74; "checkout_started");
//! log.span("charge_payment").in_scope(|_| {
//!     log::warn!(target: "payments", attempt = 2; "gateway slow"); // carries the span's ids
//! });
//! let report = log.flush()?;
//! assert_eq!(report.records(), 4);
//! # Ok::<(), aitrace_core::Error>(())
//! ```
//!
//! # Usage
//!
//! [`init`] installs an [`AitraceLogger`] as `log`'s global logger; the
//! [`AitraceLogger::builder`] can cap its level. What is kept follows the
//! `BufferedLogger`'s [`Filter`](aitrace_core::Filter): `info` and above by
//! default, else `AITRACE_LEVEL` or `RUST_LOG` directives
//! (`info,hyper=warn`); `log::max_level` follows it, also when
//! `set_min_level` changes it later.
//!
//! With `tracing` in the same program: `tracing-subscriber`'s default
//! `tracing-log` feature makes `SubscriberInitExt::init` install a
//! `LogTracer` as `log`'s logger, and then [`init`] fails. Install the
//! subscriber with `tracing::subscriber::set_global_default` (or without that
//! feature) and call [`init`]. The message is the
//! event name, the target the logger, file, line and module path the
//! location, and key-values (`log`'s `kv` feature, enabled by this crate) typed
//! user fields: integers, floats, bools, strings; other values as their
//! `Display` text. Records inside an aitrace span (including an entered
//! `tracing` span, through `aitrace-tracing`) carry its ids.
//!
//! The HTTP sender logs through `log` itself (`ureq`, `rustls`): records made
//! on a thread while it sends a batch are dropped, so they never loop back
//! into the buffer.
//!
//! # Supported Rust versions
//!
//! Rust 1.85 or newer, like the rest of the workspace.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod logger;

pub use logger::{AitraceLogger, Builder, init, level_from_log};

pub use log;
