//! The gateway under test: a child `tickgate serve` process (or an external one), its
//! readiness, memory and CPU time.
//!
//! Running the server in its own process keeps its memory (`VmRSS` in `/proc/<pid>/status`)
//! and CPU time (`utime + stime` in `/proc/<pid>/stat`) apart from the load generator's.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start the child gateway.
#[derive(Debug, Default)]
pub struct ServeOptions {
    pub sim_rate: Option<f64>,
    pub threads: Option<usize>,
    pub config: Option<PathBuf>,
    /// Extra `TICKGATE_*` variables for the child (the bench's own environment is inherited).
    pub env: Vec<(String, String)>,
    /// A data directory prepared by the bench (e.g. with keys in it); a fresh temporary one
    /// otherwise. Removed when the target drops, either way.
    pub data_dir: Option<PathBuf>,
    /// The `tickgate` executable to run (default: this one), e.g. a previous build measured
    /// with the same load generator.
    pub exe: Option<PathBuf>,
}

/// The server being measured.
#[derive(Debug)]
pub struct Target {
    /// `host:port` of the gateway.
    pub addr: SocketAddr,
    /// The process to read memory and CPU from, when known.
    pub pid: Option<u32>,
    child: Option<Child>,
    data_dir: Option<PathBuf>,
}

impl Target {
    /// Starts `tickgate serve` as a child on a free loopback port and waits for `/readyz`.
    pub fn spawn(options: &ServeOptions) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free port")?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let data_dir = options.data_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("tickgate-bench-{}-{port}", std::process::id()))
        });
        let exe = match &options.exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe().context("cannot locate the tickgate executable")?,
        };
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .env("TICKGATE_LOG__LEVEL", "warn")
            // Every bench client comes from loopback: the per-address socket cap (a defence
            // against one address taking every socket) would otherwise stop the bench.
            .env("TICKGATE_SERVER__MAX_CONNECTIONS_PER_IP", "10000000")
            // Every load-generator client comes from loopback: no per-address anonymous limit.
            .env("TICKGATE_SERVER__ANONYMOUS__REQUESTS_PER_SEC", "0")
            .env("TICKGATE_SERVER__ANONYMOUS__WS_CONNECTIONS_PER_IP", "0")
            .env("TICKGATE_SERVER__ANONYMOUS__SUBSCRIPTIONS_PER_IP", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(rate) = options.sim_rate {
            command.arg("--sim-rate").arg(rate.to_string());
        }
        if let Some(threads) = options.threads {
            command.arg("--threads").arg(threads.to_string());
        }
        if let Some(config) = &options.config {
            command.arg("--config").arg(config);
        }
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let child = command.spawn().context("cannot start `tickgate serve`")?;
        let mut target = Self {
            addr,
            pid: Some(child.id()),
            child: Some(child),
            data_dir: Some(data_dir),
        };
        target.wait_ready(Duration::from_secs(30))?;
        Ok(target)
    }

    /// An already running gateway at `url` (`http://host:port`, `ws://host:port/v1/ws`).
    pub fn external(url: &str, pid: Option<u32>) -> anyhow::Result<Self> {
        let hostport = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default();
        let addr = hostport
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {hostport:?} from --url"))?
            .next()
            .with_context(|| format!("{hostport:?} resolves to no address"))?;
        let mut target = Self {
            addr,
            pid,
            child: None,
            data_dir: None,
        };
        target.wait_ready(Duration::from_secs(10))?;
        Ok(target)
    }

    /// Starts a peer relay (`bench/peers/`, `bench relay`): `command --upstream URL --channels
    /// A,B`, which prints `listening <port>` once its own upstream subscription is acknowledged.
    pub fn peer(mut command: Command, upstream: &str, channels: &[String]) -> anyhow::Result<Self> {
        use std::io::BufRead;
        let shown = format!("{command:?}");
        let mut child = command
            .arg("--upstream")
            .arg(upstream)
            .arg("--channels")
            .arg(channels.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {shown}"))?;
        let stdout = child.stdout.take().context("the peer has no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so the peer never blocks on a full pipe.
            for _ in lines {}
        });
        let mut target = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid: Some(child.id()),
            child: Some(child),
            data_dir: None,
        };
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => bail!("the peer relay exited before listening; see its output above"),
            Err(_) => bail!("the peer relay did not start listening within 30 s"),
        };
        let port: u16 = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("the peer relay printed {line:?}, not `listening <port>`"))?;
        target.addr.set_port(port);
        target.wait_ready(Duration::from_secs(10))?;
        Ok(target)
    }

    /// Kills the child at once (SIGKILL, as a crash would: no clean shutdown) and reaps it.
    /// Its data directory stays until the target drops.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                bail!("the server exited during startup ({status}); see its log above");
            }
            if http_get(self.addr, "/readyz").is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "the gateway at {} was not ready within {limit:?}",
                    self.addr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resident memory of the server, bytes.
    pub fn rss(&self) -> Option<u64> {
        self.pid.and_then(rss_bytes)
    }

    /// CPU time the server has used (user + system), seconds.
    pub fn cpu_secs(&self) -> Option<f64> {
        self.pid.and_then(cpu_secs)
    }

    /// The value of one unlabelled Prometheus metric, or the sum over its label sets.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (status, body) = http_get(self.addr, "/metrics").ok()?;
        if status != 200 {
            return None;
        }
        let mut found = None;
        for line in body.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                continue;
            }
            if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                *found.get_or_insert(0.0) += value;
            }
        }
        found
    }
}

impl Drop for Target {
    /// Kills the child gateway (also when the benchmark fails or is interrupted) and removes its
    /// data directory.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A minimal HTTP/1.1 GET (the benchmark needs no HTTP client dependency for two endpoints).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Ok((status, body))
}

/// `VmRSS` of a process, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `utime + stime` of a process, seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after its `)` are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks() as f64)
}

/// CPU time the whole machine has been busy (all CPUs, not idle or waiting for I/O), seconds.
/// Compared with the server's and the load generator's, it shows what other processes took.
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle) as f64 / clock_ticks() as f64)
}

/// `sysconf(_SC_CLK_TCK)` without `unsafe`: asks `getconf`, falling back to Linux's 100.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The soft limit on open files of this process (`ulimit -n`), if readable.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Fails early, with the fix, when `needed` sockets would exceed the open-files limit.
pub fn check_open_files(needed: u64) -> anyhow::Result<()> {
    if let Some(limit) = open_files_limit()
        && needed + 64 > limit
    {
        bail!(
            "{needed} connections need more open files than the limit of {limit}; \
             raise it first, e.g. `ulimit -n {}`",
            needed + 1024
        );
    }
    Ok(())
}

/// `12.3 MB`-style size.
pub fn fmt_bytes(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{:.1} MB", b as f64 / 1e6),
        None => "n/a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_and_cpu() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(cpu_secs(pid).unwrap() >= 0.0);
        assert!(machine_busy_secs().unwrap() > 0.0);
        assert!(open_files_limit().unwrap() > 0);
    }
}
