//! Delivery across nodes. A frame for someone goes to their sockets on this node at once and, when other
//! nodes share the database, onto the bus (PostgreSQL `NOTIFY`, published in order by one task per node) for
//! their sockets elsewhere. A chat message never travels itself: the bus carries a pointer (conversation and
//! sequence number) and the receiving node reads the row and decrypts it, so no PHI passes through the
//! database's notification queue. Rows are the truth and the bus only a wake-up: a node whose bus link broke
//! asks its sockets to reconnect (`close::RECONNECT`), and their `sync` replays what was missed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::Messaging;
use crate::ids::{ConversationId, SubjectId};
use crate::protocol::ServerFrame;
use crate::store::BusItem;

/// A notification's payload limit is 8000 bytes; larger frames (never routing or chat frames) stay local.
const MAX_PAYLOAD: usize = 7900;
/// Events per publishing round trip at most.
const PUBLISH_BATCH: usize = 500;

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum BusEvent {
    /// A frame for one person's sockets.
    Frame {
        from: String,
        to: SubjectId,
        frame: serde_json::Value,
    },
    /// A stored message for these people's sockets: read it from its row.
    Message {
        from: String,
        to: Vec<SubjectId>,
        conversation: ConversationId,
        seq: i64,
    },
}

/// The queue to this node's publishing task.
pub(super) struct Outbox {
    tx: mpsc::UnboundedSender<String>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl Outbox {
    pub(super) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl Messaging {
    /// Sends a frame to every socket of `subject`, on this node and the others.
    pub(crate) fn send_to(&self, subject: &SubjectId, frame: ServerFrame) {
        // A message's text never goes on the bus (`send_message` sends a pointer); a bug that tried stays local.
        if self.cluster.is_shared() && !matches!(frame, ServerFrame::Message { .. }) {
            let event = BusEvent::Frame {
                from: self.cluster.node_id().to_string(),
                to: subject.clone(),
                frame: serde_json::to_value(&frame).expect("frames serialise"),
            };
            self.publish(&event);
        }
        self.hub.send(subject, frame);
    }

    /// Sends a stored message's frame to `to` here, and a pointer to it to the other nodes.
    pub(super) fn send_message(
        &self,
        to: &[&SubjectId],
        conversation: &ConversationId,
        seq: i64,
        frame: ServerFrame,
    ) {
        if self.cluster.is_shared() {
            self.publish(&BusEvent::Message {
                from: self.cluster.node_id().to_string(),
                to: to.iter().map(|s| (*s).clone()).collect(),
                conversation: conversation.clone(),
                seq,
            });
        }
        for subject in to {
            self.hub.send(subject, frame.clone());
        }
    }

    fn publish(&self, event: &BusEvent) {
        let payload = serde_json::to_string(event).expect("events serialise");
        if payload.len() > MAX_PAYLOAD {
            tracing::warn!(
                bytes = payload.len(),
                "frame too large for the bus: delivered on this node only"
            );
            return;
        }
        let _ = self.outbox.tx.send(payload);
    }

    /// Publishes queued events in order until `stop`; a failed batch is retried, never dropped. Nothing on
    /// SQLite.
    pub async fn run_bus_publisher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(mut rx) = self.outbox.rx.lock().expect("outbox lock").take() else {
            return;
        };
        let mut batch = Vec::new();
        loop {
            if batch.is_empty() {
                tokio::select! {
                    next = rx.recv() => match next {
                        Some(p) => batch.push(p),
                        None => return,
                    },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            while batch.len() < PUBLISH_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            match self.db.publish(&batch).await {
                Ok(()) => batch.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "bus publish failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }

    /// Delivers other nodes' events to the sockets on this node until `stop`. Nothing on SQLite.
    pub async fn run_bus_listener(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if !self.cluster.is_shared() {
            return;
        }
        let mut relisten = false;
        loop {
            let mut listener = loop {
                match self.db.bus_listener().await {
                    Ok(l) => break l,
                    Err(e) => tracing::warn!(error = %e, "bus unavailable; retrying"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            };
            // Whatever was published while this node was not listening is missed: its sockets resync. (At
            // start there is nothing to miss, and the node says it is ready only from here on.)
            if std::mem::replace(&mut relisten, true) {
                self.hub.reset();
            }
            self.bus_up.store(true, Ordering::Release);
            loop {
                let item = tokio::select! {
                    item = listener.recv() => item,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match item {
                    Ok(BusItem::Event(payload)) => self.deliver_event(&payload).await,
                    Ok(BusItem::Gap) => {
                        tracing::warn!("bus link lost: this node is not ready until it is back");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bus link lost: this node is not ready until it is back");
                        break;
                    }
                }
            }
            self.bus_up.store(false, Ordering::Release);
        }
    }

    /// Whether frames from the other nodes reach this one (always on SQLite): `/readyz` says not ready while
    /// they cannot, so a balancer sends nobody here.
    pub fn bus_ready(&self) -> bool {
        !self.cluster.is_shared() || self.bus_up.load(Ordering::Acquire)
    }

    async fn deliver_event(&self, payload: &str) {
        let event = match serde_json::from_str::<BusEvent>(payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable bus event");
                return;
            }
        };
        match event {
            BusEvent::Frame { from, .. } | BusEvent::Message { from, .. }
                if from == self.cluster.node_id() => {}
            BusEvent::Frame { to, frame, .. } => self.hub.send(&to, ServerFrame::Relayed(frame)),
            BusEvent::Message {
                to,
                conversation,
                seq,
                ..
            } => {
                let here: Vec<&SubjectId> = to.iter().filter(|s| self.hub.has(s)).collect();
                if here.is_empty() {
                    return;
                }
                match self.stored_message(&conversation, seq).await {
                    Ok(Some(frame)) => {
                        for subject in here {
                            self.hub.send(subject, frame.clone());
                        }
                    }
                    Ok(None) => tracing::warn!("a message announced on the bus is not stored"),
                    Err(e) => tracing::warn!(error = %e, "could not read a message announced on the bus"),
                }
            }
        }
    }
}
