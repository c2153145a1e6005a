//! Live connections by subject: a person may have several sockets (two tabs, a reconnect racing the old
//! socket), and every frame for them goes to each. Channels are bounded; a socket that cannot keep up is
//! dropped (it reconnects and replays) rather than buffering without limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::ids::SubjectId;
use crate::protocol::ServerFrame;

const QUEUE_DEPTH: usize = 256;

/// The sockets of one subject, by connection id.
type Sockets = Vec<(u64, mpsc::Sender<ServerFrame>)>;

#[derive(Default)]
pub struct Hub {
    connections: Mutex<HashMap<SubjectId, Sockets>>,
    next_id: AtomicU64,
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

    pub fn connections(&self) -> usize {
        self.connections
            .lock()
            .expect("hub lock")
            .values()
            .map(Vec::len)
            .sum()
    }
}
