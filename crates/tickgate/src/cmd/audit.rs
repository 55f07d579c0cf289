//! `tickgate audit verify`: checks the hash chain of the audit log and names the first broken
//! entry. Offline it reads the data directory; with `--url` it downloads the log through the
//! admin API and verifies it here (so a compromised server cannot just answer "ok").

use super::keys_backend::{Backend, TargetArgs};
use anyhow::Context;
use clap::Subcommand;
use std::process::ExitCode;
use store::audit::{AuditEntry, ChainBreak, ChainVerifier, hex32, verify_chain};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log's hash chain. Exit 0: intact; 3: broken (the first broken entry
    /// is named).
    Verify {
        #[command(flatten)]
        target: TargetArgs,
    },
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { target } = command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let backend = Backend::open(&target)?;
    let result = runtime.block_on(verify(&backend))?;
    let report = match &result {
        Ok(entries) => serde_json::json!({ "ok": true, "entries": entries }),
        Err(broken) => serde_json::json!({
            "ok": false, "first_broken": broken.seq, "reason": broken.reason,
        }),
    };
    if target.json {
        println!("{report}");
    } else {
        match &result {
            Ok(entries) => println!("audit log intact: {entries} entries verified"),
            Err(broken) => println!(
                "audit log BROKEN at entry {}: {}",
                broken.seq, broken.reason
            ),
        }
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

async fn verify(backend: &Backend) -> anyhow::Result<Result<u64, ChainBreak>> {
    if let Some(service) = backend.offline() {
        return Ok(verify_chain(service.audit().as_ref())?);
    }
    let mut verifier = ChainVerifier::default();
    let mut after = 0u64;
    let head = loop {
        let page = backend
            .call(
                reqwest::Method::GET,
                &format!("/admin/v1/audit?after={after}&limit=1000"),
                None,
            )
            .await?;
        let entries: Vec<AuditEntry> =
            serde_json::from_value(page["entries"].clone()).context("unreadable audit page")?;
        for entry in &entries {
            if let Err(broken) = verifier.push(entry) {
                return Ok(Err(broken));
            }
        }
        match entries.last() {
            Some(last) => after = last.seq,
            None => break page["head"].clone(),
        }
    };
    let head = match (
        head["seq"].as_u64(),
        head["hash"].as_str().and_then(hex32::decode),
    ) {
        (Some(seq), Some(hash)) => Some((seq, hash)),
        _ => None,
    };
    Ok(verifier.finish(head))
}
