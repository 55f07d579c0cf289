//! The final report of `tickgate bench fanout`: what the clients counted and the gateway's own
//! counters.

use super::args::{FanoutArgs, Peer};
use super::interval::Interval;
use crate::cmd::bench::child::{Target, fmt_bytes};
use std::time::Duration;

/// What the main thread gathered.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) server_pid: Option<u32>,
    pub(super) total: Interval,
    pub(super) window: Duration,
    pub(super) rss_idle: Option<u64>,
    pub(super) rss_start: Option<u64>,
    pub(super) rss_end: Option<u64>,
    pub(super) server_cpu: Option<f64>,
    pub(super) generator_cpu: Option<f64>,
    /// All CPUs' busy time: the difference to server + generator is other processes.
    pub(super) machine_cpu: Option<f64>,
    /// Channel seq advance over the window, summed over channels.
    pub(super) offered_per_client: u64,
    pub(super) closed: u64,
}

/// The gateway's own view, from `/metrics`.
#[derive(Debug, Default)]
pub(super) struct ServerCounters {
    pub(super) frames_dropped: Option<f64>,
    pub(super) conflations: Option<f64>,
    pub(super) gaps: Option<f64>,
    pub(super) slow_disconnects: Option<f64>,
}

impl ServerCounters {
    /// Adds another server's counters (a cluster's edges).
    pub(super) fn add(&mut self, other: &Self) {
        let sum = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.frames_dropped = sum(self.frames_dropped, other.frames_dropped);
        self.conflations = sum(self.conflations, other.conflations);
        self.gaps = sum(self.gaps, other.gaps);
        self.slow_disconnects = sum(self.slow_disconnects, other.slow_disconnects);
    }

    pub(super) fn read(target: &Target) -> Self {
        Self {
            frames_dropped: target.metric("tickgate_frames_dropped_total"),
            conflations: target.metric("tickgate_conflations_total"),
            gaps: target.metric("tickgate_gaps_total"),
            slow_disconnects: target.metric("tickgate_slow_consumer_disconnects_total"),
        }
    }
}

/// One row of the final report. `peer`: the report is of that relay, not of the gateway.
pub(super) fn print_report(
    args: &FanoutArgs,
    peer: Option<Peer>,
    report: &Report,
    counters: &ServerCounters,
) {
    let secs = report.window.as_secs_f64().max(1e-9);
    let total = &report.total;
    let delivered = total.delivered as f64 / secs;
    let offered = (args.clients as u64 * report.offered_per_client) as f64 / secs;
    let ms = |q: f64| total.latency.quantile(q) as f64 / 1e3;
    let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    let cores = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2} cores"));
    println!(
        "tickgate bench fanout: {}",
        peer.map_or("tickgate", Peer::name)
    );
    match report.server_pid {
        Some(pid) if peer.is_some() => println!(
            "server            {} (pid {pid}), fed by one subscription to the child gateway",
            peer.map_or("", Peer::name)
        ),
        Some(pid) if args.url.is_none() => println!(
            "server            child pid {pid}, {} worker threads, sim rate {} events/s per symbol",
            args.server_threads
                .map_or("default (one per core)".to_string(), |t| t.to_string()),
            args.rate
        ),
        Some(pid) => println!(
            "server            {} (pid {pid})",
            args.url.as_deref().unwrap_or("")
        ),
        None => println!(
            "server            {} (pid unknown)",
            args.url.as_deref().unwrap_or("")
        ),
    }
    println!(
        "clients           {} on {} load-generator thread(s)",
        args.clients, args.threads
    );
    println!("channels          {}", args.channels.join(","));
    println!(
        "window            {:.1} s after {:.0} s warmup",
        secs,
        args.warmup.as_secs_f64()
    );
    println!(
        "delivered         {:.0} msg/s ({:.1} MB/s of JSON)",
        delivered,
        total.bytes as f64 / secs / 1e6
    );
    println!(
        "offered           {:.0} msg/s ({} clients x {:.0} channel msg/s); delivered/offered {:.1} %",
        offered,
        args.clients,
        report.offered_per_client as f64 / secs,
        if offered > 0.0 {
            100.0 * delivered / offered
        } else {
            0.0
        }
    );
    println!(
        "latency ms        p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({} samples)",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        total.latency.max() as f64 / 1e3,
        total.latency.count()
    );
    println!(
        "server RSS        {} before clients, {} at window start, {} at end",
        fmt_bytes(report.rss_idle),
        fmt_bytes(report.rss_start),
        fmt_bytes(report.rss_end)
    );
    let other = match (report.machine_cpu, report.server_cpu, report.generator_cpu) {
        (Some(all), Some(server), Some(generator)) => Some((all - server - generator).max(0.0)),
        _ => None,
    };
    println!(
        "CPU in window     server {}, load generator {}, other processes {} (machine busy {} of {})",
        cores(report.server_cpu),
        cores(report.generator_cpu),
        cores(other),
        cores(report.machine_cpu),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "losses (clients)  gaps {}  resync notices {}  resync snapshots {}  seq breaks {}  errors {}  closed {}",
        total.gaps,
        total.resyncs,
        total.resync_snapshots,
        total.seq_breaks,
        total.errors,
        report.closed
    );
    println!(
        "losses (server)   frames dropped {}  conflations {}  gaps {}  slow disconnects {}",
        show(counters.frames_dropped),
        show(counters.conflations),
        show(counters.gaps),
        show(counters.slow_disconnects)
    );
}

