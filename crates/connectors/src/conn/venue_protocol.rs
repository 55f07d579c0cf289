//! The sans-I/O seam between the shared connection machinery and one venue's protocol.
//!
//! A venue implements [`Protocol`] (what to connect to, how symbols are sharded) and
//! [`Session`] (the state of one connection: subscriptions, books being built, sequence
//! tracking). A session never does I/O: it is fed frames, REST bodies and ticks, and answers
//! through [`Io`] with events, frames to send and REST requests to make. That keeps each venue
//! testable without a network, and lets a recorded capture be replayed through exactly the same
//! code (`venue::replay`).

use crate::settings::{FeedSettings, VenueSpec};
use crate::{ConnectorError, FeedEvent, InvalidCause};
use model::{Instrument, Symbol, Timestamp, Venue};
use std::fmt;
use std::time::Duration;

/// A REST GET the session needs (a book snapshot). `key` comes back with the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    pub key: String,
    pub url: String,
}

/// What a session asks of the driver after handling one input.
#[derive(Debug, Default)]
pub struct Io {
    /// Gateway receive time of the input (replay sets the recorded time).
    pub recv_ts: Timestamp,
    /// Normalized events, in order.
    pub events: Vec<FeedEvent>,
    /// Text frames to send, in order (the driver paces them to the venue's rate limit).
    pub send: Vec<String>,
    /// REST requests to start.
    pub rest: Vec<RestRequest>,
    /// Symbols that received data (feeds the staleness watchdog).
    pub seen: Vec<Symbol>,
    /// Venue sequence gaps the session detected (counted in the link metrics).
    pub gaps: u64,
    /// Venue checksums that did not match the session's book (counted in the link metrics).
    pub checksum_failures: u64,
    /// Well-formed frames of something this connection did not subscribe, dropped (counted
    /// as ignored, not as parse errors).
    pub ignored: u64,
    /// REST snapshots refused as older than the stream (counted in the link metrics).
    pub refused_snapshots: u64,
    /// Replace the connection now (fatal protocol error, ack timeout), with the reason.
    pub reconnect: Option<String>,
    /// Replace the connection make-before-break (the venue announced it will close it).
    pub rotate: Option<String>,
}

impl Io {
    pub fn new(recv_ts: Timestamp) -> Self {
        Self {
            recv_ts,
            ..Self::default()
        }
    }

    /// Empties everything for the next input, received at `recv_ts`, keeping the buffers'
    /// capacity (replay reuses one `Io` for every record).
    pub fn reset(&mut self, recv_ts: Timestamp) {
        let Self {
            recv_ts: ts,
            events,
            send,
            rest,
            seen,
            gaps,
            checksum_failures,
            ignored,
            refused_snapshots,
            reconnect,
            rotate,
        } = self;
        *ts = recv_ts;
        events.clear();
        send.clear();
        rest.clear();
        seen.clear();
        *gaps = 0;
        *checksum_failures = 0;
        *ignored = 0;
        *refused_snapshots = 0;
        *reconnect = None;
        *rotate = None;
    }

    /// Notes that `symbol` received data.
    pub fn touch(&mut self, symbol: &Symbol) {
        if self.seen.last() != Some(symbol) && !self.seen.contains(symbol) {
            self.seen.push(symbol.clone());
        }
    }

    /// Reports a message that could not be parsed. With a symbol, that book is rebuilt.
    pub fn invalid(&mut self, symbol: Option<Symbol>, reason: impl Into<String>) {
        self.fault(symbol, InvalidCause::Malformed, reason);
    }

    /// Reports a message that made `symbol`'s book unusable for `cause`; that book is
    /// rebuilt. A checksum mismatch is also counted in [`Io::checksum_failures`], a gap in
    /// [`Io::gaps`].
    pub fn fault(
        &mut self,
        symbol: Option<Symbol>,
        cause: InvalidCause,
        reason: impl Into<String>,
    ) {
        match cause {
            InvalidCause::ChecksumMismatch => self.checksum_failures += 1,
            InvalidCause::Gap => self.gaps += 1,
            InvalidCause::Malformed | InvalidCause::InvalidLevel => {}
        }
        self.events.push(FeedEvent::Invalid {
            symbol,
            reason: reason.into(),
            cause,
        });
    }

