//! The rule engine: rules indexed by metric and threshold, fed market events, producing
//! firings. Pure and synchronous (the evaluator task owns one and does the I/O), so the rule
//! semantics are tested with scripted inputs and exact decimals.
//!
//! Per event the engine computes each watched metric of that market once and hands the value
//! to the metric's [`ThresholdIndex`], which returns only the rules the value crossed. Then
//! for each crossed rule, in threshold order:
//!
//! - past its expiry: the rule is removed ([`Output::Expired`]), not fired;
//! - within `cooldown` of its previous firing: suppressed (it still waits to re-arm, so a
//!   price that oscillates around the level during the cool-down never fires twice);
//! - otherwise it fires ([`Output::Fired`]); at `max_firings` it is removed.
//!
//! Time-based values (feed health, the volume window sliding) are refreshed by
//! [`Engine::on_tick`], which also expires rules whose time has come.

mod threshold;
mod window;

use crate::rule::{Market, Metric, Rule};
use book::OrderBook;
use model::{Channel, Decimal, Venue};
use protocol::alerts::{PriceField, SpreadUnit};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use threshold::{Slot, ThresholdIndex};
use window::{ChangeWindow, VolumeWindow};

/// One trade as the engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeTick {
    pub price: Decimal,
    pub size: Decimal,
    /// Exchange time, µs.
    pub ts: i64,
}

/// A rule that fired.
#[derive(Debug, Clone)]
pub struct Fired {
    pub rule: Arc<Rule>,
    /// The metric's value that reached the threshold.
    pub value: Decimal,
    /// Exchange time of the event (the evaluation time for time-based metrics).
    pub ts: i64,
    pub fired_at: i64,
    /// The rule's firing count including this one.
    pub firing: u64,
}

impl Fired {
    /// Whether this firing used up the rule's `max_firings`.
    pub fn completes(&self) -> bool {
        self.rule.max_firings.is_some_and(|max| self.firing >= max)
    }
}

/// What an event produced.
#[derive(Debug, Clone)]
pub enum Output {
    Fired(Fired),
    /// The rule reached its expiry and was removed.
    Expired(Arc<Rule>),
}

/// Counters since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Metric values computed and indexed.
    pub evaluations: u64,
    pub fired: u64,
    /// Crossings inside a rule's cool-down.
    pub suppressed: u64,
    pub expired: u64,
}

#[derive(Debug)]
struct RuleState {
    rule: Arc<Rule>,
    firings: u64,
    last_fired_at: Option<i64>,
}

#[derive(Debug)]
enum Calc {
    Plain,
    Change(ChangeWindow),
    Volume(VolumeWindow),
}

#[derive(Debug)]
struct MetricState {
    index: ThresholdIndex,
    calc: Calc,
}

/// What one market's events feed.
#[derive(Debug, Default)]
struct Watch {
    /// Shared so an event snapshots the list with a reference count, not a copy (a rule that
    /// completes while the list is walked changes the watch's own list, copy-on-write).
    book: Arc<Vec<Metric>>,
    trades: Arc<Vec<Metric>>,
    /// Last mid and last trade price (divergence reads the other market's).
    mid: Option<Decimal>,
    last: Option<Decimal>,
    /// When the book last changed while live (book health).
    live_at: i64,
}

#[derive(Debug)]
struct VenueWatch {
    connected: bool,
    /// When `connected` last changed (or the watch started).
    since: i64,
}

/// The engine. See the module docs.
#[derive(Debug, Default)]
pub struct Engine {
    slots: Vec<Option<RuleState>>,
    free: Vec<Slot>,
    by_id: HashMap<String, Slot>,
    metrics: HashMap<Metric, MetricState>,
    watches: HashMap<Market, Watch>,
    venues: HashMap<Venue, VenueWatch>,
    expiries: BTreeSet<(i64, Slot)>,
    crossed: Vec<Slot>,
    stats: EngineStats,
}

fn seconds(micros: i64) -> Decimal {
    Decimal::new(micros.max(0), 6).normalize()
}

