//! `tickgate bench auth`: the cost of authenticating a bearer request, and REST throughput
//! anonymous vs with a bearer key, an hmac-signed and an ed25519-signed request, measured side
//! by side in one run (see docs/benchmarks.md (Authentication)). The REST comparison runs
//! against a gateway in this process and against a `tickgate serve` child process, whose CPU
//! time (and the load generator's) per request is read from `/proc`.

use anyhow::Context;
use auth::{AuthSettings, KeyIndex, Scope, token};
use clap::Args;
use httpsig::sign::{SigningKey, Unsigned};
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
    /// Authenticated modes compared with anonymous requests, comma-separated.
    #[arg(
        long,
        value_enum,
        default_value = "bearer,hmac,ed25519",
        value_delimiter = ','
    )]
    modes: Vec<AuthMode>,
    /// Sign each request as it is sent instead of before the run (adds the client's signing
    /// cost to the run, as a real client would pay it).
    #[arg(long)]
    sign_during_run: bool,
    /// The route hammered (a market route, so that the bearer phase is authenticated).
    #[arg(long, default_value = "/v1/ticker?venue=sim&symbol=BTC-USDT")]
    path: String,
    /// Where the gateway of the REST comparison runs: in this process (clients and server
    /// share one process), in a `tickgate serve` child (the load generator is a separate
    /// process; CPU per request is reported for each), or both in turn.
    #[arg(long, value_enum, default_value = "both")]
    server: ServerPlace,
    /// The `tickgate` executable the child server runs (default: this one), to measure a
    /// previous build with the same load generator.
    #[arg(long)]
    server_exe: Option<std::path::PathBuf>,
}

/// Where the gateway of the REST comparison runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ServerPlace {
    InProcess,
    Child,
    Both,
}

