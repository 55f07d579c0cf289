//! `tickgate bench alerts`: events per second through the alert rule engine with 0, 1,000 and
//! 100,000 rules on one symbol (same run, same scripted events), alone and with the frame
//! parsing an evaluator does per event; and firing-to-webhook latency on loopback through the
//! real outbox, delivery worker and HTTP client. See docs/benchmarks.md (Alerts).

use alerts::clock::Clock;
use alerts::config::DeliveryConfig;
use alerts::engine::{Engine, TradeTick};
use alerts::metrics::AlertMetrics;
use alerts::rule::{Market, Rule, Trigger, validate_condition};
use alerts::webhook::signature::{Scheme, WebhookSecret};
use alerts::webhook::worker::Worker;
use anyhow::Context;
use clap::Args;
use model::{Decimal, Side, Symbol, Venue};
use protocol::alerts::{ConditionBody, Direction};
use protocol::{DataMessage, ServerMessage, WireTrade};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::alerts::{AlertStore, EndpointRecord, RuleRecord, RuleStatus};
use store::outbox::{NewFiring, Outbox};

#[derive(Debug, Args)]
pub struct AlertsBenchArgs {
    /// Trade events fed to the engine per rule count.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Rule counts to compare (the first is the baseline).
    #[arg(long, value_delimiter = ',', default_value = "0,1000,100000")]
    rules: Vec<usize>,
    /// Largest price move from one trade to the next, in cents (1..=10000). The default, 100,
    /// crosses about four of 100,000 rules per trade (a stress case: about one firing per
    /// event); 1 is a quiet market where most trades cross none.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    step_cents: u64,
    /// Webhook deliveries timed for the latency part (0 skips it).
    #[arg(long, default_value_t = 500)]
    deliveries: usize,
}

const PRICE: i64 = 6_000_000; // 60000.00 in cents

/// A deterministic random walk: prices in cents moving by up to ±`step` cents per trade.
fn script(events: usize, step: u64) -> Vec<TradeTick> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut price = PRICE;
    (0..events)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            price += (x % (2 * step + 1)) as i64 - step as i64;
            TradeTick {
                price: Decimal::new(price, 2),
                size: Decimal::new(1 + (x % 1000) as i64, 4),
                ts: 1_700_000_000_000_000 + i as i64,
            }
        })
        .collect()
}

fn market() -> Market {
    Market {
        venue: Venue::new("sim").unwrap_or_else(|_| unreachable!()),
        symbol: Symbol::new("BTC-USDT").unwrap_or_else(|_| unreachable!()),
    }
}

/// `n` price rules on one symbol, levels spread evenly over ±20 % of the start price, half
/// `above`, half `below`, no hysteresis or cool-down (every crossing fires).
fn engine_with(n: usize) -> anyhow::Result<Engine> {
    let v = validate_condition(&ConditionBody::Price {
        channel: "trades:sim:BTC-USDT".into(),
        price: None,
        direction: Direction::Above,
        level: "1".into(),
    })?;
    let mut engine = Engine::new();
    for i in 0..n {
        let spread = (PRICE * 2 / 5) as i128 * i as i128 / n.max(1) as i128;
        let level = (PRICE * 4 / 5) as i128 + spread;
        let rule = Rule {
            id: format!("alr_{i}"),
            owner: "bench".into(),
            name: format!("r{i}"),
            condition: v.condition.clone(),
            metric: v.metric.clone(),
            trigger: Trigger {
                direction: if i % 2 == 0 {
                    Direction::Above
                } else {
                    Direction::Below
                },
                threshold: Decimal::from_i128_with_scale(level, 2),
                hysteresis: Decimal::ZERO,
            },
            cooldown_us: 0,
            expires_at: None,
            max_firings: None,
            firings: 0,
            last_fired_at: None,
            endpoints: vec![],
        };
        engine.upsert(rule, 0);
    }
    Ok(engine)
}

