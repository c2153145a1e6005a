//! Rules for a deployment's configuration beyond what each key allows alone: what `serve` and `check-config`
//! refuse in a file that would give remote patients no video, and what they warn about.

use url::Url;

use super::validate::is_loopback;
use super::{Config, Problem};

/// Whether browsers reach this broker over TLS at a name that is not this machine: a real deployment.
fn is_remote_tls(c: &Config) -> bool {
    Url::parse(&c.server.public_url).is_ok_and(|u| u.scheme() == "https" && !is_loopback(&u))
}

/// Rules for a deployment's configuration file (not `examroom dev`): patients on mobile networks and behind
/// hospital or home firewalls that block UDP get no video without a TURN server, so a broker served over TLS
/// to remote browsers must name one.
pub fn deployment(c: &Config) -> Vec<Problem> {
    let mut p = Vec::new();
    let has_turn = c
        .media
        .turn_urls
        .iter()
        .any(|u| u.starts_with("turn:") || u.starts_with("turns:"));
    if is_remote_tls(c) && c.server.metrics_token_file.is_none() {
        p.push(Problem::new(
            "server.metrics_token_file",
            "a deployment served over https must not publish its metrics: give /metrics a bearer token",
        ));
    }
    p.extend(key_file_modes(c));
    p.extend(shared_keys(c));
    if is_remote_tls(c) && !has_turn {
        p.push(Problem::new(
            "media.turn_urls",
            "a deployment served over https needs a TURN server (turn: and turns: URLs): browsers behind \
             firewalls that block UDP get no video without one",
        ));
    }
    p
}

/// On PostgreSQL several nodes may share the database: a key each generates for itself would differ between
/// them (messages sealed on one node unreadable on another, checkpoints under several keys, log pseudonyms that
/// stop matching), so every key must come from a file all nodes are given.
/// Whether the configuration names PostgreSQL (several nodes may share it).
fn is_postgres(c: &Config) -> bool {
    match c.database_url() {
        Ok(url) => secrecy::ExposeSecret::expose_secret(&url).starts_with("postgres"),
        // An unreadable URL file is reported on its own; such a file holds a PostgreSQL password.
        Err(_) => c.database.url_file.is_some(),
    }
}

fn shared_keys(c: &Config) -> Vec<Problem> {
    if !is_postgres(c) {
        return Vec::new();
    }
    let why = "with PostgreSQL every node must use the same key: name a file each node is given";
    let mut p = Vec::new();
    if c.messaging.kek_files.is_empty() {
        p.push(Problem::new("messaging.kek_files", why));
    }
    if c.logging.pseudonym_key_file.is_none() {
        p.push(Problem::new("logging.pseudonym_key_file", why));
    }
    if c.audit.signing_key_file.is_none() {
        p.push(Problem::new("audit.signing_key_file", why));
    }
    if c.cluster.key_file.is_none() {
        p.push(Problem::new("cluster.key_file", why));
    }
    p
}

/// What is allowed but almost certainly wrong; `check-config` prints these and `serve` logs them.
pub fn warnings(c: &Config) -> Vec<Problem> {
    let mut w = Vec::new();
    let public = Url::parse(&c.server.public_url).ok();
    let public_is_local = public.as_ref().is_none_or(is_loopback);
    if public.as_ref().is_some_and(|u| u.scheme() == "http") && !public_is_local {
        w.push(Problem::new(
            "server.public_url",
            "plain http on an address other than loopback: sessions and patient data cross the network \
             unencrypted; serve https (a TLS proxy in front of the broker)",
        ));
    }
    let loopback_only = c
        .media
        .bind_ips
        .iter()
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        .all(|ip| ip.is_loopback());
    let internal_local = c
        .cluster
        .internal_listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if is_postgres(c) && !public_is_local && internal_local {
        w.push(Problem::new(
            "cluster.internal_listen",
            "a loopback address on PostgreSQL: nodes on other hosts cannot reach this one (routing calls to it \
             fail when it leads); bind the private network address",
        ));
    }
    if !public_is_local && loopback_only {
        w.push(Problem::new(
            "media.bind_ips",
            format!(
                "only loopback addresses, but server.public_url ({}) is not on this machine: remote browsers \
                 will get no video; bind the interface address (and set media.announced_ips behind a NAT)",
                c.server.public_url
            ),
        ));
    }
    w
}

/// Every key and secret file the configuration names, by key (and the generated ones in the data directory).
pub fn key_files(c: &Config) -> Vec<(String, std::path::PathBuf)> {
    let mut files = Vec::new();
    for (i, f) in c.messaging.kek_files.iter().enumerate() {
        files.push((format!("messaging.kek_files[{i}]"), f.clone()));
    }
    let optional = [
        ("logging.pseudonym_key_file", c.logging.pseudonym_key_file.clone()),
        ("audit.signing_key_file", c.audit.signing_key_file.clone()),
        ("cluster.key_file", c.cluster.key_file.clone()),
        ("media.turn_secret_file", c.media.turn_secret_file.clone()),
        ("server.metrics_token_file", c.server.metrics_token_file.clone()),
        ("database.url_file", c.database.url_file.clone()),
        (
            "auth.staff.client_secret_file",
            c.auth.staff.as_ref().and_then(|s| s.client_secret_file.clone()),
        ),
        (
            "recording.s3.secret_access_key_file",
            c.recording
                .s3
                .as_ref()
                .and_then(|s| s.secret_access_key_file.clone()),
        ),
    ];
    files.extend(
        optional
            .into_iter()
            .filter_map(|(k, f)| f.map(|f| (k.to_string(), f))),
    );
    for (i, w) in c.siem.webhooks.iter().enumerate() {
        files.push((format!("siem.webhooks[{i}].secret_file"), w.secret_file.clone()));
        if let Some(key) = &w.client_key_file {
            files.push((format!("siem.webhooks[{i}].client_key_file"), key.clone()));
        }
    }
    let keys = c.server.data_dir.join("keys");
    for generated in ["kek.hex", "audit-signing.pk8", "cluster.key"] {
        files.push(("server.data_dir".to_string(), keys.join(generated)));
    }
    files.push((
        "server.data_dir".to_string(),
        c.server.data_dir.join("pseudonym.key"),
    ));
    files
}

/// A key file others on the host can read is a key already half shared: refused, naming the file.
fn key_file_modes(c: &Config) -> Vec<Problem> {
    use std::os::unix::fs::PermissionsExt;
    key_files(c)
        .into_iter()
        .filter_map(|(key, path)| {
            let mode = std::fs::metadata(&path).ok()?.permissions().mode();
            (mode & 0o077 != 0).then(|| {
                Problem::new(
                    key,
                    format!(
                        "{} is readable or writable by group or others (mode {:o}): chmod 600 it",
                        path.display(),
                        mode & 0o777
                    ),
                )
            })
        })
        .collect()
}
