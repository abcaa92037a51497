//! The response body, which keeps the request's span open until it ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use tracing::Span;

pin_project_lite::pin_project! {
    /// A response body that holds the request's span until its last frame,
    /// an error, or its drop, and is polled inside it: a streamed response
    /// ends the span when the stream does.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        span: Option<Span>,
        // Whether the span has failed already (a 5xx): the first cause
        // stays its `error.type`.
        failed: bool,
    }
}

impl<B> ResponseBody<B> {
    pub(super) fn new(inner: B, span: Option<Span>, failed: bool) -> Self {
        ResponseBody {
            inner,
            span,
            failed,
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(super::poll_inside(this.span.as_ref(), || {
            this.inner.poll_frame(cx)
        }));
        match &frame {
            Some(Ok(frame)) => {
                let code = frame.trailers_ref().and_then(super::grpc_status);
                if let (Some(code), Some(span)) = (code, this.span.as_ref()) {
                    *this.failed = super::record_grpc_status(span, code, *this.failed);
                }
            }
            Some(Err(error)) => {
                let span = this.span.take();
                if let Some(span) = span.filter(|_| !*this.failed) {
                    crate::status::fail(&span, std::any::type_name::<B::Error>(), Some(error));
                }
            }
            None => {
                this.span.take(); // the last frame went: the span ends
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
