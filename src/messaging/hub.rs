//! Live connections by subject: a person may have several sockets (two tabs, a reconnect racing the old
//! socket), and every frame for them goes to each. Channels are bounded; a socket that cannot keep up is
//! dropped (it reconnects and replays) rather than buffering without limit. The hub is this node's only: frames
//! for people whose sockets are on other nodes travel over the cluster's bus (`messaging::bus`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::ids::SubjectId;
use crate::protocol::ServerFrame;

const QUEUE_DEPTH: usize = 256;

/// The sockets of one subject, by connection id.
type Sockets = Vec<(u64, mpsc::Sender<ServerFrame>)>;

pub struct Hub {
    connections: Mutex<HashMap<SubjectId, Sockets>>,
    next_id: AtomicU64,
    /// Bumped when every socket must reconnect (frames may have been missed); each socket watches it.
    resets: tokio::sync::watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            connections: Mutex::default(),
            next_id: AtomicU64::new(0),
            resets: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Hub {
    /// Registers a socket. The returned sender is the socket's own (replies), sharing one ordered stream with
    /// frames sent through the hub.
    pub fn register(
        &self,
        subject: &SubjectId,
    ) -> (u64, mpsc::Sender<ServerFrame>, mpsc::Receiver<ServerFrame>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.connections
            .lock()
            .expect("hub lock")
            .entry(subject.clone())
            .or_default()
            .push((id, tx.clone()));
        (id, tx, rx)
    }

    /// Removes one socket; returns whether the subject still has others.
    pub fn unregister(&self, subject: &SubjectId, id: u64) -> bool {
        let mut map = self.connections.lock().expect("hub lock");
        let remaining = match map.get_mut(subject) {
            Some(list) => {
                list.retain(|(i, _)| *i != id);
                list.len()
            }
            None => 0,
        };
        if remaining == 0 {
            map.remove(subject);
        }
        remaining > 0
    }

    pub fn send(&self, subject: &SubjectId, frame: ServerFrame) {
        let mut map = self.connections.lock().expect("hub lock");
        if let Some(list) = map.get_mut(subject) {
            // A full or closed channel drops that socket; its reader notices and closes it.
            list.retain(|(_, tx)| tx.try_send(frame.clone()).is_ok());
        }
    }

    /// Whether the subject has a socket on this node.
    pub fn has(&self, subject: &SubjectId) -> bool {
        self.connections.lock().expect("hub lock").contains_key(subject)
    }

    /// Asks every socket on this node to close with "reconnect" (`close::RECONNECT`).
    pub fn reset(&self) {
        self.resets.send_modify(|n| *n += 1);
    }

    /// Changes when [`Hub::reset`] is called.
    pub fn resets(&self) -> tokio::sync::watch::Receiver<u64> {
        self.resets.subscribe()
    }

    pub fn connections(&self) -> usize {
        self.connections
            .lock()
            .expect("hub lock")
            .values()
            .map(Vec::len)
            .sum()
    }
}
