//! State shared by every request handler and session.

use crate::alerts::AlertsState;
use crate::auth::AuthState;
use crate::config::Config;
use crate::history::History;
use crate::metrics::Metrics;
use hub::Bus;
use ingest::Market;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Cheap to clone: one `Arc`.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// What every handler and session shares (held once, behind the state's `Arc`).
#[derive(Debug)]
struct Inner {
    config: Config,
    hub: Arc<dyn Bus>,
    market: Arc<Market>,
    metrics: Arc<Metrics>,
    history: Option<Arc<History>>,
    auth: Arc<AuthState>,
    alerts: Arc<AlertsState>,
    shutdown: CancellationToken,
    ui: Arc<crate::ui::state::UiState>,
    /// The market-data bus of an ingest or edge node (`None` on a single node).
    bus: Option<crate::cluster_node::BusStatus>,
    /// Open sockets, counted by the accept loop (`server::listener`).
    sockets: Arc<crate::listener::Sockets>,
    /// `server.trusted_proxies`, read by the accept loop for each request.
    proxies: Arc<crate::forwarded::TrustedProxies>,
    /// `server.allowed_origins`.
    origins: crate::origin::AllowedOrigins,
    /// `[server.anonymous]`: per-address limits for clients without a key.
    anonymous: Arc<crate::per_ip::AnonymousLimiter>,
    /// WebSocket upgrades in progress (`server.max_pending_upgrades`).
    pending_upgrades: Arc<crate::ws::limiter::PendingUpgrades>,
}

impl AppState {
    /// One shared part per argument; they are built in different places of `Gateway::start`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        hub: Arc<dyn Bus>,
        market: Arc<Market>,
        metrics: Arc<Metrics>,
        history: Option<Arc<History>>,
        auth: Arc<AuthState>,
        alerts: Arc<AlertsState>,
        shutdown: CancellationToken,
        ui: Arc<crate::ui::state::UiState>,
        bus: Option<crate::cluster_node::BusStatus>,
    ) -> Self {
        // `Config::validate` has checked both lists.
        let proxies = crate::forwarded::TrustedProxies::parse(&config.server.trusted_proxies)
            .unwrap_or_default();
        let origins = crate::origin::AllowedOrigins::parse(&config.server.allowed_origins)
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                proxies: Arc::new(proxies),
                origins,
                pending_upgrades: Arc::default(),
                anonymous: Arc::new(crate::per_ip::AnonymousLimiter::new(
                    config.server.anonymous.clone(),
                )),
                config,
                hub,
                market,
                metrics,
                history,
                auth,
                alerts,
                shutdown,
                ui,
                bus,
                sockets: Arc::default(),
            }),
        }
    }

    /// Open sockets and what the accept loop refused (`server::listener`).
    pub fn sockets(&self) -> &Arc<crate::listener::Sockets> {
        &self.inner.sockets
    }

    /// The reverse proxies whose forwarding headers are believed.
    pub fn proxies(&self) -> &Arc<crate::forwarded::TrustedProxies> {
        &self.inner.proxies
    }

    /// The browser origins allowed besides the gateway's own.
    pub fn origins(&self) -> &crate::origin::AllowedOrigins {
        &self.inner.origins
    }

    /// WebSocket upgrades in progress.
    pub fn pending_upgrades(&self) -> &Arc<crate::ws::limiter::PendingUpgrades> {
        &self.inner.pending_upgrades
    }

    /// Per-address limits for clients without a key.
    pub fn anonymous(&self) -> &Arc<crate::per_ip::AnonymousLimiter> {
        &self.inner.anonymous
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn hub(&self) -> &Arc<dyn Bus> {
        &self.inner.hub
    }

    pub fn market(&self) -> &Arc<Market> {
        &self.inner.market
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The history store, when `history.enabled`.
    pub fn history(&self) -> Option<&Arc<History>> {
        self.inner.history.as_ref()
    }

    pub fn auth(&self) -> &Arc<AuthState> {
        &self.inner.auth
    }

    pub fn alerts(&self) -> &Arc<AlertsState> {
        &self.inner.alerts
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// The dashboard's session keys (`ui::state`).
    /// The market-data bus of an ingest or edge node (`None` on a single node).
    pub fn bus(&self) -> Option<&crate::cluster_node::BusStatus> {
        self.inner.bus.as_ref()
    }

    pub fn ui(&self) -> &Arc<crate::ui::state::UiState> {
        &self.inner.ui
    }
}
