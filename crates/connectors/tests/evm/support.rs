//! Running an EVM connector in a test: its events collected, a proxy that can cut its
//! WebSocket connection, and the checks every test makes on the story it told.

use connectors::venue::evm::{EvmConnector, EvmSpec};
use connectors::{ChainItem, ConnectionState, Connector, ConnectorContext, FeedEvent};
use model::Trade;
use model::onchain::{ChainBlock, ChainLog, ChainStatus, Hash32};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything a connector sent, in order.
#[derive(Debug, Default)]
pub struct Seen {
    pub blocks: Vec<ChainBlock>,
    pub logs: Vec<ChainLog>,
    pub trades: Vec<(String, String, Trade)>,
    pub statuses: Vec<(ConnectionState, String)>,
}

impl Seen {
    /// Logs with this status, as `(block hash, log index)`.
    pub fn logs_with(&self, status: ChainStatus) -> Vec<&ChainLog> {
        self.logs.iter().filter(|l| l.status == status).collect()
    }

    /// The promise: each log is pending at most once and closed (confirmed or retracted) at
    /// most once, and a retracted one was pending before.
    pub fn check_story(&self) {
        let mut state: HashMap<(Hash32, u64), Vec<ChainStatus>> = HashMap::new();
        for log in &self.logs {
            state
                .entry((log.block_hash, log.log_index))
                .or_default()
                .push(log.status);
        }
        for (key, statuses) in &state {
            use ChainStatus::*;
            let ok = matches!(
                statuses.as_slice(),
                [Pending] | [Pending, Confirmed] | [Pending, Retracted] | [Confirmed]
            );
            assert!(ok, "log {key:?} went {statuses:?}");
        }
        let mut blocks: HashMap<Hash32, Vec<ChainStatus>> = HashMap::new();
        for b in &self.blocks {
            blocks.entry(b.hash).or_default().push(b.status);
        }
        for (hash, statuses) in &blocks {
            use ChainStatus::*;
            let ok = matches!(
                statuses.as_slice(),
                [Pending] | [Pending, Confirmed] | [Pending, Retracted] | [Confirmed]
            );
            assert!(ok, "block {hash:?} went {statuses:?}");
        }
    }
}

pub struct Running {
    pub seen: Arc<parking_lot::Mutex<Seen>>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    collector: JoinHandle<()>,
}

impl Running {
    pub fn start(spec: EvmSpec) -> Self {
        let connector = EvmConnector::new(spec, "evm").expect("valid spec");
        let (events, mut rx) = mpsc::channel(1024);
        let (_commands_tx, commands) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let ctx = ConnectorContext {
            events,
            commands,
            shutdown: shutdown.clone(),
        };
        let task = tokio::spawn(async move {
            let _keep = _commands_tx;
            let _ = Box::new(connector).run(ctx).await;
        });
        let seen = Arc::new(parking_lot::Mutex::new(Seen::default()));
        let sink = seen.clone();
        let collector = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let mut s = sink.lock();
                for event in batch {
                    match event {
                        FeedEvent::Chain(items) => {
                            for item in items {
                                match item {
                                    ChainItem::Block(b) => s.blocks.push(b),
                                    ChainItem::Log(l) => s.logs.push(l),
                                    ChainItem::Trade {
                                        venue,
                                        symbol,
                                        trade,
                                    } => s.trades.push((
                                        venue.to_string(),
                                        symbol.to_string(),
                                        trade,
                                    )),
                                }
                            }
                        }
                        FeedEvent::Status { state, detail } => s.statuses.push((state, detail)),
                        _ => {}
                    }
                }
            }
        });
        Self {
            seen,
            shutdown,
            task,
            collector,
        }
    }

    /// Waits (up to 20 s) until `done` holds on what was seen.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        for _ in 0..400 {
            if done(&self.seen.lock()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}",
            self.seen.lock().statuses
        );
    }

    /// Stops the connector; returns everything it sent.
    pub async fn stop(self) -> Seen {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.collector).await;
        std::mem::take(&mut *self.seen.lock())
    }
}

/// A TCP proxy in front of a node's port: `cut` closes every connection and refuses new ones
/// until `restore`.
pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (d, c) = (down.clone(), cut.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = c.notified() => {}
                    }
                });
            }
        });
        Self {
            port,
            down,
            cut,
            task,
        }
    }

    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}
