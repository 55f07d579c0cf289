//! Local order books kept from a book channel's snapshots and updates.
//!
//! The connection task applies every book message to the channel's [`BookMirror`] before the
//! application sees the event, checking that `seq` follows and that the gateway's checksum
//! matches; on any mismatch the mirror goes not-live and the task fetches a fresh snapshot by
//! itself. Reads ([`BookHandle`]) take a short lock and never wait on the network.

use book::{BookError, ChecksumAlgo, OrderBook};
use model::{BookDelta, BookSnapshot, Level};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// One mirrored book.
#[derive(Debug)]
pub(crate) struct BookMirror {
    book: OrderBook,
    epoch: Option<Arc<str>>,
    ts: i64,
}

impl BookMirror {
    fn new() -> Self {
        Self {
            book: OrderBook::new(ChecksumAlgo::Tickgate),
            epoch: None,
            ts: 0,
        }
    }

    /// Replaces the book (never merges); verifies the checksum if the snapshot has one.
    pub(crate) fn reset(&mut self, epoch: &Arc<str>, snap: &BookSnapshot) -> Result<(), BookError> {
        self.epoch = Some(epoch.clone());
        self.ts = snap.exchange_ts.0;
        self.book.apply_snapshot(snap)
    }

    /// Applies an update whose seq the caller has checked follows the book's.
    pub(crate) fn update(&mut self, delta: &BookDelta) -> Result<(), BookError> {
        self.ts = delta.exchange_ts.0;
        self.book.apply_delta(delta).map(|_| ())
    }

    /// The book can no longer be trusted (a resync notice, a lost resume).
    pub(crate) fn invalidate(&mut self) {
        self.book.mark_stale(book::StaleReason::Gap);
    }

    pub(crate) fn is_live(&self) -> bool {
        self.book.is_live()
    }
}

type Shared = Arc<RwLock<BookMirror>>;

/// Every mirrored book, by channel name; shared by the connection task and the handles.
#[derive(Debug, Clone, Default)]
pub(crate) struct Books {
    inner: Arc<RwLock<HashMap<Arc<str>, Shared>>>,
}

impl Books {
    pub(crate) fn add(&self, channel: &Arc<str>) -> Arc<RwLock<BookMirror>> {
        self.inner
            .write()
            .entry(channel.clone())
            .or_insert_with(|| Arc::new(RwLock::new(BookMirror::new())))
            .clone()
    }

    pub(crate) fn remove(&self, channel: &str) {
        self.inner.write().remove(channel);
    }

    pub(crate) fn get(&self, channel: &str) -> Option<BookHandle> {
        let mirror = self.inner.read().get(channel)?.clone();
        Some(BookHandle {
            channel: channel.into(),
            mirror,
        })
    }
}

/// A read view of one mirrored book (cheap to clone). Reads reflect every event the connection
/// task has processed, which may be ahead of the events the application has taken.
#[derive(Debug, Clone)]
pub struct BookHandle {
    channel: Arc<str>,
    mirror: Arc<RwLock<BookMirror>>,
}

/// A consistent copy of a mirrored book's top levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookView {
    pub channel: Arc<str>,
    pub epoch: Option<Arc<str>>,
    /// The channel seq of the last message applied.
    pub seq: u64,
    /// False while the book is being rebuilt (levels are then empty).
    pub live: bool,
    /// Best first.
    pub bids: Vec<Level>,
    /// Best first.
    pub asks: Vec<Level>,
    /// Tickgate checksum of the whole book (equals the gateway's at the same seq).
    pub checksum: u32,
    /// Exchange time of the last message applied, µs.
    pub ts: i64,
}

impl BookHandle {
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Best bid and best ask, `None` while not live or when a side is empty.
    pub fn best(&self) -> (Option<Level>, Option<Level>) {
        let m = self.mirror.read();
        if !m.book.is_live() {
            return (None, None);
        }
        (m.book.best_bid(), m.book.best_ask())
    }

    /// The seq of the last message applied.
    pub fn seq(&self) -> u64 {
        self.mirror.read().book.seq()
    }

    pub fn is_live(&self) -> bool {
        self.mirror.read().book.is_live()
    }

    /// The top `depth` levels per side with seq, epoch and checksum, read atomically.
    pub fn view(&self, depth: usize) -> BookView {
        let m = self.mirror.read();
        let live = m.book.is_live();
        let (bids, asks) = if live {
            m.book.top(depth)
        } else {
            (Vec::new(), Vec::new())
        };
        BookView {
            channel: self.channel.clone(),
            epoch: m.epoch.clone(),
            seq: m.book.seq(),
            live,
            bids,
            asks,
            checksum: if live { m.book.checksum() } else { 0 },
            ts: m.ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    fn lv(p: &str, s: &str) -> Level {
        Level::new(parse_decimal(p).unwrap(), parse_decimal(s).unwrap())
    }

    #[test]
    fn mirror_verifies_checksums_and_goes_not_live_on_mismatch() {
        let books = Books::default();
        let name: Arc<str> = "book:sim:BTC-USDT".into();
        let mirror = books.add(&name);
        let handle = books.get(&name).unwrap();
        let (bids, asks) = (vec![lv("99", "1")], vec![lv("101", "2")]);
        let sum = book::checksum::tickgate_checksum(&bids, &asks);
        let epoch: Arc<str> = "e".into();
        let snap = BookSnapshot {
            seq: 5,
            bids,
            asks: asks.clone(),
            checksum: Some(sum),
            ..Default::default()
        };
        mirror.write().reset(&epoch, &snap).unwrap();
        assert_eq!(handle.best(), (Some(lv("99", "1")), Some(lv("101", "2"))));
        let after = book::checksum::tickgate_checksum(&[lv("99", "1"), lv("98", "3")], &asks);
        let delta = |seq, bid, checksum| BookDelta {
            first_seq: seq,
            last_seq: seq,
            bids: vec![bid],
            checksum: Some(checksum),
            ..Default::default()
        };
        mirror
            .write()
            .update(&delta(6, lv("98", "3"), after))
            .unwrap();
        assert_eq!(handle.view(10).seq, 6);
        assert_eq!(handle.view(10).checksum, after);
        let err = mirror
            .write()
            .update(&delta(7, lv("97", "1"), after))
            .unwrap_err();
        assert!(matches!(err, BookError::ChecksumMismatch { .. }));
        assert!(!handle.is_live());
        assert_eq!(handle.best(), (None, None), "a wrong book is never served");
    }
}
