//! What several commands share: the configuration and database a command works on, and logging with the
//! broker's pseudonym key.

use std::path::{Path, PathBuf};

use anyhow::Context;
use examroom::config::{self, Config};

/// The configuration (`--config`, or defaults around `--data-dir`) and its database.
pub async fn open_db(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<(Config, examroom::store::Db)> {
    let c = match config {
        Some(path) => load(&path)?,
        // The demo's configuration, as `examroom dev` builds it from the same data directory and environment
        // (its database, or the override it was started with; its key files), when the directory has the
        // demo's provider; otherwise the defaults around the directory. A directory with no database in it is
        // refused rather than given an empty one (a mistyped path).
        None => {
            let dir = data_dir.unwrap_or_else(|| Path::new("./.examroom").to_path_buf());
            let database_override = std::env::var("EXAMROOM_DATABASE__URL").ok();
            if database_override.is_none() && !dir.join("examroom.db").is_file() {
                anyhow::bail!("--data-dir: no database in {} (examroom.db)", dir.display());
            }
            if dir.join("dev-idp").is_dir() {
                let env: Vec<(String, String)> = std::env::vars().collect();
                examroom::dev::config(&dir, "127.0.0.1:0", "http://127.0.0.1", &env)?.0
            } else {
                let mut c = Config::default();
                c.server.data_dir = dir;
                c.database.url = database_override.map(secrecy::SecretString::from);
                c
            }
        }
    };
    let url = c.database_url().map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = examroom::store::Db::connect(&url, Some(1))
        .await
        .context("database")?;
    Ok((c, db))
}

pub fn load(path: &Path) -> anyhow::Result<Config> {
    config::load_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Logging, and the key behind log pseudonyms (from config, or generated once into the data directory so
/// pseudonyms stay stable across restarts).
pub fn start_logging(config: &Config) -> anyhow::Result<()> {
    examroom::telemetry::init_logging(&config.logging);
    let path = match &config.logging.pseudonym_key_file {
        Some(p) => p.clone(),
        None => {
            std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
                format!(
                    "server.data_dir: cannot create {}",
                    config.server.data_dir.display()
                )
            })?;
            let p = config.server.data_dir.join("pseudonym.key");
            if !p.exists() {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&p)?;
                f.write_all(examroom::ids::random_hex(32).as_bytes())?;
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("logging.pseudonym_key_file: {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .with_context(|| {
            format!(
                "logging.pseudonym_key_file: {} must hold 32 bytes as hex",
                path.display()
            )
        })?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    examroom::pii::set_pseudonym_key(key);
    Ok(())
}
