//! The CLI as a user runs it: exit codes and output.

use connectors::conn::record::CaptureFormat;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tickgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tickgate"))
}

#[test]
fn config_default_prints_a_valid_commented_file() {
    let out = tickgate().args(["config", "default"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[server]") && text.contains("# "));
    let path = std::env::temp_dir().join(format!("tickgate-default-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    // Variables without a section (TICKGATE_URL is for `tail`) are not configuration keys.
    let check = tickgate()
        .args(["config", "check"])
        .arg(&path)
        .env("TICKGATE_URL", "http://127.0.0.1:1")
        .env("TICKGATE_WS__IDLE_TIMEOUT_SECS", "99")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("idle_timeout_secs = 99"));
}

#[test]
fn config_check_names_the_bad_key_and_exits_2() {
    let path = std::env::temp_dir().join(format!("tickgate-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[ws]\nmax_channels_per_connection = 0\n").unwrap();
    let out = tickgate()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ws.max_channels_per_connection"));
    let missing = tickgate()
        .args(["serve", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.toml"));
}

#[test]
fn bench_auth_refuses_an_unknown_mode_before_running() {
    let out = tickgate()
        .args(["bench", "auth", "--modes", "hmac,rsa"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rsa") && stderr.contains("ed25519"),
        "{stderr}"
    );
}

#[test]
fn tail_fails_clearly_when_the_server_is_unreachable() {
    let port = free_port();
    let out = tickgate()
        .args([
            "tail",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "book:sim:BTC-USDT",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    let out = tickgate()
        .args(["tail", "--url", "127.0.0.1:8080", "book:sim:BTC-USDT"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Several URLs: every one is checked before any is tried.
    let out = tickgate()
        .args(["tail", "--url", "http://127.0.0.1:1", "--url", "ftp://h:2"])
        .arg("book:sim:BTC-USDT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid URL \"ftp://h:2\""), "{stderr}");
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(port: u16) -> Server {
    let dir = std::env::temp_dir().join(format!("tickgate-cli-{}-{port}", std::process::id()));
    let child = tickgate()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--sim-rate",
            "50",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("TICKGATE_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server(child)
}

#[test]
fn serve_then_tail_then_sigterm() {
    let port = free_port();
    let mut server = serve(port);
    let url = format!("http://127.0.0.1:{port}");
    let mut tail = tickgate()
        .args([
            "tail",
            "--url",
            &url,
            "--count",
            "5",
            "book:sim:BTC-USDT",
            "trades:sim:BTC-USDT",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(tail.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(tail.wait().unwrap().success());
    assert!(
        lines[0].starts_with("subscribed book:sim:BTC-USDT trades:sim:BTC-USDT"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("book:sim:BTC-USDT #") && lines[1].contains("snapshot"),
        "{lines:?}"
    );

    let json = tickgate()
        .args([
            "tail",
            "--url",
            &url,
            "--json",
            "--count",
            "2",
            "ticker:sim:ETH-USDT",
        ])
        .output()
        .unwrap();
    assert!(json.status.success());
    for line in String::from_utf8(json.stdout).unwrap().lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("NDJSON");
        assert!(value["type"].is_string());
    }

    // A comma list whose first gateway is down: the next one serves.
    let both = format!("http://127.0.0.1:{},{url}", free_port());
    let failover = tickgate()
        .args(["tail", "--url", &both, "--count", "2", "book:sim:BTC-USDT"])
        .output()
        .unwrap();
    assert!(
        failover.status.success(),
        "{}",
        String::from_utf8_lossy(&failover.stderr)
    );
    assert!(String::from_utf8_lossy(&failover.stdout).starts_with("subscribed book:sim:BTC-USDT"));

    let unknown = tickgate()
        .args(["tail", "--url", &url, "book:sim:NOPE-USDT"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown_channel"));

    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            assert!(exit.success(), "serve exits 0 on SIGTERM, got {exit:?}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // What it stored is exported after it stopped.
    let dir = std::env::temp_dir().join(format!("tickgate-cli-{}-{port}", std::process::id()));
    let export = tickgate()
        .args([
            "export", "--venue", "sim", "--symbol", "BTC-USDT", "--kind", "trades",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let csv = String::from_utf8(export.stdout).unwrap();
    assert!(
        csv.starts_with("id,price,size,side,ts\n") && csv.lines().count() > 1,
        "{csv}"
    );
}

/// A data dir with a known history: 3 BTC trades and two 1m candles.
/// A fresh history database for one test (`tag` keeps tests running in parallel apart).
fn history_dir(tag: &str) -> std::path::PathBuf {
    use model::{Candle, Interval, Side, Symbol, Timestamp, Trade, Venue, parse_decimal};
    use store::{HistoryBatch, HistoryStore, Record, SqliteHistory};
    let dir =
        std::env::temp_dir().join(format!("tickgate-cli-export-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteHistory::open_in(&dir).unwrap();
    let d = |s| parse_decimal(s).unwrap();
    let trade = |id: &str, price, side, ts| Trade {
        id: id.into(),
        price: d(price),
        size: d("0.50"),
        side,
        exchange_ts: Timestamp(ts),
        recv_ts: Timestamp(ts),
    };
    let candle = |start, close| Candle {
        interval: Interval::M1,
        start: Timestamp(start),
        open: d("100"),
        high: d("101"),
        low: d("99"),
        close: d(close),
        volume: d("1.5"),
        trades: 3,
        closed: true,
        complete: start > 0,
    };
    let (venue, symbol) = (Venue::new("sim").unwrap(), Symbol::new("BTC-USDT").unwrap());
    let records = vec![
        Record::Trades {
            venue: venue.clone(),
            symbol: symbol.clone(),
            trades: vec![
                trade("1", "100.10", Side::Buy, 1_000_000),
                trade("a,\"b\"", "100.20", Side::Sell, 2_000_000),
                trade("3", "100.30", Side::Buy, 3_000_000),
            ],
        },
        Record::Candle {
            venue: venue.clone(),
            symbol: symbol.clone(),
            candle: Box::new(candle(0, "100.5")),
        },
        Record::Candle {
            venue,
            symbol,
            candle: Box::new(candle(60_000_000, "100.7")),
        },
    ];
    store.append(&HistoryBatch { records }).unwrap();
    let (venue, perp) = (
        Venue::new("bybit").unwrap(),
        Symbol::new("BTC-USDT-PERP").unwrap(),
    );
    let funding = |rate, predicted: Option<&'static str>, ts| model::Funding {
        rate: d(rate),
        predicted_rate: predicted.map(d),
        next_funding_ts: Some(Timestamp(28_800_000_000)),
        ts: Timestamp(ts),
    };
    let records = vec![
        Record::Funding {
            venue: venue.clone(),
            symbol: perp.clone(),
            funding: funding("0.00010", Some("0.00012"), 1_000_000),
        },
        Record::Funding {
            venue: venue.clone(),
            symbol: perp.clone(),
            funding: funding("-0.00002", None, 61_000_000),
        },
        Record::Liquidations {
            venue: venue.clone(),
            symbol: perp.clone(),
            liquidations: vec![model::Liquidation {
                side: Side::Sell,
                price: d("65000.5"),
                size: d("0.010"),
                ts: Timestamp(2_000_000),
            }],
        },
        Record::OpenInterest {
            venue,
            symbol: perp,
            oi: model::OpenInterest {
                oi: d("1234.5"),
                oi_value: None,
                ts: Timestamp(1_000_000),
            },
        },
    ];
    store.append(&HistoryBatch { records }).unwrap();
    dir
}

#[test]
fn export_writes_funding_open_interest_and_liquidations() {
    let dir = history_dir("perp");
    let export = |kind: &str, format: &str| {
        let out = tickgate()
            .args(["export", "--venue", "bybit", "--symbol", "BTC-USDT-PERP"])
            .args(["--kind", kind, "--format", format])
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        export("funding", "csv"),
        "rate,predicted_rate,next_funding_ts,ts\n0.00010,0.00012,28800000000,1000000\n-0.00002,,28800000000,61000000\n"
    );
    assert_eq!(export("oi", "csv"), "oi,oi_value,ts\n1234.5,,1000000\n");
    assert_eq!(
        export("liquidations", "csv"),
        "side,price,size,ts\nsell,65000.5,0.010,2000000\n"
    );
    let line: serde_json::Value =
        serde_json::from_str(export("funding", "ndjson").lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"rate": "-0.00002", "next_funding_ts": 28_800_000_000i64, "ts": 61_000_000})
    );
}

#[test]
fn export_writes_ranges_as_csv_or_ndjson() {
    let dir = history_dir("ranges");
    let export = |extra: &[&str]| {
        tickgate()
            .args(["export", "--venue", "sim", "--symbol", "BTC-USDT"])
            .arg("--data-dir")
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = export(&[
        "--kind",
        "trades",
        "--from",
        "1500",
        "--to",
        "1970-01-01T00:00:03.5Z",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "id,price,size,side,ts\n\"a,\"\"b\"\"\",100.20,0.50,sell,2000000\n3,100.30,0.50,buy,3000000\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 2 trades rows"));

    let file = dir.join("candles.ndjson");
    let out = export(&[
        "--kind",
        "candles.1m",
        "--format",
        "ndjson",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[1],
        serde_json::json!({"start": 60_000_000, "open": "100", "high": "101", "low": "99",
            "close": "100.7", "volume": "1.5", "trades": 3, "complete": true})
    );
    let out = export(&["--kind", "candles.1m"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("start,open,high,low,close,volume,trades,complete")
    );
    assert_eq!(csv.lines().nth(1), Some("0,100,101,99,100.5,1.5,3,false"));

    let cases: [&[&str]; 4] = [
        &["--kind", "book"],
        &["--kind", "trades", "--from", "yesterday"],
        &["--kind", "trades", "--from", "5000", "--to", "1000"],
        &["--kind", "trades", "--format", "xml"],
    ];
    for args in cases {
        let out = export(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bad_symbol = tickgate()
        .args([
            "export", "--venue", "sim", "--symbol", "btc", "--kind", "trades",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(bad_symbol.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_symbol.stderr).contains("invalid symbol"));
    let missing = tickgate()
        .args([
            "export",
            "--venue",
            "sim",
            "--symbol",
            "BTC-USDT",
            "--kind",
            "trades",
            "--data-dir",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no history database"));
}

/// Reads stdout lines until one matches, or panics after `limit`.
fn read_until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    limit: Duration,
    pred: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = pred(&line);
        seen.push(line);
        if done {
            return seen;
        }
        assert!(Instant::now() < deadline, "no matching line in {seen:?}");
    }
    panic!("output ended: {seen:?}");
}

#[test]
fn tail_survives_a_gateway_restart_and_says_so() {
    let port = free_port();
    let server = serve(port);
    let url = format!("http://127.0.0.1:{port}");
    let mut tail = tickgate()
        .args([
            "tail",
            "--url",
            &url,
            "book:sim:BTC-USDT",
            "trades:sim:BTC-USDT",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    read_until(&mut lines, Duration::from_secs(20), |l| {
        l.contains("snapshot")
    });
    drop(server);
    read_until(&mut lines, Duration::from_secs(20), |l| {
        l.starts_with("RECONNECTING")
    });
    let _server = serve(port);
    let seen = read_until(&mut lines, Duration::from_secs(30), |l| {
        l.contains("snapshot (resync)")
    });
    assert!(
        seen.iter()
            .any(|l| l.starts_with("RECOVERED") && l.contains("started over")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("RESYNC (not_recovered)")),
        "{seen:?}"
    );
    let _ = tail.kill();
    let _ = tail.wait();
}

#[test]
fn book_shows_the_top_of_the_mirrored_book() {
    let port = free_port();
    let _server = serve(port);
    let url = format!("http://127.0.0.1:{port}");
    let out = tickgate()
        .args([
            "book",
            "--url",
            &url,
            "--count",
            "3",
            "--interval-ms",
            "200",
            "--depth",
            "2",
        ])
        .arg("book:sim:BTC-USDT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let views: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("book:sim:BTC-USDT #"))
        .collect();
    assert_eq!(views.len(), 3, "{text}");
    assert!(
        views
            .iter()
            .any(|v| v.contains(" bid ") && v.contains(" spread ")),
        "{text}"
    );
    let bad = tickgate()
        .args(["book", "--url", &url, "trades:sim:BTC-USDT"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// `tickgate record` against a local mock Binance writes a capture that replays.
#[test]
fn record_writes_a_replayable_capture() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mock = runtime
        .block_on(connectors::mock::binance::MockBinance::start(&["BTC-USDT"]))
        .unwrap();
    let dir = std::env::temp_dir();
    let config = dir.join(format!("tickgate-record-{}.toml", std::process::id()));
    let out = dir.join(format!("tickgate-record-{}.tgcap", std::process::id()));
    let old_format = dir.join(format!("tickgate-record-{}.jsonl.gz", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[[venues]]\nname = \"binance\"\nsymbols = [\"BTC-USDT\"]\nws_url = \"{}\"\nrest_url = \"{}\"\n",
            dir.join("tickgate-record-data").display().to_string(),
            mock.ws_url(),
            mock.rest_url()
        ),
    )
    .unwrap();
    // A format it does not write: refused before anything starts.
    let bad = tickgate()
        .args(["record", "--format", "zip", "--duration", "1", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid value 'zip'"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!out.exists());
    // The second recorder runs beside the first, on a data directory of its own.
    let old_config = dir.join(format!("tickgate-record-{}-old.toml", std::process::id()));
    std::fs::write(
        &old_config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("tickgate-record-data", "tickgate-record-data-old"),
    )
    .unwrap();
    let record = |out: &std::path::Path, format: &str, config: &std::path::Path| {
        tickgate()
            .args(["record", "--format", format, "--duration", "3", "--config"])
            .arg(config)
            .arg("--out")
            .arg(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let child = record(&out, "tgcap", &config);
    let old_child = record(&old_format, "jsonl-gz", &old_config);
    let stepping = std::thread::spawn({
        let mock = mock.clone();
        move || {
            for _ in 0..100 {
                mock.step(1);
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    });
    let output = child.wait_with_output().unwrap();
    let old_output = old_child.wait_with_output().unwrap();
    stepping.join().unwrap();
    for (output, path, format) in [
        (output, &out, CaptureFormat::Tgcap),
        (old_output, &old_format, CaptureFormat::JsonlGz),
    ] {
        assert!(output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("recorded ")
                && stdout.contains(&format!("as {} (0 dropped)", format.name())),
            "{stdout}"
        );
        let source = connectors::conn::record::CaptureSource::open(path).unwrap();
        assert_eq!(source.format(), format);
        let events = connectors::venue::replay::replay_all(path).unwrap();
        assert!(
            events
                .iter()
                .any(|(v, e)| v == "binance"
                    && matches!(e, connectors::FeedEvent::BookSnapshot { .. })),
            "the capture rebuilds the book"
        );
    }
    replay_writes_the_channels_messages_as_ndjson(&out);
    replay_writes_the_channels_messages_as_ndjson(&old_format);
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&old_format);
    let _ = std::fs::remove_file(&old_config);
    let _ = std::fs::remove_file(&config);
}

/// `tickgate replay` on a real capture: WebSocket-shaped messages, seq gap-free per channel,
/// book snapshot before updates; and each bad input with its code and exit status.
fn replay_writes_the_channels_messages_as_ndjson(capture: &std::path::Path) {
    let ndjson =
        std::env::temp_dir().join(format!("tickgate-replay-{}.ndjson", std::process::id()));
    let run = tickgate()
        .arg("replay")
        .arg(capture)
        .args(["--to", "ndjson", "--out"])
        .arg(&ndjson)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("replayed "));
    let text = std::fs::read_to_string(&ndjson).unwrap();
    let mut seqs: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut kinds = std::collections::HashSet::new();
    for line in text.lines() {
        let msg: serde_json::Value = serde_json::from_str(line).unwrap();
        let channel = msg["channel"].as_str().unwrap().to_string();
        let seq = msg["seq"].as_u64().unwrap();
        let previous = seqs.insert(channel.clone(), seq).unwrap_or(0);
        assert_eq!(seq, previous + 1, "{channel}: gap-free seq");
        assert!(msg["epoch"].is_string());
        kinds.insert(format!(
            "{}/{}",
            msg["type"].as_str().unwrap(),
            channel.split(':').next().unwrap()
        ));
        if channel.starts_with("book:") && seq == 1 {
            assert_eq!(msg["type"], "snapshot", "a book starts with its snapshot");
            assert!(msg["checksum"].is_u64() || msg["checksum"].is_null());
        }
    }
    for kind in [
        "snapshot/book",
        "update/book",
        "update/trades",
        "update/status",
    ] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    // Only trades, to stdout.
    let trades = tickgate()
        .arg("replay")
        .arg(capture)
        .args([
            "--to",
            "stdout",
            "--channels",
            "trades",
            "--venue",
            "binance",
        ])
        .output()
        .unwrap();
    assert!(trades.status.success());
    let stdout = String::from_utf8_lossy(&trades.stdout);
    assert!(
        stdout
            .lines()
            .all(|l| l.contains("\"channel\":\"trades:binance:")),
        "{stdout}"
    );
    // Bad inputs: a stable code on stderr and a non-zero exit.
    let bytes = std::fs::read(capture).unwrap();
    let cut = std::env::temp_dir().join(format!(
        "tickgate-replay-cut-{}.jsonl.gz",
        std::process::id()
    ));
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let missing = std::env::temp_dir().join("tickgate-replay-missing.jsonl.gz");
    let cases: [(Vec<std::ffi::OsString>, i32, &str); 6] = [
        (vec![cut.clone().into()], 1, "capture_truncated"),
        // A full disk: the error is reported with its code (this small capture fails at the
        // final flush; a large one stops the parse thread at its next batch).
        (
            vec![capture.into(), "--out".into(), "/dev/full".into()],
            1,
            "output_failed",
        ),
        (vec![missing.into()], 1, "capture_unreadable"),
        (
            vec![capture.into(), "--venue".into(), "nyse".into()],
            2,
            "unknown_venue",
        ),
        (
            vec![capture.into(), "--channels".into(), "book,quotes".into()],
            2,
            "bad_argument",
        ),
        (
            vec![
                capture.into(),
                "--to".into(),
                "stdout".into(),
                "--out".into(),
                "x".into(),
            ],
            2,
            "bad_argument",
        ),
    ];
    for (args, exit, code) in cases {
        let out = tickgate().arg("replay").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit), "{code}: {stderr}");
        assert!(
            stderr.contains(&format!("error: {code}: ")),
            "{code}: {stderr}"
        );
    }
    let _ = std::fs::remove_file(&cut);
    let _ = std::fs::remove_file(&ndjson);
}

#[test]
fn bench_fanout_refuses_a_peer_with_an_external_gateway() {
    let out = tickgate()
        .args([
            "bench",
            "fanout",
            "--peer",
            "node",
            "--url",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--url") && stderr.contains("--peer"),
        "{stderr}"
    );
}

/// Runs `bench fanout --peer PEER` with 20 clients for 2 s and returns its report; fails the
/// test when the run fails.
fn fanout_beside(peer: &str) -> String {
    let out = tickgate()
        .args([
            "bench",
            "fanout",
            "--peer",
            peer,
            "--clients",
            "20",
            "--rate",
            "50",
            "--warmup",
            "1s",
            "--duration",
            "2s",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The delivered msg/s of the side-by-side row starting with `name`.
fn side_by_side_delivered(stdout: &str, name: &str) -> f64 {
    let line = stdout
        .lines()
        .skip_while(|l| !l.starts_with("side by side"))
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} row in\n{stdout}"));
    line[name.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no delivered figure in {line:?}"))
}

/// The Rust direct-write relay (`bench relay`) beside the gateway, end to end: both deliver
/// to the same clients and the ratios are printed. Needs nothing outside this binary.
#[test]
fn bench_fanout_measures_the_rust_relay_beside_the_gateway() {
    let stdout = fanout_beside("rust");
    let delivered = |name: &str| side_by_side_delivered(&stdout, name);
    assert!(delivered("rust writev relay") > 0.0, "{stdout}");
    assert!(delivered("tickgate ") > 0.0, "{stdout}");
    // Every client got every message through the relay: no seq breaks, nothing closed.
    let relay_losses = stdout
        .lines()
        .skip_while(|l| !l.starts_with("tickgate bench fanout: rust writev relay"))
        .find(|l| l.starts_with("losses (clients)"))
        .unwrap_or_else(|| panic!("no relay losses line in\n{stdout}"));
    assert!(
        relay_losses.contains("seq breaks 0") && relay_losses.contains("closed 0"),
        "{relay_losses}"
    );
}

/// The relay refuses what it cannot serve: no upstream to subscribe to.
#[test]
fn bench_relay_fails_clearly_without_an_upstream() {
    let out = tickgate()
        .args([
            "bench",
            "relay",
            "--upstream",
            "ws://127.0.0.1:1/v1/ws",
            "--channels",
            "book:sim:BTC-USDT",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to the upstream"),
        "{stderr}"
    );
}

/// The peer comparison end to end: the node relay and the gateway each deliver to the same
/// clients, and the side-by-side table is printed. Needs Node.js and the relay's packages
/// (`npm ci --prefix bench/peers/node-relay`, which `.ci/run` does); skipped without them.
#[test]
fn bench_fanout_measures_the_node_relay_beside_the_gateway() {
    let relay =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/peers/node-relay");
    let node = Command::new("node").arg("--version").output();
    if node.is_err() || !relay.join("node_modules/ws").is_dir() {
        eprintln!(
            "SKIPPED: needs node and {}/node_modules (npm ci --prefix bench/peers/node-relay)",
            relay.display()
        );
        return;
    }
    let stdout = fanout_beside("node");
    assert!(
        stdout.contains("tickgate bench fanout: node ws relay"),
        "{stdout}"
    );
    let row = |name: &str| side_by_side_delivered(&stdout, name);
    assert!(row("node ws relay") > 0.0, "{stdout}");
    assert!(row("tickgate ") > 0.0, "{stdout}");
    assert!(stdout.contains("tickgate / peer"), "{stdout}");
}
