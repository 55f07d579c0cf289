//! The CLI on a cluster's PostgreSQL store (a config with `[cluster] postgres_url`):
//!
//! - `tickgate keys ...` and `tickgate audit verify`: keys are created, listed and revoked
//!   there (not in the data directory), the audit chain verifies, tampering is named;
//! - `tickgate export` reads the cluster's shared history;
//!
//! and neither output nor errors ever show the URL's password.
//!
//! Needs TICKGATE_TEST_POSTGRES_URL; each test works in its own schema, dropped afterwards.

use std::path::PathBuf;
use std::process::{Command, Output};

const PASSWORD: &str = "hunter2-not-echoed";

fn tickgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tickgate"));
    for var in [
        "TICKGATE_MASTER_KEY",
        "TICKGATE_MASTER_KEY_PREVIOUS",
        "TICKGATE_ADMIN_KEY",
        "TICKGATE_URL",
        "TICKGATE_CONFIG",
    ] {
        command.env_remove(var);
    }
    command
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// `url` with a password in its user part (the loopback test server trusts and ignores it),
/// so the test can check it is never printed.
fn with_password(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (user, host) = rest.split_once('@')?;
        (!user.contains(':')).then(|| format!("{scheme}://{user}:{PASSWORD}@{host}"))
    }) {
        Some(url) => url,
        None => url.to_string(),
    }
}

struct Setup {
    root: PathBuf,
    url: String,
    schema: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn write_config(root: &std::path::Path, name: &str, url: &str, schema: &str) -> PathBuf {
    let config = root.join(name);
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n\n[auth]\nenvironment = \"test\"\n\n\
             [cluster]\npostgres_url = \"{url}\"\npostgres_schema = \"{schema}\"\n",
            root.join("data").display()
        ),
    )
    .unwrap();
    config
}

/// A schema and a scratch directory of the test's own (`tag` tells tests apart), or `None`
/// (test skipped) without a server.
fn setup(tag: &str) -> Option<Setup> {
    let Ok(url) = std::env::var("TICKGATE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: TICKGATE_TEST_POSTGRES_URL not set");
        return None;
    };
    let schema = format!("tg_test_cli_{tag}_{}", std::process::id());
    let root = std::env::temp_dir().join(format!("tickgate-pgcli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    Some(Setup { root, url, schema })
}

#[test]
fn keys_and_audit_verify_work_on_the_cluster_store() {
    let Some(setup) = setup("keys") else { return };
    let (root, url, schema) = (setup.root.clone(), setup.url.clone(), setup.schema.clone());
    let config = write_config(&root, "tickgate.toml", &with_password(&url), &schema);
    let cfg = config.to_str().unwrap();
    let mut printed = Vec::new();
    let mut run = |args: &[&str]| {
        let out = tickgate().args(args).output().unwrap();
        printed.extend_from_slice(&out.stdout);
        printed.extend_from_slice(&out.stderr);
        out
    };

    let created = json(&run(&[
        "keys",
        "create",
        "--config",
        cfg,
        "--name",
        "bot",
        "--scopes",
        "market:read",
        "--json",
    ]));
    let id = created["id"].as_str().unwrap().to_string();
    assert!(
        created["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("tg_test_"))
    );
    let listed = json(&run(&["keys", "list", "--config", cfg, "--json"]));
    assert!(listed.to_string().contains(&id), "{listed}");
    let revoked = json(&run(&[
        "keys",
        "revoke",
        &id,
        "--reason",
        "rotated out",
        "--config",
        cfg,
        "--json",
    ]));
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    // Stored in Postgres, not in the data directory.
    assert!(!root.join("data").join("tickgate.db").exists());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let status: String = client
        .query_one(
            &format!("SELECT status FROM {schema}.keys WHERE id = $1"),
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, "revoked");

    let verified = json(&run(&["audit", "verify", "--config", cfg, "--json"]));
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(verified["entries"].as_u64().unwrap() >= 2, "{verified}");

    // Someone with database access edits an entry: verify names it and exits 3.
    client
        .batch_execute(&format!(
            "ALTER TABLE {schema}.audit_log DISABLE TRIGGER USER; \
             UPDATE {schema}.audit_log SET actor = 'mallory' WHERE seq = 1;"
        ))
        .unwrap();
    let broken = run(&["audit", "verify", "--config", cfg, "--json"]);
    assert_eq!(broken.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report["first_broken"], 1, "{report}");

    // An unreachable server: a clear error naming the setting, not the URL.
    let dead = write_config(
        &root,
        "dead.toml",
        &format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/test"),
        &schema,
    );
    let out = run(&["keys", "list", "--config", dead.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cluster.postgres_url"), "{stderr}");

    let printed = String::from_utf8_lossy(&printed);
    assert!(
        !printed.contains(PASSWORD),
        "the password was printed:\n{printed}"
    );
    drop(setup);
}

#[test]
fn export_reads_the_cluster_history_store() {
    use model::{Side, Symbol, Timestamp, Trade, Venue, parse_decimal};
    use store::history_postgres::PgHistory;
    use store::{HistoryBatch, HistoryStore, Record};

    let Some(setup) = setup("export") else { return };
    let trade = |id: &str, price: &str, ts| Trade {
        id: id.into(),
        price: parse_decimal(price).unwrap(),
        size: parse_decimal("0.250").unwrap(),
        side: Side::Buy,
        exchange_ts: Timestamp(ts),
        recv_ts: Timestamp(ts),
    };
    // What an ingest node wrote.
    let store = PgHistory::open(&setup.url, &setup.schema).unwrap();
    store
        .append(&HistoryBatch {
            records: vec![Record::Trades {
                venue: Venue::new("sim").unwrap(),
                symbol: Symbol::new("BTC-USDT").unwrap(),
                trades: vec![
                    trade("7", "100.10", 1_000_000),
                    trade("8", "100.20", 2_000_000),
                ],
            }],
        })
        .unwrap();
    drop(store);
    let config = write_config(
        &setup.root,
        "tickgate.toml",
        &with_password(&setup.url),
        &setup.schema,
    );
    let export = |extra: &[&str]| {
        tickgate()
            .args([
                "export", "--venue", "sim", "--symbol", "BTC-USDT", "--kind", "trades",
            ])
            .arg("--config")
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = export(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "id,price,size,side,ts\n7,100.10,0.250,buy,1000000\n8,100.20,0.250,buy,2000000\n"
    );
    assert!(stderr.contains("exported 2 trades rows"), "{stderr}");
    assert!(!setup.root.join("data").join("history.db").exists());

    // `--data-dir` still means the SQLite file there (none here: a usage error).
    let empty = setup.root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = export(&["--data-dir", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no history database"));

    // An unreachable server: named by its setting, the password never shown.
    let dead = write_config(
        &setup.root,
        "dead.toml",
        &format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/test"),
        &setup.schema,
    );
    let out = tickgate()
        .args([
            "export", "--venue", "sim", "--symbol", "BTC-USDT", "--kind", "trades",
        ])
        .arg("--config")
        .arg(&dead)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cluster.postgres_url"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}
