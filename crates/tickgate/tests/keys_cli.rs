//! `tickgate keys ...` and `tickgate audit verify` as an operator runs them: offline on a data
//! directory and against a running server, a leak scan that revokes, master key rotation, and
//! audit tampering. The admin signs (an ed25519 key made with --generate-keypair, an hmac key
//! from a secret file); a bearer admin key is refused by default. Then the whole data
//! directory, the server's debug log and every error output are searched for the plaintext
//! tokens, secrets and private keys: none may appear.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tickgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tickgate"));
    for var in [
        "TICKGATE_MASTER_KEY",
        "TICKGATE_MASTER_KEY_PREVIOUS",
        "TICKGATE_ADMIN_KEY",
        "TICKGATE_API_KEY",
        "TICKGATE_KEY_ID",
        "TICKGATE_HMAC_SECRET",
        "TICKGATE_ED25519_KEY",
        "TICKGATE_URL",
        "TICKGATE_CONFIG",
        "TICKGATE_TOTP_CODE",
    ] {
        command.env_remove(var);
    }
    command
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command, remembering its stderr for the leak scan.
fn run(command: &mut Command, stderr_log: &mut Vec<u8>) -> Output {
    let out = command.output().unwrap();
    stderr_log.extend_from_slice(&out.stderr);
    out
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

/// A fresh directory `tickgate-<name>-<pid>` with a data directory, a master key file
/// holding `master_hex`, and a config serving on a free port with auth required (test keys).
struct Setup {
    root: PathBuf,
    data: PathBuf,
    master: PathBuf,
    config: PathBuf,
    port: u16,
}

impl Setup {
    fn new(name: &str, master_hex: &str) -> Self {
        let root = std::env::temp_dir().join(format!("tickgate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let master = root.join("master.key");
        write_key(&master, master_hex);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = root.join("tickgate.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\n[auth]\nrequired = true\n\
                 environment = \"test\"\nmaster_key_file = \"{}\"\npoll_interval_ms = 100\nusage_flush_secs = 1\n",
                data.display(),
                master.display()
            ),
        )
        .unwrap();
        Self {
            root,
            data,
            master,
            config,
            port,
        }
    }

    fn cfg(&self) -> &str {
        self.config.to_str().unwrap()
    }

    /// `keys create` offline: an ed25519 `keys:admin` key named `name` whose private key
    /// goes to `pem`.
    fn ed25519_admin(&self, name: &str, pem: &Path, log: &mut Vec<u8>) -> serde_json::Value {
        json(&run(
            tickgate().args([
                "keys",
                "create",
                "--config",
                self.cfg(),
                "--name",
                name,
                "--scopes",
                "keys:admin",
                "--type",
                "ed25519",
                "--generate-keypair",
                pem.to_str().unwrap(),
                "--json",
            ]),
            log,
        ))
    }

    /// Spawns `command` (a `tickgate serve`) and waits until the port answers.
    fn serve(&self, command: &mut Command) -> Server {
        let server = Server(command.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

/// Stores endpoint `whe_cli` with its secret sealed by `ring`.
fn webhook_endpoint(store: &store::alerts_sqlite::SqliteAlertStore, ring: &auth::KeyRing) {
    use store::alerts::{AlertStore, EndpointRecord, EndpointStats};
    let at = 1_700_000_000_000_000;
    store
        .insert_endpoint(&EndpointRecord {
            id: "whe_cli".into(),
            owner: "bot".into(),
            url: "https://hooks.example.com/in".into(),
            description: String::new(),
            enabled: true,
            scheme: "v1".into(),
            public_key: None,
            secret: ring.seal("whe_cli", b"whsec_cli_test_secret").unwrap(),
            previous_secret: None,
            previous_until: None,
            max_in_flight: None,
            timeout_ms: None,
            created_at: at,
            updated_at: at,
            rev: 0,
            stats: EndpointStats::default(),
        })
        .unwrap();
}

fn write_key(path: &Path, hex: &str) {
    std::fs::write(path, format!("{hex}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn keys_offline_and_online_scan_rewrap_audit_and_no_plaintext_anywhere() {
    let (old_hex, new_hex) = ("1f".repeat(32), "2e".repeat(32));
    let setup = Setup::new("keys-cli", &old_hex);
    let (root, data, master, port) = (&setup.root, &setup.data, &setup.master, setup.port);
    let cfg = setup.cfg();
    let mut stderr_log = Vec::new();
    let mut secrets = Vec::new();

    // Offline: admin keys (ed25519 with a generated key pair, hmac, bearer), an hmac key
    // (sealed under the master key), a bearer key.
    let admin_pem = root.join("ops.pem");
    let admin = setup.ed25519_admin("ops", &admin_pem, &mut stderr_log);
    let admin_id = admin["id"].as_str().unwrap().to_string();
    assert_eq!(admin["key"]["type"], "ed25519", "{admin}");
    assert_eq!(admin["private_key_file"], admin_pem.to_str().unwrap());
    assert!(admin["token"].is_null() && admin["secret"].is_null());
    let private_pem = std::fs::read_to_string(&admin_pem).unwrap();
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&admin_pem).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Never overwritten: a second --generate-keypair to the same file fails, creating nothing.
    let again = run(
        tickgate().args([
            "keys",
            "create",
            "--config",
            cfg,
            "--name",
            "ops2",
            "--scopes",
            "keys:admin",
            "--type",
            "ed25519",
            "--generate-keypair",
            admin_pem.to_str().unwrap(),
        ]),
        &mut stderr_log,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    assert_eq!(std::fs::read_to_string(&admin_pem).unwrap(), private_pem);
    let hmac_admin = json(&run(
        tickgate().args([
            "keys",
            "create",
            "--config",
            cfg,
            "--name",
            "ops-hmac",
            "--scopes",
            "keys:admin",
            "--type",
            "hmac",
            "--json",
        ]),
        &mut stderr_log,
    ));
    let hmac_admin_id = hmac_admin["id"].as_str().unwrap().to_string();
    let hmac_admin_secret = hmac_admin["secret"].as_str().unwrap().to_string();
    let hmac_admin_file = root.join("ops-hmac.secret");
    std::fs::write(&hmac_admin_file, format!("{hmac_admin_secret}\n")).unwrap();
    let bearer_admin = json(&run(
        tickgate().args([
            "keys",
            "create",
            "--config",
            cfg,
            "--name",
            "ops-bearer",
            "--scopes",
            "keys:admin",
            "--json",
        ]),
        &mut stderr_log,
    ));
    let admin_token = bearer_admin["token"].as_str().unwrap().to_string();
    assert!(admin_token.starts_with("tg_test_"));
    let hmac = json(&run(
        tickgate().args([
            "keys",
            "create",
            "--config",
            cfg,
            "--name",
            "signer",
            "--scopes",
            "market:read",
            "--type",
            "hmac",
            "--json",
        ]),
        &mut stderr_log,
    ));
    let hmac_id = hmac["id"].as_str().unwrap().to_string();
    let hmac_secret = hmac["secret"].as_str().unwrap().to_string();
    assert!(hmac["token"].is_null());
    let bot = json(&run(
        tickgate().args([
            "keys",
            "create",
            "--config",
            cfg,
            "--name",
            "bot",
            "--scopes",
            "market:read",
            "--metadata",
            "{\"team\":\"quant\"}",
            "--expires-in",
            "30d",
            "--json",
        ]),
        &mut stderr_log,
    ));
    let bot_id = bot["id"].as_str().unwrap().to_string();
    let bot_token = bot["token"].as_str().unwrap().to_string();
    // The private key's base64 line, not its PEM armour, is the secret.
    let private_b64 = private_pem.lines().nth(1).unwrap().to_string();
    secrets.extend([
        admin_token.clone(),
        hmac_admin_secret.clone(),
        private_b64,
        hmac_secret.clone(),
        bot_token.clone(),
    ]);
    // Bad input: exit 1 with a clear message, nothing echoed.
    let bad = run(
        tickgate().args([
            "keys",
            "create",
            "--config",
            cfg,
            "--name",
            "x",
            "--scopes",
            "market:write",
        ]),
        &mut stderr_log,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope"));

    // The server, logging at debug level to a file.
    let log_path = root.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = setup.serve(
        tickgate()
            .args(["serve", "--config", cfg, "--sim-rate", "20"])
            .env("TICKGATE_LOG__LEVEL", "debug")
            .stdout(Stdio::null())
            .stderr(log),
    );
    let url = format!("http://127.0.0.1:{port}");
    let online = |args: &[&str]| {
        let mut command = tickgate();
        command
            .args(args)
            .args(["--url", &url, "--json"])
            .env("TICKGATE_KEY_ID", &admin_id)
            .env("TICKGATE_ED25519_KEY", &admin_pem);
        command
    };

    // Online, signed with the ed25519 admin key: list, use, rotate, show, cancel, usage.
    let listed = json(&run(&mut online(&["keys", "list"]), &mut stderr_log));
    assert_eq!(listed["keys"].as_array().unwrap().len(), 5);
    // The bearer admin key is refused by default (keys:admin needs a signature); signing
    // takes precedence when both are set.
    let bearer = run(
        tickgate()
            .args(["keys", "list", "--url", &url])
            .env("TICKGATE_ADMIN_KEY", &admin_token),
        &mut stderr_log,
    );
    assert_eq!(bearer.status.code(), Some(1));
    let why = String::from_utf8_lossy(&bearer.stderr);
    assert!(why.contains("403 signature_required"), "{why}");
    json(&run(
        online(&["keys", "list"]).env("TICKGATE_ADMIN_KEY", &admin_token),
        &mut stderr_log,
    ));
    // Signed with the hmac admin key from a secret file (its final newline is trimmed).
    let shown_by_hmac = json(&run(
        tickgate().args([
            "keys",
            "show",
            &hmac_admin_id,
            "--url",
            &url,
            "--json",
            "--key-id",
            &hmac_admin_id,
            "--hmac-secret-file",
            hmac_admin_file.to_str().unwrap(),
        ]),
        &mut stderr_log,
    ));
    assert_eq!(shown_by_hmac["type"], "hmac");
    // Unusable signing options: exit 1 with the reason, no key material echoed.
    let bad_pem = root.join("bad.pem");
    std::fs::write(&bad_pem, format!("{}\n", &private_pem[..60])).unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec![
                "--key-id",
                &admin_id,
                "--ed25519-key",
                bad_pem.to_str().unwrap(),
            ],
            "not a PEM private key",
        ),
        (
            vec!["--key-id", &admin_id, "--ed25519-key", cfg],
            "not a PEM private key",
        ),
        (vec!["--key-id", &admin_id], "--key-id needs the key"),
        (
            vec!["--ed25519-key", admin_pem.to_str().unwrap()],
            "signing needs the key's id",
        ),
    ];
    for (args, want) in cases {
        let out = run(
            tickgate().args(["keys", "list", "--url", &url]).args(&args),
            &mut stderr_log,
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(why.contains(want), "{args:?}: {why}");
    }
    let tail = |token: &str| {
        tickgate()
            .args(["tail", "--url", &url, "--count", "1", "ticker:sim:BTC-USDT"])
            .env("TICKGATE_API_KEY", token)
            .output()
            .unwrap()
    };
    let first = tail(&bot_token);
    stderr_log.extend_from_slice(&first.stderr);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // `tail` signing its WebSocket upgrade with the hmac key (secret from the environment).
    let signed_tail = tickgate()
        .args(["tail", "--url", &url, "--count", "1", "ticker:sim:BTC-USDT"])
        .env("TICKGATE_KEY_ID", &hmac_id)
        .env("TICKGATE_HMAC_SECRET", &hmac_secret)
        .output()
        .unwrap();
    stderr_log.extend_from_slice(&signed_tail.stderr);
    assert!(
        signed_tail.status.success(),
        "{}",
        String::from_utf8_lossy(&signed_tail.stderr)
    );
    let rotated = json(&run(
        &mut online(&["keys", "rotate", &bot_id, "--grace", "1h"]),
        &mut stderr_log,
    ));
    let successor = rotated["token"].as_str().unwrap().to_string();
    secrets.push(successor.clone());
    assert_eq!(rotated["previous"]["status"], "grace");
    assert_eq!(rotated["key"]["metadata"]["team"], "quant");
    let shown = json(&run(
        &mut online(&["keys", "show", &bot_id]),
        &mut stderr_log,
    ));
    assert_eq!(shown["replaced_by"], rotated["id"]);
    let cancelled = json(&run(
        &mut online(&["keys", "cancel-rotation", &bot_id]),
        &mut stderr_log,
    ));
    assert_eq!(cancelled["key"]["status"], "active");
    std::thread::sleep(Duration::from_millis(1500));
    let usage = json(&run(
        &mut online(&["keys", "usage", &bot_id]),
        &mut stderr_log,
    ));
    assert!(
        usage["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["requests"].as_u64() >= Some(1)),
        "{usage}"
    );
    assert!(usage["last_used_at"].is_i64());

    // A leaked token in a file: scan finds it (not the look-alike) and revokes it.
    let leak = root.join("leak.env");
    let mut look_alike = bot_token.clone().into_bytes();
    look_alike[30] = if look_alike[30] == b'Q' { b'R' } else { b'Q' };
    let mut file = std::fs::File::create(&leak).unwrap();
    writeln!(
        file,
        "OK=1\nAPI_KEY={bot_token}\nFAKE={}",
        String::from_utf8(look_alike).unwrap()
    )
    .unwrap();
    let scan = run(
        &mut online(&["keys", "scan", leak.to_str().unwrap(), "--revoke"]),
        &mut stderr_log,
    );
    assert_eq!(
        scan.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&scan.stdout).unwrap();
    let found = report["found"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(
        (found[0]["line"].as_u64(), found[0]["key_id"].as_str()),
        (Some(2), Some(bot_id.as_str()))
    );
    assert_eq!(found[0]["revoked"], true);
    assert!(!String::from_utf8_lossy(&scan.stdout).contains(&bot_token));
    std::thread::sleep(Duration::from_millis(300));
    let refused = tail(&bot_token);
    stderr_log.extend_from_slice(&refused.stderr);
    assert!(!refused.status.success());
    let clean = run(tickgate().args(["keys", "scan", cfg]), &mut stderr_log);
    assert_eq!(clean.status.code(), Some(0));

    // A webhook endpoint whose signing secret is sealed under the old master key (written to
    // the store directly: what `POST /v1/webhooks` stores).
    let old_master = auth::envelope::MasterKey::from_hex(&old_hex, "test").unwrap();
    let new_master = auth::envelope::MasterKey::from_hex(&new_hex, "test").unwrap();
    let alert_store = store::alerts_sqlite::SqliteAlertStore::open_dir(data).unwrap();
    webhook_endpoint(&alert_store, &auth::KeyRing::new(Some(old_master), vec![]));
    secrets.push("whsec_cli_test_secret".to_string());

    // Master key rotation while the server runs: new current key, old one as previous.
    write_key(master, &new_hex);
    let rewrap = json(&run(
        tickgate()
            .args(["keys", "rewrap", "--config", cfg, "--json"])
            .env("TICKGATE_MASTER_KEY_PREVIOUS", &old_hex),
        &mut stderr_log,
    ));
    assert_eq!(rewrap["rewrapped"], 2, "the two hmac secrets");
    assert_eq!(rewrap["webhook_secrets_rewrapped"], 1, "{rewrap}");
    let without_old = json(&run(
        tickgate().args(["keys", "rewrap", "--config", cfg, "--json"]),
        &mut stderr_log,
    ));
    assert_eq!(without_old["rewrapped"], 0);
    assert_eq!(without_old["webhook_secrets_rewrapped"], 0);
    // The endpoint's secret now opens with the new master key alone.
    use store::alerts::AlertStore;
    let endpoint = alert_store.get_endpoint("whe_cli").unwrap().unwrap();
    assert_eq!(endpoint.secret.master_key_id, new_master.id());
    let only_new = auth::KeyRing::new(Some(new_master), vec![]);
    assert_eq!(
        only_new.open("whe_cli", &endpoint.secret).unwrap().to_vec(),
        b"whsec_cli_test_secret"
    );

    // The audit log verifies, online (downloaded and checked here) and offline.
    let verified = json(&run(&mut online(&["audit", "verify"]), &mut stderr_log));
    assert_eq!(verified["ok"], true);
    assert!(verified["entries"].as_u64().unwrap() >= 7, "{verified}");
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = server.0.wait();

    // Tamper with one entry behind the store's back: verify names it.
    let conn = rusqlite::Connection::open(data.join("tickgate.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET actor = 'mallory' WHERE seq = 3;",
    )
    .unwrap();
    drop(conn);
    let broken = run(
        tickgate().args(["audit", "verify", "--config", cfg, "--json"]),
        &mut stderr_log,
    );
    assert_eq!(broken.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(
        (report["ok"].as_bool(), report["first_broken"].as_u64()),
        (Some(false), Some(3))
    );

    // No plaintext token or secret anywhere: data directory (database, WAL), server log, and
    // every error output. (The body alone is searched too, in case of a re-encoding.)
    let log = std::fs::read(&log_path).unwrap();
    assert!(log.len() > 100, "the server log should not be empty");
    let mut files = Vec::new();
    all_files(data, &mut files);
    assert!(!files.is_empty());
    let mut haystacks: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    haystacks.push(("server log".into(), log));
    haystacks.push(("cli stderr".into(), stderr_log));
    for secret in &secrets {
        for needle in [secret.as_str(), &secret[8..secret.len() - 6]] {
            for (name, bytes) in &haystacks {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "a secret appears in {name}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(root);
}

/// `tickgate keys leaked` offline, and `keys suspend|resume` and `keys totp enroll`: the
/// playbook prints the successor once and the last day's report; a bad id is refused.
#[test]
fn keys_leaked_suspend_resume_and_totp_enroll_offline() {
    let root = std::env::temp_dir().join(format!("tickgate-keys-leaked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    let dir = data.to_str().unwrap();
    let mut log = Vec::new();
    let created = json(&run(
        tickgate().args([
            "keys",
            "create",
            "--data-dir",
            dir,
            "--name",
            "bot",
            "--scopes",
            "market:read",
            "--json",
        ]),
        &mut log,
    ));
    let id = created["id"].as_str().unwrap().to_string();
    let suspended = json(&run(
        tickgate().args([
            "keys",
            "suspend",
            &id,
            "--reason",
            "check",
            "--data-dir",
            dir,
            "--json",
        ]),
        &mut log,
    ));
    assert_eq!(suspended["status"], "suspended");
    let resumed = json(&run(
        tickgate().args(["keys", "resume", &id, "--data-dir", dir, "--json"]),
        &mut log,
    ));
    assert_eq!(resumed["status"], "active");
    let leaked = json(&run(
        tickgate().args(["keys", "leaked", &id, "--data-dir", dir, "--json"]),
        &mut log,
    ));
    assert_eq!(leaked["revoked"]["status"], "revoked");
    assert!(leaked["token"].as_str().unwrap().starts_with("tg_test_"));
    assert_eq!(leaked["last_24h"]["requests"], 0);
    // The human form names the report and the successor.
    let out = run(
        tickgate().args([
            "keys",
            "leaked",
            leaked["id"].as_str().unwrap(),
            "--data-dir",
            dir,
        ]),
        &mut log,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("last 24 h: requests 0"), "{text}");
    assert!(text.contains("(shown once"), "{text}");
    // Again: refused, exit non-zero, with the reason.
    let out = run(
        tickgate().args(["keys", "leaked", &id, "--data-dir", dir]),
        &mut log,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked already"));
    // TOTP needs a master key and a keys:admin key.
    let out = run(
        tickgate().args(["keys", "totp", "enroll", &id, "--data-dir", dir]),
        &mut log,
    );
    assert!(!out.status.success());
    let master = root.join("master.key");
    write_key(&master, &"3c".repeat(32));
    let admin = json(&run(
        tickgate().args([
            "keys",
            "create",
            "--data-dir",
            dir,
            "--name",
            "ops",
            "--scopes",
            "keys:admin",
            "--json",
        ]),
        &mut log,
    ));
    let enrolled = json(&run(
        tickgate()
            .env("TICKGATE_MASTER_KEY", "3c".repeat(32))
            .args([
                "keys",
                "totp",
                "enroll",
                admin["id"].as_str().unwrap(),
                "--data-dir",
                dir,
                "--json",
            ]),
        &mut log,
    ));
    assert!(
        enrolled["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/tickgate:ops?secret="),
        "{enrolled}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// `--totp-code` with `--url`: once the admin principal is enrolled, a critical operation
/// (revoke) is refused without a code and done with the current one, sent in `TOTP-Code` and
/// covered by the signature; the same code cannot be used twice; a malformed code, a code with
/// a bearer key, or a code offline are refused by the CLI before anything is sent.
#[test]
fn keys_online_critical_operations_take_a_totp_code() {
    let setup = Setup::new("keys-totp", &"4d".repeat(32));
    let (root, port, cfg) = (&setup.root, setup.port, setup.cfg());
    let mut log = Vec::new();
    let admin_pem = root.join("ops.pem");
    let admin = setup.ed25519_admin("ops", &admin_pem, &mut log);
    let admin_id = admin["id"].as_str().unwrap().to_string();
    let target = |name: &str, log: &mut Vec<u8>| {
        json(&run(
            tickgate().args([
                "keys",
                "create",
                "--config",
                cfg,
                "--name",
                name,
                "--scopes",
                "market:read",
                "--json",
            ]),
            log,
        ))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (first, second) = (target("bot1", &mut log), target("bot2", &mut log));
    let enrolled = json(&run(
        tickgate().args([
            "keys", "totp", "enroll", &admin_id, "--config", cfg, "--json",
        ]),
        &mut log,
    ));
    let uri = enrolled["otpauth_uri"].as_str().unwrap();
    let secret = auth::totp::secret_from_uri(uri).expect("a secret in the URI");

    let mut server = setup.serve(
        tickgate()
            .args(["serve", "--config", cfg, "--sim-rate", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let url = format!("http://127.0.0.1:{port}");
    let online = |args: &[&str]| {
        let mut command = tickgate();
        command
            .args(args)
            .args(["--url", &url, "--json"])
            .env("TICKGATE_KEY_ID", &admin_id)
            .env("TICKGATE_ED25519_KEY", &admin_pem);
        command
    };
    let code_now = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        auth::totp::code_at(auth::totp::TotpAlgorithm::Sha1, &secret, now, 30, 6)
    };
    let failed = |out: &Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // Without a code: refused by the gateway, with its code.
    let why = failed(&run(
        &mut online(&["keys", "revoke", &first, "--reason", "test"]),
        &mut log,
    ));
    assert!(why.contains("totp_required"), "{why}");
    // Malformed, or with a bearer key, or offline: refused by the CLI.
    let why = failed(&run(
        online(&["keys", "revoke", &first, "--reason", "test"]).args(["--totp-code", "12ab56"]),
        &mut log,
    ));
    assert!(why.contains("--totp-code must be"), "{why}");
    let why = failed(&run(
        tickgate()
            .args([
                "keys",
                "revoke",
                &first,
                "--reason",
                "test",
                "--url",
                &url,
                "--totp-code",
                "123456",
            ])
            .env(
                "TICKGATE_ADMIN_KEY",
                "tg_test_notarealkeynotarealkey00000000",
            ),
        &mut log,
    ));
    assert!(why.contains("covered by a signature"), "{why}");
    let why = failed(&run(
        tickgate().args([
            "keys",
            "revoke",
            &first,
            "--reason",
            "test",
            "--config",
            cfg,
            "--totp-code",
            "123456",
        ]),
        &mut log,
    ));
    assert!(why.contains("--totp-code is for --url"), "{why}");

    // With the current code: done. The same code again: refused (single use).
    let code = code_now();
    let revoked = json(&run(
        online(&["keys", "revoke", &first, "--reason", "test"]).env("TICKGATE_TOTP_CODE", &code),
        &mut log,
    ));
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    let why = failed(&run(
        online(&["keys", "revoke", &second, "--reason", "test"]).args(["--totp-code", &code]),
        &mut log,
    ));
    assert!(
        why.contains("totp_invalid") || why.contains("totp"),
        "{why}"
    );
    let _ = server.0.kill();
    let _ = server.0.wait();
    // No code ever reached an error output.
    let text = String::from_utf8_lossy(&log);
    assert!(!text.contains(&code), "{text}");
    let _ = std::fs::remove_dir_all(root);
}
