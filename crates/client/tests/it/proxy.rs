//! A TCP proxy between the SDK and the gateway that can cut connections, refuse new ones,
//! stall traffic, and drop WebSocket frames from the server (it parses the server's
//! unmasked frames). It also records each connection's HTTP request head.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug)]
struct Faults {
    target: SocketAddr,
    next_conn: AtomicU64,
    /// Connections with an id below this are cut.
    cut_before: watch::Sender<u64>,
    /// Connections with an id below this stop forwarding (until cut).
    stall_before: AtomicU64,
    refuse: AtomicBool,
    /// Server → client `update` frames still to drop, and the text they must contain.
    drop_updates: AtomicU32,
    drop_filter: parking_lot::Mutex<String>,
    dropped: AtomicU32,
    heads: parking_lot::Mutex<Vec<String>>,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    faults: Arc<Faults>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(Faults {
            target,
            next_conn: AtomicU64::new(0),
            cut_before: watch::channel(0).0,
            stall_before: AtomicU64::new(0),
            refuse: AtomicBool::new(false),
            drop_updates: AtomicU32::new(0),
            drop_filter: parking_lot::Mutex::new(String::new()),
            dropped: AtomicU32::new(0),
            heads: parking_lot::Mutex::new(Vec::new()),
        });
        let f = faults.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if f.refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let id = f.next_conn.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(f.clone(), id, client));
            }
        });
        Self { addr, faults }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every open connection.
    pub fn cut(&self) {
        let next = self.faults.next_conn.load(Ordering::SeqCst);
        self.faults.cut_before.send_replace(next);
    }

    /// New connections are accepted and closed at once while set.
    pub fn refuse(&self, on: bool) {
        self.faults.refuse.store(on, Ordering::SeqCst);
    }

    /// Open connections stop forwarding in both directions (a half-dead network path).
    pub fn stall_open_connections(&self) {
        let next = self.faults.next_conn.load(Ordering::SeqCst);
        self.faults.stall_before.store(next, Ordering::SeqCst);
    }

    /// Drops the next `n` server `update` frames whose text contains `filter`.
    pub fn drop_updates(&self, n: u32, filter: &str) {
        *self.faults.drop_filter.lock() = filter.to_string();
        self.faults.drop_updates.store(n, Ordering::SeqCst);
    }

    pub fn dropped(&self) -> u32 {
        self.faults.dropped.load(Ordering::SeqCst)
    }

    /// The HTTP request heads seen, one per connection, in order.
    pub fn heads(&self) -> Vec<String> {
        self.faults.heads.lock().clone()
    }

    pub fn connections(&self) -> u64 {
        self.faults.next_conn.load(Ordering::SeqCst)
    }
}

async fn serve(f: Arc<Faults>, id: u64, client: TcpStream) {
    let Ok(server) = TcpStream::connect(f.target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut cut = f.cut_before.subscribe();
    let up = {
        let f = f.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut head = Vec::new();
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if head.len() < 4096 && !head.ends_with(b"\r\n\r\n") {
                    head.extend_from_slice(&buf[..n]);
                    if let Some(end) = find(&head, b"\r\n\r\n") {
                        let text = String::from_utf8_lossy(&head[..end]).to_string();
                        f.heads.lock().push(text);
                        head.truncate(end + 4);
                    }
                }
                wait_unstalled(&f, id).await;
                if sw.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        let mut upgraded = false;
        // Plain HTTP (REST) passes through untouched; only upgraded connections are framed.
        let mut websocket = true;
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            let mut out = Vec::with_capacity(pending.len());
            if !upgraded {
                let Some(end) = find(&pending, b"\r\n\r\n") else {
                    continue;
                };
                websocket = pending.starts_with(b"HTTP/1.1 101");
                out.extend(pending.drain(..end + 4));
                upgraded = true;
            }
            if !websocket {
                out.append(&mut pending);
            }
            while let Some(len) = frame_len(&pending) {
                let frame: Vec<u8> = pending.drain(..len).collect();
                if !should_drop(&f, &frame) {
                    out.extend_from_slice(&frame);
                }
            }
            wait_unstalled(&f, id).await;
            if cw.write_all(&out).await.is_err() {
                return;
            }
        }
    };
    let cut_me = async move {
        loop {
            if *cut.borrow_and_update() > id {
                return;
            }
            if cut.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
        () = cut_me => {}
    }
}

async fn wait_unstalled(f: &Faults, id: u64) {
    if f.stall_before.load(Ordering::SeqCst) > id {
        std::future::pending::<()>().await;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Length of the complete frame at the start of `buf` (server frames are unmasked).
fn frame_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 2 {
        return None;
    }
    let (len, header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let mask = if buf[1] & 0x80 != 0 { 4 } else { 0 };
    let total = header + mask + len;
    (buf.len() >= total).then_some(total)
}

fn should_drop(f: &Faults, frame: &[u8]) -> bool {
    // A final text frame with an update for the filtered channel.
    if frame[0] != 0x81 || f.drop_updates.load(Ordering::SeqCst) == 0 {
        return false;
    }
    let start = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let payload = String::from_utf8_lossy(&frame[start..]);
    let filter = f.drop_filter.lock().clone();
    if !(payload.contains("\"type\":\"update\"") && payload.contains(&filter)) {
        return false;
    }
    if f.drop_updates
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        f.dropped.fetch_add(1, Ordering::SeqCst);
        return true;
    }
    false
}
