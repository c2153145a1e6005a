//! One authorization path. For every rule of `policies/access.toml`, a broker (in process) runs with a copy of the policy
//! that lacks it: each request that rule allowed — over HTTP and over the chat socket — is refused and audited
//! once, and every other request is still allowed. Then: no role comparison outside the policy module, and two
//! tabs of the same nurse joining at once leave exactly one peer connection.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::chat::{FAST_ROUTING, Ws, audit_denials};
use crate::common::client;
use crate::demo::{credentials, patient_token, staff_cookie};
use crate::test_app::TestApp;

mod probes;

use probes::{PROBES, consult_probes, guest_probes};

/// The shipped policy without the rule `id`.
fn policy_without(id: &str) -> String {
    let mut policy: toml::Table = examroom::policy::DEFAULT_ACCESS_POLICY.parse().unwrap();
    let rules = policy["rules"].as_array_mut().unwrap();
    let before = rules.len();
    rules.retain(|r| r["id"].as_str() != Some(id));
    assert_eq!(rules.len(), before - 1, "rule {id} is in the shipped policy");
    toml::to_string(&policy).unwrap()
}

/// Sends `frame` and returns the answer of type `ok` or an error frame.
async fn ask(ws: &mut Ws, frame: Value, ok: &'static str) -> Value {
    ws.send(frame).await;
    ws.wait(ok, move |v| v["type"] == ok || v["type"] == "error")
        .await
}

fn allowed_frame(v: &Value, ok: &str) -> bool {
    if v["type"] == "error" {
        assert_eq!(
            v["code"], "forbidden",
            "a refusal by the policy, not another error: {v}"
        );
        return false;
    }
    v["type"] == ok
}

fn allowed_status(status: u16, what: &str) -> bool {
    assert!(
        status == 403 || (200..300).contains(&status) || status == 400,
        "{what}: unexpected {status}"
    );
    status != 403
}

