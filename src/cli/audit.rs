//! `examroom audit verify|checkpoint|export`: the audit chain and its signed checkpoints, checked on the
//! database or on an export, with every public key the deployment trusts (the signing key's and those of keys
//! it replaced, `audit.previous_public_keys`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use examroom::audit::checkpoint::{self, Checkpoint};

use crate::args::AuditCommand;
use crate::support::open_db;

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            events: Some(events),
            checkpoints: Some(checkpoints),
            public_key: Some(public_key),
            ..
        } => verify_export(&events, &checkpoints, &public_key),
        AuditCommand::Verify { config, data_dir, .. } => verify_stored(config, data_dir).await,
        AuditCommand::Checkpoint { config, data_dir } => {
            let (c, db) = open_db(config, data_dir).await?;
            let signer = checkpoint::load_or_create_signer(&c)?;
            let made = checkpoint::checkpoint_now(&db, &signer, examroom::clock::now_ms()).await?;
            db.close().await;
            match made {
                Some(cp) => println!("checkpoint signed at event {} ({})", cp.seq, cp.key_id),
                None => println!("no new events since the last checkpoint"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export {
            config,
            data_dir,
            out,
        } => export(config, data_dir, &out).await,
    }
}

fn read_lines(p: &Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string(p)
        .with_context(|| p.display().to_string())?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// Offline: the export's events and checkpoints against the public keys file (one hex key per line).
fn verify_export(events: &Path, checkpoints: &Path, public_key: &Path) -> anyhow::Result<ExitCode> {
    let events: Vec<examroom::store::AuditRow> = read_lines(events)?
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()
        .context("--events: one JSON event per line")?;
    let checkpoints: Vec<Checkpoint> = read_lines(checkpoints)?
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()
        .context("--checkpoints: one JSON checkpoint per line")?;
    let keys: Vec<Vec<u8>> = read_lines(public_key)?
        .iter()
        .map(|l| hex::decode(l.trim()))
        .collect::<Result<_, _>>()
        .context("--public-key: one hex public key per line")?;
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    match checkpoint::verify_offline(&events, &checkpoints, &keys) {
        Ok(s) => {
            println!(
                "audit export intact: {} events, {} checkpoints, signed through event {}",
                s.events, s.checkpoints, s.last_checkpoint
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            println!("audit export BROKEN: {b}");
            Ok(ExitCode::from(3))
        }
    }
}

/// Online: the stored chain, then every stored checkpoint against the trusted keys.
async fn verify_stored(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (c, db) = open_db(config, data_dir).await?;
    let chain = examroom::audit::verify::verify_stored(&db).await?;
    let summary = match chain {
        Ok(summary) => summary,
        Err(br) => {
            db.close().await;
            println!("audit chain BROKEN at event {}: {br}", br.seq());
            return Ok(ExitCode::from(3));
        }
    };
    let signer = checkpoint::existing_signer(&c)?;
    let keys = checkpoint::trusted_public_keys(&c, signer.as_ref());
    let signed = checkpoint::verify_stored_checkpoints(&db, &keys).await?;
    db.close().await;
    match signed {
        Some(Err(b)) => {
            println!("audit chain BROKEN: {b}");
            Ok(ExitCode::from(3))
        }
        Some(Ok(s)) => {
            println!(
                "audit chain intact: {} events, head {}; {} checkpoints verified, signed through event {}",
                summary.events, summary.head_hash, s.checkpoints, s.last_checkpoint
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!(
                "audit chain intact: {} events, head {}; no checkpoint signed yet",
                summary.events, summary.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Events, checkpoints and every trusted public key (current first), for offline verification.
async fn export(config: Option<PathBuf>, data_dir: Option<PathBuf>, out: &Path) -> anyhow::Result<ExitCode> {
    let (c, db) = open_db(config, data_dir).await?;
    std::fs::create_dir_all(out)?;
    let mut events = String::new();
    let mut after = 0;
    loop {
        let page = db.audit_events(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            events.push_str(&serde_json::to_string(e)?);
            events.push('\n');
        }
    }
    let mut cps = String::new();
    for cp in db.checkpoints().await? {
        cps.push_str(&serde_json::to_string(&cp)?);
        cps.push('\n');
    }
    db.close().await;
    let signer = checkpoint::existing_signer(&c)?;
    anyhow::ensure!(
        signer.is_some(),
        "no audit signing key: nothing was signed on this node"
    );
    let keys: String = checkpoint::trusted_public_keys(&c, signer.as_ref())
        .iter()
        .map(|k| format!("{}\n", hex::encode(k)))
        .collect();
    std::fs::write(out.join("events.jsonl"), events)?;
    std::fs::write(out.join("checkpoints.jsonl"), cps)?;
    std::fs::write(out.join("audit-public-key.hex"), keys)?;
    println!("exported to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
