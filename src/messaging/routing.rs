//! The waiting room across nodes. One node, the routing leader (whoever holds the `routing` lease; on SQLite
//! the only node), runs the sans-IO routing core and applies its effects; every other node forwards its routing
//! calls to the leader over the signed internal channel. The leader keeps the core's state in rows beside the
//! conversations (who is ready on which node, which offers are open), so a new leader rebuilds it: waiting
//! conversations keep their original place, assignments stay, offers the old leader made are ended
//! (`rerouted`) and routed afresh, nurses on dead nodes are no longer ready.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::{Messaging, MessagingError};
use crate::clock::now_ms;
use crate::ids::{ConversationId, SubjectId};
use crate::protocol::ServerFrame;
use crate::store::{ConversationState, PresenceRow};
use crate::waiting_room::{NurseStats, OfferEnd, Presence, QueueStats, RoutingError};

/// The internal route a follower posts commands to.
pub const ROUTING_PATH: &str = "/internal/v1/routing";
/// How often the leader re-reads the rows it could have missed (a forward that failed) and the dead nodes.
const RECONCILE_EVERY_MS: i64 = 5_000;

/// A routing call, as a follower forwards it to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RoutingCommand {
    /// The conversation's row is waiting: put it in its queue (idempotent).
    Enqueue {
        conversation: ConversationId,
    },
    Boost {
        conversation: ConversationId,
    },
    Available {
        nurse: SubjectId,
        skills: Vec<String>,
        available: bool,
        node: String,
    },
    Accept {
        nurse: SubjectId,
        conversation: ConversationId,
    },
    Decline {
        nurse: SubjectId,
        conversation: ConversationId,
    },
    Finish {
        nurse: SubjectId,
        conversation: ConversationId,
        queue: String,
        handled_ms: i64,
    },
    Cancel {
        conversation: ConversationId,
    },
    /// A warm transfer: `from` asks `to` to take `conversation` (of `queue`).
    HandOff {
        from: SubjectId,
        to: SubjectId,
        conversation: ConversationId,
        queue: String,
    },
    /// A connection (`node:socket`) of this conversation's patient opened or closed.
    PatientConnection {
        conversation: ConversationId,
        connection: String,
        open: bool,
    },
    /// A connection of a nurse opened or closed.
    NurseConnection {
        nurse: SubjectId,
        connection: String,
        open: bool,
    },
    Presence {
        nurse: SubjectId,
    },
    Stats,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum RoutingReply {
    Done,
    Presence {
        presence: Presence,
    },
    Stats {
        queues: Vec<QueueStats>,
        /// Empty from a leader of the previous release (a rolling upgrade).
        #[serde(default)]
        nurses: Vec<NurseStats>,
    },
    /// The core refused (no such offer, not assigned).
    Refused {
        reason: String,
    },
    /// This node does not lead (any more): ask the lease's holder.
    NotLeader,
}

impl Messaging {
    /// Runs `command` on the routing core: here when this node leads, otherwise on the leader.
    pub async fn route(&self, command: RoutingCommand) -> Result<RoutingReply, MessagingError> {
        for attempt in 0..4 {
            if self.leading.load(Ordering::Acquire) {
                match self.execute(command.clone()).await {
                    // Resigned meanwhile: ask the new leader.
                    RoutingReply::NotLeader => continue,
                    reply => return Ok(reply),
                }
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
            }
            let Ok(Some((node, url))) = self.cluster.holder_url("routing").await else {
                continue;
            };
            if node == self.cluster.node_id() {
                continue;
            }
            let body = serde_json::to_vec(&command).expect("commands serialise");
            match self.cluster.call(&node, &url, ROUTING_PATH, body).await {
                Ok(bytes) => match serde_json::from_slice::<RoutingReply>(&bytes) {
                    Ok(RoutingReply::NotLeader) => continue,
                    Ok(reply) => return Ok(reply),
                    Err(e) => tracing::warn!(error = %e, "unreadable routing reply"),
                },
                Err(e) => tracing::warn!(error = %e, "routing leader unreachable"),
            }
        }
        Err(MessagingError::RoutingUnavailable)
    }

