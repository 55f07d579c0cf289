//! Gateway metrics, rendered in the Prometheus text format at `/metrics`.
//!
//! Counters are plain atomics. Sessions count locally and add to these once per write batch,
//! so the per-message cost on the fan-out path is a few local additions.

use connectors::conn::stats::LinkStats;
use ingest::VenueStats;
use ingest::stats::RESYNC_REASONS;
use protocol::ErrorCode;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Channel kinds counted separately, in this order.
pub const KINDS: [&str; 12] = [
    "book",
    "trades",
    "ticker",
    "candles",
    "status",
    "onchain.blocks",
    "onchain.logs",
    "alerts",
    "funding",
    "mark",
    "oi",
    "liquidations",
];

/// Upper bounds (µs) of the ingest-to-send latency histogram buckets; the last is +Inf.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A local latency histogram a session fills and merges into [`Metrics`].
#[derive(Debug, Default, Clone)]
pub struct LocalLatency {
    buckets: [u64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: u64,
    count: u64,
}

impl LocalLatency {
    pub fn record(&mut self, micros: i64) {
        let micros = micros.max(0) as u64;
        let index = LATENCY_BUCKETS_US
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[index] += 1;
        self.sum_us += micros;
        self.count += 1;
    }
}

/// One counter per error code (index in [`ErrorCode::ALL`]); over 32 codes, so no derived
/// `Default` for the bare array.
#[derive(Debug)]
pub struct ErrorCounts(pub [AtomicU64; ErrorCode::ALL.len()]);

impl Default for ErrorCounts {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl std::ops::Deref for ErrorCounts {
    type Target = [AtomicU64; ErrorCode::ALL.len()];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Every gateway-level metric.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    /// Client messages received.
    pub messages_in: AtomicU64,
    /// Messages delivered to clients, by channel kind ([`KINDS`]).
    pub messages_out: [AtomicU64; KINDS.len()],
    /// Bytes of data messages delivered.
    pub bytes_out: AtomicU64,
    /// Fresh book snapshots sent to a lagging subscriber instead of the missed deltas.
    pub conflations: AtomicU64,
    /// `gap` notices sent to lagging trades subscribers.
    pub gaps: AtomicU64,
    /// Frames skipped by lagging subscribers.
    pub frames_dropped: AtomicU64,
    /// Channels resumed with `recovered: true` (every missed frame replayed).
    pub resumes_recovered: AtomicU64,
    /// Channels whose resume position could not be recovered (`recovered: false`).
    pub resumes_lost: AtomicU64,
    /// Clients closed because they could not keep up.
    pub slow_disconnects: AtomicU64,
    /// Clients closed for silence.
    pub idle_disconnects: AtomicU64,
    /// Error replies sent, by code (index in [`ErrorCode::ALL`]).
    pub errors: ErrorCounts,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    venues: parking_lot::RwLock<Vec<Arc<VenueStats>>>,
    links: parking_lot::RwLock<Vec<Arc<LinkStats>>>,
    /// Authentication rejections by (code, key id; `none` when no existing key was named).
    /// Bounded by codes × keys in the store: ids come only from the key index, never from
    /// what a client sent.
    auth_rejections: parking_lot::Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    pub fn add_venue(&self, stats: Arc<VenueStats>) {
        self.venues.write().push(stats);
    }

    pub fn add_link(&self, stats: Arc<LinkStats>) {
        self.links.write().push(stats);
    }

    pub fn count_error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an authentication rejection: by code, and by code and key.
    pub fn count_rejection(&self, rejection: &auth::Rejection) {
        self.count_error(rejection.code);
        self.count_key_rejection(rejection);
    }

    /// Counts an authentication rejection by code and key only, and logs it (DEBUG): the
    /// counter `tickgate_auth_rejections_total{code,key}` and the log line come from this one
    /// call. Rejection messages never carry a secret (auth's rule), and the key is its id.
    pub fn count_key_rejection(&self, rejection: &auth::Rejection) {
        let key = rejection.key_id.as_deref().unwrap_or("none");
        tracing::debug!(code = rejection.code.as_str(), key, message = %rejection.message, "authentication refused");
        let mut map = self.auth_rejections.lock();
        *map.entry((rejection.code.as_str(), key.to_string()))
            .or_insert(0) += 1;
    }

