//! `media.announced_ips`: which public address each SFU bind address is announced as behind a 1:1 NAT (a cloud
//! VM, a Kubernetes pod), resolved and checked against `media.bind_ips` once, so `check-config` and the SFU
//! read the same answer. The rewriting itself is `media::announce`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// One `media.announced_ips` entry: `PUBLIC` (for every bind address of the same family) or `PUBLIC/LOCAL`
/// (for that bind address only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub public: IpAddr,
    pub local: Option<IpAddr>,
}

/// Why an `announced_ips` entry cannot be used, worded for `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceError(pub String);

impl fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Announcement {
    type Err = AnnounceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |what: &str| {
            AnnounceError(format!(
                "{what} is not an IP address (expected PUBLIC or PUBLIC/LOCAL)"
            ))
        };
        let (public, local) = match s.split_once('/') {
            Some((p, l)) => (p, Some(l)),
            None => (s, None),
        };
        let public: IpAddr = public.trim().parse().map_err(|_| bad(public))?;
        let local = match local {
            Some(l) => Some(l.trim().parse::<IpAddr>().map_err(|_| bad(l))?),
            None => None,
        };
        if public.is_unspecified() || public.is_loopback() {
            return Err(AnnounceError(format!(
                "{public} cannot be announced: browsers must be able to reach it"
            )));
        }
        if let Some(l) = local
            && l.is_ipv4() != public.is_ipv4()
        {
            return Err(AnnounceError(format!(
                "{public} and {l} are of different families: a NAT maps IPv4 to IPv4 and IPv6 to IPv6"
            )));
        }
        Ok(Self { public, local })
    }
}

/// Which public address each bind address is announced as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnouncedAddrs {
    map: HashMap<IpAddr, IpAddr>,
}

impl AnnouncedAddrs {
    /// Resolves the entries against the bind addresses: a `PUBLIC/LOCAL` entry must name a bind address, a bare
    /// `PUBLIC` covers every bind address of its family that no `PUBLIC/LOCAL` entry names, and no bind address
    /// may be announced twice. Errors name the entry's index.
    pub fn resolve(bind: &[IpAddr], entries: &[Announcement]) -> Result<Self, (usize, AnnounceError)> {
        // Candidates carry interface addresses, never 0.0.0.0 or ::, so nothing bound there could be rewritten.
        if !entries.is_empty()
            && let Some(any) = bind.iter().find(|ip| ip.is_unspecified())
        {
            return Err((
                0,
                AnnounceError(format!(
                    "media.bind_ips has {any}: announcing needs the interface addresses themselves"
                )),
            ));
        }
        let mut map = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(local) = e.local {
                if !bind.contains(&local) {
                    return Err((i, AnnounceError(format!("{local} is not in media.bind_ips"))));
                }
                if map.insert(local, e.public).is_some() {
                    return Err((i, AnnounceError(format!("{local} is announced twice"))));
                }
            }
        }
        let mut family_seen = [false, false];
        for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.local.is_none()) {
            let family = usize::from(e.public.is_ipv6());
            if std::mem::replace(&mut family_seen[family], true) {
                return Err((
                    i,
                    AnnounceError("a second address of the same family without /LOCAL: say which bind address each one is for".into()),
                ));
            }
            let mut covered = false;
            for ip in bind.iter().filter(|ip| ip.is_ipv6() == e.public.is_ipv6()) {
                if !map.contains_key(ip) {
                    covered = true;
                }
                map.entry(*ip).or_insert(e.public);
            }
            if !covered {
                return Err((
                    i,
                    AnnounceError(format!(
                        "no bind address of {}'s family is left to announce it for",
                        e.public
                    )),
                ));
            }
        }
        Ok(Self { map })
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The public address announced for `local`, if any.
    pub fn public_for(&self, local: &IpAddr) -> Option<IpAddr> {
        self.map.get(local).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn resolve(bind: &[&str], entries: &[&str]) -> Result<AnnouncedAddrs, (usize, AnnounceError)> {
        let bind: Vec<IpAddr> = bind.iter().map(|s| ip(s)).collect();
        let entries: Vec<Announcement> = entries.iter().map(|e| e.parse().unwrap()).collect();
        AnnouncedAddrs::resolve(&bind, &entries)
    }

    #[test]
    fn per_bind_address_entries_win_over_the_family_default() {
        let a = resolve(
            &["10.0.0.2", "10.0.1.2", "fd00::2"],
            &["203.0.113.9/10.0.1.2", "203.0.113.7"],
        )
        .unwrap();
        assert_eq!(a.public_for(&ip("10.0.0.2")), Some(ip("203.0.113.7")));
        assert_eq!(a.public_for(&ip("10.0.1.2")), Some(ip("203.0.113.9")));
        // No IPv6 announcement: the IPv6 bind address is announced as it is.
        assert_eq!(a.public_for(&ip("fd00::2")), None);
    }

    #[test]
    fn bad_entries_are_refused_with_their_index() {
        assert!("not-an-ip".parse::<Announcement>().is_err());
        assert!("127.0.0.1".parse::<Announcement>().is_err());
        assert!("203.0.113.7/fd00::2".parse::<Announcement>().is_err());
        assert_eq!(
            resolve(&["10.0.0.2"], &["203.0.113.7/10.0.0.3"]).unwrap_err().0,
            0
        );
        assert_eq!(
            resolve(&["10.0.0.2"], &["203.0.113.7", "203.0.113.8"])
                .unwrap_err()
                .0,
            1
        );
        assert_eq!(resolve(&["10.0.0.2"], &["2001:db8::7"]).unwrap_err().0, 0);
        assert!(resolve(&["0.0.0.0"], &["203.0.113.7"]).is_err());
        assert_eq!(
            resolve(&["10.0.0.2"], &["203.0.113.7/10.0.0.2", "203.0.113.8/10.0.0.2"])
                .unwrap_err()
                .0,
            1
        );
    }
}
