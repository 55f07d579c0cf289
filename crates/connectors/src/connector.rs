//! The seam every venue implements.

use crate::event::{Command, FeedBatch};
use model::{Instrument, Venue};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Channels and signals handed to a running connector.
#[derive(Debug)]
pub struct ConnectorContext {
    /// Where events go. Bounded: when ingest falls behind, `send` waits, which slows the
    /// connector down instead of growing memory.
    pub events: mpsc::Sender<FeedBatch>,
    /// Requests from ingest (resync one book).
    pub commands: mpsc::Receiver<Command>,
    /// Cancelled on gateway shutdown; `run` must return promptly after it fires.
    pub shutdown: CancellationToken,
}

/// A source of normalized market data for one venue.
///
/// Guarantees a connector gives the ingest stage:
/// - **Ordering**: events for one symbol arrive in the venue's order.
/// - **Books**: a symbol's first book event after start, after a reconnect and after a
///   [`Command::Resync`] is a [`FeedEvent::BookSnapshot`](crate::FeedEvent::BookSnapshot);
///   deltas carry the venue's update ids so ingest can detect gaps. The connector does not hide
///   gaps: it forwards what the venue sent and lets ingest decide.
/// - **Delivery**: at most once. Events lost while disconnected are not replayed; the
///   snapshot after reconnect restores the book.
/// - **Shutdown**: `run` returns after `shutdown` is cancelled or the `events` receiver closes.
pub trait Connector: Send + 'static {
    /// The venue this connector serves.
    fn venue(&self) -> &Venue;

    /// The instruments this connector is configured for, as known before connecting (from
    /// config). Venue metadata fetched later arrives as `FeedEvent::Instruments`.
    fn instruments(&self) -> Vec<Instrument>;

    /// Link counters (frames, reconnects, gaps, …) for `/metrics`, if the connector keeps any.
    fn link_stats(&self) -> Option<std::sync::Arc<crate::conn::stats::LinkStats>> {
        None
    }

    /// Runs the feed until shutdown. Reconnects by itself; returns an error only for failures
    /// that retrying cannot fix (see [`ConnectorError::is_terminal`]).
    fn run(
        self: Box<Self>,
        ctx: ConnectorContext,
    ) -> Pin<Box<dyn Future<Output = Result<(), ConnectorError>> + Send>>;
}

/// Why a connector stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("invalid connector configuration: {0}")]
    Config(String),
    /// A setting that cannot be used; `key` is its dotted path (`venues[0].feed.silence_secs`),
    /// so a caller names it without parsing the text.
    #[error("invalid connector configuration: {key} {message}")]
    Setting { key: String, message: String },
    /// The capture file of a replay venue cannot be read.
    #[error("invalid connector configuration: cannot read capture {path}: {source}")]
    Capture {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the ingest stage stopped receiving events")]
    SinkClosed,
    #[error("venue connection failed: {0}")]
    Connection(String),
    /// A connection task panicked or was cancelled.
    #[error("venue connection failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

impl ConnectorError {
    /// A [`Self::Setting`] error: `key` (dotted path) followed by what is wrong with it.
    pub fn setting(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Setting {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The dotted path of the setting at fault, for a [`Self::Setting`] error.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Setting { key, .. } => Some(key),
            _ => None,
        }
    }

    /// True when retrying cannot help (bad configuration, the gateway is shutting down).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::Setting { .. } | Self::Capture { .. } | Self::SinkClosed
        )
    }
}
