//! Retention from the environment, and the `traceparent` it sends: in child
//! processes (this test binary started again with one `#[ignore]`d test),
//! since both read process-wide state.

use std::process::Command;

use aitrace_core::output::InMemoryOutput;
use aitrace_core::{BufferedLogger, Level, Output, TraceParent};

fn run_child(envs: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("OTEL_") || key.starts_with("AITRACE_") || key == "LOG_TRG" {
            cmd.env_remove(key);
        }
    }
    cmd.envs(envs.iter().copied());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn events(memory: &InMemoryOutput) -> Vec<String> {
    memory
        .records()
        .iter()
        .map(|r| r.event().to_owned())
        .collect()
}

/// Logs one request with a debug record, prints what shipped and the
/// header it would send.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child() {
    let (output, memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .min_level(Level::Debug)
        .build();
    let header = log.span("request").in_scope(|_| {
        log.debug("detail").emit();
        TraceParent::current().unwrap()
    });
    log.flush().unwrap();
    println!("\nSHIPPED: {}", events(&memory).join(","));
    println!("SAMPLED HEADER: {}", header.is_sampled());
    println!("SAMPLED OUT: {}", log.stats().sampled_out);
}

#[test]
fn retention_is_off_until_the_environment_or_code_asks() {
    let out = run_child(&[]);
    assert!(
        out.contains("SHIPPED: request.start,detail,request.end"),
        "{out}"
    );
    assert!(out.contains("SAMPLED HEADER: true"), "{out}");
}

#[test]
fn aitrace_ship_level_turns_retention_on() {
    let out = run_child(&[("AITRACE_SHIP_LEVEL", "info")]);
    assert!(out.contains("SHIPPED: request.start,request.end"), "{out}");
    assert!(out.contains("SAMPLED OUT: 1"), "{out}");
    // This service records the trace's spans: the header says `sampled`
    // (head sampling is opt-in, in code).
    assert!(out.contains("SAMPLED HEADER: true"), "{out}");
}

#[test]
fn the_opentelemetry_sampler_variables_set_the_kept_ratio() {
    let out = run_child(&[
        ("AITRACE_SHIP_LEVEL", "info"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.0"),
    ]);
    assert!(
        out.contains("SHIPPED: request.start,detail,request.end"),
        "{out}"
    );
    assert!(out.contains("SAMPLED HEADER: true"), "{out}");
}

#[test]
fn a_latency_from_the_environment_ships_slow_traces() {
    let out = run_child(&[
        ("AITRACE_SHIP_LEVEL", "info"),
        ("AITRACE_RETENTION_LATENCY_MS", "0"),
    ]);
    assert!(
        out.contains("SHIPPED: request.start,detail,request.end"),
        "{out}"
    );
}

/// With `head_sampling`, the header says the kept-ratio decision, and only
/// while that logger lives.
#[test]
#[ignore = "run as a child process by the test below"]
fn head_child() {
    use aitrace_core::retention::Retention;
    let sampled = |log: &BufferedLogger| {
        log.span("request")
            .in_scope(|_| TraceParent::current().unwrap().is_sampled())
    };
    let (output, _memory) = Output::in_memory();
    let log = BufferedLogger::builder()
        .output(output)
        .retention(Retention::new().keep_ratio(0.0).head_sampling(true))
        .build();
    println!("\nWITH HEAD SAMPLING: {}", sampled(&log));
    drop(log);
    let (output, _memory) = Output::in_memory();
    let log = BufferedLogger::builder().output(output).build();
    println!("AFTER IT DROPPED: {}", sampled(&log));
}

#[test]
fn head_sampling_sends_the_kept_ratio_decision_while_its_logger_lives() {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "head_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("WITH HEAD SAMPLING: false"), "{stdout}");
    assert!(stdout.contains("AFTER IT DROPPED: true"), "{stdout}");
}
