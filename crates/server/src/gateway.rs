//! Starting and stopping the whole gateway.

use crate::access::{self, Scope};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{history, openapi, rest, rest_history, ws};
use axum::Router;
use axum::routing::{MethodRouter, get};
use axum::serve::ListenerExt;
use book::ChecksumAlgo;
use connectors::Connector;
use connectors::venue::sim::SimConnector;
use hub::Hub;
use ingest::{Market, VenueHandle, spawn_venue};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::{HistoryStore, HistoryWriter, StoreError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the gateway could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
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
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    state: AppState,
    server: JoinHandle<Result<(), std::io::Error>>,
    venues: Vec<VenueHandle>,
    history: Option<HistoryWriter>,
}

/// One route: its path, the scope a caller needs, and its handlers.
#[derive(Debug)]
pub struct Route {
    pub path: &'static str,
    pub scope: Scope,
    pub handler: MethodRouter<AppState>,
}

/// Every route the gateway serves. The router is built only from this list, and a test checks
/// that each one is described in `/openapi.json`.
pub fn routes() -> Vec<Route> {
    let route = |path, scope, handler| Route {
        path,
        scope,
        handler,
    };
    vec![
        route("/v1/ws", Scope::MarketRead, get(ws::upgrade)),
        route("/v1/instruments", Scope::MarketRead, get(rest::instruments)),
        route("/v1/ticker", Scope::MarketRead, get(rest::ticker)),
        route("/v1/book", Scope::MarketRead, get(rest::book)),
        route("/v1/trades", Scope::HistoryRead, get(rest_history::trades)),
        route(
            "/v1/candles",
            Scope::HistoryRead,
            get(rest_history::candles),
        ),
        route("/healthz", Scope::Public, get(rest::healthz)),
        route("/readyz", Scope::Public, get(rest::readyz)),
        route("/metrics", Scope::Public, get(rest::metrics)),
        route("/openapi.json", Scope::Public, get(openapi::serve)),
    ]
}

/// Builds the router (exposed for in-process tests).
pub fn router(state: AppState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| {
            let scope = r.scope;
            let handler = r
                .handler
                .route_layer(axum::middleware::from_fn(move |request, next| {
                    access::require(scope, request, next)
                }));
            router.route(r.path, handler)
        })
        .fallback(rest::not_found)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .with_state(state)
}

impl Gateway {
    /// Validates `config`, starts every venue, binds the listener and serves until
    /// [`Gateway::shutdown`].
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        Self::start_with_store(config, None).await
    }

    /// Like [`Gateway::start`], with `store` instead of `history.db` in the data directory
    /// (tests use a deliberately slow one; a cluster deployment a shared one).
    pub async fn start_with_store(
        config: Config,
        store: Option<Arc<dyn HistoryStore>>,
    ) -> Result<Self, ServerError> {
        config.validate()?;
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
        let (history, writer) = history::start(&config, store).await?.unzip();
        let sink = writer.as_ref().map(HistoryWriter::sink);

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
        for (index, venue) in config.venues.iter().enumerate() {
            let (connector, checksum): (Box<dyn Connector>, ChecksumAlgo) =
                match venue.name.as_str() {
                    "sim" => {
                        let sim =
                            SimConnector::new(venue.sim_config(index)?).map_err(|source| {
                                ServerError::Venue {
                                    venue: venue.name.clone(),
                                    source,
                                }
                            })?;
                        let algo = if venue.sim.checksum {
                            ChecksumAlgo::Tickgate
                        } else {
                            ChecksumAlgo::None
                        };
                        (Box::new(sim), algo)
                    }
                    // `Config::validate` only lets supported venues through.
                    other => {
                        return Err(ServerError::Venue {
                            venue: other.to_string(),
                            source: connectors::ConnectorError::Config("unsupported venue".into()),
                        });
                    }
                };
            let handle = spawn_venue(
                connector,
                checksum,
                hub.clone(),
                market.clone(),
                sink.clone(),
                shutdown.clone(),
            );
            metrics.add_venue(handle.stats.clone());
            venues.push(handle);
        }

        let send_buffer = config.server.socket_send_buffer;
        let state = AppState::new(config, hub, market, metrics, history, shutdown.clone());
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
            history: writer,
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
        // The ingest tasks have handed over their last trades and open candles: write them.
        if let Some(writer) = self.history {
            let _ = tokio::task::spawn_blocking(move || writer.close()).await;
        }
        match tokio::time::timeout(grace, self.server).await {
            Ok(Ok(Err(error))) => Err(ServerError::Serve(error)),
            _ => Ok(()),
        }
    }
}
