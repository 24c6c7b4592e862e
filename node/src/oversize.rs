//! tonic refuses a request message over the size limit before any handler runs, and
//! answers `OUT_OF_RANGE`. The contract promises `INVALID_ARGUMENT` naming the limit, so
//! this wrapper rewrites those answers. The Dstash handlers never return `OUT_OF_RANGE`
//! themselves (see `status.rs`), so the rewrite cannot hide one of theirs. Stream
//! messages are rewritten in the service itself, where tonic reports them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http::{HeaderValue, Request, Response};
use tonic::codegen::Service;
use tonic::server::NamedService;

const OUT_OF_RANGE: &str = "11";
const INVALID_ARGUMENT: &str = "3";

#[derive(Clone, Debug)]
pub struct OversizeIsInvalid<S> {
    inner: S,
    max_message_bytes: usize,
}

impl<S> OversizeIsInvalid<S> {
    pub fn new(inner: S, max_message_bytes: usize) -> Self {
        Self {
            inner,
            max_message_bytes,
        }
    }
}

impl<S: NamedService> NamedService for OversizeIsInvalid<S> {
    const NAME: &'static str = S::NAME;
}

/// The grpc-message header is percent-encoded; this text needs only spaces encoded.
fn grpc_message(max: usize) -> HeaderValue {
    let text = format!("the request message is larger than the {max}-byte message limit");
    HeaderValue::from_str(&text.replace(' ', "%20"))
        .unwrap_or_else(|_| HeaderValue::from_static("request%20message%20too%20large"))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OversizeIsInvalid<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let answer = self.inner.call(req);
        let max = self.max_message_bytes;
        Box::pin(async move {
            let mut response = answer.await?;
            let headers = response.headers_mut();
            if headers.get("grpc-status").map(HeaderValue::as_bytes)
                == Some(OUT_OF_RANGE.as_bytes())
            {
                headers.insert("grpc-status", HeaderValue::from_static(INVALID_ARGUMENT));
                headers.insert("grpc-message", grpc_message(max));
            }
            Ok(response)
        })
    }
}