    /// Authentication rejections so far: (code, key id or `none`, count), by code then key.
    pub fn auth_rejections(&self) -> Vec<(&'static str, String, u64)> {
        self.auth_rejections
            .lock()
            .iter()
            .map(|((code, key), n)| (*code, key.clone(), *n))
            .collect()
    }

    pub fn merge_latency(&self, local: &mut LocalLatency) {
        if local.count == 0 {
            return;
        }
        for (global, n) in self.latency_buckets.iter().zip(local.buckets) {
            if n > 0 {
                global.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.latency_sum_us
            .fetch_add(local.sum_us, Ordering::Relaxed);
        self.latency_count.fetch_add(local.count, Ordering::Relaxed);
        *local = LocalLatency::default();
    }
}

/// The samples of one family: (labels, value).
type Samples = Vec<(String, u64)>;

/// A gateway-level family as `/metrics` lists it: name, type, help, and how to read it.
type GatewayFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Metrics, &dyn hub::Bus) -> Samples,
);

/// A per-venue family: name, type, help, and the samples of one venue as (extra labels,
/// value); each gets `venue="…"` first.
type VenueFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&VenueStats) -> Samples,
);

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn one(a: &AtomicU64) -> Samples {
    vec![(String::new(), load(a))]
}

/// Every gateway-level family, in the order they are rendered.
const GATEWAY_FAMILIES: [GatewayFamily; 15] = [
    (
        "tickgate_connections_open",
        "gauge",
        "Open WebSocket connections.",
        |m, _| one(&m.connections_open),
    ),
    (
        "tickgate_connections_total",
        "counter",
        "WebSocket connections accepted.",
        |m, _| one(&m.connections_total),
    ),
    (
        "tickgate_connections_rejected_total",
        "counter",
        "WebSocket connections refused (limit reached).",
        |m, _| one(&m.connections_rejected),
    ),
    (
        "tickgate_messages_in_total",
        "counter",
        "Client messages received.",
        |m, _| one(&m.messages_in),
    ),
    (
        "tickgate_messages_out_total",
        "counter",
        "Messages delivered to clients, by channel kind.",
        |m, _| {
            (KINDS.iter().zip(&m.messages_out))
                .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), load(v)))
                .collect()
        },
    ),
    (
        "tickgate_bytes_out_total",
        "counter",
        "Bytes of messages delivered to clients.",
        |m, _| one(&m.bytes_out),
    ),
    (
        "tickgate_conflations_total",
        "counter",
        "Resync snapshots sent to lagging book subscribers.",
        |m, _| one(&m.conflations),
    ),
    (
        "tickgate_gaps_total",
        "counter",
        "Gap notices sent to lagging subscribers.",
        |m, _| one(&m.gaps),
    ),
    (
        "tickgate_frames_dropped_total",
        "counter",
        "Frames lagging subscribers skipped.",
        |m, _| one(&m.frames_dropped),
    ),
    (
        "tickgate_resumes_total",
        "counter",
        "Channel resumes, by outcome.",
        |m, _| {
            vec![
                (
                    "{outcome=\"recovered\"}".to_string(),
                    load(&m.resumes_recovered),
                ),
                ("{outcome=\"lost\"}".to_string(), load(&m.resumes_lost)),
            ]
        },
    ),
    (
        "tickgate_slow_consumer_disconnects_total",
        "counter",
        "Clients closed for not keeping up.",
        |m, _| one(&m.slow_disconnects),
    ),
    (
        "tickgate_idle_disconnects_total",
        "counter",
        "Clients closed for silence.",
        |m, _| one(&m.idle_disconnects),
    ),
    (
        "tickgate_errors_total",
        "counter",
        "Error replies sent to clients, by code.",
        |m, _| {
            (ErrorCode::ALL.iter().zip(m.errors.iter()))
                .map(|(c, v)| (format!("{{code=\"{c}\"}}"), load(v)))
                .collect()
        },
    ),
    (
        "tickgate_auth_rejections_total",
        "counter",
        "Refused authentications (bearer, signed, WebSocket), by code and key id.",
        |m, _| {
            (m.auth_rejections.lock().iter())
                .map(|((code, key), n)| (format!("{{code=\"{code}\",key=\"{key}\"}}"), *n))
                .collect()
        },
    ),
    (
        "tickgate_channels",
        "gauge",
        "Channels served.",
        |_, hub| vec![(String::new(), hub.len() as u64)],
    ),
];

