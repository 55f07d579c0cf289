//! `tickgate bench idle`: server memory per idle WebSocket connection.
//!
//! Measures the server's RSS, opens N connections that subscribe to nothing (or to one channel
//! with `--subscribe`), waits until the RSS stops moving, then holds the connections for
//! `--hold` (longer than the server's 20 s ping interval, so every connection goes through a
//! ping/pong round and the idle timeout logic) and measures again. The clients keep reading, so
//! tungstenite answers the server's pings. The child gateway runs with
//! `TICKGATE_WS__IDLE_TIMEOUT_SECS=600` so no connection is closed for idleness meanwhile.

use super::child::{ServeOptions, Target, check_open_files, fmt_bytes};
use super::parse_duration;
use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientOp, RequestId};
use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const CONNECT_CONCURRENCY: usize = 128;
/// The clients' own read buffer (the load generator's memory is not what is measured, but
/// tungstenite's 128 KiB default would cost it 1.3 GB for 10,000 connections).
const CLIENT_READ_BUFFER: usize = 4 * 1024;
/// RSS counts as stable when three readings a second apart differ by less than this.
const STABLE_BYTES: u64 = 256 * 1024;

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Idle WebSocket connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Subscribe each connection to this one channel (e.g. `status:sim`); by default the
    /// connections subscribe to nothing.
    #[arg(long)]
    subscribe: Option<String>,
    /// How long to hold the connections once the server's memory is stable; keep it above the
    /// server's ping interval (20 s).
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    hold: Duration,
    /// A running gateway to connect to instead of starting one (`http://host:port`). Its idle
    /// timeout must then exceed the hold time.
    #[arg(long)]
    url: Option<String>,
    /// With `--url`: the server's pid, to read its memory.
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    /// Worker threads of the child gateway (`serve --threads`).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Configuration file for the child gateway.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: IdleArgs) -> anyhow::Result<ExitCode> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    check_open_files(args.connections as u64)?;
    let target = match &args.url {
        Some(url) => Target::external(url, args.server_pid)?,
        None => Target::spawn(&ServeOptions {
            sim_rate: None,
            threads: args.server_threads,
            config: args.config.clone(),
            env: vec![("TICKGATE_WS__IDLE_TIMEOUT_SECS".into(), "600".into())],
            data_dir: None,
            exe: None,
        })?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&runtime, async {
        tokio::select! {
            report = measure(&args, &target) => report,
            () = super::interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    })?;
    let server_open = target.metric("tickgate_connections_open");
    drop(target);
    print_report(&args, &report, server_open);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug)]
struct Report {
    pid: Option<u32>,
    before: Option<u64>,
    stable: Option<u64>,
    end: Option<u64>,
    connect_time: Duration,
    open_at_end: usize,
    pings: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connected: Cell<usize>,
    failed: Cell<usize>,
    closed: Cell<usize>,
    pings: Cell<u64>,
}

async fn measure(args: &IdleArgs, target: &Target) -> anyhow::Result<Report> {
    // Let the freshly started server settle, then take its baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = target.rss();
    eprintln!("server RSS before connecting: {}", fmt_bytes(before));

    let counters = Rc::new(Counters::default());
    let gate = Rc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let subscribe = args.subscribe.as_ref().map(|channel| {
        serde_json::to_string(&ClientOp::Subscribe {
            id: Some(RequestId::Num(1)),
            channels: vec![channel.clone()],
            resume: Default::default(),
        })
        .unwrap_or_default()
    });
    let url = target.ws_url();
    let start = Instant::now();
    for _ in 0..args.connections {
        let (counters, gate, url, subscribe) = (
            counters.clone(),
            gate.clone(),
            url.clone(),
            subscribe.clone(),
        );
        let addr = target.addr;
        tokio::task::spawn_local(async move {
            let opened = {
                let _permit = gate.acquire().await;
                open(addr, &url, subscribe.as_deref()).await
            };
            let Ok(mut socket) = opened else {
                counters.failed.set(counters.failed.get() + 1);
                return;
            };
            counters.connected.set(counters.connected.get() + 1);
            while let Some(message) = socket.next().await {
                match message {
                    Ok(Message::Ping(_)) => counters.pings.set(counters.pings.get() + 1),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            counters.closed.set(counters.closed.get() + 1);
        });
    }

    let progress = |phase: &str| {
        eprintln!(
            "[{:>5.1}s] {phase:<10} connected {}/{} failed {} closed {} pings {}  server RSS {}",
            start.elapsed().as_secs_f64(),
            counters.connected.get(),
            args.connections,
            counters.failed.get(),
            counters.closed.get(),
            counters.pings.get(),
            fmt_bytes(target.rss())
        );
    };
    while counters.connected.get() + counters.failed.get() < args.connections {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress("connecting");
        if start.elapsed() > Duration::from_secs(120) {
            bail!("connections still opening after 120 s");
        }
    }
    let connect_time = start.elapsed();
    if counters.failed.get() > 0 {
        bail!(
            "{} of {} connections failed (server connection limit or open-files limit?)",
            counters.failed.get(),
            args.connections
        );
    }

    // Wait for the RSS to settle (at most 30 s).
    let mut readings: Vec<u64> = Vec::new();
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress("settling");
        let Some(rss) = target.rss() else { break };
        readings.push(rss);
        if let [.., a, b, c] = readings[..]
            && a.abs_diff(b) < STABLE_BYTES
            && b.abs_diff(c) < STABLE_BYTES
        {
            break;
        }
    }
    let stable = target.rss();

    let hold = Instant::now();
    while hold.elapsed() < args.hold {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress("holding");
    }
    let end = target.rss();
    Ok(Report {
        pid: target.pid,
        before,
        stable,
        end,
        connect_time,
        open_at_end: counters.connected.get() - counters.closed.get(),
        pings: counters.pings.get(),
    })
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(addr: SocketAddr, url: &str, subscribe: Option<&str>) -> anyhow::Result<Socket> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
    if let Some(subscribe) = subscribe {
        socket.send(Message::Text(subscribe.into())).await?;
    }
    Ok(socket)
}

fn print_report(args: &IdleArgs, report: &Report, server_open: Option<f64>) {
    let n = args.connections as f64;
    let per = |after: Option<u64>| match (report.before, after) {
        (Some(before), Some(after)) => {
            format!("{:.0} bytes", (after as f64 - before as f64) / n)
        }
        _ => "n/a".into(),
    };
    println!("tickgate bench idle");
    match report.pid {
        Some(pid) => println!("server            pid {pid}"),
        None => println!("server            pid unknown: memory not measured"),
    }
    println!(
        "connections       {} ({}), opened in {:.1} s",
        args.connections,
        args.subscribe
            .as_deref()
            .map_or("no subscription".to_string(), |c| format!(
                "each subscribed to {c}"
            )),
        report.connect_time.as_secs_f64()
    );
    println!(
        "server RSS        {} before, {} once stable, {} after holding {:.0} s",
        fmt_bytes(report.before),
        fmt_bytes(report.stable),
        fmt_bytes(report.end),
        args.hold.as_secs_f64()
    );
    println!(
        "per connection    {} at end of hold ({} once stable)",
        per(report.end),
        per(report.stable)
    );
    println!(
        "still open        {} of {} (server reports {}); pings answered {}",
        report.open_at_end,
        args.connections,
        server_open.map_or("n/a".to_string(), |v| format!("{v:.0}")),
        report.pings
    );
}
