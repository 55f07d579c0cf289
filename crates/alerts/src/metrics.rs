//! Alert counters, rendered into `/metrics` (Prometheus text). Each counter is bumped in the
//! same function that logs the event it counts.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (µs) of the firing-to-delivery latency histogram; the last is +Inf.
pub const DELIVERY_LATENCY_BUCKETS_US: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 5_000_000,
    60_000_000,
];

/// Per endpoint: attempts by outcome and the last latency.
#[derive(Debug, Default, Clone, Copy)]
struct EndpointCounters {
    success: u64,
    failure: u64,
    dead: u64,
}

/// Every alert metric.
#[derive(Debug, Default)]
pub struct AlertMetrics {
    /// Rules being evaluated, by evaluator partition.
    rules: Mutex<BTreeMap<String, u64>>,
    /// Market events the evaluators processed (frames read from the hub).
    pub events: AtomicU64,
    /// Frames an evaluator missed because it fell behind a channel's ring (it then rejoins).
    pub events_dropped: AtomicU64,
    pub evaluations: AtomicU64,
    pub firings: AtomicU64,
    pub suppressed: AtomicU64,
    pub expired: AtomicU64,
    /// Failed writes of firings or attempts (firings are retried from the evaluator's queue).
    pub store_errors: AtomicU64,
    /// Firings dropped because the store refused writes for longer than the queue holds.
    pub firings_dropped: AtomicU64,
    pub attempts_success: AtomicU64,
    pub attempts_failure: AtomicU64,
    pub delivered: AtomicU64,
    pub dead: AtomicU64,
    /// Outcomes not recorded because the delivery had moved on (lease expired).
    pub stale_outcomes: AtomicU64,
    /// Deliveries pending and dead, as last counted by the delivery worker.
    pub pending_gauge: AtomicU64,
    pub dead_gauge: AtomicU64,
    latency: Mutex<([u64; DELIVERY_LATENCY_BUCKETS_US.len() + 1], u64, u64)>,
    endpoints: Mutex<BTreeMap<String, EndpointCounters>>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl AlertMetrics {
    pub fn set_rules(&self, partition: &str, n: usize) {
        self.rules.lock().insert(partition.to_string(), n as u64);
    }

    pub fn count(&self, counter: &AtomicU64, n: u64) {
        add(counter, n);
    }

    /// An attempt's outcome; `delivered_after_us` is firing-to-delivery time on success.
    pub fn attempt(&self, endpoint: &str, ok: bool, dead: bool, delivered_after_us: Option<i64>) {
        let mut endpoints = self.endpoints.lock();
        let e = endpoints.entry(endpoint.to_string()).or_default();
        if ok {
            e.success += 1;
            add(&self.attempts_success, 1);
            add(&self.delivered, 1);
        } else {
            e.failure += 1;
            add(&self.attempts_failure, 1);
        }
        if dead {
            e.dead += 1;
            add(&self.dead, 1);
        }
        drop(endpoints);
        if let Some(us) = delivered_after_us {
            let us = us.max(0) as u64;
            let index = DELIVERY_LATENCY_BUCKETS_US
                .iter()
                .position(|b| us <= *b)
                .unwrap_or(DELIVERY_LATENCY_BUCKETS_US.len());
            let mut l = self.latency.lock();
            l.0[index] += 1;
            l.1 += us;
            l.2 += 1;
        }
    }

    /// Forgets a deleted endpoint's series.
    pub fn remove_endpoint(&self, endpoint: &str) {
        self.endpoints.lock().remove(endpoint);
    }

    /// Appends the Prometheus text.
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut line = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        let rules: Vec<(String, u64)> = self
            .rules
            .lock()
            .iter()
            .map(|(p, n)| (format!("{{partition=\"{p}\"}}"), *n))
            .collect();
        line(
            "tickgate_alert_rules",
            "gauge",
            "Rules being evaluated, by evaluator partition (venue, or cross).",
            &rules,
        );
        line(
            "tickgate_alert_events_total",
            "counter",
            "Market messages the evaluators processed.",
            &one(get(&self.events)),
        );
        line(
            "tickgate_alert_events_dropped_total",
            "counter",
            "Messages an evaluator missed because it fell behind a channel (then it rejoins).",
            &one(get(&self.events_dropped)),
        );
        line(
            "tickgate_alert_evaluations_total",
            "counter",
            "Metric values computed and checked against thresholds.",
            &one(get(&self.evaluations)),
        );
        line(
            "tickgate_alert_firings_total",
            "counter",
            "Rules that fired.",
            &one(get(&self.firings)),
        );
        line(
            "tickgate_alert_suppressed_total",
            "counter",
            "Crossings inside a rule's cool-down (not fired).",
            &one(get(&self.suppressed)),
        );
        line(
            "tickgate_alert_expired_total",
            "counter",
            "Rules that reached their expiry.",
            &one(get(&self.expired)),
        );
        line(
            "tickgate_alert_store_errors_total",
            "counter",
            "Failed writes of firings (retried).",
            &one(get(&self.store_errors)),
        );
        line(
            "tickgate_alert_firings_dropped_total",
            "counter",
            "Firings dropped because the store refused writes for longer than the evaluator queue holds.",
            &one(get(&self.firings_dropped)),
        );
        let endpoints = self.endpoints.lock().clone();
        let mut attempts = vec![
            (
                "{outcome=\"success\"}".to_string(),
                get(&self.attempts_success),
            ),
            (
                "{outcome=\"failure\"}".to_string(),
                get(&self.attempts_failure),
            ),
        ];
        line(
            "tickgate_webhook_attempts_total",
            "counter",
            "Webhook delivery attempts by outcome.",
            &attempts,
        );
        attempts.clear();
        for (id, c) in &endpoints {
            attempts.push((
                format!("{{endpoint=\"{id}\",outcome=\"success\"}}"),
                c.success,
            ));
            attempts.push((
                format!("{{endpoint=\"{id}\",outcome=\"failure\"}}"),
                c.failure,
            ));
            attempts.push((format!("{{endpoint=\"{id}\",outcome=\"dead\"}}"), c.dead));
        }
        line(
            "tickgate_webhook_endpoint_attempts_total",
            "counter",
            "Webhook attempts per endpoint by outcome (dead: deliveries that exhausted their attempts).",
            &attempts,
        );
        line(
            "tickgate_webhook_delivered_total",
            "counter",
            "Deliveries that succeeded.",
            &one(get(&self.delivered)),
        );
        line(
            "tickgate_webhook_dead_total",
            "counter",
            "Deliveries that exhausted their attempts.",
            &one(get(&self.dead)),
        );
        line(
            "tickgate_webhook_stale_outcomes_total",
            "counter",
            "Attempt outcomes discarded because the delivery's lease had passed to another attempt.",
            &one(get(&self.stale_outcomes)),
        );
        line(
            "tickgate_webhook_pending",
            "gauge",
            "Deliveries waiting for an attempt or a retry.",
            &one(get(&self.pending_gauge)),
        );
        line(
            "tickgate_webhook_dead_letters",
            "gauge",
            "Dead deliveries kept for redelivery.",
            &one(get(&self.dead_gauge)),
        );
        let (buckets, sum, count) = *self.latency.lock();
        let name = "tickgate_webhook_delivery_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From firing to the successful delivery.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, n) in buckets.iter().enumerate() {
            cumulative += n;
            let le = DELIVERY_LATENCY_BUCKETS_US
                .get(i)
                .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {count}", sum as f64 / 1e6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_per_endpoint_and_the_latency_histogram() {
        let m = AlertMetrics::default();
        m.set_rules("sim", 3);
        m.attempt("whe_a", false, false, None);
        m.attempt("whe_a", true, false, Some(2_000));
        m.attempt("whe_b", false, true, None);
        let mut out = String::new();
        m.render(&mut out);
        for expected in [
            "tickgate_alert_rules{partition=\"sim\"} 3",
            "tickgate_webhook_attempts_total{outcome=\"success\"} 1",
            "tickgate_webhook_attempts_total{outcome=\"failure\"} 2",
            "tickgate_webhook_endpoint_attempts_total{endpoint=\"whe_a\",outcome=\"failure\"} 1",
            "tickgate_webhook_endpoint_attempts_total{endpoint=\"whe_b\",outcome=\"dead\"} 1",
            "tickgate_webhook_dead_total 1",
            "tickgate_webhook_delivery_latency_seconds_bucket{le=\"0.001\"} 0",
            "tickgate_webhook_delivery_latency_seconds_bucket{le=\"0.0025\"} 1",
            "tickgate_webhook_delivery_latency_seconds_count 1",
        ] {
            assert!(out.contains(expected), "{expected}\n{out}");
        }
    }
}
