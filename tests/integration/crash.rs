//! Crash safety of chat: the broker is killed with SIGKILL while messages are in flight, then restarted on the
//! same data directory. Every acknowledged message must be stored exactly once, and every unacknowledged one
//! can be resent with its idempotency key without being duplicated. Repeated for many cycles.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::chat::{Ws, start_dev};
use crate::common::Broker;
use crate::demo::patient_token;

const CYCLES: usize = 50;
const PER_CYCLE: usize = 4;

#[tokio::test]
async fn kill_9_between_send_and_ack_loses_and_duplicates_nothing() {
    let (_dir, data, first) = start_dev(&[]);
    let token = patient_token(&first.url, &data, "patient").await;
    let mut ws = Ws::patient(&first.url, &token).await;
    let conversation = ws.start("triage", "crash-test").await;
    drop(ws);
    drop(first);

    // key → seq of every acknowledged message.
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut sent: Vec<String> = Vec::new();
    // Messages whose acknowledgement the crash swallowed, and how many of those were already stored.
    let (mut resent, mut already_stored) = (0, 0);
    for cycle in 0..CYCLES {
        let mut broker = Broker::dev(&data, &[]);
        let mut ws = Ws::patient(&broker.url, &token).await;
        // Resend whatever the previous cycle never saw acknowledged: stored at most once.
        let unacked: Vec<String> = sent.iter().filter(|k| !acked.contains_key(*k)).cloned().collect();
        for key in unacked {
            let ack = ws.say(&conversation, &key, &format!("body of {key}")).await;
            resent += 1;
            already_stored += usize::from(ack["duplicate"] == true);
            acked.insert(key, ack["seq"].as_i64().unwrap());
        }
        // Fire a burst without waiting, then kill the broker while acknowledgements are in flight.
        for i in 0..PER_CYCLE {
            let key = format!("c{cycle}-m{i}");
            ws.send(
                json!({"v": 1, "type": "send", "conversation_id": conversation, "idempotency_key": key,
                           "body": format!("body of {key}")}),
            )
            .await;
            sent.push(key);
        }
        if cycle % 2 == 0 {
            // Half the cycles die right away, half after the first acknowledgement.
            let _ = ws.expect("ack").await;
        }
        broker.child.kill().unwrap();
        broker.child.wait().unwrap();
        for frame in ws.drain().await {
            if frame["type"] == "ack" {
                acked.insert(
                    frame["idempotency_key"].as_str().unwrap().to_string(),
                    frame["seq"].as_i64().unwrap(),
                );
            }
        }
    }

    let broker = Broker::dev(&data, &[]);
    let mut ws = Ws::patient(&broker.url, &token).await;
    for key in sent
        .iter()
        .filter(|k| !acked.contains_key(*k))
        .cloned()
        .collect::<Vec<_>>()
    {
        let ack = ws.say(&conversation, &key, &format!("body of {key}")).await;
        acked.insert(key, ack["seq"].as_i64().unwrap());
    }
    let mut stored: Vec<Value> = Vec::new();
    loop {
        let after = stored.last().map(|m| m["seq"].as_i64().unwrap()).unwrap_or(0);
        let page = ws.sync(&conversation, after).await;
        if page.is_empty() {
            break;
        }
        stored.extend(page);
    }
    assert_eq!(stored.len(), sent.len(), "every message stored exactly once");
    let mut by_body: HashMap<String, i64> = HashMap::new();
    for m in &stored {
        let previous = by_body.insert(
            m["body"].as_str().unwrap().to_string(),
            m["seq"].as_i64().unwrap(),
        );
        assert!(previous.is_none(), "duplicate {m}");
    }
    for key in &sent {
        let seq = by_body
            .get(&format!("body of {key}"))
            .unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(
            acked[key], *seq,
            "{key} acknowledged with the seq it is stored under"
        );
    }
    assert!(resent > 0, "the kills must interrupt some sends");
    eprintln!("{resent} sends interrupted by SIGKILL, {already_stored} of them were stored before the crash");
    broker.assert_no_panic();
}
