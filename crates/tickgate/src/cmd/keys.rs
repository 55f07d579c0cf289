//! `tickgate keys create|list|show|update|rotate|cancel-rotation|revoke|suspend|resume|totp|
//! leaked|usage|rewrap|scan`.
//!
//! Each works offline on a data directory (`--data-dir`, `--config`) or against a running
//! gateway (`--url` with a keys:admin key: signed with `--key-id` and `--ed25519-key` or an
//! hmac secret, or a bearer `TICKGATE_ADMIN_KEY` where the gateway allows it), and prints JSON
//! with `--json`.
//! A new key's token or secret is printed exactly once, by `create` and `rotate`.

use super::keys_backend::{Backend, TargetArgs, status};
use anyhow::Context;
use auth::{KeyUpdate, NewKey};
use clap::Subcommand;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use store::keys::{Granularity, KeyFilter, KeyKind, RateLimit};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its token (bearer) or secret (hmac) once.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: market:read, history:read, alerts:write, keys:admin, metrics:read.
        #[arg(long)]
        scopes: String,
        /// The customer or client the key belongs to (default: derived from the name).
        #[arg(long)]
        principal: Option<String>,
        #[arg(long = "type", default_value = "bearer")]
        kind: String,
        /// PEM file with the client's Ed25519 public key (for --type ed25519).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// For --type ed25519 without openssl: generate the key pair here, write the private
        /// key to this new file (PKCS#8 PEM, mode 0600) and register the public key.
        #[arg(long, value_name = "OUT.pem", conflicts_with = "public_key")]
        generate_keypair: Option<PathBuf>,
        /// Lifetime, e.g. 90d, 12h.
        #[arg(long)]
        expires_in: Option<String>,
        /// Rotation policy: flag the key as due for rotation after this age, e.g. 90d.
        #[arg(long)]
        max_age: Option<String>,
        /// Per-key rate limit as PER_SEC/BURST, e.g. 50/100.
        #[arg(long)]
        rate_limit: Option<String>,
        /// Free-form JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List keys.
    List {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show one key.
    Show {
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Change a key's name, scopes, metadata, rate limit or rotation policy.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        scopes: Option<String>,
        #[arg(long)]
        metadata: Option<String>,
        #[arg(long)]
        rate_limit: Option<String>,
        #[arg(long)]
        max_age: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Create a successor and keep the old key working for a grace period.
    Rotate {
        id: String,
        /// How long the old key keeps working: 0 (now), 15m, 24h, 7d, ...
        #[arg(long, default_value = "24h")]
        grace: String,
        /// New Ed25519 public key (PEM file) when rotating an ed25519 key.
        #[arg(long)]
        public_key: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Cancel a rotation during its grace period: the old key is active again, the successor
    /// revoked.
    CancelRotation {
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Revoke a key now; open WebSocket sessions on it are closed within a second.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// The leak playbook: rotate with zero grace (the successor's token or secret is printed
    /// once), revoke the leaked secret, audit `key.leaked`, and print what the key did in the
    /// last 24 h (usage, addresses).
    Leaked {
        id: String,
        /// For an ed25519 key: the successor's public key (PEM file); without it the key is
        /// only revoked.
        #[arg(long)]
        public_key: Option<PathBuf>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Suspend a key (reversibly): refused with key_suspended, open sessions closed.
    Suspend {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Resume a suspended key.
    Resume {
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// TOTP (RFC 6238) second factor of admin principals.
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Per-minute or per-hour usage and last use of a key.
    Usage {
        id: String,
        #[arg(long, default_value = "minute")]
        granularity: String,
        /// How far back, e.g. 1h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Re-encrypt every HMAC secret's data key under the current master key (the previous key
    /// must still be configured: TICKGATE_MASTER_KEY_PREVIOUS or previous_master_key_files).
    Rewrap {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Find tickgate keys in files (format + checksum, no look-alikes); optionally revoke them.
    /// Exit 0: none found; 3: keys found.
    Scan(super::keys_scan::ScanArgs),
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Enroll the principal of a keys:admin key: prints the otpauth:// URI once (add it to an
    /// authenticator app). From then on its critical operations need a TOTP-Code.
    Enroll {
        id: String,
        /// sha1 (what authenticator apps expect), sha256 or sha512.
        #[arg(long, default_value = "sha1")]
        algorithm: String,
        /// Replace an existing enrollment (a new secret; the old one stops working).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
}

fn read_pem(path: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|p| {
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    })
    .transpose()
}

fn duration(text: Option<&str>, allow_zero: bool) -> anyhow::Result<Option<u64>> {
    text.map(|t| auth::input::duration_secs(t, allow_zero).map_err(anyhow::Error::msg))
        .transpose()
}

fn rate_limit(text: Option<&str>) -> anyhow::Result<Option<RateLimit>> {
    text.map(|t| {
        let (per_sec, burst) = t.split_once('/').unwrap_or((t, t));
        match (per_sec.trim().parse(), burst.trim().parse()) {
            (Ok(per_sec), Ok(burst)) => Ok(RateLimit { per_sec, burst }),
            _ => anyhow::bail!("--rate-limit must be PER_SEC/BURST, e.g. 50/100"),
        }
    })
    .transpose()
}

fn metadata(text: Option<&str>) -> anyhow::Result<Option<Value>> {
    text.map(|t| serde_json::from_str(t).context("--metadata must be a JSON object"))
        .transpose()
}

fn scopes(text: &str) -> anyhow::Result<Vec<String>> {
    Ok(auth::ScopeSet::parse_list(text)
        .map_err(anyhow::Error::msg)?
        .names())
}

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(command))
}

async fn run_async(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let (target, value) = match command {
        KeysCommand::Scan(args) => return super::keys_scan::run(args).await,
        KeysCommand::Create {
            name,
            scopes: s,
            principal,
            kind,
            public_key,
            generate_keypair,
            expires_in,
            max_age,
            rate_limit: r,
            metadata: m,
            target,
        } => {
            let kind: KeyKind = kind
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--type: {e}"))?;
            if generate_keypair.is_some() && kind != KeyKind::Ed25519 {
                anyhow::bail!("--generate-keypair makes an ed25519 key: add --type ed25519");
            }
            let mut request = NewKey {
                name,
                principal,
                scopes: scopes(&s)?,
                kind: Some(kind),
                public_key_pem: read_pem(public_key)?,
                expires_in_secs: duration(expires_in.as_deref(), false)?,
                metadata: metadata(m.as_deref())?,
                rate_limit: rate_limit(r.as_deref())?,
                max_age_secs: duration(max_age.as_deref(), false)?,
            };
            let backend = Backend::open(&target)?;
            let Some(out) = generate_keypair else {
                return print(&target, backend.create(request).await?);
            };
            request.public_key_pem = Some(write_private_key(&out)?);
            match backend.create(request).await {
                Ok(mut value) => {
                    value["private_key_file"] = out.display().to_string().into();
                    (target, value)
                }
                Err(error) => {
                    // Not registered: leave no private key behind that matches nothing.
                    let _ = std::fs::remove_file(&out);
                    return Err(error);
                }
            }
        }
        KeysCommand::List {
            principal,
            status: st,
            target,
        } => {
            let filter = KeyFilter {
                principal,
                status: st.as_deref().map(status).transpose()?,
                ..Default::default()
            };
            let backend = Backend::open(&target)?;
            (target, backend.list(filter).await?)
        }
        KeysCommand::Show { id, target } => {
            let backend = Backend::open(&target)?;
            (target, backend.show(&id).await?)
        }
        KeysCommand::Update {
            id,
            name,
            scopes: s,
            metadata: m,
            rate_limit: r,
            max_age,
            target,
        } => {
            let change = KeyUpdate {
                name,
                scopes: s.as_deref().map(scopes).transpose()?,
                metadata: metadata(m.as_deref())?,
                rate_limit: rate_limit(r.as_deref())?,
                max_age_secs: duration(max_age.as_deref(), false)?,
            };
            let backend = Backend::open(&target)?;
            (target, backend.update(&id, change).await?)
        }
        KeysCommand::Rotate {
            id,
            grace,
            public_key,
            target,
        } => {
            let grace = duration(Some(&grace), true)?.unwrap_or(0);
            let backend = Backend::open(&target)?;
            (
                target,
                backend.rotate(&id, grace, read_pem(public_key)?).await?,
            )
        }
        KeysCommand::CancelRotation { id, target } => {
            let backend = Backend::open(&target)?;
            (target, backend.cancel_rotation(&id).await?)
        }
        KeysCommand::Revoke { id, reason, target } => {
            let backend = Backend::open(&target)?;
            (target, backend.revoke(&id, &reason).await?)
        }
        KeysCommand::Leaked {
            id,
            public_key,
            target,
        } => {
            let backend = Backend::open(&target)?;
            (target, backend.leaked(&id, read_pem(public_key)?).await?)
        }
        KeysCommand::Suspend { id, reason, target } => {
            let backend = Backend::open(&target)?;
            (target, backend.suspend(&id, &reason).await?)
        }
        KeysCommand::Resume { id, target } => {
            let backend = Backend::open(&target)?;
            (target, backend.resume(&id).await?)
        }
        KeysCommand::Totp(TotpCommand::Enroll {
            id,
            algorithm,
            replace,
            target,
        }) => {
            let algorithm: auth::totp::TotpAlgorithm = algorithm
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--{e}"))?;
            let backend = Backend::open(&target)?;
            (target, backend.totp_enroll(&id, algorithm, replace).await?)
        }
        KeysCommand::Usage {
            id,
            granularity,
            since,
            target,
        } => {
            let granularity: Granularity = granularity
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--granularity: {e}"))?;
            let since = model::Timestamp::now().0
                - 1_000_000 * duration(Some(&since), false)?.unwrap_or(86_400) as i64;
            let backend = Backend::open(&target)?;
            (target, backend.usage(&id, granularity, since).await?)
        }
        KeysCommand::Rewrap { target } => {
            let backend = Backend::open(&target)?;
            (target, backend.rewrap().await?)
        }
    };
    print(&target, value)
}

fn print(target: &TargetArgs, value: Value) -> anyhow::Result<ExitCode> {
    if target.json {
        println!("{value}");
    } else {
        print!("{}", human(&value));
    }
    Ok(ExitCode::SUCCESS)
}

/// Generates an Ed25519 key pair, writes the private key to `path` (a new file, mode 0600)
/// and returns the public key as PEM.
fn write_private_key(path: &Path) -> anyhow::Result<String> {
    use auth::httpsig::pem;
    use std::io::Write;
    let seed = pem::random_ed25519_seed()
        .map_err(|e| anyhow::anyhow!("no randomness for a key pair: {e}"))?;
    let private = pem::ed25519_seed_to_pem(&seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (--generate-keypair never overwrites a file)",
            path.display()
        )
    })?;
    let written = file
        .write_all(private.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(error) = written {
        let _ = std::fs::remove_file(path);
        return Err(error).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(pem::ed25519_public_pem(&seed))
}

fn line(key: &Value) -> String {
    let text = |k: &str| key[k].as_str().unwrap_or("-").to_string();
    let scopes: Vec<&str> = key["scopes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!(
        "{}  {:<8} {:<7} {:<16} {:<20} {}{}\n",
        text("id"),
        text("status"),
        text("type"),
        text("principal"),
        text("name"),
        scopes.join(","),
        if key["rotation_due"].as_bool() == Some(true) {
            "  (rotation due)"
        } else {
            ""
        }
    )
}

/// A readable rendering of any admin response.
fn human(value: &Value) -> String {
    let mut out = String::new();
    if let Some(keys) = value["keys"].as_array() {
        keys.iter().for_each(|k| out.push_str(&line(k)));
        if keys.is_empty() {
            out.push_str("no keys\n");
        }
        return out;
    }
    let credential = value["token"]
        .as_str()
        .map(|t| ("token", t))
        .or_else(|| value["secret"].as_str().map(|s| ("secret", s)));
    if let Some((what, text)) = credential {
        out.push_str(&format!("{what}: {text}\n(shown once: store it now)\n"));
    }
    if let Some(file) = value["private_key_file"].as_str() {
        out.push_str(&format!(
            "private key written to {file} (mode 0600; sign with --key-id {} --ed25519-key {file})\n",
            value["id"].as_str().unwrap_or("-")
        ));
    }
    if let Some(buckets) = value["buckets"].as_array() {
        out.push_str(&format!(
            "key {}  last used {} from {}\n",
            value["key_id"], value["last_used_at"], value["last_used_addr"]
        ));
        for b in buckets {
            out.push_str(&format!(
                "{}  requests {}  messages {}  bytes {}  auth failures {}\n",
                b["start"], b["requests"], b["messages"], b["bytes"], b["auth_failures"]
            ));
        }
        return out;
    }
    for key in [
        &value["key"],
        &value["previous"],
        &value["revoked_successor"],
        value,
    ] {
        if key["id"].is_string() && key["status"].is_string() {
            out.push_str(&line(key));
        }
    }
    if let Some(report) = value["last_24h"].as_object() {
        out.push_str(&format!(
            "revoked {} (leaked)\nlast 24 h: requests {}  messages {}  bytes {}  auth failures {}\n",
            value["revoked"]["id"].as_str().unwrap_or("-"),
            report["requests"], report["messages"], report["bytes"], report["auth_failures"]
        ));
        for a in report["addresses"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  from {}  requests {}  first {}  last {}\n",
                a["addr"].as_str().unwrap_or("-"),
                a["requests"],
                a["first_seen"],
                a["last_seen"]
            ));
        }
        if value["id"].is_string() {
            out.push_str(&format!(
                "successor {}\n",
                value["id"].as_str().unwrap_or("-")
            ));
        }
    }
    if let Some(uri) = value["otpauth_uri"].as_str() {
        out.push_str(&format!(
            "principal {} enrolled in TOTP ({}, {} digits, {} s)\n{uri}\n(shown once: add it to \
             an authenticator app now)\n",
            value["principal"], value["algorithm"], value["digits"], value["period"]
        ));
    }
    if let Some(n) = value["rewrapped"].as_u64() {
        out.push_str(&format!(
            "rewrapped {n} secrets under {}\n",
            value["master_key_id"]
        ));
    }
    out
}
