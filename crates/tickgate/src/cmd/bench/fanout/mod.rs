//! `tickgate bench fanout`: many clients on the same channels.
//!
//! The load generator shares the machine with the server, so it is built to cost as little as
//! possible: `--threads` OS threads (default 1), each a current-thread runtime driving its share
//! of the clients as local tasks; per-thread statistics behind an `Rc<RefCell>` (no atomics, no
//! locks); each message is scanned for four fields instead of parsed (see `scan`), and nothing
//! is allocated per message beyond what tungstenite does to frame it. Every second each thread
//! hands its interval statistics to the main thread, which prints a progress line and, inside the
//! measurement window, adds them to the totals.

use super::child::{
    ServeOptions, Target, check_open_files, cpu_secs, fmt_bytes, machine_busy_secs,
};
use super::histogram::Histogram;
use super::parse_duration;
use super::scan::{Kind, scan};
use super::wire::Reader;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use model::Timestamp;
use protocol::{ClientOp, RequestId};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Connections being opened at once per load-generator thread.
const CONNECT_CONCURRENCY: usize = 64;
/// Longest a TCP connect plus WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Read buffer per client: bigger means fewer `read` calls.
const CLIENT_READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// WebSocket clients, all subscribed to the same channels.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Simulated market events per second PER SYMBOL (`serve --sim-rate`); the sim runs 3
    /// symbols. A book channel then carries about `rate` updates/s, a trades channel one
    /// message per 1 ms batch that had a trade (at most 1,000/s).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Measurement time, after the warmup.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Time after all clients are subscribed before measuring.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// Channels every client subscribes to, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "book:sim:BTC-USDT,trades:sim:BTC-USDT"
    )]
    channels: Vec<String>,
    /// A running gateway to load instead of starting one (`http://host:port`). Its sim rate is
    /// then its own; `--rate` is ignored.
    #[arg(long)]
    url: Option<String>,
    /// With `--url`: the server's pid, to read its memory and CPU time.
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    /// Load-generator threads (each a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Worker threads of the child gateway (`serve --threads`; default one per core).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Configuration file for the child gateway (`serve --config`). `TICKGATE_*` variables set
    /// for the benchmark are passed on to the child too.
    #[arg(long)]
    config: Option<PathBuf>,
    /// How the clients read: `raw` (the benchmark's own frame reader, cheapest) or
    /// `tungstenite` (tokio-tungstenite's `Message` stream, for comparison).
    #[arg(long, value_enum, default_value_t = ClientKind::Raw)]
    client: ClientKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientKind {
    Raw,
    Tungstenite,
}

/// What one load-generator thread saw during one interval.
#[derive(Debug, Clone)]
struct Interval {
    latency: Histogram,
    /// Data messages (snapshots and updates).
    delivered: u64,
    bytes: u64,
    gaps: u64,
    /// `resync` notices (the venue book was rebuilt).
    resyncs: u64,
    /// Snapshots with `resync: true` (this client fell behind and was conflated).
    resync_snapshots: u64,
    /// A data message whose seq did not follow the previous one on its channel.
    seq_breaks: u64,
    errors: u64,
    subscribed: u64,
    /// Connections opened (handshake done).
    opened: u64,
    /// Clients whose connection ended.
    closed: u64,
    /// Highest seq seen per channel (to compute what the server offered).
    max_seq: Vec<u64>,
}

impl Interval {
    fn new(channels: usize) -> Self {
        Self {
            latency: Histogram::default(),
            delivered: 0,
            bytes: 0,
            gaps: 0,
            resyncs: 0,
            resync_snapshots: 0,
            seq_breaks: 0,
            errors: 0,
            subscribed: 0,
            opened: 0,
            closed: 0,
            max_seq: vec![0; channels],
        }
    }

