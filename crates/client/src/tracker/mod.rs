//! Per-channel bookkeeping, free of I/O: turns server messages into application events and
//! into the requests that repair a channel (resume after a gap, a fresh snapshot after a bad
//! book, resubscribe after a reconnect).
//!
//! Invariants:
//! - a channel's position `(epoch, seq)` is the last message handed to the application (or
//!   the join point the ack announced); a data message is delivered only if it is the next
//!   seq in the same epoch: older ones are duplicates and dropped, newer ones mean something
//!   was lost, and the channel is rejoined from its position with `resume`;
//! - while a channel is being (re)joined, its messages from before the ack are ignored.

use crate::event::{
    BookMessage, ChainMessage, Event, Latest, LiquidationsMessage, Meta, TradesMessage,
};
use crate::mirror::{BookMirror, Books};
use model::{BookDelta, BookSnapshot, Channel, ChannelKind, Level, Timestamp};
use parking_lot::RwLock;
use protocol::{ClientOp, DataMessage, ErrorBody, RequestId, ResumeFrom, ServerMessage};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

mod acks;
#[cfg(test)]
mod tests;

/// Channels per `subscribe` request: keeps requests under the gateway's message size limit.
pub(crate) const SUBSCRIBE_BATCH: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not subscribed on the current connection.
    Idle,
    /// A subscribe with this id is in flight; messages before its ack are stale.
    Joining(u64),
    Live,
}

#[derive(Debug)]
struct Chan {
    name: Arc<str>,
    kind: ChannelKind,
    pos: Option<(Arc<str>, u64)>,
    phase: Phase,
    mirror: Option<Arc<RwLock<BookMirror>>>,
    /// The client announced a `Resync`; the next snapshot is marked as one.
    resyncing: bool,
}

#[derive(Debug)]
enum Req {
    /// An application `subscribe`: channels are tracked once acked.
    Subscribe,
    /// An application `unsubscribe`.
    Unsubscribe,
    /// Resubscription after a reconnect, or the subscribe half of a rejoin.
    Rejoin(Vec<Arc<str>>),
    /// The unsubscribe half of a rejoin.
    Internal,
}

/// Results of handling one message.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub events: Vec<Event>,
    pub ops: Vec<ClientOp>,
    /// Answers to application requests, by id.
    pub acks: Vec<(u64, Result<Vec<String>, ErrorBody>)>,
    /// The gateway refused to rejoin channels for a reason that may pass (e.g. rate
    /// limiting): replace the connection, with backoff, and resubscribe everything.
    pub reconnect: bool,
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Data messages dropped because their seq was already delivered.
    pub duplicates: u64,
    /// Channels rejoined after the client detected a gap or a bad book.
    pub rejoins: u64,
}

#[derive(Debug)]
pub(crate) struct Tracker {
    channels: HashMap<Arc<str>, Chan>,
    requests: HashMap<u64, Req>,
    next_id: u64,
    books: Books,
    mirror_books: bool,
    pub stats: Stats,
}

impl Tracker {
    pub(crate) fn new(books: Books, mirror_books: bool) -> Self {
        Self {
            channels: HashMap::new(),
            requests: HashMap::new(),
            next_id: 1,
            books,
            mirror_books,
            stats: Stats::default(),
        }
    }

