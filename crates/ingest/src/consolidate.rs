//! Consolidated cross-venue views: `book:all:{SYM}`, `ticker:all:{SYM}` and, for perpetuals,
//! `funding:all:{SYM}` (each member venue's latest funding side by side).
//!
//! A [`Group`] names the venue instruments that count as one instrument. By default
//! ([`default_groups`]) only identical normalized symbols are merged, so `BTC-USD` (Coinbase,
//! Kraken) and `BTC-USDT` (Binance) stay apart; the config can merge them explicitly.
//!
//! Every `interval` the [`Consolidator`] reads a consistent view of each member's live book,
//! sums sizes per price, keeps the best `depth` levels a side, and publishes the difference
//! from what it published last as a book delta (the first time, and after every member was
//! lost, as a snapshot). A member whose book is not live is left out, never merged stale; when
//! no member is live the consolidated book is marked stale (subscribers get a `resync` notice).
//! Consolidated books may cross (venues disagree), so they are the one book kind allowed to.
//!
//! `funding:all` lists, by venue name, the latest funding of every member that has sent one
//! (whatever its book's state: funding does not depend on it), and is published when that list
//! changes. Rates are each venue's own, for its own interval (never rescaled).

use crate::market::Market;
use hub::{Bus, CacheMode, Publisher};
use model::{
    BookDelta, BookSnapshot, Channel, ChannelKind, Decimal, Level, Symbol, Ticker, TickerSource,
    Timestamp, Venue, VenueFunding,
};
use protocol::DataMessage;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Venue instruments merged under one consolidated symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub symbol: Symbol,
    pub members: Vec<(Venue, Symbol)>,
}

/// One group per distinct symbol served by any venue, with every venue serving exactly it.
pub fn default_groups(venues: &[(Venue, Vec<Symbol>)]) -> Vec<Group> {
    let mut groups: BTreeMap<Symbol, Vec<(Venue, Symbol)>> = BTreeMap::new();
    for (venue, symbols) in venues {
        for symbol in symbols {
            groups
                .entry(symbol.clone())
                .or_default()
                .push((venue.clone(), symbol.clone()));
        }
    }
    groups
        .into_iter()
        .map(|(symbol, members)| Group { symbol, members })
        .collect()
}

/// Bids and asks of a consolidated book, keyed by price.
type Sides = (BTreeMap<Decimal, Level>, BTreeMap<Decimal, Level>);

#[derive(Debug)]
struct GroupState {
    group: Group,
    book: Arc<dyn Publisher>,
    ticker: Arc<dyn Publisher>,
    /// `funding:all:SYM`, for a perpetual group only.
    funding: Option<Arc<dyn Publisher>>,
    /// What the consolidated book channel holds (None: nothing live was published).
    published: Option<Sides>,
    seq: u64,
    last_ticker: Option<Ticker>,
    last_funding: Vec<VenueFunding>,
}

/// Maintains the consolidated channels.
#[derive(Debug)]
pub struct Consolidator {
    market: Arc<Market>,
    depth: usize,
    groups: Vec<GroupState>,
}

impl Consolidator {
    /// Registers `book:all:SYM` and `ticker:all:SYM` for each group, and `funding:all:SYM` for
    /// each perpetual one.
    pub fn new(hub: Arc<dyn Bus>, market: Arc<Market>, groups: Vec<Group>, depth: usize) -> Self {
        let all = Venue::new(Venue::ALL).expect("\"all\" is a valid venue name");
        let groups = groups
            .into_iter()
            .map(|group| {
                let channel = |kind| Channel::new(kind, all.clone(), group.symbol.clone());
                GroupState {
                    book: hub.publisher(channel(ChannelKind::Book), CacheMode::MergedBook),
                    ticker: hub.publisher(channel(ChannelKind::Ticker), CacheMode::Latest),
                    funding: group
                        .symbol
                        .is_perpetual()
                        .then(|| hub.publisher(channel(ChannelKind::Funding), CacheMode::Latest)),
                    group,
                    published: None,
                    seq: 0,
                    last_ticker: None,
                    last_funding: Vec::new(),
                }
            })
            .collect();
        Self {
            market,
            depth: depth.max(1),
            groups,
        }
    }

