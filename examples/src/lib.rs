//! Runnable examples; see `examples/`.
//!
//! This crate also runs the code blocks of the workspace README and of each
//! published crate's README as its doctests. It is never packaged, so it
//! can read files from the whole workspace, which a published crate cannot
//! (`cargo package` only takes files inside the crate).

/// The workspace README's examples.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadme;

/// `aitrace-core`'s README (its crates.io page).
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-core/README.md")]
struct CoreReadme;

/// `aitrace-tracing`'s README.
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-tracing/README.md")]
struct TracingReadme;

/// `aitrace-log`'s README.
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-log/README.md")]
struct LogReadme;

/// `aitrace-slog`'s README.
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-slog/README.md")]
struct SlogReadme;

/// `aitrace-cli`'s README.
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-cli/README.md")]
struct CliReadme;

/// `aitrace-model`'s README.
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-model/README.md")]
struct ModelReadme;

/// `aitrace-otlp`'s README.
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-otlp/README.md")]
struct OtlpReadme;

/// `aitrace-report`'s README.
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-report/README.md")]
struct ReportReadme;

/// `aitrace-http`'s README.
#[cfg(doctest)]
#[doc = include_str!("../../aitrace-http/README.md")]
struct HttpReadme;
