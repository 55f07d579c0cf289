//! `tickgate bench auth`: the cost of authenticating a bearer request, and REST throughput with
//! and without auth, measured side by side in one run (see docs/benchmarks.md (Authentication)).

use anyhow::Context;
use auth::{AuthSettings, KeyIndex, Scope, token};
use clap::Args;
use std::collections::HashMap;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::keys::{Environment, KeyKind, KeyRecord, KeyStatus, RateLimit};

#[derive(Debug, Args)]
pub struct BenchAuthArgs {
    /// Keys in the index.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Verifications timed.
    #[arg(long, default_value_t = 1_000_000)]
    iterations: usize,
    /// Seconds per REST throughput phase (0: skip the REST part).
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// The route hammered (a market route, so that the bearer phase is authenticated).
    #[arg(long, default_value = "/v1/ticker?venue=sim&symbol=BTC-USDT")]
    path: String,
}

fn record(i: usize, hash: [u8; 32]) -> KeyRecord {
    KeyRecord {
        id: format!("key_bench{i}"),
        principal: "bench".into(),
        kind: KeyKind::Bearer,
        environment: Environment::Test,
        name: "bench".into(),
        scopes: vec!["market:read".into()],
        status: KeyStatus::Active,
        grace_until: None,
        version: 1,
        replaces: None,
        replaced_by: None,
        metadata: serde_json::json!({}),
        created_at: 0,
        created_by: "bench".into(),
        expires_at: None,
        revoked_at: None,
        revoked_reason: None,
        token_hash: Some(hash),
        public_key: None,
        sealed: None,
        rate_limit: None,
        max_age_secs: None,
        rotated_at: None,
        last_used_at: None,
        last_used_addr: None,
        rev: 1,
    }
}

fn ns_per(start: Instant, n: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / n as f64
}

