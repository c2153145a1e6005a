//! Named network namespaces a test creates (and deletes when dropped), with commands run inside them, `ip`
//! and nftables: the NAT and firewall tests build their small networks from these.

use std::process::Command;

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

    pub fn ip(&self, args: &str) {
        run(Command::new("ip")
            .args(["-n", &self.0])
            .args(args.split_whitespace()));
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
