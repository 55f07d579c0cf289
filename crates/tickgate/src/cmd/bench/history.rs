//! `tickgate bench history`: sustained trade ingest into the history store, by batch size and
//! through the production writer, and the latency of a 1-day query of 1-minute candles, from
//! the store and end to end over REST. With `--postgres-url` the same workload runs on the
//! PostgreSQL store too, in the same run (fresh schemas, dropped afterwards). See
//! docs/benchmarks.md (History store).

use anyhow::{Context, bail};
use clap::Args;
use model::{Candle, Decimal, Interval, Side, Symbol, Timestamp, Trade, Venue};
use server::{Config, Gateway};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use store::history_postgres::PgHistory;
use store::{
    CandleQuery, HISTORY_DB_FILE, HistoryBatch, HistoryConfig, HistoryStore, HistoryWriter, Order,
    Record, SqliteHistory, WriterSettings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Args)]
pub struct HistoryBenchArgs {
    /// Trades written per batch-size run.
    #[arg(long, default_value_t = 1_000_000)]
    trades: usize,
    /// Rows per transaction to compare; the first is run with --baseline-trades.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,10000")]
    batch_sizes: Vec<usize>,
    /// Trades for the first (baseline, one row per transaction) batch size.
    #[arg(long, default_value_t = 20_000)]
    baseline_trades: usize,
    /// Days of 1-minute candles stored before timing 1-day queries.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// 1-day queries timed, from the store and over REST each.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Scratch directory (default: under the system temp dir); removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also run every step on PostgreSQL (`postgres://user@host:port/db`), beside SQLite.
    /// Each step works in a fresh schema `tg_bench_<pid>_<step>`, dropped afterwards.
    #[arg(long)]
    postgres_url: Option<String>,
}

/// Where a step's store lives.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite,
    Postgres(String),
}

/// A store opened for one step, and what it needs to be measured and cleaned up.
struct Opened {
    store: Arc<dyn HistoryStore>,
    dir: PathBuf,
    schema: Option<String>,
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }

    fn open(&self, root: &Path, step: &str) -> anyhow::Result<Opened> {
        let dir = fresh_dir(root, &format!("{step}-{}", self.name()))?;
        match self {
            Self::Sqlite => Ok(Opened {
                store: Arc::new(SqliteHistory::open_in(&dir)?),
                dir,
                schema: None,
            }),
            Self::Postgres(url) => {
                let schema = format!("tg_bench_{}_{step}", std::process::id());
                drop_schema(url, &schema)?;
                let store = PgHistory::open(url, &schema)
                    .context("--postgres-url: cannot open the history store")?;
                Ok(Opened {
                    store: Arc::new(store),
                    dir,
                    schema: Some(schema),
                })
            }
        }
    }

    /// Bytes the step's data takes: the SQLite file once its WAL is checkpointed (the store
    /// must be dropped first), or the tables and indexes of the Postgres schema.
    fn bytes(&self, opened: Opened) -> anyhow::Result<u64> {
        match self {
            Self::Sqlite => {
                let Opened { store, dir, .. } = opened;
                drop(store); // checkpoints the WAL into the database file
                Ok(std::fs::metadata(dir.join(HISTORY_DB_FILE))?.len())
            }
            Self::Postgres(url) => {
                let bytes = opened.store.disk_usage()?.total_bytes;
                drop(opened.store);
                if let Some(schema) = &opened.schema {
                    drop_schema(url, schema)?;
                }
                Ok(bytes)
            }
        }
    }
}

fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| anyhow::anyhow!("--postgres-url: {e}"))?;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .map_err(|e| anyhow::anyhow!("dropping schema {schema}: {e}"))?;
    Ok(())
}

fn backends(args: &HistoryBenchArgs) -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    if let Some(url) = &args.postgres_url {
        out.push(Backend::Postgres(url.clone()));
    }
    out
}

const SYMBOLS: [&str; 3] = ["BTC-USDT", "ETH-USDT", "SOL-USDT"];
const DAY: i64 = 86_400 * Timestamp::MICROS_PER_SECOND;

pub fn run(args: HistoryBenchArgs) -> anyhow::Result<ExitCode> {
    let root = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tickgate-bench-history-{}", std::process::id()))
    });
    let result = bench(&args, &root);
    let _ = std::fs::remove_dir_all(&root);
    result.map(|()| ExitCode::SUCCESS)
}

