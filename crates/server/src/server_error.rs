//! [`ServerError`]: why the gateway could not start or stopped abnormally.

use std::net::SocketAddr;
use store::StoreError;

/// Why the gateway could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config_error::ConfigError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("venue {venue}")]
    Venue {
        venue: String,
        #[source]
        source: connectors::ConnectorError,
    },
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("history store: {0}")]
    History(#[source] StoreError),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("key store: {0}")]
    Store(#[from] store::StoreError),
    #[error("auth: {0}")]
    Auth(String),
    #[error("alerts: {0}")]
    Alerts(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The market-data bus (NATS) of an ingest or edge node; the message carries the stable
    /// `cluster_*` code and names no credential.
    #[error("market-data bus: {0} ({code})", code = .0.code())]
    Cluster(#[source] cluster::ClusterError),
}
