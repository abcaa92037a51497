//! The aitrace HTML trace report, and the lenient reading of records it
//! shares with the `aitrace` command line.
//!
//! * [`write_html_report`]: one self-contained page (inline CSS and
//!   JavaScript, no network) with the list of traces, each trace as a
//!   collapsible span tree and a timeline, a level filter, a text search
//!   and every record's fields.
//! * [`HtmlFile`]: an exporter (`aitrace_model::export::Export`) that
//!   rewrites such a report at every flush; `aitrace-core` makes one for a
//!   target ending in `.html`.
//! * [`read`]: records in any layout, read leniently (anything missing or
//!   malformed shows as missing) for display.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod html;
pub mod read;

pub use html::{HtmlFile, render, write_html_report};
