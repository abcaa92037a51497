//! A secret in a URL's user-info or in a header value, set in code or in
//! the environment, never shows: not in any builder's, output's or
//! logger's `Debug` or `Display`, not in an error, not in the stats, not on
//! stderr (ARCHITECTURE.md's invariant). The environment is read in a child
//! process (this test binary, started again with one `#[ignore]`d test).

use std::process::Command;

use aitrace_core::{BufferedLogger, Direct, OnFailure, Output};
use aitrace_testkit::{Answer, IngestServer, dead_url};
use proptest::prelude::*;

/// A secret as a user would write it: long enough not to turn up by
/// chance, with the sub-delimiters a password or an API key may hold.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{8}[A-Za-z0-9~!$&'()*+;=._-]{4,16}[A-Za-z0-9]{2}"
}

/// `http://127.0.0.1:PORT` of a URL.
fn origin(url: &str) -> &str {
    let end = url[7..].find('/').map_or(url.len(), |i| i + 7);
    &url[..end]
}

/// Every text the outputs configured with `secret` give: the builders'
/// and outputs' `Debug` and `Display`, the errors of building and of
/// sending (to a server that is down, and to one that refuses), the
/// loggers' `Debug`, their flush reports and their stats.
fn texts_in_code(secret: &str, up: &IngestServer, dead: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let with_user = |url: &str| url.replacen("://", &format!("://user:{secret}@"), 1);
    let mut outputs = Vec::new();
    for url in [with_user(&up.url), with_user(dead)] {
        let builder = Output::http_builder(&url)
            .header("x-api-key", secret)
            .header("authorization", format!("Bearer {secret}"));
        texts.push(format!("{builder:?}"));
        let output = builder.build().unwrap();
        texts.push(format!("{output} {output:?}"));
        outputs.push(output);
    }
    for bad in [
        with_user("http://127.0.0.1:99999/x"),
        with_user("http:///x"),
        format!("http://user:{secret}@[::1/x"),
    ] {
        let err = Output::http_builder(&bad).build().unwrap_err();
        texts.push(format!("{err} {err:?}"));
    }
    let otlp = Output::otlp_builder()
        .endpoint(with_user(origin(dead)))
        .logs_endpoint(with_user(&format!("{}/v1/logs", origin(dead))))
        .header("api-key", secret);
    texts.push(format!("{otlp:?}"));
    let output = otlp.build().unwrap();
    texts.push(format!("{output} {output:?}"));
    outputs.push(Output::new(output));
    for bad in [
        Output::otlp_builder().endpoint(with_user("http://:4318")),
        Output::otlp_builder().header("api-key", format!("{secret}\n")),
    ] {
        texts.push(format!("{bad:?}"));
        let err = bad.build().unwrap_err();
        texts.push(format!("{err} {err:?}"));
    }
    // Refused records go to a file of this test's, not `$TMPDIR`.
    let refused = tempfile::tempdir().unwrap();
    for output in outputs {
        let log = BufferedLogger::builder()
            .output(output)
            .delivery(Direct::new().on_failure(OnFailure::FallbackFile(
                refused.path().join("refused.jsonl"),
            )))
            .build();
        log.info("event").emit();
        match log.flush() {
            Ok(report) => texts.push(format!("{report:?}")),
            Err(err) => texts.push(format!("{err} {err:?}")),
        }
        texts.push(format!("{log:?} {:?}", log.stats()));
        log.clear();
    }
    texts
}

/// `secret` percent-encoded, every byte.
fn encoded(secret: &str) -> String {
    secret.bytes().map(|b| format!("%{b:02X}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_secret_set_in_code_never_shows(secret in secret()) {
        let up = IngestServer::start(Answer::Status(401, "no".into()));
        let dead = dead_url();
        let texts = texts_in_code(&secret, &up, &dead);
        prop_assert_eq!(texts.len(), 19);
        for text in texts {
            prop_assert!(!text.contains(&secret), "{} in {}", secret, text);
        }
    }
}

/// Reads `LOG_TRG` and `OTEL_*` and prints what a user could see.
#[test]
#[ignore = "run as a child process by the test below"]
fn env_child() {
    let log = BufferedLogger::new();
    log.info("event").emit();
    println!("{log:?}");
    println!("{:?}", log.flush());
    println!("{:?}", log.stats());
    let otlp = Output::otlp_builder();
    println!("{otlp:?}");
    println!("{:?}", otlp.build().map(|o| o.to_string()));
    println!("{:?}", Output::list_from_env().map(|o| format!("{o:?}")));
    println!("DONE");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn a_secret_set_in_the_environment_never_shows(secret in secret()) {
        let dead = dead_url();
        let tmp = tempfile::tempdir().unwrap();
        let targets = format!(
            "{},otlp",
            dead.replacen("://", &format!("://user:{secret}@"), 1)
        );
        for headers in [
            format!("api-key={},x-b=1", encoded(&secret)),
            format!("api-key:{secret}"),
            format!("x {secret}=1"),
            format!("api-key={secret}\u{1}"),
        ] {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["env_child", "--exact", "--ignored", "--nocapture"])
                .env("LOG_TRG", &targets)
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", origin(&dead))
                .env("OTEL_EXPORTER_OTLP_HEADERS", &headers)
                .env_remove("AITRACE_BACKGROUND")
                .env("TMPDIR", tmp.path())
                .output()
                .unwrap();
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            prop_assert!(text.contains("DONE"), "{}", text);
            prop_assert!(!text.contains(&secret), "{} in\n{}", secret, text);
            prop_assert!(!text.contains(&encoded(&secret)), "{}", text);
        }
    }
}
