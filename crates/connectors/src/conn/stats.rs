//! Per-venue link counters kept by the connection machinery, rendered by `/metrics`.

use model::{Timestamp, Venue};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one venue's connections. Bumped in the same place the event is logged.
#[derive(Debug)]
pub struct LinkStats {
    pub venue: Venue,
    /// Text frames received.
    pub frames: AtomicU64,
    /// Bytes of text frames received.
    pub bytes: AtomicU64,
    /// Connections opened successfully.
    pub connects: AtomicU64,
    /// Connections lost or replaced (each is followed by a reconnect).
    pub reconnects: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Make-before-break rotations completed.
    pub rotations: AtomicU64,
    /// Symbols resubscribed by the staleness watchdog.
    pub stale_resubscribes: AtomicU64,
    /// Venue sequence gaps the connector itself detected (Coinbase `sequence_num`).
    pub gaps: AtomicU64,
    /// Venue checksums that did not match (Kraken), each followed by a resubscription.
    pub checksum_failures: AtomicU64,
    /// Times ingest could not keep up and the connector dropped its backlog (books rebuilt).
    pub overflows: AtomicU64,
    /// Frames that did not parse or broke the venue's rules.
    pub parse_errors: AtomicU64,
    /// Well-formed frames of a stream, channel or symbol this connection did not subscribe
    /// (e.g. Binance `bookTicker`): dropped, and not parse errors.
    pub ignored_frames: AtomicU64,
    /// REST book snapshots refused as older than the stream (Binance `lastUpdateId` < first
    /// `U`), each followed by a backed-off retry.
    pub refused_snapshots: AtomicU64,
    /// REST requests that failed.
    pub rest_failures: AtomicU64,
    /// Exchange-to-gateway lag of events with an exchange time: sum (µs) and count.
    pub lag_sum_us: AtomicU64,
    pub lag_count: AtomicU64,
}

/// One thing that happened on a venue's connections. [`LinkStats::record`] counts it and
/// writes its log line in the same call, so a log line and its counter can never disagree (the
/// pattern of vector's internal events). Per-frame events are counted and not logged; gaps and
/// checksum failures are logged by the session that found them, with their detail.
#[derive(Clone, Copy)]
pub enum LinkEvent<'a> {
    /// A text frame of `bytes` arrived (counted only).
    Frame { bytes: usize },
    /// A frame did not parse or broke the venue's rules (counted; the session logs why).
    Invalid,
    /// A connection opened.
    Connected { shard: usize },
    /// A connection attempt failed; the next comes after `delay`.
    ConnectFailed {
        shard: usize,
        error: &'a dyn std::fmt::Display,
        delay: std::time::Duration,
    },
    /// An open connection ended; a new one is tried after `delay`.
    Lost {
        shard: usize,
        reason: &'a str,
        delay: std::time::Duration,
    },
    /// A make-before-break rotation switched to the replacement connection.
    Rotated { shard: usize },
    /// A symbol was silent for `after`; it is resubscribed.
    Stale {
        symbol: &'a model::Symbol,
        after: std::time::Duration,
    },
    /// Ingest was behind: the connection's backlog was dropped and its books are rebuilt.
    Overflow { shard: usize },
    /// `n` venue sequence gaps the connector itself detected.
    Gaps { n: u64 },
    /// `n` venue checksums that did not match (each followed by a resubscription).
    ChecksumFailures { n: u64 },
    /// `n` frames of something not subscribed were dropped (logged at debug by the session).
    Ignored { n: u64 },
    /// `n` REST snapshots were refused as too old (logged by the session with both ids).
    RefusedSnapshots { n: u64 },
    /// A REST request (`what`) failed.
    RestFailed {
        what: &'a str,
        error: &'a dyn std::fmt::Display,
    },
}

impl std::fmt::Debug for LinkEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Frame { .. } => "Frame",
            Self::Invalid => "Invalid",
            Self::Connected { .. } => "Connected",
            Self::ConnectFailed { .. } => "ConnectFailed",
            Self::Lost { .. } => "Lost",
            Self::Rotated { .. } => "Rotated",
            Self::Stale { .. } => "Stale",
            Self::Overflow { .. } => "Overflow",
            Self::Gaps { .. } => "Gaps",
            Self::ChecksumFailures { .. } => "ChecksumFailures",
            Self::Ignored { .. } => "Ignored",
            Self::RefusedSnapshots { .. } => "RefusedSnapshots",
            Self::RestFailed { .. } => "RestFailed",
        };
        f.write_str(name)
    }
}