    /// Runs [`Consolidator::refresh`] every `interval` until shutdown.
    pub async fn run(mut self, interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => self.refresh(),
            }
        }
    }

    /// Recomputes every group and publishes what changed.
    pub fn refresh(&mut self) {
        for index in 0..self.groups.len() {
            self.refresh_funding(index);
            self.refresh_group(index);
        }
    }

    /// Publishes the group's `funding:all` when a member's funding changed.
    fn refresh_funding(&mut self, index: usize) {
        let market = &self.market;
        let g = &mut self.groups[index];
        let Some(publisher) = &g.funding else {
            return;
        };
        let (mut ts, mut recv_ts) = (0i64, 0i64);
        let mut venues = Vec::new();
        for (venue, symbol) in &g.group.members {
            let Some(entry) = market.get(venue, symbol) else {
                continue;
            };
            let Some((funding, received)) = entry.aggregates.lock().funding.clone() else {
                continue;
            };
            ts = ts.max(funding.ts.0);
            recv_ts = recv_ts.max(received.0);
            venues.push(VenueFunding {
                venue: venue.clone(),
                symbol: symbol.clone(),
                funding,
            });
        }
        venues.sort_by(|a, b| {
            (a.venue.as_str(), a.symbol.as_str()).cmp(&(b.venue.as_str(), b.symbol.as_str()))
        });
        if venues.is_empty() || venues == g.last_funding {
            return;
        }
        publisher.publish(DataMessage {
            ts,
            recv_ts,
            funding_all: Some(venues.clone()),
            ..Default::default()
        });
        g.last_funding = venues;
    }

    fn refresh_group(&mut self, index: usize) {
        let (market, depth) = (&self.market, self.depth);
        let g = &mut self.groups[index];
        let mut bids: BTreeMap<Decimal, Decimal> = BTreeMap::new();
        let mut asks: BTreeMap<Decimal, Decimal> = BTreeMap::new();
        let (mut ts, mut recv_ts, mut live) = (0i64, 0i64, 0usize);
        let mut tickers = Vec::new();
        for (venue, symbol) in &g.group.members {
            // The member's book through its owner (the venue ingest task's publisher), not a
            // read back through the subscribers' side of the bus.
            let Some(entry) = market.get(venue, symbol) else {
                continue;
            };
            let Some(view) = entry.book.get().and_then(|b| b.book_view(depth)) else {
                continue;
            };
            tickers.push(entry.aggregates.lock().ticker.ticker().clone());
            if !view.live {
                continue;
            }
            live += 1;
            ts = ts.max(view.ts);
            recv_ts = recv_ts.max(view.recv_ts);
            for l in view.bids {
                *bids.entry(l.price).or_default() += l.size;
            }
            for l in view.asks {
                *asks.entry(l.price).or_default() += l.size;
            }
        }
        if live == 0 {
            if g.published.take().is_some() {
                g.book.book_stale(book::StaleReason::Requested);
            }
            return;
        }
        let top_bids: BTreeMap<Decimal, Level> = bids
            .into_iter()
            .rev()
            .take(depth)
            .map(|(p, s)| (p, Level::new(p, s)))
            .collect();
        let top_asks: BTreeMap<Decimal, Level> = asks
            .into_iter()
            .take(depth)
            .map(|(p, s)| (p, Level::new(p, s)))
            .collect();
        let (exchange_ts, recv_ts) = (Timestamp(ts), Timestamp(recv_ts));
        match &g.published {
            None => {
                g.seq += 1;
                let snapshot = BookSnapshot {
                    seq: g.seq,
                    bids: top_bids.values().rev().copied().collect(),
                    asks: top_asks.values().copied().collect(),
                    exchange_ts,
                    recv_ts,
                    checksum: None,
                };
                if g.book.book_snapshot(&snapshot).is_ok() {
                    g.published = Some((top_bids, top_asks));
                }
            }
            Some((old_bids, old_asks)) => {
                let bid_changes = diff(old_bids, &top_bids);
                let ask_changes = diff(old_asks, &top_asks);
                if !bid_changes.is_empty() || !ask_changes.is_empty() {
                    g.seq += 1;
                    let delta = BookDelta {
                        first_seq: g.seq,
                        last_seq: g.seq,
                        bids: bid_changes,
                        asks: ask_changes,
                        exchange_ts,
                        recv_ts,
                        checksum: None,
                    };
                    if g.book.book_delta(&delta).is_ok() {
                        g.published = Some((top_bids, top_asks));
                    } else {
                        g.published = None;
                    }
                }
            }
        }
        let ticker = merge_tickers(&tickers, g.published.as_ref());
        if g.last_ticker.as_ref() != Some(&ticker) {
            g.ticker.publish(DataMessage {
                ts: ticker.ts.0,
                recv_ts: recv_ts.0,
                ticker: Some(ticker.clone()),
                ..Default::default()
            });
            g.last_ticker = Some(ticker);
        }
    }
}

/// Levels that changed from `old` to `new` (removed ones with size 0).
fn diff(old: &BTreeMap<Decimal, Level>, new: &BTreeMap<Decimal, Level>) -> Vec<Level> {
    let mut out = Vec::new();
    for (price, level) in old {
        if !new.contains_key(price) {
            out.push(Level::new(level.price, Decimal::ZERO));
        }
    }
    for (price, level) in new {
        if old
            .get(price)
            .is_none_or(|o| o.size != level.size || o.price.scale() != level.price.scale())
        {
            out.push(*level);
        }
    }
    out
}

