//! The Kubernetes manifests (`deploy/kubernetes/`) carry a real configuration: the broker configuration in the
//! ConfigMap, with the per-pod environment the StatefulSet sets and the key files its Secret provides, passes
//! `check-config`; every key file it names is in the Secret. (`kubernetes-validate --strict` checks the
//! manifests themselves in `scripts/test.sh`.)

use crate::common::Broker;

const CONFIGMAP: &str = include_str!("../../deploy/kubernetes/configmap.yaml");
const STATEFULSET: &str = include_str!("../../deploy/kubernetes/statefulset.yaml");
const SECRET: &str = include_str!("../../deploy/kubernetes/secret.example.yaml");

/// The `examroom.toml` block of the ConfigMap.
fn broker_config() -> String {
    let start = CONFIGMAP.find("examroom.toml: |\n").unwrap() + "examroom.toml: |\n".len();
    CONFIGMAP[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `EXAMROOM_*` variables the StatefulSet sets, with a pod's name and its node's address filled in.
fn pod_environment() -> Vec<(String, String)> {
    let lines: Vec<&str> = STATEFULSET.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.trim().strip_prefix("- name: EXAMROOM_") else {
            continue;
        };
        let value = lines[i + 1].trim().strip_prefix("value: ").unwrap();
        let value = value.trim_matches(|c| c == '"' || c == '\'');
        let value = value
            .replace("$(POD_NAME)", "examroom-0")
            .replace("$(HOST_IP)", "127.0.0.1");
        out.push((format!("EXAMROOM_{name}"), value));
    }
    out
}

#[test]
fn the_configmap_with_the_pods_environment_and_the_secrets_keys_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    // The key files, as the example configuration names them (the Secret uses the same names).
    crate::example_config::example_config(dir.path(), "postgres://examroom@db.internal:5432/examroom");
    let etc = dir.path().join("etc");
    let config = broker_config();
    for named in config.split("/keys/").skip(1) {
        let name: String = named
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-._".contains(*c))
            .collect();
        assert!(SECRET.contains(&format!("  {name}:")), "the Secret has no {name}");
        assert!(etc.join(&name).exists(), "{name}");
    }
    let text = config.replace("/keys/", &format!("{}/", etc.display())).replace(
        "/var/lib/examroom",
        &dir.path().join("data").display().to_string(),
    );
    let path = dir.path().join("examroom.toml");
    std::fs::write(&path, text).unwrap();
    let env = pod_environment();
    assert!(env.len() >= 5, "{env:?}");
    let out = Broker::command()
        .envs(env)
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the ConfigMap's configuration is valid:\n{log}"
    );
}
