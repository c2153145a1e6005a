//! Secure chat: conversations, durable messages with per-conversation sequence numbers and idempotent resends,
//! encryption at rest, replay on reconnect, idle expiry, and the live side of the waiting room (applying the
//! routing core's effects to connected sockets through the [`hub`], which fans server frames out to whatever
//! sockets registered for a subject). Knows nothing about video, nor about reading sockets: the socket and its
//! frames are `http::ws`, which asks the policy and passes its proof to the calls here that read or write a
//! transcript.

mod alarm;
mod board;
pub mod bus;
pub mod classify;
pub mod context;
mod effects;
mod error;
pub mod hub;
pub mod retention;
pub mod routing;
mod transfer;
pub mod wrapup;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::Mutex;

use crate::clock::{now_ms, timestamp};
use crate::cluster::Cluster;
use crate::config::{Config, MessagingConfig, QueueConfig};
use crate::crypto::{CryptoError, Keyring};
use crate::ids::{ConversationId, SubjectId};
use crate::pii::Pii;
use crate::policy::Authorized;
use crate::protocol::{ConversationView, ServerFrame};
use crate::store::{AppendOutcome, ConversationRow, ConversationState, Db, StoreError};
use crate::triage::Triage;
use crate::waiting_room::{EMERGENCY_BOOST, QueueSpec, Reassurance, RoutingError, RoutingSpec, WaitingRoom};
use crate::waiting_room::{NurseStats, QueueStats};
pub use error::MessagingError;
use hub::Hub;
use routing::{RoutingCommand, RoutingReply};

pub const HOLD_MUSIC_URL: &str = "/assets/hold-music.wav";

/// A decrypted message.
pub struct Message {
    pub seq: i64,
    pub sender_role: String,
    pub body: Pii<String>,
    pub at_ms: i64,
}

pub struct Messaging {
    db: Db,
    keyring: Keyring,
    pub hub: Hub,
    cluster: Arc<Cluster>,
    /// Background outcomes are audited (a conversation abandoned in the waiting room).
    audit: crate::audit::Auditor,
    /// Whether this node runs the routing core (holds the `routing` lease; always on SQLite once started).
    leading: AtomicBool,
    /// The routing core; empty unless leading.
    room: Mutex<WaitingRoom>,
    room_spec: (Vec<QueueSpec>, RoutingSpec),
    /// The patient of each queued conversation, for the leader's position and reassurance frames.
    patients: std::sync::Mutex<HashMap<ConversationId, SubjectId>>,
    outbox: bus::Outbox,
    /// Whether this node listens to the bus (see [`Messaging::bus_ready`]).
    bus_up: AtomicBool,
    queues: HashMap<String, QueueConfig>,
    settings: MessagingConfig,
    /// Emergency and crisis rules for what patients write.
    triage: Triage,
    /// What a nurse picks from when wrapping a chat up (`routing.dispositions`).
    dispositions: Vec<String>,
    /// Conversations whose people have had the idle warning, with the activity time it was given for (a later
    /// message, on any node, moves that time and earns a new warning).
    warned: Mutex<HashMap<ConversationId, i64>>,
}

/// A reference the patient can quote on the phone: unambiguous characters only.
fn reference() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = hex::decode(crate::ids::random_hex(8)).expect("hex");
    let code: String = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("ER-{}-{}", &code[..4], &code[4..])
}

impl Messaging {
    /// The conversation's data key: its messages, context and wrap-up are all sealed with it.
    fn data_key(&self, c: &ConversationRow) -> Result<crate::crypto::DataKey, CryptoError> {
        self.keyring
            .unwrap_data_key(&c.kek_id, &c.wrapped_key, &key_context(c.id.as_str()))
    }

    /// A document sealed as JSON with the conversation's key, bound to `aad`.
    fn seal_json<T: serde::Serialize>(
        &self,
        c: &ConversationRow,
        aad: &[u8],
        value: &T,
    ) -> Result<String, MessagingError> {
        let json = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(self.data_key(c)?.seal(&json, aad)?)
    }

