//! Cluster mode over NATS JetStream: an **ingest** node runs connectors into its memory hub and
//! forwards every frame, with the `seq` and `epoch` the hub gave it, to JetStream; an **edge**
//! node runs no connector and serves clients from replica channels fed by JetStream, so every
//! edge serves the same seq for the same frame and a resume on another edge is exact.
//! ARCHITECTURE.md ("Cluster mode") describes subjects, streams, late join and failure cases;
//! docs/operations.md ("Cluster") the roles.
//!
//! # Layout
//!
//! - [`subject`]: subject, stream and header names (one prefix per cluster).
//! - `streams`: creating the two streams and their retention.
//! - [`lease`]: one active ingest per venue, by a lease in NATS KV with a TTL.
//! - [`exclusive`]: tasks that run on exactly one node of the cluster (each alert
//!   partition's evaluator), gated by a lease of their own in the same bucket.
//! - `batch`: several frames of one channel in one JetStream message (one acknowledged
//!   publish per batch).
//! - [`forwarder`]: ingest side, every local hub frame and a snapshot record per channel to
//!   JetStream, refused as a stale writer by `Nats-Expected-Last-Subject-Sequence`.
//! - [`failover`]: the forwarder's gate from the lease: one active ingest per venue, the loser
//!   stops publishing before the lease can pass to a standby.
//! - [`feeder`]: edge side, replica channels in the local hub built from the snapshot records
//!   and the frames after them; told when the bus goes down and comes back.
//! - [`instruments`]: instrument metadata in a KV bucket, written by the venue's owner, read
//!   by the edges (which run no connector).

mod batch;
pub mod exclusive;
pub mod failover;
pub mod feeder;
pub mod forwarder;
pub mod instruments;
pub mod lease;
mod streams;
pub mod subject;

pub use subject::Names;

use std::time::Duration;

/// Settings shared by ingest and edge nodes of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Prefix of every subject, stream and bucket (`[A-Za-z0-9_-]{1,32}`).
    pub prefix: String,
    /// This node's name, in the lease (for operators: who owns a venue).
    pub node: String,
    /// Frames kept per channel in the frames stream (like `hub.history_size`).
    pub history_size: usize,
    /// Age limit of the frames stream (like `hub.history_ttl_secs`); raised to at least twice
    /// `snapshot_interval` so a late edge always finds the frames after the last snapshot.
    pub history_ttl: Duration,
    /// How often the ingest republishes a changed channel's snapshot record.
    pub snapshot_interval: Duration,
    /// How often the ingest looks for new channels in its hub.
    pub scan_interval: Duration,
    /// Lease time-to-live: a dead ingest's venues are taken over after at most this long.
    pub lease_ttl: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            prefix: "tg".into(),
            node: "node".into(),
            history_size: 1024,
            history_ttl: Duration::from_secs(10),
            snapshot_interval: Duration::from_secs(2),
            scan_interval: Duration::from_millis(200),
            lease_ttl: Duration::from_secs(3),
        }
    }
}

impl ClusterOptions {
    /// Checks the ranges and returns the names.
    pub fn names(&self) -> Result<Names, ClusterError> {
        let names = Names::new(&self.prefix).map_err(|_| ClusterError::Config {
            key: "cluster.prefix",
            message: "must be 1 to 32 characters of [A-Za-z0-9_-]",
        })?;
        let config = |key, message| Err(ClusterError::Config { key, message });
        if !(1..=1_048_576).contains(&self.history_size) {
            return config("cluster.history_size", "must be between 1 and 1048576");
        }
        if self.snapshot_interval < Duration::from_millis(50) {
            return config("cluster.snapshot_interval", "must be at least 50 ms");
        }
        if self.scan_interval < Duration::from_millis(10) {
            return config("cluster.scan_interval", "must be at least 10 ms");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&self.lease_ttl) {
            return config("cluster.lease_ttl", "must be between 1 and 60 s");
        }
        if self.node.is_empty() || self.node.len() > 64 {
            return config("cluster.node", "must be 1 to 64 characters");
        }
        Ok(names)
    }
}

/// What went wrong in cluster mode. The messages name no credential (a URL's user info is
/// never included).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{key} {message}")]
    Config {
        key: &'static str,
        message: &'static str,
    },
    #[error("cannot connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
    #[error("JetStream {what} failed")]
    JetStream {
        what: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error("another ingest owns venue {venue}")]
    NotOwner { venue: String },
    #[error("the lease of venue {venue} was lost (another writer is active)")]
    Fenced { venue: String },
    #[error("unreadable bus message: {what}")]
    BadMessage { what: &'static str },
}

impl ClusterError {
    /// Stable code, for logs and the API edge.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } => "cluster_config",
            Self::Connect(_) => "cluster_connect",
            Self::JetStream { .. } => "cluster_jetstream",
            Self::NotOwner { .. } => "cluster_not_owner",
            Self::Fenced { .. } => "cluster_fenced",
            Self::BadMessage { .. } => "cluster_bad_message",
        }
    }

    /// Whether trying again later may succeed (NATS unreachable or busy).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect(_) | Self::JetStream { .. } | Self::NotOwner { .. }
        )
    }
}

/// Connects like [`connect`] and follows the connection: the receiver holds `true` while the
/// client is connected (what the edge marks its channels stale by, and `/readyz` reports).
pub async fn connect_watched(
    url: &str,
) -> Result<(async_nats::Client, tokio::sync::watch::Receiver<bool>), ClusterError> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = std::sync::Arc::new(tx);
    let events = tx.clone();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        events.send_replace(true);
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        events.send_replace(false);
                    }
                    _ => {}
                }
            }
        })
        .connect(url)
        .await
        .map_err(ClusterError::Connect)?;
    if client.connection_state() == async_nats::connection::State::Connected {
        tx.send_replace(true);
    }
    Ok((client, rx))
}

/// Removes a cluster's streams and lease bucket from NATS (what a benchmark or test run
/// created under its own prefix). Missing ones are fine.
pub async fn remove(url: &str, prefix: &str) -> Result<(), ClusterError> {
    let names = Names::new(prefix).map_err(|_| ClusterError::Config {
        key: "cluster.prefix",
        message: "must be 1 to 32 characters of [A-Za-z0-9_-]",
    })?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(ClusterError::Connect)?;
    let js = async_nats::jetstream::new(client);
    for stream in [
        names.frames_stream(),
        names.snapshots_stream(),
        format!("KV_{}", names.lease_bucket()),
    ] {
        use async_nats::jetstream::{ErrorCode, context::DeleteStreamErrorKind};
        if let Err(error) = js.delete_stream(&stream).await
            && !matches!(error.kind(), DeleteStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
        {
            return Err(ClusterError::JetStream {
                what: "stream delete",
                source: error.into(),
            });
        }
    }
    Ok(())
}

/// Connects to NATS (plain TCP; TLS is for a later issue), reconnecting forever.
pub async fn connect(url: &str) -> Result<async_nats::Client, ClusterError> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(ClusterError::Connect)
}
