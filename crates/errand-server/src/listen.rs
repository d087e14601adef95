//! The accept loop and each connection's life: at most `max_connections`
//! open at once (the rest wait in the listen backlog, costing no file
//! descriptor), and a watchdog that closes connections that send nothing
//! useful — request headers not complete within `header_read_timeout`, or
//! a keep-alive connection idle past `idle_timeout`. Request bodies are
//! paced by [`crate::pace`]. axum's own `serve` has none of these bounds.
//! With TLS, the handshake runs inside the connection's slot and must end
//! within `header_read_timeout` too; the bounds above then apply to the
//! decrypted stream.

use crate::pace::{self, Pace};
use crate::tls::Tls;
use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the server bounds its connections.
#[derive(Debug, Clone)]
pub struct Connections {
    /// Most connections open at once; further clients wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
    /// A connection must send a request's complete headers this soon after
    /// it opens (or after the first byte of a later request).
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// A request body may take this long plus its size at `body_min_rate`.
    pub body_grace: Duration,
    /// Slowest body accepted, in bytes per second (slower: 408).
    pub body_min_rate: u64,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_grace: Duration::from_secs(10),
            body_min_rate: 64 * 1024,
        }
    }
}

impl Connections {
    /// The default cap for a process allowed `fd_limit` open files: half of
    /// them, so the database, job processes' pipes and pool workers keep
    /// the other half, and no more than 16,384 (memory stays bounded).
    pub fn max_for_fd_limit(fd_limit: u64) -> usize {
        (fd_limit / 2).clamp(1, 16_384) as usize
    }
}

/// Serves `router` on `listener` (over TLS when given) until `shutdown`
/// resolves, then lets in-flight requests finish, closes idle connections
/// and returns.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    limits: Connections,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = tls.as_ref().map(Tls::acceptor);
    let stop = CancellationToken::new();
    let _stop_on_shutdown = tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        // Take a slot before accepting: at the cap, clients wait in the
        // kernel's backlog instead of costing a descriptor each.
        let slot = tokio::select! {
            _ = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let tcp = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // Out of descriptors or memory: wait rather than spin.
                    tracing::warn!("accept error: {err}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        // Answers are small; without TCP_NODELAY they may sit behind Nagle's algorithm.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {err}");
        }
        let (router, limits, stop) = (router.clone(), limits.clone(), stop.clone());
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            match acceptor {
                None => serve_one(tcp, router, &limits, stop).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp));
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        done = handshake => match done {
                            Ok(Ok(tls)) => serve_one(tls, router, &limits, stop).await,
                            Ok(Err(err)) => tracing::debug!("TLS handshake failed: {err}"),
                            Err(_) => tracing::debug!("closing connection: TLS handshake too slow"),
                        },
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// One connection, until the client closes it, the watchdog does, or
/// shutdown has let its request finish.
async fn serve_one<S>(socket: S, router: Router, limits: &Connections, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: socket,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        let pace = Pace::new(limits.body_grace, limits.body_min_rate);
        let router = TowerToHyperService::new(router);
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (activity, router) = (activity.clone(), router.clone());
            async move {
                let _busy = activity.request_started();
                Ok::<_, Infallible>(pace::respond(pace, req, |req| call(&router, req)).await)
            }
        })
    };
    let conn = http1::Builder::new()
        // The watchdog below enforces header and idle deadlines itself.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    // The connection's deadline as a timer (see [`Activity::poll_expired`]).
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut draining = false;
    loop {
        tokio::select! {
            // The connection first: the watchdog then reads the state its
            // poll left (see [`Activity::poll_expired`]).
            biased;
            done = conn.as_mut() => {
                if let Err(err) = done {
                    tracing::debug!("connection ended: {err}");
                }
                return;
            }
            why = std::future::poll_fn(|cx| activity.poll_expired(timer.as_mut(), cx, limits)) => {
                tracing::debug!("closing connection: {why}");
                return;
            }
            _ = stop.cancelled(), if !draining => {
                // Finish the request in progress (held ones answer at once
                // on shutdown), then close.
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// Runs the router on one request (it never fails: errors are answers).
async fn call(
    router: &TowerToHyperService<Router>,
    req: hyper::Request<Body>,
) -> axum::response::Response {
    use hyper::service::Service;
    match router.call(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// What a connection is doing, shared by its socket, its requests and its watchdog.
struct Activity {
    state: Mutex<State>,
}

struct State {
    /// Requests being answered.
    in_flight: usize,
    /// Since when no request has been in progress (the accept, at first).
    idle_since: Instant,
    /// When the first byte of the next request's headers arrived.
    head_started: Option<Instant>,
    /// Whether a request was answered already (keep-alive).
    served: bool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
                served: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes arrived; between requests they start the next one's headers.
    fn read(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
        }
    }

    /// A request's headers are complete; the guard marks its end.
    fn request_started(self: &Arc<Self>) -> Busy {
        let mut state = self.state();
        state.in_flight += 1;
        state.head_started = None;
        Busy(self.clone())
    }

    /// The next deadline and what passing it means, if any applies now.
    fn deadline(&self, limits: &Connections) -> Option<(Instant, &'static str)> {
        let state = self.state();
        if state.in_flight > 0 {
            None
        } else if let Some(started) = state.head_started {
            Some((
                started + limits.header_read_timeout,
                "request headers too slow",
            ))
        } else if !state.served {
            Some((
                state.idle_since + limits.header_read_timeout,
                "no request sent",
            ))
        } else {
            Some((state.idle_since + limits.idle_timeout, "idle keep-alive"))
        }
    }

    /// Ready with the reason once the connection has passed its deadline,
    /// `timer` set to it; pending with no timer while a request is in
    /// progress. Polled each time the connection's task runs, after the
    /// connection: every change to the activity happens inside that task
    /// (the socket's reads, a request's start and end), in the connection's
    /// poll, so the timer always follows the latest state and nothing needs
    /// to wake the task. (A `Notify` did: a task waking itself is taken by
    /// tokio as a yield, which queued the connection behind other work and
    /// woke a second runtime worker to steal it, twice per request.)
    fn poll_expired(
        &self,
        mut timer: Pin<&mut Sleep>,
        cx: &mut Context<'_>,
        limits: &Connections,
    ) -> Poll<&'static str> {
        let Some((at, why)) = self.deadline(limits) else {
            return Poll::Pending;
        };
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        timer.poll(cx).map(|()| why)
    }
}

/// A request in progress; dropping it (answered or abandoned) makes the
/// connection idle again when it was the last.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.served = true;
        }
    }
}

/// A socket (TCP, or TLS over TCP) that tells its [`Activity`] when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
