//! The node's part in a cluster (`[cluster] role`, issue 12), started by `Gateway::start_with`:
//!
//! - `all`: nothing here; one self-contained node.
//! - `ingest`: the venues run as on a single node, and [`cluster::forwarder`] publishes every
//!   frame of the local hub to the NATS bus, for each venue whose lease this node holds
//!   ([`cluster::failover`]): a second ingest of the same venues is a hot standby. The node still serves the whole API from its own
//!   hub (useful to compare with an edge; clients normally use the edges).
//! - `edge`: no venue connector runs (the `[[venues]]` list names what the bus should carry,
//!   which `/readyz` checks); [`cluster::feeder`] builds replica channels in the local hub
//!   from the bus, and WebSocket and REST serve them like local channels, with the ingest's
//!   seq and epoch. No consolidator runs here: `book:all` comes from the ingest like any book.
//!
//! Instrument metadata travels too ([`cluster::instruments`]): the ingest writes the list of
//! each venue it owns to the bus, an edge adds what it reads to its [`Market`], so
//! `/v1/instruments` and the REST history checks answer on an edge as on the ingest.
//!
//! An edge also competes for the leases of exclusive tasks ([`cluster::exclusive`]): each
//! alert partition is evaluated by one edge of the cluster at a time (`crate::alerts::start`).
//!
//! Both record the bus state for `/readyz` ([`BusStatus`]).

use crate::cluster_config::ClusterRole;
use crate::config::Config;
use crate::server_error::ServerError;
use cluster::ClusterOptions;
use cluster::exclusive::Exclusive;
use cluster::failover::LeaseGate;
use cluster::feeder::FeederStats;
use cluster::forwarder::ForwarderStats;
use cluster::instruments::InstrumentStats;
use ingest::Market;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The bus as this node sees it.
#[derive(Debug, Clone)]
pub enum BusStatus {
    Ingest {
        stats: Arc<ForwarderStats>,
        connected: watch::Receiver<bool>,
        /// The venue leases: which venues this ingest forwards (a standby forwards none).
        leases: Arc<LeaseGate>,
        instruments: Arc<InstrumentStats>,
    },
    Edge {
        stats: Arc<FeederStats>,
        instruments: Arc<InstrumentStats>,
        /// Tasks that run on one edge of the cluster at a time (alert evaluators).
        exclusive: Arc<Exclusive>,
    },
}

impl BusStatus {
    pub fn role(&self) -> &'static str {
        match self {
            Self::Ingest { .. } => "ingest",
            Self::Edge { .. } => "edge",
        }
    }

    /// Whether the NATS connection is up.
    pub fn connected(&self) -> bool {
        match self {
            Self::Ingest { connected, .. } => *connected.borrow(),
            Self::Edge { stats, .. } => stats.connected.load(Ordering::Relaxed),
        }
    }

    /// The venues this ingest forwards now (`None` on an edge).
    pub fn owned(&self) -> Option<Vec<String>> {
        match self {
            Self::Ingest { leases, .. } => Some(leases.owned()),
            Self::Edge { .. } => None,
        }
    }

    /// The exclusive tasks this edge runs now (`None` on an ingest).
    pub fn tasks(&self) -> Option<Vec<String>> {
        match self {
            Self::Ingest { .. } => None,
            Self::Edge { exclusive, .. } => Some(exclusive.running()),
        }
    }

    /// Channels forwarded (ingest) or replicated (edge).
    pub fn channels(&self) -> u64 {
        match self {
            Self::Ingest { stats, .. } => stats.channels.load(Ordering::Relaxed),
            Self::Edge { stats, .. } => stats.channels.load(Ordering::Relaxed),
        }
    }
}

/// The bus settings of this node: the cluster's prefix, this node's id, and the frames
/// stream's retention from `[hub]` (so an edge's resume history matches the ingest's).
pub fn options(config: &Config) -> ClusterOptions {
    ClusterOptions {
        prefix: config.cluster.nats_prefix.clone(),
        node: config.cluster.resolved_node_id(),
        history_size: config.hub.history_size.max(1),
        history_ttl: Duration::from_secs(config.hub.history_ttl_secs),
        lease_ttl: config.cluster.lease_ttl(),
        ..Default::default()
    }
}

/// Whether this node runs venue connectors (not on an edge).
pub fn runs_venues(config: &Config) -> bool {
    config.cluster.role != ClusterRole::Edge
}

