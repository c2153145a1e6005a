//! Scheduled evidence on a real broker: with a daily and a weekly schedule, the reports of the periods just
//! ended are produced at start without anyone asking, listed for the compliance officer, verified by the
//! broker (digest, signature, chain head) and by `examroom report verify FILE` (with the deployment's keys, and
//! offline with the public key); a changed file is refused; a restart produces no second copy; each is in the
//! audit chain; only compliance officers see them.

use std::time::Duration;

use serde_json::Value;

use crate::common::{Broker, examroom};
use crate::demo::staff_cookie;

const SCHEDULES: &str = r#"[{name = "daily-access", report = "access", every = "daily"}, {name = "weekly-exposure", report = "exposure", every = "weekly", time_zone = "America/Chicago", keep_days = 30}]"#;

async fn listed(url: &str, cookie: &str) -> Value {
    let r = crate::common::client()
        .get(format!("{url}/api/v1/reports/scheduled"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn scheduled_reports(url: &str, cookie: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let list = listed(url, cookie).await;
        let reports = list["reports"].as_array().unwrap().clone();
        if reports.len() >= n {
            return reports;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the scheduled reports were not produced");
}

#[tokio::test]
async fn reports_arrive_on_schedule_signed_and_a_changed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("EXAMROOM_REPORTS__SCHEDULES", SCHEDULES)];
    let mut broker = Broker::dev(&data, &env);
    let url = broker.url.clone();
    let compliance = staff_cookie(&url, &data, "compliance").await;
    let reports = scheduled_reports(&url, &compliance, 2).await;
    let daily = reports.iter().find(|r| r["schedule"] == "daily-access").unwrap();
    // The day just ended: the days are read back from the report when the test straddles midnight UTC.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    if daily["to"] == format!("{today}T00:00:00.000Z") {
        assert_eq!(daily["from"], format!("{yesterday}T00:00:00.000Z"), "{daily}");
    }
    let yesterday = daily["from"].as_str().unwrap()[..10].to_string();
    assert_eq!(daily["from"], format!("{yesterday}T00:00:00.000Z"), "{daily}");
    let weekly = reports
        .iter()
        .find(|r| r["schedule"] == "weekly-exposure")
        .unwrap();
    assert_eq!(weekly["report"], "exposure");
    let id = daily["id"].as_str().unwrap().to_string();

    let http = crate::common::client();
    let get = |path: String, cookie: &str| {
        http.get(format!("{url}{path}"))
            .header("cookie", cookie.to_string())
            .send()
    };
    let check: Value = get(format!("/api/v1/reports/scheduled/{id}/verify"), &compliance)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["check"]["valid"], true, "{check}");
    assert_eq!(check["check"]["verified"]["schedule"], "daily-access");

    let file = get(format!("/api/v1/reports/scheduled/{id}"), &compliance)
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    let bytes = file.bytes().await.unwrap();
    let signed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(signed["signed"]["report"]["report"], "access");
    assert_eq!(
        signed["signed"]["report"]["parameters"]["from"],
        format!("{yesterday}T00:00:00.000Z")
    );
    assert!(signed["signed"]["executed_at"].as_str().unwrap() >= daily["to"].as_str().unwrap());
    assert!(signed["signed"]["report"]["chain_head"]["hash"].is_string());
    let path = dir.path().join("daily.json");
    std::fs::write(&path, &bytes).unwrap();
    let (code, out) = examroom(&[
        "report",
        "verify",
        path.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("valid: the access report of schedule daily-access"),
        "{out}"
    );
    assert!(out.contains("is in this audit chain"), "{out}");

    // Offline, with the public key alone.
    let pkcs8 = std::fs::read(data.join("keys/audit-signing.pk8")).unwrap();
    let public = hex::encode(
        examroom::audit::checkpoint::Signer::from_pkcs8(&pkcs8)
            .unwrap()
            .public_key(),
    );
    let (code, out) = examroom(&[
        "report",
        "verify",
        path.to_str().unwrap(),
        "--public-key",
        &public,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("not checked (offline)"), "{out}");

    // A changed parameter is refused, online and offline.
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let tampered = text.replacen("\"exposure_threshold\": 20", "\"exposure_threshold\": 200", 1);
    assert_ne!(tampered, text);
    let bad = dir.path().join("tampered.json");
    std::fs::write(&bad, tampered).unwrap();
    for extra in [
        ["--data-dir", data.to_str().unwrap()],
        ["--public-key", public.as_str()],
    ] {
        let mut args = vec!["report", "verify", bad.to_str().unwrap()];
        args.extend(extra);
        let (code, out) = examroom(&args);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("refused: the signature does not match"), "{out}");
    }

    // Only compliance officers.
    let nurse = staff_cookie(&url, &data, "nurse").await;
    for path in [
        "/api/v1/reports/scheduled".to_string(),
        format!("/api/v1/reports/scheduled/{id}"),
    ] {
        assert_eq!(get(path, &nurse).await.unwrap().status(), 403);
    }
    assert_eq!(
        get("/api/v1/reports/scheduled/SR-none".into(), &compliance)
            .await
            .unwrap()
            .status(),
        404
    );

    // A restart produces nothing twice: with a third schedule added, its report shows the worker ran again
    // after the restart, and the first two are still alone.
    assert!(broker.terminate().success());
    let more = SCHEDULES.replace(
        "}]",
        r#"}, {name = "daily-consent", report = "consent", every = "daily"}]"#,
    );
    let broker = Broker::dev(&data, &[("EXAMROOM_REPORTS__SCHEDULES", more.as_str())]);
    let compliance = staff_cookie(&broker.url, &data, "compliance").await;
    let after = scheduled_reports(&broker.url, &compliance, 3).await;
    let per = |name: &str| after.iter().filter(|r| r["schedule"] == name).count();
    assert_eq!(
        (per("daily-access"), per("weekly-exposure"), per("daily-consent")),
        (1, 1, 1),
        "{after:?}"
    );

    // In the audit chain: each report made, and the download by the officer.
    let events: Vec<(String, String, String)> = crate::chat::query_db(
        &data,
        "SELECT actor, action, resource FROM audit_events WHERE action IN ('report.scheduled', 'audit.report')",
    )
    .await;
    let made = events
        .iter()
        .filter(|(a, act, _)| a == "system:reports" && act == "report.scheduled")
        .count();
    assert_eq!(made, 3, "one receipt per report: {events:?}");
    assert!(
        events
            .iter()
            .any(|(_, act, r)| act == "audit.report" && *r == format!("report:{id}")),
        "{events:?}"
    );
    broker.assert_no_panic();
}
