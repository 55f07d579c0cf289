//! One WebSocket connection.
//!
//! A single task owns the socket. It waits on three things: an inbound client message, a frame
//! on any subscribed channel, and the heartbeat timer. When a frame is ready it also takes every
//! other frame already waiting (up to [`MAX_BATCH`]) and writes them with one flush: per-message
//! flushing costs 2–6× in throughput.
//!
//! Slow consumers: frames wait in each channel's shared ring, not in a per-client queue. A client
//! that falls more than the ring's capacity behind gets `Lagged` and, under the `conflate`
//! policy, a fresh snapshot (book, ticker, candles, status) or a `gap` notice (trades); a client
//! that lags too often, or whose socket write stalls for `write_timeout_secs`, is closed with
//! 4001. Nothing a slow client does delays the publisher or the other clients.
//!
//! Resume: a `subscribe` with `resume` positions joins each channel through
//! [`Topic::resume`]: the replayed frames are written right after the ack, then the
//! live ones. Conflation and resume interact like this: a lagging client is conflated (book
//! snapshot / `gap` notice) within its connection and its position moves past what it missed;
//! under the `disconnect` policy it is closed instead, and if it reconnects and resumes while
//! the missed frames are still in the history, it gets them all (`recovered: true`).

use super::auth::SessionAuth;
use super::limiter::TokenBucket;

mod login;
mod subscribe;
use super::recv::{FeedItem, Feeds};
use crate::config::SlowConsumerPolicy;
use crate::metrics::LocalLatency;
use crate::state::AppState;
use auth::Scope;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use hub::{Frame, Topic};
use model::Timestamp;
use protocol::{
    ClientOp, CloseCode, ErrorBody, ErrorCode, RequestId, ServerMessage, parse_client_op,
};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Most frames written per flush.
const MAX_BATCH: usize = 512;
/// Rejected requests in a row after which the client is closed (1008).
const MAX_REJECTED_IN_A_ROW: u32 = 100;
/// Latency and counters are merged into the global metrics at least this often.
const METRICS_MERGE: Duration = Duration::from_millis(500);

