//! `tickgate bench fanout|idle|history|auth|alerts`: load the gateway from this machine and report
//! what it delivers.
//!
//! Both benchmarks start the gateway as a child process (`tickgate serve` on a free loopback
//! port) unless `--url` points at a running one, so the server's memory and CPU time can be read
//! from `/proc/<pid>` apart from the load generator's. Progress goes to stderr, the final report
//! to stdout. Methods and results: `docs/benchmarks.md`.
//!
//! # Layout
//!
//! - `fanout`: N clients on the same channels; delivered messages/s, end-to-end latency, gaps.
//! - `idle`: N idle connections; server memory per connection.
//! - `history`: the history store's write throughput and candle query latency.
//! - `auth`: the cost of authenticating a request, and REST throughput with and without auth.
//! - `alerts`: the alert rule engine's throughput and firing-to-webhook latency.
//! - `relay`: the direct-write relay `fanout --peer rust` measures the gateway against.
//! - `child`: the server under test (child process or external), `/readyz`, `/proc` readings.
//! - `scan`: reads `type`, `channel`, `seq` and `recv_ts` from a message without parsing it.
//! - `histogram`: the log-linear latency histogram.
//! - `wire`: the fan-out clients' own WebSocket frame reader (`--client raw`).

mod alerts;
mod auth;
mod child;
mod fanout;
mod histogram;
mod history;
mod idle;
mod relay;
mod scan;
mod wire;

use clap::Subcommand;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// N WebSocket clients subscribed to the same channels: delivered messages per second,
    /// end-to-end latency (client receive time − `recv_ts`), gaps and server memory/CPU.
    Fanout(fanout::FanoutArgs),
    /// N idle WebSocket connections: server memory per connection.
    Idle(idle::IdleArgs),
    /// History store: trades written per second by batch size, and 1-day candle query latency.
    History(history::HistoryBenchArgs),
    /// Cost of authenticating a bearer request (ns) and REST throughput with and without auth.
    Auth(auth::BenchAuthArgs),
    /// Alert rule engine events/s with 0, 1,000 and 100,000 rules on one symbol, and
    /// firing-to-webhook latency on loopback.
    Alerts(alerts::AlertsBenchArgs),
    /// A minimal relay of one gateway subscription, for `fanout --peer rust`: one writer
    /// thread per core writes each message to every client with one `writev` (a floor for
    /// fan-out cost, with none of the gateway's guarantees).
    Relay(relay::RelayArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Fanout(args) => fanout::run(args),
        BenchCommand::Idle(args) => idle::run(args),
        BenchCommand::History(args) => history::run(args),
        BenchCommand::Auth(args) => auth::run(args),
        BenchCommand::Alerts(args) => alerts::run(args),
        BenchCommand::Relay(args) => relay::run(args),
    }
}

/// Resolves on ctrl-c or SIGTERM, so that the benchmark returns and the child gateway is killed
/// (when its `Target` drops) either way.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Parses `20s`, `500ms`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 20s, 500ms or 2m"))?;
    if !(value.is_finite() && value >= 0.0) {
        return Err(format!("{text:?} is not a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let cases = [
            ("20s", Some(20_000)),
            ("500ms", Some(500)),
            ("2m", Some(120_000)),
            ("3", Some(3_000)),
            ("1.5s", Some(1_500)),
            ("x", None),
            ("-1s", None),
        ];
        for (text, millis) in cases {
            let got = parse_duration(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, millis, "{text}");
        }
    }
}
