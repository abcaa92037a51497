//! `ServerService` around plain tower services (as hyper and tonic run
//! them): errors from the service or its body, gRPC status, a body dropped
//! unread.

mod common;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use aitrace_core::Level;
use bytes::Bytes;
use common::{Setup, int, one, outcomes, text};
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use tower_layer::Layer as _;
use tower_service::Service as _;

/// A service that answers every request with what `answer` makes.
#[derive(Clone)]
struct Answer<F>(F);

impl<F, B, E> tower_service::Service<Request<()>> for Answer<F>
where
    F: FnMut() -> Result<Response<B>, E>,
{
    type Response = Response<B>;
    type Error = E;
    type Future = Ready<Result<Response<B>, E>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready((self.0)())
    }
}

fn request() -> Request<()> {
    Request::post("/pkg.Stock/Check")
        .header("host", "stock.internal:50051")
        .body(())
        .unwrap()
}

/// A gRPC call, as tonic's clients send it.
fn grpc_request() -> Request<()> {
    Request::post("/pkg.Stock/Check")
        .header("host", "stock.internal:50051")
        .header("content-type", "application/grpc+proto")
        .body(())
        .unwrap()
}

#[test]
fn an_error_from_the_inner_service_fails_the_span_with_its_type_and_text() {
    let setup = Setup::new();
    let mut service = aitrace_http::ServerLayer::new().layer(Answer(|| {
        Err::<Response<Empty<Bytes>>, _>(std::io::Error::other("connection reset"))
    }));
    let error = setup
        .run(async { service.call(request()).await })
        .unwrap_err();
    assert_eq!(error.to_string(), "connection reset");
    let records = setup.records_once_ended(1);
    let start = one(&records, "POST.start");
    assert_eq!(
        text(start, "server.address").as_deref(),
        Some("stock.internal")
    );
    assert_eq!(int(start, "server.port"), Some(50051));
    let end = one(&records, "POST.end");
    assert_eq!(end.level(), Level::Error);
    assert_eq!(text(end, "error").as_deref(), Some("connection reset"));
    assert_eq!(
        text(end, "error.type").as_deref(),
        Some("std::io::error::Error")
    );
}

/// A body of frames that are all there.
type Frames<E> =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, E>>>>;

fn grpc_body(status: &'static str) -> Response<Frames<Infallible>> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", status.parse().unwrap());
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
        Ok(Frame::trailers(trailers)),
    ];
    Response::new(StreamBody::new(futures_util::stream::iter(frames)))
}

#[test]
fn a_grpc_status_in_the_trailers_is_recorded_and_server_errors_fail_the_span() {
    let setup = Setup::new();
    for status in ["0", "5", "14"] {
        let mut service = aitrace_http::ServerLayer::new()
            .layer(Answer(move || Ok::<_, Infallible>(grpc_body(status))));
        setup.run(async {
            let response = service.call(grpc_request()).await.unwrap();
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.unwrap();
        });
    }
    let records = setup.records_once_ended(3);
    // Named as the RPC conventions name a call: never `POST`.
    for start in records.iter().filter(|r| r.event().ends_with(".start")) {
        assert_eq!(start.event(), "pkg.Stock/Check.start");
        assert_eq!(text(start, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(text(start, "rpc.service").as_deref(), Some("pkg.Stock"));
        assert_eq!(text(start, "rpc.method").as_deref(), Some("Check"));
        assert_eq!(text(start, "http.request.method").as_deref(), Some("POST"));
    }
    let ends = outcomes(&records, "pkg.Stock/Check.end", "rpc.grpc.status_code");
    // NOT_FOUND (5) is the caller's problem; UNAVAILABLE (14) the server's.
    assert_eq!(
        ends,
        [
            (Level::Info, Some(0), None),
            (Level::Info, Some(5), None),
            (Level::Error, Some(14), Some("14".into())),
        ]
    );
}

#[test]
fn an_error_in_the_body_fails_the_span_and_a_body_dropped_unread_ends_it() {
    let setup = Setup::new();
    let mut failing = aitrace_http::ServerLayer::new().layer(Answer(|| {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"partial"))),
            Err(std::io::Error::other("disk gone")),
        ];
        Ok::<_, Infallible>(Response::new(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
    }));
    let mut unread =
        aitrace_http::ServerLayer::new().layer(Answer(|| Ok::<_, Infallible>(grpc_body("0"))));
    setup.run(async {
        let response = failing.call(request()).await.unwrap();
        assert!(response.into_body().collect().await.is_err());
        let response = unread.call(request()).await.unwrap();
        let ended = |log: &aitrace_core::BufferedLogger| {
            log.records()
                .iter()
                .filter(|r| r.event() == "POST.end")
                .count()
        };
        assert_eq!(ended(&setup.log), 1, "the span is open while its body is");
        drop(response);
        assert_eq!(ended(&setup.log), 2, "dropping the body ends it");
    });
    let records = setup.records_once_ended(2);
    let ends: Vec<(Level, Option<String>, Option<String>)> = records
        .iter()
        .filter(|r| r.event() == "POST.end")
        .map(|r| (r.level(), text(r, "error.type"), text(r, "error")))
        .collect();
    assert_eq!(
        ends,
        [
            (
                Level::Error,
                Some("std::io::error::Error".into()),
                Some("disk gone".into())
            ),
            (Level::Info, None, None),
        ]
    );
}