/// An authenticated mode of the REST comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthMode {
    Bearer,
    Hmac,
    Ed25519,
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
    // The anomaly detectors as the server runs them on every authentication (default
    // settings; every key tracked, one address).
    let detector = auth::anomaly::AnomalyDetector::new(Default::default());
    let ids: Vec<String> = (0..args.keys.max(1))
        .map(|i| format!("key_bench{i}"))
        .collect();
    let ids = &ids;
    let detector = &detector;
    let observe = time(&|i| {
        black_box(detector.observe_success(&ids[i % ids.len()], false, addr, now + i as i64));
    });
    let unknown_rejection = auth::Rejection::new(protocol::ErrorCode::UnknownKey, "no such key");
    let observe_failure = time(&|i| {
        black_box(detector.observe_failure(&unknown_rejection, addr, now + i as i64));
    });
    // The network checks of Security II, as a request meets them: the blocked-address check
    // (no address blocked: one atomic load), the anonymous per-address limit (10,000
    // addresses, limits set too high to refuse), the Origin check of a browser upgrade, and
    // whether the TCP peer is a trusted proxy.
    let anomalies = server::auth::anomaly::Anomalies::new(Default::default());
    let anomalies = &anomalies;
    let blocked = time(&|i| {
        black_box(anomalies.check_blocked(addr, now + i as i64).is_ok());
    });
    let limiter = server::per_ip::AnonymousLimiter::new(server::config::AnonymousLimits {
        requests_per_sec: 1_000_000_000,
        burst: 1_000_000_000,
        ..Default::default()
    });
    let addrs: Vec<std::net::IpAddr> = (0..10_000u32)
        .map(|i| std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    let (limiter, addrs) = (&limiter, &addrs);
    let per_ip = time(&|i| {
        black_box(limiter.check_request(addrs[i % addrs.len()]).is_ok());
    });
    let origins = server::origin::AllowedOrigins::parse(&["https://app.example.com".into()])
        .map_err(anyhow::Error::msg)?;
    let origins = &origins;
    let origin = time(&|_| {
        black_box(origins.allows(
            black_box("https://app.example.com"),
            Some("gateway.example.com:8443"),
        ));
    });
    let proxies = server::forwarded::TrustedProxies::parse(&["10.0.0.0/8".into()])
        .map_err(anyhow::Error::msg)?;
    let proxies = &proxies;
    let trusted = time(&|i| {
        black_box(proxies.trusts(addrs[i % addrs.len()]));
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
        ("anomaly detectors, success      ", observe),
        ("anomaly detectors, IP failure   ", observe_failure),
        ("blocked-address check (none)    ", blocked),
        ("anonymous per-address limit     ", per_ip),
        ("Origin check (listed origin)    ", origin),
        ("trusted-proxy check             ", trusted),
    ] {
        println!("  {name} {min:7.0} / {median:7.0}");
    }
    println!(
        "  (full = parse + hash + lookup + constant-time compare + status + scope + GCRA + usage)"
    );
    Ok(())
}

/// The signature steps of a signed request alone (no key index, no nonce store), on
/// requests signed before: parsing `Signature-Input` and `Signature`, the scheme's policy,
/// the signature base, and the HMAC. 7 rounds, min / median ns.
fn signature_steps(n: usize) -> anyhow::Result<()> {
    let secret = [7u8; 32];
    let key = SigningKey::hmac(&secret);
    let request = Unsigned {
        method: "GET",
        authority: "127.0.0.1:8080",
        path: "/v1/ticker",
        query: Some("venue=sim&symbol=BTC-USDT"),
        body: b"",
    };
    let created = model::Timestamp::now().0.div_euclid(1_000_000);
    let headers: Vec<_> = (0..1024)
        .map(|i| {
            httpsig::sign::sign(
                &key,
                "key_0123456789abcdef",
                &request,
                created,
                &format!("n{i:022}"),
            )
        })
        .collect();
    let parts = httpsig::RequestParts {
        method: "GET",
        scheme: "http",
        authority: "127.0.0.1:8080",
        path: "/v1/ticker",
        query: Some("venue=sim&symbol=BTC-USDT"),
        headers: &[],
    };
    let time =
        |f: &dyn Fn(&httpsig::sign::SignatureHeaders) -> bool| -> anyhow::Result<(f64, f64)> {
            let per_round = (n / 7).max(1);
            let mut rounds = Vec::new();
            for _ in 0..7 {
                let start = Instant::now();
                for i in 0..per_round {
                    anyhow::ensure!(f(black_box(&headers[i % headers.len()])), "a step failed");
                }
                rounds.push(ns_per(start, per_round));
            }
            rounds.sort_by(f64::total_cmp);
            Ok((rounds[0], rounds[3]))
        };
    let parse = time(&|h| {
        httpsig::Signed::parse(&h.signature_input, &h.signature)
            .map(|s| black_box(s).signature.len() == 32)
            .unwrap_or(false)
    })?;
    let full = time(&|h| {
        let Ok(signed) = httpsig::Signed::parse(&h.signature_input, &h.signature) else {
            return false;
        };
        signed.check_policy(&parts, false).is_ok()
            && signed.base(&parts).is_ok_and(|base| {
                httpsig::verify_hmac_sha256(&secret, base.as_bytes(), &signed.signature)
            })
    })?;
    println!(
        "hmac signature steps alone, {n} requests signed before, 7 rounds, 1 thread (min / median ns):"
    );
    println!(
        "  parse Signature-Input + Signature   {:7.0} / {:7.0}",
        parse.0, parse.1
    );
    println!(
        "  + policy + base + HMAC-SHA256      {:7.0} / {:7.0}",
        full.0, full.1
    );
    Ok(())
}

/// What each request of a phase carries.
#[derive(Clone)]
enum Mode {
    Anonymous,
    /// The same `Authorization: Bearer` header on every request.
    Bearer(reqwest::header::HeaderValue),
    /// RFC 9421 signatures made before the phase (one per request: each nonce is accepted
    /// once), so the phase times the server's verification, not the client's signing.
    Signed(Arc<SigningKey>, String),
}

/// Pre-signed `Signature-Input`/`Signature` pairs for `n` requests to `url`.
fn presign(
    key: &SigningKey,
    key_id: &str,
    url: &str,
    n: usize,
) -> anyhow::Result<Vec<[String; 2]>> {
    let url = reqwest::Url::parse(url)?;
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let request = Unsigned {
        method: "GET",
        authority: &authority,
        path: url.path(),
        query: url.query(),
        body: b"",
    };
    let created = model::Timestamp::now().0.div_euclid(1_000_000);
    let prefix = httpsig::sign::random_nonce()?;
    Ok((0..n)
        .map(|i| {
            let h = httpsig::sign::sign(key, key_id, &request, created, &format!("{prefix}{i}"));
            [h.signature_input, h.signature]
        })
        .collect())
}

/// Requests per second over `secs` with `clients` concurrent clients, each on its own
/// connection. `budget` bounds the signatures made per client for a signed phase.
async fn hammer(
    url: &str,
    mode: &Mode,
    clients: usize,
    secs: u64,
    budget: usize,
) -> anyhow::Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut pools = Vec::new();
    for _ in 0..clients {
        pools.push(match mode {
            Mode::Signed(key, id) => presign(key, id, url, budget)?,
            _ => Vec::new(),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    for pool in pools {
        let (count, failed, late, url, mode) = (
            count.clone(),
            failed.clone(),
            late.clone(),
            url.to_string(),
            mode.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut pool = pool.into_iter();
            while Instant::now() < deadline {
                let mut request = client.get(&url);
                match &mode {
                    Mode::Anonymous => {}
                    Mode::Bearer(header) => {
                        request = request.header(reqwest::header::AUTHORIZATION, header.clone());
                    }
                    Mode::Signed(key, id) => {
                        // Past the pre-signed pool, sign here (counted: it adds client work
                        // to the run; the report says how many).
                        let [input, signature] = match pool.next() {
                            Some(pair) => pair,
                            None => {
                                late.fetch_add(1, Ordering::Relaxed);
                                match presign(key, id, &url, 1) {
                                    Ok(mut one) => one.remove(0),
                                    Err(_) => break,
                                }
                            }
                        };
                        request = request
                            .header("signature-input", input)
                            .header("signature", signature);
                    }
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("warning: a request failed: {status} {body}");
                        }
                    }
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("warning: a request failed: {e}");
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let failed = failed.load(Ordering::Relaxed);
    anyhow::ensure!(
        failed == 0,
        "{failed} requests failed: the figures would be wrong"
    );
    let late = late.load(Ordering::Relaxed);
    if late > 0 && budget > 0 {
        eprintln!("note: {late} requests were signed during the run (the pool ran out)");
    }
    Ok(count.load(Ordering::Relaxed) as f64 / secs as f64)
}

/// One mode's runs: requests per second, and when the server is a child process, the
/// server's and the load generator's CPU time per request (µs).
#[derive(Debug, Default)]
struct Runs {
    rates: Vec<f64>,
    server_us: Vec<f64>,
    client_us: Vec<f64>,
}

impl Runs {
    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }
}

/// One run of `hammer`, with the CPU time of `server` (a child's pid) and of this process.
async fn measured(
    url: &str,
    mode: &Mode,
    args: &BenchAuthArgs,
    budget: usize,
    server: Option<u32>,
    runs: &mut Runs,
) -> anyhow::Result<()> {
    let cpu = |pid: Option<u32>| pid.and_then(super::child::cpu_secs);
    let (server0, client0) = (cpu(server), cpu(Some(std::process::id())));
    let rate = hammer(url, mode, args.clients, args.secs, budget).await?;
    let (server1, client1) = (cpu(server), cpu(Some(std::process::id())));
    let requests = (rate * args.secs as f64).max(1.0);
    runs.rates.push(rate);
    if let (Some(a), Some(b), Some(c), Some(d)) = (server0, server1, client0, client1) {
        runs.server_us.push((b - a) * 1e6 / requests);
        runs.client_us.push((d - c) * 1e6 / requests);
    }
    Ok(())
}

/// Runs the baseline and `mode` in the order A B B A, twice, and returns the runs of each.
async fn compare(
    url: &str,
    mode: &Mode,
    args: &BenchAuthArgs,
    budget: usize,
    server: Option<u32>,
) -> anyhow::Result<(Runs, Runs)> {
    let (mut anon, mut authed) = (Runs::default(), Runs::default());
    let base = Mode::Anonymous;
    for _ in 0..2 {
        measured(url, &base, args, budget, server, &mut anon).await?;
        measured(url, mode, args, budget, server, &mut authed).await?;
        measured(url, mode, args, budget, server, &mut authed).await?;
        measured(url, &base, args, budget, server, &mut anon).await?;
    }
    Ok((anon, authed))
}

fn report(title: &str, label: &str, anon: &Runs, authed: &Runs) {
    let mean = Runs::mean;
    let runs = |v: &[f64]| v.iter().map(|x| x.round() as u64).collect::<Vec<_>>();
    println!("{title}");
    for (name, r) in [("anonymous", anon), (label, authed)] {
        print!(
            "  {name:<13} {:>9.0} req/s  runs {:?}",
            mean(&r.rates),
            runs(&r.rates)
        );
        if !r.server_us.is_empty() {
            print!(
                "  cpu per request: server {:.1} us, load generator {:.1} us",
                mean(&r.server_us),
                mean(&r.client_us)
            );
        }
        println!();
    }
    println!(
        "  ratio         {:>9.1} %",
        100.0 * mean(&authed.rates) / mean(&anon.rates)
    );
}

/// 64 hex digits of a fresh master key (hmac secrets are sealed under it).
fn master_hex() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The server's own cost per request, without sockets or a client: the gateway's router
/// called in process on requests built beforehand, each mode in turn, 7 rounds.
async fn in_process(
    gateway: &server::Gateway,
    path: &str,
    modes: &[(&str, Mode)],
) -> anyhow::Result<()> {
    use tower::ServiceExt;
    const HOST: &str = "bench.local";
    let n = 20_000;
    let router = server::gateway::router(gateway.state().clone());
    let url = format!("http://{HOST}{path}");
    let build = |mode: &Mode| -> anyhow::Result<Vec<axum::http::Request<axum::body::Body>>> {
        let pool = match mode {
            Mode::Signed(key, id) => presign(key, id, &url, n)?,
            _ => Vec::new(),
        };
        let mut pool = pool.into_iter();
        (0..n)
            .map(|_| {
                // A client address, as the accept loop sets it, so the per-address checks run.
                let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
                let mut r = axum::http::Request::get(path)
                    .header("host", HOST)
                    .extension(axum::extract::ConnectInfo(peer));
                match mode {
                    Mode::Anonymous => {}
                    Mode::Bearer(h) => r = r.header("authorization", h.clone()),
                    Mode::Signed(..) => {
                        let [input, signature] = pool.next().context("pool")?;
                        r = r
                            .header("signature-input", input)
                            .header("signature", signature);
                    }
                }
                Ok(r.body(axum::body::Body::empty())?)
            })
            .collect()
    };
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..7 {
        for (i, (_, mode)) in modes.iter().enumerate() {
            let requests = build(mode)?;
            let start = Instant::now();
            for request in requests {
                let response = router.clone().oneshot(request).await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "in-process request refused: {}",
                    response.status()
                );
                let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            }
            rounds[i].push(start.elapsed().as_nanos() as f64 / n as f64 / 1000.0);
        }
    }
    println!(
        "server cost per request, GET {path} through the router in process (no sockets, no client), {n} requests x 7 rounds (min / median us):"
    );
    for ((name, _), mut r) in modes.iter().zip(rounds) {
        r.sort_by(f64::total_cmp);
        println!("  {name:<14} {:6.2} / {:6.2}", r[0], r[3]);
    }
    Ok(())
}

async fn throughput(args: &BenchAuthArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("tickgate-bench-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let master_file = dir.join("master.key");
    std::fs::write(&master_file, master_hex()?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&master_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let mut config = server::Config::default();
    config.server.listen = "127.0.0.1:0".parse()?;
    config.server.data_dir = dir.clone();
    config.log.level = "warn".into();
    config.auth.master_key_file = Some(master_file.clone());
    // The in-process rounds sign 140,000 requests with one key within the replay window:
    // more than a key's default share of the nonce store (100,000), which would refuse them.
    config.auth.nonce_capacity_per_key = config.auth.nonce_capacity;
    // The anonymous phase comes from one address: its per-address limit is checked on every
    // request (its cost is part of the figure) but set too high to refuse any.
    config.server.anonymous.requests_per_sec = 10_000_000;
    config.server.anonymous.burst = 10_000_000;
    let store = store::keys_sqlite::SqliteKeyStore::open_dir(&dir)?;
    let master = auth::MasterKey::from_hex(&std::fs::read_to_string(&master_file)?, "bench")?;
    let service = auth::KeyService::new(
        Arc::new(store.clone()),
        Arc::new(store.audit_log()),
        auth::KeyRing::new(Some(master), Vec::new()),
        Environment::Test,
    );
    let unlimited = Some(RateLimit {
        per_sec: 1_000_000,
        burst: 1_000_000,
    });
    let create = |kind: KeyKind, pem: Option<String>| {
        service.create(
            auth::NewKey {
                name: format!("bench-{kind:?}").to_lowercase(),
                scopes: vec!["market:read".into()],
                kind: Some(kind),
                public_key_pem: pem,
                rate_limit: unlimited,
                ..Default::default()
            },
            "bench",
            model::Timestamp::now().0,
        )
    };
    let bearer = create(KeyKind::Bearer, None)?;
    let token = bearer.secret.context("bearer token")?;
    let hmac = create(KeyKind::Hmac, None)?;
    let hmac_key = SigningKey::hmac(hmac.secret.context("hmac secret")?.expose().as_bytes());
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let ed_key = SigningKey::ed25519(&seed);
    let ed = create(
        KeyKind::Ed25519,
        Some(httpsig::pem::ed25519_public_pem(&seed)),
    )?;

    let gateway = server::Gateway::start(config).await?;
    let header = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))?;
    let when = if args.sign_during_run {
        "each request signed as it is sent"
    } else {
        "signatures made before each run"
    };
    let phases = [
        (
            AuthMode::Bearer,
            "bearer key".to_string(),
            "bearer key",
            Mode::Bearer(header.clone()),
        ),
        (
            AuthMode::Hmac,
            format!("hmac-sha256 signed ({when})"),
            "hmac signed",
            Mode::Signed(Arc::new(hmac_key), hmac.record.id.clone()),
        ),
        (
            AuthMode::Ed25519,
            format!("ed25519 signed ({when})"),
            "ed25519 signed",
            Mode::Signed(Arc::new(ed_key), ed.record.id.clone()),
        ),
    ];
    let selected: Vec<Phase<'_>> = phases
        .iter()
        .filter(|(m, ..)| args.modes.contains(m))
        .map(|(_, what, label, mode)| (what.as_str(), *label, mode))
        .collect();
    let mut modes = vec![("anonymous", Mode::Anonymous)];
    modes.extend(
        selected
            .iter()
            .map(|(_, label, mode)| (*label, (*mode).clone())),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    in_process(&gateway, &args.path, &modes).await?;
    if args.server != ServerPlace::Child {
        let base = format!("http://{}", gateway.local_addr());
        comparisons(
            &base,
            args,
            &selected,
            None,
            "client and server in one process",
        )
        .await?;
    }
    gateway.stop().await?;
    if args.server != ServerPlace::InProcess {
        // The same data directory (keys, master key) served by a `tickgate serve` child: the
        // load generator is this process, and each side's CPU time is read from /proc.
        let child = super::child::Target::spawn(&super::child::ServeOptions {
            data_dir: Some(dir.clone()),
            exe: args.server_exe.clone(),
            env: vec![
                (
                    "TICKGATE_AUTH__MASTER_KEY_FILE".into(),
                    master_file.display().to_string(),
                ),
                // As in process: every signed request of the run fits one key's share.
                (
                    "TICKGATE_AUTH__NONCE_CAPACITY_PER_KEY".into(),
                    server::Config::default().auth.nonce_capacity.to_string(),
                ),
            ],
            ..Default::default()
        })?;
        let base = format!("http://{}", child.addr);
        comparisons(
            &base,
            args,
            &selected,
            child.pid,
            "load generator in this process, server a `tickgate serve` child process",
        )
        .await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// An authenticated phase: its title, its label and what its requests carry.
type Phase<'a> = (&'a str, &'a str, &'a Mode);

/// Each phase against anonymous requests on the gateway at `base`, then its control.
async fn comparisons(
    base: &str,
    args: &BenchAuthArgs,
    phases: &[Phase<'_>],
    server: Option<u32>,
    place: &str,
) -> anyhow::Result<()> {
    let url = format!("{base}{}", args.path);
    // Warm-up, and the per-client signature budget: 1.5x the anonymous rate (a signed run is
    // never faster than an anonymous one; past the budget a client signs as it goes). A larger
    // pool only adds memory churn that slows every run.
    let warm = hammer(&url, &Mode::Anonymous, args.clients, 1, 0).await?;
    let budget = if args.sign_during_run {
        0
    } else {
        ((warm * args.secs as f64 * 1.5) as usize / args.clients.max(1)).max(100)
    };
    for (what, label, mode) in phases {
        let (anon, authed) = compare(&url, mode, args, budget, server).await?;
        report(
            &format!(
                "REST GET {}, {} clients, {} s per run, order A B B A twice, {place}, {what}:",
                args.path, args.clients, args.secs
            ),
            label,
            &anon,
            &authed,
        );
        // Control: the same headers on an unauthenticated route measure the client's and the
        // HTTP stack's share of the difference (the server does not look at them there).
        let (anon, authed) =
            compare(&format!("{base}/healthz"), mode, args, budget, server).await?;
        report(
            "  control, GET /healthz with the same headers (not authenticated; only carried):",
            label,
            &anon,
            &authed,
        );
    }
    Ok(())
}

pub fn run(args: BenchAuthArgs) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; run `cargo run --release -- bench auth` for real figures"
        );
    }
    verification(&args)?;
    signature_steps(args.iterations.clamp(7, 700_000))?;
    if args.secs > 0 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(throughput(&args))?;
    }
    Ok(ExitCode::SUCCESS)
}