    fn id(&mut self, req: Req) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(id, req);
        id
    }

    /// An application subscribe; returns its id and the op to send.
    pub(crate) fn subscribe(&mut self, channels: &[Channel]) -> (u64, ClientOp) {
        let id = self.id(Req::Subscribe);
        let channels = channels.iter().map(Channel::to_string).collect();
        let op = ClientOp::Subscribe {
            id: Some(RequestId::Num(id)),
            channels,
            resume: BTreeMap::new(),
        };
        (id, op)
    }

    /// An application unsubscribe: the channels stop being tracked at once.
    pub(crate) fn unsubscribe(&mut self, channels: &[Channel]) -> (u64, ClientOp) {
        let names: Vec<String> = channels.iter().map(Channel::to_string).collect();
        for name in &names {
            self.channels.remove(name.as_str());
            self.books.remove(name);
        }
        let id = self.id(Req::Unsubscribe);
        let op = ClientOp::Unsubscribe {
            id: Some(RequestId::Num(id)),
            channels: names,
        };
        (id, op)
    }

    /// The connection is gone: every request is void (the application's are returned so they
    /// can be failed) and every channel must be subscribed again.
    pub(crate) fn disconnected(&mut self) -> Vec<u64> {
        for chan in self.channels.values_mut() {
            chan.phase = Phase::Idle;
        }
        self.requests
            .drain()
            .filter(|(_, r)| matches!(r, Req::Subscribe | Req::Unsubscribe))
            .map(|(id, _)| id)
            .collect()
    }

    /// Subscribe requests for every tracked channel, resuming from each known position.
    pub(crate) fn resubscribe(&mut self) -> Vec<ClientOp> {
        let mut names: Vec<Arc<str>> = self.channels.keys().cloned().collect();
        names.sort();
        names
            .chunks(SUBSCRIBE_BATCH)
            .map(|batch| self.join(batch.to_vec()))
            .collect()
    }

    /// One subscribe op for `names`, with `resume` for each known position.
    fn join(&mut self, names: Vec<Arc<str>>) -> ClientOp {
        let id = self.id(Req::Rejoin(names.clone()));
        let mut resume = BTreeMap::new();
        for name in &names {
            if let Some(chan) = self.channels.get_mut(name) {
                chan.phase = Phase::Joining(id);
                if let Some((epoch, seq)) = &chan.pos {
                    let from = ResumeFrom {
                        epoch: epoch.to_string(),
                        seq: *seq,
                    };
                    resume.insert(name.to_string(), from);
                }
            }
        }
        ClientOp::Subscribe {
            id: Some(RequestId::Num(id)),
            channels: names.iter().map(|n| n.to_string()).collect(),
            resume,
        }
    }

    /// Leaves and rejoins one channel on the live connection: from its position (`resume`),
    /// or from a fresh snapshot when its local state is wrong.
    fn rejoin(&mut self, name: &Arc<str>, resume: bool, out: &mut Out) {
        self.stats.rejoins += 1;
        if !resume && let Some(chan) = self.channels.get_mut(name) {
            chan.pos = None;
        }
        let unsub = self.id(Req::Internal);
        out.ops.push(ClientOp::Unsubscribe {
            id: Some(RequestId::Num(unsub)),
            channels: vec![name.to_string()],
        });
        let op = self.join(vec![name.clone()]);
        out.ops.push(op);
    }

    pub(crate) fn on_message(&mut self, message: ServerMessage, out: &mut Out) {
        match message {
            ServerMessage::Subscribed {
                id,
                channels,
                recovered,
                positions,
            } => self.on_subscribed(num(id), channels, recovered, positions, out),
            ServerMessage::Unsubscribed { id, channels } => {
                if let Some(id) = num(id)
                    && let Some(Req::Unsubscribe) = self.requests.remove(&id)
                {
                    out.acks.push((id, Ok(channels)));
                }
            }
            ServerMessage::Snapshot(d) => self.on_snapshot(d, out),
            ServerMessage::Update(d) => self.on_update(d, out),
            ServerMessage::Resync {
                channel,
                seq,
                reason,
            } => self.on_resync(&channel, seq, reason, out),
            ServerMessage::Gap {
                channel,
                from_seq,
                to_seq,
                reason,
            } => {
                let Some(chan) = self.live(&channel) else {
                    return;
                };
                if let Some((_, seq)) = &mut chan.pos {
                    *seq = (*seq).max(to_seq);
                }
                out.events.push(Event::Gap {
                    channel: chan.name.clone(),
                    from_seq,
                    to_seq,
                    reason,
                });
            }
            ServerMessage::Error(body) => self.on_error(body, out),
            ServerMessage::KeyExpiring {
                key_id,
                at,
                message,
            } => out
                .events
                .push(Event::KeyExpiring(crate::event::KeyExpiring {
                    key_id: Some(key_id),
                    expires_at: Some(at),
                    message,
                })),
            ServerMessage::Authenticated { .. } | ServerMessage::Pong { .. } => {}
        }
    }

    /// The live channel a message is for, if it is tracked and not being rejoined.
    fn live(&mut self, name: &str) -> Option<&mut Chan> {
        self.channels
            .get_mut(name)
            .filter(|c| c.phase == Phase::Live)
    }

    /// Checks that `seq` (in `epoch`, if the message has one) is the channel's next message.
    /// Returns the channel name if the message is to be delivered; on a gap, rejoins.
    fn accept(
        &mut self,
        name: &str,
        epoch: Option<&str>,
        seq: u64,
        out: &mut Out,
    ) -> Option<Arc<str>> {
        let chan = self.live(name)?;
        let name = chan.name.clone();
        match &mut chan.pos {
            Some((e, last)) if epoch.is_none_or(|epoch| **e == *epoch) => {
                if seq <= *last {
                    self.stats.duplicates += 1;
                    return None;
                }
                if seq == *last + 1 {
                    *last = seq;
                    return Some(name);
                }
            }
            Some(_) => {}
            None => {
                let epoch = epoch?;
                chan.pos = Some((epoch.into(), seq));
                return Some(name);
            }
        }
        // Something between the position and this message is missing: resume from the
        // position; the gateway replays it, or says it cannot.
        self.rejoin(&name, true, out);
        None
    }

    /// A `resync` notice is always delivered, whatever its seq: it announces that the book is
    /// stale and a fresh snapshot follows. A single node gives it a seq of its own; a cluster
    /// edge that lost the bus sends it at the seq the channel is already at, which the
    /// duplicate check of data messages would drop, leaving the application a stale book it
    /// believes live. Nothing between the position and the notice needs repairing (the book is
    /// replaced anyway), so the position moves to the notice without a rejoin.
    fn on_resync(&mut self, channel: &str, seq: u64, reason: String, out: &mut Out) {
        let Some(chan) = self.live(channel) else {
            return;
        };
        if let Some((_, last)) = &mut chan.pos {
            *last = (*last).max(seq);
        }
        if let Some(mirror) = &chan.mirror {
            mirror.write().invalidate();
        }
        chan.resyncing = true;
        out.events.push(Event::Resync {
            channel: chan.name.clone(),
            seq,
            reason,
        });
    }

    fn on_snapshot(&mut self, d: DataMessage, out: &mut Out) {
        let Some(chan) = self.live(&d.channel) else {
            return;
        };
        // A snapshot replaces what the client had, whatever its seq.
        let epoch = match &chan.pos {
            Some((e, _)) if **e == *d.epoch => e.clone(),
            _ => Arc::from(d.epoch.as_str()),
        };
        chan.pos = Some((epoch.clone(), d.seq));
        let resync = d.resync || std::mem::take(&mut chan.resyncing);
        let name = chan.name.clone();
        let meta = meta(&name, &epoch, &d);
        match chan.kind {
            ChannelKind::Book => {
                let snap = BookSnapshot {
                    seq: d.seq,
                    bids: levels(d.bids),
                    asks: levels(d.asks),
                    exchange_ts: Timestamp(d.ts),
                    recv_ts: Timestamp(d.recv_ts),
                    checksum: d.checksum,
                };
                let result = match &chan.mirror {
                    Some(mirror) => mirror.write().reset(&epoch, &snap),
                    None => Ok(()),
                };
                if let Err(error) = result {
                    self.bad_book(&name, d.seq, &error, out);
                    return;
                }
                out.events.push(Event::Snapshot(BookMessage {
                    meta,
                    resync,
                    bids: snap.bids,
                    asks: snap.asks,
                    checksum: snap.checksum,
                }));
            }
            _ => out.events.extend(latest(meta, true, d)),
        }
    }

    fn on_update(&mut self, d: DataMessage, out: &mut Out) {
        let Some(name) = self.accept(&d.channel, Some(&d.epoch), d.seq, out) else {
            return;
        };
        let Some(chan) = self.channels.get(&name) else {
            return;
        };
        let epoch = chan
            .pos
            .as_ref()
            .map_or_else(|| name.clone(), |p| p.0.clone());
        let meta = meta(&name, &epoch, &d);
        match chan.kind {
            ChannelKind::Book => {
                let delta = BookDelta {
                    first_seq: d.seq,
                    last_seq: d.seq,
                    bids: levels(d.bids),
                    asks: levels(d.asks),
                    exchange_ts: Timestamp(d.ts),
                    recv_ts: Timestamp(d.recv_ts),
                    checksum: d.checksum,
                };
                if let Some(mirror) = &chan.mirror {
                    let mut mirror = mirror.write();
                    let result = if mirror.is_live() {
                        mirror.update(&delta)
                    } else {
                        Err(book::BookError::NotLive)
                    };
                    drop(mirror);
                    if let Err(error) = result {
                        self.bad_book(&name, d.seq, &error, out);
                        return;
                    }
                }
                out.events.push(Event::Update(BookMessage {
                    meta,
                    resync: false,
                    bids: delta.bids,
                    asks: delta.asks,
                    checksum: delta.checksum,
                }));
            }
            ChannelKind::Trades => out.events.push(Event::Trade(TradesMessage {
                meta,
                trades: d.trades.unwrap_or_default(),
            })),
            ChannelKind::Liquidations => {
                out.events.push(Event::Liquidations(LiquidationsMessage {
                    meta,
                    liquidations: d.liquidations.unwrap_or_default(),
                }))
            }
            ChannelKind::OnchainBlocks | ChannelKind::OnchainLogs => {
                out.events.push(Event::Chain(ChainMessage {
                    meta,
                    blocks: d.blocks.unwrap_or_default(),
                    logs: d.logs.unwrap_or_default(),
                }))
            }
            _ => out.events.extend(latest(meta, false, d)),
        }
    }

    /// The mirror rejected a message: tell the application and fetch a fresh snapshot.
    fn bad_book(&mut self, name: &Arc<str>, seq: u64, error: &book::BookError, out: &mut Out) {
        tracing::warn!(channel = %name, error = %error, "local book rejected a message; resyncing");
        if let Some(chan) = self.channels.get_mut(name) {
            chan.resyncing = true;
            if let Some(mirror) = &chan.mirror {
                mirror.write().invalidate();
            }
        }
        out.events.push(Event::Resync {
            channel: name.clone(),
            seq,
            reason: format!("client_{}", error.code()),
        });
        self.rejoin(name, false, out);
    }
}