    /// Runs a command on this node's core (the leader's side of [`Messaging::route`]).
    pub async fn execute(&self, command: RoutingCommand) -> RoutingReply {
        if !self.leading.load(Ordering::Acquire) {
            return RoutingReply::NotLeader;
        }
        let now = now_ms();
        let refused = |e: RoutingError| RoutingReply::Refused {
            reason: e.to_string(),
        };
        // Read before taking the core's lock, which no database call should hold up. A `Cancel` that overtakes
        // this read leaves a queued conversation whose row is closed: reconciliation removes it.
        let enqueued = match &command {
            RoutingCommand::Enqueue { conversation } => match self.db.conversation(conversation).await {
                Ok(row) => row,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a conversation to enqueue");
                    None
                }
            },
            _ => None,
        };
        // Presence is stored first too: a new leader finds who is ready in these rows (in a cluster; alone on
        // SQLite nobody is connected after a restart).
        if let RoutingCommand::Available {
            nurse,
            skills,
            available,
            node,
        } = &command
            && self.cluster.is_shared()
        {
            let stored = if *available {
                self.db
                    .set_presence(&PresenceRow {
                        nurse: nurse.as_str().to_string(),
                        skills: serde_json::to_string(skills).expect("skills serialise"),
                        node_id: node.clone(),
                        since: now,
                    })
                    .await
            } else {
                self.db.clear_presence(nurse.as_str()).await
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "nurse presence not stored");
            }
        }
        let effects = {
            let mut room = self.room.lock().await;
            // Resigned while this call waited for the core: the caller asks the new leader.
            if !self.leading.load(Ordering::Acquire) {
                return RoutingReply::NotLeader;
            }
            match command {
                RoutingCommand::Enqueue { .. } => match enqueued {
                    Some(c) if c.state == ConversationState::Waiting && !room.is_assigned(&c.id) => {
                        self.remember_patient(&c);
                        match room.enqueue(c.id, &c.queue, c.priority_boost, c.enqueued_at, now) {
                            Ok(effects) => effects,
                            Err(e) => return refused(e),
                        }
                    }
                    _ => Vec::new(),
                },
                RoutingCommand::Boost { conversation } => room.boost(&conversation, now),
                RoutingCommand::Available {
                    nurse,
                    skills,
                    available,
                    ..
                } => room.set_available(&nurse, &skills, available, now),
                RoutingCommand::Accept { nurse, conversation } => {
                    match room.accept(&nurse, &conversation, now) {
                        Ok(effects) => effects,
                        Err(e) => return refused(e),
                    }
                }
                RoutingCommand::Decline { nurse, conversation } => {
                    match room.decline(&nurse, &conversation, now) {
                        Ok(effects) => effects,
                        Err(e) => return refused(e),
                    }
                }
                RoutingCommand::Finish {
                    nurse,
                    conversation,
                    queue,
                    handled_ms,
                } => match room.finish(&nurse, &conversation, &queue, handled_ms, now) {
                    Ok(effects) => effects,
                    // Closed in the database either way; the core had already let go of it.
                    Err(e) => {
                        tracing::warn!(error = %e, "routing core did not know the ended assignment");
                        Vec::new()
                    }
                },
                RoutingCommand::Cancel { conversation } => {
                    self.patients.lock().expect("patients lock").remove(&conversation);
                    room.cancel(&conversation, now)
                }
                RoutingCommand::HandOff {
                    from,
                    to,
                    conversation,
                    queue,
                } => match room.hand_off(&from, &to, &conversation, &queue, now) {
                    Ok(effects) => effects,
                    Err(e) => return refused(e),
                },
                RoutingCommand::PatientConnection {
                    conversation,
                    connection,
                    open,
                } => room.patient_connection(&conversation, &connection, open, now),
                RoutingCommand::NurseConnection {
                    nurse,
                    connection,
                    open,
                } => {
                    room.nurse_connection(&nurse, &connection, open, now);
                    Vec::new()
                }
                RoutingCommand::Presence { nurse } => {
                    return RoutingReply::Presence {
                        presence: room.presence(&nurse, now),
                    };
                }
                RoutingCommand::Stats => {
                    return RoutingReply::Stats {
                        queues: room.stats(now),
                        nurses: room.nurse_stats(now),
                    };
                }
            }
        };
        self.apply(effects).await;
        RoutingReply::Done
    }

    /// Takes the routing core over: rebuilds it from the rows and starts leading. Called by the `routing`
    /// lease's worker (and at start on SQLite, where this node is the only one).
    pub async fn lead(&self) -> Result<(), MessagingError> {
        let now = now_ms();
        // Everything is read first and the core built aside: a failure here leaves nothing half done.
        let mut room = self.fresh_room();
        for q in self.queues.keys() {
            for ms in self.db.recent_handle_times(q, 20).await?.into_iter().rev() {
                room.record_handle_time(q, ms);
            }
        }
        let open = self.db.open_conversations().await?;
        // On one node nobody is connected yet at start; in a cluster only nurses on live nodes stay ready.
        let live = self.live_node_ids().await?;
        let presences = self.db.presences().await?;
        self.patients.lock().expect("patients lock").clear();
        for c in open {
            match (c.state, &c.nurse) {
                (ConversationState::Assigned, Some(nurse)) => {
                    room.restore_assignment(nurse, c.id.clone());
                    // Alone on SQLite nobody is connected at a start: her chats wait for her the grace long.
                    if !self.cluster.is_shared() {
                        room.nurse_connection(nurse, "", false, now);
                        let _ = room.patient_absent(&c.id, now);
                    }
                }
                (ConversationState::Waiting, _) if self.queues.contains_key(&c.queue) => {
                    self.remember_patient(&c);
                    let _ = room.enqueue(c.id.clone(), &c.queue, c.priority_boost, c.enqueued_at, now)?;
                    // Alone on SQLite this is a start: nobody is connected yet, so nobody is offered before
                    // their socket says they are there (or the grace ends their wait).
                    if !self.cluster.is_shared() {
                        let _ = room.patient_absent(&c.id, now);
                    }
                }
                _ => {}
            }
        }
        let mut effects = Vec::new();
        for p in presences {
            if live.contains(&p.node_id) {
                let skills: Vec<String> = serde_json::from_str(&p.skills).unwrap_or_default();
                effects.extend(room.set_available(&SubjectId::new(p.nurse), &skills, true, now));
            } else if let Err(e) = self.db.clear_presence(&p.nurse).await {
                tracing::warn!(error = %e, "presence of a nurse on a dead node not cleared");
            }
        }
        // The previous leader's offers are ended (the core routes those conversations afresh): the last step.
        let stale = self.db.take_offers().await?;
        *self.room.lock().await = room;
        self.leading.store(true, Ordering::Release);
        for (conversation, nurse) in stale {
            self.send_to(
                &SubjectId::new(nurse),
                ServerFrame::OfferEnded {
                    conversation_id: ConversationId::new(conversation),
                    reason: OfferEnd::Rerouted,
                },
            );
        }
        self.apply(effects).await;
        tracing::info!(node = %self.cluster.node_id(), "leading the waiting room");
        Ok(())
    }

    /// The live nodes' ids (none on SQLite, where no presence row names a node that is not this one's past).
    async fn live_node_ids(&self) -> Result<Vec<String>, MessagingError> {
        if !self.cluster.is_shared() {
            return Ok(Vec::new());
        }
        self.cluster
            .live_node_ids()
            .await
            .map_err(|e| MessagingError::Cluster(e.to_string()))
    }

    fn remember_patient(&self, c: &crate::store::ConversationRow) {
        self.patients
            .lock()
            .expect("patients lock")
            .insert(c.id.clone(), c.patient.clone());
    }

    /// Stops leading (the lease was lost or the node stops): the core is emptied, calls are forwarded.
    pub async fn resign(&self) {
        self.leading.store(false, Ordering::Release);
        *self.room.lock().await = self.fresh_room();
    }

    /// The `routing` lease's work: lead, run the timers, resign when told to stop.
    pub async fn run_leader(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        while !self.leading.load(Ordering::Acquire) {
            match self.lead().await {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "could not take the waiting room over; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        // However this work ends (told to stop, or aborted mid-call when the lease ran out), this node stops
        // leading; the next `lead` rebuilds the core.
        struct Resign(Arc<Messaging>);
        impl Drop for Resign {
            fn drop(&mut self) {
                self.0.leading.store(false, Ordering::Release);
            }
        }
        let _resign = Resign(self.clone());
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut reconciled = now_ms();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "messaging timers failed");
            }
            if now_ms() - reconciled >= RECONCILE_EVERY_MS {
                reconciled = now_ms();
                if let Err(e) = self.reconcile().await {
                    tracing::warn!(error = %e, "routing reconciliation failed");
                }
            }
        }
        self.resign().await;
    }

    /// What a forward that failed could have left out: waiting rows the core does not know, conversations the
    /// core still queues though their rows left the queue, and nurses still ready on nodes that died. The rows
    /// are read under the core's lock (one query every few seconds), so a conversation queued by a command in
    /// between is not taken for one that left.
    async fn reconcile(&self) -> Result<(), MessagingError> {
        let now = now_ms();
        let effects = {
            let mut room = self.room.lock().await;
            let waiting: Vec<_> = self
                .db
                .open_conversations()
                .await?
                .into_iter()
                .filter(|c| c.state == ConversationState::Waiting && self.queues.contains_key(&c.queue))
                .collect();
            let mut effects = Vec::new();
            let rows: std::collections::HashSet<&ConversationId> = waiting.iter().map(|c| &c.id).collect();
            let queued: std::collections::HashSet<ConversationId> = room.waiting_ids().into_iter().collect();
            for gone in queued.iter().filter(|id| !rows.contains(id)) {
                effects.extend(room.cancel(gone, now));
            }
            // Only what the core does not know: each enqueue settles the whole queue.
            for c in waiting.iter().filter(|c| !queued.contains(&c.id)) {
                if !room.is_assigned(&c.id) {
                    self.remember_patient(c);
                    effects.extend(room.enqueue(
                        c.id.clone(),
                        &c.queue,
                        c.priority_boost,
                        c.enqueued_at,
                        now,
                    )?);
                }
            }
            effects
        };
        self.apply(effects).await;
        if !self.cluster.is_shared() {
            return Ok(());
        }
        let live = self.live_node_ids().await?;
        // Connections on nodes that died will never say they closed.
        let effects = self.room.lock().await.forget_connections(
            |key| {
                !live
                    .iter()
                    .any(|n| key.strip_prefix(n.as_str()).is_some_and(|r| r.starts_with(':')))
            },
            now_ms(),
        );
        self.apply(effects).await;
        for p in self.db.presences().await? {
            if !live.contains(&p.node_id) {
                tracing::info!(node = %p.node_id, "a nurse's node died: no longer ready");
                self.execute(RoutingCommand::Available {
                    nurse: SubjectId::new(p.nurse),
                    skills: Vec::new(),
                    available: false,
                    node: p.node_id,
                })
                .await;
            }
        }
        Ok(())
    }
}
