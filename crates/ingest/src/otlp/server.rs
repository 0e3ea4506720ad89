//! The accept loop behind every Lookout listener: HTTP/1.1 and cleartext HTTP/2 (h2c with
//! prior knowledge, as gRPC clients speak it) on one socket, told apart by the first bytes.
//!
//! It is axum's `serve` with one change that axum does not let us make: the HTTP/2 frame
//! size. At HTTP/2's default of 16 KiB a client cuts a 100 KiB export into seven DATA frames,
//! written one by one, and the connection task woke, read and decoded each of them on its own
//! (eleven reads per request at 10k spans/s). Advertising frames as large as the connection's
//! flow-control window lets a client send a batch as one frame, which arrives in one or two
//! reads. It costs no memory a client could not already make us hold: a connection buffers
//! at most its window either way.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// The HTTP/2 flow-control window of a connection and of each stream (hyper's default): how
/// much a client may send before we have read it.
const WINDOW: u32 = 1 << 20;

/// The largest HTTP/2 frame we accept: the whole window, so one frame can carry a batch.
const MAX_FRAME: u32 = WINDOW;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for requests in progress.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .initial_connection_window_size(WINDOW)
        .initial_stream_window_size(WINDOW)
        .max_frame_size(MAX_FRAME);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small unary gRPC responses otherwise wait on Nagle's algorithm and delayed ACKs.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("could not set TCP_NODELAY: {e}");
        }
        let service = TowerToHyperService::new(router.clone());
        let conn = builder
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!("connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// What an accept error costs: nothing for a connection the client gave up on; otherwise
/// (out of file descriptors, say) a logged error and a pause, so the loop does not spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("cannot accept a connection: {e}; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