/// Runs every probe it can against `url`; `None` means a request it needs first was refused.
async fn run_probes(url: &str, data: &Path) -> BTreeMap<&'static str, Option<bool>> {
    let mut out: BTreeMap<&'static str, Option<bool>> = BTreeMap::new();
    let http = client();
    let get = |path: &str, cookie: &str| http.get(format!("{url}{path}")).header("cookie", cookie).send();
    let status = |r: reqwest::Response| r.status().as_u16();

    let nurse_cookie = staff_cookie(url, data, "nurse").await;
    for (name, user, path) in [
        ("staff reads own session (HTTP)", "nurse", "/api/v1/me"),
        (
            "supervisor reads queue statistics (HTTP)",
            "supervisor",
            "/api/v1/queues/stats",
        ),
        (
            "compliance lists recordings (HTTP)",
            "compliance",
            "/api/v1/recordings?reason=table",
        ),
        (
            "compliance reads the audit log (HTTP)",
            "compliance",
            "/api/v1/audit/events",
        ),
        (
            "helpdesk reads system status (HTTP)",
            "helpdesk",
            "/api/v1/system/status",
        ),
    ] {
        let cookie = staff_cookie(url, data, user).await;
        let code = status(get(path, &cookie).await.unwrap());
        out.insert(name, Some(allowed_status(code, path)));
    }

    let mut patient = Ws::patient(url, &patient_token(url, data, "patient").await).await;
    let mut nurse = Ws::staff(url, &nurse_cookie).await;
    let precall = ask(
        &mut patient,
        json!({"v": 1, "type": "precall_start"}),
        "precall_ready",
    )
    .await;
    out.insert(
        "patient tests camera and connection (socket)",
        Some(allowed_frame(&precall, "precall_ready")),
    );
    let start = json!({"v": 1, "type": "start", "queue": "triage", "idempotency_key": "k1"});
    let started = ask(&mut patient, start, "conversation").await;
    let conversation = allowed_frame(&started, "conversation").then(|| {
        started["conversation"]["conversation_id"]
            .as_str()
            .unwrap()
            .to_string()
    });
    out.insert("patient starts a chat (socket)", Some(conversation.is_some()));
    let ready = ask(
        &mut nurse,
        json!({"v": 1, "type": "presence", "state": "ready"}),
        "presence",
    )
    .await;
    let ready = allowed_frame(&ready, "presence");
    out.insert("nurse goes ready (socket)", Some(ready));
    let mut assigned = false;
    if let (Some(c), true) = (&conversation, ready) {
        nurse.offer_for(c).await;
        let preview = json!({"v": 1, "type": "preview", "conversation_id": c});
        let p = ask(&mut nurse, preview, "preview").await;
        out.insert(
            "nurse previews the chat offered to her (socket)",
            Some(allowed_frame(&p, "preview")),
        );
        nurse
            .send(json!({"v": 1, "type": "accept", "conversation_id": c}))
            .await;
        patient.expect("assigned").await;
        assigned = true;
    }
    let mut visit = None;
    if let (Some(c), true) = (&conversation, assigned) {
        let send = |key: &str| json!({"v": 1, "type": "send", "conversation_id": c, "idempotency_key": key, "body": "hello"});
        let a = ask(&mut patient, send("p1"), "ack").await;
        out.insert(
            "patient writes in own chat (socket)",
            Some(allowed_frame(&a, "ack")),
        );
        let a = ask(&mut nurse, send("n1"), "ack").await;
        out.insert(
            "nurse writes in assigned chat (socket)",
            Some(allowed_frame(&a, "ack")),
        );
        let request = json!({"v": 1, "type": "video_request", "device_check": {"camera": true, "microphone": true}, "conversation_id": c});
        let p = ask(&mut nurse, request, "video_proposed").await;
        let elevated = allowed_frame(&p, "video_proposed");
        out.insert("nurse elevates assigned chat (socket)", Some(elevated));
        if elevated {
            visit = Some(p["visit_id"].as_str().unwrap().to_string());
        }
    }
    if let Some(v) = &visit {
        let answer = json!({"v": 1, "type": "video_answer", "visit_id": v, "accept": true, "recording_consent": false});
        let a = ask(&mut patient, answer, "video_started").await;
        out.insert(
            "patient answers the camera prompt (socket)",
            Some(allowed_frame(&a, "video_started")),
        );
        if allowed_frame(&a, "video_started") {
            guest_probes(url, v, &mut patient, &mut nurse, &mut out).await;
            consult_probes((url, data), v, &mut nurse, &mut out).await;
        }
        // Not recorded (no consent): an allowed pause is 400 `not_recorded`, a refused one 403.
        let pause = |auth: reqwest::RequestBuilder| {
            auth.json(&json!({"state": "paused", "reason": "EMR: sensitive section"}))
                .send()
        };
        let path = format!("{url}/api/v1/visits/{v}/recording-state");
        let code = status(
            pause(
                http.put(&path)
                    .header("cookie", &nurse_cookie)
                    .header("origin", url),
            )
            .await
            .unwrap(),
        );
        out.insert(
            "nurse pauses recording (HTTP)",
            Some(allowed_status(code, "nurse pause")),
        );
        let code = status(
            pause(http.put(&path).bearer_auth(emr_token(url, data).await))
                .await
                .unwrap(),
        );
        out.insert(
            "EMR pauses recording (HTTP)",
            Some(allowed_status(code, "EMR pause")),
        );
    }
    // A supervisor follows the chat while it is live (from the board).
    if let Some(c) = &conversation {
        let supervisor = staff_cookie(url, data, "supervisor").await;
        let path = format!("/api/v1/conversations/{c}/messages");
        let code = status(get(&path, &supervisor).await.unwrap());
        out.insert(
            "supervisor reads a live chat (HTTP)",
            Some(allowed_status(code, "a live chat's messages")),
        );
    }
    // Ending takes the same rule as writing: without it, no end (and no second refusal to count).
    let may_end = out.get("nurse writes in assigned chat (socket)") == Some(&Some(true));
    let ended = match (&conversation, may_end) {
        (Some(c), true) => {
            let end = json!({"v": 1, "type": "end", "conversation_id": c});
            ask(&mut nurse, end, "ended").await["type"] == "ended"
        }
        _ => false,
    };
    if let (Some(c), true) = (&conversation, ended) {
        let wrap = json!({"v": 1, "type": "wrap_up", "conversation_id": c, "disposition": "Advice given"});
        let w = ask(&mut nurse, wrap, "wrap_up_saved").await;
        out.insert(
            "nurse wraps up the chat she ended (socket)",
            Some(allowed_frame(&w, "wrap_up_saved")),
        );
    }
    // Break-glass on the ended chat: a record now, a supervisor's only through a declared emergency.
    if let (Some(c), true) = (&conversation, ended) {
        let supervisor = staff_cookie(url, data, "supervisor").await;
        let why = "patient collapsed; the ED needs what was said in this chat";
        let request = http
            .post(format!("{url}/api/v1/break-glass"))
            .header("cookie", &supervisor)
            .header("origin", url)
            .json(&json!({"resource": format!("conversation:{c}"), "justification": why}));
        let granted = allowed_status(status(request.send().await.unwrap()), "break-glass");
        out.insert(
            "supervisor declares a break-glass emergency (HTTP)",
            Some(granted),
        );
        if granted {
            let mut socket = Ws::staff(url, &supervisor).await;
            let sync = json!({"v": 1, "type": "sync", "conversation_id": c, "after_seq": 0});
            let synced = ask(&mut socket, sync, "synced").await;
            out.insert(
                "supervisor reads an ended chat under break-glass (socket)",
                Some(allowed_frame(&synced, "synced")),
            );
        }
    }
    for p in PROBES {
        out.entry(p.name).or_insert(None);
    }
    out
}

