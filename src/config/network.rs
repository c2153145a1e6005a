//! The network a deployment needs, derived from its configuration: what hospital IT has to allow, from where to
//! where, on which ports and protocols, under which TLS names (`examroom network-requirements`). Nothing here
//! is looked up or probed; it reads the configuration only, and never prints a credential.

use serde::Serialize;

use super::Config;

/// One rule of the allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// `browsers`, `brokers` or `coturn`.
    pub from: &'static str,
    pub to: String,
    pub port: String,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// The name a TLS client checks, when the connection is TLS.
    pub tls_name: Option<String>,
    pub purpose: String,
}

fn rule(
    from: &'static str,
    to: &str,
    port: impl ToString,
    protocol: &'static str,
    purpose: &str,
) -> Requirement {
    Requirement {
        from,
        to: to.to_string(),
        port: port.to_string(),
        protocol,
        tls_name: None,
        purpose: purpose.to_string(),
    }
}

/// An http(s) URL as a TCP rule (the TLS name for https); `None` if it does not parse.
fn https(from: &'static str, url: &str, purpose: &str) -> Option<Requirement> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.to_string();
    let mut r = rule(from, &host, u.port_or_known_default()?, "tcp", purpose);
    r.tls_name = (u.scheme() == "https").then_some(host);
    Some(r)
}

/// `turn:host[:port][?transport=udp|tcp]` or `turns:…` as the rule a browser needs.
fn turn(url: &str) -> Option<Requirement> {
    let (scheme, rest) = url.split_once(':')?;
    let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
    let tls = match scheme {
        "turn" | "stun" => false,
        "turns" => true,
        _ => return None,
    };
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => (h, p.to_string()),
        _ => (address, if tls { "5349" } else { "3478" }.to_string()),
    };
    let transport = query.split('&').find_map(|kv| kv.strip_prefix("transport="));
    let protocol = match (tls, transport) {
        (true, _) | (false, Some("tcp")) => "tcp",
        _ => "udp",
    };
    let purpose = match (scheme, tls) {
        ("stun", _) => "STUN (the browser's public address)",
        (_, true) => "TURN over TLS (media relay where UDP is blocked)",
        _ if protocol == "tcp" => "TURN over TCP (media relay where UDP is blocked)",
        _ => "TURN over UDP (media relay)",
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut r = rule("browsers", host, port, protocol, purpose);
    r.tls_name = tls.then(|| host.to_string());
    Some(r)
}

/// Everything the configuration needs open. `database` is the database URL (a secret: only its host and port
/// are used).
pub fn requirements(c: &Config, database: Option<&str>) -> Vec<Requirement> {
    let mut out = Vec::new();
    out.extend(https(
        "browsers",
        &c.server.public_url,
        "the widget, workspace and API (HTTPS and WebSockets)",
    ));
    let media_hosts: Vec<String> = if c.media.announced_ips.is_empty() {
        c.media.bind_ips.clone()
    } else {
        c.media
            .announced_ips
            .iter()
            .map(|a| a.split('/').next().unwrap_or(a).to_string())
            .collect()
    };
    let range = format!("{}-{}", c.media.udp_port_min, c.media.udp_port_max);
    for host in media_hosts {
        let host = if host == "0.0.0.0" || host == "::" {
            "every address of the broker hosts".into()
        } else {
            host
        };
        out.push(rule(
            "browsers",
            &host,
            &range,
            "udp",
            "video and audio to the SFU",
        ));
        if c.media.ice_tcp {
            out.push(rule(
                "browsers",
                &host,
                &range,
                "tcp",
                "video and audio to the SFU over ICE-TCP (networks that drop UDP)",
            ));
        }
        // Relayed media reaches the SFU from coturn's relay addresses.
        if c.media.turn_urls.iter().any(|u| u.starts_with("turn")) {
            out.push(rule(
                "coturn",
                &host,
                &range,
                "udp",
                "relayed video and audio to the SFU",
            ));
        }
    }
    out.extend(c.media.turn_urls.iter().filter_map(|u| turn(u)));
    let auth = &c.auth;
    let issuers = [
        auth.staff.as_ref().map(|a| a.issuer.as_str()),
        auth.patient.as_ref().map(|a| a.issuer.as_str()),
        auth.service.as_ref().map(|a| a.issuer.as_str()),
    ];
    let mut seen = Vec::new();
    for issuer in issuers.into_iter().flatten() {
        if let Some(r) = https("brokers", issuer, "the OpenID provider (discovery, keys, tokens)")
            && !seen.contains(&(r.to.clone(), r.port.clone()))
        {
            seen.push((r.to.clone(), r.port.clone()));
            out.push(r);
        }
    }
    if c.recording.store == "s3"
        && let Some(s3) = &c.recording.s3
    {
        let endpoint = s3
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", s3.region));
        out.extend(https(
            "brokers",
            &endpoint,
            "the object store (sealed recordings)",
        ));
    }
    for w in &c.siem.webhooks {
        out.extend(https("brokers", &w.url, "the SIEM (signed audit events)"));
    }
    if let Some(u) = database.and_then(|d| url::Url::parse(d).ok())
        && let Some(host) = u.host_str()
        && u.scheme().starts_with("postgres")
    {
        out.push(rule(
            "brokers",
            host,
            u.port().unwrap_or(5432),
            "tcp",
            "PostgreSQL",
        ));
    }
    if let Some(internal) = &c.cluster.internal_url
        && let Some(mut r) = https("brokers", internal, "node-to-node calls (the internal listener)")
    {
        r.from = "brokers";
        out.push(r);
    }
    out
}

