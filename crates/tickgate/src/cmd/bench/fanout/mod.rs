//! `tickgate bench fanout`: many clients on the same channels.
//!
//! The load generator shares the machine with the server, so it is built to cost as little as
//! possible: `--threads` OS threads (default 1), each a current-thread runtime driving its share
//! of the clients as local tasks; per-thread statistics behind an `Rc<RefCell>` (no atomics, no
//! locks); each message is scanned for four fields instead of parsed (see `scan`), and nothing
//! is allocated per message beyond what tungstenite does to frame it. Every second each thread
//! hands its interval statistics to the main thread, which prints a progress line and, inside the
//! measurement window, adds them to the totals.
//!
//! # Layout
//!
//! - `args`: the command line ([`FanoutArgs`]).
//! - `client`: the load-generator threads and their clients.
//! - `interval`: what the threads count per second, and CPU samples.
//! - `report`: the final report and the gateway's own counters.
//! - `cluster`: `--cluster`, a single node and 1 ingest + 2 edges side by side.
//! - `probe`: the cluster's timed probes (NATS hop, failover, revocation).
//! - here: [`run`] and the main thread's loop (`drive`) that merges the threads' seconds.

mod args;
mod client;
mod cluster;
mod interval;
mod probe;
mod report;

pub use args::FanoutArgs;
use args::Peer;

use super::child::{ServeOptions, Target, check_open_files, cpu_secs, machine_busy_secs};
use crate::cmd::bench::child::fmt_bytes;
use anyhow::{Context, bail};
use client::{Plan, generator};
use interval::{CpuSample, Event, Interval};
use report::{Report, ServerCounters, print_comparison, print_report};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

