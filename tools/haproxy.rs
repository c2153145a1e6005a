//! HAProxy in front of several examroom nodes, as the cluster tests and the chat benchmark run it: round-robin
//! over the nodes that answer `/readyz`, WebSockets kept open (`timeout tunnel`), a dead node's sessions cut at
//! once. The development provider keeps its sign-in codes in memory, so `/dev-idp/` and `/auth/` go to the
//! first node (a deployment's provider is external). Started in the foreground and stopped by its PID.

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The configuration: a frontend on 127.0.0.1:`port`, `nodes` (`ip:port`) as the backend.
pub fn config(port: u16, nodes: &[String], maxconn: usize) -> String {
    let servers: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("  server n{i} {addr} check"))
        .collect();
    format!(
        "global\n  maxconn {maxconn}\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  \
         timeout tunnel 1h\n  option redispatch\n  retries 2\n  \
         default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions\n\
         frontend public\n  bind 127.0.0.1:{port}\n  maxconn {maxconn}\n  \
         acl sign_in path_beg /dev-idp/ /auth/\n  use_backend sign_in if sign_in\n  default_backend nodes\n\
         backend nodes\n  balance roundrobin\n  option httpchk\n  \
         http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost\n  http-check expect status 200\n{}\n\
         backend sign_in\n  server first {}\n",
        servers.join("\n"),
        nodes[0]
    )
}

/// Writes the configuration into `dir`, checks it with `haproxy -c` and starts HAProxy on it.
pub fn start(dir: &Path, port: u16, nodes: &[String], maxconn: usize) -> Result<Haproxy, String> {
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config(port, nodes, maxconn)).map_err(|e| e.to_string())?;
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .map_err(|e| format!("haproxy: {e}"))?;
    if !check.status.success() {
        return Err(String::from_utf8_lossy(&check.stderr).into_owned());
    }
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("haproxy: {e}"))?;
    Ok(Haproxy(child))
}