impl LinkStats {
    /// Counts `event` and writes its log line (see [`LinkEvent`]).
    pub fn record(&self, event: LinkEvent<'_>) {
        let venue = &self.venue;
        match event {
            LinkEvent::Frame { bytes } => {
                Self::bump(&self.frames);
                self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            LinkEvent::Invalid => Self::bump(&self.parse_errors),
            LinkEvent::Connected { shard } => {
                Self::bump(&self.connects);
                tracing::debug!(%venue, shard, "venue connection opened");
            }
            LinkEvent::ConnectFailed {
                shard,
                error,
                delay,
            } => {
                Self::bump(&self.connect_failures);
                tracing::warn!(%venue, shard, reason = %format_args!("connect failed: {error}"), delay_ms = delay.as_millis() as u64, "venue connection lost; reconnecting");
            }
            LinkEvent::Lost {
                shard,
                reason,
                delay,
            } => {
                Self::bump(&self.reconnects);
                tracing::warn!(%venue, shard, reason = %reason, delay_ms = delay.as_millis() as u64, "venue connection lost; reconnecting");
            }
            LinkEvent::Rotated { shard } => {
                Self::bump(&self.rotations);
                tracing::info!(%venue, shard, "switched to the replacement connection");
            }
            LinkEvent::Stale { symbol, after } => {
                Self::bump(&self.stale_resubscribes);
                tracing::warn!(%venue, %symbol, "no data for {} s; resubscribing", after.as_secs());
            }
            LinkEvent::Overflow { shard } => {
                Self::bump(&self.overflows);
                tracing::warn!(%venue, shard, "ingest is behind; dropped the backlog, rebuilding this connection's books");
            }
            // The session that found them logs each with its detail (expected and received
            // sequence, both checksums) as it resubscribes; here they are only counted.
            LinkEvent::Gaps { n } => {
                self.gaps.fetch_add(n, Ordering::Relaxed);
            }
            LinkEvent::ChecksumFailures { n } => {
                self.checksum_failures.fetch_add(n, Ordering::Relaxed);
            }
            LinkEvent::Ignored { n } => {
                self.ignored_frames.fetch_add(n, Ordering::Relaxed);
            }
            LinkEvent::RefusedSnapshots { n } => {
                self.refused_snapshots.fetch_add(n, Ordering::Relaxed);
            }
            LinkEvent::RestFailed { what, error } => {
                Self::bump(&self.rest_failures);
                tracing::warn!(%venue, error = %error, "{what} failed");
            }
        }
    }

    pub fn new(venue: Venue) -> Self {
        let z = || AtomicU64::new(0);
        Self {
            venue,
            frames: z(),
            bytes: z(),
            connects: z(),
            reconnects: z(),
            connect_failures: z(),
            rotations: z(),
            stale_resubscribes: z(),
            gaps: z(),
            checksum_failures: z(),
            overflows: z(),
            parse_errors: z(),
            ignored_frames: z(),
            refused_snapshots: z(),
            rest_failures: z(),
            lag_sum_us: z(),
            lag_count: z(),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn lag(&self, exchange: Timestamp, recv: Timestamp) {
        if exchange.0 > 0 {
            let lag = recv.micros_since(exchange).max(0) as u64;
            self.lag_sum_us.fetch_add(lag, Ordering::Relaxed);
            self.lag_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `(name, help, value)` for each counter, for rendering.
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 16] {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            (
                "frames",
                "Text frames received from the venue.",
                l(&self.frames),
            ),
            ("bytes", "Bytes of text frames received.", l(&self.bytes)),
            ("connects", "Venue connections opened.", l(&self.connects)),
            (
                "reconnects",
                "Venue connections lost or replaced.",
                l(&self.reconnects),
            ),
            (
                "connect_failures",
                "Venue connection attempts that failed.",
                l(&self.connect_failures),
            ),
            (
                "rotations",
                "Make-before-break connection rotations.",
                l(&self.rotations),
            ),
            (
                "stale_resubscribes",
                "Symbols resubscribed by the staleness watchdog.",
                l(&self.stale_resubscribes),
            ),
            (
                "gaps",
                "Venue sequence gaps detected by the connector.",
                l(&self.gaps),
            ),
            (
                "checksum_failures",
                "Venue book checksums that did not match.",
                l(&self.checksum_failures),
            ),
            (
                "overflows",
                "Backlogs dropped because ingest fell behind.",
                l(&self.overflows),
            ),
            (
                "parse_errors",
                "Venue frames that failed to parse or validate.",
                l(&self.parse_errors),
            ),
            (
                "ignored_frames",
                "Venue frames of a stream or symbol not subscribed, dropped.",
                l(&self.ignored_frames),
            ),
            (
                "refused_snapshots",
                "REST book snapshots refused as older than the stream.",
                l(&self.refused_snapshots),
            ),
            (
                "rest_failures",
                "Venue REST requests that failed.",
                l(&self.rest_failures),
            ),
            (
                "lag_microseconds_sum",
                "Sum of exchange-to-gateway lag, microseconds.",
                l(&self.lag_sum_us),
            ),
            (
                "lag_count",
                "Events measured for exchange-to-gateway lag.",
                l(&self.lag_count),
            ),
        ]
    }
}
