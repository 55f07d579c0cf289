//! The accept loop. Every TCP socket is counted from accept to close, globally and per peer
//! address, and an HTTP request's headers must arrive within `server.header_read_timeout_secs`
//! (issue 14: 20,000 silent sockets from one address had taken every file descriptor, and
//! slowloris sockets trickling a byte a second were never closed).
//!
//! - Up to `max_connections` sockets: served normally.
//! - The next `connection_reserve` sockets: only `/healthz`, `/readyz`, `/metrics` and the
//!   admin API are served; anything else gets `503 unavailable` (so an operator can still look
//!   and act while the gateway is full).
//! - Beyond that, or beyond `max_connections_per_ip` from one address: a canned JSON
//!   `503 unavailable` / `429 rate_limited` is written and the socket closed at once.
//!
//! `max_connections + connection_reserve` is also clamped to the process's open-file limit
//! (`ulimit -n`) minus what the gateway needs for itself, with a warning, so the limits act
//! before `accept` fails.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// File descriptors kept for the gateway's own files, databases and venue connections.
pub const FD_HEADROOM: u64 = 256;

/// Limits of the accept loop, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    pub max: usize,
    pub per_ip: usize,
    pub reserve: usize,
    pub header_read_timeout: Duration,
    pub send_buffer: usize,
}

impl SocketLimits {
    /// `max` clamped to the open-file limit, with a warning when that lowers it.
    pub fn clamp_to_fd_limit(mut self) -> Self {
        if let Some(limit) = open_file_limit() {
            let usable = usize::try_from(limit.saturating_sub(FD_HEADROOM)).unwrap_or(usize::MAX);
            if self.max.saturating_add(self.reserve) > usable {
                tracing::warn!(
                    max_connections = self.max,
                    open_file_limit = limit,
                    effective = usable,
                    "server.max_connections plus connection_reserve exceed the open-file limit \
                     (ulimit -n) minus {FD_HEADROOM} for the gateway's own files: sockets are \
                     capped at the effective value; raise the limit (e.g. LimitNOFILE) to \
                     serve more"
                );
                self.reserve = self.reserve.min(usable / 10);
                self.max = usable.saturating_sub(self.reserve).max(1);
            }
        }
        self
    }
}

/// The soft open-file limit (`ulimit -n`), read from `/proc/self/limits` where there is one
/// (Linux); the workspace forbids `unsafe`, so no `getrlimit` call.
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&text)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()
        .and_then(|soft| soft.parse().ok())
}

/// Open sockets, for the limits and `/metrics`.
#[derive(Debug, Default)]
pub struct Sockets {
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicUsize,
    timed_out: AtomicUsize,
}

impl Sockets {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Sockets refused at accept (over `max_connections` or the per-address cap).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// HTTP connections closed because their request headers did not arrive in time.
    pub fn timed_out(&self) -> usize {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Appends this accept loop's families to a Prometheus text body.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, kind, help, value) in [
            (
                "tickgate_sockets_open",
                "gauge",
                "Open TCP sockets (HTTP and WebSocket), counted against server.max_connections.",
                self.open(),
            ),
            (
                "tickgate_sockets_refused_total",
                "counter",
                "Sockets refused at accept: server.max_connections or max_connections_per_ip.",
                self.refused(),
            ),
            (
                "tickgate_header_timeouts_total",
                "counter",
                "HTTP connections closed because their request headers did not arrive within \
                 server.header_read_timeout_secs.",
                self.timed_out(),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }

    /// Admits a socket from `ip`; a trusted proxy (`exempt`) carries many clients and is not
    /// held to the per-address cap.
    fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &SocketLimits,
        exempt: bool,
    ) -> Result<Admitted, Refusal> {
        let mut per_ip = self.per_ip.lock();
        let mine = per_ip.get(&ip).copied().unwrap_or(0);
        if mine >= limits.per_ip && !exempt {
            return Err(Refusal::PerIp);
        }
        let open = self.open.load(Ordering::Relaxed);
        if open >= limits.max.saturating_add(limits.reserve) {
            return Err(Refusal::Full);
        }
        per_ip.insert(ip, mine + 1);
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted {
            permit: SocketPermit {
                sockets: self.clone(),
                ip,
            },
            reserved: open >= limits.max,
        })
    }
}

