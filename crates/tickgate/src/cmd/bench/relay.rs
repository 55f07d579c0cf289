//! `tickgate bench relay`: the fastest relay this machine can run, as a floor for fan-out.
//!
//! It is the design issue 13 proposes for the session write path, stripped of every
//! guarantee: one upstream subscription to a gateway; each upstream message framed once (a
//! WebSocket text frame header + the payload, unmasked) and handed to a fixed set of writer
//! threads (one per core by default), each owning its share of the client sockets as plain
//! non-blocking TCP sockets. A writer takes every message already queued, then writes them to
//! each of its clients with one `writev`: no task per client, no wake-up per client, no
//! per-client encoding or copy. A client whose socket is full keeps the rest as a backlog
//! (written first the next round) and is dropped past 8 MiB, as `bench/peers/node-relay` does.
//! Nothing else: no snapshot for a late joiner, no seq or gap handling, no heartbeats, no
//! reading after the subscription.
//!
//! `tickgate bench fanout --peer rust` runs it side by side with the gateway; it follows the
//! same command line as the Node relay (`--upstream URL --channels A,B`, prints
//! `listening <port>` once the upstream subscription is acknowledged).

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::bytes::{BufMut, Bytes, BytesMut};

/// A client is dropped once this much is queued for it.
const MAX_BACKLOG: usize = 8 * 1024 * 1024;
/// Longest HTTP upgrade request accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Longest first client message (the subscription) accepted.
const MAX_FIRST_MESSAGE: usize = 64 * 1024;
/// Most frames gathered into one `writev` (Linux's `IOV_MAX` is 1,024).
const MAX_IOV: usize = 256;

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// The gateway's WebSocket URL (`ws://host:port/v1/ws`).
    #[arg(long)]
    upstream: String,
    /// Channels to subscribe to upstream, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    channels: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Writer threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: RelayArgs) -> anyhow::Result<ExitCode> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(relay(args, threads))
}

/// What the acceptor and the upstream reader hand a writer thread.
enum ToWriter {
    Client(std::net::TcpStream),
    Frame(Bytes),
}

async fn relay(args: RelayArgs, threads: usize) -> anyhow::Result<ExitCode> {
    let (mut upstream, _) = tokio_tungstenite::connect_async(args.upstream.as_str())
        .await
        .with_context(|| format!("cannot connect to the upstream {}", args.upstream))?;
    let subscribe = serde_json::json!({"op": "subscribe", "id": 1, "channels": args.channels});
    upstream
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    // The first message is the upstream's own subscription ack.
    match upstream.next().await {
        Some(Ok(Message::Text(text))) if text.contains("\"subscribed\"") => {}
        other => bail!("the upstream did not acknowledge the subscription: {other:?}"),
    }
    let mut writers = Vec::with_capacity(threads);
    for index in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(format!("relay-writer-{index}"))
            .spawn(move || writer_thread(rx))?;
        writers.push(tx);
    }
    let listener = TcpListener::bind(args.listen).await?;
    println!("listening {}", listener.local_addr()?.port());
    let ack = text_frame(
        serde_json::json!({"type": "subscribed", "id": null, "channels": args.channels})
            .to_string()
            .as_bytes(),
    );
    let accept_writers = writers.clone();
    tokio::spawn(async move {
        let mut next = 0usize;
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let writer = accept_writers[next % accept_writers.len()].clone();
            next += 1;
            let ack = ack.clone();
            tokio::spawn(async move {
                match handshake(socket, &ack).await {
                    Ok(socket) => {
                        let _ = writer.send(ToWriter::Client(socket));
                    }
                    Err(error) if error.is::<Probe>() => {}
                    Err(error) => eprintln!("relay: client handshake failed: {error:#}"),
                }
            });
        }
    });
    while let Some(message) = upstream.next().await {
        let frame = match message? {
            Message::Text(text) => text_frame(text.as_bytes()),
            Message::Close(_) => break,
            _ => continue,
        };
        for writer in &writers {
            if writer.send(ToWriter::Frame(frame.clone())).is_err() {
                bail!("a writer thread stopped");
            }
        }
    }
    eprintln!("relay: upstream closed");
    Ok(ExitCode::FAILURE)
}

/// A readiness probe was answered (not an error, no client).
#[derive(Debug)]
struct Probe;

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("readiness probe")
    }
}

impl std::error::Error for Probe {}

/// An unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2).
fn text_frame(payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + 10);
    frame.put_u8(0x81);
    match payload.len() {
        n if n < 126 => frame.put_u8(n as u8),
        n if n <= 0xffff => {
            frame.put_u8(126);
            frame.put_u16(n as u16);
        }
        n => {
            frame.put_u8(127);
            frame.put_u64(n as u64);
        }
    }
    frame.put_slice(payload);
    frame.freeze()
}

