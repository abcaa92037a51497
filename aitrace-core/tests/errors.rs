//! Building and parsing fail with their own error types, apart from the
//! outcome of a send (issue 19, item 6): each entry point's error type,
//! the kinds each carries, and `?` into `aitrace_core::Result` keeping the
//! kind and the text.

use std::error::Error as _;

use aitrace_core::{
    BufferedLogger, Builder, ConfigError, Error, ErrorKind, Filter, Output, ParseError, Record,
    Redactor, TraceParent,
};

/// Each build entry point's error, typed as a `ConfigError` (this does not
/// compile if one goes back to `Error`), with the kind it carries.
#[test]
fn building_fails_with_a_config_error_of_a_configuration_kind() {
    let missing_ca = tempfile::tempdir().unwrap().path().join("ca.pem");
    let cases: Vec<(&str, ConfigError, ErrorKind)> = vec![
        (
            "from_target",
            Output::from_target("http://:80/api/ingest").unwrap_err(),
            ErrorKind::InvalidTarget,
        ),
        (
            "from_target_list",
            Output::from_target_list("stdout,http://:80").unwrap_err(),
            ErrorKind::InvalidTarget,
        ),
        (
            "http",
            Output::http("ftp://host/").unwrap_err(),
            ErrorKind::InvalidTarget,
        ),
        (
            "http_builder ca_file",
            Output::http_builder("https://localhost/api/ingest")
                .ca_file(&missing_ca)
                .build()
                .unwrap_err(),
            ErrorKind::Tls,
        ),
        (
            "otlp_builder",
            Output::otlp_builder()
                .endpoint("ftp://collector")
                .build()
                .unwrap_err(),
            ErrorKind::InvalidTarget,
        ),
        (
            "Output::otlp",
            Output::otlp("ftp://collector").unwrap_err(),
            ErrorKind::InvalidTarget,
        ),
        (
            "Builder::target",
            BufferedLogger::builder().target("file:?x").unwrap_err(),
            ErrorKind::InvalidTarget,
        ),
        (
            "Filter::parse",
            Filter::parse("a=b=c").unwrap_err(),
            ErrorKind::InvalidFilter,
        ),
        (
            "Redactor::value_pattern",
            Redactor::none().value_pattern("(").unwrap_err(),
            ErrorKind::InvalidPattern,
        ),
    ];
    for (call, err, kind) in cases {
        assert_eq!(err.kind(), kind, "{call}: {err}");
        assert!(!err.to_string().is_empty(), "{call}");
    }
    // The spool's failure at try_build is configuration too (its kinds are
    // checked where the spool opens, in spool/tests.rs).
    let _: fn(Builder) -> Result<BufferedLogger, ConfigError> = Builder::try_build;
}

/// Each parse entry point's error, typed as a `ParseError`.
#[test]
fn parsing_fails_with_a_parse_error_of_a_parse_kind() {
    let record: ParseError = Record::from_json(r#"{"event":"e"}"#).unwrap_err();
    assert_eq!(record.kind(), ErrorKind::InvalidRecord);
    assert_eq!(record.to_string(), "no timestamp");
    let header: ParseError = TraceParent::parse("00-abc").unwrap_err();
    assert_eq!(header.kind(), ErrorKind::InvalidTraceContext);
    assert!(
        header
            .to_string()
            .starts_with("invalid traceparent \"00-abc\""),
        "{header}"
    );
}

/// `?` in a function returning `aitrace_core::Result`, as 0.1 code does:
/// the `Error` has the kind, the text and the source of the error it came
/// from.
#[test]
fn question_mark_makes_an_error_with_the_same_kind_text_and_source() {
    fn target(text: &str) -> aitrace_core::Result<Output> {
        let output = Output::from_target(text)?;
        Ok(output)
    }
    fn record(line: &str) -> aitrace_core::Result<Record> {
        Ok(Record::from_json(line)?)
    }
    fn header(value: &str) -> aitrace_core::Result<TraceParent> {
        Ok(TraceParent::parse(value)?)
    }
    fn filter(text: &str) -> aitrace_core::Result<Filter> {
        Ok(Filter::parse(text)?)
    }

    let bad_url = "http://bob:s3cret@host:99999/api/ingest";
    let config = Output::from_target(bad_url).unwrap_err();
    let err: Error = target(bad_url).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTarget);
    assert_eq!(err.to_string(), config.to_string());
    assert_eq!(
        err.to_string(),
        "invalid URL http://***@host:99999/api/ingest: the port \"99999\" is not a number from 0 to 65535"
    );
    for shown in [err.to_string(), format!("{err:?}"), format!("{config:?}")] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    let parse = Record::from_json("{").unwrap_err();
    let err = record("{").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRecord);
    assert_eq!(err.to_string(), parse.to_string());
    let source = err.source().expect("the JSON error is the source");
    assert_eq!(
        source.to_string(),
        parse.source().expect("the JSON error").to_string()
    );

    let err = header("ff-0").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTraceContext);
    assert_eq!(
        err.to_string(),
        TraceParent::parse("ff-0").unwrap_err().to_string()
    );

    let err = filter("info,app=loud").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidFilter);
    assert!(err.to_string().contains("info,app=loud"), "{err}");
}

/// What went wrong in a send is an `Error`, with none of the kinds that
/// building or parsing has.
#[test]
fn a_send_fails_with_an_error_of_a_send_kind() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/ingest", listener.local_addr().unwrap())
    };
    let records = [Record::builder(aitrace_core::Level::Info, "e").build()];
    let err: Error = aitrace_core::send_logs(&records, &dead).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    // A target that cannot be used stops send_logs before any send, with
    // the configuration's kind, through `?`.
    let err = aitrace_core::send_logs(&records, "http://:80").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTarget, "{err}");
}

/// A header that cannot be sent fails the build, not every send, and the
/// error shows neither its value nor a name that is invalid (written
/// `Authorization: Bearer …`, the name holds the secret).
#[test]
fn a_header_that_cannot_be_sent_fails_the_build_and_is_not_shown() {
    let secret = "Bearer s3cret-t0ken";
    let http = || Output::http_builder("http://127.0.0.1:9/api/ingest");
    let otlp = || Output::otlp_builder().endpoint("http://127.0.0.1:9");
    let bad_value = format!("{secret}\n");
    let bad_name = format!("authorization: {secret}");
    let cases: [(&str, ConfigError, bool); 4] = [
        (
            "http, value",
            http()
                .header("authorization", &bad_value)
                .build()
                .unwrap_err(),
            true,
        ),
        (
            "http, name",
            http().header(&bad_name, "").build().unwrap_err(),
            false,
        ),
        (
            "otlp, value",
            otlp()
                .header("authorization", &bad_value)
                .build()
                .unwrap_err(),
            true,
        ),
        (
            "otlp, name",
            otlp().header(&bad_name, "").build().unwrap_err(),
            false,
        ),
    ];
    for (case, err, value) in cases {
        assert_eq!(err.kind(), ErrorKind::InvalidTarget, "{case}: {err}");
        let mut shown = format!("{err} {err:?}");
        shown += &format!(" {:?}", Error::from(err));
        assert!(!shown.contains("s3cret"), "{case}: {shown}");
        if value {
            assert!(
                shown.contains("\"authorization\" has an invalid value"),
                "{case}: {shown}"
            );
        } else {
            assert!(shown.contains("invalid name"), "{case}: {shown}");
        }
    }
}