impl Engine {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The channels the engine's rules read (the evaluator subscribes to exactly these).
    pub fn channels(&self) -> BTreeSet<Channel> {
        self.metrics.keys().flat_map(Metric::channels).collect()
    }

    /// Adds a rule, or replaces the one with the same id (its armed state is rebuilt from the
    /// metric's current value: a replaced rule whose condition holds waits for it to clear).
    /// A rule past its expiry or its `max_firings` is not added; returns whether it was.
    pub fn upsert(&mut self, rule: Rule, now: i64) -> bool {
        self.remove(&rule.id);
        if rule.expires_at.is_some_and(|t| t <= now)
            || rule.max_firings.is_some_and(|max| rule.firings >= max)
        {
            return false;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as Slot
            }
        };
        let metric = rule.metric.clone();
        let trigger = rule.trigger;
        if let Some(at) = rule.expires_at {
            self.expiries.insert((at, slot));
        }
        self.by_id.insert(rule.id.clone(), slot);
        self.slots[slot as usize] = Some(RuleState {
            firings: rule.firings,
            last_fired_at: rule.last_fired_at,
            rule: Arc::new(rule),
        });
        self.watch(&metric, now);
        let state = self
            .metrics
            .entry(metric.clone())
            .or_insert_with(|| MetricState {
                index: ThresholdIndex::default(),
                calc: match &metric {
                    Metric::Change { window_secs, .. } => {
                        Calc::Change(ChangeWindow::new(*window_secs))
                    }
                    Metric::Volume {
                        window_secs,
                        trailing,
                        ..
                    } => Calc::Volume(VolumeWindow::new(*window_secs, *trailing)),
                    _ => Calc::Plain,
                },
            });
        state.index.insert(slot, trigger);
        true
    }

    /// Removes a rule (deleted, paused, or changed elsewhere); returns whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        match self.by_id.get(id) {
            Some(&slot) => {
                self.remove_slot(slot);
                true
            }
            None => false,
        }
    }

    fn remove_slot(&mut self, slot: Slot) -> Option<Arc<Rule>> {
        let state = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.by_id.remove(&state.rule.id);
        if let Some(at) = state.rule.expires_at {
            self.expiries.remove(&(at, slot));
        }
        let metric = &state.rule.metric;
        if let Some(m) = self.metrics.get_mut(metric) {
            m.index.remove(slot);
            if m.index.is_empty() {
                self.metrics.remove(metric);
                self.unwatch(metric);
            }
        }
        Some(state.rule)
    }

    fn markets(metric: &Metric) -> Vec<(&Market, bool)> {
        // (market, fed by book events?)
        match metric {
            Metric::Price { market, field } => vec![(market, *field != PriceField::Last)],
            Metric::Change { market, .. } | Metric::Volume { market, .. } => vec![(market, false)],
            Metric::Spread { market, .. }
            | Metric::Imbalance { market, .. }
            | Metric::BookHealth { market } => vec![(market, true)],
            Metric::Divergence { a, b, field } => {
                let book = *field != PriceField::Last;
                vec![(a, book), (b, book)]
            }
            Metric::VenueHealth { .. } => vec![],
        }
    }

    fn watch(&mut self, metric: &Metric, now: i64) {
        if self.metrics.contains_key(metric) {
            return;
        }
        if let Metric::VenueHealth { venue } = metric {
            self.venues.entry(venue.clone()).or_insert(VenueWatch {
                connected: false,
                since: now,
            });
        }
        for (market, book) in Self::markets(metric) {
            let watch = self.watches.entry(market.clone()).or_insert_with(|| Watch {
                live_at: now,
                ..Default::default()
            });
            let list = if book {
                &mut watch.book
            } else {
                &mut watch.trades
            };
            Arc::make_mut(list).push(metric.clone());
        }
    }

    fn unwatch(&mut self, metric: &Metric) {
        if let Metric::VenueHealth { venue } = metric {
            self.venues.remove(venue);
        }
        for (market, _) in Self::markets(metric) {
            if let Some(watch) = self.watches.get_mut(market) {
                for list in [&mut watch.book, &mut watch.trades] {
                    if list.contains(metric) {
                        Arc::make_mut(list).retain(|m| m != metric);
                    }
                }
                if watch.book.is_empty() && watch.trades.is_empty() {
                    self.watches.remove(market);
                }
            }
        }
    }

    /// Hands `value` to `metric`'s rules and settles the ones it crossed.
    fn feed(&mut self, metric: &Metric, value: Decimal, ts: i64, now: i64, out: &mut Vec<Output>) {
        let Some(state) = self.metrics.get_mut(metric) else {
            return;
        };
        self.stats.evaluations += 1;
        let mut crossed = std::mem::take(&mut self.crossed);
        state.index.update(value, &mut crossed);
        for slot in crossed.drain(..) {
            self.settle(slot, value, ts, now, out);
        }
        self.crossed = crossed;
    }

    fn settle(&mut self, slot: Slot, value: Decimal, ts: i64, now: i64, out: &mut Vec<Output>) {
        let Some(state) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if state.rule.expires_at.is_some_and(|t| t <= now) {
            if let Some(rule) = self.remove_slot(slot) {
                self.stats.expired += 1;
                out.push(Output::Expired(rule));
            }
            return;
        }
        if state
            .last_fired_at
            .is_some_and(|at| now < at.saturating_add(state.rule.cooldown_us))
        {
            self.stats.suppressed += 1;
            return;
        }
        state.firings += 1;
        state.last_fired_at = Some(now);
        let fired = Fired {
            rule: state.rule.clone(),
            value,
            ts,
            fired_at: now,
            firing: state.firings,
        };
        self.stats.fired += 1;
        if fired.completes() {
            self.remove_slot(slot);
        }
        out.push(Output::Fired(fired));
    }

    /// A batch of trades on `market`, in order.
    pub fn on_trades(
        &mut self,
        market: &Market,
        trades: &[TradeTick],
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let Some(watch) = self.watches.get_mut(market) else {
            return;
        };
        let Some(newest) = trades.last() else {
            return;
        };
        watch.last = Some(newest.price);
        let metrics = Arc::clone(&watch.trades);
        for metric in metrics.iter() {
            match metric {
                Metric::Price { .. } => {
                    for t in trades {
                        self.feed(metric, t.price, t.ts, now, out);
                    }
                }
                Metric::Change { .. } => {
                    for t in trades {
                        let value = match self.metrics.get_mut(metric).map(|m| &mut m.calc) {
                            Some(Calc::Change(w)) => w.push(t.ts, t.price),
                            _ => None,
                        };
                        if let Some(value) = value {
                            self.feed(metric, value, t.ts, now, out);
                        }
                    }
                }
                Metric::Volume { .. } => {
                    let value = match self.metrics.get_mut(metric).map(|m| &mut m.calc) {
                        Some(Calc::Volume(w)) => {
                            for t in trades {
                                w.push(t.ts, t.size);
                            }
                            w.value(newest.ts)
                        }
                        _ => None,
                    };
                    if let Some(value) = value {
                        self.feed(metric, value, newest.ts, now, out);
                    }
                }
                Metric::Divergence { .. } => self.divergence(metric, newest.ts, now, out),
                _ => {}
            }
        }
        self.expire(now, out);
    }

    /// `market`'s book changed (a snapshot or an update applied to a live book).
    pub fn on_book(
        &mut self,
        market: &Market,
        book: &OrderBook,
        ts: i64,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let Some(watch) = self.watches.get_mut(market) else {
            return;
        };
        watch.live_at = now;
        let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) else {
            watch.mid = None;
            return;
        };
        let (bid, ask) = (bid.price, ask.price);
        let mid = (bid + ask) / Decimal::TWO;
        watch.mid = Some(mid);
        let metrics = Arc::clone(&watch.book);
        for metric in metrics.iter() {
            let value = match metric {
                Metric::Price { field, .. } => Some(match field {
                    PriceField::Bid => bid,
                    PriceField::Ask => ask,
                    _ => mid,
                }),
                Metric::Spread { unit, .. } => {
                    let spread = ask - bid;
                    match unit {
                        SpreadUnit::Abs => Some(spread),
                        SpreadUnit::Bps => bps(spread, mid),
                    }
                }
                Metric::Imbalance { depth, .. } => {
                    let n = *depth as usize;
                    let bids: Decimal = book.bids().take(n).map(|l| l.size).sum();
                    let asks: Decimal = book.asks().take(n).map(|l| l.size).sum();
                    bids.checked_div(asks)
                }
                Metric::BookHealth { .. } => Some(Decimal::ZERO),
                Metric::Divergence { .. } => {
                    self.divergence(metric, ts, now, out);
                    None
                }
                _ => None,
            };
            if let Some(value) = value {
                self.feed(metric, value, ts, now, out);
            }
        }
        self.expire(now, out);
    }

    fn divergence(&mut self, metric: &Metric, ts: i64, now: i64, out: &mut Vec<Output>) {
        let Metric::Divergence { a, b, field } = metric else {
            return;
        };
        let mark = |m: &Market| {
            self.watches.get(m).and_then(|w| match field {
                PriceField::Last => w.last,
                _ => w.mid,
            })
        };
        let (Some(pa), Some(pb)) = (mark(a), mark(b)) else {
            return;
        };
        if let Some(value) = bps((pa - pb).abs(), (pa + pb) / Decimal::TWO) {
            self.feed(metric, value, ts, now, out);
        }
    }

    /// The venue's connection state (`status:{venue}`): connected or not.
    pub fn on_status(&mut self, venue: &Venue, connected: bool, now: i64, out: &mut Vec<Output>) {
        let Some(watch) = self.venues.get_mut(venue) else {
            return;
        };
        if watch.connected != connected {
            watch.connected = connected;
            watch.since = now;
        }
        let value = if connected {
            Decimal::ZERO
        } else {
            seconds(now - watch.since)
        };
        self.feed(
            &Metric::VenueHealth {
                venue: venue.clone(),
            },
            value,
            now,
            now,
            out,
        );
        self.expire(now, out);
    }

    /// The passing of time: expires rules, refreshes feed health and sliding volume windows.
    pub fn on_tick(&mut self, now: i64, out: &mut Vec<Output>) {
        self.expire(now, out);
        let timed: Vec<Metric> = self
            .metrics
            .keys()
            .filter(|m| {
                matches!(
                    m,
                    Metric::VenueHealth { .. } | Metric::BookHealth { .. } | Metric::Volume { .. }
                )
            })
            .cloned()
            .collect();
        for metric in &timed {
            let value = match metric {
                Metric::VenueHealth { venue } => self.venues.get(venue).map(|w| {
                    if w.connected {
                        Decimal::ZERO
                    } else {
                        seconds(now - w.since)
                    }
                }),
                Metric::BookHealth { market } => {
                    self.watches.get(market).map(|w| seconds(now - w.live_at))
                }
                Metric::Volume { .. } => match self.metrics.get_mut(metric).map(|m| &mut m.calc) {
                    // Exchange time is close to the gateway's; the window only slides here.
                    Some(Calc::Volume(w)) => w.value(now),
                    _ => None,
                },
                _ => None,
            };
            if let Some(value) = value {
                self.feed(metric, value, now, now, out);
            }
        }
    }

    fn expire(&mut self, now: i64, out: &mut Vec<Output>) {
        while let Some(&(at, slot)) = self.expiries.first() {
            if at > now {
                break;
            }
            if let Some(rule) = self.remove_slot(slot) {
                self.stats.expired += 1;
                out.push(Output::Expired(rule));
            } else {
                self.expiries.pop_first();
            }
        }
    }
}

/// `part / whole` in basis points.
fn bps(part: Decimal, whole: Decimal) -> Option<Decimal> {
    part.checked_mul(Decimal::from(10_000))?.checked_div(whole)
}

#[cfg(test)]
mod tests;
