//! The `examroom` command line. Everything it runs lives in the library; this file parses arguments, sets up
//! logging and maps failures to exit codes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use examroom::app::App;
use examroom::config;

#[path = "cli/args.rs"]
mod args;
#[path = "cli/audit.rs"]
mod audit;
#[path = "cli/cluster.rs"]
mod cluster;
#[path = "cli/keys.rs"]
mod keys;
#[path = "cli/report.rs"]
mod report;
#[path = "cli/support.rs"]
mod support;

use args::{AuditCommand, ClusterCommand, KeysCommand, RetentionCommand, SessionsCommand};
use support::{load, open_db, start_logging};

#[derive(Parser)]
#[command(name = "examroom", version, about = "Telehealth video session broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a complete local demo: SQLite, a development OpenID provider and demo users.
    /// Options can also come from the environment under the names of the configuration keys they set, so
    /// `cargo run -- dev` as the README writes it can be pointed elsewhere without editing the command.
    Dev {
        /// Address the demo listens on (port 0 picks a free one).
        #[arg(long, env = "EXAMROOM_SERVER__LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the SQLite database, keys and demo credentials live.
        #[arg(long, env = "EXAMROOM_SERVER__DATA_DIR", default_value = "./.examroom")]
        data_dir: PathBuf,
        /// URL browsers use when the demo sits behind NAT or a proxy (the development provider's issuer is
        /// under it too, so the broker must reach it as well); defaults to `http://` + the bound address.
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Run the broker with a configuration file (never starts the development provider).
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a configuration file and print every problem, naming its key.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// What hospital IT has to allow (from where to where, ports, protocols, TLS names), from the configuration.
    NetworkRequirements {
        #[arg(long)]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Several brokers on one database: their state.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Ask a running node to drain and stop, as SIGTERM does (it reports not-ready, moves its sockets, waits
    /// up to `cluster.drain_seconds` for its live visits, then exits); waits until it has left the cluster.
    Drain {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The node to drain (default: the configuration's `cluster.node_id`).
        #[arg(long)]
        node: Option<String>,
    },
    /// Sessions of staff and patients.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Recording retention.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Key rotation and custody: key-encryption keys, the audit signing key, the TURN secret.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// A consistent copy of the SQLite database while the broker runs (PostgreSQL: use pg_dump). Keys are not
    /// in it: `examroom keys status` lists the key files to keep, apart from the database copies.
    Backup {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The file to write (it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Audit trail maintenance.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A compliance report (access, consent, retention, exposure, accounting) over a UTC time range, computed
    /// from the audit chain; it names the chain head it read, and `--head-seq` recomputes it as of that head.
    /// `examroom report verify FILE` checks a scheduled report's signed file.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Report {
        #[command(subcommand)]
        command: Option<report::ReportCommand>,
        #[command(flatten)]
        args: report::ReportArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("examroom: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Dev {
            listen,
            data_dir,
            public_url,
        } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("bind {listen}"))?;
            let addr = listener.local_addr()?;
            let public_url = public_url
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("http://{addr}"));
            let env: Vec<(String, String)> = std::env::vars().collect();
            let (config, idp) = examroom::dev::config(&data_dir, &addr.to_string(), &public_url, &env)?;
            start_logging(&config)?;
            let app = App::build(config, Some(idp.clone())).await?;
            print!("{}", examroom::dev::banner(&public_url, &idp));
            examroom::serve(Arc::new(app), listener, examroom::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config } => {
            let config = load(&config)?;
            start_logging(&config)?;
            for w in config::warnings(&config) {
                tracing::warn!(key = %w.key, "{}", w.message);
            }
            let listener = tokio::net::TcpListener::bind(&config.server.listen)
                .await
                .with_context(|| format!("server.listen: cannot bind {}", config.server.listen))?;
            tracing::info!(listen = %listener.local_addr()?, "examroom serving");
            let app = App::build(config, None).await?;
            examroom::serve(Arc::new(app), listener, examroom::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => {
            let loaded = config::load_file(&config);
            let mut problems = match &loaded {
                Ok(_) => Vec::new(),
                Err(e) => e.problems.clone(),
            };
            if let Ok(c) = &loaded
                && let Err(p) = examroom::policy::AccessPolicy::load(c.policy.access_file.as_deref())
            {
                problems.extend(p);
            }
            if let Ok(c) = &loaded {
                let queues: Vec<String> = c.queues().into_iter().map(|q| q.name).collect();
                match examroom::policy::recording::RecordingPolicies::load(
                    c.policy.recording_file.as_deref(),
                    &queues,
                ) {
                    Ok(policies) => {
                        let key = if c.policy.recording_file.is_some() {
                            "policy.recording_file"
                        } else {
                            "policies/recording.toml"
                        };
                        for w in policies.viewer_warnings(key) {
                            eprintln!("warning: {w}");
                        }
                    }
                    Err(p) => problems.extend(p),
                }
            }
            if let Ok(c) = &loaded {
                for w in config::warnings(c) {
                    eprintln!("warning: {w}");
                }
            }
            if problems.is_empty() {
                println!("{}: configuration is valid", config.display());
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{}: {} problem(s)", config.display(), problems.len());
                for p in problems {
                    eprintln!("  {p}");
                }
                Ok(ExitCode::from(2))
            }
        }
        Command::Cluster {
            command:
                ClusterCommand::Status {
                    config,
                    data_dir,
                    json,
                },
        } => cluster::status(config, data_dir, json).await,
        Command::Drain {
            config,
            data_dir,
            node,
        } => cluster::drain(config, data_dir, node).await,
        Command::Sessions {
            command:
                SessionsCommand::Revoke {
                    config,
                    data_dir,
                    subject,
                    reason,
                },
        } => {
            if reason.trim().is_empty() {
                anyhow::bail!("--reason must say why (it goes into the audit trail)");
            }
            let (c, db) = open_db(config, data_dir).await?;
            // The broker's pseudonym key: the person is named in the audit trail the way its logs name them.
            start_logging(&c)?;
            let audit =
                examroom::audit::Auditor::new(db.clone(), examroom::telemetry::Metrics::new().audit_events);
            let sessions = examroom::auth::session::Sessions::new(db.clone());
            let revoked = sessions
                .revoke_subject(&examroom::ids::SubjectId::new(subject.clone()))
                .await?;
            // One event for the person (even with nothing live: the revocation itself is the fact), one per session.
            let person = format!("subject:{}", examroom::pii::pseudonym(&subject));
            let events = std::iter::once(("auth.subject_revoked", person)).chain(
                revoked
                    .iter()
                    .map(|id| ("auth.session_revoked", format!("session:{id}"))),
            );
            for (action, resource) in events {
                let event =
                    examroom::audit::AuditEvent::new(action, resource, examroom::audit::Outcome::Success)
                        .actor("cli", examroom::auth::Role::System)
                        .reason(reason.clone());
                audit.record(event).await?;
            }
            db.close().await;
            println!("revoked {} session(s)", revoked.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Retention {
            command:
                RetentionCommand::Sweep {
                    config,
                    data_dir,
                    dry_run,
                    now,
                },
        } => {
            let now = match now {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .context("--now: expected an RFC 3339 time such as 2032-01-01T00:00:00Z")?
                    .timestamp_millis(),
                None => examroom::clock::now_ms(),
            };
            let (c, db) = open_db(config, data_dir).await?;
            let work = examroom::recording::workdir::LocalStore::new(&c.server.data_dir.join("recordings"))
                .context("recording storage")?;
            let objects = examroom::recording::objects::from_config(&c, &work).await?;

            let audit =
                examroom::audit::Auditor::new(db.clone(), examroom::telemetry::Metrics::new().audit_events);
            let receipts =
                examroom::recording::retention::sweep(&db, objects.as_ref(), &audit, now, dry_run).await?;
            let phi = examroom::messaging::retention::sweep(&db, &audit, &c.retention, now, dry_run).await?;
            db.close().await;
            for r in &phi {
                println!(
                    "{} {} ({} messages, context {}, wrap-up {}, data key destroyed {})",
                    if dry_run { "due" } else { "removed" },
                    r.record,
                    r.messages,
                    r.context,
                    r.wrap_up,
                    r.key_destroyed
                );
            }
            for r in &receipts {
                println!(
                    "{} {} (policy {}, retained until {}, {} bytes)",
                    if dry_run { "would delete" } else { "deleted" },
                    r.recording,
                    r.policies,
                    examroom::clock::timestamp(r.retain_until_ms),
                    r.bytes
                );
            }
            println!(
                "{} recording(s) {}",
                receipts.len(),
                if dry_run {
                    "past retention (dry run: nothing deleted)"
                } else {
                    "deleted"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::NetworkRequirements { config, json } => {
            let c = load(&config)?;
            let database = c.database_url().map_err(|e| anyhow::anyhow!("{e}"))?;
            let rules =
                config::network::requirements(&c, Some(secrecy::ExposeSecret::expose_secret(&database)));
            if json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
            } else {
                print!("{}", config::network::render(&rules));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command } => audit::run(command).await,
        Command::Keys { command } => keys::run(command).await,
        Command::Backup {
            config,
            data_dir,
            out,
        } => keys::backup(config, data_dir, &out).await,
        Command::Report { command, args } => report::run(command, args).await,
    }
}
