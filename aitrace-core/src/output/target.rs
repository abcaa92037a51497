//! Target strings (`LOG_TRG`, WIRE_FORMAT.md's `stdout`, paths, URLs,
//! `otlp`) and the constructors of the built-in outputs: the one place that
//! names every concrete output, so [`Output`] itself names none.

use std::path::PathBuf;
use std::time::SystemTime;

use super::stdio::StdStream;
use crate::error::{ConfigError, Result};
use crate::file::{self, FileOutput};
use crate::output::Output;
use crate::transport::CA_FILE_ENV;

/// The environment variable that chooses the outputs when none is set in
/// code: one target string, or several separated by commas.
pub const TARGET_ENV: &str = "LOG_TRG";

/// The OTLP target strings: `Some(None)` for `otlp`, `Some(Some(endpoint))`
/// for `otlp+http(s)://…`.
#[cfg(feature = "otlp")]
fn parse_otlp_target(target: &str) -> Option<Option<&str>> {
    aitrace_otlp::parse_target(target).map(|target| match target {
        aitrace_otlp::OtlpTarget::FromEnv => None,
        aitrace_otlp::OtlpTarget::Endpoint(endpoint) => Some(endpoint),
    })
}

/// Target strings are recognised without the `otlp` feature, to say it is
/// needed.
#[cfg(not(feature = "otlp"))]
fn parse_otlp_target(target: &str) -> Option<Option<&str>> {
    let lower = target.get(..9).unwrap_or(target).to_ascii_lowercase();
    (lower == "otlp" || lower == "otlp+http").then_some(None)
}

/// The scheme of a `scheme://…` target that names no output (`grpc://…`,
/// `otlp+grpc://…`, `ftp://…`), so that it is refused rather than taken for
/// a file path; `None` for a path or a known scheme.
fn unsupported_scheme(target: &str) -> Option<&str> {
    let (scheme, _) = target.split_once("://")?;
    let is_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (is_scheme && !scheme.eq_ignore_ascii_case("file")).then_some(scheme)
}

impl Output {
    /// Standard output, JSON Lines.
    pub fn stdout() -> Self {
        Output::new(StdStream::Stdout)
    }

    /// Standard error, JSON Lines (the target string `stderr`).
    pub fn stderr() -> Self {
        Output::new(StdStream::Stderr)
    }

