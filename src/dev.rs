//! `examroom dev`: a complete demo on one machine with nothing else installed. It writes a configuration that
//! points the broker at its own development OpenID provider (over HTTP, like any provider), a SQLite database
//! and key files in the data directory, and prints where to go and how to sign in.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, ConfigError, DevConfig, load_dev_str};
use crate::dev_idp::{API_AUDIENCE, DevIdp, GROUP_ROLES, GROUP_SKILLS, PORTAL_CLIENT, WORKSPACE_CLIENT};

/// Builds the dev configuration for a broker reachable at `public_url`, with `env` overrides applied.
pub fn config(
    data_dir: &Path,
    listen: &str,
    public_url: &str,
    env: &[(String, String)],
) -> anyhow::Result<(Config, Arc<DevIdp>)> {
    let idp_dir = data_dir.join("dev-idp");
    let idp = Arc::new(DevIdp::open(&idp_dir, public_url)?);
    let issuer = idp.issuer().to_string();
    let mut text = String::new();
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    writeln!(
        text,
        "[server]\nlisten = {}\npublic_url = {}\ndata_dir = {}",
        q(listen),
        q(public_url),
        q(&data_dir.display().to_string())
    )?;
    writeln!(
        text,
        "[auth.staff]\nissuer = {}\nclient_id = {}\nclient_secret = {}\nroles_claim = \"groups\"",
        q(&issuer),
        q(WORKSPACE_CLIENT),
        q(&idp.credentials.workspace_client_secret)
    )?;
    writeln!(text, "[auth.staff.role_mapping]")?;
    for (group, role) in GROUP_ROLES {
        writeln!(text, "{} = {}", q(group), q(role))?;
    }
    writeln!(text, "[auth.staff.skill_mapping]")?;
    for (group, skill) in GROUP_SKILLS {
        writeln!(text, "{} = {}", q(group), q(skill))?;
    }
    writeln!(
        text,
        "[auth.patient]\nissuer = {}\naudiences = [{}]",
        q(&issuer),
        q(PORTAL_CLIENT)
    )?;
    writeln!(
        text,
        "[auth.service]\nissuer = {}\naudience = {}",
        q(&issuer),
        q(API_AUDIENCE)
    )?;
    // Two demo queues: general triage, and one that needs a Spanish-speaking nurse.
    writeln!(
        text,
        "[[queues]]\nname = \"triage\"\nmax_wait_seconds = 1800\n\
         reassurance = [{{ after_seconds = 30, text = \"Thank you for waiting. A nurse will be with you shortly.\" }}, \
         {{ after_seconds = 120, every_seconds = 180, text = \"You are still in line and have not lost your place.\" }}]\n\
         [[queues]]\nname = \"spanish\"\nskills = [\"spanish\"]\nlanguage = \"es\"\n\
         reassurance = [{{ after_seconds = 30, text = \"Gracias por esperar. Una enfermera le atenderá pronto.\" }}, \
         {{ after_seconds = 120, every_seconds = 180, text = \"Sigue en la fila y no ha perdido su lugar.\" }}]"
    )?;
    let config =
        load_dev_str(&text, env, DevConfig { idp_dir }).map_err(|e: ConfigError| anyhow::anyhow!("{e}"))?;
    Ok((config, idp))
}

/// The start-up banner: URLs and demo credentials (stdout, not the log).
pub fn banner(public_url: &str, idp: &DevIdp) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "examroom dev is running at {public_url}/");
    let _ = writeln!(s, "  staff sign-in   {public_url}/auth/login");
    let _ = writeln!(
        s,
        "  demo portal     {public_url}/portal/   (patients start here)"
    );
    let _ = writeln!(s, "  dev provider    {}", idp.issuer());
    let _ = writeln!(s, "demo accounts (user name / password):");
    for u in &idp.credentials.users {
        let _ = writeln!(
            s,
            "  {:<12} {} / {}   ({})",
            u.username, u.username, u.password, u.role
        );
    }
    let _ = writeln!(s, "Stop with Ctrl-C.");
    s
}
