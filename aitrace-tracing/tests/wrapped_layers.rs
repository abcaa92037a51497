//! Aitrace layers in wrappers beside one another (review and user trial of
//! issue 20's span table): in an `Option`, in a `Vec` of layers, behind
//! `reload`, before or after a layer added directly. Every logger must give
//! a span the same ids, and file each record under the span it happened
//! in; a layer replaced through `reload` must not leave its state behind.

use aitrace_core::{BufferedLogger, Level, Record};
use aitrace_testkit::{find, memory_logger};
use aitrace_tracing::AitraceLayer;
use tracing_subscriber::Layer;
use tracing_subscriber::prelude::*;

fn logger() -> BufferedLogger {
    memory_logger(Level::Trace).0
}

type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

/// A span with an event and a child inside, run through `subscriber`; then
/// every logger's tree checked, and the loggers against each other.
fn check(subscriber: impl tracing::Subscriber + Send + Sync + 'static, logs: &[&BufferedLogger]) {
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            tracing::info_span!("s").in_scope(|| {
                tracing::info!("inside");
                tracing::info_span!("child").in_scope(|| tracing::info!("deeper"));
            });
        }
    });
    let all: Vec<Vec<Record>> = logs.iter().map(|log| log.records()).collect();
    for (n, records) in all.iter().enumerate() {
        assert_eq!(records.len(), 18, "logger {n}: {records:?}");
        for run in records.chunks(6) {
            let s = find(run, "s.start");
            let child = find(run, "child.start");
            assert_eq!(
                find(run, "inside").span_context(),
                s.span_context(),
                "logger {n}"
            );
            assert_eq!(child.parent_span_id(), s.span_id(), "logger {n}");
            assert_eq!(child.trace_id(), s.trace_id(), "logger {n}");
            assert_eq!(find(run, "deeper").span_id(), child.span_id(), "logger {n}");
            assert_eq!(
                find(run, "s.end").span_context(),
                s.span_context(),
                "logger {n}"
            );
        }
    }
    for other in &all[1..] {
        for (a, b) in all[0].iter().zip(other) {
            assert_eq!(a.event(), b.event());
            assert_eq!(a.span_context(), b.span_context(), "{}", a.event());
        }
    }
}

#[test]
fn a_layer_in_an_option_beside_a_direct_one() {
    let (a, b) = (logger(), logger());
    let subscriber = tracing_subscriber::registry()
        .with(AitraceLayer::new(a.clone()))
        .with(Some(AitraceLayer::new(b.clone())));
    check(subscriber, &[&a, &b]);
    let (a, b) = (logger(), logger());
    let subscriber = tracing_subscriber::registry()
        .with(Some(AitraceLayer::new(a.clone())))
        .with(AitraceLayer::new(b.clone()));
    check(subscriber, &[&a, &b]);
}

#[test]
fn a_layer_in_a_vec_beside_a_direct_one() {
    let (a, b, c) = (logger(), logger(), logger());
    let layers: Vec<Boxed> = vec![
        Box::new(AitraceLayer::new(b.clone())),
        Box::new(AitraceLayer::new(c.clone())),
    ];
    let subscriber = tracing_subscriber::registry()
        .with(layers)
        .with(AitraceLayer::new(a.clone()));
    check(subscriber, &[&a, &b, &c]);
    let (a, b) = (logger(), logger());
    let layers: Vec<Box<dyn Layer<_> + Send + Sync>> = vec![Box::new(AitraceLayer::new(b.clone()))];
    let subscriber = tracing_subscriber::registry()
        .with(AitraceLayer::new(a.clone()))
        .with(layers);
    check(subscriber, &[&a, &b]);
}

