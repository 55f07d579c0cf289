//! The task that keeps one shard (a group of symbols) connected: connect, subscribe, read,
//! watch for staleness, reconnect with backoff, rotate make-before-break.

use super::backoff::{Backoff, Rng};
use super::input;
use super::link::{Link, LinkEnd, StandbyEvent, standby_event};
use super::outflow::Outflow;
use super::record::{RecordKind, Recorder};
use super::rest::RestClient;
use super::stats::{LinkEvent, LinkStats};
use super::status::StatusBoard;
use super::venue_protocol::{Io, Protocol};
use super::ws;
use crate::{Command, ConnectionState, ConnectorError, FeedBatch, FeedEvent};
use futures_util::StreamExt;
use model::{Symbol, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a standby connection may take to catch up before the rotation is abandoned.
const ROTATION_DEADLINE: Duration = Duration::from_secs(60);

/// Everything one shard task owns.
#[derive(Debug)]
pub(crate) struct Shard {
    pub protocol: Arc<dyn Protocol>,
    pub index: usize,
    pub count: usize,
    pub symbols: Vec<Symbol>,
    pub events: mpsc::Sender<FeedBatch>,
    pub commands: mpsc::Receiver<Command>,
    pub shutdown: CancellationToken,
    pub board: Arc<StatusBoard>,
    pub stats: Arc<LinkStats>,
    pub rest: RestClient,
    pub recorder: Option<Recorder>,
    pub seed: u64,
    /// Connection id of the active link (for capture records).
    pub active_conn: u64,
}

/// The make-before-break state of one connection: a replacement being dialed, then
/// subscribed in standby until its session can take over.
#[derive(Debug, Default)]
struct Rotation {
    standby: Option<Link>,
    dialing: Option<JoinHandle<Result<ws::VenueSocket, String>>>,
    started: Option<Instant>,
    /// After a failed rotation attempt, the next one waits until then.
    retry_at: Option<Instant>,
}

impl Shard {
    fn label(&self) -> String {
        let names: Vec<&str> = self.symbols.iter().take(4).map(Symbol::as_str).collect();
        let more = if self.symbols.len() > 4 { ",…" } else { "" };
        format!(
            "connection {}/{} [{}{more}]",
            self.index + 1,
            self.count,
            names.join(",")
        )
    }

    /// Reports this connection's state on `status:{venue}` (as the venue-wide state).
    fn report(
        &self,
        out: &mut Outflow,
        connected: bool,
        syncing: usize,
        what: &str,
    ) -> Result<(), ConnectorError> {
        let mut state = self.board.update(self.index, connected, syncing);
        if state == ConnectionState::Disconnected && !connected && what.starts_with("connecting") {
            state = ConnectionState::Connecting;
        }
        let detail = format!("{}: {what}", self.label());
        tracing::info!(venue = %self.protocol.venue(), state = state.as_str(), %detail, "venue connection");
        out.push(&self.events, vec![FeedEvent::Status { state, detail }])?;
        Ok(())
    }

    /// Runs until shutdown (`Ok`) or until ingest goes away (`SinkClosed`).
    pub(crate) async fn run(mut self) -> Result<(), ConnectorError> {
        let settings = self.protocol.settings().clone();
        let (base, cap) = settings.backoff();
        let mut backoff = Backoff::new(base, cap, Rng::from_entropy(self.seed).next_u64());
        let mut out = Outflow::default();
        loop {
            self.report(&mut out, false, 0, "connecting")?;
            let url = self.protocol.ws_url(&self.symbols);
            let timeout = Duration::from_secs(settings.connect_timeout_secs);
            let connected = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                result = ws::connect(&url, timeout) => result,
            };
            let (reason, lost) = match connected {
                Err(error) => (format!("connect failed: {error}"), false),
                Ok(socket) => {
                    self.stats
                        .record(LinkEvent::Connected { shard: self.index });
                    let opened = Instant::now();
                    let link = self.open_link(socket, &mut out)?;
                    let end = self.serve(link, &mut out).await?;
                    let reason = match end {
                        LinkEnd::Shutdown => return Ok(()),
                        LinkEnd::Reconnect(reason) => reason,
                    };
                    let close = RecordKind::Close {
                        reason: reason.clone(),
                    };
                    let mut io = Io::new(Timestamp::now());
                    if let Some(recorder) = &self.recorder {
                        recorder.record(
                            self.protocol.venue().as_str(),
                            self.active_conn,
                            io.recv_ts,
                            close.clone(),
                        );
                    }
                    // The session is gone; `apply` only needs the symbols for a close.
                    for symbol in &self.symbols {
                        io.unsynced(symbol, "disconnected");
                    }
                    out.push(&self.events, io.events)?;
                    if opened.elapsed() >= Duration::from_secs(settings.stable_after_secs) {
                        backoff.reset();
                    }
                    (reason, true)
                }
            };
            let delay = backoff.next_delay();
            let shard = self.index;
            self.stats.record(if lost {
                LinkEvent::Lost {
                    shard,
                    reason: &reason,
                    delay,
                }
            } else {
                LinkEvent::ConnectFailed {
                    shard,
                    error: &reason,
                    delay,
                }
            });
            self.report(
                &mut out,
                false,
                self.symbols.len(),
                &format!("{reason}; reconnecting in {} ms", delay.as_millis()),
            )?;
            if !self.wait(delay, &mut out).await? {
                return Ok(());
            }
        }
    }

    /// Sleeps `delay` while still delivering queued events and discarding resync commands (the
    /// next connection snapshots every book anyway). False on shutdown.
    async fn wait(&mut self, delay: Duration, out: &mut Outflow) -> Result<bool, ConnectorError> {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(false),
                () = tokio::time::sleep_until(until) => return Ok(true),
                _ = self.commands.recv() => {}
                permit = self.events.reserve(), if !out.pending.is_empty() => {
                    let permit = permit.map_err(|_| ConnectorError::SinkClosed)?;
                    if let Some(batch) = out.pending.pop_front() {
                        permit.send(batch);
                    }
                }
            }
        }
    }

    fn open_link(
        &mut self,
        socket: ws::VenueSocket,
        out: &mut Outflow,
    ) -> Result<Link, ConnectorError> {
        let conn = self.recorder.as_ref().map_or(0, Recorder::connection_id);
        let session = self.protocol.session(&self.symbols);
        let mut link = Link::new(socket, session, conn, self.protocol.send_interval());
        let open = RecordKind::Open {
            symbols: self.symbols.clone(),
            standby: false,
        };
        let io = self.input(&mut link, open);
        self.absorb(&mut link, io, out)?;
        Ok(link)
    }

    /// Records `kind` (when recording) and applies it to the link's session, with one receive
    /// time for both so that a replay sees exactly what the session saw.
    fn input(&self, link: &mut Link, kind: RecordKind) -> Io {
        let mut io = Io::new(Timestamp::now());
        if let Some(recorder) = &self.recorder {
            recorder.record(
                self.protocol.venue().as_str(),
                link.conn,
                io.recv_ts,
                kind.clone(),
            );
        }
        input::apply(link.session.as_mut(), &kind, &self.symbols, &mut io);
        io
    }

    /// Takes a session's output: frames to send, REST requests, events (with overflow
    /// handling). Returns the reconnect request, if any.
    fn absorb(
        &self,
        link: &mut Link,
        io: Io,
        out: &mut Outflow,
    ) -> Result<Option<String>, ConnectorError> {
        let Io {
            events,
            send,
            rest,
            seen,
            reconnect,
            rotate,
            gaps,
            checksum_failures,
            ignored,
            refused_snapshots,
            ..
        } = io;
        if gaps > 0 {
            self.stats.record(LinkEvent::Gaps { n: gaps });
        }
        if ignored > 0 {
            self.stats.record(LinkEvent::Ignored { n: ignored });
        }
        if refused_snapshots > 0 {
            self.stats.record(LinkEvent::RefusedSnapshots {
                n: refused_snapshots,
            });
        }
        if checksum_failures > 0 {
            self.stats.record(LinkEvent::ChecksumFailures {
                n: checksum_failures,
            });
        }
        link.outq.extend(send);
        for request in rest {
            link.spawn_rest(&self.rest, request, &self.stats);
        }
        let now = Instant::now();
        for symbol in seen {
            link.resubscribed.remove(&symbol);
            link.last_seen.insert(symbol, now);
        }
        for event in &events {
            match event {
                FeedEvent::Invalid { .. } => self.stats.record(LinkEvent::Invalid),
                FeedEvent::Trade { trade, .. } => self.stats.lag(trade.exchange_ts, trade.recv_ts),
                FeedEvent::BookDelta { delta, .. } => {
                    self.stats.lag(delta.exchange_ts, delta.recv_ts)
                }
                _ => {}
            }
        }
        if !out.push(&self.events, events)? {
            self.stats.record(LinkEvent::Overflow { shard: self.index });
            let Io {
                events, send, rest, ..
            } = self.input(link, RecordKind::Overflow);
            link.outq.extend(send);
            for request in rest {
                link.spawn_rest(&self.rest, request, &self.stats);
            }
            out.push(&self.events, events)?;
        }
        if let Some(reason) = rotate {
            link.rotate_requested = Some(reason);
        }
        Ok(reconnect)
    }

    /// Serves one connection until it ends: reads frames, sends paced frames, answers REST
    /// and resync commands, and rotates the connection make-before-break when it is due.
    async fn serve(
        &mut self,
        mut link: Link,
        out: &mut Outflow,
    ) -> Result<LinkEnd, ConnectorError> {
        let settings = self.protocol.settings().clone();
        let silence = Duration::from_secs(settings.silence_secs);
        let stale_after = Duration::from_secs(settings.stale_after_secs);
        let connect_timeout = Duration::from_secs(settings.connect_timeout_secs);
        let rotate_after = self.protocol.rotate_after();
        self.active_conn = link.conn;
        let now = Instant::now();
        for symbol in &self.symbols {
            link.last_seen.insert(symbol.clone(), now);
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // `None` until the first report: a connection whose books are still syncing reports
        // `resyncing` at once instead of staying `connecting` (issue 15).
        let mut reported: Option<(bool, Option<String>)> = None;
        let mut rotation = Rotation::default();
        loop {
            let syncing = link.session.syncing();
            let now_state = (
                syncing == 0,
                link.session.sync_note().filter(|_| syncing > 0),
            );
            if reported.as_ref() != Some(&now_state) {
                let what = match (&now_state.1, syncing) {
                    (_, 0) => "connected, books in sync".to_string(),
                    (None, n) => format!("connected, {n} book(s) syncing"),
                    (Some(note), n) => format!("connected, {n} book(s) syncing: {note}"),
                };
                self.report(out, true, syncing, &what)?;
                reported = Some(now_state);
            }
            self.start_rotation_if_due(&link, &mut rotation, rotate_after, connect_timeout);
            let end = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    link.close().await;
                    return Ok(LinkEnd::Shutdown);
                }
                permit = self.events.reserve(), if !out.pending.is_empty() => {
                    let permit = permit.map_err(|_| ConnectorError::SinkClosed)?;
                    if let Some(batch) = out.pending.pop_front() {
                        permit.send(batch);
                    }
                    None
                }
                item = link.stream.next() => match link.classify(item) {
                    Ok(Some(text)) => {
                        self.stats.record(LinkEvent::Frame { bytes: text.len() });
                        self.feed(&mut link, RecordKind::Ws { text }, out)?
                    }
                    Ok(None) => None,
                    Err(reason) => Some(LinkEnd::Reconnect(reason)),
                },
                event = standby_event(&mut rotation.standby) => {
                    if let Some(conn) = self.on_standby(&mut link, &mut rotation, event, out)? {
                        self.active_conn = conn;
                    }
                    None
                }
                dialed = async { rotation.dialing.as_mut().expect("guarded").await }, if rotation.dialing.is_some() => {
                    rotation.dialing = None;
                    self.on_dialed(&mut rotation, dialed);
                    None
                }
                () = tokio::time::sleep_until(link.next_send), if !link.outq.is_empty() => {
                    link.send_next().await.err().map(LinkEnd::Reconnect)
                }
                answer = link.rest_rx.recv() => match answer {
                    Some((key, answer)) => {
                        let (body, error) = match answer {
                            Ok(body) => (Some(body), None),
                            Err(error) => (None, Some(error)),
                        };
                        self.feed(&mut link, RecordKind::Rest { key, body, error }, out)?
                    }
                    None => None,
                },
                command = self.commands.recv() => match command {
                    Some(Command::Resync(symbol)) => {
                        self.feed(&mut link, RecordKind::Resync { symbol }, out)?
                    }
                    None => None,
                },
                _ = tick.tick() => self.on_tick(&mut link, &mut rotation, silence, stale_after, out)?,
            };
            if let Some(end) = end {
                return Ok(end);
            }
        }
    }

    /// Gives `kind` to the session and applies what it returns; `Some` when the connection
    /// must be replaced.
    fn feed(
        &self,
        link: &mut Link,
        kind: RecordKind,
        out: &mut Outflow,
    ) -> Result<Option<LinkEnd>, ConnectorError> {
        let io = self.input(link, kind);
        Ok(self.absorb(link, io, out)?.map(LinkEnd::Reconnect))
    }

    /// Starts dialing a replacement connection when a rotation is due (the venue asked for
    /// it, or `rotate_after` passed) and none is under way or waiting to be retried.
    fn start_rotation_if_due(
        &self,
        link: &Link,
        rotation: &mut Rotation,
        rotate_after: Option<Duration>,
        timeout: Duration,
    ) {
        let rotate_due = link.rotate_requested.is_some()
            || rotate_after.is_some_and(|after| link.opened.elapsed() >= after);
        let retry_ok = rotation.retry_at.is_none_or(|at| Instant::now() >= at);
        if !rotate_due
            || !retry_ok
            || rotation.standby.is_some()
            || rotation.dialing.is_some()
            || rotation.started.is_some()
        {
            return;
        }
        let reason = link
            .rotate_requested
            .clone()
            .unwrap_or_else(|| "scheduled rotation".into());
        tracing::info!(venue = %self.protocol.venue(), shard = self.index, %reason, "opening a replacement connection (make-before-break)");
        let url = self.protocol.ws_url(&self.symbols);
        rotation.dialing = Some(tokio::spawn(
            async move { ws::connect(&url, timeout).await },
        ));
        rotation.started = Some(Instant::now());
    }

    /// The dialed replacement: subscribed in standby, or logged if it failed.
    fn on_dialed(
        &self,
        rotation: &mut Rotation,
        dialed: Result<Result<ws::VenueSocket, String>, tokio::task::JoinError>,
    ) {
        match dialed {
            Ok(Ok(socket)) => {
                let conn = self.recorder.as_ref().map_or(0, Recorder::connection_id);
                let mut next = Link::new(
                    socket,
                    self.protocol.standby_session(&self.symbols),
                    conn,
                    self.protocol.send_interval(),
                );
                next.standby = true;
                let io = self.input(
                    &mut next,
                    RecordKind::Open {
                        symbols: self.symbols.clone(),
                        standby: true,
                    },
                );
                next.outq.extend(io.send);
                rotation.standby = Some(next);
            }
            Ok(Err(error)) => {
                tracing::warn!(venue = %self.protocol.venue(), shard = self.index, error = %error, "replacement connection failed")
            }
            Err(error) => {
                tracing::warn!(venue = %self.protocol.venue(), error = %error, "replacement dial task failed")
            }
        }
    }

    /// A frame (or a send) on the standby connection; it takes over from `link` as soon as
    /// its session has caught up.
    fn on_standby(
        &self,
        link: &mut Link,
        rotation: &mut Rotation,
        event: StandbyEvent,
        out: &mut Outflow,
    ) -> Result<Option<u64>, ConnectorError> {
        let Some(mut next) = rotation.standby.take() else {
            return Ok(None);
        };
        let frame = match event {
            StandbyEvent::Frame(frame) => frame,
            StandbyEvent::Sent(Ok(())) => {
                rotation.standby = Some(next);
                return Ok(None);
            }
            StandbyEvent::Sent(Err(_)) => return Ok(None),
        };
        match frame {
            Ok(Some(text)) => {
                let io = self.input(&mut next, RecordKind::Ws { text });
                // A standby session only buffers; what it asks for is the subscription.
                next.outq.extend(io.send);
                if next.session.ready_to_take_over(link.session.as_ref()) {
                    let mut io = Io::new(Timestamp::now());
                    if let Some(recorder) = &self.recorder {
                        recorder.record(
                            self.protocol.venue().as_str(),
                            next.conn,
                            io.recv_ts,
                            RecordKind::Takeover { old: link.conn },
                        );
                    }
                    next.session.take_over(link.session.as_ref(), &mut io);
                    let switched = next.conn;
                    let old = std::mem::replace(link, next);
                    link.last_seen = old.last_seen.clone();
                    self.absorb(link, io, out)?;
                    old.close_in_background();
                    self.stats.record(LinkEvent::Rotated { shard: self.index });
                    rotation.started = None;
                    rotation.retry_at = None;
                    return Ok(Some(switched));
                }
                rotation.standby = Some(next);
            }
            Ok(None) => rotation.standby = Some(next),
            Err(reason) => {
                tracing::warn!(venue = %self.protocol.venue(), shard = self.index, %reason, "replacement connection failed; keeping the current one");
            }
        }
        Ok(None)
    }

    /// Once a second: the silence timeout, the rotation deadline, the session's tick and the
    /// per-symbol watchdog.
    fn on_tick(
        &self,
        link: &mut Link,
        rotation: &mut Rotation,
        silence: Duration,
        stale_after: Duration,
        out: &mut Outflow,
    ) -> Result<Option<LinkEnd>, ConnectorError> {
        if link.last_frame.elapsed() >= silence {
            return Ok(Some(LinkEnd::Reconnect(format!(
                "no frame for {} s",
                silence.as_secs()
            ))));
        }
        // The replacement failed to connect or to catch up in time: drop it and
        // try again later (or, if the venue is closing this connection, reconnect).
        if let Some(started) = rotation.started
            && started.elapsed() >= ROTATION_DEADLINE
            && rotation.dialing.is_none()
        {
            tracing::warn!(venue = %self.protocol.venue(), shard = self.index, "replacement connection did not catch up in time; abandoning it");
            if let Some(next) = rotation.standby.take() {
                next.close_in_background();
            }
            if link.rotate_requested.is_some() {
                return Ok(Some(LinkEnd::Reconnect(
                    "venue is closing the connection and the replacement did not catch up".into(),
                )));
            }
            rotation.started = None;
            rotation.retry_at = Some(Instant::now() + ROTATION_DEADLINE);
        }
        if let Some(end) = self.feed(link, RecordKind::Tick, out)? {
            return Ok(Some(end));
        }
        let stale = match self.watchdog(link, stale_after) {
            Ok(stale) => stale,
            Err(end) => return Ok(Some(end)),
        };
        for symbol in stale {
            if let Some(end) = self.feed(link, RecordKind::Resubscribe { symbol }, out)? {
                return Ok(Some(end));
            }
        }
        Ok(None)
    }

    /// Per-symbol staleness: resubscribe a silent symbol once; if it stays silent, replace
    /// the connection.
    fn watchdog(&self, link: &mut Link, stale_after: Duration) -> Result<Vec<Symbol>, LinkEnd> {
        let now = Instant::now();
        let mut stale = Vec::new();
        for symbol in &self.symbols {
            let seen = link.last_seen.get(symbol).copied().unwrap_or(link.opened);
            if now.duration_since(seen) < stale_after {
                continue;
            }
            match link.resubscribed.get(symbol) {
                Some(at) if now.duration_since(*at) >= stale_after => {
                    return Err(LinkEnd::Reconnect(format!(
                        "{symbol}: no data for {} s even after resubscribing",
                        now.duration_since(seen).as_secs()
                    )));
                }
                Some(_) => {}
                None => stale.push(symbol.clone()),
            }
        }
        for symbol in &stale {
            self.stats.record(LinkEvent::Stale {
                symbol,
                after: stale_after,
            });
            link.resubscribed.insert(symbol.clone(), now);
        }
        Ok(stale)
    }
}