/// The rules as a table for people.
pub fn render(rules: &[Requirement]) -> String {
    let mut s = String::from(
        "from      to                                   port         proto  TLS name  purpose\n",
    );
    for r in rules {
        s.push_str(&format!(
            "{:<9} {:<36} {:<12} {:<6} {:<9} {}\n",
            r.from,
            r.to,
            r.port,
            r.protocol,
            r.tls_name.as_deref().unwrap_or("-"),
            r.purpose
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_become_browser_rules() {
        let t = turn("turns:turn.example.org:443?transport=tcp").unwrap();
        assert_eq!(
            (t.to.as_str(), t.port.as_str(), t.protocol),
            ("turn.example.org", "443", "tcp")
        );
        assert_eq!(t.tls_name.as_deref(), Some("turn.example.org"));
        let u = turn("turn:[2001:db8::1]:3478").unwrap();
        assert_eq!(
            (u.to.as_str(), u.port.as_str(), u.protocol),
            ("2001:db8::1", "3478", "udp")
        );
        assert_eq!(turn("turn:turn.example.org?transport=tcp").unwrap().port, "3478");
        assert!(turn("http://x").is_none());
    }

    #[test]
    fn a_deployment_lists_browsers_media_turn_database_and_peers() {
        let mut c = Config::default();
        c.server.public_url = "https://care.example.org".into();
        c.media.announced_ips = vec!["203.0.113.7/10.0.0.11".into()];
        c.media.turn_urls = vec!["turn:turn.example.org:3478?transport=tcp".into()];
        c.cluster.internal_url = Some("http://10.0.0.11:9090".into());
        let rules = requirements(&c, Some("postgres://examroom:secret@db.internal:6432/examroom"));
        let has = |from: &str, to: &str, port: &str, protocol: &str| {
            rules
                .iter()
                .any(|r| r.from == from && r.to == to && r.port == port && r.protocol == protocol)
        };
        assert!(has("browsers", "care.example.org", "443", "tcp"), "{rules:?}");
        let range = format!("{}-{}", c.media.udp_port_min, c.media.udp_port_max);
        assert!(
            has("browsers", "203.0.113.7", &range, "udp"),
            "the announced address, not the local one"
        );
        assert!(
            has("browsers", "203.0.113.7", &range, "tcp"),
            "ICE-TCP on the same ports"
        );
        assert!(has("browsers", "turn.example.org", "3478", "tcp"));
        assert!(
            has("coturn", "203.0.113.7", &range, "udp"),
            "relayed media reaches the SFU"
        );
        assert!(
            has("brokers", "db.internal", "6432", "tcp"),
            "the database's host and port"
        );
        assert!(has("brokers", "10.0.0.11", "9090", "tcp"));
        assert!(!render(&rules).contains("secret"), "no credential is printed");
    }
}