/// Every per-venue family, in the order they are rendered (after the gateway's).
const VENUE_FAMILIES: [VenueFamily; 4] = [
    (
        "tickgate_venue_events_total",
        "counter",
        "Events received from venues, by kind.",
        |v| {
            [
                ("snapshot", &v.snapshots),
                ("delta", &v.deltas),
                ("trade", &v.trades),
            ]
            .into_iter()
            .map(|(kind, counter)| (format!(",kind=\"{kind}\""), load(counter)))
            .collect()
        },
    ),
    (
        "tickgate_venue_deltas_ignored_total",
        "counter",
        "Book deltas ignored as duplicates or late.",
        |v| vec![(String::new(), load(&v.deltas_ignored))],
    ),
    (
        "tickgate_venue_invalid_messages_total",
        "counter",
        "Venue messages that failed to parse or validate.",
        |v| vec![(String::new(), load(&v.invalid_messages))],
    ),
    (
        "tickgate_book_resyncs_total",
        "counter",
        "Books rebuilt from a fresh snapshot, by reason.",
        |v| {
            (RESYNC_REASONS.iter().zip(&v.resyncs))
                .map(|(reason, counter)| (format!(",reason=\"{reason}\""), load(counter)))
                .collect()
        },
    ),
];

/// Writes one family in the Prometheus text format.
fn write_family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

impl Metrics {
    /// Renders every metric in the Prometheus text exposition format (version 0.0.4): the
    /// gateway's families, each venue's, each venue link's, then the latency histogram.
    pub fn render(&self, hub: &dyn hub::Bus) -> String {
        let mut out = String::with_capacity(8 * 1024);
        for (name, kind, help, samples) in GATEWAY_FAMILIES {
            write_family(&mut out, name, kind, help, &samples(self, hub));
        }
        let venues = self.venues.read();
        for (name, kind, help, samples) in VENUE_FAMILIES {
            let all: Samples = venues
                .iter()
                .flat_map(|v| {
                    samples(v)
                        .into_iter()
                        .map(|(extra, n)| (format!("{{venue=\"{}\"{extra}}}", v.venue), n))
                })
                .collect();
            write_family(&mut out, name, kind, help, &all);
        }
        drop(venues);
        self.render_links(&mut out);
        self.render_latency(&mut out);
        out
    }

    /// The link counters of every venue connection, one family per counter.
    fn render_links(&self, out: &mut String) {
        let links = self.links.read();
        let Some(first) = links.first() else { return };
        for (i, (counter, help, _)) in first.counters().iter().enumerate() {
            let samples: Samples = links
                .iter()
                .map(|l| (format!("{{venue=\"{}\"}}", l.venue), l.counters()[i].2))
                .collect();
            let name = if counter.starts_with("lag") {
                format!("tickgate_venue_{counter}")
            } else {
                format!("tickgate_venue_{counter}_total")
            };
            write_family(out, &name, "counter", help, &samples);
        }
    }