fn fresh_dir(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Venue-like trades: three symbols interleaved, increasing times, 6–8 significant digits.
struct TradeGen {
    venue: Venue,
    symbols: Vec<Symbol>,
    n: u64,
    ts: i64,
}

impl TradeGen {
    fn new() -> Self {
        Self {
            venue: Venue::new("sim").unwrap_or_else(|_| unreachable!("valid venue")),
            symbols: SYMBOLS.iter().filter_map(|s| Symbol::new(s).ok()).collect(),
            n: 0,
            ts: Timestamp::now().0 - DAY,
        }
    }

    /// One batch of `rows` trades, grouped per symbol as the ingest stage hands them over.
    fn batch(&mut self, rows: usize) -> HistoryBatch {
        let mut per_symbol: Vec<Vec<Trade>> = vec![Vec::new(); self.symbols.len()];
        for _ in 0..rows {
            self.n += 1;
            self.ts += 37;
            let i = (self.n % self.symbols.len() as u64) as usize;
            let ticks = 6_712_345 + (self.n * 7919 % 2000) as i64;
            per_symbol[i].push(Trade {
                id: (1_000_000_000 + self.n).to_string(),
                price: Decimal::new(ticks, 2),
                size: Decimal::new(((self.n * 104_729) % 500_000 + 1) as i64, 8),
                side: if self.n.is_multiple_of(2) {
                    Side::Buy
                } else {
                    Side::Sell
                },
                exchange_ts: Timestamp(self.ts),
                recv_ts: Timestamp(self.ts + 150),
            });
        }
        let records = per_symbol
            .into_iter()
            .zip(&self.symbols)
            .filter(|(t, _)| !t.is_empty())
            .map(|(trades, symbol)| Record::Trades {
                venue: self.venue.clone(),
                symbol: symbol.clone(),
                trades,
            })
            .collect();
        HistoryBatch { records }
    }
}

fn bench(args: &HistoryBenchArgs, root: &Path) -> anyhow::Result<()> {
    println!("# tickgate bench history");
    println!(
        "{} logical CPUs; {} trades per batch-size run",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.trades
    );
    println!();
    println!(
        "## Trades written, one store.append per batch (SQLite WAL, synchronous=NORMAL; \
         PostgreSQL one multi-row INSERT per 10,000 rows)"
    );
    println!();
    println!(
        "| store | rows per transaction | trades | seconds | trades/s | bytes per 1M trades |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for backend in backends(args) {
        for (i, &batch) in args.batch_sizes.iter().enumerate() {
            let total = if i == 0 {
                args.baseline_trades
            } else {
                args.trades
            };
            let opened = backend.open(root, &format!("ingest_{batch}"))?;
            let mut trades_gen = TradeGen::new();
            let mut spent = Duration::ZERO;
            let mut written = 0;
            while written < total {
                let rows = batch.min(total - written);
                let b = trades_gen.batch(rows);
                let t = Instant::now();
                opened.store.append(&b)?;
                spent += t.elapsed();
                written += rows;
            }
            let bytes = backend.bytes(opened)?;
            println!(
                "| {} | {batch} | {total} | {:.2} | {:.0} | {:.1} MB |",
                backend.name(),
                spent.as_secs_f64(),
                total as f64 / spent.as_secs_f64(),
                bytes as f64 * 1e6 / total as f64 / 1e6
            );
        }
    }
    println!();
    println!("## Through the writer (bounded queue + writer thread, default [history] settings)");
    println!();
    println!("| store | trades | seconds | trades/s | batches | dropped |");
    println!("|---|---:|---:|---:|---:|---:|");
    for backend in backends(args) {
        writer_throughput(args, root, &backend)?;
    }
    println!();
    println!(
        "## 1-day range of 1-minute candles (1,440 rows), {} days × 3 symbols stored",
        args.days
    );
    println!();
    println!("| store | path | queries | p50 ms | p99 ms | max ms | bytes per candle |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for backend in backends(args) {
        candle_queries(args, root, &backend)?;
    }
    Ok(())
}

/// The production path: ingest-sized records (100 trades) through the bounded queue and the
/// writer thread at the default settings; the producer waits for room, so nothing is dropped
/// and the figure is the writer's sustained rate.
fn writer_throughput(
    args: &HistoryBenchArgs,
    root: &Path,
    backend: &Backend,
) -> anyhow::Result<()> {
    let opened = backend.open(root, "writer")?;
    let store = opened.store.clone();
    let config = HistoryConfig::default();
    let filter = config
        .validate()
        .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
    let writer = HistoryWriter::start(store, filter, WriterSettings::from(&config))?;
    let (sink, stats) = (writer.sink(), writer.stats().clone());
    let capacity = config.queue_rows as u64;
    let mut trades_gen = TradeGen::new();
    let started = Instant::now();
    let mut offered = 0;
    while offered < args.trades {
        while stats.queued_rows.load(Ordering::Relaxed) + 100 > capacity {
            std::thread::sleep(Duration::from_micros(200));
        }
        for record in trades_gen.batch(100).records {
            if let Record::Trades {
                venue,
                symbol,
                trades,
            } = record
            {
                sink.record_trades(&venue, &symbol, trades);
            }
        }
        offered += 100;
    }
    writer.close();
    let spent = started.elapsed().as_secs_f64();
    println!(
        "| {} | {offered} | {spent:.2} | {:.0} | {} | {} |",
        backend.name(),
        stats.written_total() as f64 / spent,
        stats.batches.load(Ordering::Relaxed),
        stats.dropped_total()
    );
    backend.bytes(opened)?;
    Ok(())
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    format!("{:.2} | {:.2} | {:.2}", at(0.5), at(0.99), at(1.0))
}

fn candle_queries(args: &HistoryBenchArgs, root: &Path, backend: &Backend) -> anyhow::Result<()> {
    let opened = backend.open(root, "candles")?;
    let store = opened.store.clone();
    let venue = Venue::new("sim")?;
    let first_day = Interval::D1.bucket_start(Timestamp::now()).0 - args.days * DAY;
    let minute = Interval::M1.micros();
    for symbol in SYMBOLS {
        let symbol = Symbol::new(symbol)?;
        for day in 0..args.days {
            let records = (0..1440)
                .map(|m| {
                    let p = Decimal::new(6_700_000 + (day * 1440 + m) % 5000, 2);
                    Record::Candle {
                        venue: venue.clone(),
                        symbol: symbol.clone(),
                        candle: Box::new(Candle {
                            interval: Interval::M1,
                            start: Timestamp(first_day + day * DAY + m * minute),
                            open: p,
                            high: p + Decimal::ONE,
                            low: p - Decimal::ONE,
                            close: p,
                            volume: Decimal::new(123_456_789, 8),
                            trades: 42,
                            closed: true,
                            complete: true,
                        }),
                    }
                })
                .collect();
            store.append(&HistoryBatch { records })?;
        }
    }
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut day = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % args.days as u64) as i64
    };
    let mut samples = Vec::with_capacity(args.queries);
    for _ in 0..args.queries {
        let from = first_day + day() * DAY;
        let t = Instant::now();
        let page = store.candles(&CandleQuery {
            venue: venue.clone(),
            symbol: Symbol::new("BTC-USDT")?,
            interval: Interval::M1,
            from: Timestamp(from),
            to: Timestamp(from + DAY),
            order: Order::Asc,
            after: None,
            limit: 5000,
        })?;
        samples.push(t.elapsed());
        if page.rows.len() != 1440 {
            bail!(
                "a 1-day query returned {} candles, not 1440",
                page.rows.len()
            );
        }
    }
    drop(store);
    let stored = (args.days * 3 * 1440) as f64;
    let rest = rest_queries(args, &opened, backend, first_day, &mut day)?;
    let bytes = backend.bytes(opened)? as f64;
    println!(
        "| {} | HistoryStore::candles | {} | {} | {:.0} |",
        backend.name(),
        args.queries,
        percentiles(samples),
        bytes / stored
    );
    println!(
        "| {} | GET /v1/candles (HTTP keep-alive, JSON) | {} | {} | |",
        backend.name(),
        args.queries,
        percentiles(rest)
    );
    Ok(())
}

