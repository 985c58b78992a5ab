//! The TLS listener: accepts TCP, bounds concurrent connections with a semaphore, runs each
//! TLS handshake in its own task with a deadline (a slow or silent client never holds up
//! the accept loop), then serves HTTP/1.1 with upgrades through the axum router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Longest a client may take for the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TLS connections until `shutdown` is cancelled. `slots` bounds the connections
/// open at once (shared with the plain gateway port).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    while let Some((tcp, peer, permit)) = accept(&listener, &slots, &shutdown).await {
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let verified = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            serve_connection(tls, peer, router, crate::tls::ClientCert(verified)).await;
        });
    }
}

/// HTTP/1.1 with upgrades on one accepted connection, with the peer's address available
/// to handlers as `ConnectInfo`, and whether it presented a verified client certificate.
async fn serve_connection<Io>(
    io: Io,
    peer: SocketAddr,
    router: Router,
    client_cert: crate::tls::ClientCert,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        req.extensions_mut().insert(client_cert);
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The plain (no TLS) listener for gateways configured without TLS, under the same
/// connection bound as the TLS port.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    while let Some((tcp, peer, permit)) = accept(&listener, &slots, &shutdown).await {
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(tcp, peer, router, crate::tls::ClientCert(false)).await;
        });
    }
}

/// The next connection, once a slot is free (excess clients queue in the kernel's
/// backlog); `None` once `shutdown` is cancelled.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.ok()?,
            _ = shutdown.cancelled() => return None,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                return Some((tcp, peer, permit));
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
