//! The CLI as a user runs it: exit codes and output.

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
    let check = tickgate()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
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
    let out = dir.join(format!("tickgate-record-{}.jsonl.gz", std::process::id()));
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
    let child = tickgate()
        .args(["record", "--duration", "3", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    stepping.join().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("recorded ") && stdout.contains("(0 dropped)"),
        "{stdout}"
    );
    let events = connectors::venue::replay::replay_all(&out).unwrap();
    assert!(
        events
            .iter()
            .any(|(v, e)| v == "binance" && matches!(e, connectors::FeedEvent::BookSnapshot { .. })),
        "the capture rebuilds the book"
    );
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&config);
}