struct Admitted {
    permit: SocketPermit,
    reserved: bool,
}

enum Refusal {
    PerIp,
    Full,
}

/// Held for a socket's life; gives its slot back on drop.
#[derive(Debug)]
struct SocketPermit {
    sockets: Arc<Sockets>,
    ip: IpAddr,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        self.sockets.open.fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self.sockets.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Marks a request that arrived on a socket of the reserve (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct ReservedSocket;

/// Whether a request on a reserve socket may be served.
pub fn reserve_allows(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/admin/")
}

fn canned(status: &str, code: &str, message: &str) -> Vec<u8> {
    let body = format!(r#"{{"code":"{code}","message":"{message}"}}"#);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts and serves until `shutdown`, then waits for open HTTP exchanges to finish (upgraded
/// WebSocket sessions end through their own shutdown path).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: SocketLimits,
    sockets: Arc<Sockets>,
    tls: Option<Arc<crate::tls::TlsState>>,
    router_proxies: Arc<crate::forwarded::TrustedProxies>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // EMFILE and friends: wait a little instead of spinning on a full table.
                tracing::warn!(error = %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let proxies = router_proxies.clone();
        match sockets.admit(peer.ip(), &limits, proxies.trusts(peer.ip())) {
            Ok(admitted) => {
                tune(&stream, limits.send_buffer);
                let router = router.clone();
                let sockets = sockets.clone();
                let stop = shutdown.clone();
                let tls = tls.clone();
                let conn = Conn {
                    peer,
                    reserved: admitted.reserved,
                    limits,
                    sockets,
                    proxies,
                };
                connections.spawn(async move {
                    serve_one(stream, conn, router, admitted.permit, tls, stop).await;
                });
            }
            Err(refusal) => {
                sockets.refused.fetch_add(1, Ordering::Relaxed);
                let answer = match refusal {
                    Refusal::PerIp => canned(
                        "429 Too Many Requests",
                        "rate_limited",
                        "too many connections from this address; retry later",
                    ),
                    Refusal::Full => canned(
                        "503 Service Unavailable",
                        "unavailable",
                        "connection limit reached; retry later",
                    ),
                };
                // Best effort and never blocking: the socket is closed right after.
                let _ = stream.try_write(&answer);
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

fn tune(stream: &TcpStream, send_buffer: usize) {
    // Small messages must leave at once (no Nagle delay); optionally bound kernel buffering.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(error = %error, "cannot set TCP_NODELAY");
    }
    if send_buffer > 0
        && let Err(error) = socket2::SockRef::from(stream).set_send_buffer_size(send_buffer)
    {
        tracing::debug!(error = %error, "cannot set the socket send buffer");
    }
}

/// What a connection's requests need to know about their socket.
struct Conn {
    peer: SocketAddr,
    reserved: bool,
    limits: SocketLimits,
    sockets: Arc<Sockets>,
    proxies: Arc<crate::forwarded::TrustedProxies>,
}

async fn serve_one(
    stream: TcpStream,
    conn: Conn,
    router: Router,
    permit: SocketPermit,
    tls: Option<Arc<crate::tls::TlsState>>,
    shutdown: CancellationToken,
) {
    // The permit travels with the socket, into an upgraded WebSocket too, so a socket is
    // counted until it closes whatever serves it.
    let stream = CountedStream {
        inner: stream,
        _permit: permit,
    };
    let Some(tls) = tls else {
        return serve_http(stream, conn, router, shutdown).await;
    };
    // The handshake is held to the same deadline as request headers (a silent TLS client is
    // a slowloris too).
    let handshake = tls.acceptor().accept(stream);
    match tokio::time::timeout(conn.limits.header_read_timeout, handshake).await {
        Ok(Ok(stream)) => serve_http(stream, conn, router, shutdown).await,
        Ok(Err(error)) => {
            tracing::debug!(peer = %conn.peer, error = %error, "TLS handshake failed")
        }
        Err(_) => {
            conn.sockets.timed_out.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn serve_http<I>(io: I, conn: Conn, router: Router, shutdown: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Conn {
        peer,
        reserved,
        limits,
        sockets,
        proxies,
    } = conn;
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        // Behind a trusted proxy, the client it names; otherwise the TCP peer.
        let client = match proxies.client(peer, request.headers()) {
            Ok(client) => client,
            Err(why) => {
                request
                    .extensions_mut()
                    .insert(crate::forwarded::InvalidForwarded(why));
                peer
            }
        };
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(client));
        extensions.insert(crate::forwarded::TcpPeer(peer));
        if reserved {
            extensions.insert(ReservedSocket);
        }
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let connection = builder
        .serve_connection(
            TokioIo::new(crate::http_guard::JsonParseErrors::new(io)),
            service,
        )
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result
        && error.is_timeout()
    {
        sockets.timed_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// A socket with its slot: the slot is given back when the socket is dropped.
struct CountedStream {
    inner: TcpStream,
    _permit: SocketPermit,
}

impl tokio::io::AsyncRead for CountedStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Largest request head (request line plus headers) read into memory: 16 KiB, against
/// hyper's ~400 KB default (nginx allows 8 KiB per line).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_read_from_proc() {
        let sample = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63409                63409                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_file_limit(sample), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_file_limit(unlimited), None);
        assert_eq!(parse_open_file_limit(""), None);
        if std::path::Path::new("/proc/self/limits").exists() {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }

    #[test]
    fn admission_counts_per_address_and_keeps_a_reserve() {
        let sockets = Arc::new(Sockets::default());
        let limits = SocketLimits {
            max: 8,
            per_ip: 4,
            reserve: 2,
            header_read_timeout: Duration::from_secs(1),
            send_buffer: 0,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(sockets.admit(a, &limits, false).ok().unwrap());
        }
        assert!(matches!(
            sockets.admit(a, &limits, false),
            Err(Refusal::PerIp)
        ));
        for i in 0..6 {
            let admitted = sockets.admit(format!("10.0.1.{i}").parse().unwrap(), &limits, false);
            let admitted = admitted.ok().unwrap();
            // Sockets 9 and 10 (beyond max = 8) are the reserve.
            assert_eq!(admitted.reserved, i >= 4, "socket {}", i + 5);
            held.push(admitted);
        }
        assert!(matches!(
            sockets.admit(b, &limits, false),
            Err(Refusal::Full)
        ));
        assert_eq!(sockets.open(), 10);
        held.truncate(3);
        assert_eq!(sockets.open(), 3);
        assert!(
            sockets.admit(a, &limits, false).is_ok(),
            "a slot of a came back"
        );
        // A trusted proxy is not held to the per-address cap (only to the total).
        let more: Vec<_> = (0..5)
            .map(|_| sockets.admit(a, &limits, true).ok().unwrap())
            .collect();
        assert_eq!(more.len(), 5);
        drop(more);
        drop(held);
        assert_eq!(sockets.open(), 0);
        assert!(sockets.per_ip.lock().is_empty());
    }

    #[test]
    fn the_reserve_serves_health_metrics_and_admin_only() {
        for path in ["/healthz", "/readyz", "/metrics", "/admin/v1/keys"] {
            assert!(reserve_allows(path), "{path}");
        }
        for path in ["/v1/ws", "/v1/book", "/", "/ui/", "/adminx"] {
            assert!(!reserve_allows(path), "{path}");
        }
    }
}