    /// A JSON Lines file at exactly `path` (no `~` or timestamp expansion;
    /// use [`Output::from_target`] for that), appended to, created `0600`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Output::new(FileOutput::new(path.into()))
    }

    /// A self-contained HTML trace report at exactly `path`, rewritten at
    /// every flush with every record this output has been given (kept in
    /// memory, encoded: some 300 to 500 bytes a record, for the output's
    /// life). See [`write_html_report`](crate::write_html_report).
    #[cfg(feature = "html")]
    pub fn html(path: impl Into<PathBuf>) -> Self {
        Output::new(aitrace_report::HtmlFile::new(path.into()))
    }

    /// An OTLP/HTTP output to the base endpoint `endpoint` (such as
    /// `http://collector:4318`), its other settings from the standard
    /// `OTEL_EXPORTER_OTLP_*` variables; see [`OtlpOutputBuilder`](crate::OtlpOutputBuilder).
    #[cfg(feature = "otlp")]
    pub fn otlp(endpoint: &str) -> Result<Self, ConfigError> {
        Ok(Output::new(
            Output::otlp_builder().endpoint(endpoint).build()?,
        ))
    }

    /// An OTLP/HTTP output configured by the standard `OTEL_*` variables
    /// only (the target string `otlp`).
    #[cfg(feature = "otlp")]
    pub fn otlp_from_env() -> Result<Self, ConfigError> {
        Ok(Output::new(Output::otlp_builder().build()?))
    }

    /// Settings of an OTLP/HTTP output, starting from the standard `OTEL_*`
    /// variables read now; what is set in code wins.
    #[cfg(feature = "otlp")]
    pub fn otlp_builder() -> crate::OtlpOutputBuilder {
        crate::OtlpOutputBuilder::from_env()
    }

    #[cfg(feature = "otlp")]
    fn otlp_target(endpoint: Option<&str>) -> Result<Self, ConfigError> {
        let builder = Output::otlp_builder();
        let exporter = match endpoint {
            Some(endpoint) => builder.endpoint(endpoint).build()?,
            None => builder.build()?,
        };
        Ok(Output::new(exporter))
    }

    #[cfg(not(feature = "otlp"))]
    fn otlp_target(_: Option<&str>) -> Result<Self, ConfigError> {
        Err(ConfigError::invalid_target(
            "an otlp target needs aitrace-core's `otlp` feature",
        ))
    }

    /// The output a target string names; see the table above. One target:
    /// a comma is part of it ([`Output::from_target_list`] reads a list).
    ///
    /// A target that cannot be used is a [`ConfigError`]:
    /// [`InvalidTarget`](crate::ErrorKind::InvalidTarget), or
    /// [`Tls`](crate::ErrorKind::Tls) for an `AITRACE_CA_FILE` that cannot
    /// be read.
    pub fn from_target(target: &str) -> Result<Self, ConfigError> {
        Output::from_target_at(target, SystemTime::now())
    }

    pub(crate) fn from_target_at(target: &str, start: SystemTime) -> Result<Self, ConfigError> {
        let target = target.trim();
        if target.is_empty() || target == "-" || target.eq_ignore_ascii_case("stdout") {
            return Ok(Output::stdout());
        }
        if target.eq_ignore_ascii_case("stderr") {
            return Ok(Output::stderr());
        }
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let mut builder = Output::http_builder(target);
            if let Some(ca) = std::env::var_os(CA_FILE_ENV).filter(|v| !v.is_empty()) {
                builder = builder.ca_file(ca);
            }
            return builder.build();
        }
        if let Some(endpoint) = parse_otlp_target(target) {
            return Output::otlp_target(endpoint);
        }
        if let Some(scheme) = unsupported_scheme(target) {
            let hint = if scheme.to_ascii_lowercase().contains("grpc") {
                " (OTLP over gRPC is not supported: give the collector's HTTP port, \
                 `otlp+http://host:4318`)"
            } else {
                ""
            };
            return Err(ConfigError::invalid_target(format!(
                "{scheme}:// is not a target this library knows{hint}: write a path, \
                 file://, http(s)://, otlp or otlp+http(s)://"
            )));
        }
        let path = if file::is_file_uri(target) {
            file::expand_path(&file::path_from_file_uri(target)?, start)?
        } else {
            file::expand_path(target, start)?
        };
        let is_html = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("html"));
        if is_html {
            return Output::html_target(path);
        }
        Ok(Output::file(path))
    }

    #[cfg(feature = "html")]
    fn html_target(path: PathBuf) -> Result<Self, ConfigError> {
        Ok(Output::html(path))
    }

    /// Without the `html` feature, a `.html` target is refused with the
    /// reason, not taken for a JSON Lines file named `*.html`.
    #[cfg(not(feature = "html"))]
    fn html_target(path: PathBuf) -> Result<Self, ConfigError> {
        Err(ConfigError::invalid_target(format!(
            "{}: an HTML report target needs aitrace-core's `html` feature",
            path.display()
        )))
    }

    /// The outputs a comma-separated list of target strings names, in
    /// order (as `LOG_TRG` holds them; write a comma inside a URL as
    /// `%2C`). Empty entries are skipped; a list with none is stdout. The
    /// first entry that cannot be used is the error.
    pub fn from_target_list(list: &str) -> Result<Vec<Self>, ConfigError> {
        Output::from_target_list_at(list, SystemTime::now())
            .into_iter()
            .collect()
    }

    /// Each entry's output or error, in order; stdout for a list of none.
    fn from_target_list_at(list: &str, start: SystemTime) -> Vec<Result<Self, ConfigError>> {
        let outputs: Vec<Result<Self, ConfigError>> = list
            .split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| Output::from_target_at(entry, start))
            .collect();
        if outputs.is_empty() {
            return vec![Ok(Output::stdout())];
        }
        outputs
    }

    /// The output `LOG_TRG` names; stdout when it is unset or empty. A
    /// list of several targets is an error here: read it with
    /// [`Output::list_from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut outputs = Output::list_from_env()?;
        match outputs.len() {
            1 => Ok(outputs.remove(0)),
            n => Err(ConfigError::invalid_target(format!(
                "{TARGET_ENV} names {n} targets: read them with Output::list_from_env"
            ))),
        }
    }

    /// The outputs `LOG_TRG` names (one, or several separated by commas,
    /// as for [`Output::from_target_list`]); stdout when it is unset or
    /// empty.
    pub fn list_from_env() -> Result<Vec<Self>, ConfigError> {
        Output::from_target_list(&Output::target_env()?)
    }

    /// Each output `LOG_TRG` names, or the error that entry gave: a logger
    /// keeps the outputs it can use and names the others on stderr.
    pub(crate) fn each_from_env() -> Vec<Result<Self, ConfigError>> {
        match Output::target_env() {
            Ok(list) => Output::from_target_list_at(&list, SystemTime::now()),
            Err(err) => vec![Err(err)],
        }
    }

    /// `LOG_TRG`, empty when unset.
    fn target_env() -> Result<String, ConfigError> {
        match std::env::var(TARGET_ENV) {
            Ok(list) => Ok(list),
            Err(std::env::VarError::NotPresent) => Ok(String::new()),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::invalid_target(format!(
                "{TARGET_ENV} is not valid UTF-8"
            ))),
        }
    }

    /// An in-memory output and the handle that reads what it received.
    #[cfg(feature = "testing")]
    pub fn in_memory() -> (Self, super::testing::InMemoryOutput) {
        let memory = super::testing::InMemoryOutput::default();
        (Output::new(memory.clone()), memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(not(all(feature = "html", feature = "otlp")))]
    use crate::ErrorKind;

    #[test]
    fn the_built_in_targets_name_their_outputs() {
        assert_eq!(Output::from_target("-").unwrap().to_string(), "stdout");
        assert_eq!(Output::from_target("STDERR").unwrap().to_string(), "stderr");
    }

    /// Found in a user trial: `LOG_TRG=otlp+grpc://host:4317` wrote a file
    /// named `otlp+grpc:/host:4317` and reported every record delivered.
    #[test]
    fn a_scheme_that_names_no_output_is_refused_not_a_file() {
        use crate::ErrorKind;
        for target in [
            "otlp+grpc://127.0.0.1:4317",
            "grpc://c:4317",
            "ftp://x/y",
            "s3://b/k",
        ] {
            let err = Output::from_target(target).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidTarget, "{target}");
            assert!(err.to_string().contains("is not a target"), "{err}");
        }
        let grpc = Output::from_target("otlp+grpc://c:4317").unwrap_err();
        assert!(grpc.to_string().contains("otlp+http://host:4318"), "{grpc}");
        // Paths, even odd ones, are still files.
        for target in ["logs/a.jsonl", "a:b.jsonl", "./x://y.jsonl"] {
            assert!(
                Output::from_target(target).unwrap().path().is_some(),
                "{target}"
            );
        }
    }

    #[cfg(feature = "html")]
    #[test]
    fn an_html_target_is_the_report() {
        let dir = std::env::temp_dir().join("aitrace-target-test");
        let html = Output::from_target(&format!("{}/r.HTML", dir.display())).unwrap();
        assert_eq!(html.path(), Some(dir.join("r.HTML").as_path()));
        assert!(html.to_string().ends_with("r.HTML"), "{html}");
    }

    /// Without the `html` feature, a `.html` target is refused with the
    /// reason, not written as JSON Lines under an `.html` name.
    #[cfg(not(feature = "html"))]
    #[test]
    fn an_html_target_without_the_feature_says_it_is_needed() {
        let err = Output::from_target("trace.html").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidTarget);
        assert!(err.to_string().contains("`html` feature"), "{err}");
    }

    /// Without the `otlp` feature, an otlp target is recognised and refused
    /// with the reason, not taken for a file named `otlp`.
    #[cfg(not(feature = "otlp"))]
    #[test]
    fn an_otlp_target_without_the_feature_says_it_is_needed() {
        for target in ["otlp", "OTLP+http://collector:4318"] {
            let err = Output::from_target(target).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidTarget, "{target}");
            assert!(err.to_string().contains("`otlp` feature"), "{err}");
        }
    }
}