    fn merge(&mut self, other: &Interval) {
        self.latency.merge(&other.latency);
        self.delivered += other.delivered;
        self.bytes += other.bytes;
        self.gaps += other.gaps;
        self.resyncs += other.resyncs;
        self.resync_snapshots += other.resync_snapshots;
        self.seq_breaks += other.seq_breaks;
        self.errors += other.errors;
        self.subscribed += other.subscribed;
        self.opened += other.opened;
        self.closed += other.closed;
        for (mine, theirs) in self.max_seq.iter_mut().zip(&other.max_seq) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Accounts one text message; `last` is the client's last seq per channel.
    #[inline]
    fn on_text(&mut self, text: &[u8], now: i64, channels: &[String], last: &mut [u64]) {
        let m = scan(text);
        let channel = || channels.iter().position(|c| c.as_bytes() == m.channel);
        match m.kind {
            Kind::Update | Kind::Snapshot => {
                self.delivered += 1;
                self.bytes += text.len() as u64;
                self.latency.record(now - m.recv_ts);
                let Some(ch) = channel() else { return };
                if m.kind == Kind::Update {
                    if last[ch] != 0 && m.seq != last[ch] + 1 {
                        self.seq_breaks += 1;
                    }
                } else if m.resync {
                    self.resync_snapshots += 1;
                }
                last[ch] = m.seq;
                self.max_seq[ch] = self.max_seq[ch].max(m.seq);
            }
            Kind::Gap => {
                self.gaps += 1;
                if let Some(ch) = channel() {
                    last[ch] = m.to_seq;
                }
            }
            Kind::Resync => {
                self.resyncs += 1;
                if let Some(ch) = channel() {
                    last[ch] = m.seq;
                }
            }
            Kind::Subscribed => self.subscribed += 1,
            Kind::Error => self.errors += 1,
            Kind::Other => {}
        }
    }
}

enum Event {
    /// A thread finished opening its clients.
    Connected {
        ok: usize,
        first_error: Option<String>,
    },
    /// A thread's statistics for the second ending at `tick` seconds after the origin.
    Tick {
        thread: usize,
        tick: u64,
        at: Instant,
        stats: Box<Interval>,
    },
}

pub fn run(args: FanoutArgs) -> anyhow::Result<ExitCode> {
    if args.clients == 0 || args.threads == 0 || args.channels.is_empty() {
        bail!("--clients, --threads and --channels must not be zero or empty");
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number");
    }
    check_open_files(args.clients as u64)?;
    let target = match &args.url {
        Some(url) => Target::external(url, args.server_pid)?,
        None => Target::spawn(&ServeOptions {
            sim_rate: Some(args.rate),
            threads: args.server_threads,
            config: args.config.clone(),
            env: Vec::new(),
        })?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(drive(&args, &target))?;
    // Read the server's own counters before the child is killed (when `target` drops).
    let counters = ServerCounters::read(&target);
    drop(target);
    print_report(&args, &report, &counters);
    Ok(ExitCode::SUCCESS)
}

/// What the main thread gathered.
#[derive(Debug)]
struct Report {
    server_pid: Option<u32>,
    total: Interval,
    window: Duration,
    rss_idle: Option<u64>,
    rss_start: Option<u64>,
    rss_end: Option<u64>,
    server_cpu: Option<f64>,
    generator_cpu: Option<f64>,
    /// All CPUs' busy time: the difference to server + generator is other processes.
    machine_cpu: Option<f64>,
    /// Channel seq advance over the window, summed over channels.
    offered_per_client: u64,
    closed: u64,
}

async fn drive(args: &FanoutArgs, target: &Target) -> anyhow::Result<Report> {
    let rss_idle = target.rss();
    let origin = Instant::now();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel(false);
    let channels: Arc<[String]> = args.channels.clone().into();
    let plan = Plan {
        addr: target.addr,
        url: target.ws_url(),
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
    let mut cpu_last = CpuSample::take(target, self_pid);
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
                        target.addr
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
                            target.cpu_secs(),
                            cpu_secs(self_pid),
                            machine_busy_secs(),
                            target.rss(),
                        ));
                        max_seq_start.clone_from(&cumulative.max_seq);
                        "warmup"
                    }
                    Some(_) => {
                        total.merge(&interval);
                        "measuring"
                    }
                };
                let rss = target.rss();
                let cpu_now = CpuSample::take(target, self_pid);
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
                        server_pid: target.pid,
                        total: total.clone(),
                        window: elapsed,
                        rss_idle,
                        rss_start,
                        rss_end: rss,
                        server_cpu: per_sec(cpu0, target.cpu_secs()),
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

/// What every load-generator thread shares.
#[derive(Debug, Clone)]
struct Plan {
    addr: SocketAddr,
    url: String,
    channels: Arc<[String]>,
    client: ClientKind,
    origin: Instant,
}

/// CPU times read together, for the per-second progress line.
#[derive(Debug)]
struct CpuSample {
    at: Instant,
    server: Option<f64>,
    generator: Option<f64>,
    machine: Option<f64>,
}

