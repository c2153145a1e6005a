//! `examroom report …`: a compliance report computed now from the audit chain, and `examroom report verify
//! FILE`, which checks a scheduled report's signature (with the keys the deployment trusts, or `--public-key`
//! offline) and, where the database is at hand, that the chain head it names is in this audit chain.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use examroom::audit::{checkpoint, evidence, reports, signed};

use crate::support::open_db;

#[derive(Args)]
pub struct ReportArgs {
    /// access, consent, retention, exposure or accounting (with --patient).
    pub report: Option<String>,
    /// Start of the range, inclusive (ISO 8601, e.g. 2026-11-01 or 2026-11-01T00:00:00Z). Required.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range, exclusive. Required.
    #[arg(long)]
    pub to: Option<String>,
    /// IANA time zone to show times in as well (display only).
    #[arg(long)]
    pub tz: Option<String>,
    /// json or csv.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Recompute as of this chain head (the `chain_head.seq` of an earlier report).
    #[arg(long)]
    pub head_seq: Option<i64>,
    /// Overrides `reports.exposure_threshold`.
    #[arg(long)]
    pub exposure_threshold: Option<u32>,
    /// The accounting report's patient (their portal subject).
    #[arg(long)]
    pub patient: Option<String>,
    #[arg(long, conflicts_with = "data_dir")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Checks a scheduled report's file: its signature under the audit-signing key (or a replaced one the
    /// configuration still trusts), and that the chain head it names is in the audit chain. A changed file is
    /// refused (exit status 1).
    Verify {
        file: PathBuf,
        /// Check offline against this Ed25519 public key (hex, as `examroom keys status` prints it) instead of
        /// the deployment's keys; the chain head is then not checked.
        #[arg(long, conflicts_with_all = ["config", "data_dir"])]
        public_key: Option<String>,
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub async fn run(command: Option<ReportCommand>, a: ReportArgs) -> anyhow::Result<ExitCode> {
    if let Some(ReportCommand::Verify {
        file,
        public_key,
        config,
        data_dir,
    }) = command
    {
        return verify(&file, public_key.as_deref(), config, data_dir).await;
    }
    let (Some(report), Some(from), Some(to)) = (&a.report, &a.from, &a.to) else {
        anyhow::bail!(
            "a report (access, consent, retention, exposure, accounting), --from and --to are required"
        );
    };
    if a.format != "json" && a.format != "csv" {
        anyhow::bail!("--format: json or csv");
    }
    let (c, db) = open_db(a.config, a.data_dir).await?;
    let q = reports::ReportQuery::new(
        report,
        from,
        to,
        a.tz.as_deref(),
        a.exposure_threshold.unwrap_or(c.reports.exposure_threshold),
    )?
    .with_patient(a.patient.as_deref())?;
    let r = reports::produce(&db, &q, a.head_seq).await??;
    let audit = examroom::audit::Auditor::new(db.clone(), examroom::telemetry::Metrics::new().audit_events);
    audit
        .record(r.read_event().actor("cli", examroom::auth::Role::System))
        .await?;
    db.close().await;
    if a.format == "csv" {
        print!("{}", r.to_csv());
    } else {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify(
    file: &std::path::Path,
    public_key: Option<&str>,
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let (keys, db) = match public_key {
        Some(hex_key) => {
            let key = hex::decode(hex_key.trim())
                .ok()
                .filter(|k| k.len() == 32)
                .context("--public-key: an Ed25519 public key, 64 hex digits")?;
            (vec![key], None)
        }
        None => {
            let (c, db) = open_db(config, data_dir).await?;
            let signer = checkpoint::existing_signer(&c)?;
            (checkpoint::trusted_public_keys(&c, signer.as_ref()), Some(db))
        }
    };
    let verified = match signed::verify(&bytes, &keys) {
        Ok(v) => v,
        Err(e) => {
            println!("refused: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let head = &verified.chain_head;
    let chain = match &db {
        Some(db) => {
            let matches = evidence::chain_matches(db, head).await?;
            db.close().await;
            Some(matches)
        }
        None => None,
    };
    if chain == Some(false) {
        println!(
            "refused: the signature is valid, but chain head {} ({}) is not in this audit chain",
            head.seq, head.hash
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "valid: the {} report of schedule {} for {} to {}, executed {}, signed by key {}",
        verified.report, verified.schedule, verified.from, verified.to, verified.executed_at, verified.key_id
    );
    match chain {
        Some(_) => println!("chain head {} ({}) is in this audit chain", head.seq, head.hash),
        None => println!("chain head {} ({}) not checked (offline)", head.seq, head.hash),
    }
    Ok(ExitCode::SUCCESS)
}
