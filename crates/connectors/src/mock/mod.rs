//! Mock venues for tests: local servers speaking each venue's documented WebSocket and REST
//! protocol, driven step by step by the test, with fault switches.
//!
//! Each mock keeps the **ground truth** book of every symbol; a test compares the gateway's
//! book with [`MockBook::top`] after recovery. Markets move only when the test calls `step`, so
//! tests are deterministic apart from network timing.
//!
//! Fault switches ([`Faults`]): refuse connections, drop every connection, delay (or withhold)
//! subscription acks, go silent, and per-venue message faults (skip a sequence number,
//! duplicate, reorder, bad frame, wrong checksum, `serverShutdown`, an OKX re-snapshot).
//!
//! [`anvil`] runs a real local EVM chain for the on-chain tests.

pub mod anvil;
pub mod binance;
pub mod bybit;
pub mod coinbase;
pub mod hyperliquid;
pub mod kraken;
pub mod okx;

use crate::conn::backoff::Rng;
use model::{Decimal, Level};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Connection-level fault switches, shared by every mock.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answer WebSocket upgrades with 503.
    pub refuse: AtomicBool,
    /// Send nothing at all (no data, no acks, no heartbeats, no pings) while set.
    pub silent: AtomicBool,
    /// Delay each subscription ack by this many ms (`u64::MAX`: never ack).
    pub ack_delay_ms: std::sync::atomic::AtomicU64,
}

/// What every mock records about its clients.
#[derive(Debug)]
pub struct Control {
    pub faults: Faults,
    /// WebSocket upgrade attempts (accepted or refused), with their time.
    pub attempts: Mutex<Vec<Instant>>,
    /// Connections currently open.
    pub open: AtomicUsize,
    /// Frames clients sent, with their time and connection number.
    pub frames_in: Mutex<Vec<(Instant, usize, String)>>,
    next_conn: AtomicUsize,
    kick: broadcast::Sender<()>,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            faults: Faults::default(),
            attempts: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            frames_in: Mutex::new(Vec::new()),
            next_conn: AtomicUsize::new(0),
            kick: broadcast::channel(4).0,
        }
    }
}

impl Control {
    /// Closes every open connection now.
    pub fn drop_connections(&self) {
        let _ = self.kick.send(());
    }

    pub fn set_silent(&self, on: bool) {
        self.faults.silent.store(on, Ordering::SeqCst);
    }

    pub fn set_refuse(&self, on: bool) {
        self.faults.refuse.store(on, Ordering::SeqCst);
    }

