//! Announced addresses behind a 1:1 NAT. The SFU binds private addresses while browsers can reach only the
//! public address the NAT forwards to it, port for port. The engine's own `with_nat_1to1_ips` is stored and
//! never read in webrtc 0.21.1, so the SFU rewrites what it tells browsers itself: every host candidate it
//! trickles and every candidate or connection line in its SDP answer whose address is a mapped bind address
//! gets the public address instead, the port kept. Text in, text out; the ICE agent keeps using the bound
//! socket, and the browser's checks arrive on it through the NAT.

use std::net::IpAddr;

pub use crate::config::announce::{AnnouncedAddrs, Announcement};

/// A trickled candidate (`candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ host …`) with a
/// mapped host address replaced; anything else unchanged.
pub fn candidate(addrs: &AnnouncedAddrs, line: &str) -> String {
    if addrs.is_empty() {
        return line.to_string();
    }
    let fields: Vec<&str> = line.split(' ').collect();
    // Only host candidates carry a bind address; srflx/relay addresses come from elsewhere.
    let is_host = fields.windows(2).any(|w| w[0] == "typ" && w[1] == "host");
    if fields.len() < 8 || !is_host {
        return line.to_string();
    }
    match fields[4]
        .parse::<IpAddr>()
        .ok()
        .and_then(|ip| addrs.public_for(&ip))
    {
        Some(public) => {
            let mut out: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
            out[4] = public.to_string();
            out.join(" ")
        }
        None => line.to_string(),
    }
}

/// An SDP with every `a=candidate:` line and every `c=` line whose address is mapped rewritten; line
/// endings kept.
pub fn sdp(addrs: &AnnouncedAddrs, sdp: &str) -> String {
    if addrs.is_empty() {
        return sdp.to_string();
    }
    let mut out = String::with_capacity(sdp.len() + 64);
    for chunk in sdp.split_inclusive('\n') {
        let (line, end) = match chunk.strip_suffix("\r\n") {
            Some(l) => (l, "\r\n"),
            None => match chunk.strip_suffix('\n') {
                Some(l) => (l, "\n"),
                None => (chunk, ""),
            },
        };
        if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                out.push_str("a=");
                out.push_str(&candidate(addrs, c));
                out.push_str(end);
                continue;
            }
        } else if let Some(rest) = line.strip_prefix("c=IN ") {
            // c=IN IP4 ADDRESS (no multicast TTL in WebRTC)
            if let Some((family, addr)) = rest.split_once(' ')
                && let Some(public) = addr.parse::<IpAddr>().ok().and_then(|ip| addrs.public_for(&ip))
            {
                let family = if public.is_ipv6() { "IP6" } else { family };
                out.push_str(&format!("c=IN {family} {public}{end}"));
                continue;
            }
        }
        out.push_str(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(bind: &[&str], entries: &[&str]) -> AnnouncedAddrs {
        let bind: Vec<IpAddr> = bind.iter().map(|s| s.parse().unwrap()).collect();
        let entries: Vec<Announcement> = entries.iter().map(|e| e.parse().unwrap()).collect();
        AnnouncedAddrs::resolve(&bind, &entries).unwrap()
    }

    #[test]
    fn host_candidates_get_the_public_address_and_keep_the_port() {
        let a = addrs(&["10.0.0.2", "fd00::2"], &["203.0.113.7", "2001:db8::7"]);
        assert_eq!(
            candidate(&a, "candidate:1 1 udp 2130706431 10.0.0.2 40002 typ host"),
            "candidate:1 1 udp 2130706431 203.0.113.7 40002 typ host"
        );
        assert_eq!(
            candidate(
                &a,
                "candidate:2 1 udp 2130706431 fd00::2 40002 typ host generation 0"
            ),
            "candidate:2 1 udp 2130706431 2001:db8::7 40002 typ host generation 0"
        );
    }

    #[test]
    fn other_candidates_are_left_alone() {
        let a = addrs(&["10.0.0.2"], &["203.0.113.7"]);
        for c in [
            // not a bind address
            "candidate:1 1 udp 2130706431 10.0.0.9 40002 typ host",
            // server-reflexive and relay addresses are already public
            "candidate:3 1 udp 1694498815 10.0.0.2 40002 typ srflx raddr 10.0.0.2 rport 40002",
            "candidate:4 1 udp 16777215 10.0.0.2 50000 typ relay raddr 0.0.0.0 rport 0",
            // malformed: passed through untouched, the browser decides
            "candidate:5 1 udp",
        ] {
            assert_eq!(candidate(&a, c), c);
        }
    }

    #[test]
    fn sdp_candidates_and_connection_lines_are_rewritten() {
        let a = addrs(&["10.0.0.2"], &["203.0.113.7"]);
        let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 40002 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 10.0.0.2\r\n\
                     a=candidate:1 1 udp 2130706431 10.0.0.2 40002 typ host\r\na=mid:0\r\n";
        let out = sdp(&a, offer);
        assert_eq!(
            out,
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 40002 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 203.0.113.7\r\n\
             a=candidate:1 1 udp 2130706431 203.0.113.7 40002 typ host\r\na=mid:0\r\n"
        );
        // Nothing mapped: byte for byte the same.
        assert_eq!(sdp(&AnnouncedAddrs::default(), offer), offer);
    }
}
