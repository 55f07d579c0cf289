//! Starting and stopping the whole gateway.

use crate::alerts::{rules, webhooks};
use crate::auth::{AuthState, admin, layer};
use crate::config::Config;
use crate::metrics::Metrics;
pub use crate::route::Route;
pub use crate::server_error::ServerError;
use crate::state::AppState;
use crate::{history, openapi, rest, rest_history, ws};
use ::auth::Scope;
use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use book::ChecksumAlgo;
use connectors::Connector;
use connectors::conn::WsConnector;
use connectors::conn::record::Recorder;
use connectors::venue::evm::EvmConnector;
use connectors::venue::sim::SimConnector;
use connectors::venue::{Transport, VenueKind};
use hub::Bus;
use ingest::{Market, VenueHandle, spawn_venue};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::{HistoryStore, HistoryWriter};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    state: AppState,
    server: JoinHandle<Result<(), std::io::Error>>,
    venues: Vec<VenueHandle>,
    history: Option<HistoryWriter>,
    maintenance: JoinHandle<()>,
    alerts: crate::alerts::AlertTasks,
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
        route("/v1/ws", None, get(ws::upgrade)),
        route(
            "/v1/instruments",
            Some(Scope::MarketRead),
            get(rest::instruments),
        ),
        route("/v1/ticker", Some(Scope::MarketRead), get(rest::ticker)),
        route(
            "/v1/funding",
            Some(Scope::MarketRead),
            get(crate::rest_perp::funding),
        ),
        route(
            "/v1/mark",
            Some(Scope::MarketRead),
            get(crate::rest_perp::mark),
        ),
        route("/v1/oi", Some(Scope::MarketRead), get(crate::rest_perp::oi)),
        route(
            "/v1/funding/history",
            Some(Scope::HistoryRead),
            get(crate::rest_history::funding_history),
        ),
        route(
            "/v1/liquidations",
            Some(Scope::HistoryRead),
            get(crate::rest_history::liquidations),
        ),
        route(
            "/v1/oi/history",
            Some(Scope::HistoryRead),
            get(crate::rest_history::oi_history),
        ),
        route(
            "/v1/ws-token",
            Some(Scope::MarketRead),
            post(crate::auth::ws_token_route::issue),
        ),
        route("/v1/book", Some(Scope::MarketRead), get(rest::book)),
        route(
            "/v1/trades",
            Some(Scope::HistoryRead),
            get(rest_history::trades),
        ),
        route(
            "/v1/candles",
            Some(Scope::HistoryRead),
            get(rest_history::candles),
        ),
        route("/healthz", None, get(rest::healthz)),
        route("/readyz", None, get(rest::readyz)),
        route("/metrics", Some(Scope::MetricsRead), get(rest::metrics)),
        route("/openapi.json", None, get(openapi::serve)),
        // The admin API (docs/security.md).
        route(
            "/admin/v1/keys",
            Some(Scope::KeysAdmin),
            post(admin::create).get(admin::list),
        ),
        route(
            "/admin/v1/keys/rewrap",
            Some(Scope::KeysAdmin),
            post(admin::rewrap),
        ),
        route(
            "/admin/v1/keys/{id}",
            Some(Scope::KeysAdmin),
            get(admin::show).patch(admin::update),
        ),
        route(
            "/admin/v1/keys/{id}/rotate",
            Some(Scope::KeysAdmin),
            post(admin::rotate),
        ),
        route(
            "/admin/v1/keys/{id}/rotate/cancel",
            Some(Scope::KeysAdmin),
            post(admin::cancel_rotation),
        ),
        route(
            "/admin/v1/keys/{id}/revoke",
            Some(Scope::KeysAdmin),
            post(admin::revoke),
        ),
        route(
            "/admin/v1/keys/{id}/suspend",
            Some(Scope::KeysAdmin),
            post(admin::suspend),
        ),
        route(
            "/admin/v1/keys/{id}/resume",
            Some(Scope::KeysAdmin),
            post(admin::resume),
        ),
        route(
            "/admin/v1/keys/{id}/leaked",
            Some(Scope::KeysAdmin),
            post(admin::leaked),
        ),
        route(
            "/admin/v1/keys/{id}/totp",
            Some(Scope::KeysAdmin),
            post(admin::totp_enroll),
        ),
        route(
            "/admin/v1/keys/{id}/usage",
            Some(Scope::KeysAdmin),
            get(admin::usage),
        ),
        route("/admin/v1/audit", Some(Scope::KeysAdmin), get(admin::audit)),
        // Alerts (docs/alerts.md).
        route(
            "/v1/alerts",
            Some(Scope::AlertsWrite),
            post(rules::create).get(rules::list),
        ),
        route(
            "/v1/alerts/firings",
            Some(Scope::AlertsWrite),
            get(rules::firings),
        ),
        route(
            "/v1/alerts/{id}",
            Some(Scope::AlertsWrite),
            get(rules::show).patch(rules::update).delete(rules::delete),
        ),
        route(
            "/v1/webhooks",
            Some(Scope::AlertsWrite),
            post(webhooks::create).get(webhooks::list),
        ),
        route(
            "/v1/webhooks/{id}",
            Some(Scope::AlertsWrite),
            get(webhooks::show)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        ),
        route(
            "/v1/webhooks/{id}/rotate-secret",
            Some(Scope::AlertsWrite),
            post(webhooks::rotate_secret),
        ),
        route(
            "/v1/webhooks/{id}/deliveries",
            Some(Scope::AlertsWrite),
            get(webhooks::deliveries),
        ),
        route(
            "/v1/webhooks/{id}/deliveries/{delivery}",
            Some(Scope::AlertsWrite),
            get(webhooks::delivery),
        ),
        route(
            "/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            Some(Scope::AlertsWrite),
            post(webhooks::redeliver_one),
        ),
        route(
            "/v1/webhooks/{id}/redeliver",
            Some(Scope::AlertsWrite),
            post(webhooks::redeliver_dead),
        ),
    ]
    .into_iter()
    // The dashboard (docs/dashboard.md) and the admin overview it shows.
    .chain(crate::ui::routes())
    .collect()
}

