//! Secure chat: conversations, durable messages with per-conversation sequence numbers and idempotent resends,
//! encryption at rest, replay on reconnect, idle expiry, and the live side of the waiting room (applying the
//! routing core's effects to connected sockets through the [`hub`], which fans server frames out to whatever
//! sockets registered for a subject). Knows nothing about video, nor about reading sockets: the socket and its
//! frames are `http::ws`, which asks the policy and passes its proof to the calls here that read or write a
//! transcript.

pub mod hub;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::clock::{now_ms, timestamp};
use crate::config::{Config, MessagingConfig, QueueConfig};
use crate::crypto::{CryptoError, Keyring};
use crate::ids::{ConversationId, SubjectId};
use crate::pii::Pii;
use crate::policy::Authorized;
use crate::protocol::{ConversationView, ServerFrame};
use crate::store::{AppendOutcome, ConversationRow, ConversationState, Db, StoreError};
use crate::waiting_room::{
    EMERGENCY_BOOST, Effect, QueueSpec, Reassurance, RoutingError, RoutingSpec, WaitingRoom,
};
use hub::Hub;

pub const HOLD_MUSIC_URL: &str = "/assets/hold-music.wav";

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("unknown queue")]
    UnknownQueue,
    #[error("{0}")]
    WrongProof(String),
    #[error("conversation is closed")]
    Closed,
    #[error("routing: {0}")]
    Routing(#[from] RoutingError),
    #[error("encryption: {0}")]
    Crypto(#[from] CryptoError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl From<crate::policy::Denial> for MessagingError {
    fn from(d: crate::policy::Denial) -> Self {
        Self::WrongProof(d.reason)
    }
}

impl MessagingError {
    /// The code a client gets (the socket's error frame).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownQueue => "unknown_queue",
            Self::WrongProof(_) => "forbidden",
            Self::Closed => "conversation_closed",
            Self::Routing(_) => "no_such_offer",
            Self::Crypto(_) | Self::Store(_) => "internal",
        }
    }
}

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
    room: Mutex<WaitingRoom>,
    queues: HashMap<String, QueueConfig>,
    settings: MessagingConfig,
    /// Conversations whose patient has had the idle warning.
    warned: Mutex<HashSet<ConversationId>>,
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

fn aad(conversation: &ConversationId, seq: i64) -> Vec<u8> {
    format!("examroom-message-v1|{conversation}|{seq}").into_bytes()
}

impl Messaging {
    pub fn new(config: &Config, db: Db) -> Result<Self, CryptoError> {
        let files = config.kek_files();
        if config.messaging.kek_files.is_empty() {
            Keyring::create_key_file(&files[0])?;
        }
        let keyring = Keyring::load(&files)?;
        let queues: Vec<QueueConfig> = config.queues();
        let specs = queues
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
        let room = WaitingRoom::new(
            specs,
            RoutingSpec {
                offer_timeout_ms: r.offer_timeout_seconds as i64 * 1000,
                wrap_up_ms: r.wrap_up_seconds as i64 * 1000,
                max_chats_per_nurse: r.max_chats_per_nurse,
                default_handle_ms: r.default_handle_seconds as i64 * 1000,
            },
        );
        Ok(Self {
            db,
            keyring,
            hub: Hub::default(),
            room: Mutex::new(room),
            queues: queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
            settings: config.messaging.clone(),
            warned: Mutex::new(HashSet::new()),
        })
    }

    pub fn settings(&self) -> &MessagingConfig {
        &self.settings
    }