/// The server side of the upgrade, then the client's first message (its subscription),
/// answered with `ack`. Returns the socket, ready for the writer thread.
async fn handshake(mut socket: TcpStream, ack: &[u8]) -> anyhow::Result<std::net::TcpStream> {
    socket.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > MAX_REQUEST {
            bail!("upgrade request longer than {MAX_REQUEST} bytes");
        }
        if socket.read_buf(&mut buf).await? == 0 {
            bail!("closed during the upgrade");
        }
    };
    let request = std::str::from_utf8(&buf[..end]).context("upgrade request is not UTF-8")?;
    // Readiness probes (`bench fanout` waits for `/readyz`): the upstream is subscribed.
    let path = request.split_whitespace().nth(1).unwrap_or("");
    if path == "/readyz" || path == "/healthz" {
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
            .await?;
        return Err(Probe.into());
    }
    let key = request
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim())
        .context("no Sec-WebSocket-Key")?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    socket.write_all(response.as_bytes()).await?;
    buf.drain(..end);
    // The first client frame: masked (RFC 6455 §5.3); only its length matters here.
    loop {
        if frame_len(&buf)?.is_some_and(|len| buf.len() >= len) {
            break;
        }
        if buf.len() > MAX_FIRST_MESSAGE {
            bail!("first message longer than {MAX_FIRST_MESSAGE} bytes");
        }
        if socket.read_buf(&mut buf).await? == 0 {
            bail!("closed before subscribing");
        }
    }
    socket.write_all(ack).await?;
    Ok(socket.into_std()?)
}

/// The whole length of the client frame at the start of `buf`, once its header is there.
fn frame_len(buf: &[u8]) -> anyhow::Result<Option<usize>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 == 0 {
        bail!("client frame not masked");
    }
    let (header, payload) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
        127 if buf.len() >= 10 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&buf[2..10]);
            (10, usize::try_from(u64::from_be_bytes(len))?)
        }
        126 | 127 => return Ok(None),
        n => (2, n as usize),
    };
    Ok(Some(header + 4 + payload))
}

struct Client {
    socket: TcpStream,
    /// Frames not yet (fully) written; the first may be partly written (`offset`).
    backlog: VecDeque<Bytes>,
    offset: usize,
    queued: usize,
}

impl Client {
    /// Writes as much of the backlog as the socket takes. `Err` drops the client.
    fn flush(&mut self) -> std::io::Result<()> {
        while !self.backlog.is_empty() {
            // Sized to what is queued (usually 1–15 frames), not to `MAX_IOV`: this runs
            // for every client every round.
            let slices: Vec<IoSlice<'_>> = self
                .backlog
                .iter()
                .take(MAX_IOV)
                .enumerate()
                .map(|(i, frame)| IoSlice::new(&frame[if i == 0 { self.offset } else { 0 }..]))
                .collect();
            let mut written = match self.socket.try_write_vectored(&slices) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error),
            };
            self.queued -= written;
            while written > 0 {
                let left = self.backlog[0].len() - self.offset;
                if written >= left {
                    written -= left;
                    self.offset = 0;
                    self.backlog.pop_front();
                } else {
                    self.offset += written;
                    written = 0;
                }
            }
        }
        Ok(())
    }
}

fn writer_thread(mut rx: mpsc::UnboundedReceiver<ToWriter>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("relay: cannot start a writer runtime");
        return;
    };
    runtime.block_on(async move {
        let mut clients: Vec<Client> = Vec::new();
        let mut round: Vec<Bytes> = Vec::new();
        let mut blocked = false;
        loop {
            // With a blocked client, come back within 1 ms even if nothing new arrives.
            let item = if blocked {
                match tokio::time::timeout(std::time::Duration::from_millis(1), rx.recv()).await {
                    Ok(item) => item,
                    Err(_) => {
                        blocked = write_round(&mut clients, &[]);
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            let Some(item) = item else {
                return;
            };
            let mut next = Some(item);
            while let Some(item) = next.take() {
                match item {
                    ToWriter::Frame(frame) => round.push(frame),
                    ToWriter::Client(socket) => {
                        if let Ok(socket) = TcpStream::from_std(socket) {
                            clients.push(Client {
                                socket,
                                backlog: VecDeque::new(),
                                offset: 0,
                                queued: 0,
                            });
                        }
                    }
                }
                if round.len() < MAX_IOV {
                    next = rx.try_recv().ok();
                }
            }
            blocked = write_round(&mut clients, &round);
            round.clear();
        }
    });
}

/// Appends `frames` to every client's backlog and writes what each socket takes; drops the
/// clients that failed or are too far behind. True when some client could not take it all.
fn write_round(clients: &mut Vec<Client>, frames: &[Bytes]) -> bool {
    let size: usize = frames.iter().map(Bytes::len).sum();
    let mut blocked = false;
    clients.retain_mut(|client| {
        client.backlog.extend(frames.iter().cloned());
        client.queued += size;
        if client.queued > MAX_BACKLOG || client.flush().is_err() {
            return false;
        }
        blocked |= !client.backlog.is_empty();
        true
    });
    blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_rfc_6455_header_for_each_length_class() {
        let short = text_frame(b"hi");
        assert_eq!(&short[..], b"\x81\x02hi");
        let medium = text_frame(&[b'a'; 300]);
        assert_eq!(&medium[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(medium.len(), 304);
        let long = text_frame(&vec![b'a'; 70_000]);
        assert_eq!(&long[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(long[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn client_frame_length_needs_the_header_and_a_mask() {
        assert_eq!(frame_len(&[0x81]).unwrap(), None);
        assert_eq!(frame_len(&[0x81, 0x85]).unwrap(), Some(2 + 4 + 5));
        assert_eq!(frame_len(&[0x81, 0xfe, 0x01]).unwrap(), None);
        assert_eq!(
            frame_len(&[0x81, 0xfe, 0x01, 0x00]).unwrap(),
            Some(4 + 4 + 256)
        );
        assert!(frame_len(&[0x81, 0x05]).is_err(), "unmasked client frame");
    }
}