fn verification(args: &BenchAuthArgs) -> anyhow::Result<()> {
    let unlimited = RateLimit {
        per_sec: u32::MAX,
        burst: u32::MAX,
    };
    let index = KeyIndex::new(AuthSettings {
        environment: Environment::Test,
        default_rate: unlimited,
        principal_rates: HashMap::new(),
        scope_rates: HashMap::new(),
        failure_burst: u64::MAX,
    });
    let mut tokens = Vec::with_capacity(args.keys);
    for i in 0..args.keys.max(1) {
        let t = token::generate(Environment::Test)?;
        index.upsert(&record(i, auth::token_hash(t.expose())));
        tokens.push(t);
    }
    let n = args.iterations.max(1);
    let addr = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    let now = model::Timestamp::now().0;
    let bad = token::generate(Environment::Test)?;
    let tokens = &tokens;
    let index = &index;
    // Each measurement runs in 7 rounds of n/7 iterations; min and median per operation are
    // reported (the minimum is the least disturbed by other load on the machine).
    let time = |f: &dyn Fn(usize)| {
        let per_round = (n / 7).max(1);
        let mut rounds: Vec<f64> = (0..7)
            .map(|_| {
                let start = Instant::now();
                for i in 0..per_round {
                    f(i);
                }
                ns_per(start, per_round)
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        (rounds[0], rounds[3])
    };
    let parse = time(&|i| {
        black_box(token::parse(black_box(tokens[i % tokens.len()].expose())).is_ok());
    });
    let hash = time(&|i| {
        black_box(auth::token_hash(black_box(
            tokens[i % tokens.len()].expose(),
        )));
    });
    let full = time(&|i| {
        let t = tokens[i % tokens.len()].expose();
        black_box(
            index
                .authenticate_bearer(t, Some(Scope::MarketRead), addr, now)
                .is_ok(),
        );
    });
    let unknown = time(&|_| {
        black_box(
            index
                .authenticate_bearer(bad.expose(), Some(Scope::MarketRead), addr, now)
                .is_err(),
        );
    });
    println!(
        "bearer verification, {} keys in the index, {n} iterations in 7 rounds, 1 thread (min / median ns):",
        args.keys
    );
    for (name, (min, median)) in [
        ("checksum check (parse)          ", parse),
        ("SHA-256 of the token            ", hash),
        ("full authenticate_bearer (valid)", full),
        ("unknown key (rejected)          ", unknown),
    ] {
        println!("  {name} {min:7.0} / {median:7.0}");
    }
    println!(
        "  (full = parse + hash + lookup + constant-time compare + status + scope + GCRA + usage)"
    );
    Ok(())
}

async fn hammer(url: &str, token: Option<&str>, clients: usize, secs: u64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    // The header value is built once, so the client does the same work in both modes.
    let header =
        token.and_then(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).ok());
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (count, url, header) = (count.clone(), url.to_string(), header.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while Instant::now() < deadline {
                let mut request = client.get(&url);
                if let Some(header) = &header {
                    request = request.header(reqwest::header::AUTHORIZATION, header.clone());
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    count.load(Ordering::Relaxed) as f64 / secs as f64
}

/// Runs the two modes in the order A B B A, twice, and returns the runs of each.
async fn compare(url: &str, token: &str, args: &BenchAuthArgs) -> (Vec<f64>, Vec<f64>) {
    let (mut anon, mut authed) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        anon.push(hammer(url, None, args.clients, args.secs).await);
        authed.push(hammer(url, Some(token), args.clients, args.secs).await);
        authed.push(hammer(url, Some(token), args.clients, args.secs).await);
        anon.push(hammer(url, None, args.clients, args.secs).await);
    }
    (anon, authed)
}

fn report(title: &str, anon: &[f64], authed: &[f64]) {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let runs = |v: &[f64]| v.iter().map(|x| x.round() as u64).collect::<Vec<_>>();
    println!("{title}");
    println!(
        "  anonymous     {:>9.0} req/s  runs {:?}",
        mean(anon),
        runs(anon)
    );
    println!(
        "  bearer key    {:>9.0} req/s  runs {:?}",
        mean(authed),
        runs(authed)
    );
    println!(
        "  ratio         {:>9.1} %",
        100.0 * mean(authed) / mean(anon)
    );
}

async fn throughput(args: &BenchAuthArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("tickgate-bench-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = server::Config::default();
    config.server.listen = "127.0.0.1:0".parse()?;
    config.server.data_dir = dir.clone();
    config.log.level = "warn".into();
    let store = store::keys_sqlite::SqliteKeyStore::open_dir(&dir)?;
    let service = auth::KeyService::new(
        Arc::new(store.clone()),
        Arc::new(store.audit_log()),
        auth::KeyRing::default(),
        Environment::Test,
    );
    let issued = service.create(
        auth::NewKey {
            name: "bench".into(),
            scopes: vec!["market:read".into()],
            rate_limit: Some(RateLimit {
                per_sec: 1_000_000,
                burst: 1_000_000,
            }),
            ..Default::default()
        },
        "bench",
        model::Timestamp::now().0,
    )?;
    let token = issued.secret.context("bearer token")?;
    let gateway = server::Gateway::start(config).await?;
    let base = format!("http://{}", gateway.local_addr());
    tokio::time::sleep(Duration::from_millis(500)).await;
    hammer(&format!("{base}{}", args.path), None, args.clients, 1).await;
    let title = format!(
        "REST GET {}, {} clients, {} s per run, order A B B A twice, client and server in one process:",
        args.path, args.clients, args.secs
    );
    let (anon, authed) = compare(&format!("{base}{}", args.path), token.expose(), args).await;
    report(&title, &anon, &authed);
    // Control: the same header on an unauthenticated route measures the client's and HTTP
    // stack's share of the difference.
    let (anon, authed) = compare(&format!("{base}/healthz"), token.expose(), args).await;
    report(
        "control, GET /healthz (not authenticated; the header is only carried):",
        &anon,
        &authed,
    );
    gateway.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub fn run(args: BenchAuthArgs) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; run `cargo run --release -- bench auth` for real figures"
        );
    }
    verification(&args)?;
    if args.secs > 0 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(throughput(&args))?;
    }
    Ok(ExitCode::SUCCESS)
}
