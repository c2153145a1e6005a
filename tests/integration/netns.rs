//! Named network namespaces a test creates (and deletes when dropped), with commands run inside them, `ip`
//! and nftables, and an `examroom dev` broker inside one: the NAT, firewall and network-cut tests build their
//! small networks from these.

use std::process::Command;

use crate::common::{Broker, netns_available};

/// Whether a browser test across namespaces can run: nft, Chromium, network namespaces and the programs in
/// `also` (paths). The full test script requires them; elsewhere the test says what is missing and skips.
pub fn browser_prerequisites(also: &[&str]) -> bool {
    let nft = Command::new("nft").arg("--version").output().is_ok();
    let missing: Vec<&str> = ["/usr/bin/chromium"]
        .iter()
        .chain(also)
        .copied()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if !nft || !missing.is_empty() {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "required: nft ({nft}), missing {missing:?}"
        );
        eprintln!("nft or {missing:?} unavailable: skipping");
        return false;
    }
    netns_available()
}

/// A browser script (or any child), killed with what it started if the test ends first.
pub struct Script(pub std::process::Child);

/// Waits for two scripts to end, within `limit`; panics with `logs` if they do not, or if either failed.
pub fn wait_both(a: &mut Script, b: &mut Script, limit: std::time::Duration, logs: &dyn Fn() -> String) {
    let deadline = std::time::Instant::now() + limit;
    let (mut x, mut y) = (None, None);
    while x.is_none() || y.is_none() {
        x = x.or_else(|| a.0.try_wait().unwrap());
        y = y.or_else(|| b.0.try_wait().unwrap());
        assert!(
            std::time::Instant::now() < deadline,
            "the scripts did not finish:\n{}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(x.unwrap().success() && y.unwrap().success(), "{}", logs());
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A named network namespace, deleted (with the interfaces in it) when dropped.
pub struct Netns(pub String);

impl Netns {
    pub fn new(role: &str) -> Netns {
        let name = format!("er-{role}-{}", crate::common::random());
        run(Command::new("ip").args(["netns", "add", &name]));
        Netns(name)
    }

    /// `program` inside this namespace (`nsenter` execs it, so a spawned child's PID is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.0))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Two fresh namespaces joined by a veth (`eth0` on both sides, up, with `lo`), at `addrs` on a /24.
    pub fn pair(roles: [&str; 2], addrs: [&str; 2]) -> (Netns, Netns) {
        let (a, b) = (Netns::new(roles[0]), Netns::new(roles[1]));
        a.ip(&format!("link add eth0 type veth peer name eth0 netns {}", b.0));
        for (ns, addr) in [(&a, addrs[0]), (&b, addrs[1])] {
            ns.ip(&format!("addr add {addr}/24 dev eth0"));
            ns.ip("link set eth0 up");
            ns.ip("link set lo up");
        }
        (a, b)
    }

    pub fn ip(&self, args: &str) {
        run(Command::new("ip")
            .args(["-n", &self.0])
            .args(args.split_whitespace()));
    }

    /// `examroom dev` in this namespace, listening on `listen_ip:8080` and reached by browsers at
    /// `http://public_ip:8080` (the same address unless a NAT stands between).
    pub fn dev_broker(
        &self,
        data: &std::path::Path,
        env: &[(&str, &str)],
        listen_ip: &str,
        public_ip: &str,
    ) -> Broker {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_examroom"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("EXAMROOM_")) {
            cmd.env_remove(k);
        }
        let public_url = format!("http://{public_ip}:8080");
        let listen = format!("{listen_ip}:8080");
        Broker::dev_at(
            cmd,
            data,
            env,
            &["--listen", &listen, "--public-url", &public_url],
        )
    }

    pub fn nft(&self, rules: &str) {
        let file = std::env::temp_dir().join(format!("{}.nft", self.0));
        std::fs::write(&file, rules).unwrap();
        run(self.command("nft").arg("-f").arg(&file));
        let _ = std::fs::remove_file(file);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