    /// Rebuilds the waiting room from the database after a start or a crash: waiting conversations keep
    /// their place (original enqueue time), assigned ones stay with their nurse.
    pub async fn restore(&self) -> Result<(), MessagingError> {
        let now = now_ms();
        let open = self.db.open_conversations().await?;
        let mut room = self.room.lock().await;
        for q in self.queues.keys() {
            for ms in self.db.recent_handle_times(q, 20).await?.into_iter().rev() {
                room.record_handle_time(q, ms);
            }
        }
        for c in open {
            let id = c.id.clone();
            match (c.state, &c.nurse) {
                (ConversationState::Assigned, Some(nurse)) => room.restore_assignment(nurse, id),
                (ConversationState::Waiting, _) if self.queues.contains_key(&c.queue) => {
                    room.enqueue(id, &c.queue, c.priority_boost, c.enqueued_at, now)?;
                }
                _ => {}
            }
        }
        Ok(())
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
        }
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
    ) -> Result<(ConversationRow, bool), MessagingError> {
        if !self.queues.contains_key(queue) {
            return Err(MessagingError::UnknownQueue);
        }
        let id = ConversationId::random();
        let (_, kek_id, wrapped) = self.keyring.new_data_key(&format!("conversation:{id}"))?;
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
            let effects = self.room.lock().await.enqueue(id, queue, 0, now, now)?;
            self.apply(effects).await;
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
        let data_key =
            self.keyring
                .unwrap_data_key(&c.kek_id, &c.wrapped_key, &format!("conversation:{}", c.id))?;
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
            self.warned.lock().await.remove(&c.id);
            let frame = ServerFrame::Message {
                conversation_id: c.id.clone(),
                seq: outcome.message.seq,
                sender_role: sender_role.to_string(),
                body: Pii::new(body.to_string()),
                at: timestamp(outcome.message.at_ms),
            };
            self.deliver(c, frame);
            if sender == &c.patient && self.mentions_emergency(body) {
                self.hub.send(
                    sender,
                    ServerFrame::Emergency {
                        conversation_id: c.id.clone(),
                        text: self.settings.emergency_notice.clone(),
                    },
                );
                if c.state == ConversationState::Waiting {
                    self.db.boost_conversation(&c.id, EMERGENCY_BOOST).await?;
                    let effects = self.room.lock().await.boost(&c.id, now_ms());
                    self.apply(effects).await;
                }
            }
        }
        Ok(outcome)
    }

    fn mentions_emergency(&self, body: &str) -> bool {
        let lower = body.to_lowercase();
        self.settings
            .emergency_keywords
            .iter()
            .any(|k| lower.contains(&k.to_lowercase()))
    }

    /// Decrypted messages after `after_seq`.
    pub async fn history(
        &self,
        proof: &Authorized<ConversationRow>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Message>, MessagingError> {
        proof.require(&["conversation.read"])?;
        let c = proof.resource();
        let data_key =
            self.keyring
                .unwrap_data_key(&c.kek_id, &c.wrapped_key, &format!("conversation:{}", c.id))?;
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

    pub async fn set_available(&self, nurse: &SubjectId, skills: &[String], available: bool) {
        let effects = self
            .room
            .lock()
            .await
            .set_available(nurse, skills, available, now_ms());
        self.apply(effects).await;
    }

    pub async fn presence(&self, nurse: &SubjectId) -> crate::waiting_room::Presence {
        self.room.lock().await.presence(nurse, now_ms())
    }

    pub async fn queue_stats(&self) -> Vec<crate::waiting_room::QueueStats> {
        self.room.lock().await.stats(now_ms())
    }

    pub async fn accept(
        &self,
        nurse: &SubjectId,
        conversation: &ConversationId,
    ) -> Result<(), MessagingError> {
        let effects = self.room.lock().await.accept(nurse, conversation, now_ms())?;
        self.apply(effects).await;
        Ok(())
    }

    pub async fn decline(
        &self,
        nurse: &SubjectId,
        conversation: &ConversationId,
    ) -> Result<(), MessagingError> {
        let effects = self.room.lock().await.decline(nurse, conversation, now_ms())?;
        self.apply(effects).await;
        Ok(())
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
        let id = &c.id;
        let effects = {
            let mut room = self.room.lock().await;
            match (&c.nurse, c.state) {
                (Some(nurse), ConversationState::Assigned) => {
                    let handled = now - c.assigned_at.unwrap_or(now);
                    match room.finish(nurse, id, &c.queue, handled, now) {
                        Ok(effects) => effects,
                        // Closed in the database either way; the core had already let go of it.
                        Err(e) => {
                            tracing::warn!(error = %e, "routing core did not know the ended assignment");
                            Vec::new()
                        }
                    }
                }
                _ => room.cancel(id, now),
            }
        };
        self.deliver(
            c,
            ServerFrame::Ended {
                conversation_id: c.id.clone(),
                reason: reason.to_string(),
            },
        );
        self.apply(effects).await;
        Ok(())
    }

    /// Sends a frame to the patient and the assigned nurse of a conversation.
    fn deliver(&self, c: &ConversationRow, frame: ServerFrame) {
        self.hub.send(&c.patient, frame.clone());
        if let Some(nurse) = &c.nurse {
            self.hub.send(nurse, frame);
        }
    }

    /// Timers: routing (offers, wrap-up, reassurance, maximum wait) and idle expiry.
    pub async fn tick(&self) -> Result<(), MessagingError> {
        let now = now_ms();
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
            } else if quiet >= warn_ms && self.warned.lock().await.insert(c.id.clone()) {
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

    /// Applies the routing core's effects: database changes and frames to the people concerned.
    async fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            if let Err(e) = self.apply_one(effect).await {
                tracing::error!(error = %e, "could not apply a routing effect");
            }
        }
    }

    async fn apply_one(&self, effect: Effect) -> Result<(), MessagingError> {
        let now = now_ms();
        match effect {
            Effect::Offer {
                nurse,
                conversation,
                expires_at,
            } => {
                if let Some(c) = self.db.conversation(&conversation).await? {
                    self.hub.send(
                        &nurse,
                        ServerFrame::Offer {
                            conversation_id: c.id.clone(),
                            reference: c.reference.clone(),
                            queue: c.queue.clone(),
                            expires_in_seconds: ((expires_at - now).max(0) / 1000) as u64,
                            waited_seconds: ((now - c.enqueued_at).max(0) / 1000) as u64,
                        },
                    );
                }
            }
            Effect::OfferEnded {
                nurse,
                conversation,
                reason,
            } => {
                self.hub.send(
                    &nurse,
                    ServerFrame::OfferEnded {
                        conversation_id: conversation.clone(),
                        reason,
                    },
                );
            }
            Effect::Assigned { nurse, conversation } => {
                if self
                    .db
                    .assign_conversation(&conversation, nurse.as_str(), now)
                    .await?
                    && let Some(c) = self.db.conversation(&conversation).await?
                {
                    self.hub.send(
                        &nurse,
                        ServerFrame::Conversation {
                            conversation: self.view(&c),
                        },
                    );
                    self.deliver(
                        &c,
                        ServerFrame::Assigned {
                            conversation_id: c.id.clone(),
                        },
                    );
                }
            }
            Effect::Position {
                conversation,
                position,
                eta_seconds,
            } => {
                self.to_patient(
                    &conversation,
                    ServerFrame::Waiting {
                        conversation_id: conversation.clone(),
                        position,
                        eta_seconds,
                    },
                )
                .await?;
            }
            Effect::Reassure { conversation, text } => {
                self.to_patient(
                    &conversation,
                    ServerFrame::Reassurance {
                        conversation_id: conversation.clone(),
                        text,
                    },
                )
                .await?;
            }
            Effect::MaxWaitReached { conversation } => {
                let text = "Our nurses are busier than usual. You can keep waiting, or leave a message and we will call \
                            you back."
                    .to_string();
                self.to_patient(
                    &conversation,
                    ServerFrame::MaxWait {
                        conversation_id: conversation.clone(),
                        text,
                    },
                )
                .await?;
            }
            Effect::NurseState { nurse, state } => self.hub.send(&nurse, ServerFrame::Presence { state }),
        }
        Ok(())
    }

    async fn to_patient(
        &self,
        conversation: &ConversationId,
        frame: ServerFrame,
    ) -> Result<(), MessagingError> {
        if let Some(c) = self.db.conversation(conversation).await? {
            self.hub.send(&c.patient, frame);
        }
        Ok(())
    }

    /// Runs the timers until `stop` flips.
    pub async fn run_timers(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "messaging timers failed");
            }
        }
    }
}
