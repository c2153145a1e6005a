//! Queue statistics for supervisors (and for every node: the leader computes them).

use super::{Abandonment, Millis, Presence, SubjectId, Waiting, WaitingRoom};

/// One nurse as the supervisor's board shows her: presence, chats held, an open offer, skills.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NurseStats {
    pub nurse: SubjectId,
    pub presence: Presence,
    pub chats: usize,
    pub offered: bool,
    /// Whether any connection of hers is open (a nurse whose browser dropped shows as ready but unreachable).
    pub connected: bool,
    pub skills: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    pub queue: String,
    pub waiting: usize,
    /// Of those, how many wrote of an emergency or a crisis.
    #[serde(default)]
    pub emergencies: usize,
    pub longest_wait_seconds: u64,
    pub staffed_nurses: usize,
    pub ready_nurses: usize,
    pub average_handle_seconds: u64,
    /// Patients who left the queue before a nurse took them (since this leader started), by their wait.
    #[serde(default)]
    pub abandoned: Abandonment,
}

impl WaitingRoom {
    /// Every nurse the core knows, by subject: presence, load and skills (no patient data).
    pub fn nurse_stats(&self, now: Millis) -> Vec<NurseStats> {
        let mut nurses: Vec<NurseStats> = self
            .nurses
            .iter()
            .map(|(id, n)| {
                let mut skills: Vec<String> = n.skills.iter().cloned().collect();
                skills.sort();
                NurseStats {
                    nurse: id.clone(),
                    presence: self.state_of(n, now),
                    chats: n.active.len(),
                    offered: n.offer.is_some(),
                    connected: n.disconnected_since.is_none(),
                    skills,
                }
            })
            .collect();
        nurses.sort_by(|a, b| a.nurse.as_str().cmp(b.nurse.as_str()));
        nurses
    }

    /// Queue statistics for supervisors: waiting count, longest wait, staffed and ready nurses.
    pub fn stats(&self, now: Millis) -> Vec<QueueStats> {
        let mut names: Vec<&String> = self.queues.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|q| {
                let waiting: Vec<&Waiting> = self.waiting.iter().filter(|w| &w.queue == q).collect();
                let eligible = self.nurses.values().filter(|n| self.has_skills(n, q));
                let (mut staffed, mut ready) = (0, 0);
                for n in eligible {
                    match self.state_of(n, now) {
                        Presence::Away => {}
                        Presence::Ready => {
                            staffed += 1;
                            ready += 1
                        }
                        _ => staffed += 1,
                    }
                }
                QueueStats {
                    queue: q.clone(),
                    waiting: waiting.len(),
                    emergencies: waiting.iter().filter(|w| w.emergency).count(),
                    longest_wait_seconds: waiting
                        .iter()
                        .map(|w| (now - w.enqueued_at).max(0) / 1000)
                        .max()
                        .unwrap_or(0) as u64,
                    staffed_nurses: staffed,
                    ready_nurses: ready,
                    average_handle_seconds: self.average_handle_ms(q) as u64 / 1000,
                    abandoned: self.abandoned.get(q).copied().unwrap_or_default(),
                }
            })
            .collect()
    }
}
