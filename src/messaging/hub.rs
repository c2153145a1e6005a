//! Live connections by subject: a person may have several sockets (two tabs, a reconnect racing the old
//! socket), and every frame for them goes to each. Channels are bounded; a socket that cannot keep up is
//! dropped (it reconnects and replays) rather than buffering without limit. The hub is this node's only: frames
//! for people whose sockets are on other nodes travel over the cluster's bus (`messaging::bus`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};

use crate::ids::SubjectId;
use crate::protocol::ServerFrame;

const QUEUE_DEPTH: usize = 256;

/// The sockets of one subject: connection id, its queue, and how to tell it to close (it fell behind).
type Sockets = Vec<(u64, mpsc::Sender<ServerFrame>, Arc<Notify>)>;

/// A socket's place in the hub.
pub struct Registration {
    pub id: u64,
    /// The socket's own sender (its replies), ordered with the hub's frames.
    pub outbound: mpsc::Sender<ServerFrame>,
    pub frames: mpsc::Receiver<ServerFrame>,
    /// Fires when the hub dropped the socket for falling behind: close it with `close::RECONNECT`.
    pub dropped: Arc<Notify>,
}

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
    /// frames sent through the hub; the socket must close when the returned `Notify` fires (it fell behind
    /// and the hub let go of it).
    pub fn register(&self, subject: &SubjectId) -> Registration {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(Notify::new());
        self.connections
            .lock()
            .expect("hub lock")
            .entry(subject.clone())
            .or_default()
            .push((id, tx.clone(), dropped.clone()));
        Registration {
            id,
            outbound: tx,
            frames: rx,
            dropped,
        }
    }

    /// Removes one socket; returns whether the subject still has others.
    pub fn unregister(&self, subject: &SubjectId, id: u64) -> bool {
        let mut map = self.connections.lock().expect("hub lock");
        let remaining = match map.get_mut(subject) {
            Some(list) => {
                list.retain(|(i, ..)| *i != id);
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
            // A full channel drops that socket and tells it to close (the client reconnects and syncs); a closed
            // one is a socket already gone.
            list.retain(|(_, tx, dropped)| match tx.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
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