/// Events/s and firings feeding `events` one at a time; `frames` also parses each event from
/// the JSON text of a trades update, as an evaluator does.
fn run_engine(
    rules: usize,
    events: &[TradeTick],
    frames: Option<&[String]>,
) -> anyhow::Result<(f64, u64)> {
    let mut engine = engine_with(rules)?;
    let m = market();
    let mut out = Vec::new();
    let mut fired = 0u64;
    let start = Instant::now();
    for (i, tick) in events.iter().enumerate() {
        let tick = match frames {
            Some(frames) => {
                let message: ServerMessage = serde_json::from_str(&frames[i])?;
                let ServerMessage::Update(d) = message else {
                    continue;
                };
                let t = &d.trades.unwrap_or_default()[0];
                TradeTick {
                    price: t.price,
                    size: t.size,
                    ts: t.ts,
                }
            }
            None => *tick,
        };
        engine.on_trades(&m, std::slice::from_ref(&tick), 0, &mut out);
        fired += out.len() as u64;
        out.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((events.len() as f64 / secs, fired))
}

fn frames(events: &[TradeTick]) -> Vec<String> {
    events
        .iter()
        .enumerate()
        .map(|(i, t)| {
            ServerMessage::Update(DataMessage {
                channel: "trades:sim:BTC-USDT".into(),
                seq: i as u64 + 1,
                epoch: "bench".into(),
                ts: t.ts,
                recv_ts: t.ts,
                trades: Some(vec![WireTrade {
                    id: i.to_string(),
                    price: t.price,
                    size: t.size,
                    side: Side::Buy,
                    ts: t.ts,
                }]),
                ..Default::default()
            })
            .to_json()
        })
        .collect()
}

pub fn run(args: AlertsBenchArgs) -> anyhow::Result<ExitCode> {
    println!(
        "alert engine: {} trade events on one symbol (moves up to ±{} cents), rules at levels over ±20 %",
        args.events, args.step_cents
    );
    let events = script(args.events, args.step_cents);
    let texts = frames(&events);
    println!(
        "{:>8} {:>16} {:>8} {:>20} {:>8} {:>12}",
        "rules", "engine events/s", "vs 0", "parse+engine ev/s", "vs 0", "firings"
    );
    let mut base: Option<(f64, f64)> = None;
    for &n in &args.rules {
        let (alone, fired) = run_engine(n, &events, None)?;
        let (parsed, _) = run_engine(n, &events, Some(&texts))?;
        let (b_alone, b_parsed) = *base.get_or_insert((alone, parsed));
        println!(
            "{n:>8} {alone:>16.0} {:>7.1}% {parsed:>20.0} {:>7.1}% {fired:>12}",
            100.0 * alone / b_alone,
            100.0 * parsed / b_parsed
        );
    }
    if args.deliveries > 0 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(latency(args.deliveries))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Firing-to-webhook latency: a firing written to the outbox (what an evaluator does) until a
/// local receiver has the request, through the real worker, one delivery at a time.
async fn latency(n: usize) -> anyhow::Result<()> {
    use axum::routing::post;
    let dir = std::env::temp_dir().join(format!("tickgate-bench-alerts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(store::alerts_sqlite::SqliteAlertStore::open_dir(&dir)?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64)>();
    let clock = Clock::new();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap| {
            let tx = tx.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let _ = tx.send((id, clock.now()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let ring = auth::KeyRing::new(Some(auth::MasterKey::random()?), vec![]);
    let (_, text) = WebhookSecret::generate(Scheme::V1)?;
    store.insert_endpoint(&EndpointRecord {
        id: "whe_bench".into(),
        owner: "bench".into(),
        url: format!("http://127.0.0.1:{port}/hook"),
        description: String::new(),
        enabled: true,
        scheme: "v1".into(),
        public_key: None,
        secret: ring.seal("whe_bench", text.as_bytes())?,
        previous_secret: None,
        previous_until: None,
        max_in_flight: None,
        timeout_ms: None,
        created_at: 0,
        updated_at: 0,
        rev: 0,
        stats: Default::default(),
    })?;
    store.insert_rule(&RuleRecord {
        id: "alr_bench".into(),
        owner: "bench".into(),
        name: "bench".into(),
        partition: "sim".into(),
        spec: serde_json::json!({}),
        endpoints: vec!["whe_bench".into()],
        status: RuleStatus::Active,
        expires_at: None,
        max_firings: None,
        firings: 0,
        last_fired_at: None,
        created_at: 0,
        updated_at: 0,
        rev: 0,
    })?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let settings = DeliveryConfig {
        allow_addresses: vec!["127.0.0.1".into()],
        ..Default::default()
    };
    let worker = Worker::new(
        store.clone(),
        ring,
        settings,
        Arc::new(AlertMetrics::default()),
        wake.clone(),
        clock,
    )
    .map_err(anyhow::Error::msg)?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let id = format!("msg_bench{i}");
        let fired_at = clock.now();
        let firing = NewFiring {
            id: id.clone(),
            rule_id: "alr_bench".into(),
            owner: "bench".into(),
            fired_at,
            payload: format!("{{\"type\":\"alert.fired\",\"data\":{{\"id\":\"{id}\"}}}}"),
            endpoints: vec!["whe_bench".into()],
        };
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.record_firings(&[firing])).await??;
        wake.notify_one();
        let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .context("no delivery within 10 s")?
            .context("receiver gone")?;
        anyhow::ensure!(got == id, "got {got}, expected {id}");
        if i >= 20 {
            latencies.push(at - fired_at); // the first 20 warm the connection and the caches
        }
    }
    shutdown.cancel();
    let _ = task.await;
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort_unstable();
    let q = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0
    };
    println!(
        "firing to webhook on loopback ({n} deliveries, one at a time, SQLite outbox in {}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        std::env::temp_dir().display(),
        q(0.50),
        q(0.99),
        q(1.0)
    );
    Ok(())
}