/// The peer and the gateway side by side, and the gateway's ratios to the peer.
pub(super) fn print_comparison(peers: &[(Peer, Report)], report: &Report) {
    struct Row {
        delivered: f64,
        p50: f64,
        p99: f64,
        cpu_us: Option<f64>,
        generator: Option<f64>,
    }
    let row = |r: &Report| {
        let delivered = r.total.delivered as f64 / r.window.as_secs_f64().max(1e-9);
        Row {
            delivered,
            p50: r.total.latency.quantile(0.5) as f64 / 1e3,
            p99: r.total.latency.quantile(0.99) as f64 / 1e3,
            cpu_us: r
                .server_cpu
                .filter(|_| delivered > 0.0)
                .map(|c| c * 1e6 / delivered),
            generator: r.generator_cpu,
        }
    };
    let t = row(report);
    let rows: Vec<(&str, Row)> = peers
        .iter()
        .map(|(peer, r)| (peer.name(), row(r)))
        .collect();
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("n/a".to_string(), |v| format!("{v:.digits$}"));
    println!("side by side (same clients, same channels, same feed)");
    println!(
        "{:<18} {:>14} {:>9} {:>9} {:>18} {:>15}",
        "", "delivered msg/s", "p50 ms", "p99 ms", "server CPU µs/msg", "generator cores"
    );
    for (name, r) in rows.iter().map(|(n, r)| (*n, r)).chain([("tickgate", &t)]) {
        println!(
            "{:<18} {:>14.0} {:>9.2} {:>9.2} {:>18} {:>15}",
            name,
            r.delivered,
            r.p50,
            r.p99,
            opt(r.cpu_us, 2),
            opt(r.generator, 2)
        );
    }
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "n/a".into()
        }
    };
    for (name, p) in &rows {
        println!(
            "{:<18} {:>14} {:>9} {:>9} {:>18}",
            if rows.len() == 1 {
                "tickgate / peer".to_string()
            } else {
                format!("tickgate / {}", name.split(' ').next().unwrap_or(name))
            },
            ratio(t.delivered, p.delivered),
            ratio(t.p50, p.p50),
            ratio(t.p99, p.p99),
            match (t.cpu_us, p.cpu_us) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => "n/a".into(),
            }
        );
    }
}