fn num(id: Option<RequestId>) -> Option<u64> {
    match id {
        Some(RequestId::Num(n)) => Some(n),
        _ => None,
    }
}

fn meta(name: &Arc<str>, epoch: &Arc<str>, d: &DataMessage) -> Meta {
    Meta {
        channel: name.clone(),
        epoch: epoch.clone(),
        seq: d.seq,
        ts: d.ts,
        recv_ts: d.recv_ts,
    }
}

fn levels(wire: Option<Vec<protocol::WireLevel>>) -> Vec<Level> {
    wire.unwrap_or_default()
        .into_iter()
        .map(Level::from)
        .collect()
}

/// The typed event of a ticker, candle, status, funding (one venue or `all`), mark or
/// open-interest message.
fn latest(meta: Meta, snapshot: bool, d: DataMessage) -> Option<Event> {
    if let Some(value) = d.funding_all {
        return Some(Event::FundingAll(Latest {
            meta,
            snapshot,
            value,
        }));
    }
    if let Some(value) = d.funding {
        return Some(Event::Funding(Latest {
            meta,
            snapshot,
            value,
        }));
    }
    if let Some(value) = d.mark {
        return Some(Event::Mark(Latest {
            meta,
            snapshot,
            value,
        }));
    }
    if let Some(value) = d.oi {
        return Some(Event::OpenInterest(Latest {
            meta,
            snapshot,
            value,
        }));
    }
    if let Some(value) = d.ticker {
        return Some(Event::Ticker(Latest {
            meta,
            snapshot,
            value,
        }));
    }
    if let Some(value) = d.candle {
        return Some(Event::Candle(Latest {
            meta,
            snapshot,
            value,
        }));
    }
    d.status.map(|value| {
        Event::Status(Latest {
            meta,
            snapshot,
            value,
        })
    })
}
