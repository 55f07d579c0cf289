//! `tickgate keys scan PATH...`: finds tickgate keys in files by format and checksum (no false
//! positives on look-alikes), reports each masked with its file and line, and with a target
//! (`--data-dir` or `--url`) names the key it belongs to; `--revoke` revokes those keys.

use super::keys_backend::{Backend, TargetArgs};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use store::keys::KeyFilter;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files or directories (searched recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Look the keys up (needs --data-dir, --config or --url).
    #[arg(long)]
    lookup: bool,
    /// Revoke every key found (implies --lookup).
    #[arg(long)]
    revoke: bool,
    /// Revocation reason.
    #[arg(long, default_value = "found by tickgate keys scan")]
    reason: String,
    #[command(flatten)]
    target: TargetArgs,
}

/// Largest file read.
const MAX_FILE: u64 = 64 * 1024 * 1024;

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            if let Ok(entries) = std::fs::read_dir(path) {
                let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
                entries.sort();
                entries.iter().for_each(|p| files(p, out));
            }
        }
        Ok(meta) if meta.is_file() && meta.len() <= MAX_FILE => out.push(path.to_path_buf()),
        _ => {}
    }
}

pub async fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let mut paths = Vec::new();
    for path in &args.paths {
        if !path.exists() {
            anyhow::bail!("{} does not exist", path.display());
        }
        files(path, &mut paths);
    }
    let backend = if args.lookup || args.revoke {
        Some(Backend::open(&args.target)?)
    } else {
        None
    };
    let mut found = Vec::new();
    for path in &paths {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for hit in auth::token::scan(&text) {
            let line = text[..hit.offset].matches('\n').count() + 1;
            let hash = auth::token_hash(hit.token.expose());
            let mut report = serde_json::json!({
                "file": path.display().to_string(),
                "line": line,
                "key": auth::token::mask(hit.token.expose()),
                "environment": hit.environment,
                "sha256": store::audit::hex32::encode(&hash),
            });
            if let Some(backend) = &backend {
                let filter = KeyFilter {
                    token_hash: Some(hash),
                    ..Default::default()
                };
                let listed = backend.list(filter).await?;
                if let Some(key) = listed["keys"].as_array().and_then(|k| k.first()) {
                    let id = key["id"].as_str().unwrap_or_default().to_string();
                    report["key_id"] = id.clone().into();
                    report["status"] = key["status"].clone();
                    if args.revoke && key["status"] != "revoked" {
                        let reason = format!("{} ({}:{line})", args.reason, path.display());
                        let revoked = backend.revoke(&id, &reason).await?;
                        report["status"] = revoked["status"].clone();
                        report["revoked"] = true.into();
                    }
                } else {
                    report["key_id"] = serde_json::Value::Null;
                }
            }
            found.push(report);
        }
    }
    if args.target.json {
        println!(
            "{}",
            serde_json::json!({ "found": found, "files_scanned": paths.len() })
        );
    } else {
        for f in &found {
            println!(
                "{}:{}: {} ({}){}{}",
                f["file"].as_str().unwrap_or(""),
                f["line"],
                f["key"].as_str().unwrap_or(""),
                f["environment"].as_str().unwrap_or(""),
                f["key_id"]
                    .as_str()
                    .map(|id| format!(" key {id}"))
                    .unwrap_or_default(),
                if f["revoked"] == true { " REVOKED" } else { "" },
            );
        }
        println!("{} keys found in {} files", found.len(), paths.len());
    }
    Ok(if found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
