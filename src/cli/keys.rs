//! `examroom keys generate|status|rewrap` and `examroom backup`: making keys, seeing what each key protects,
//! re-wrapping data keys after a key-encryption key rotation, and the database copy a restore starts from.
//! The procedures are in docs/operations.md ("Backups" and "Rotation").

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use examroom::audit::checkpoint::{self, Signer};
use examroom::crypto::Keyring;

use crate::args::{KeyKind, KeysCommand};
use crate::support::open_db;

pub async fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Generate { kind, out } => generate(kind, &out),
        KeysCommand::Status { config, data_dir } => status(config, data_dir).await,
        KeysCommand::Rewrap { config, data_dir } => rewrap(config, data_dir).await,
    }
}

fn generate(kind: KeyKind, out: &Path) -> anyhow::Result<ExitCode> {
    let bytes = match kind {
        KeyKind::AuditSigning => Signer::generate_pkcs8(),
        _ => examroom::ids::random_hex(32).into_bytes(),
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("{} (an existing key file is never overwritten)", out.display()))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    match kind {
        KeyKind::Kek => {
            let ring = Keyring::load(&[out.to_path_buf()])?;
            println!(
                "key-encryption key {} written to {}: add it to messaging.kek_files on every node (docs/operations.md, \
                 Rotation)",
                ring.current_id(),
                out.display()
            );
        }
        KeyKind::AuditSigning => {
            let signer = Signer::from_pkcs8(&bytes).context("a generated key parses")?;
            let public = signer.public_key();
            println!(
                "audit signing key {} written to {}; public key {}",
                checkpoint::key_id(&public),
                out.display(),
                hex::encode(&public)
            );
        }
        _ => println!("written to {}", out.display()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (c, db) = open_db(config, data_dir).await?;
    let keyring = Keyring::load(&c.kek_files()).context("messaging.kek_files")?;
    let keks = examroom::keys::usage(&db, &keyring).await?;
    let checkpoints = db.checkpoints().await?;
    db.close().await;

    println!("key-encryption keys (messaging.kek_files):");
    for k in &keks {
        let wraps: Vec<String> = k
            .wraps
            .iter()
            .map(|(kind, n)| format!("{n} {}", kind.name()))
            .collect();
        let wraps = if wraps.is_empty() {
            "no data keys".to_string()
        } else {
            wraps.join(", ")
        };
        println!("  {}  {}; {}", k.kek_id, k.verdict(), wraps);
    }

    let signer = checkpoint::existing_signer(&c)?;
    let trusted = checkpoint::trusted_public_keys(&c, signer.as_ref());
    println!("audit signing key (audit.signing_key_file):");
    if signer.is_none() {
        println!("  current  none yet (made at the broker's first start)");
    }
    for (i, public) in trusted.iter().enumerate() {
        let id = checkpoint::key_id(public);
        let signed = checkpoints.iter().filter(|cp| cp.key_id == id).count();
        let role = if i == 0 && signer.is_some() {
            "current "
        } else {
            "previous"
        };
        println!(
            "  {role} {id}  public key {}; {signed} checkpoint(s)",
            hex::encode(public)
        );
    }
    let untrusted: std::collections::BTreeSet<&str> = checkpoints
        .iter()
        .map(|cp| cp.key_id.as_str())
        .filter(|id| !trusted.iter().any(|k| checkpoint::key_id(k) == *id))
        .collect();
    for id in &untrusted {
        println!(
            "  UNKNOWN  {id}: checkpoints signed by a key whose public key is not in audit.previous_public_keys"
        );
    }

    match &c.media.turn_secret_file {
        Some(path) => println!(
            "TURN secret (media.turn_secret_file): {}; credentials last {} s: after switching to a new secret, \
             keep the old one in coturn (a second static-auth-secret) at least that long",
            path.display(),
            c.media.turn_credential_seconds
        ),
        None => println!("TURN secret: none configured"),
    }

    println!("key files to keep (apart from database backups; without them the data cannot be read):");
    for (key, path) in examroom::config::key_files(&c) {
        if path.exists() {
            println!("  {key}: {}", path.display());
        }
    }
    let missing = keks.iter().any(|k| !k.in_keyring) || !untrusted.is_empty();
    Ok(if missing {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

async fn rewrap(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (c, db) = open_db(config, data_dir).await?;
    let keyring = Keyring::load(&c.kek_files()).context("messaging.kek_files")?;
    let report = examroom::keys::rewrap(&db, &keyring).await?;
    let left = examroom::keys::usage(&db, &keyring).await?;
    db.close().await;
    for (kind, n) in &report.rewrapped {
        println!("re-wrapped {n} {} under {}", kind.name(), keyring.current_id());
    }
    println!("{} data key(s) re-wrapped", report.total());
    if report.raced > 0 {
        println!("{} changed while being re-wrapped: run again", report.raced);
    }
    for (kek, n) in &report.unreadable {
        println!(
            "{n} data key(s) wrapped by {kek} could not be opened (is that key in messaging.kek_files?)"
        );
    }
    for k in left.iter().filter(|k| !k.current) {
        println!("{}: {}", k.kek_id, k.verdict());
    }
    // Not done until nothing is left: a row a broker changed meanwhile is taken by the next run.
    Ok(if !report.unreadable.is_empty() {
        ExitCode::from(2)
    } else if report.raced > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn backup(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let (_, db) = open_db(config, data_dir).await?;
    // The copy is made into an empty file created here with mode 0600, so it is never readable by others,
    // not even while it is written (SQLite's VACUUM INTO accepts an empty target).
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("--out: {} (a backup never overwrites a file)", out.display()))?;
    let result = db.backup_sqlite(out).await;
    db.close().await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(out);
        return Err(e.into());
    }
    println!(
        "database copied to {} (sealed messages and wrapped keys: useless without the key files `examroom keys \
         status` lists)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
