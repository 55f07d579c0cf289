//! `tickgate export`: writes a range of stored trades or candles as CSV or NDJSON, reading the
//! history store directly: `history.db` in the data directory (safe while the gateway runs:
//! SQLite WAL readers never block it), or the cluster's PostgreSQL when the configuration sets
//! `[cluster] postgres_url` (and `--data-dir` is not given).

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use model::{Symbol, Timestamp, Venue};
use protocol::{HistoryCandle, WireTrade};
use server::Config;
use server::time_param::parse_time;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use store::history_postgres::PgHistory;
use store::{
    CandleQuery, HISTORY_DB_FILE, HistoryKind, HistoryStore, Order, PerpQuery, SqliteHistory,
    TradeKey, TradeQuery,
};

/// Rows read per query.
const PAGE: usize = 10_000;
/// Exports at least this large show a progress bar (on a terminal).
const PROGRESS_FROM_ROWS: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Ndjson,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Venue, e.g. binance.
    #[arg(long)]
    venue: String,
    /// Normalized symbol, e.g. BTC-USDT.
    #[arg(long)]
    symbol: String,
    /// `trades`, `candles.<1s|1m|5m|15m|1h|1d>`, or a perpetual's `funding`, `oi` (open
    /// interest) or `liquidations`.
    #[arg(long)]
    kind: String,
    /// Range start, inclusive: RFC 3339 or epoch milliseconds (default: the oldest row).
    #[arg(long)]
    from: Option<String>,
    /// Range end, exclusive: RFC 3339 or epoch milliseconds (default: now).
    #[arg(long)]
    to: Option<String>,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Output file (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Data directory holding history.db (default: `server.data_dir` of the configuration).
    /// Given, it is read even when the configuration names a PostgreSQL store.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Configuration file, for its data directory or its `[cluster] postgres_url` (the
    /// cluster's shared history).
    #[arg(long, short, env = "TICKGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// A usage error: printed, exit code 2.
fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(2))
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let venue = match Venue::new(&args.venue) {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let symbol = match Symbol::new(&args.symbol) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let kind: HistoryKind = match args.kind.parse() {
        Ok(k) => k,
        Err(e) => return usage(e),
    };
    let time = |name, text: &Option<String>, default| match text {
        None => Ok(default),
        Some(t) => parse_time(name, t).map_err(|e| e.message().to_string()),
    };
    let (from, to) = match (
        time("--from", &args.from, Timestamp(0)),
        time("--to", &args.to, Timestamp::now()),
    ) {
        (Ok(from), Ok(to)) if from < to => (from, to),
        (Ok(_), Ok(_)) => return usage("--from must be before --to"),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let store: Box<dyn HistoryStore> = match args.data_dir.clone() {
        Some(dir) => match open_sqlite(&dir)? {
            Ok(store) => store,
            Err(message) => return usage(message),
        },
        None => {
            let config = match Config::load(args.config.as_deref()) {
                Ok(config) => config,
                Err(e) => return usage(e),
            };
            match config.cluster.postgres() {
                // The store's errors never contain the URL (it may carry a password).
                Some(url) => Box::new(
                    PgHistory::open(url, &config.cluster.postgres_schema).with_context(|| {
                        format!(
                            "opening the PostgreSQL history store (cluster.postgres_url, schema {})",
                            config.cluster.postgres_schema
                        )
                    })?,
                ),
                None => match open_sqlite(&config.server.data_dir)? {
                    Ok(store) => store,
                    Err(message) => return usage(message),
                },
            }
        }
    };
    let store = store.as_ref();
    let total = store.count(kind, &venue, &symbol, from, to)?;
    let progress = if total >= PROGRESS_FROM_ROWS {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} rows, {per_sec}, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let out: Box<dyn Write> = match &args.output {
        Some(file) => Box::new(
            std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let written = match kind {
        HistoryKind::Trades => export_trades(
            store,
            &mut out,
            args.format,
            &progress,
            TradeQuery {
                venue,
                symbol,
                from,
                to,
                order: Order::Asc,
                after: None,
                limit: PAGE,
            },
        )?,
        HistoryKind::Candles(interval) => export_candles(
            store,
            &mut out,
            args.format,
            &progress,
            CandleQuery {
                venue,
                symbol,
                interval,
                from,
                to,
                order: Order::Asc,
                after: None,
                limit: PAGE,
            },
        )?,
        HistoryKind::Liquidations => export_liquidations(
            store,
            &mut out,
            args.format,
            &progress,
            TradeQuery {
                venue,
                symbol,
                from,
                to,
                order: Order::Asc,
                after: None,
                limit: PAGE,
            },
        )?,
        HistoryKind::Funding | HistoryKind::OpenInterest => export_perp(
            store,
            &mut out,
            args.format,
            &progress,
            kind,
            PerpQuery {
                venue,
                symbol,
                from,
                to,
                order: Order::Asc,
                after: None,
                limit: PAGE,
            },
        )?,
    };
    out.flush().context("writing the export")?;
    progress.finish_and_clear();
    let target = args
        .output
        .as_ref()
        .map_or("standard output".into(), |p| p.display().to_string());
    eprintln!("exported {written} {kind} rows to {target}");
    Ok(ExitCode::SUCCESS)
}

/// `history.db` in `data_dir`; the inner error is a usage error (no such database).
fn open_sqlite(
    data_dir: &std::path::Path,
) -> anyhow::Result<Result<Box<dyn HistoryStore>, String>> {
    let path = data_dir.join(HISTORY_DB_FILE);
    if !path.is_file() {
        return Ok(Err(format!("no history database at {}", path.display())));
    }
    let store =
        SqliteHistory::open(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Ok(Box::new(store)))
}

/// A CSV field: quoted when it holds a comma, quote or line break.
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// Pages through a query to its end: `fetch` reads the page after a position (`None`: the
/// first), `write` writes one row. Returns the rows written.
fn drain<T, K>(
    progress: &ProgressBar,
    mut fetch: impl FnMut(Option<K>) -> Result<store::Page<T, K>, store::StoreError>,
    mut write: impl FnMut(&T) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let (mut after, mut written) = (None, 0);
    loop {
        let page = fetch(after.take())?;
        for row in &page.rows {
            write(row)?;
        }
        written += page.rows.len() as u64;
        progress.inc(page.rows.len() as u64);
        match page.next {
            Some(key) => after = Some(key),
            None => return Ok(written),
        }
    }
}

/// One NDJSON line.
fn json_line(out: &mut impl Write, row: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, row)?;
    writeln!(out)?;
    Ok(())
}

fn export_trades(
    store: &dyn HistoryStore,
    out: &mut impl Write,
    format: Format,
    progress: &ProgressBar,
    query: TradeQuery,
) -> anyhow::Result<u64> {
    if format == Format::Csv {
        writeln!(out, "id,price,size,side,ts")?;
    }
    drain(
        progress,
        |after: Option<TradeKey>| {
            store.trades(&TradeQuery {
                after,
                ..query.clone()
            })
        },
        |t| {
            match format {
                Format::Csv => writeln!(
                    out,
                    "{},{},{},{},{}",
                    csv_field(&t.id),
                    t.price,
                    t.size,
                    t.side.as_str(),
                    t.ts.0
                )?,
                Format::Ndjson => json_line(
                    out,
                    &WireTrade {
                        id: t.id.clone(),
                        price: t.price,
                        size: t.size,
                        side: t.side,
                        ts: t.ts.0,
                    },
                )?,
            }
            Ok(())
        },
    )
}

fn export_candles(
    store: &dyn HistoryStore,
    out: &mut impl Write,
    format: Format,
    progress: &ProgressBar,
    query: CandleQuery,
) -> anyhow::Result<u64> {
    if format == Format::Csv {
        writeln!(out, "start,open,high,low,close,volume,trades,complete")?;
    }
    drain(
        progress,
        |after| {
            store.candles(&CandleQuery {
                after,
                ..query.clone()
            })
        },
        |c| {
            match format {
                Format::Csv => writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    c.start.0, c.open, c.high, c.low, c.close, c.volume, c.trades, c.complete
                )?,
                Format::Ndjson => json_line(out, &HistoryCandle::from(c))?,
            }
            Ok(())
        },
    )
}

/// A perpetual's funding (`rate,predicted_rate,next_funding_ts,ts`) or open interest
/// (`oi,oi_value,ts`); an absent figure is an empty CSV field, an absent JSON key.
fn export_perp(
    store: &dyn HistoryStore,
    out: &mut impl Write,
    format: Format,
    progress: &ProgressBar,
    kind: HistoryKind,
    query: PerpQuery,
) -> anyhow::Result<u64> {
    let opt = |d: Option<String>| d.unwrap_or_default();
    let page_query = |after| PerpQuery {
        after,
        ..query.clone()
    };
    if kind == HistoryKind::Funding {
        if format == Format::Csv {
            writeln!(out, "rate,predicted_rate,next_funding_ts,ts")?;
        }
        return drain(
            progress,
            |after| store.funding(&page_query(after)),
            |f| {
                match format {
                    Format::Csv => writeln!(
                        out,
                        "{},{},{},{}",
                        f.rate,
                        opt(f.predicted_rate.map(|d| d.to_string())),
                        opt(f.next_funding_ts.map(|t| t.0.to_string())),
                        f.ts.0
                    )?,
                    Format::Ndjson => json_line(out, f)?,
                }
                Ok(())
            },
        );
    }
    if format == Format::Csv {
        writeln!(out, "oi,oi_value,ts")?;
    }
    drain(
        progress,
        |after| store.open_interest(&page_query(after)),
        |o| {
            match format {
                Format::Csv => writeln!(
                    out,
                    "{},{},{}",
                    o.oi,
                    opt(o.oi_value.map(|d| d.to_string())),
                    o.ts.0
                )?,
                Format::Ndjson => json_line(out, o)?,
            }
            Ok(())
        },
    )
}

/// A perpetual's liquidations: CSV `side,price,size,ts`, NDJSON the REST row objects.
fn export_liquidations(
    store: &dyn HistoryStore,
    out: &mut impl Write,
    format: Format,
    progress: &ProgressBar,
    query: TradeQuery,
) -> anyhow::Result<u64> {
    if format == Format::Csv {
        writeln!(out, "side,price,size,ts")?;
    }
    drain(
        progress,
        |after: Option<TradeKey>| {
            store.liquidations(&TradeQuery {
                after,
                ..query.clone()
            })
        },
        |stored| {
            let l = &stored.liquidation;
            match format {
                Format::Csv => {
                    writeln!(out, "{},{},{},{}", l.side.as_str(), l.price, l.size, l.ts.0)?
                }
                Format::Ndjson => json_line(out, l)?,
            }
            Ok(())
        },
    )
}
