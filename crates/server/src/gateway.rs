//! Starting and stopping the whole gateway.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{rest, ws};
use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use book::ChecksumAlgo;
use connectors::Connector;
use connectors::conn::WsConnector;
use connectors::conn::record::Recorder;
use connectors::venue::sim::SimConnector;
use hub::Hub;
use ingest::{Market, VenueHandle, spawn_venue};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the gateway could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("venue {venue}: {source}")]
    Venue {
        venue: String,
        #[source]
        source: connectors::ConnectorError,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    state: AppState,
    server: JoinHandle<Result<(), std::io::Error>>,
    venues: Vec<VenueHandle>,
}

/// Builds the router (exposed for in-process tests).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/instruments", get(rest::instruments))
        .route("/v1/ticker", get(rest::ticker))
        .route("/v1/book", get(rest::book))
        .route("/v1/candles", get(rest::candles))
        .route("/healthz", get(rest::healthz))
        .route("/readyz", get(rest::readyz))
        .route("/metrics", get(rest::metrics))
        .fallback(rest::not_found)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .with_state(state)
}

impl Gateway {
    /// Validates `config`, starts every venue, binds the listener and serves until
    /// [`Gateway::shutdown`].
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        Self::start_with(config, None).await
    }

    /// Like [`Gateway::start`], recording every WebSocket venue's traffic into `recorder`
    /// (`tickgate record`). The recorder's clones are dropped when the venues stop.
    pub async fn start_with(
        config: Config,
        recorder: Option<Recorder>,
    ) -> Result<Self, ServerError> {
        config.validate()?;
        // rustls with ring only; idempotent (the binary installs it first thing in main).
        connectors::conn::ws::ensure_crypto_provider();
        std::fs::create_dir_all(&config.server.data_dir).map_err(|source| {
            ServerError::DataDir {
                path: config.server.data_dir.display().to_string(),
                source,
            }
        })?;
        let shutdown = CancellationToken::new();
        let hub = Arc::new(Hub::new(config.hub.clone()));
        let market = Arc::new(Market::default());
        let metrics = Arc::new(Metrics::default());

        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.server.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.server.listen,
            source,
        })?;

        let mut venues = Vec::new();
        for (connector, checksum) in build_connectors(&config, recorder)? {
            let handle = spawn_venue(
                connector,
                checksum,
                hub.clone(),
                market.clone(),
                shutdown.clone(),
            );
            metrics.add_venue(handle.stats.clone());
            if let Some(link) = handle.link.clone() {
                metrics.add_link(link);
            }
            venues.push(handle);
        }

        if config.consolidated.enabled {
            let groups = config.consolidated_groups()?;
            let consolidator = ingest::consolidate::Consolidator::new(
                hub.clone(),
                market.clone(),
                groups,
                config.consolidated.depth,
            );
            let interval = Duration::from_millis(config.consolidated.interval_ms);
            tokio::spawn(consolidator.run(interval, shutdown.clone()));
        }

        let send_buffer = config.server.socket_send_buffer;
        let state = AppState::new(config, hub, market, metrics, shutdown.clone());
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let stop = shutdown.clone();
        // Small messages must leave at once (no Nagle delay); optionally bound kernel buffering.
        let listener = listener.tap_io(move |tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(error = %error, "cannot set TCP_NODELAY");
            }
            if send_buffer > 0
                && let Err(error) = socket2::SockRef::from(&*tcp).set_send_buffer_size(send_buffer)
            {
                tracing::debug!(error = %error, "cannot set the socket send buffer");
            }
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        tracing::info!(%addr, "tickgate listening");
        Ok(Self {
            addr,
            state,
            server,
            venues,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Asks everything to stop: sessions close with 1001, venues disconnect.
    pub fn shutdown(&self) {
        self.state.shutdown().cancel();
    }

    /// Stops (if not already asked) and waits for the listener, sessions and venues to finish,
    /// at most `server.shutdown_grace_secs` for sessions.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.shutdown();
        let grace = Duration::from_secs(self.state.config().server.shutdown_grace_secs);
        let deadline = tokio::time::Instant::now() + grace;
        while self
            .state
            .metrics()
            .connections_open
            .load(Ordering::Relaxed)
            > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for venue in self.venues {
            let _ = tokio::time::timeout(grace, venue.connector).await;
            let _ = tokio::time::timeout(grace, venue.ingest).await;
        }
        match tokio::time::timeout(grace, self.server).await {
            Ok(Ok(Err(error))) => Err(ServerError::Serve(error)),
            _ => Ok(()),
        }
    }
}

/// A connector and the checksum algorithm that verifies its books.
type VenueConnector = (Box<dyn Connector>, ChecksumAlgo);

/// One connector (and the checksum algorithm of its books) per configured venue; a `replay`
/// venue yields one per venue recorded in its capture.
fn build_connectors(
    config: &Config,
    recorder: Option<Recorder>,
) -> Result<Vec<VenueConnector>, ServerError> {
    let venue_error = |venue: &str| {
        let venue = venue.to_string();
        move |source| ServerError::Venue { venue, source }
    };
    let mut out: Vec<VenueConnector> = Vec::new();
    for (index, venue) in config.venues.iter().enumerate() {
        match venue.name.as_str() {
            "sim" => {
                let sim =
                    SimConnector::new(venue.sim_config(index)?).map_err(venue_error("sim"))?;
                let algo = if venue.sim.checksum {
                    ChecksumAlgo::Tickgate
                } else {
                    ChecksumAlgo::None
                };
                out.push((Box::new(sim), algo));
            }
            "replay" => {
                let path = venue.path.as_deref().unwrap_or(std::path::Path::new(""));
                let speed = venue.replay_speed(index)?;
                for replayed in
                    connectors::venue::replay::open(path, speed).map_err(venue_error("replay"))?
                {
                    let name = replayed.venue().as_str().to_string();
                    if config.venues.iter().any(|v| v.name == name) {
                        return Err(ServerError::Config(crate::config::ConfigError::new(
                            format!("venues[{index}].path"),
                            format!("the capture replays {name}, which is also configured live"),
                        )));
                    }
                    out.push((Box::new(replayed), connectors::venue::checksum_algo(&name)));
                }
            }
            name if connectors::venue::WS_VENUES.contains(&name) => {
                let spec = venue.venue_spec(index)?;
                let protocol =
                    connectors::venue::protocol(name, spec).map_err(venue_error(name))?;
                let mut connector = WsConnector::new(protocol);
                if let Some(recorder) = &recorder {
                    connector = connector.with_recorder(recorder.clone());
                }
                out.push((Box::new(connector), connectors::venue::checksum_algo(name)));
            }
            // `Config::validate` only lets supported venues through.
            other => {
                return Err(ServerError::Venue {
                    venue: other.to_string(),
                    source: connectors::ConnectorError::Config("unsupported venue".into()),
                });
            }
        }
    }
    Ok(out)
}