/// Starts the forwarder (ingest) or the feeder (edge) on `hub`, and the instrument board
/// between `market` and the bus; `None` for `role = "all"`.
pub async fn start(
    config: &Config,
    hub: &Arc<hub::Hub>,
    market: &Arc<Market>,
    shutdown: &CancellationToken,
) -> Result<Option<BusStatus>, ServerError> {
    if config.cluster.role == ClusterRole::All {
        return Ok(None);
    }
    let options = options(config);
    let (client, connected) = cluster::connect_watched(&config.cluster.nats_url)
        .await
        .map_err(ServerError::Cluster)?;
    let status = match config.cluster.role {
        ClusterRole::Ingest => {
            let leases = LeaseGate::start(client.clone(), &options, shutdown.clone())
                .await
                .map_err(ServerError::Cluster)?;
            let stats = cluster::forwarder::start(
                client.clone(),
                hub.clone(),
                options.clone(),
                Arc::new(leases.clone()),
                shutdown.clone(),
            )
            .await
            .map_err(ServerError::Cluster)?;
            let source: cluster::instruments::Source = {
                let market = market.clone();
                Arc::new(move || market.instruments())
            };
            let instruments = cluster::instruments::start_publisher(
                client,
                &options,
                source,
                Arc::new(leases.clone()),
                shutdown.clone(),
            )
            .await
            .map_err(ServerError::Cluster)?;
            BusStatus::Ingest {
                stats,
                connected,
                leases,
                instruments,
            }
        }
        ClusterRole::Edge => {
            let stats = cluster::feeder::start(
                client.clone(),
                connected,
                hub.clone(),
                options.clone(),
                shutdown.clone(),
            )
            .await
            .map_err(ServerError::Cluster)?;
            let sink: cluster::instruments::Sink = {
                let market = market.clone();
                Arc::new(move |list| {
                    for instrument in list {
                        market.upsert(instrument);
                    }
                })
            };
            let instruments = cluster::instruments::start_watcher(
                client.clone(),
                options.clone(),
                sink,
                shutdown.clone(),
            );
            let exclusive = Exclusive::start(client, &options)
                .await
                .map_err(ServerError::Cluster)?;
            BusStatus::Edge {
                stats,
                instruments,
                exclusive,
            }
        }
        ClusterRole::All => return Ok(None),
    };
    tracing::info!(role = status.role(), prefix = %options.prefix, node = %options.node, "market-data bus started");
    Ok(Some(status))
}

/// The bus counters in the Prometheus text format (nothing on a single node).
pub fn render_metrics(bus: Option<&BusStatus>, out: &mut String) {
    use std::fmt::Write;
    let Some(bus) = bus else {
        return;
    };
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{role=\"{}\"}} {value}",
            bus.role()
        );
    };
    metric(
        "tickgate_bus_connected",
        "gauge",
        "1 while the NATS connection of the market-data bus is up.",
        u64::from(bus.connected()),
    );
    metric(
        "tickgate_bus_channels",
        "gauge",
        "Channels forwarded (ingest) or replicated (edge).",
        bus.channels(),
    );
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    match bus {
        BusStatus::Ingest {
            stats,
            leases,
            instruments,
            ..
        } => {
            metric(
                "tickgate_bus_frames_published_total",
                "counter",
                "Frames published to JetStream.",
                load(&stats.frames),
            );
            metric(
                "tickgate_bus_snapshot_records_total",
                "counter",
                "Snapshot records published (start, periodic, after a lag).",
                load(&stats.snapshots),
            );
            metric(
                "tickgate_bus_forwarder_lags_total",
                "counter",
                "Times a channel fell behind the hub's ring and restarted from a snapshot record.",
                load(&stats.lags),
            );
            metric(
                "tickgate_bus_publish_errors_total",
                "counter",
                "Publishes that failed (NATS unreachable, timeout); the channel restarts from a snapshot.",
                load(&stats.errors),
            );
            metric(
                "tickgate_bus_fenced_total",
                "counter",
                "Publishes refused by JetStream as a stale writer.",
                load(&stats.fenced),
            );
            metric(
                "tickgate_bus_venues_owned",
                "gauge",
                "Venues whose lease this ingest holds (it forwards only those).",
                leases.owned().len() as u64,
            );
            metric(
                "tickgate_bus_instrument_lists_published_total",
                "counter",
                "Venue instrument lists written to the bus (only when a list changed).",
                load(&instruments.published),
            );
            metric(
                "tickgate_bus_instrument_errors_total",
                "counter",
                "Instrument list writes NATS refused (retried every second).",
                load(&instruments.errors),
            );
        }
        BusStatus::Edge {
            stats,
            instruments,
            exclusive,
        } => {
            metric(
                "tickgate_bus_exclusive_tasks",
                "gauge",
                "Exclusive tasks (alert partitions' evaluators) this edge runs because it holds their lease.",
                exclusive.running().len() as u64,
            );
            metric(
                "tickgate_bus_frames_replicated_total",
                "counter",
                "Frames applied to replica channels.",
                load(&stats.frames),
            );
            metric(
                "tickgate_bus_rebases_total",
                "counter",
                "Replica (re)bases from a snapshot record.",
                load(&stats.rebases),
            );
            metric(
                "tickgate_bus_breaks_total",
                "counter",
                "Gaps, epoch changes and divergences seen in the frames (each leads to a rebase).",
                load(&stats.breaks),
            );
            metric(
                "tickgate_bus_invalid_total",
                "counter",
                "Bus messages that could not be read, skipped.",
                load(&stats.invalid),
            );
            metric(
                "tickgate_bus_instrument_lists_applied_total",
                "counter",
                "Venue instrument lists read from the bus and added to this edge's instruments.",
                load(&instruments.applied),
            );
            metric(
                "tickgate_bus_instrument_lists_invalid_total",
                "counter",
                "Instrument lists on the bus refused (unreadable, or naming another venue).",
                load(&instruments.invalid),
            );
            metric(
                "tickgate_bus_instrument_errors_total",
                "counter",
                "Instrument watches NATS refused or ended (watched again after 1 s).",
                load(&instruments.errors),
            );
        }
    }
}