/// The same queries end to end: an in-process gateway on that data directory, one keep-alive
/// HTTP/1.1 connection.
fn rest_queries(
    args: &HistoryBenchArgs,
    opened: &Opened,
    backend: &Backend,
    first_day: i64,
    day: &mut impl FnMut() -> i64,
) -> anyhow::Result<Vec<Duration>> {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse()?;
    config.server.data_dir = opened.dir.clone();
    if let (Backend::Postgres(url), Some(schema)) = (backend, &opened.schema) {
        config.cluster.postgres_url = url.clone();
        config.cluster.postgres_schema = schema.clone();
    }
    config.venues[0].sim.rate = 1.0;
    config.log.level = "error".into();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let gateway = Gateway::start(config).await?;
        let mut stream = tokio::net::TcpStream::connect(gateway.local_addr()).await?;
        stream.set_nodelay(true)?;
        let mut samples = Vec::with_capacity(args.queries);
        let mut buf = Vec::with_capacity(1 << 20);
        for _ in 0..args.queries {
            let from = (first_day + day() * DAY) / 1000;
            let path = format!(
                "/v1/candles?venue=sim&symbol=BTC-USDT&interval=1m&from={from}&to={}&limit=5000",
                from + DAY / 1000
            );
            let t = Instant::now();
            let body = http_get(&mut stream, &path, &mut buf).await?;
            samples.push(t.elapsed());
            let page: protocol::CandlesPage = serde_json::from_slice(body)?;
            if page.candles.len() != 1440 {
                bail!("GET {path} returned {} candles", page.candles.len());
            }
        }
        gateway.stop().await?;
        Ok(samples)
    })
}

/// A minimal HTTP/1.1 GET on a kept-alive connection; returns the body (status must be 200).
async fn http_get<'b>(
    stream: &mut tokio::net::TcpStream,
    path: &str,
    buf: &'b mut Vec<u8>,
) -> anyhow::Result<&'b [u8]> {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .await?;
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .context("no content-length")?;
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(&buf[head_end..head_end + length])
}