/// The consolidated ticker: best bid/ask of the merged book, the most recent last price,
/// summed 24 h volume, widest 24 h range.
fn merge_tickers(tickers: &[Ticker], book: Option<&Sides>) -> Ticker {
    let mut merged = Ticker::default();
    if let Some((bids, asks)) = book {
        if let Some(best) = bids.values().next_back() {
            (merged.bid, merged.bid_size) = (Some(best.price), Some(best.size));
        }
        if let Some(best) = asks.values().next() {
            (merged.ask, merged.ask_size) = (Some(best.price), Some(best.size));
        }
    }
    let mut newest = i64::MIN;
    for t in tickers {
        merged.volume_24h += t.volume_24h;
        merged.high_24h = max_opt(merged.high_24h, t.high_24h);
        merged.low_24h = match (merged.low_24h, t.low_24h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if t.last.is_some() && t.ts.0 > newest {
            newest = t.ts.0;
            merged.last = t.last;
        }
        merged.ts = merged.ts.max(t.ts);
    }
    // `venue` only when every member's figures are its venue's own.
    if !tickers.is_empty() && tickers.iter().all(|t| t.source == TickerSource::Venue) {
        merged.source = TickerSource::Venue;
    }
    merged
}

fn max_opt(a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Funding, Instrument, parse_decimal};

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    #[test]
    fn default_groups_keep_usd_and_usdt_apart() {
        let v = |n: &str| Venue::new(n).unwrap();
        let groups = default_groups(&[
            (v("binance"), vec![sym("BTC-USDT")]),
            (v("coinbase"), vec![sym("BTC-USD")]),
            (v("kraken"), vec![sym("BTC-USD"), sym("ETH-USD")]),
        ]);
        let names: Vec<(&str, usize)> = groups
            .iter()
            .map(|g| (g.symbol.as_str(), g.members.len()))
            .collect();
        assert_eq!(names, [("BTC-USD", 2), ("BTC-USDT", 1), ("ETH-USD", 1)]);
    }

    #[test]
    fn diff_reports_changes_and_removals() {
        let lv = |p: &str, s: &str| {
            Level::new(
                model::parse_decimal(p).unwrap(),
                model::parse_decimal(s).unwrap(),
            )
        };
        let map = |ls: &[Level]| ls.iter().map(|l| (l.price, *l)).collect::<BTreeMap<_, _>>();
        let old = map(&[lv("1", "1"), lv("2", "1")]);
        let new = map(&[lv("2", "3"), lv("3", "1")]);
        assert_eq!(
            diff(&old, &new),
            vec![lv("1", "0"), lv("2", "3"), lv("3", "1")]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn funding_all_lists_each_member_venue_and_is_published_only_on_change() {
        let hub = Arc::new(hub::Hub::new(hub::HubConfig::default()));
        let market = Arc::new(Market::default());
        let v = |n: &str| Venue::new(n).unwrap();
        let perp = sym("BTC-USDT-PERP");
        for venue in ["okx", "bybit"] {
            market.upsert(Instrument {
                venue: v(venue),
                symbol: perp.clone(),
                native_symbol: "BTCUSDT".into(),
                tick_size: parse_decimal("0.1").unwrap(),
                lot_size: parse_decimal("0.001").unwrap(),
            });
        }
        let groups = default_groups(&[
            (v("okx"), vec![perp.clone()]),
            (v("bybit"), vec![perp.clone()]),
            (v("binance"), vec![sym("BTC-USDT")]),
        ]);
        let mut c = Consolidator::new(hub.clone(), market.clone(), groups, 10);
        // A spot group gets no funding channel; a perpetual one does, empty until a member
        // sends its funding.
        assert!(hub.topic("funding:all:BTC-USDT").is_none());
        let topic = hub.topic("funding:all:BTC-USDT-PERP").expect("registered");
        c.refresh();
        assert_eq!(topic.seq(), 0, "nothing published before any funding");
        let funding = |rate: &str, ts: i64| Funding {
            rate: parse_decimal(rate).unwrap(),
            predicted_rate: None,
            next_funding_ts: Some(Timestamp(1_000)),
            ts: Timestamp(ts),
        };
        let set = |venue: &str, f: Funding| {
            let entry = market.get(&v(venue), &perp).unwrap();
            entry.aggregates.lock().funding = Some((f, Timestamp(9)));
        };
        set("okx", funding("0.0002", 5));
        set("bybit", funding("-0.0001", 7));
        c.refresh();
        assert_eq!(topic.seq(), 1);
        c.refresh();
        assert_eq!(topic.seq(), 1, "unchanged: not published again");
        let joined = topic.subscribe(false);
        let text = joined.initial.expect("latest value");
        let protocol::ServerMessage::Snapshot(d) =
            serde_json::from_str::<protocol::ServerMessage>(text.as_str()).unwrap()
        else {
            panic!("a snapshot")
        };
        let all = d.funding_all.expect("funding_all");
        let venues: Vec<(&str, String)> = all
            .iter()
            .map(|f| (f.venue.as_str(), f.funding.rate.to_string()))
            .collect();
        assert_eq!(
            venues,
            [
                ("bybit", "-0.0001".to_string()),
                ("okx", "0.0002".to_string())
            ]
        );
        assert_eq!((d.ts, d.recv_ts), (7, 9));
        set("okx", funding("0.0003", 8));
        c.refresh();
        assert_eq!(topic.seq(), 2, "a member's change is published");
    }
}
