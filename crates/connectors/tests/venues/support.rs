//! A reference consumer: applies connector events to order books exactly as the ingest stage
//! does (resync command on any terminal book error), and records everything for assertions.

use book::{BookError, ChecksumAlgo, OrderBook};
use connectors::{Command, ConnectionState, Connector, ConnectorContext, FeedEvent};
use model::{Instrument, Level, Symbol, Trade, VenueTicker};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct Seen {
    pub books: HashMap<Symbol, OrderBook>,
    pub snapshots: HashMap<Symbol, usize>,
    pub book_errors: Vec<(Symbol, String)>,
    pub unsynced: HashMap<Symbol, usize>,
    pub statuses: Vec<(ConnectionState, String)>,
    pub trades: HashMap<Symbol, Vec<Trade>>,
    /// The venue's own tickers, in order.
    pub tickers: HashMap<Symbol, Vec<VenueTicker>>,
    pub invalid: Vec<(Option<Symbol>, String)>,
    pub instruments: Vec<Instrument>,
    /// Every event received, in order.
    pub log: Vec<FeedEvent>,
    pending: HashMap<Symbol, bool>,
}

impl Seen {
    pub fn snapshots(&self, symbol: &str) -> usize {
        self.snapshots.get(&sym(symbol)).copied().unwrap_or(0)
    }

    pub fn live(&self, symbol: &str) -> bool {
        self.books.get(&sym(symbol)).is_some_and(OrderBook::is_live)
    }

    pub fn top(&self, symbol: &str, n: usize) -> Option<(Vec<Level>, Vec<Level>)> {
        self.books
            .get(&sym(symbol))
            .filter(|b| b.is_live())
            .map(|b| b.top(n))
    }
}

pub fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

pub struct Harness {
    pub seen: Arc<Mutex<Seen>>,
    pub shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub fn start(connector: Box<dyn Connector>, algo: ChecksumAlgo, depth: Option<usize>) -> Self {
        let (event_tx, mut event_rx) = mpsc::channel(1024);
        let (command_tx, command_rx) = mpsc::channel(256);
        let shutdown = CancellationToken::new();
        let ctx = ConnectorContext {
            events: event_tx,
            commands: command_rx,
            shutdown: shutdown.clone(),
        };
        tokio::spawn(async move {
            let _ = connector.run(ctx).await;
        });
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let commands = command_tx;
        let task = tokio::spawn(async move {
            while let Some(batch) = event_rx.recv().await {
                let mut s = state.lock().unwrap();
                for event in batch {
                    s.log.push(event.clone());
                    apply(&mut s, event, algo, depth, &commands);
                }
            }
        });
        Self {
            seen,
            shutdown,
            task,
        }
    }

    /// Waits (up to `secs`) until `cond` holds; panics with `what` otherwise.
    pub async fn wait(&self, secs: u64, what: &str, mut cond: impl FnMut(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if cond(&self.seen.lock().unwrap()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let s = self.seen.lock().unwrap();
                panic!(
                    "timed out waiting for {what}; snapshots {:?}, errors {:?}, invalid {:?}, statuses {:?}",
                    s.snapshots, s.book_errors, s.invalid, s.statuses
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Moves the mock's market (`step`) until `cond` holds, for at most 10 s.
    pub async fn drive(&self, what: &str, step: impl Fn(), cond: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.with(&cond) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out: {what}; {:?}",
                self.with(|s| (
                    s.snapshots.clone(),
                    s.book_errors.clone(),
                    s.invalid.clone()
                ))
            );
            step();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        f(&self.seen.lock().unwrap())
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

fn apply(
    s: &mut Seen,
    event: FeedEvent,
    algo: ChecksumAlgo,
    depth: Option<usize>,
    commands: &mpsc::Sender<Command>,
) {
    let new_book = || {
        let book = OrderBook::new(algo);
        match depth {
            Some(d) => book.with_max_depth(d),
            None => book,
        }
    };
    match event {
        FeedEvent::Instruments(list) => s.instruments = list,
        FeedEvent::BookSnapshot { symbol, snapshot } => {
            *s.snapshots.entry(symbol.clone()).or_default() += 1;
            let book = s.books.entry(symbol.clone()).or_insert_with(new_book);
            match book.apply_snapshot(&snapshot) {
                Ok(()) => {
                    s.pending.insert(symbol, false);
                }
                Err(error) => fail(s, symbol, &error, commands),
            }
        }
        FeedEvent::BookDelta { symbol, delta } => {
            let book = s.books.entry(symbol.clone()).or_insert_with(new_book);
            match book.apply_delta(&delta) {
                Ok(_) => {}
                Err(BookError::NotLive) => {
                    if !s.pending.get(&symbol).copied().unwrap_or(false) {
                        fail(s, symbol, &BookError::NotLive, commands);
                    }
                }
                Err(error) => fail(s, symbol, &error, commands),
            }
        }
        FeedEvent::Trade { symbol, trade } => s.trades.entry(symbol).or_default().push(trade),
        FeedEvent::Ticker { symbol, ticker } => s.tickers.entry(symbol).or_default().push(ticker),
        // Perpetual figures are read from `log`.
        FeedEvent::Funding { .. }
        | FeedEvent::Mark { .. }
        | FeedEvent::OpenInterest { .. }
        | FeedEvent::Liquidation { .. } => {}
        FeedEvent::Invalid {
            symbol,
            reason,
            cause,
        } => {
            if let Some(symbol) = &symbol {
                if let Some(book) = s.books.get_mut(symbol) {
                    book.mark_stale(book::StaleReason::InvalidLevel);
                }
                let _ = commands.try_send(Command::Resync(symbol.clone()));
                s.pending.insert(symbol.clone(), true);
            }
            // The cause first, so a test can check the label ingest will count.
            s.invalid
                .push((symbol, format!("{}: {reason}", cause.as_str())));
        }
        FeedEvent::Unsynced { symbol, .. } => {
            *s.unsynced.entry(symbol.clone()).or_default() += 1;
            if let Some(book) = s.books.get_mut(&symbol) {
                book.mark_stale(book::StaleReason::Requested);
            }
            s.pending.insert(symbol, true);
        }
        FeedEvent::Status { state, detail } => s.statuses.push((state, detail)),
        FeedEvent::Chain(_) => {}
    }
}

fn fail(s: &mut Seen, symbol: Symbol, error: &BookError, commands: &mpsc::Sender<Command>) {
    s.book_errors
        .push((symbol.clone(), error.code().to_string()));
    s.pending.insert(symbol.clone(), true);
    let _ = commands.try_send(Command::Resync(symbol));
}

/// Fast timers for tests.
pub fn fast_feed() -> connectors::settings::FeedSettings {
    connectors::settings::FeedSettings {
        backoff_base_ms: 50,
        backoff_cap_ms: 400,
        stable_after_secs: 1,
        connect_timeout_secs: 2,
        ack_timeout_secs: 2,
        stale_after_secs: 30,
        silence_secs: 5,
        ..Default::default()
    }
}