    pub fn set_ack_delay(&self, delay: Option<Duration>) {
        let ms = delay.map_or(u64::MAX, |d| d.as_millis() as u64);
        self.faults.ack_delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn silent(&self) -> bool {
        self.faults.silent.load(Ordering::SeqCst)
    }

    pub fn attempts(&self) -> Vec<Instant> {
        lock(&self.attempts).clone()
    }

    pub fn frames_in(&self) -> Vec<(Instant, usize, String)> {
        lock(&self.frames_in).clone()
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Registers an upgrade attempt; `None` if refused.
    pub(crate) fn admit(&self) -> Option<usize> {
        lock(&self.attempts).push(Instant::now());
        if self.faults.refuse.load(Ordering::SeqCst) {
            return None;
        }
        Some(self.next_conn.fetch_add(1, Ordering::SeqCst))
    }

    pub(crate) fn record_in(&self, conn: usize, text: &str) {
        lock(&self.frames_in).push((Instant::now(), conn, text.to_string()));
    }

    pub(crate) fn kicked(&self) -> broadcast::Receiver<()> {
        self.kick.subscribe()
    }

    /// The ack delay, `None` = never.
    pub(crate) fn ack_delay(&self) -> Option<Duration> {
        match self.faults.ack_delay_ms.load(Ordering::SeqCst) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts an open connection for as long as it lives.
pub(crate) struct OpenGuard<'a>(&'a AtomicUsize);

impl<'a> OpenGuard<'a> {
    pub(crate) fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A ground-truth L2 book that moves randomly but never crosses: bids stay below a fixed mid,
/// asks above. Prices keep a fixed scale and sizes a fixed scale, like a real venue's strings.
#[derive(Debug, Clone)]
pub struct MockBook {
    pub bids: BTreeMap<Decimal, Level>,
    pub asks: BTreeMap<Decimal, Level>,
    mid_ticks: i64,
    price_scale: u32,
    size_scale: u32,
}

impl MockBook {
    /// A book of `levels` levels a side around `mid_ticks` (price = ticks × 10^-price_scale).
    pub fn new(
        mid_ticks: i64,
        price_scale: u32,
        size_scale: u32,
        levels: i64,
        rng: &mut Rng,
    ) -> Self {
        let mut book = Self {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            mid_ticks,
            price_scale,
            size_scale,
        };
        for i in 1..=levels {
            let size = book.size(rng);
            let bid = book.level(mid_ticks - i, size);
            book.bids.insert(bid.price, bid);
            let size = book.size(rng);
            let ask = book.level(mid_ticks + i, size);
            book.asks.insert(ask.price, ask);
        }
        book
    }

    fn size(&self, rng: &mut Rng) -> i64 {
        1 + rng.below(5_000) as i64
    }

    fn level(&self, ticks: i64, lots: i64) -> Level {
        Level::new(
            Decimal::new(ticks, self.price_scale),
            Decimal::new(lots, self.size_scale),
        )
    }

    /// One random change near the top: `(is_bid, level)`, size 0 = removed. Applied to the truth.
    pub fn change(&mut self, rng: &mut Rng) -> (bool, Level) {
        let bid = rng.below(2) == 0;
        let distance = 1 + rng.below(30) as i64;
        let ticks = if bid {
            self.mid_ticks - distance
        } else {
            self.mid_ticks + distance
        };
        let lots = if rng.below(5) == 0 { 0 } else { self.size(rng) };
        let level = self.level(ticks, lots);
        let side = if bid { &mut self.bids } else { &mut self.asks };
        if lots == 0 {
            side.remove(&level.price);
        } else {
            side.insert(level.price, level);
        }
        (bid, level)
    }

    /// Bids best first, asks best first, at most `n` each.
    pub fn top(&self, n: usize) -> (Vec<Level>, Vec<Level>) {
        (
            self.bids.values().rev().take(n).copied().collect(),
            self.asks.values().take(n).copied().collect(),
        )
    }

    /// Drops levels beyond `depth` a side (venues that publish a fixed depth).
    pub fn truncate(&mut self, depth: usize) {
        while self.bids.len() > depth {
            self.bids.pop_first();
        }
        while self.asks.len() > depth {
            self.asks.pop_last();
        }
    }
}

/// What every mock venue's handlers share: its fault switches, its market (the ground truth)
/// and the broadcast of outgoing messages (`T`) to open connections.
pub(crate) struct Shared<M, T> {
    pub(crate) control: Arc<Control>,
    pub(crate) market: Arc<Mutex<M>>,
    pub(crate) tx: broadcast::Sender<T>,
}

impl<M, T> Clone for Shared<M, T> {
    fn clone(&self) -> Self {
        Self {
            control: self.control.clone(),
            market: self.market.clone(),
            tx: self.tx.clone(),
        }
    }
}

impl<M: Send + 'static, T: Clone + Send + 'static> Shared<M, T> {
    /// Serves `routes` over the state of `market` on 127.0.0.1 with an ephemeral port (the
    /// server stops when the runtime does); returns the address and the state.
    pub(crate) async fn serve(
        market: M,
        routes: axum::Router<Self>,
    ) -> std::io::Result<(SocketAddr, Self)> {
        let state = Self {
            control: Arc::new(Control::default()),
            market: Arc::new(Mutex::new(market)),
            tx: broadcast::channel(65_536).0,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = routes.with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok((addr, state))
    }
}

/// A deterministic generator for a mock.
pub(crate) fn rng(seed: u64) -> Rng {
    Rng::new(seed)
}