/// Builds the router (exposed for in-process tests). Every route but the health checks and
/// the WebSocket upgrade (which checks scopes per channel) is guarded by its scope.
pub fn router(state: AppState) -> Router {
    let guard =
        |scope: Scope| middleware::from_fn_with_state((state.clone(), scope), layer::require);
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| {
            let handler = match r.scope {
                Some(scope) => r.handler.route_layer(guard(scope)),
                None => r.handler,
            };
            router.route(r.path, handler)
        })
        .fallback(rest::not_found)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::origin::cors,
        ))
        .layer(middleware::from_fn(crate::http_guard::refuse_ambiguous))
        .with_state(state)
}

impl Gateway {
    /// Validates `config`, starts every venue, binds the listener and serves until
    /// [`Gateway::shutdown`].
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        Self::start_with(config, None, None).await
    }

    /// Like [`Gateway::start`], with `store` instead of `history.db` in the data directory
    /// (tests use a deliberately slow one; a cluster deployment a shared one).
    pub async fn start_with_store(
        config: Config,
        store: Option<Arc<dyn HistoryStore>>,
    ) -> Result<Self, ServerError> {
        Self::start_with(config, None, store).await
    }

    /// Like [`Gateway::start`], recording every WebSocket venue's traffic into `recorder`
    /// (`tickgate record`; the recorder's clones are dropped when the venues stop) and/or
    /// with `store` as the history store.
    pub async fn start_with(
        config: Config,
        recorder: Option<Recorder>,
        store: Option<Arc<dyn HistoryStore>>,
    ) -> Result<Self, ServerError> {
        config.validate()?;
        let mut config = config;
        if config.server.tls.is_some() {
            // Clients reach a TLS-terminating gateway with https:// and wss://, and sign that.
            config.auth.signature_scheme = "https".into();
        }
        // rustls with ring only; idempotent (the binary installs it first thing in main).
        connectors::conn::ws::ensure_crypto_provider();
        store::sqlite::create_private_dir(&config.server.data_dir).map_err(|source| {
            ServerError::DataDir {
                path: config.server.data_dir.display().to_string(),
                source,
            }
        })?;
        let shutdown = CancellationToken::new();
        let local_hub = Arc::new(hub::Hub::new(config.hub.clone()));
        let hub: Arc<dyn Bus> = local_hub.clone();
        // An edge runs no venue connector: its channels come from the bus (cluster_node.rs).
        let runs_venues = crate::cluster_node::runs_venues(&config);
        let market = Arc::new(Market::default());
        let metrics = Arc::new(Metrics::default());
        let (history, writer) = history::start(&config, store).await?.unzip();
        let writer = writer.flatten();
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
        let mut venue_names = Vec::new();
        let connectors = if runs_venues {
            build_connectors(&config, recorder)?
        } else {
            venue_names.extend(config.venues.iter().map(|v| v.name.clone()));
            Vec::new()
        };
        for (connector, checksum) in connectors {
            venue_names.push(connector.venue().as_str().to_string());
            let handle = spawn_venue(
                connector,
                checksum,
                hub.clone(),
                market.clone(),
                sink.clone(),
                shutdown.clone(),
            );
            metrics.add_venue(handle.stats.clone());
            if let Some(link) = handle.link.clone() {
                metrics.add_link(link);
            }
            venues.push(handle);
        }
        for (index, venue) in config.venues.iter().enumerate() {
            if !runs_venues || venue.kind().map(VenueKind::transport) != Some(Transport::Chain) {
                continue;
            }
            let prefix = format!("venues[{index}].evm");
            let connector =
                EvmConnector::new(venue.evm_spec(index)?, &prefix).map_err(|source| {
                    ServerError::Venue {
                        venue: venue.name.clone(),
                        source,
                    }
                })?;
            let handle = ingest::spawn_chain(
                connector,
                hub.clone(),
                market.clone(),
                sink.clone(),
                shutdown.clone(),
            );
            metrics.add_venue(handle.stats.clone());
            if let Some(link) = handle.link.clone() {
                metrics.add_link(link);
            }
            venues.push(handle);
        }

        let (auth, maintenance) = start_auth(&config, &shutdown).await?;
        // The bus before alerts: in a cluster the evaluators are gated by leases on it.
        let bus = crate::cluster_node::start(&config, &local_hub, &market, &shutdown).await?;
        let (alerts, alert_tasks) = crate::alerts::start(
            &config,
            hub.clone(),
            auth.service.ring().clone(),
            venue_names,
            crate::alerts::placement(&config, bus.as_ref()),
            &shutdown,
        )
        .await?;
        let notice_endpoints = &config.auth.anomaly.webhook_endpoints;
        if !notice_endpoints.is_empty() {
            let missing = alerts
                .service
                .missing_notice_endpoint(notice_endpoints)
                .await
                .map_err(|e| crate::ServerError::Alerts(e.to_string()))?;
            if let Some(i) = missing {
                return Err(crate::config_error::ConfigError::new(
                    format!("auth.anomaly.webhook_endpoints[{i}]"),
                    format!(
                        "no webhook endpoint {} (create it with POST /v1/webhooks, then name \
                         its id here)",
                        notice_endpoints[i]
                    ),
                )
                .into());
            }
            if let Some(queue) = auth.anomaly.enable_notices() {
                tokio::spawn(crate::auth::anomaly::run_notifier(
                    auth.anomaly.clone(),
                    queue,
                    alerts.service.clone(),
                    notice_endpoints.clone(),
                    shutdown.clone(),
                ));
            }
        }
        if config.consolidated.enabled && runs_venues {
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

        let tls = match &config.server.tls {
            Some(files) => {
                let tls = Arc::new(crate::tls::TlsState::load(files)?);
                tokio::spawn(tls.clone().watch(Duration::from_secs(2), shutdown.clone()));
                Some(tls)
            }
            None => None,
        };
        let limits = crate::listener::SocketLimits {
            max: config.server.max_connections,
            per_ip: config.server.max_connections_per_ip,
            reserve: config.server.connection_reserve,
            header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs),
            send_buffer: config.server.socket_send_buffer,
        }
        .clamp_to_fd_limit();
        let ui = Arc::new(crate::ui::UiState::new(&config.ui, auth.service.ring())?);
        let state = AppState::new(
            config,
            hub,
            market,
            metrics,
            history,
            auth,
            alerts,
            shutdown.clone(),
            ui,
            bus,
        );
        let app = router(state.clone());
        let server = tokio::spawn(crate::listener::serve(
            listener,
            app,
            limits,
            state.sockets().clone(),
            tls,
            state.proxies().clone(),
            shutdown.clone(),
        ));
        tracing::info!(%addr, "tickgate listening");
        Ok(Self {
            addr,
            state,
            server,
            venues,
            history: writer,
            maintenance,
            alerts: alert_tasks,
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
        let _ = tokio::time::timeout(grace, self.maintenance).await;
        for task in self.alerts.tasks {
            let _ = tokio::time::timeout(grace, task).await;
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

/// How long another node keeps counting this node's WebSocket sessions after its last
/// heartbeat (renewed every fifth of it): a node killed outright stops counting within it.
const WS_CAPS_LEASE: Duration = Duration::from_secs(5);

/// Opens the key store, loads the master key(s) and every key, and starts the maintenance
/// task and the audit writer.
async fn start_auth(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<(Arc<AuthState>, JoinHandle<()>), ServerError> {
    use ::auth::{KeyIndex, KeyRing, KeyService, maintenance};
    use store::keys::Environment;
    let settings = &config.auth;
    let ring = KeyRing::load(&settings.master_key_sources())
        .map_err(|e| ServerError::Auth(e.to_string()))?;
    if settings.environment == Environment::Live && ring.current().is_none() {
        return Err(ServerError::Auth(
            "environment = \"live\" needs a master key: set TICKGATE_MASTER_KEY (64 hex digits) \
             or [auth] master_key_file"
                .into(),
        ));
    }
    let stores = crate::stores::open(config, shutdown).await?;
    let service = KeyService::new(stores.keys, stores.audit, ring, settings.environment);
    let index = Arc::new(KeyIndex::new(settings.settings()));
    let (s, i) = (service.clone(), index.clone());
    let since = tokio::task::spawn_blocking(move || maintenance::load(&s, &i))
        .await
        .map_err(|e| ServerError::Auth(e.to_string()))??;
    tracing::info!(
        required = settings.is_required(),
        environment = %settings.environment,
        keys = index.len(),
        master_key = service.ring().current().map_or("none", |k| k.id()),
        "auth ready"
    );
    let intervals = maintenance::Intervals {
        poll: Duration::from_millis(settings.poll_interval_ms),
        flush: Duration::from_secs(settings.usage_flush_secs),
    };
    let task = tokio::spawn(maintenance::run_with_wake(
        service.clone(),
        index.clone(),
        since,
        intervals,
        stores.wake,
        shutdown.clone(),
    ));
    let (audit_tx, audit_rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(crate::auth::run_audit_writer(service.clone(), audit_rx));
    let mut state = AuthState::new(index, service.clone(), settings, audit_tx);
    state.key_store = stores.status;
    if let Some(url) = config.cluster.redis() {
        // More than one node can serve a key: nonces must be shared, or a request accepted by
        // one node could be replayed to another; so must rate limits and WebSocket caps, or
        // each node would grant a key its whole budget.
        let timeout = config.cluster.redis_timeout();
        let prefix = &config.cluster.redis_prefix;
        let store = ::auth::replay::RedisNonceStore::connect(url, prefix, timeout)
            .await
            .map_err(|e| ServerError::Auth(format!("cluster.redis_url: {e}")))?;
        let conn = store.connection();
        state.redis_nonces = Some(store.clone());
        state.replay = ::auth::replay::ReplayGuard::shared(state.replay.window(), Arc::new(store));
        let gcra = ::auth::ratelimit_redis::RedisGcra::new(conn.clone(), prefix, timeout);
        state
            .index
            .share_budget(gcra)
            .map_err(|e| ServerError::Auth(e.to_string()))?;
        let node_id = config.cluster.resolved_node_id();
        let caps =
            ::auth::wscaps_redis::RedisWsCaps::new(conn, prefix, &node_id, WS_CAPS_LEASE, timeout)
                .map_err(|e| ServerError::Auth(format!("cluster.redis_url: {}", e.0)))?;
        // The lease exists before the first session counts under it.
        caps.heartbeat(&[])
            .await
            .map_err(|e| ServerError::Auth(format!("cluster.redis_url: {}", e.0)))?;
        let caps = Arc::new(caps);
        tokio::spawn(caps.clone().run(state.index.clone(), shutdown.clone()));
        tracing::info!(
            prefix = %prefix,
            instance = caps.instance(),
            timeout_ms = config.cluster.redis_timeout_ms,
            "nonces, key rate limits and WebSocket caps are shared in Redis"
        );
        state.ws_caps = Some(caps);
    }
    tokio::spawn(crate::auth::anomaly::run_block_refresh(
        service,
        state.anomaly.clone(),
        Duration::from_secs(2),
        shutdown.clone(),
    ));
    Ok((Arc::new(state), task))
}

/// A connector and the checksum algorithm that verifies its books.
type VenueConnector = (Box<dyn Connector>, ChecksumAlgo);

/// One connector (and the checksum algorithm of its books) per configured venue; a `replay`
/// venue yields one per venue recorded in its capture.
fn build_connectors(
    config: &Config,
    recorder: Option<Recorder>,
) -> Result<Vec<VenueConnector>, ServerError> {
    let venue_error = |kind: VenueKind| {
        let venue = kind.name().to_string();
        move |source| ServerError::Venue { venue, source }
    };
    let mut out: Vec<VenueConnector> = Vec::new();
    for (index, venue) in config.venues.iter().enumerate() {
        // `Config::validate` only lets supported venues through.
        let Some(kind) = venue.kind() else {
            return Err(ServerError::Venue {
                venue: venue.name.clone(),
                source: connectors::ConnectorError::Config("unsupported venue".into()),
            });
        };
        match kind.transport() {
            Transport::Simulated => {
                let sim = SimConnector::new(venue.sim_config(index)?).map_err(venue_error(kind))?;
                let algo = if venue.sim.checksum {
                    ChecksumAlgo::Tickgate
                } else {
                    kind.checksum()
                };
                out.push((Box::new(sim), algo));
            }
            Transport::Capture => {
                let path = venue.path.as_deref().unwrap_or(std::path::Path::new(""));
                let speed = venue.replay_speed(index)?;
                for replayed in
                    connectors::venue::replay::open(path, speed).map_err(venue_error(kind))?
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
            Transport::WebSocket => {
                let spec = venue.venue_spec(index)?;
                let protocol = kind
                    .protocol(spec)
                    .unwrap_or_else(|| unreachable!("a WebSocket venue has a protocol"))
                    .map_err(venue_error(kind))?;
                let mut connector = WsConnector::new(protocol);
                if let Some(recorder) = &recorder {
                    connector = connector.with_recorder(recorder.clone());
                }
                out.push((Box::new(connector), kind.checksum()));
            }
            // Started by `Gateway::start_with` with its own ingest (`ingest::spawn_chain`).
            Transport::Chain => {}
        }
    }
    Ok(out)
}
