//! The deployment's alerts and dashboard (`deploy/prometheus/alerts.yml`, `deploy/grafana/examroom.json`) name
//! only metrics a broker exports: a broker's `/metrics` is scraped and every `examroom_*` name they use is there.
//! (`promtool check rules` and `promtool test rules` run in `scripts/test.sh`.)

use std::collections::BTreeSet;
use std::time::Duration;

use crate::chat::FAST_ROUTING;
use crate::test_app::TestApp;

/// Every `examroom_…` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("examroom_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn every_metric_an_alert_or_a_panel_names_is_exported() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut named = BTreeSet::new();
    for file in ["deploy/prometheus/alerts.yml", "deploy/grafana/examroom.json"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        named.extend(metric_names(&text));
    }
    assert!(named.len() >= 12, "{named:?}");
    let app = TestApp::spawn(FAST_ROUTING).await;
    let http = crate::common::client();
    // The observability worker fills its gauges at start.
    let mut missing: Vec<String> = Vec::new();
    for _ in 0..50 {
        let text = http
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let exported: BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        missing = named
            .iter()
            .filter(|n| !exported.contains(n.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        missing.is_empty(),
        "named by an alert or a panel but not exported: {missing:?}"
    );
}