#[test]
fn a_reloaded_layer_beside_a_direct_one_shares_ids_and_leaves_nothing_behind() {
    let (a, b) = (logger(), logger());
    let (second, handle) = tracing_subscriber::reload::Layer::new(AitraceLayer::new(b.clone()));
    let subscriber = tracing_subscriber::registry()
        .with(AitraceLayer::new(a.clone()))
        .with(second);
    tracing::subscriber::with_default(subscriber, || {
        let old = tracing::info_span!("old");
        let old_id = old.id().unwrap();
        old.in_scope(|| {});
        handle.reload(AitraceLayer::new(b.clone())).unwrap();
        drop(old);
        // The registry gives the closed span's slot again, with a later
        // generation; then its `Id` itself (after 8,191 spans here).
        let mut spans = 0;
        loop {
            let new = tracing::info_span!("new");
            spans += 1;
            if new.id().unwrap() == old_id || spans == 20_000 {
                new.in_scope(|| tracing::info!("in new"));
                break;
            }
        }
        assert!(spans < 20_000, "the old span's Id never came back");
        tracing::info_span!("after").in_scope(|| tracing::info!("in after"));
    });
    let records = a.records();
    let old: Vec<_> = records
        .iter()
        .filter(|r| r.event().starts_with("old."))
        .collect();
    assert_eq!(old.len(), 2, "the old span's records, once");
    let new = records.iter().rfind(|r| r.event() == "new.start").unwrap();
    assert_eq!(find(&records, "in new").span_id(), new.span_id());
    // The replacement layer shares ids with the direct one.
    let b = b.records();
    assert_eq!(
        find(&records, "after.start").span_context(),
        find(&b, "after.start").span_context()
    );
    assert_eq!(
        find(&b, "in after").span_id(),
        find(&b, "after.start").span_id()
    );
}

#[test]
fn a_reloadable_option_before_a_direct_one() {
    let (a, b) = (logger(), logger());
    let (first, _handle) =
        tracing_subscriber::reload::Layer::new(Some(AitraceLayer::new(a.clone())));
    let subscriber = tracing_subscriber::registry()
        .with(first)
        .with(AitraceLayer::new(b.clone()));
    check(subscriber, &[&a, &b]);
}

#[test]
fn layers_joined_by_and_then_with_an_option() {
    let (a, b) = (logger(), logger());
    let subscriber = tracing_subscriber::registry()
        .with(AitraceLayer::new(a.clone()).and_then(Some(AitraceLayer::new(b.clone()))));
    check(subscriber, &[&a, &b]);
}

#[test]
fn a_layer_swapped_in_by_reload_before_a_direct_one() {
    // The replacement is told neither `on_layer` nor the registration.
    let (a, b, a2) = (logger(), logger(), logger());
    let (first, handle) = tracing_subscriber::reload::Layer::new(AitraceLayer::new(a.clone()));
    let subscriber = tracing_subscriber::registry()
        .with(first)
        .with(AitraceLayer::new(b.clone()));
    let dispatch = tracing::Dispatch::new(subscriber); // registers the layers
    handle.reload(AitraceLayer::new(a2.clone())).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("s").in_scope(|| tracing::info!("inside"));
    });
    let (a2, b) = (a2.records(), b.records());
    assert_eq!(
        find(&b, "inside").span_id(),
        find(&b, "s.start").span_id(),
        "b's tree"
    );
    assert_eq!(
        find(&a2, "inside").span_id(),
        find(&a2, "s.start").span_id(),
        "a2's tree"
    );
    assert_eq!(
        find(&a2, "s.start").span_context(),
        find(&b, "s.start").span_context()
    );
}

#[test]
fn other_wrappers_beside_a_direct_one() {
    use tracing_subscriber::filter::LevelFilter;
    let (a, b, c) = (logger(), logger(), logger());
    let v: Vec<Box<dyn Layer<_> + Send + Sync>> = vec![
        Box::new(AitraceLayer::new(b.clone())),
        Box::new(AitraceLayer::new(c.clone())),
    ];
    let s = tracing_subscriber::registry()
        .with(AitraceLayer::new(a.clone()))
        .with(v);
    check(s, &[&a, &b, &c]);
    let (a, b) = (logger(), logger());
    let s = tracing_subscriber::registry()
        .with(Some(AitraceLayer::new(a.clone())).with_filter(LevelFilter::TRACE))
        .with(AitraceLayer::new(b.clone()));
    check(s, &[&a, &b]);
    let (a, b) = (logger(), logger());
    let s = tracing_subscriber::registry()
        .with(AitraceLayer::new(a.clone()))
        .with(Box::new(Some(AitraceLayer::new(b.clone()))) as Box<dyn Layer<_> + Send + Sync>);
    check(s, &[&a, &b]);
    let (a, b) = (logger(), logger());
    let s = AitraceLayer::new(b.clone()).with_subscriber(
        Some(AitraceLayer::new(a.clone())).with_subscriber(tracing_subscriber::registry()),
    );
    check(s, &[&a, &b]);
}