    /// Tells ingest that `symbol`'s book is being rebuilt by the connector (subscribers get a
    /// resync notice; no resync command is needed).
    pub fn unsynced(&mut self, symbol: &Symbol, reason: &str) {
        self.events.push(FeedEvent::Unsynced {
            symbol: symbol.clone(),
            reason: reason.to_string(),
        });
    }
}

/// One venue's protocol: endpoints, sharding and sessions.
pub trait Protocol: Send + Sync + fmt::Debug + 'static {
    fn venue(&self) -> &Venue;

    fn spec(&self) -> &VenueSpec;

    fn settings(&self) -> &FeedSettings {
        &self.spec().feed
    }

    /// Symbols per connection; each group gets its own connection.
    fn shards(&self) -> Vec<Vec<Symbol>>;

    /// The URL one shard connects to.
    fn ws_url(&self, shard: &[Symbol]) -> String;

    /// A fresh session for a new connection of `shard` (never reuses old book state).
    fn session(&self, shard: &[Symbol]) -> Box<dyn Session>;

    /// A session for the standby connection of a make-before-break rotation: it subscribes and
    /// buffers without emitting until [`Session::take_over`].
    fn standby_session(&self, shard: &[Symbol]) -> Box<dyn Session> {
        self.session(shard)
    }

    /// Shortest spacing between frames sent on one connection (venue message rate limits).
    fn send_interval(&self) -> Duration;

    /// Replace each connection make-before-break after this long (Binance's 24 h limit).
    fn rotate_after(&self) -> Option<Duration> {
        None
    }

    /// The venue's REST instrument metadata URL, if it has one.
    fn instruments_url(&self) -> Option<String>;

    /// Every metadata URL, for venues whose metadata is split by market type (OKX: one per
    /// `instType`). With more than one, [`Protocol::parse_instruments`] receives the answers
    /// joined as one JSON array (`[answer1,answer2]`), and only if every request succeeded.
    fn instruments_urls(&self) -> Vec<String> {
        self.instruments_url().into_iter().collect()
    }

    /// Parses the metadata response into instruments for the configured symbols.
    fn parse_instruments(&self, body: &str) -> Result<Vec<Instrument>, ConnectorError>;

    /// Instruments from the config (tick/lot may be unknown = 0 until metadata arrives).
    fn fallback_instruments(&self) -> Vec<Instrument>;
}

/// The state of one connection.
pub trait Session: Send + fmt::Debug {
    /// The socket is open: queue subscriptions (and REST snapshots) for every symbol.
    fn open(&mut self, io: &mut Io);

    /// One text frame from the venue.
    fn on_text(&mut self, text: &str, io: &mut Io);

    /// The answer to a [`RestRequest`]: the body, or why it failed.
    fn on_rest(&mut self, key: &str, body: Result<&str, &str>, io: &mut Io) {
        let _ = (key, body, io);
    }

    /// Rebuild `symbol`'s book from a fresh snapshot (ingest found it corrupt, or the
    /// watchdog found it stale). A no-op if it is already being rebuilt.
    fn resync(&mut self, symbol: &Symbol, io: &mut Io);

    /// The staleness watchdog found `symbol` silent: subscribe to it again (and rebuild its
    /// book). Defaults to [`Session::resync`].
    fn resubscribe(&mut self, symbol: &Symbol, io: &mut Io) {
        self.resync(symbol, io);
    }

    /// Called about once a second (ack timeouts, retries).
    fn on_tick(&mut self, now: Timestamp, io: &mut Io) {
        let _ = (now, io);
    }

    /// Books of this connection not (yet) in sync.
    fn syncing(&self) -> usize;

    /// Why books are still syncing, when the session knows more than "waiting" (Binance: its
    /// snapshots keep being refused as too old). Shown in `status:{venue}`'s detail.
    fn sync_note(&self) -> Option<String> {
        None
    }

    /// Make-before-break: true once this (new) connection's streams overlap the old one's so
    /// switching to it loses nothing. Sessions that do not rotate are ready when in sync.
    fn ready_to_take_over(&self, old: &dyn Session) -> bool {
        let _ = old;
        self.syncing() == 0
    }

    /// Make-before-break: the new session takes over from `old`. It must continue every book
    /// where the old one left off, emitting only what the old one did not.
    fn take_over(&mut self, old: &dyn Session, io: &mut Io) {
        let _ = (old, io);
    }

    /// For [`Session::take_over`]: the last venue update id and trade id sent per symbol.
    fn handover(&self, symbol: &Symbol) -> Option<(u64, u64)> {
        let _ = symbol;
        None
    }
}
