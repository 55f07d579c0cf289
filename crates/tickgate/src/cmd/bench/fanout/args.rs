//! The command-line arguments of `tickgate bench fanout`.

use crate::cmd::bench::parse_duration;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// WebSocket clients, all subscribed to the same channels.
    #[arg(long, default_value_t = 1000)]
    pub(super) clients: usize,
    /// Simulated market events per second PER SYMBOL (`serve --sim-rate`); the sim runs 3
    /// symbols. A book channel then carries about `rate` updates/s, a trades channel one
    /// message per 1 ms batch that had a trade (at most 1,000/s).
    #[arg(long, default_value_t = 2000.0)]
    pub(super) rate: f64,
    /// Measurement time, after the warmup.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub(super) duration: Duration,
    /// Time after all clients are subscribed before measuring.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub(super) warmup: Duration,
    /// Channels every client subscribes to, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "book:sim:BTC-USDT,trades:sim:BTC-USDT"
    )]
    pub(super) channels: Vec<String>,
    /// A running gateway to load instead of starting one (`http://host:port`). Its sim rate is
    /// then its own; `--rate` is ignored.
    #[arg(long)]
    pub(super) url: Option<String>,
    /// With `--url`: the server's pid, to read its memory and CPU time.
    #[arg(long, requires = "url")]
    pub(super) server_pid: Option<u32>,
    /// Load-generator threads (each a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub(super) threads: usize,
    /// Worker threads of the child gateway (`serve --threads`; default one per core).
    #[arg(long)]
    pub(super) server_threads: Option<usize>,
    /// Configuration file for the child gateway (`serve --config`). `TICKGATE_*` variables set
    /// for the benchmark are passed on to the child too.
    #[arg(long)]
    pub(super) config: Option<PathBuf>,
    /// How the clients read: `raw` (the benchmark's own frame reader, cheapest) or
    /// `tungstenite` (tokio-tungstenite's `Message` stream, for comparison).
    #[arg(long, value_enum, default_value_t = ClientKind::Raw)]
    pub(super) client: ClientKind,
    /// Also measure hand-written relays in the same run, comma-separated: each relay takes one
    /// subscription from the child gateway and rebroadcasts it to the same clients, then the
    /// clients load the gateway directly; all rows and the gateway's ratios to each are printed.
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "url")]
    pub(super) peer: Vec<Peer>,
    /// The Node relay's script (default: `bench/peers/node-relay/relay.js` of this source tree).
    #[arg(long, requires = "peer")]
    pub(super) peer_script: Option<PathBuf>,
    /// Measure a cluster against a single node in the same run: 1 ingest + 2 edges (child
    /// gateways of this binary) on NATS and Redis, the clients split over the edges; then the
    /// NATS hop's latency, edge and ingest failover times, and (with `--postgres-url`)
    /// cross-node revocation time. See docs/benchmarks.md ("Cluster").
    #[arg(long, conflicts_with_all = ["url", "peer"])]
    pub(super) cluster: bool,
    /// With `--cluster`: the NATS server (JetStream enabled) of the market-data bus.
    #[arg(long, env = "TICKGATE_TEST_NATS_URL", hide_env_values = true)]
    pub(super) nats_url: Option<String>,
    /// With `--cluster`: the Redis the edges share (nonces, rate limits, WebSocket caps).
    #[arg(long, env = "TICKGATE_TEST_REDIS_URL", hide_env_values = true)]
    pub(super) redis_url: Option<String>,
    /// With `--cluster`: the PostgreSQL key store the nodes share (needed to measure
    /// revocation across nodes; without it that part is skipped and says so).
    #[arg(long, env = "TICKGATE_TEST_POSTGRES_URL", hide_env_values = true)]
    pub(super) postgres_url: Option<String>,
    /// With `--cluster`: how long each latency probe (NATS hop) listens.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(super) probe: Duration,
}

/// A relay measured side by side with the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Peer {
    /// Node.js with the `ws` package: `send` of each upstream message to every client.
    Node,
    /// `tickgate bench relay`: one writer thread per core, each upstream message framed once
    /// and written to every client socket with one `writev`, no task per client (the floor).
    Rust,
}

impl Peer {
    pub(super) fn name(self) -> &'static str {
        match self {
            Peer::Node => "node ws relay",
            Peer::Rust => "rust writev relay",
        }
    }

    /// The Node relay's script in this source tree.
    pub(super) fn node_script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/node-relay/relay.js")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ClientKind {
    Raw,
    Tungstenite,
}
