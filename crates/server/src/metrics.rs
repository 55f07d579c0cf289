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
pub const KINDS: [&str; 8] = [
    "book",
    "trades",
    "ticker",
    "candles",
    "status",
    "onchain.blocks",
    "onchain.logs",
    "alerts",
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

    /// Counts an authentication rejection by code and key only.
    pub fn count_key_rejection(&self, rejection: &auth::Rejection) {
        let key = rejection.key_id.as_deref().unwrap_or("none");
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

    /// Renders everything in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, hub: &hub::Hub) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        family(
            "tickgate_connections_open",
            "gauge",
            "Open WebSocket connections.",
            &one(load(&self.connections_open)),
        );
        family(
            "tickgate_connections_total",
            "counter",
            "WebSocket connections accepted.",
            &one(load(&self.connections_total)),
        );
        family(
            "tickgate_connections_rejected_total",
            "counter",
            "WebSocket connections refused (limit reached).",
            &one(load(&self.connections_rejected)),
        );
        family(
            "tickgate_messages_in_total",
            "counter",
            "Client messages received.",
            &one(load(&self.messages_in)),
        );
        let by_kind: Vec<_> = KINDS
            .iter()
            .zip(&self.messages_out)
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), load(v)))
            .collect();
        family(
            "tickgate_messages_out_total",
            "counter",
            "Messages delivered to clients, by channel kind.",
            &by_kind,
        );
        family(
            "tickgate_bytes_out_total",
            "counter",
            "Bytes of messages delivered to clients.",
            &one(load(&self.bytes_out)),
        );
        family(
            "tickgate_conflations_total",
            "counter",
            "Resync snapshots sent to lagging book subscribers.",
            &one(load(&self.conflations)),
        );
        family(
            "tickgate_gaps_total",
            "counter",
            "Gap notices sent to lagging subscribers.",
            &one(load(&self.gaps)),
        );
        family(
            "tickgate_frames_dropped_total",
            "counter",
            "Frames lagging subscribers skipped.",
            &one(load(&self.frames_dropped)),
        );
        family(
            "tickgate_resumes_total",
            "counter",
            "Channel resumes, by outcome.",
            &[
                (
                    "{outcome=\"recovered\"}".to_string(),
                    load(&self.resumes_recovered),
                ),
                ("{outcome=\"lost\"}".to_string(), load(&self.resumes_lost)),
            ],
        );
        family(
            "tickgate_slow_consumer_disconnects_total",
            "counter",
            "Clients closed for not keeping up.",
            &one(load(&self.slow_disconnects)),
        );
        family(
            "tickgate_idle_disconnects_total",
            "counter",
            "Clients closed for silence.",
            &one(load(&self.idle_disconnects)),
        );
        let errors: Vec<_> = ErrorCode::ALL
            .iter()
            .zip(self.errors.iter())
            .map(|(c, v)| (format!("{{code=\"{c}\"}}"), load(v)))
            .collect();
        family(
            "tickgate_errors_total",
            "counter",
            "Error replies sent to clients, by code.",
            &errors,
        );
        let rejections: Vec<_> = self
            .auth_rejections
            .lock()
            .iter()
            .map(|((code, key), n)| (format!("{{code=\"{code}\",key=\"{key}\"}}"), *n))
            .collect();
        family(
            "tickgate_auth_rejections_total",
            "counter",
            "Refused authentications (bearer, signed, WebSocket), by code and key id.",
            &rejections,
        );
        family(
            "tickgate_channels",
            "gauge",
            "Channels served.",
            &one(hub.len() as u64),
        );

        let venues = self.venues.read();
        let per_venue = |f: &dyn Fn(&VenueStats) -> u64| -> Vec<(String, u64)> {
            venues
                .iter()
                .map(|v| (format!("{{venue=\"{}\"}}", v.venue), f(v)))
                .collect()
        };
        let mut events = Vec::new();
        for v in venues.iter() {
            for (kind, counter) in [
                ("snapshot", &v.snapshots),
                ("delta", &v.deltas),
                ("trade", &v.trades),
            ] {
                events.push((
                    format!("{{venue=\"{}\",kind=\"{kind}\"}}", v.venue),
                    load(counter),
                ));
            }
        }
        family(
            "tickgate_venue_events_total",
            "counter",
            "Events received from venues, by kind.",
            &events,
        );
        family(
            "tickgate_venue_deltas_ignored_total",
            "counter",
            "Book deltas ignored as duplicates or late.",
            &per_venue(&|v| load(&v.deltas_ignored)),
        );
        family(
            "tickgate_venue_invalid_messages_total",
            "counter",
            "Venue messages that failed to parse or validate.",
            &per_venue(&|v| load(&v.invalid_messages)),
        );
        let mut resyncs = Vec::new();
        for v in venues.iter() {
            for (reason, counter) in RESYNC_REASONS.iter().zip(&v.resyncs) {
                resyncs.push((
                    format!("{{venue=\"{}\",reason=\"{reason}\"}}", v.venue),
                    load(counter),
                ));
            }
        }
        family(
            "tickgate_book_resyncs_total",
            "counter",
            "Books rebuilt from a fresh snapshot, by reason.",
            &resyncs,
        );

        let links = self.links.read();
        if let Some(first) = links.first() {
            for (i, (counter, help, _)) in first.counters().iter().enumerate() {
                let samples: Vec<(String, u64)> = links
                    .iter()
                    .map(|l| (format!("{{venue=\"{}\"}}", l.venue), l.counters()[i].2))
                    .collect();
                let name = if counter.starts_with("lag") {
                    format!("tickgate_venue_{counter}")
                } else {
                    format!("tickgate_venue_{counter}_total")
                };
                family(&name, "counter", help, &samples);
            }
        }
        drop(links);

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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
