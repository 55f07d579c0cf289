//! The load-generator threads and their clients: connect, subscribe, read and count.

use super::args::ClientKind;
use super::interval::{Event, Interval};
use crate::cmd::bench::wire::Reader;
use futures_util::{SinkExt, StreamExt};
use model::Timestamp;
use protocol::{ClientOp, RequestId};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Connections being opened at once per load-generator thread.
const CONNECT_CONCURRENCY: usize = 64;
/// Longest a TCP connect plus WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Read buffer per client: bigger means fewer `read` calls.
const CLIENT_READ_BUFFER: usize = 64 * 1024;

/// What every load-generator thread shares.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The gateways' addresses and WebSocket URLs: client i connects to entry i % len.
    pub(super) servers: Arc<[(SocketAddr, String)]>,
    pub(super) channels: Arc<[String]>,
    pub(super) client: ClientKind,
    pub(super) origin: Instant,
}

/// One load-generator thread: a current-thread runtime with `count` clients as local tasks.
/// Clients connect first; once every client of every thread is connected, `go` turns true and
/// they all subscribe, so the warmup starts from the same moment for all of them.
pub(super) fn generator(
    thread: usize,
    count: usize,
    plan: Plan,
    events: mpsc::UnboundedSender<Event>,
    go: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = events.send(Event::Connected {
                ok: 0,
                first_error: Some(error.to_string()),
            });
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let channels = plan.channels.clone();
        let stats = Rc::new(RefCell::new(Interval::new(channels.len())));
        let subscribe: Rc<str> = serde_json::to_string(&ClientOp::Subscribe {
            id: Some(RequestId::Num(1)),
            channels: channels.to_vec(),
            resume: Default::default(),
        })
        .unwrap_or_default()
        .into();
        let gate = Rc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let progress = Rc::new((Cell::new(0usize), Cell::new(0usize), RefCell::new(None)));
        for index in 0..count {
            let (stats, gate, progress, events) =
                (stats.clone(), gate.clone(), progress.clone(), events.clone());
            let (plan, subscribe, mut go) = (plan.clone(), subscribe.clone(), go.clone());
            tokio::task::spawn_local(async move {
                let opened = {
                    let _permit = gate.acquire().await;
                    let (addr, url) = &plan.servers[index % plan.servers.len()];
                    match tokio::time::timeout(CONNECT_TIMEOUT, connect(*addr, url)).await {
                        Ok(result) => result,
                        Err(_) => Err(anyhow::anyhow!("handshake timed out")),
                    }
                };
                let (ok, failed, first_error) = (&progress.0, &progress.1, &progress.2);
                let socket = match opened {
                    Ok(socket) => {
                        ok.set(ok.get() + 1);
                        stats.borrow_mut().opened += 1;
                        Some(socket)
                    }
                    Err(error) => {
                        failed.set(failed.get() + 1);
                        first_error.borrow_mut().get_or_insert(format!("{error:#}"));
                        None
                    }
                };
                if ok.get() + failed.get() == count {
                    let _ = events.send(Event::Connected {
                        ok: ok.get(),
                        first_error: first_error.borrow_mut().take(),
                    });
                }
                let Some(socket) = socket else { return };
                if go.wait_for(|go| *go).await.is_err() {
                    return;
                }
                let key = (index as u32 ^ (thread as u32) << 20).to_be_bytes();
                let channels = &plan.channels;
                let result = match plan.client {
                    ClientKind::Raw => read_raw(socket, key, &subscribe, &stats, channels).await,
                    ClientKind::Tungstenite => read_tungstenite(socket, &subscribe, &stats, channels)
                        .await
                        .map_err(std::io::Error::other),
                };
                let mut stats = stats.borrow_mut();
                stats.closed += 1;
                if result.is_err() {
                    stats.errors += 1;
                }
            });
        }
        if count == 0 {
            let _ = events.send(Event::Connected {
                ok: 0,
                first_error: None,
            });
        }
        let mut ticker = tokio::time::interval_at(
            (plan.origin + Duration::from_secs(1)).into(),
            Duration::from_secs(1),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let at = Instant::now();
                    let tick = at.saturating_duration_since(plan.origin).as_secs_f64().round() as u64;
                    let fresh = Interval::new(channels.len());
                    let interval = std::mem::replace(&mut *stats.borrow_mut(), fresh);
                    let _ = events.send(Event::Tick { thread, tick, at, stats: Box::new(interval) });
                }
                _ = stop.changed() => break,
            }
        }
    });
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens the TCP connection and does the WebSocket handshake (tungstenite's, in both modes).
async fn connect(addr: SocketAddr, url: &str) -> anyhow::Result<Socket> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (socket, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
    Ok(socket)
}

/// `--client raw`: subscribes, then reads frames with the benchmark's own framing (`wire`).
/// The server sends nothing before the subscription, so tungstenite's read buffer is empty
/// when the socket is taken back from it.
async fn read_raw(
    socket: Socket,
    key: [u8; 4],
    subscribe: &str,
    stats: &RefCell<Interval>,
    channels: &[String],
) -> std::io::Result<()> {
    let mut reader = Reader::new(socket.into_inner(), CLIENT_READ_BUFFER, key);
    reader.send_text(subscribe).await?;
    let mut last = vec![0u64; channels.len()];
    loop {
        let mut now = None;
        let open = reader
            .read(|text| {
                // One clock read per socket read: its messages all arrived together.
                let now = *now.get_or_insert_with(|| Timestamp::now().0);
                stats.borrow_mut().on_text(text, now, channels, &mut last);
            })
            .await?;
        if !open {
            return Ok(());
        }
    }
}

/// `--client tungstenite`: the reference client, one `Message` per frame.
async fn read_tungstenite(
    mut socket: Socket,
    subscribe: &str,
    stats: &RefCell<Interval>,
    channels: &[String],
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    socket.send(Message::Text(subscribe.into())).await?;
    let mut last = vec![0u64; channels.len()];
    while let Some(message) = socket.next().await {
        match message? {
            Message::Text(text) => {
                let now = Timestamp::now().0;
                stats
                    .borrow_mut()
                    .on_text(text.as_bytes(), now, channels, &mut last);
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}
