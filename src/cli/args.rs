//! The command line's subcommands besides `dev`, `serve` and `check-config` (clap definitions only; `main.rs`
//! runs them).

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// Ends every live session of one person at once (removed at the identity provider, a lost device), with an
    /// audit event. A running broker closes their open sockets within a second.
    Revoke {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The person's subject (`sub`) at the identity provider.
        #[arg(long)]
        subject: String,
        /// Why, for the audit trail (a ticket number, "left the organisation").
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Deletes stored recordings past their retention that are not on legal hold, with audited receipts.
    Sweep {
        /// Broker configuration (for `serve` deployments).
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<std::path::PathBuf>,
        /// Data directory of an `examroom dev` broker.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Sweep as of this time (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; names the first bad event and exits non-zero if the trail was tampered with.
    /// With `--events`, `--checkpoints` and `--public-key` it verifies an export offline, checkpoints included.
    Verify {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Exported events (JSON lines), for offline verification.
        #[arg(long, requires_all = ["checkpoints", "public_key"])]
        events: Option<PathBuf>,
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// The broker's audit public key (hex), as `audit export` writes it.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Sign a checkpoint of the chain head now (the broker also does so every minute).
    Checkpoint {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Export the events, the checkpoints and the public key for offline verification.
    Export {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Directory to write events.jsonl, checkpoints.jsonl and audit-public-key.hex into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Nodes (heartbeat, sockets, live visits, draining, leases), lease holders and queue depths; exits 2 when
    /// the cluster is degraded (a node that stopped heartbeating without leaving, a lease with no live holder).
    Status {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// What `keys generate` makes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KeyKind {
    /// A key-encryption key (`messaging.kek_files`): 32 random bytes as hex.
    Kek,
    /// An audit checkpoint signing key (`audit.signing_key_file`): Ed25519, PKCS#8 DER.
    AuditSigning,
    /// coturn's shared secret (`media.turn_secret_file`, coturn's `static-auth-secret`).
    TurnSecret,
    /// The node-to-node signing key (`cluster.key_file`).
    Cluster,
    /// The key behind log pseudonyms (`logging.pseudonym_key_file`).
    Pseudonym,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Writes a new random key (mode 0600; an existing file is never overwritten) and prints its id.
    Generate {
        #[arg(long, value_enum)]
        kind: KeyKind,
        #[arg(long)]
        out: PathBuf,
    },
    /// Which key-encryption keys wrap how many data keys (and which can be removed), the audit signing key's
    /// id and public key, checkpoints per signing key, the TURN secret's overlap, and every key file to back
    /// up. Exits 2 when a stored data key names a key-encryption key missing from the keyring.
    Status {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Re-wraps every stored data key under the current (first) key-encryption key, beside running brokers;
    /// afterwards the old keys wrap nothing and can leave `messaging.kek_files`. Exits 2 if some could not be
    /// opened, 3 if some changed while it ran (run it again).
    Rewrap {
        #[arg(long, conflicts_with = "data_dir")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}