    /// The document [`Messaging::seal_json`] sealed.
    fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        c: &ConversationRow,
        aad: &[u8],
        sealed: &str,
    ) -> Result<T, MessagingError> {
        let plain = self.data_key(c)?.open(sealed, aad)?;
        Ok(serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    }
}

/// The associated data binding a conversation's wrapped data key to its row.
pub fn key_context(id: &str) -> String {
    format!("conversation:{id}")
}

fn aad(conversation: &ConversationId, seq: i64) -> Vec<u8> {
    format!("examroom-message-v1|{conversation}|{seq}").into_bytes()
}

impl Messaging {
    pub fn new(
        config: &Config,
        db: Db,
        cluster: Arc<Cluster>,
        audit: crate::audit::Auditor,
    ) -> Result<Self, CryptoError> {
        let files = config.kek_files();
        if config.messaging.kek_files.is_empty() {
            Keyring::create_key_file(&files[0])?;
        }
        let keyring = Keyring::load(&files)?;
        let queues: Vec<QueueConfig> = config.queues();
        let specs: Vec<QueueSpec> = queues
            .iter()
            .map(|q| QueueSpec {
                name: q.name.clone(),
                skills: q.skills.clone(),
                priority: q.priority,
                reassurance: q
                    .reassurance
                    .iter()
                    .map(|r| Reassurance {
                        after_seconds: r.after_seconds,
                        every_seconds: r.every_seconds,
                        text: r.text.clone(),
                    })
                    .collect(),
                max_wait_seconds: q.max_wait_seconds,
            })
            .collect();
        let r = &config.routing;
        let room_spec = (
            specs,
            RoutingSpec {
                offer_timeout_ms: r.offer_timeout_seconds as i64 * 1000,
                wrap_up_ms: r.wrap_up_seconds as i64 * 1000,
                max_chats_per_nurse: r.max_chats_per_nurse,
                default_handle_ms: r.default_handle_seconds as i64 * 1000,
                patient_grace_ms: r.patient_grace_seconds as i64 * 1000,
                stranded_grace_ms: r.stranded_grace_seconds as i64 * 1000,
            },
        );
        Ok(Self {
            db,
            keyring,
            hub: Hub::default(),
            cluster,
            audit,
            leading: AtomicBool::new(false),
            room: Mutex::new(WaitingRoom::new(room_spec.0.clone(), room_spec.1.clone())),
            room_spec,
            patients: Default::default(),
            outbox: bus::Outbox::new(),
            bus_up: AtomicBool::new(false),
            queues: queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
            settings: config.messaging.clone(),
            // Loading the configuration checked the rules; a table that fails here is a bug, not a setting.
            triage: Triage::new(
                config
                    .messaging
                    .emergency
                    .languages()
                    .expect("emergency rules checked at load"),
            ),
            dispositions: config.routing.dispositions.clone(),
            warned: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> &MessagingConfig {
        &self.settings
    }

    fn fresh_room(&self) -> WaitingRoom {
        WaitingRoom::new(self.room_spec.0.clone(), self.room_spec.1.clone())
    }

    pub fn view(&self, c: &ConversationRow) -> ConversationView {
        let q = self.queues.get(&c.queue);
        ConversationView {
            conversation_id: c.id.clone(),
            reference: c.reference.clone(),
            queue: c.queue.clone(),
            state: c.state.as_str().to_string(),
            last_seq: c.last_seq,
            chat_while_waiting: q.is_some_and(|q| q.chat_while_waiting),
            hold_music: q.filter(|q| q.hold_music).map(|_| HOLD_MUSIC_URL.to_string()),
            emergency: c.priority_boost >= EMERGENCY_BOOST,
        }
    }

    /// Where a patient starts when the portal names no queue: the first queue configured for `language`, else
    /// the first queue.
    pub fn queue_for_language(&self, language: Option<&str>) -> String {
        let names = self.room_spec.0.iter().map(|q| &q.name);
        let of_language = |n: &&String| {
            language.is_some_and(|l| self.queues.get(*n).and_then(|q| q.language.as_deref()) == Some(l))
        };
        names
            .clone()
            .find(of_language)
            .or_else(|| names.clone().next())
            .cloned()
            .unwrap_or_default()
    }

    pub fn chat_while_waiting(&self, queue: &str) -> bool {
        self.queues.get(queue).is_some_and(|q| q.chat_while_waiting)
    }

    pub async fn conversation(&self, id: &ConversationId) -> Result<Option<ConversationRow>, MessagingError> {
        Ok(self.db.conversation(id).await?)
    }

    pub async fn open_conversations_of(
        &self,
        subject: &SubjectId,
    ) -> Result<Vec<ConversationRow>, MessagingError> {
        Ok(self.db.open_conversations_of(subject.as_str()).await?)
    }

    /// Opens (or, for a repeated key, returns) the patient's conversation and puts it in the waiting room.
    pub async fn start(
        &self,
        patient: &SubjectId,
        queue: &str,
        key: &str,
        context: &context::PatientContext,
    ) -> Result<(ConversationRow, bool), MessagingError> {
        if !self.queues.contains_key(queue) {
            return Err(MessagingError::UnknownQueue);
        }
        let id = ConversationId::random();
        let (_, kek_id, wrapped) = self.keyring.new_data_key(&key_context(id.as_str()))?;
        let now = now_ms();
        let row = self
            .db
            .create_conversation(&ConversationRow {
                id: id.clone(),
                reference: reference(),
                queue: queue.to_string(),
                patient: patient.clone(),
                start_key: key.to_string(),
                nurse: None,
                state: ConversationState::Waiting,
                priority_boost: 0,
                kek_id,
                wrapped_key: wrapped,
                last_seq: 0,
                enqueued_at: now,
                assigned_at: None,
                closed_at: None,
                last_activity_at: now,
            })
            .await?;
        let created = row.id == id;
        if created {
            // Before routing: a nurse offered the chat finds who the patient is. Without it the chat still
            // works (the nurse sees "not given"); a half-opened chat would be worse.
            if let Err(e) = self.save_context(&row, context).await {
                tracing::warn!(error = %e, "patient context not stored");
            }
            // What the patient wrote as the reason is read for emergencies like any message.
            if let Some(reason) = &context.reason
                && let Err(e) = self.screen(&row, reason.expose()).await
            {
                tracing::warn!(error = %e, "emergency check of the reason not completed");
            }
            // The row is the truth: a leader that cannot be reached now finds it when it reconciles.
            if let Err(e) = self.route(RoutingCommand::Enqueue { conversation: id }).await {
                tracing::warn!(error = %e, "new conversation not routed yet");
            }
        }
        Ok((row, created))
    }

    /// Stores a message durably (encrypted), then delivers it to every participant's sockets.
    /// `conversation.write` allowed by the policy is the proof's; the sender is whoever it was allowed for.
    pub async fn post(
        &self,
        proof: &Authorized<ConversationRow>,
        sender_role: &str,
        key: &str,
        body: &str,
    ) -> Result<AppendOutcome, MessagingError> {
        proof.require(&["conversation.write"])?;
        let (c, sender) = (proof.resource(), proof.subject());
        if !c.state.is_open() {
            return Err(MessagingError::Closed);
        }
        let data_key = self.data_key(c)?;
        let (plaintext, id) = (body.to_string(), c.id.clone());
        let outcome = self
            .db
            .append_message(&c.id, sender.as_str(), sender_role, key, now_ms(), move |seq| {
                data_key
                    .seal(plaintext.as_bytes(), &aad(&id, seq))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .await?;
        if !outcome.duplicate {
            let frame = ServerFrame::Message {
                conversation_id: c.id.clone(),
                seq: outcome.message.seq,
                sender_role: sender_role.to_string(),
                body: Pii::new(body.to_string()),
                at: timestamp(outcome.message.at_ms),
            };
            self.send_message(&self.recipients(c), &c.id, outcome.message.seq, frame);
            // The message is stored and delivered: a failure to flag it must not turn into a refusal.
            if sender == &c.patient
                && let Err(e) = self.screen(c, body).await
            {
                tracing::warn!(error = %e, "emergency check not completed");
            }
        }
        Ok(outcome)
    }

    /// Decrypted messages after `after_seq`.
    pub async fn history(
        &self,
        proof: &Authorized<ConversationRow>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Message>, MessagingError> {
        proof.require(&["conversation.read"])?;
        self.read_messages(proof.resource(), after_seq, limit).await
    }

    /// Decrypted messages of `c` after `after_seq` (no proof: callers either hold one or deliver to the
    /// conversation's own people).
    async fn read_messages(
        &self,
        c: &ConversationRow,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Message>, MessagingError> {
        let data_key = self.data_key(c)?;
        let rows = self.db.messages_after(&c.id, after_seq, limit).await?;
        rows.into_iter()
            .map(|r| {
                let plain = data_key.open(&r.body, &aad(&c.id, r.seq))?;
                Ok(Message {
                    seq: r.seq,
                    sender_role: r.sender_role,
                    body: Pii::new(String::from_utf8_lossy(&plain).into_owned()),
                    at_ms: r.at_ms,
                })
            })
            .collect()
    }

    /// One of `subject`'s sockets (`socket`, this node's number for it) opened or closed. The leader counts a
    /// patient's connections per chat: with none, a waiting chat keeps its place but is offered to nobody and a
    /// nurse sees "reconnecting". For a nurse (`works_queues`), with none her chats go back after the grace.
    pub async fn connection(&self, subject: &SubjectId, socket: u64, open: bool, works_queues: bool) {
        let connection = format!("{}:{socket}", self.cluster.node_id());
        if works_queues {
            let command = RoutingCommand::NurseConnection {
                nurse: subject.clone(),
                connection: connection.clone(),
                open,
            };
            if let Err(e) = self.route(command).await {
                tracing::warn!(error = %e, "nurse connection not routed");
            }
        }
        let open_chats = match self.db.open_conversations_of(subject.as_str()).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "patient connection not routed");
                return;
            }
        };
        // The list has the chats a nurse holds too: only those whose patient this is.
        for c in open_chats.into_iter().filter(|c| &c.patient == subject) {
            let command = RoutingCommand::PatientConnection {
                conversation: c.id,
                connection: connection.clone(),
                open,
            };
            if let Err(e) = self.route(command).await {
                tracing::warn!(error = %e, "patient connection not routed");
            }
        }
    }

    /// A nurse's readiness for offers (this node's socket says so).
    pub async fn set_available(&self, nurse: &SubjectId, skills: &[String], available: bool) {
        let command = RoutingCommand::Available {
            nurse: nurse.clone(),
            skills: skills.to_vec(),
            available,
            node: self.cluster.node_id().to_string(),
        };
        if let Err(e) = self.route(command).await {
            tracing::warn!(error = %e, "nurse presence not routed");
        }
    }

    pub async fn presence(&self, nurse: &SubjectId) -> Result<crate::waiting_room::Presence, MessagingError> {
        match self
            .route(RoutingCommand::Presence { nurse: nurse.clone() })
            .await?
        {
            RoutingReply::Presence { presence } => Ok(presence),
            _ => Err(MessagingError::RoutingUnavailable),
        }
    }

    /// The supervisor's board: queues, and the nurses with presence and load.
    pub async fn queue_stats(&self) -> Result<(Vec<QueueStats>, Vec<NurseStats>), MessagingError> {
        match self.route(RoutingCommand::Stats).await? {
            RoutingReply::Stats { queues, nurses } => Ok((queues, nurses)),
            _ => Err(MessagingError::RoutingUnavailable),
        }
    }

    pub async fn accept(
        &self,
        nurse: &SubjectId,
        conversation: &ConversationId,
    ) -> Result<(), MessagingError> {
        let command = RoutingCommand::Accept {
            nurse: nurse.clone(),
            conversation: conversation.clone(),
        };
        Self::done(self.route(command).await?)
    }

    pub async fn decline(
        &self,
        nurse: &SubjectId,
        conversation: &ConversationId,
    ) -> Result<(), MessagingError> {
        let command = RoutingCommand::Decline {
            nurse: nurse.clone(),
            conversation: conversation.clone(),
        };
        Self::done(self.route(command).await?)
    }

    fn done(reply: RoutingReply) -> Result<(), MessagingError> {
        match reply {
            RoutingReply::Done => Ok(()),
            RoutingReply::Refused { .. } => Err(MessagingError::Routing(RoutingError::NoSuchOffer)),
            _ => Err(MessagingError::RoutingUnavailable),
        }
    }

    /// Ends a conversation: a nurse finishing (wrap-up follows), a patient leaving, or idle expiry.
    pub async fn end(&self, c: &ConversationRow, reason: &str) -> Result<(), MessagingError> {
        let now = now_ms();
        // A call-back request stays visible to staff as such; everything else is simply closed.
        let state = if reason == "callback_requested" {
            ConversationState::Callback
        } else {
            ConversationState::Closed
        };
        if !self.db.close_conversation(&c.id, state, now).await? {
            return Ok(());
        }
        self.classify_closed(&c.id, reason).await;
        let command = match (&c.nurse, c.state) {
            (Some(nurse), ConversationState::Assigned) => RoutingCommand::Finish {
                nurse: nurse.clone(),
                conversation: c.id.clone(),
                queue: c.queue.clone(),
                handled_ms: now - c.assigned_at.unwrap_or(now),
            },
            _ => RoutingCommand::Cancel {
                conversation: c.id.clone(),
            },
        };
        self.deliver(
            c,
            ServerFrame::Ended {
                conversation_id: c.id.clone(),
                reason: reason.to_string(),
            },
        );
        // Closed in the database either way: a leader that cannot be reached now drops it when it reconciles.
        if let Err(e) = self.route(command).await {
            tracing::warn!(error = %e, "ended conversation not routed yet");
        }
        Ok(())
    }

    /// The patient and the assigned nurse of a conversation.
    fn recipients<'a>(&self, c: &'a ConversationRow) -> Vec<&'a SubjectId> {
        std::iter::once(&c.patient).chain(c.nurse.as_ref()).collect()
    }

    /// Sends a frame to the patient and the assigned nurse of a conversation.
    fn deliver(&self, c: &ConversationRow, frame: ServerFrame) {
        for subject in self.recipients(c) {
            self.send_to(subject, frame.clone());
        }
    }

    /// A stored message as its socket frame, for a node delivering a message another node stored.
    async fn stored_message(
        &self,
        conversation: &ConversationId,
        seq: i64,
    ) -> Result<Option<ServerFrame>, MessagingError> {
        let Some(c) = self.db.conversation(conversation).await? else {
            return Ok(None);
        };
        let message = self.read_messages(&c, seq - 1, 1).await?.into_iter().next();
        Ok(message.map(|m| ServerFrame::Message {
            conversation_id: c.id.clone(),
            seq: m.seq,
            sender_role: m.sender_role,
            body: m.body,
            at: timestamp(m.at_ms),
        }))
    }

    /// The leader's timers: routing (offers, wrap-up, reassurance, maximum wait) and idle expiry.
    pub async fn tick(&self) -> Result<(), MessagingError> {
        let now = now_ms();
        if !self.leading.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let effects = self.room.lock().await.tick(now);
        self.apply(effects).await;
        let idle_ms = self.settings.idle_expiry_seconds as i64 * 1000;
        let warn_ms = idle_ms - self.settings.idle_warning_seconds as i64 * 1000;
        // Waiting is not idleness: the clock runs only once a nurse has the conversation.
        for c in self.db.quiet_conversations(now - warn_ms).await? {
            let quiet = now - c.last_activity_at;
            if quiet >= idle_ms {
                self.end(&c, "idle").await?;
                self.warned.lock().await.remove(&c.id);
            } else if quiet >= warn_ms
                && self.warned.lock().await.insert(c.id.clone(), c.last_activity_at)
                    != Some(c.last_activity_at)
            {
                self.deliver(
                    &c,
                    ServerFrame::IdleWarning {
                        conversation_id: c.id.clone(),
                        closes_in_seconds: ((idle_ms - quiet) / 1000).max(0) as u64,
                    },
                );
            }
        }
        Ok(())
    }
}
