//! The hand-rolled accept loop: one hyper connection per TCP stream, so that a fault can
//! reset exactly the connection its request came on.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::behaviour::ConnectionState;

/// Lets a request kill its own connection, and keeps what the server knows of it.
#[derive(Debug, Default)]
pub(crate) struct ConnCtl {
    killed: AtomicBool,
    notify: Notify,
    /// Idle time and worker, for the modelled server behaviour.
    pub(crate) state: std::sync::Mutex<ConnectionState>,
}

impl ConnCtl {
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// The TCP stream; on drop after a kill it sets SO_LINGER=0 so the peer sees a real RST.
#[derive(Debug)]
struct KillableIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl Drop for KillableIo {
    fn drop(&mut self) {
        if self.ctl.killed.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Reset the request's connection: the response future never completes.
pub(crate) async fn reset_connection(ctl: Option<Arc<ConnCtl>>) -> Response {
    match ctl {
        Some(ctl) => {
            ctl.kill();
            std::future::pending().await
        }
        // Only reachable when the router is driven without our accept loop.
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// Resolves when shutdown is requested or the handle is gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await (it is not Send).
    let _ = rx.wait_for(|down| *down).await.map(|_| ());
}

async fn serve_connection(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    let ctl = Arc::new(ConnCtl::default());
    let io = TokioIo::new(KillableIo {
        inner: stream,
        ctl: ctl.clone(),
    });
    let req_ctl = ctl.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(req_ctl.clone());
            let mut router = router.clone();
            async move { tower::Service::call(&mut router, req).await }
        });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = ctl.notify.notified() => {}
        () = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.as_mut()).await;
        }
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
    conns.abort_all();
}
