//! Configuration errors name the key: `check-config` lists every problem; `serve` refuses to start.

fn examroom(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = crate::common::Broker::command();
    cmd.args(args).envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The shipped example with its key files created under `dir`.
fn example_config(dir: &std::path::Path) -> String {
    crate::example_config::example_config(dir, "postgres://examroom@db.internal:5432/examroom")
}

#[test]
fn check_config_names_every_broken_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"
[server]
listen = "not-an-address"
listn = "typo"
[auth]
max_clock_skew_seconds = 600
[auth.staff]
issuer = "http://login.hospital.example"
client_id = "examroom"
client_secret = "x"
role_mapping = { "nurses" = "nurse" }
[auth.patient]
issuer = "https://portal.example.org"
audiences = ["portal"]
algorithms = ["HS256"]
"#,
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let (code, out) = examroom(&["check-config", "--config", p], &[]);
    assert_eq!(code, Some(2), "{out}");
    for key in [
        "server.listen:",
        "server.listn: unknown key",
        "auth.max_clock_skew_seconds:",
        "auth.staff.issuer:",
        "auth.patient.algorithms[0]:",
    ] {
        assert!(out.contains(key), "expected {key} in:\n{out}");
    }
    // `serve` refuses the same file at startup, naming the key.
    let (code, out) = examroom(&["serve", "--config", p], &[]);
    assert_ne!(code, Some(0));
    assert!(out.contains("server.listen:"), "{out}");
}

#[test]
fn env_overrides_are_validated_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(&path, example_config(dir.path())).unwrap();
    let p = path.to_str().unwrap();
    let (code, out) = examroom(&["check-config", "--config", p], &[]);
    assert_eq!(code, Some(0), "the shipped example config is valid:\n{out}");
    let (code, out) = examroom(
        &["check-config", "--config", p],
        &[("EXAMROOM_SERVER__MAX_BODY_BYTES", "12")],
    );
    assert_eq!(code, Some(2));
    assert!(out.contains("server.max_body_bytes"), "{out}");
    let (code, out) = examroom(
        &["check-config", "--config", p],
        &[("EXAMROOM_AUTH__STAFF__CLIENTID", "x")],
    );
    assert_eq!(code, Some(2));
    assert!(out.contains("auth.staff.clientid: unknown key"), "{out}");
}

#[test]
fn check_config_validates_the_recording_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("recording.toml");
    std::fs::write(
        &policy,
        "[[policies]]\nid = \"v\"\nqueues = [\"nowhere\"]\nvisit_types = [\"video\"]\nrecord = true\n\
         retention_days = 0\nviewer_roles = [\"nurse\"]\n",
    )
    .unwrap();
    let config = dir.path().join("examroom.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[auth.staff]
issuer = "https://login.hospital.example"
client_id = "examroom"
client_secret = "x"
role_mapping = {{ "nurses" = "nurse" }}
[auth.patient]
issuer = "https://portal.example.org"
audiences = ["portal"]
[policy]
recording_file = "{}"
"#,
            policy.display()
        ),
    )
    .unwrap();
    let (code, out) = examroom(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{out}");
    for key in [
        "policy.recording_file: policies[0].queues: unknown queue `nowhere`",
        "policy.recording_file: policies[0].retention_days",
        "policy.recording_file: policies[0].viewer_roles",
    ] {
        assert!(out.contains(key), "expected {key} in:\n{out}");
    }
    // A supervisor as viewer is allowed, with a warning naming the policy (patients are told otherwise).
    std::fs::write(
        &policy,
        examroom::policy::recording::DEFAULT_RECORDING_POLICY.replace(
            "viewer_roles = [\"compliance_officer\"]",
            "viewer_roles = [\"compliance_officer\", \"supervisor\"]",
        ),
    )
    .unwrap();
    let (code, out) = examroom(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "warning: policy.recording_file: policies[0].viewer_roles: `supervisor` may view recordings"
        ),
        "{out}"
    );
    // The shipped policy is valid with the same configuration, and warns about nothing.
    std::fs::write(&policy, examroom::policy::recording::DEFAULT_RECORDING_POLICY).unwrap();
    let (code, out) = examroom(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning"), "{out}");
}

#[test]
fn broken_siem_webhooks_and_report_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let example = example_config(dir.path()).replace("siem-secret", "no-such-siem-secret");
    let check = |edit: &dyn Fn(String) -> String| {
        let path = dir.path().join("examroom.toml");
        std::fs::write(&path, edit(example.clone())).unwrap();
        examroom(&["check-config", "--config", path.to_str().unwrap()], &[])
    };
    // No secret file, plain HTTP to a remote receiver, an unknown format: each named.
    let (code, out) = check(&|t| {
        t.replace(
            "https://siem.hospital.example/examroom",
            "http://siem.hospital.example/plain",
        )
        .replace(
            "format = \"json\"                  #",
            "format = \"xml\"                  #",
        )
    });
    assert_eq!(code, Some(2), "{out}");
    for key in [
        "siem.webhooks[0].url:",
        "siem.webhooks[0].secret_file:",
        "siem.webhooks[0].format:",
    ] {
        assert!(out.contains(key), "expected {key} in:\n{out}");
    }
    let (code, out) = check(&|t| t.replace("exposure_threshold = 20", "exposure_threshold = -1"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("reports.exposure_threshold"), "{out}");
}
