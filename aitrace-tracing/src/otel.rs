//! The ids `tracing-opentelemetry` gives a span (feature `opentelemetry`).
//!
//! tracing-opentelemetry 0.34 keeps a span's OpenTelemetry data private and
//! picks its ids only when it starts the OpenTelemetry span (first enter, a
//! child, or close). Its public [`get_otel_context`] starts the span if it
//! was not yet and returns its context; the layer calls it the first time
//! it needs a span's ids, so `set_parent` before the first enter still
//! works.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use aitrace_core::{SpanId, TraceId, adapter};
use opentelemetry::trace::TraceContextExt as _;
use tracing_core::Dispatch;
use tracing_core::dispatcher::WeakDispatch;
use tracing_core::span::Id;
use tracing_opentelemetry::get_otel_context;

/// The versions whose span data this build reads.
pub(crate) const SUPPORTED: &str = "tracing-opentelemetry 0.34 with opentelemetry 0.33";

/// Why a span has no OpenTelemetry ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    /// The layer never learnt its subscriber (`Layer::on_register_dispatch`
    /// was not called: a wrapper that does not pass it on).
    NotRegistered,
    /// No tracing-opentelemetry layer of the supported version has data for
    /// the span: none in the registry, another version, or a filter that
    /// keeps the span from it.
    NoData,
    /// Its OpenTelemetry span context is invalid (a no-op tracer).
    Invalid,
}

/// The subscriber a layer sits in, to ask tracing-opentelemetry about its
/// spans.
#[derive(Debug, Default)]
pub(crate) struct Registered(OnceLock<WeakDispatch>);

impl Registered {
    pub(crate) fn set(&self, dispatch: &Dispatch) {
        // A layer sits in one subscriber; a second registration is the same.
        let _ = self.0.set(dispatch.downgrade());
    }

    /// The OpenTelemetry trace and span id of span `id`. Must be called
    /// without holding the span's extensions (tracing-opentelemetry locks
    /// them).
    pub(crate) fn ids(&self, id: &Id) -> Result<(TraceId, SpanId), Missing> {
        let dispatch = self
            .0
            .get()
            .and_then(WeakDispatch::upgrade)
            .ok_or(Missing::NotRegistered)?;
        let cx = get_otel_context(id, &dispatch).ok_or(Missing::NoData)?;
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return Err(Missing::Invalid);
        }
        let trace_id = TraceId::from_bytes(sc.trace_id().to_bytes()).ok_or(Missing::Invalid)?;
        let span_id = SpanId::from_bytes(sc.span_id().to_bytes()).ok_or(Missing::Invalid)?;
        Ok((trace_id, span_id))
    }
}

/// Says once per process, on stderr, why spans carry aitrace's own ids
/// though the `opentelemetry` feature is on.
pub(crate) fn report(missing: Missing, span_name: &str) {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if missing == Missing::Invalid || REPORTED.swap(true, Ordering::Relaxed) {
        return; // a no-op tracer's spans have no ids to share
    }
    adapter::diagnose("tracing-opentelemetry", || match missing {
        Missing::NotRegistered => format!(
            "aitrace-tracing's `opentelemetry` feature is on, but `AitraceLayer` was not \
             told its subscriber (is it inside a wrapper such as an `Option` or a `Vec` of \
             layers?), so span `{span_name}` and others carry aitrace's own ids instead of \
             OpenTelemetry's; add `AitraceLayer` to the registry directly (shown once)"
        ),
        _ => format!(
            "aitrace-tracing's `opentelemetry` feature is on, but span `{span_name}` has no \
             OpenTelemetry data from {SUPPORTED}, so it and others like it carry aitrace's own \
             ids instead of OpenTelemetry's; add that version's layer to the same registry, \
             before aitrace's: `registry().with(tracing_opentelemetry::layer().with_tracer(tracer))\
             .with(AitraceLayer::new(log))` (a different tracing-opentelemetry or opentelemetry \
             version is not read; shown once)"
        ),
    });
}
