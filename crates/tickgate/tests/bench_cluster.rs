//! `tickgate bench fanout --cluster` as a user runs it: clear errors for a missing or wrong
//! service URL, and (with NATS and Redis, plus PostgreSQL for revocation) a small run end to
//! end: single node and cluster side by side, NATS hop, failover and revocation times.

use std::process::Command;

fn bench() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tickgate"));
    command.args(["bench", "fanout", "--cluster", "--clients", "20"]);
    for var in [
        "TICKGATE_TEST_NATS_URL",
        "TICKGATE_TEST_REDIS_URL",
        "TICKGATE_TEST_POSTGRES_URL",
        "TICKGATE_CONFIG",
    ] {
        command.env_remove(var);
    }
    command
}

#[test]
fn bench_fanout_cluster_names_a_missing_or_wrong_service_url_and_never_echoes_it() {
    let cases: [(&[&str], &str); 4] = [
        (&[], "--nats-url"),
        (&["--nats-url", "nats://127.0.0.1:4222"], "--redis-url"),
        (
            &[
                "--nats-url",
                "http://user:s3cret-pass@127.0.0.1:4222",
                "--redis-url",
                "redis://127.0.0.1:6379",
            ],
            "--nats-url (or TICKGATE_TEST_NATS_URL) must be a nats://, tls:// URL",
        ),
        (
            &[
                "--nats-url",
                "nats://127.0.0.1:4222",
                "--redis-url",
                "redis://127.0.0.1:6379",
                "--postgres-url",
                "mysql://user:s3cret-pass@127.0.0.1/x",
            ],
            "--postgres-url (or TICKGATE_TEST_POSTGRES_URL) must be a postgres://, postgresql://",
        ),
    ];
    for (args, want) in cases {
        let out = bench().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("s3cret-pass"), "URL echoed: {stderr}");
    }
    // Not with a peer or an external gateway.
    let out = bench()
        .args(["--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_fanout_cluster_measures_the_cluster_beside_a_single_node() {
    let (Ok(nats), Ok(redis)) = (
        std::env::var("TICKGATE_TEST_NATS_URL"),
        std::env::var("TICKGATE_TEST_REDIS_URL"),
    ) else {
        eprintln!("skipped: TICKGATE_TEST_NATS_URL and TICKGATE_TEST_REDIS_URL not set");
        return;
    };
    let postgres = std::env::var("TICKGATE_TEST_POSTGRES_URL").ok();
    let mut command = bench();
    command.args([
        "--rate",
        "200",
        "--warmup",
        "1s",
        "--duration",
        "2s",
        "--probe",
        "1s",
        "--nats-url",
        &nats,
        "--redis-url",
        &redis,
    ]);
    if let Some(url) = &postgres {
        command.args(["--postgres-url", url]);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in [
        "=== single node",
        "=== cluster: 1 ingest + 2 edges",
        "cluster / single",
        "NATS hop          +",
        "ingest failover ",
        "edge failover ",
    ] {
        assert!(stdout.contains(want), "missing {want:?}:\n{stdout}");
    }
    // Both rows delivered something.
    for row in ["single node ", "cluster (1 ingest + 2 edges)"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row:?} row:\n{stdout}"));
        let delivered: f64 = line[row.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unreadable row {line:?}"));
        assert!(delivered > 0.0, "{line}");
    }
    // All 20 sessions of the killed edge were served by the other one.
    assert!(
        stdout.contains("(20 clients,"),
        "edge failover clients:\n{stdout}"
    );
    if postgres.is_some() {
        assert!(stdout.contains("revocation        "), "{stdout}");
    } else {
        assert!(stdout.contains("revocation not measured"), "{stdout}");
    }
}
