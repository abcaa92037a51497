//! What `aitrace_http::ServerLayer` adds to a request: a tower service
//! that answers at once, called bare, inside tower-http's `TraceLayer`
//! (the peer most services use), and inside `ServerLayer`, each on a
//! registry with an `AitraceLayer` (at `debug`, so both layers' spans are
//! written) whose buffer is cleared between chunks.
//! No network: the cost of the span, its fields and its records only.
//!
//! ```sh
//! cargo bench -p aitrace-benches --bench http
//! ```

#![allow(missing_docs)] // criterion_group! makes undocumented items

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aitrace_benches::timed_chunks;
use aitrace_core::{BufferedLogger, Level, Output};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use tower_layer::Layer;
use tower_service::Service;
use tracing_subscriber::prelude::*;

/// Requests between two clears of the buffer (outside timing).
const CHUNK: u64 = 2048;

/// Answers every request at once, with an empty body.
#[derive(Clone)]
struct Ok200;

impl Service<Request<Empty<Bytes>>> for Ok200 {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Empty<Bytes>>) -> Self::Future {
        ready(Ok(Response::new(Empty::new())))
    }
}

/// One request through `service`, its body read to the end (which ends a
/// `ServerLayer` span), on this thread.
fn one_request<S, B>(service: &mut S)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
{
    let request = Request::get("/users/u7")
        .header("host", "shop.internal:8080")
        .header("user-agent", "bench/1.0")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Empty::new())
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let future = pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.poll(&mut cx) else {
        panic!("the service answers at once");
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(&mut cx) {}
}

fn timed<S, B>(log: &BufferedLogger, service: &mut S, iters: u64) -> Duration
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
{
    timed_chunks(iters, CHUNK, || one_request(service), || log.clear())
}

fn requests(c: &mut Criterion) {
    // At `debug`, so tower-http's spans (at `DEBUG`) are written too.
    let log = BufferedLogger::builder()
        .output(Output::file("/dev/null"))
        .min_level(Level::Debug)
        .build();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(aitrace_tracing::AitraceLayer::new(log.clone())),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let mut group = c.benchmark_group("http");
        group.bench_function("bare service", |b| {
            let mut service = Ok200;
            b.iter_custom(|iters| timed(&log, &mut service, iters));
        });
        group.bench_function("tower-http TraceLayer", |b| {
            let mut service = tower_http::trace::TraceLayer::new_for_http().layer(Ok200);
            b.iter_custom(|iters| timed(&log, &mut service, iters));
        });
        group.bench_function("aitrace-http ServerLayer", |b| {
            let mut service = aitrace_http::ServerLayer::new().layer(Ok200);
            b.iter_custom(|iters| timed(&log, &mut service, iters));
        });
        group.finish();
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = requests
}
criterion_main!(benches);
