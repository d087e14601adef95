//! The minimum body rate: a request body must have arrived within a grace
//! period plus its size at the minimum rate (for a body of unknown length,
//! each byte received buys `1 / rate` seconds more). Slower, the read fails,
//! the request is answered 408 and the connection closed, so a client
//! trickling a body cannot hold a connection for minutes.

use crate::problem::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The pacing rule of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    grace: Duration,
    /// Bytes per second, at least 1.
    min_rate: u64,
}

impl Pace {
    pub(crate) fn new(grace: Duration, min_rate: u64) -> Self {
        Pace {
            grace,
            min_rate: min_rate.max(1),
        }
    }

    /// When a body that started at `start`, is expected to be `expected`
    /// bytes long and has brought `received` so far must be complete.
    fn deadline(&self, start: Instant, expected: u64, received: u64) -> Instant {
        let bytes = expected.max(received);
        start + self.grace + Duration::from_secs_f64(bytes as f64 / self.min_rate as f64)
    }
}

/// Answers `req` with `handle`, its body paced; 408 if the body was too slow.
pub(crate) async fn respond<F, Fut>(pace: Pace, req: Request<Incoming>, handle: F) -> Response
where
    F: FnOnce(Request<Body>) -> Fut,
    Fut: Future<Output = Response>,
{
    let too_slow = Arc::new(AtomicBool::new(false));
    let expected = req.body().size_hint().exact().unwrap_or(0);
    let req = req.map(|inner| {
        Body::new(Paced {
            inner,
            pace,
            start: Instant::now(),
            expected,
            received: 0,
            timer: None,
            too_slow: too_slow.clone(),
        })
    });
    let response = handle(req).await;
    if !too_slow.load(Ordering::Relaxed) {
        return response;
    }
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body arrived too slowly (allowed: {}s plus its size at {} bytes/s)",
            pace.grace.as_secs_f64(),
            pace.min_rate
        ),
    )
    .into_response();
    // The rest of the body may still be on its way: drop the connection.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The body read too slowly.
#[derive(Debug, thiserror::Error)]
#[error("request body arrived too slowly")]
struct TooSlow;

/// A request body that fails once it falls behind its [`Pace`].
struct Paced {
    inner: Incoming,
    pace: Pace,
    start: Instant,
    expected: u64,
    received: u64,
    /// Armed when the body first makes the reader wait.
    timer: Option<Pin<Box<Sleep>>>,
    too_slow: Arc<AtomicBool>,
}

impl HttpBody for Paced {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if let Some(timer) = &mut this.timer {
                        let at = this.pace.deadline(this.start, this.expected, this.received);
                        timer.as_mut().reset(at);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let at = this.pace.deadline(this.start, this.expected, this.received);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.too_slow.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(TooSlow.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