/// Why a session ended.
#[derive(Debug)]
pub(super) enum End {
    /// A frame exceeded the hard size limit.
    TooBig,
    /// The client broke RFC 6455 framing (close 1002 with this reason).
    Protocol(&'static str),
    /// A text message was not valid UTF-8 (close 1007).
    InvalidUtf8,
    ClientClosed,
    Socket(axum::Error),
    SlowConsumer(&'static str),
    Idle,
    Abuse,
    Shutdown,
    /// Authentication failed or did not happen in time (the error was sent).
    AuthFailed(ErrorCode),
    KeyRevoked,
    KeyExpired,
}

impl End {
    /// A read error: the client's fault gets the close code RFC 6455 names for it (§7.4.1),
    /// a dead socket nothing.
    fn from_socket_error(error: axum::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as WsError;
        use tokio_tungstenite::tungstenite::error::ProtocolError as P;
        let inner = error.into_inner();
        match inner.downcast_ref::<WsError>() {
            Some(WsError::Capacity(_)) => Self::TooBig,
            Some(WsError::Utf8(_)) => Self::InvalidUtf8,
            Some(WsError::Protocol(problem)) => match problem {
                P::ResetWithoutClosingHandshake | P::SendAfterClosing => {
                    Self::Socket(axum::Error::new(inner))
                }
                P::UnmaskedFrameFromClient => Self::Protocol("unmasked_frame"),
                P::NonZeroReservedBits => Self::Protocol("reserved_bits"),
                P::InvalidOpcode(_)
                | P::UnknownControlFrameType(_)
                | P::UnknownDataFrameType(_) => Self::Protocol("unknown_opcode"),
                P::FragmentedControlFrame | P::ControlFrameTooBig => {
                    Self::Protocol("bad_control_frame")
                }
                P::UnexpectedContinueFrame | P::ExpectedFragment(_) => {
                    Self::Protocol("bad_fragment")
                }
                _ => Self::Protocol("protocol_error"),
            },
            _ => Self::Socket(axum::Error::new(inner)),
        }
    }
}

struct Sub {
    handle: Arc<dyn Topic>,
    kind: usize,
    gap_notices: bool,
    last_seq: u64,
}

pub(super) struct Session {
    pub(super) state: AppState,
    pub(super) peer: SocketAddr,
    pub(super) auth: SessionAuth,
    socket: WebSocket,
    subs: Feeds<Frame>,
    info: HashMap<u32, Sub>,
    by_name: HashMap<Arc<str>, u32>,
    next_slot: u32,
    limiter: TokenBucket,
    last_inbound: Instant,
    lags: VecDeque<Instant>,
    latency: LocalLatency,
    out_counts: [u64; crate::metrics::KINDS.len()],
    out_bytes: u64,
    last_merge: Instant,
}

/// The session's task. Built as a plain function returning one `async move` block that uses
/// the session only by reference: an `async fn` would keep its by-value arguments twice (once
/// as captured, once moved into the session), and every idle connection pays for the task's
/// whole size (docs/benchmarks.md, "Idle connections").
pub(super) fn run(
    socket: WebSocket,
    state: AppState,
    peer: SocketAddr,
    auth: SessionAuth,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let metrics = state.metrics().clone();
    metrics.connections_open.fetch_add(1, Ordering::Relaxed);
    metrics.connections_total.fetch_add(1, Ordering::Relaxed);
    let span = tracing::debug_span!("ws", %peer);
    let mut session = Session {
        limiter: TokenBucket::new(state.config().ws.max_requests_per_sec),
        state,
        peer,
        auth,
        socket,
        subs: Feeds::default(),
        info: HashMap::new(),
        by_name: HashMap::new(),
        next_slot: 0,
        last_inbound: Instant::now(),
        lags: VecDeque::new(),
        latency: LocalLatency::default(),
        out_counts: [0; crate::metrics::KINDS.len()],
        out_bytes: 0,
        last_merge: Instant::now(),
    };
    async move {
        // Boxed: it runs once, and inline it would be the largest state of the task.
        let end = match Box::pin(session.announce_key()).await {
            Ok(()) => session.run().await,
            Err(end) => end,
        };
        session.merge_metrics();
        session.auth.release();
        tracing::debug!(?end, "session ended");
        session.close(end).await;
        metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
    .instrument(span)
}

impl Session {
    async fn run(&mut self) -> End {
        let ws = self.state.config().ws.clone();
        let shutdown = self.state.shutdown().clone();
        let mut heartbeat = tokio::time::interval(Duration::from_secs(ws.ping_interval_secs));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let write_timeout = Duration::from_secs(ws.write_timeout_secs);
        // Created once: a `Notify` registration per wake-up is measurable at 1,000 clients.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        loop {
            let auth_deadline = self.auth.deadline;
            let result = tokio::select! {
                biased;
                () = &mut cancelled => return End::Shutdown,
                // Key events, the auth deadline and client messages are rare: their handlers
                // are boxed so that `run`'s future, which every idle session holds, is only as
                // large as the frame path's.
                event = self.auth.next_event() => Box::pin(self.on_key_event(event)).await,
                () = tokio::time::sleep_until(auth_deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if auth_deadline.is_some() && self.auth.key.is_none() => {
                    Box::pin(self.require_auth(None)).await
                }
                inbound = self.socket.next() => match inbound {
                    Some(Ok(message)) => {
                        self.last_inbound = Instant::now();
                        let handling = Box::pin(self.on_message(message));
                        match tokio::time::timeout(write_timeout, handling).await {
                            Ok(result) => result,
                            Err(_) => Err(End::SlowConsumer("write timed out")),
                        }
                    }
                    Some(Err(error)) => Err(End::from_socket_error(error)),
                    None => Err(End::ClientClosed),
                },
                (slot, item) = self.subs.next(), if !self.subs.is_empty() => {
                    match tokio::time::timeout(write_timeout, self.deliver(slot, item)).await {
                        Ok(result) => result,
                        Err(_) => Err(End::SlowConsumer("write timed out")),
                    }
                }
                _ = heartbeat.tick() => self.heartbeat(ws.idle_timeout_secs).await,
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Writes `first` and every frame already waiting, then flushes once.
    async fn deliver(&mut self, slot: u32, first: FeedItem<Frame>) -> Result<(), End> {
        let now = Timestamp::now().0;
        self.on_item(slot, first, now).await?;
        for _ in 1..MAX_BATCH {
            match self.subs.try_next() {
                Some((slot, item)) => self.on_item(slot, item, now).await?,
                None => break,
            }
        }
        self.socket.flush().await.map_err(End::Socket)?;
        if self.last_merge.elapsed() >= METRICS_MERGE {
            self.merge_metrics();
        }
        Ok(())
    }

    async fn on_item(&mut self, slot: u32, item: FeedItem<Frame>, now: i64) -> Result<(), End> {
        match item {
            Ok(frame) => {
                let Some(sub) = self.info.get_mut(&slot) else {
                    return Ok(());
                };
                sub.last_seq = frame.seq;
                let kind = sub.kind;
                self.latency.record(now - frame.recv_ts);
                self.feed_frame(&frame, kind).await
            }
            // Boxed (a lag is rare; it would make every delivery's future larger).
            Err(missed) => Box::pin(self.on_lag(slot, missed)).await,
        }
    }

    /// The client missed `missed` frames of one channel.
    async fn on_lag(&mut self, slot: u32, missed: u64) -> Result<(), End> {
        let metrics = self.state.metrics().clone();
        metrics.frames_dropped.fetch_add(missed, Ordering::Relaxed);
        let ws = &self.state.config().ws;
        let now = Instant::now();
        self.lags.push_back(now);
        while self
            .lags
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.lags.pop_front();
        }
        if ws.slow_consumer == SlowConsumerPolicy::Disconnect {
            return Err(End::SlowConsumer("fell behind"));
        }
        if self.lags.len() > ws.max_lags_per_minute as usize {
            return Err(End::SlowConsumer("fell behind too often"));
        }
        let Some(sub) = self.info.get_mut(&slot) else {
            return Ok(());
        };
        if sub.gap_notices {
            let from_seq = sub.last_seq + 1;
            sub.last_seq += missed;
            let gap = ServerMessage::Gap {
                channel: sub.handle.name().to_string(),
                from_seq,
                to_seq: sub.last_seq,
                reason: "slow_consumer".into(),
            };
            metrics.gaps.fetch_add(1, Ordering::Relaxed);
            return self.feed_message(&gap).await;
        }
        // Rejoin: a snapshot at the channel's current seq, then live frames after it.
        let joined = sub.handle.subscribe(true);
        sub.last_seq = joined.seq;
        let kind = sub.kind;
        if kind == 0 {
            metrics.conflations.fetch_add(1, Ordering::Relaxed);
        }
        self.subs.insert(slot, joined.rx);
        match joined.initial {
            Some(frame) => self.feed_frame(&frame, kind).await,
            None => Ok(()),
        }
    }

    async fn heartbeat(&mut self, idle_timeout_secs: u64) -> Result<(), End> {
        if self.last_inbound.elapsed() > Duration::from_secs(idle_timeout_secs) {
            self.state
                .metrics()
                .idle_disconnects
                .fetch_add(1, Ordering::Relaxed);
            return Err(End::Idle);
        }
        self.merge_metrics();
        self.socket
            .send(Message::Ping(bytes::Bytes::new()))
            .await
            .map_err(End::Socket)
    }

    async fn on_message(&mut self, message: Message) -> Result<(), End> {
        self.state
            .metrics()
            .messages_in
            .fetch_add(1, Ordering::Relaxed);
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .reply_error(
                        ErrorCode::BadRequest,
                        "binary frames are not supported; send JSON text",
                        None,
                        None,
                    )
                    .await;
            }
            Message::Close(_) => return Err(End::ClientClosed),
            // tungstenite answers pings itself; either kind only proves the client is alive.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        if !self.limiter.try_take(Instant::now()) {
            if self.limiter.rejected_in_a_row > MAX_REJECTED_IN_A_ROW {
                return Err(End::Abuse);
            }
            let limit = self.state.config().ws.max_requests_per_sec;
            return self
                .reply_error(
                    ErrorCode::RateLimited,
                    &format!("more than {limit} requests per second"),
                    None,
                    None,
                )
                .await;
        }
        let max = self.state.config().ws.max_message_bytes;
        if text.len() > max {
            return self
                .reply_error(
                    ErrorCode::MessageTooLarge,
                    &format!("message of {} bytes exceeds the limit of {max}", text.len()),
                    None,
                    None,
                )
                .await;
        }
        let op = match parse_client_op(text.as_str()) {
            Err(error) => {
                return self
                    .reply_error(error.code, &error.message, error.id, None)
                    .await;
            }
            Ok(ClientOp::Auth { id, login }) => return self.on_auth(id, login).await,
            Ok(op) => op,
        };
        self.require_auth(op.id().cloned()).await?;
        self.count_key_usage_request();
        match op {
            ClientOp::Auth { .. } => Ok(()),
            ClientOp::Ping { id } => {
                self.send_message(&ServerMessage::Pong {
                    id,
                    ts: Timestamp::now().0,
                })
                .await
            }
            ClientOp::Subscribe {
                id,
                channels,
                resume,
            } => self.subscribe(id, channels, resume).await,
            ClientOp::Unsubscribe { id, channels } => self.unsubscribe(id, channels).await,
        }
    }

    pub(super) async fn reply_error(
        &mut self,
        code: ErrorCode,
        message: &str,
        id: Option<RequestId>,
        channel: Option<String>,
    ) -> Result<(), End> {
        self.state.metrics().count_error(code);
        let error = ServerMessage::Error(ErrorBody {
            code,
            message: auth::token::redact(message).into_owned(),
            id,
            channel,
        });
        self.send_message(&error).await
    }

    pub(super) async fn flush(&mut self) -> Result<(), End> {
        self.socket.flush().await.map_err(End::Socket)
    }

    pub(super) fn subscription_count(&self) -> usize {
        self.by_name.len()
    }

    /// The scopes this session's subscriptions need: `alerts:write` for the private `alerts`
    /// channel, `market:read` for any other.
    pub(super) fn subscribed_scopes(&self) -> Vec<Scope> {
        let mut scopes = Vec::new();
        for name in self.by_name.keys() {
            let scope = match name.parse::<model::Channel>() {
                Ok(c) if c.kind == model::ChannelKind::Alerts => Scope::AlertsWrite,
                _ => Scope::MarketRead,
            };
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        scopes
    }

    fn count_key_usage_request(&self) {
        if let Some(key) = &self.auth.key {
            key.entry.usage.requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) async fn send_message(&mut self, message: &ServerMessage) -> Result<(), End> {
        self.feed_message(message).await?;
        self.socket.flush().await.map_err(End::Socket)
    }

    pub(super) async fn feed_message(&mut self, message: &ServerMessage) -> Result<(), End> {
        self.socket
            .feed(Message::Text(message.to_json().into()))
            .await
            .map_err(End::Socket)
    }

    /// Queues one channel frame; `kind` indexes [`KINDS`] for the delivery counters.
    async fn feed_frame(&mut self, frame: &Frame, kind: usize) -> Result<(), End> {
        self.out_counts[kind] += 1;
        self.out_bytes += frame.text.len() as u64;
        // The hub keeps frames as WebSocket text: a reference-count bump, no UTF-8 check here.
        self.socket
            .feed(Message::Text(frame.text.clone()))
            .await
            .map_err(End::Socket)
    }

    fn merge_metrics(&mut self) {
        let delivered: u64 = self.out_counts.iter().sum();
        self.count_key_usage(delivered, self.out_bytes);
        let metrics = self.state.metrics();
        metrics.merge_latency(&mut self.latency);
        for (global, local) in metrics.messages_out.iter().zip(&mut self.out_counts) {
            if *local > 0 {
                global.fetch_add(std::mem::take(local), Ordering::Relaxed);
            }
        }
        metrics
            .bytes_out
            .fetch_add(std::mem::take(&mut self.out_bytes), Ordering::Relaxed);
        self.last_merge = Instant::now();
    }

    /// Sends a close frame saying why (best effort: the peer may already be gone).
    async fn close(&mut self, end: End) {
        let (code, reason) = match &end {
            End::ClientClosed => return,
            End::Socket(error) => {
                tracing::debug!(error = %error, "socket error");
                return;
            }
            End::Shutdown => (CloseCode::GoingAway, "server shutting down"),
            End::TooBig => (CloseCode::TooBig, ErrorCode::MessageTooLarge.as_str()),
            End::Protocol(why) => (CloseCode::ProtocolError, *why),
            End::InvalidUtf8 => (CloseCode::InvalidPayload, "invalid_utf8"),
            End::Idle => (CloseCode::IdleTimeout, "idle timeout"),
            End::Abuse => (CloseCode::PolicyViolation, "too many rejected requests"),
            End::AuthFailed(code) => (CloseCode::AuthFailed, code.as_str()),
            End::KeyRevoked => (CloseCode::KeyRevoked, ErrorCode::KeyRevoked.as_str()),
            End::KeyExpired => (CloseCode::KeyExpired, ErrorCode::KeyExpired.as_str()),
            End::SlowConsumer(why) => {
                self.state
                    .metrics()
                    .slow_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(reason = why, "closing slow consumer");
                (CloseCode::SlowConsumer, ErrorCode::SlowConsumer.as_str())
            }
        };
        let frame = CloseFrame {
            code: code.code(),
            reason: Utf8Bytes::from(reason),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.socket.send(Message::Close(Some(frame))),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn output_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(WebSocket, AppState, SocketAddr, SessionAuth) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Every idle connection holds one session task, so its future's size is most of an idle
    /// connection's memory (docs/benchmarks.md, "Idle connections"): 4,288 bytes before the
    /// rare paths were boxed, about 2,000 after. A new inline `await` on a rare path that
    /// makes it much larger fails here instead of in a benchmark rerun weeks later.
    #[test]
    fn a_session_task_stays_small() {
        let size = output_size(run);
        println!("session future: {size} bytes");
        assert!(size <= 2_600, "the session future grew to {size} bytes");
    }
}