impl CpuSample {
    fn take(target: &Target, self_pid: u32) -> Self {
        Self {
            at: Instant::now(),
            server: target.cpu_secs(),
            generator: cpu_secs(self_pid),
            machine: machine_busy_secs(),
        }
    }

    /// Cores used since `earlier`: server, load generator, other processes (formatted).
    fn cores_since(&self, earlier: &CpuSample) -> (String, String, String) {
        let secs = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        let rate = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if secs > 0.0 => Some((b - a) / secs),
            _ => None,
        };
        let server = rate(earlier.server, self.server);
        let generator = rate(earlier.generator, self.generator);
        let machine = rate(earlier.machine, self.machine);
        let other = match (machine, server, generator) {
            (Some(m), Some(s), Some(g)) => Some((m - s - g).max(0.0)),
            _ => None,
        };
        let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
        (show(server), show(generator), show(other))
    }
}

/// One load-generator thread: a current-thread runtime with `count` clients as local tasks.
/// Clients connect first; once every client of every thread is connected, `go` turns true and
/// they all subscribe, so the warmup starts from the same moment for all of them.
fn generator(
    thread: usize,
    count: usize,
    plan: Plan,
    events: mpsc::UnboundedSender<Event>,
    go: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = events.send(Event::Connected {
                ok: 0,
                first_error: Some(error.to_string()),
            });
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let channels = plan.channels.clone();
        let stats = Rc::new(RefCell::new(Interval::new(channels.len())));
        let subscribe: Rc<str> = serde_json::to_string(&ClientOp::Subscribe {
            id: Some(RequestId::Num(1)),
            channels: channels.to_vec(),
            resume: Default::default(),
        })
        .unwrap_or_default()
        .into();
        let gate = Rc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let progress = Rc::new((Cell::new(0usize), Cell::new(0usize), RefCell::new(None)));
        for index in 0..count {
            let (stats, gate, progress, events) =
                (stats.clone(), gate.clone(), progress.clone(), events.clone());
            let (plan, subscribe, mut go) = (plan.clone(), subscribe.clone(), go.clone());
            tokio::task::spawn_local(async move {
                let opened = {
                    let _permit = gate.acquire().await;
                    match tokio::time::timeout(CONNECT_TIMEOUT, connect(&plan)).await {
                        Ok(result) => result,
                        Err(_) => Err(anyhow::anyhow!("handshake timed out")),
                    }
                };
                let (ok, failed, first_error) = (&progress.0, &progress.1, &progress.2);
                let socket = match opened {
                    Ok(socket) => {
                        ok.set(ok.get() + 1);
                        stats.borrow_mut().opened += 1;
                        Some(socket)
                    }
                    Err(error) => {
                        failed.set(failed.get() + 1);
                        first_error.borrow_mut().get_or_insert(format!("{error:#}"));
                        None
                    }
                };
                if ok.get() + failed.get() == count {
                    let _ = events.send(Event::Connected {
                        ok: ok.get(),
                        first_error: first_error.borrow_mut().take(),
                    });
                }
                let Some(socket) = socket else { return };
                if go.wait_for(|go| *go).await.is_err() {
                    return;
                }
                let key = (index as u32 ^ (thread as u32) << 20).to_be_bytes();
                let channels = &plan.channels;
                let result = match plan.client {
                    ClientKind::Raw => read_raw(socket, key, &subscribe, &stats, channels).await,
                    ClientKind::Tungstenite => read_tungstenite(socket, &subscribe, &stats, channels)
                        .await
                        .map_err(std::io::Error::other),
                };
                let mut stats = stats.borrow_mut();
                stats.closed += 1;
                if result.is_err() {
                    stats.errors += 1;
                }
            });
        }
        if count == 0 {
            let _ = events.send(Event::Connected {
                ok: 0,
                first_error: None,
            });
        }
        let mut ticker = tokio::time::interval_at(
            (plan.origin + Duration::from_secs(1)).into(),
            Duration::from_secs(1),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let at = Instant::now();
                    let tick = at.saturating_duration_since(plan.origin).as_secs_f64().round() as u64;
                    let fresh = Interval::new(channels.len());
                    let interval = std::mem::replace(&mut *stats.borrow_mut(), fresh);
                    let _ = events.send(Event::Tick { thread, tick, at, stats: Box::new(interval) });
                }
                _ = stop.changed() => break,
            }
        }
    });
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens the TCP connection and does the WebSocket handshake (tungstenite's, in both modes).
async fn connect(plan: &Plan) -> anyhow::Result<Socket> {
    let tcp = tokio::net::TcpStream::connect(plan.addr).await?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (socket, _) =
        tokio_tungstenite::client_async_with_config(plan.url.as_str(), tcp, Some(config)).await?;
    Ok(socket)
}

/// `--client raw`: subscribes, then reads frames with the benchmark's own framing (`wire`).
/// The server sends nothing before the subscription, so tungstenite's read buffer is empty
/// when the socket is taken back from it.
async fn read_raw(
    socket: Socket,
    key: [u8; 4],
    subscribe: &str,
    stats: &RefCell<Interval>,
    channels: &[String],
) -> std::io::Result<()> {
    let mut reader = Reader::new(socket.into_inner(), CLIENT_READ_BUFFER, key);
    reader.send_text(subscribe).await?;
    let mut last = vec![0u64; channels.len()];
    loop {
        let mut now = None;
        let open = reader
            .read(|text| {
                // One clock read per socket read: its messages all arrived together.
                let now = *now.get_or_insert_with(|| Timestamp::now().0);
                stats.borrow_mut().on_text(text, now, channels, &mut last);
            })
            .await?;
        if !open {
            return Ok(());
        }
    }
}

/// `--client tungstenite`: the reference client, one `Message` per frame.
async fn read_tungstenite(
    mut socket: Socket,
    subscribe: &str,
    stats: &RefCell<Interval>,
    channels: &[String],
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    socket.send(Message::Text(subscribe.into())).await?;
    let mut last = vec![0u64; channels.len()];
    while let Some(message) = socket.next().await {
        match message? {
            Message::Text(text) => {
                let now = Timestamp::now().0;
                stats
                    .borrow_mut()
                    .on_text(text.as_bytes(), now, channels, &mut last);
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

/// The gateway's own view, from `/metrics`.
#[derive(Debug, Default)]
struct ServerCounters {
    frames_dropped: Option<f64>,
    conflations: Option<f64>,
    gaps: Option<f64>,
    slow_disconnects: Option<f64>,
}

impl ServerCounters {
    fn read(target: &Target) -> Self {
        Self {
            frames_dropped: target.metric("tickgate_frames_dropped_total"),
            conflations: target.metric("tickgate_conflations_total"),
            gaps: target.metric("tickgate_gaps_total"),
            slow_disconnects: target.metric("tickgate_slow_consumer_disconnects_total"),
        }
    }
}

fn print_report(args: &FanoutArgs, report: &Report, counters: &ServerCounters) {
    let secs = report.window.as_secs_f64().max(1e-9);
    let total = &report.total;
    let delivered = total.delivered as f64 / secs;
    let offered = (args.clients as u64 * report.offered_per_client) as f64 / secs;
    let ms = |q: f64| total.latency.quantile(q) as f64 / 1e3;
    let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    let cores = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2} cores"));
    println!("tickgate bench fanout");
    match report.server_pid {
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

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{DataMessage, ServerMessage};

    fn update(channel: &str, seq: u64) -> String {
        ServerMessage::Update(DataMessage {
            channel: channel.into(),
            seq,
            recv_ts: 1_000,
            ..Default::default()
        })
        .to_json()
    }

    #[test]
    fn counts_seq_breaks_gaps_and_latency() {
        let channels = ["book:sim:A-B".to_string(), "trades:sim:A-B".to_string()];
        let mut last = [0u64; 2];
        let mut stats = Interval::new(2);
        for (channel, seq) in [(0, 5), (0, 6), (1, 100), (0, 8), (1, 101)] {
            stats.on_text(
                update(&channels[channel], seq).as_bytes(),
                3_000,
                &channels,
                &mut last,
            );
        }
        let gap = ServerMessage::Gap {
            channel: channels[1].clone(),
            from_seq: 102,
            to_seq: 110,
            reason: "slow_consumer".into(),
        }
        .to_json();
        stats.on_text(gap.as_bytes(), 3_000, &channels, &mut last);
        stats.on_text(
            update(&channels[1], 111).as_bytes(),
            3_000,
            &channels,
            &mut last,
        );
        assert_eq!(stats.delivered, 6);
        assert_eq!(stats.seq_breaks, 1);
        assert_eq!(stats.gaps, 1);
        assert_eq!(stats.max_seq, vec![8, 111]);
        assert_eq!(stats.latency.quantile(0.5), 2_000);
    }
}
