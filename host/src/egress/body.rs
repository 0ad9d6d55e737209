//! A body wrapper that meters bytes, enforces a size cap and an idle
//! (between-frames) timeout, for both directions of a guest's request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// Which direction a body flows, to pick the right error when it is too big.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Guest → upstream.
    Request,
    /// Upstream → guest.
    Response,
}

/// Wraps a body with a byte cap, a byte counter and an optional idle timeout.
pub struct Metered {
    inner: WasiBody,
    direction: Direction,
    limit: u64,
    seen: u64,
    counter: Arc<AtomicU64>,
    idle: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    report: Option<Reporter>,
}

/// Called once with the error that ended a body early.
pub type Reporter = Box<dyn FnOnce(&HttpError) + Send>;

impl Metered {
    /// Meters `inner`; bytes are added to `counter` as they pass.
    pub fn wrap(
        inner: WasiBody,
        direction: Direction,
        limit: u64,
        counter: Arc<AtomicU64>,
        idle: Option<Duration>,
    ) -> WasiBody {
        Self::build(inner, direction, limit, counter, idle, None)
    }

    /// Like [`Metered::wrap`], and tells `report` when the cap or the idle
    /// timeout ends the body.
    pub fn wrap_reporting(
        inner: WasiBody,
        direction: Direction,
        limit: u64,
        counter: Arc<AtomicU64>,
        idle: Option<Duration>,
        report: Reporter,
    ) -> WasiBody {
        Self::build(inner, direction, limit, counter, idle, Some(report))
    }

    fn build(
        inner: WasiBody,
        direction: Direction,
        limit: u64,
        counter: Arc<AtomicU64>,
        idle: Option<Duration>,
        report: Option<Reporter>,
    ) -> WasiBody {
        Self {
            inner,
            direction,
            limit,
            seen: 0,
            counter,
            idle,
            sleep: None,
            report,
        }
        .boxed_unsync()
    }

    fn fail(&mut self, error: HttpError) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if let Some(report) = self.report.take() {
            report(&error);
        }
        Poll::Ready(Some(Err(error)))
    }

    fn too_big(&self) -> HttpError {
        match self.direction {
            Direction::Request => HttpError::HttpRequestBodySize(Some(self.limit)),
            Direction::Response => HttpError::HttpResponseBodySize(Some(self.limit)),
        }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.seen += n;
                    this.counter.fetch_add(n, Ordering::Relaxed);
                    if this.seen > this.limit {
                        let error = this.too_big();
                        return this.fail(error);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if let Some(idle) = this.idle {
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        return this.fail(HttpError::ConnectionReadTimeout);
                    }
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn body(bytes: &'static [u8]) -> WasiBody {
        Full::new(Bytes::from_static(bytes))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    #[tokio::test]
    async fn counts_and_caps() {
        let counter = Arc::new(AtomicU64::new(0));
        let ok = Metered::wrap(
            body(b"hello"),
            Direction::Response,
            5,
            counter.clone(),
            None,
        );
        assert_eq!(ok.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(counter.load(Ordering::Relaxed), 5);

        let big = Metered::wrap(body(b"hello!"), Direction::Response, 5, counter, None);
        let err = big.collect().await.unwrap_err();
        assert!(
            matches!(err, HttpError::HttpResponseBodySize(Some(5))),
            "{err:?}"
        );
    }

    /// A body that never yields a frame.
    struct Pending;

    impl Body for Pending {
        type Data = Bytes;
        type Error = HttpError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_when_nothing_arrives() {
        let b = Metered::wrap(
            Pending.boxed_unsync(),
            Direction::Response,
            100,
            Arc::default(),
            Some(Duration::from_secs(2)),
        );
        let err = b.collect().await.unwrap_err();
        assert!(matches!(err, HttpError::ConnectionReadTimeout), "{err:?}");
    }
}
