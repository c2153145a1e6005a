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
    if is_remote_tls(c) && !has_turn {
        p.push(Problem::new(
            "media.turn_urls",
            "a deployment served over https needs a TURN server (turn: and turns: URLs): browsers behind \
             firewalls that block UDP get no video without one",
        ));
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