pub fn run(args: FanoutArgs) -> anyhow::Result<ExitCode> {
    if args.clients == 0 || args.threads == 0 || args.channels.is_empty() {
        bail!("--clients, --threads and --channels must not be zero or empty");
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number");
    }
    check_open_files(args.clients as u64)?;
    if args.cluster {
        return cluster::run(&args);
    }
    let target = match &args.url {
        Some(url) => Target::external(url, args.server_pid)?,
        None => Target::spawn(&ServeOptions {
            sim_rate: Some(args.rate),
            threads: args.server_threads,
            config: args.config.clone(),
            env: Vec::new(),
            data_dir: None,
            exe: None,
        })?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The peers first, fed by the child gateway: then the same clients on the gateway itself.
    let mut peers = Vec::new();
    for &peer in &args.peer {
        let relay = start_peer(peer, &args, &target)?;
        eprintln!("--- {}: pid {:?} on {}", peer.name(), relay.pid, relay.addr);
        let report = runtime.block_on(drive(&args, &relay))?;
        drop(relay);
        peers.push((peer, report));
    }
    if !peers.is_empty() {
        eprintln!("--- tickgate");
    }
    let report = runtime.block_on(drive(&args, &target))?;
    // Read the server's own counters before the child is killed (when `target` drops).
    let counters = ServerCounters::read(&target);
    drop(target);
    for (peer, peer_report) in &peers {
        print_report(&args, Some(*peer), peer_report, &ServerCounters::default());
        println!();
    }
    print_report(&args, None, &report, &counters);
    if !peers.is_empty() {
        println!();
        print_comparison(&peers, &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts a peer relay on the child gateway's feed (the Node one installs its packages on
/// first use).
fn start_peer(peer: Peer, args: &FanoutArgs, gateway: &Target) -> anyhow::Result<Target> {
    let command = match peer {
        Peer::Node => {
            let script = args.peer_script.clone().unwrap_or_else(Peer::node_script);
            let dir = script
                .parent()
                .filter(|d| d.is_dir())
                .with_context(|| format!("the peer script {} does not exist", script.display()))?;
            if !dir.join("node_modules").is_dir() {
                eprintln!(
                    "installing the relay's packages: npm ci --prefix {}",
                    dir.display()
                );
                let status = std::process::Command::new("npm")
                    .arg("ci")
                    .arg("--silent")
                    .arg("--prefix")
                    .arg(dir)
                    .status()
                    .context("cannot run npm (the node relay needs Node.js and npm)")?;
                if !status.success() {
                    bail!("npm ci in {} failed ({status})", dir.display());
                }
            }
            let mut command = std::process::Command::new("node");
            command.arg(script);
            command
        }
        Peer::Rust => {
            let exe = std::env::current_exe().context("cannot find the tickgate binary")?;
            let mut command = std::process::Command::new(exe);
            command.args(["bench", "relay"]);
            command
        }
    };
    Target::peer(command, &gateway.ws_url(), &args.channels)
}

/// The gateway processes of one measurement: the clients are spread over `serving` (client i
/// on `serving[i % len]`); CPU time and memory are summed over `serving` and `also` (in a
/// cluster, the ingest node, which no client uses).
#[derive(Debug, Clone)]
pub(super) struct Servers<'a> {
    pub(super) serving: Vec<&'a Target>,
    pub(super) also: Vec<&'a Target>,
}

impl<'a> Servers<'a> {
    pub(super) fn one(target: &'a Target) -> Self {
        Self {
            serving: vec![target],
            also: Vec::new(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &'a Target> + '_ {
        self.serving.iter().chain(&self.also).copied()
    }

    /// CPU time used by all of them, seconds (`None` if one is unknown).
    pub(super) fn cpu_secs(&self) -> Option<f64> {
        self.all().map(Target::cpu_secs).sum()
    }

    /// Resident memory of all of them, bytes.
    fn rss(&self) -> Option<u64> {
        self.all().map(Target::rss).sum()
    }

    fn addrs(&self) -> String {
        let addrs: Vec<String> = self.serving.iter().map(|t| t.addr.to_string()).collect();
        addrs.join(", ")
    }
}

async fn drive(args: &FanoutArgs, target: &Target) -> anyhow::Result<Report> {
    drive_on(args, &Servers::one(target)).await
}

async fn drive_on(args: &FanoutArgs, servers: &Servers<'_>) -> anyhow::Result<Report> {
    let rss_idle = servers.rss();
    let origin = Instant::now();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel(false);
    let channels: Arc<[String]> = args.channels.clone().into();
    let plan = Plan {
        servers: servers
            .serving
            .iter()
            .map(|t| (t.addr, t.ws_url()))
            .collect(),
        channels: channels.clone(),
        client: args.client,
        origin,
    };
    let mut threads = Vec::new();
    for thread in 0..args.threads {
        let count = args.clients / args.threads + usize::from(thread < args.clients % args.threads);
        let (events, go, stop, plan) = (
            events_tx.clone(),
            go_rx.clone(),
            stop_rx.clone(),
            plan.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name(format!("bench-gen-{thread}"))
                .spawn(move || generator(thread, count, plan, events, go, stop))
                .context("cannot start a load-generator thread")?,
        );
    }
    drop(events_tx);

    let self_pid = std::process::id();
    let warmup_ticks = args.warmup.as_secs_f64().ceil() as u64;
    let window_ticks = args.duration.as_secs_f64().ceil().max(1.0) as u64;
    let mut connected = 0usize;
    let mut threads_connected = 0usize;
    // The first tick after every client is connected, and the window (start, end] in ticks.
    let mut window: Option<(u64, u64)> = None;
    let mut pending: BTreeMap<u64, (Interval, Instant)> = BTreeMap::new();
    let mut last_tick = vec![0u64; args.threads];
    let mut total = Interval::new(channels.len());
    let mut cumulative = Interval::new(channels.len());
    let mut at_start = None;
    let mut max_seq_start = vec![0u64; channels.len()];
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    let mut cpu_last = CpuSample::take(servers, self_pid);
    let interrupted = super::interrupted();
    tokio::pin!(interrupted);
    let result = loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = &mut interrupted => break Err(anyhow::anyhow!("interrupted")),
            () = tokio::time::sleep_until(connect_deadline.into()), if threads_connected < args.threads => {
                break Err(anyhow::anyhow!("only {connected} of {} clients connected within 120 s", args.clients));
            }
        };
        let Some(event) = event else {
            break Err(anyhow::anyhow!("the load generator stopped unexpectedly"));
        };
        match event {
            Event::Connected { ok, first_error } => {
                connected += ok;
                threads_connected += 1;
                if let Some(error) = first_error {
                    break Err(anyhow::anyhow!(
                        "{} of {} clients could not connect to {}: {error}",
                        args.clients - connected,
                        args.clients,
                        servers.addrs()
                    ));
                }
                if threads_connected == args.threads {
                    eprintln!("all {connected} clients connected; subscribing");
                    let _ = go_tx.send(true);
                }
            }
            Event::Tick {
                thread,
                tick,
                at,
                stats,
            } => {
                let entry = pending
                    .entry(tick)
                    .or_insert_with(|| (Interval::new(channels.len()), at));
                entry.0.merge(&stats);
                if thread == 0 {
                    entry.1 = at;
                }
                last_tick[thread] = tick;
                // A tick is complete once every thread has reported it or a later one (a busy
                // thread may skip a tick; its counts then arrive with its next report).
                let complete = last_tick.iter().copied().min().unwrap_or(0);
                let Some(tick) = pending.keys().next().copied().filter(|t| *t <= complete) else {
                    continue;
                };
                let Some((interval, at)) = pending.remove(&tick) else {
                    continue;
                };
                cumulative.merge(&interval);
                if window.is_none() && threads_connected == args.threads {
                    let start = tick + warmup_ticks;
                    window = Some((start, start + window_ticks));
                }
                let phase = match window {
                    None => "connecting",
                    Some((start, _)) if tick < start => "warmup",
                    Some((start, _)) if tick == start => {
                        at_start = Some((
                            at,
                            servers.cpu_secs(),
                            cpu_secs(self_pid),
                            machine_busy_secs(),
                            servers.rss(),
                        ));
                        max_seq_start.clone_from(&cumulative.max_seq);
                        "warmup"
                    }
                    Some(_) => {
                        total.merge(&interval);
                        "measuring"
                    }
                };
                let rss = servers.rss();
                let cpu_now = CpuSample::take(servers, self_pid);
                let cpu = cpu_now.cores_since(&cpu_last);
                cpu_last = cpu_now;
                eprintln!(
                    "[{tick:>3}s] {phase:<10} {:>6.2} M msg/s  p99 {:>7.2} ms  max {:>7.2} ms  server RSS {}  cores: server {} gen {} other {}  connected {}/{} subscribed {}  gaps {} resyncs {} breaks {} closed {}",
                    interval.delivered as f64 / 1e6,
                    interval.latency.quantile(0.99) as f64 / 1e3,
                    interval.latency.max() as f64 / 1e3,
                    fmt_bytes(rss),
                    cpu.0,
                    cpu.1,
                    cpu.2,
                    cumulative.opened,
                    args.clients,
                    cumulative.subscribed,
                    cumulative.gaps,
                    cumulative.resyncs + cumulative.resync_snapshots,
                    cumulative.seq_breaks,
                    cumulative.closed,
                );
                if let Some((_, end)) = window
                    && tick >= end
                {
                    let Some((start_at, cpu0, self0, machine0, rss_start)) = at_start else {
                        break Err(anyhow::anyhow!("the window start was not observed"));
                    };
                    let elapsed = at.saturating_duration_since(start_at);
                    let secs = elapsed.as_secs_f64().max(1e-9);
                    let per_sec = |a: Option<f64>, b: Option<f64>| {
                        Some((b? - a?) / secs).filter(|v| *v >= 0.0)
                    };
                    let offered_per_client = cumulative
                        .max_seq
                        .iter()
                        .zip(&max_seq_start)
                        .map(|(end, start)| end.saturating_sub(*start))
                        .sum();
                    break Ok(Report {
                        server_pid: servers.serving.first().and_then(|t| t.pid),
                        total: total.clone(),
                        window: elapsed,
                        rss_idle,
                        rss_start,
                        rss_end: rss,
                        server_cpu: per_sec(cpu0, servers.cpu_secs()),
                        generator_cpu: per_sec(self0, cpu_secs(self_pid)),
                        machine_cpu: per_sec(machine0, machine_busy_secs()),
                        offered_per_client,
                        closed: cumulative.closed,
                    });
                }
            }
        }
    };
    let _ = stop_tx.send(true);
    for thread in threads {
        let _ = thread.join();
    }
    result
}
