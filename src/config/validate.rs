//! Semantic checks that types alone cannot express. Each returns every problem, not just the first.

use std::net::SocketAddr;

use secrecy::ExposeSecret;
use url::Url;

use super::{Config, Problem};
use crate::role::Role;

/// Asymmetric algorithms only: an HMAC algorithm here would let anyone holding the provider's *public* key
/// forge tokens (the RS256→HS256 confusion attack).
pub const ALLOWED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

pub const MAX_CLOCK_SKEW_SECONDS: u64 = 60;

pub fn validate(c: &Config) -> Vec<Problem> {
    let mut p = Vec::new();
    p.extend(c.limits.problems());
    p.extend(c.cluster.problems());
    p.extend(c.audit.problems());
    p.extend(c.messaging.emergency.problems());
    p.extend(c.siem.problems());
    p.extend(c.reports.problems());
    if c.server.listen.parse::<SocketAddr>().is_err() {
        p.push(Problem::new(
            "server.listen",
            "must be an IP address and port, e.g. 127.0.0.1:8080",
        ));
    }
    match Url::parse(&c.server.public_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => p.push(Problem::new(
            "server.public_url",
            "must be an absolute http(s) URL",
        )),
    }
    for (i, origin) in c.server.portal_origins.iter().enumerate() {
        if !is_origin(origin) {
            p.push(Problem::new(
                format!("server.portal_origins[{i}]"),
                "must be an origin like https://portal.example.org (scheme, host, optional port, no path)",
            ));
        }
    }
    if !(1024..=64 * 1024 * 1024).contains(&c.server.max_body_bytes) {
        p.push(Problem::new(
            "server.max_body_bytes",
            "must be between 1024 and 67108864",
        ));
    }

    if c.database.url.is_some() && c.database.url_file.is_some() {
        p.push(Problem::new(
            "database.url_file",
            "set either database.url or database.url_file, not both",
        ));
    }
    if let Some(url) = &c.database.url {
        let u = url.expose_secret();
        if !(u.starts_with("sqlite:") || u.starts_with("postgres://") || u.starts_with("postgresql://")) {
            p.push(Problem::new(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
    }
    if let Some(path) = &c.database.url_file
        && !path.is_file()
    {
        p.push(Problem::new(
            "database.url_file",
            format!("{} is not a readable file", path.display()),
        ));
    }
    if c.database.max_connections == Some(0) {
        p.push(Problem::new("database.max_connections", "must be at least 1"));
    }

    if tracing_subscriber::EnvFilter::try_new(&c.logging.level).is_err() {
        p.push(Problem::new(
            "logging.level",
            "not a valid tracing filter (e.g. info, examroom=debug)",
        ));
    }
    if let Some(path) = &c.logging.pseudonym_key_file
        && !path.is_file()
    {
        p.push(Problem::new(
            "logging.pseudonym_key_file",
            format!("{} is not a readable file", path.display()),
        ));
    }

    let a = &c.auth;
    if a.max_clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
        p.push(Problem::new("auth.max_clock_skew_seconds", "must be at most 60"));
    }
    if a.jwks_cache_seconds == 0 {
        p.push(Problem::new("auth.jwks_cache_seconds", "must be at least 1"));
    }
    match &a.staff {
        None if c.dev.is_none() => p.push(Problem::new(
            "auth.staff",
            "required: the workforce OpenID provider",
        )),
        None => {}
        Some(s) => {
            check_issuer(&mut p, "auth.staff.issuer", &s.issuer, c);
            if s.client_id.is_empty() {
                p.push(Problem::new("auth.staff.client_id", "must not be empty"));
            }
            match (&s.client_secret, &s.client_secret_file) {
                (Some(_), Some(_)) => p.push(Problem::new(
                    "auth.staff.client_secret_file",
                    "set either client_secret or client_secret_file, not both",
                )),
                (None, None) => p.push(Problem::new(
                    "auth.staff.client_secret_file",
                    "required (or auth.staff.client_secret)",
                )),
                (None, Some(path)) if !path.is_file() => p.push(Problem::new(
                    "auth.staff.client_secret_file",
                    format!("{} is not a readable file", path.display()),
                )),
                _ => {}
            }
            if !s.scopes.iter().any(|s| s == "openid") {
                p.push(Problem::new("auth.staff.scopes", "must include openid"));
            }
            for (claim, role) in &s.role_mapping {
                match role.parse::<Role>() {
                    Ok(r) if r.is_staff() => {}
                    _ => p.push(Problem::new(
                        format!("auth.staff.role_mapping.{claim}"),
                        format!("`{role}` is not a staff role (nurse, supervisor, compliance_officer, it_helpdesk)"),
                    )),
                }
            }
            if s.role_mapping.is_empty() {
                p.push(Problem::new(
                    "auth.staff.role_mapping",
                    "map at least one claim value to a role",
                ));
            }
            if s.idle_timeout_seconds == 0 || s.idle_timeout_seconds > s.absolute_lifetime_seconds {
                p.push(Problem::new(
                    "auth.staff.idle_timeout_seconds",
                    "must be positive and not longer than absolute_lifetime_seconds",
                ));
            }
        }
    }
    match &a.patient {
        None if c.dev.is_none() => p.push(Problem::new(
            "auth.patient",
            "required: the clinic portal's OpenID provider",
        )),
        None => {}
        Some(pa) => {
            check_issuer(&mut p, "auth.patient.issuer", &pa.issuer, c);
            if pa.audiences.is_empty() {
                p.push(Problem::new(
                    "auth.patient.audiences",
                    "name at least one portal client id",
                ));
            }
            check_algorithms(&mut p, "auth.patient.algorithms", &pa.algorithms);
            if pa.max_session_seconds == 0 {
                p.push(Problem::new(
                    "auth.patient.max_session_seconds",
                    "must be at least 1",
                ));
            }
            // An open socket refreshes the session at its re-checks; the idle rule must outlast two of them.
            if pa.idle_without_socket_seconds < 2 * c.messaging.session_recheck_seconds.max(1) {
                p.push(Problem::new(
                    "auth.patient.idle_without_socket_seconds",
                    "must be at least twice messaging.session_recheck_seconds (an open socket would time out)",
                ));
            }
            if pa.max_sessions_per_subject == 0 {
                p.push(Problem::new(
                    "auth.patient.max_sessions_per_subject",
                    "must be at least 1",
                ));
            }
        }
    }
    if let Some(s) = &a.service {
        check_issuer(&mut p, "auth.service.issuer", &s.issuer, c);
        if s.audience.is_empty() {
            p.push(Problem::new("auth.service.audience", "must not be empty"));
        }
        check_algorithms(&mut p, "auth.service.algorithms", &s.algorithms);
    }
    let m = &c.messaging;
    if !(1..=100_000).contains(&m.max_body_chars) {
        p.push(Problem::new(
            "messaging.max_body_chars",
            "must be between 1 and 100000",
        ));
    }
    if !(1024..=1024 * 1024).contains(&m.max_frame_bytes) {
        p.push(Problem::new(
            "messaging.max_frame_bytes",
            "must be between 1024 and 1048576",
        ));
    }
    if m.idle_warning_seconds >= m.idle_expiry_seconds {
        p.push(Problem::new(
            "messaging.idle_warning_seconds",
            "must be shorter than idle_expiry_seconds",
        ));
    }
    for (i, f) in m.kek_files.iter().enumerate() {
        if !f.is_file() {
            p.push(Problem::new(
                format!("messaging.kek_files[{i}]"),
                format!("{} is not a readable file", f.display()),
            ));
        }
    }
    p.extend(c.routing.problems());
    let mut names = std::collections::BTreeSet::new();
    for (i, q) in c.queues.iter().enumerate() {
        let valid = !q.name.is_empty()
            && q.name.len() <= 40
            && q.name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_');
        if !valid {
            p.push(Problem::new(
                format!("queues[{i}].name"),
                "use 1-40 characters a-z, 0-9, - or _",
            ));
        }
        if !names.insert(q.name.clone()) {
            p.push(Problem::new(
                format!("queues[{i}].name"),
                format!("duplicate queue `{}`", q.name),
            ));
        }
        for (j, r) in q.reassurance.iter().enumerate() {
            if r.text.trim().is_empty() {
                p.push(Problem::new(
                    format!("queues[{i}].reassurance[{j}].text"),
                    "must not be empty",
                ));
            }
            if r.every_seconds == Some(0) {
                p.push(Problem::new(
                    format!("queues[{i}].reassurance[{j}].every_seconds"),
                    "must be at least 1",
                ));
            }
        }
    }
    check_media(&mut p, &c.media);
    check_recording(&mut p, &c.recording);
    check_retention(&mut p, &c.retention);
    check_alerts(&mut p, &c.alerts);
    if c.media.max_sdp_bytes + 1024 > c.messaging.max_frame_bytes {
        p.push(Problem::new(
            "media.max_sdp_bytes",
            "must leave room in messaging.max_frame_bytes (an offer travels in one frame)",
        ));
    }
    if let Some(path) = &c.policy.recording_file
        && !path.is_file()
    {
        p.push(Problem::new(
            "policy.recording_file",
            format!("{} is not a readable file", path.display()),
        ));
    }
    if let Some(path) = &c.policy.access_file
        && !path.is_file()
    {
        p.push(Problem::new(
            "policy.access_file",
            format!("{} is not a readable file", path.display()),
        ));
    }
    if !(1..=240).contains(&c.policy.break_glass_minutes) {
        p.push(Problem::new("policy.break_glass_minutes", "must be 1 to 240"));
    }
    p
}

fn check_alerts(p: &mut Vec<Problem>, a: &crate::config::alerts::AlertsConfig) {
    if !(1..=1000).contains(&a.denied_attempts) {
        p.push(Problem::new("alerts.denied_attempts", "between 1 and 1000"));
    }
    if !(1..=60).contains(&a.check_seconds) {
        p.push(Problem::new(
            "alerts.check_seconds",
            "between 1 and 60 (an alert within a minute)",
        ));
    }
}

fn check_retention(p: &mut Vec<Problem>, r: &crate::config::retention::RetentionConfig) {
    for (key, days) in [
        ("retention.conversation_days", r.conversation_days),
        ("retention.wrap_up_days", r.wrap_up_days),
        ("retention.visit_days", r.visit_days),
    ] {
        if !(1..=36_500).contains(&days) {
            p.push(Problem::new(key, "between 1 and 36500 days"));
        }
    }
}

fn check_recording(p: &mut Vec<Problem>, r: &crate::config::RecordingConfig) {
    if !(5..=600).contains(&r.segment_seconds) {
        p.push(Problem::new("recording.segment_seconds", "between 5 and 600"));
    }
    if !(1..=60).contains(&r.keyframe_interval_seconds) {
        p.push(Problem::new(
            "recording.keyframe_interval_seconds",
            "between 1 and 60",
        ));
    }
    match (r.store.as_str(), &r.s3) {
        ("local", _) => {}
        ("s3", None) => p.push(Problem::new(
            "recording.s3",
            "required when recording.store = \"s3\"",
        )),
        ("s3", Some(s3)) => {
            if s3.bucket.is_empty() {
                p.push(Problem::new("recording.s3.bucket", "must not be empty"));
            }
            if let Some(e) = &s3.endpoint
                && Url::parse(e)
                    .map(|u| !matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(true)
            {
                p.push(Problem::new("recording.s3.endpoint", "expected an http(s) URL"));
            }
            if s3.access_key_id.is_some() != s3.secret_access_key_file.is_some() {
                p.push(Problem::new(
                    "recording.s3.secret_access_key_file",
                    "set both access_key_id and secret_access_key_file, or neither (AWS default chain)",
                ));
            }
            if let Some(f) = &s3.secret_access_key_file
                && !f.is_file()
            {
                p.push(Problem::new(
                    "recording.s3.secret_access_key_file",
                    format!("{} is not a readable file", f.display()),
                ));
            }
            if let Some(m) = &s3.object_lock_mode
                && m != "GOVERNANCE"
                && m != "COMPLIANCE"
            {
                p.push(Problem::new(
                    "recording.s3.object_lock_mode",
                    "GOVERNANCE or COMPLIANCE",
                ));
            }
            if s3.part_size_bytes < 5 * 1024 * 1024 {
                p.push(Problem::new(
                    "recording.s3.part_size_bytes",
                    "at least 5 MiB (the S3 minimum)",
                ));
            }
        }
        _ => p.push(Problem::new("recording.store", "\"local\" or \"s3\"")),
    }
}

fn check_media(p: &mut Vec<Problem>, m: &crate::config::MediaConfig) {
    if m.bind_ips.is_empty() {
        p.push(Problem::new(
            "media.bind_ips",
            "list at least one local IP address",
        ));
    }
    for (i, ip) in m.bind_ips.iter().enumerate() {
        if ip.parse::<std::net::IpAddr>().is_err() {
            p.push(Problem::new(format!("media.bind_ips[{i}]"), "not an IP address"));
        }
    }
    if let Err((i, e)) = m.announced() {
        p.push(Problem::new(format!("media.announced_ips[{i}]"), e.to_string()));
    }
    if m.udp_port_min == 0 || m.udp_port_min > m.udp_port_max {
        p.push(Problem::new(
            "media.udp_port_min",
            "must be at least 1 and not above media.udp_port_max",
        ));
    }
    let mut turn = false;
    for (i, u) in m.turn_urls.iter().enumerate() {
        let scheme = u.split(':').next().unwrap_or("");
        if !matches!(scheme, "stun" | "turn" | "turns") || u.len() <= scheme.len() + 1 {
            p.push(Problem::new(
                format!("media.turn_urls[{i}]"),
                "expected stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp] or turns:…",
            ));
        }
        turn |= scheme.starts_with("turn");
    }
    match &m.turn_secret_file {
        None if turn => p.push(Problem::new(
            "media.turn_secret_file",
            "required when media.turn_urls lists a TURN server",
        )),
        Some(f) if !f.is_file() => p.push(Problem::new(
            "media.turn_secret_file",
            format!("{} is not a readable file", f.display()),
        )),
        _ => {}
    }
    if !(60..=86_400).contains(&m.turn_credential_seconds) {
        p.push(Problem::new(
            "media.turn_credential_seconds",
            "must be between 60 and 86400",
        ));
    }
    if m.force_relay && !turn {
        p.push(Problem::new(
            "media.force_relay",
            "needs a TURN server in media.turn_urls",
        ));
    }
    if !(2..=8).contains(&m.max_tracks_per_participant) {
        p.push(Problem::new(
            "media.max_tracks_per_participant",
            "must be between 2 and 8",
        ));
    }
    if !(10..=600).contains(&m.video_prompt_seconds) {
        p.push(Problem::new(
            "media.video_prompt_seconds",
            "must be between 10 and 600",
        ));
    }
    if !(4096..=1024 * 1024).contains(&m.max_sdp_bytes) {
        p.push(Problem::new(
            "media.max_sdp_bytes",
            "must be between 4096 and 1048576",
        ));
    }
}

fn is_origin(s: &str) -> bool {
    match Url::parse(s) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && !s.ends_with('/')
                && u.query().is_none()
                && u.username().is_empty()
        }
        Err(_) => false,
    }
}

/// Issuers must use TLS, except on loopback where development and test providers run.
/// An issuer must be reached over TLS, except on loopback and, for `examroom dev` only, under the broker's own
/// public URL (its built-in provider with `--public-url http://…`: the demo's browser talks to it exactly as to
/// the broker, so it is no less protected than the demo's session cookie). A deployment never gets that.
fn check_issuer(p: &mut Vec<Problem>, key: &str, issuer: &str, c: &Config) {
    let own = Url::parse(&c.server.public_url)
        .ok()
        .filter(|_| c.dev.is_some())
        .map(|u| u.origin());
    match Url::parse(issuer) {
        Ok(u) if u.scheme() == "https" => {}
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => {}
        Ok(u) if u.scheme() == "http" && Some(u.origin()) == own => {}
        Ok(_) => p.push(Problem::new(
            key,
            "must be an https URL (http is accepted only on loopback)",
        )),
        Err(_) => p.push(Problem::new(key, "not a URL")),
    }
}

pub(super) fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

fn check_algorithms(p: &mut Vec<Problem>, key: &str, algs: &[String]) {
    if algs.is_empty() {
        p.push(Problem::new(key, "list at least one algorithm"));
    }
    for (i, alg) in algs.iter().enumerate() {
        if !ALLOWED_ALGORITHMS.contains(&alg.as_str()) {
            p.push(Problem::new(
                format!("{key}[{i}]"),
                format!(
                    "`{alg}` is not allowed; use one of {}",
                    ALLOWED_ALGORITHMS.join(", ")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
