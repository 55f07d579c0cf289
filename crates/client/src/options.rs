//! Client settings, with documented defaults.

use std::time::Duration;

/// Everything [`Client::connect`](crate::Client::connect) can be told.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent on the WebSocket upgrade and on every REST call.
    pub credentials: crate::Credentials,
    pub backoff: BackoffConfig,
    pub heartbeat: HeartbeatConfig,
    /// Events buffered between the connection task and the application. Default 4096.
    pub event_buffer: usize,
    /// What happens when that buffer is full. Default [`Overflow::Block`].
    pub overflow: Overflow,
    /// Keep a local order book for every subscribed `book:` channel ([`Client::book`]).
    /// Default true.
    ///
    /// [`Client::book`]: crate::ClientHandle::book
    pub mirror_books: bool,
    /// Time allowed for the TCP connect + WebSocket upgrade, and for a REST call. Default 10 s.
    pub connect_timeout: Duration,
    /// Largest server message accepted, bytes (a deep book snapshot is the largest). Default
    /// 16 MiB.
    pub max_message_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            credentials: crate::Credentials::None,
            backoff: BackoffConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            event_buffer: 4096,
            overflow: Overflow::Block,
            mirror_books: true,
            connect_timeout: Duration::from_secs(10),
            max_message_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Reconnect delays: exponential backoff with full jitter. The n-th attempt in a row (n = 1,
/// 2, …) waits a uniformly random time in `[0, min(cap, base × 2^(n-1))]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// Default 250 ms.
    pub base: Duration,
    /// Default 30 s.
    pub cap: Duration,
    /// Give up after this many failed attempts in a row (`None`: never). Default `None`.
    pub max_attempts: Option<u32>,
    /// A connection that stayed up this long resets the attempt count. Default 10 s.
    pub stable_after: Duration,
    /// Seed of the jitter; `None` seeds from the clock. Tests set it for repeatable delays.
    pub seed: Option<u64>,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            max_attempts: None,
            stable_after: Duration::from_secs(10),
            seed: None,
        }
    }
}

/// Connection liveness supervision.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// The client sends a `ping` op this often. Default 5 s.
    pub interval: Duration,
    /// No message at all (data, pong, ping) for this long: the connection is dead and is
    /// replaced. Default 15 s.
    pub timeout: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
        }
    }
}

/// What the connection task does when the application does not take events fast enough and
/// the event buffer is full. Memory stays bounded either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for the application. The task stops reading the socket, so the gateway sees a
    /// slow consumer and applies its policy: it conflates (a book resync, a `gap` notice for
    /// trades), both delivered as events, or disconnects, after which the client reconnects
    /// and resumes. Nothing is lost silently.
    Block,
    /// Keep reading: data events that do not fit are dropped and reported as one
    /// [`Event::Gap`](crate::Event::Gap) per channel (reason `client_buffer_full`) once
    /// there is room. Book mirrors stay exact (they are updated before the buffer). Control
    /// events (reconnecting, recovered, resync, errors) are never dropped: they wait.
    DropData,
}

impl ClientOptions {
    /// Checks ranges; the error names the setting.
    pub fn validate(&self) -> Result<(), crate::ClientError> {
        let bad =
            |key: &str, why: &str| Err(crate::ClientError::InvalidOption(format!("{key}: {why}")));
        if self.event_buffer == 0 {
            return bad("event_buffer", "must be at least 1");
        }
        if self.backoff.base.is_zero() || self.backoff.cap < self.backoff.base {
            return bad("backoff", "base must be positive and cap at least base");
        }
        if self.backoff.max_attempts == Some(0) {
            return bad("backoff.max_attempts", "must be at least 1 (or None)");
        }
        if self.heartbeat.interval.is_zero() || self.heartbeat.timeout <= self.heartbeat.interval {
            return bad(
                "heartbeat",
                "interval must be positive and timeout greater than it",
            );
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "must be positive");
        }
        if self.max_message_bytes < 1024 {
            return bad("max_message_bytes", "must be at least 1024");
        }
        Ok(())
    }
}