    /// The delivery latency histogram (cumulative buckets, sum and count).
    fn render_latency(&self, out: &mut String) {
        let name = "tickgate_delivery_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Gateway receive time to write to the client socket.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, bucket) in self.latency_buckets.iter().enumerate() {
            cumulative += load(bucket);
            let le = LATENCY_BUCKETS_US
                .get(i)
                .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_sum {}",
            load(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {}", load(&self.latency_count));
    }
}

/// The anomaly detectors' families (`server::auth::anomaly`), appended to `/metrics`.
pub fn render_anomalies(figures: &crate::auth::anomaly::AnomalyFigures, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP tickgate_anomalies_total Anomalies detected, by kind.\n\
         # TYPE tickgate_anomalies_total counter"
    );
    for (kind, n) in &figures.by_kind {
        let _ = writeln!(out, "tickgate_anomalies_total{{kind=\"{kind}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP tickgate_anomaly_responses_total Automatic responses carried out, by action.\n\
         # TYPE tickgate_anomaly_responses_total counter\n\
         tickgate_anomaly_responses_total{{action=\"suspend\"}} {}\n\
         tickgate_anomaly_responses_total{{action=\"block_ip\"}} {}",
        figures.suspended, figures.blocked
    );
    for (name, kind, help, value) in [
        (
            "tickgate_anomaly_evictions_total",
            "counter",
            "Keys and addresses dropped from the detectors' bounded tables.",
            figures.evictions,
        ),
        (
            "tickgate_ip_blocked_refusals_total",
            "counter",
            "Requests refused because their address is blocked.",
            figures.refused,
        ),
        (
            "tickgate_ip_blocks",
            "gauge",
            "Addresses blocked now (this node's cache of the store).",
            figures.blocked_now,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    if let Some(notices) = &figures.notices {
        let _ = writeln!(
            out,
            "# HELP tickgate_anomaly_notices_total Anomaly webhooks to the operator's endpoints, \
             by outcome (queued, dropped: queue full, stored: in the outbox, failed: not stored).\n\
             # TYPE tickgate_anomaly_notices_total counter"
        );
        for (outcome, n) in notices {
            let _ = writeln!(
                out,
                "tickgate_anomaly_notices_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomaly_families_render_every_kind() {
        let anomalies = crate::auth::anomaly::Anomalies::new(Default::default());
        let mut out = String::new();
        render_anomalies(&anomalies.figures(), &mut out);
        for kind in auth::anomaly::AnomalyKind::ALL {
            let line = format!("tickgate_anomalies_total{{kind=\"{}\"}} 0\n", kind.as_str());
            assert!(out.contains(&line), "{out}");
        }
        assert!(
            out.contains("tickgate_anomaly_evictions_total 0\n"),
            "{out}"
        );
        assert!(out.contains("tickgate_anomaly_responses_total{action=\"block_ip\"} 0\n"));
    }

    #[test]
    fn render_reads_every_family_from_its_table() {
        let metrics = Metrics::default();
        for (i, a) in [
            &metrics.connections_open,
            &metrics.gaps,
            &metrics.resumes_lost,
            &metrics.idle_disconnects,
        ]
        .into_iter()
        .enumerate()
        {
            a.store(i as u64 + 3, Ordering::Relaxed);
        }
        metrics.messages_out[2].store(7, Ordering::Relaxed);
        for name in ["sim", "kraken"] {
            let v = Arc::new(VenueStats::new(model::Venue::new(name).unwrap()));
            v.deltas.store(11, Ordering::Relaxed);
            v.resyncs[1].store(2, Ordering::Relaxed);
            metrics.add_venue(v);
            metrics.add_link(Arc::new(LinkStats::new(model::Venue::new(name).unwrap())));
        }
        metrics.count_error(ErrorCode::ALL[3]);
        let mut local = LocalLatency::default();
        local.record(60);
        metrics.merge_latency(&mut local);
        let hub = hub::Hub::new(hub::HubConfig::default());
        let text = metrics.render(&hub);
        let resync = format!(
            "tickgate_book_resyncs_total{{venue=\"kraken\",reason=\"{}\"}} 2\n",
            RESYNC_REASONS[1]
        );
        for line in [
            "tickgate_connections_open 3\n",
            "tickgate_messages_out_total{kind=\"ticker\"} 7\n",
            "tickgate_resumes_total{outcome=\"lost\"} 5\n",
            "tickgate_venue_events_total{venue=\"sim\",kind=\"delta\"} 11\n",
            "tickgate_venue_deltas_ignored_total{venue=\"kraken\"} 0\n",
            &resync,
            "tickgate_delivery_latency_seconds_count 1\n",
        ] {
            assert!(text.contains(line), "{line}{text}");
        }
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let unique: std::collections::BTreeSet<_> = families.iter().collect();
        assert_eq!(unique.len(), families.len(), "each family once");
    }

    #[test]
    fn latency_histogram_is_cumulative() {
        let metrics = Metrics::default();
        let mut local = LocalLatency::default();
        for us in [10, 60, 60, 2_000_000] {
            local.record(us);
        }
        metrics.merge_latency(&mut local);
        let text = metrics.render(&hub::Hub::new(hub::HubConfig::default()));
        assert!(
            text.contains("tickgate_delivery_latency_seconds_bucket{le=\"0.00005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("tickgate_delivery_latency_seconds_bucket{le=\"0.0001\"} 3\n"));
        assert!(text.contains("tickgate_delivery_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("tickgate_delivery_latency_seconds_count 4\n"));
    }
}
