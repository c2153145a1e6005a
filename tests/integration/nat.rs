//! Video behind a real NAT, in three network namespaces this test creates: the broker on a private address,
//! a router doing DNAT of the broker's HTTP port and UDP range from its public address (and SNAT outbound,
//! with hairpin so the broker reaches its own public URL), and Chromium on the outside, which reaches only
//! the router's public address and, like any browser behind a home router, accepts only replies. With
//! `media.announced_ips` video flows both ways through the public address; without it, nothing does.

use crate::common::run_browser_script;
use crate::netns::{Netns, run};

const PRIVATE: &str = "10.10.0.2";
const PUBLIC: &str = "198.51.100.1";

/// broker (10.10.0.2) ── lan │ router │ wan ── client (198.51.100.2); the router's public address is .1.
struct Topology {
    broker: Netns,
    /// Kept alive for the test's length: dropping it deletes the router.
    _router: Netns,
    client: Netns,
}

impl Topology {
    fn build(udp_min: u16, udp_max: u16) -> Topology {
        let (broker, router, client) = (Netns::new("b"), Netns::new("r"), Netns::new("c"));
        router.ip(&format!(
            "link add lan type veth peer name eth0 netns {}",
            broker.0
        ));
        router.ip(&format!(
            "link add wan type veth peer name eth0 netns {}",
            client.0
        ));
        for (ns, addr, gateway) in [
            (&broker, "10.10.0.2/24", "10.10.0.1"),
            (&client, "198.51.100.2/24", PUBLIC),
        ] {
            ns.ip(&format!("addr add {addr} dev eth0"));
            ns.ip("link set eth0 up");
            ns.ip("link set lo up");
            ns.ip(&format!("route add default via {gateway}"));
        }
        router.ip("addr add 10.10.0.1/24 dev lan");
        router.ip(&format!("addr add {PUBLIC}/24 dev wan"));
        for link in ["lan", "wan", "lo"] {
            router.ip(&format!("link set {link} up"));
        }
        run(router.command("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
        router.nft(&format!(
            r#"
table ip nat {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {PUBLIC} tcp dport 8080 dnat to {PRIVATE}:8080
    ip daddr {PUBLIC} udp dport {udp_min}-{udp_max} dnat to {PRIVATE}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
    ip saddr 10.10.0.0/24 ip daddr {PRIVATE} ct status dnat masquerade
  }}
}}
table inet filter {{
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct status dnat accept
    iifname "lan" oifname "wan" accept
  }}
}}
"#
        ));
        // The client's side of the world: nothing unsolicited comes in (a home router or host firewall).
        client.nft(
            r#"
table inet host {
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
  }
}
"#,
        );
        Topology {
            broker,
            _router: router,
            client,
        }
    }
}

fn video_through_nat(announce: bool) -> String {
    let (udp_min, udp_max) = (40000u16, 40049u16);
    let net = Topology::build(udp_min, udp_max);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bind = format!("[\"{PRIVATE}\"]");
    let announced = if announce {
        format!("[\"{PUBLIC}\"]")
    } else {
        "[]".to_string()
    };
    let (min, max) = (udp_min.to_string(), udp_max.to_string());
    let mut env = crate::chat::FAST_ROUTING.to_vec();
    env.extend([
        ("EXAMROOM_MEDIA__BIND_IPS", bind.as_str()),
        ("EXAMROOM_MEDIA__ANNOUNCED_IPS", announced.as_str()),
        ("EXAMROOM_MEDIA__UDP_PORT_MIN", min.as_str()),
        ("EXAMROOM_MEDIA__UDP_PORT_MAX", max.as_str()),
    ]);
    let public_url = format!("http://{PUBLIC}:8080");
    let broker = net.broker.dev_broker(&data, &env, PRIVATE, PUBLIC);
    assert_eq!(broker.url, public_url);
    let expect = if announce { "media" } else { "none" };
    let passed = if announce {
        "browser nat flow: media both ways"
    } else {
        "browser nat flow: no media"
    };
    let log = run_browser_script(
        net.client.command("node"),
        "nat-flow.mjs",
        &broker,
        &data,
        &[expect, PUBLIC, PRIVATE],
        passed,
    );
    broker.assert_no_panic();
    drop(broker);
    log
}

#[test]
fn video_flows_through_a_nat_with_announced_addresses_and_not_without() {
    if !crate::netns::browser_prerequisites(&[]) {
        return;
    }
    let with = video_through_nat(true);
    assert!(with.contains("browser nat flow: media both ways"), "{with}");
    for line in with.lines().filter(|l| l.contains("framesDecoded")) {
        println!("{line}");
    }
    let without = video_through_nat(false);
    assert!(without.contains("browser nat flow: no media"), "{without}");
}