async fn emr_token(url: &str, data: &Path) -> String {
    let secret = credentials(data)["emr_client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let tokens: Value = client()
        .post(format!("{url}/dev-idp/token"))
        .basic_auth("emr-integration", Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "recording:pause-others"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"].as_str().unwrap().to_string()
}

/// A broker in this process, with `policy` as its access policy (the shipped one when `None`).
async fn broker_with(policy: Option<&str>) -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.toml");
    let mut env = FAST_ROUTING.to_vec();
    let path = file.display().to_string();
    if let Some(text) = policy {
        std::fs::write(&file, text).unwrap();
        env.push(("EXAMROOM_POLICY__ACCESS_FILE", &path));
    }
    (dir, TestApp::spawn(&env).await)
}

#[tokio::test]
async fn each_rule_removed_denies_exactly_what_it_allowed_over_http_and_the_socket() {
    // Every rule of the shipped policy has a probe, and every probe a rule.
    let shipped =
        examroom::policy::AccessPolicy::parse(examroom::policy::DEFAULT_ACCESS_POLICY, "shipped").unwrap();
    let mut rules: Vec<&str> = shipped.rule_ids();
    rules.sort();
    let mut probed: Vec<&str> = PROBES.iter().map(|p| p.rule).collect();
    probed.sort();
    probed.dedup();
    assert_eq!(rules, probed, "a rule without a probe, or a probe without a rule");

    let (_dir, broker) = broker_with(None).await;
    let full = run_probes(&broker.url, &broker.data).await;
    for (name, allowed) in &full {
        assert_eq!(*allowed, Some(true), "with the shipped policy: {name}");
    }
    assert!(
        audit_denials(&broker.data).await.is_empty(),
        "nothing refused with the shipped policy"
    );
    drop(broker);

    for rule in rules {
        let (_dir, broker) = broker_with(Some(&policy_without(rule))).await;
        let outcome = run_probes(&broker.url, &broker.data).await;
        let denials = audit_denials(&broker.data).await;
        for p in PROBES {
            let got = outcome[p.name];
            if p.rule == rule {
                assert_eq!(got, Some(false), "without {rule}: {} must be refused", p.name);
                let audited = denials.iter().filter(|(a, _)| a == p.action).count();
                assert_eq!(audited, 1, "without {rule}: {} audited once: {denials:?}", p.name);
            } else {
                // Still allowed, unless a step it needs was the removed rule's.
                assert_ne!(
                    got,
                    Some(false),
                    "without {rule}: {} must still be allowed",
                    p.name
                );
            }
        }
    }
}

#[test]
fn no_role_comparison_outside_the_policy_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("policy") {
                    stack.push(path);
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                let compares = line.contains(".has_role(")
                    || line.contains("== Role::")
                    || line.contains("!= Role::")
                    || (line.contains("matches!(") && line.contains("Role::"));
                if compares {
                    offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "decide in the policy instead:\n{}",
        offenders.join("\n")
    );
}

#[tokio::test]
async fn two_tabs_joining_at_once_leave_one_peer_connection() {
    let (_dir, data, broker) = crate::chat::start_dev(FAST_ROUTING);
    let nurse_cookie = staff_cookie(&broker.url, &data, "nurse").await;
    let (_patient, _nurse, visit) =
        crate::media_peers::active_visit_with(&broker, &data, &nurse_cookie, Some(false)).await;
    // Two more tabs of the same nurse offer at the same moment.
    let mut tabs = [
        Ws::staff(&broker.url, &nurse_cookie).await,
        Ws::staff(&broker.url, &nurse_cookie).await,
    ];
    let peers = [
        crate::peer::ClientPeer::new("NURSE", "PATIENT").await,
        crate::peer::ClientPeer::new("NURSE", "PATIENT").await,
    ];
    let (a, b) = (peers[0].offer().await, peers[1].offer().await);
    let [t0, t1] = &mut tabs;
    tokio::join!(
        t0.send(json!({"v": 1, "type": "video_offer", "visit_id": visit, "sdp": a})),
        t1.send(json!({"v": 1, "type": "video_offer", "visit_id": visit, "sdp": b})),
    );
    let mut answers = 0;
    for tab in tabs.iter_mut() {
        let f = tab
            .wait("answer or replaced", |v| {
                v["type"] == "video_sdp" || (v["type"] == "error" && v["code"] == "replaced")
            })
            .await;
        answers += usize::from(f["type"] == "video_sdp");
    }
    assert!(answers >= 1, "the later join is answered");
    // Whichever order the engine finished in, one connection is left for the nurse's side.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let count = peer_connections(&broker.url).await;
        if count == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a leaked peer connection: examroom_media_peer_connections {count}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // And it stays one: nothing joins late.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(peer_connections(&broker.url).await, "1");
    broker.assert_no_panic();
}

/// The broker's `examroom_media_peer_connections` gauge, as exported.
async fn peer_connections(url: &str) -> String {
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("examroom_media_peer_connections "))
        .unwrap_or("")
        .to_string()
}
