//! Offline verification of the audit chain. It needs only the events, in `seq` order, and the recorded head.

use std::fmt;

use super::{GENESIS_HASH, event_hash};
use crate::store::{AuditHead, AuditRow, Db, StoreError};

/// How the chain is broken, naming the first bad event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The event's contents no longer match its hash.
    Edited { seq: i64 },
    /// The event's contents belong at another position: events were swapped or moved.
    Reordered { seq: i64, belongs_at: i64 },
    /// Events are missing before `seq` (deleted from the middle).
    Missing { expected: i64, found: i64 },
    /// The event does not continue the previous one (its predecessor was replaced).
    Unlinked { seq: i64 },
    /// The chain ends before the recorded head: the tail was cut off.
    Truncated { last: i64, head: i64 },
    /// The recorded head does not match the last event.
    HeadMismatch { seq: i64 },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::Edited { seq } => {
                write!(f, "event {seq} was edited: its contents do not match its hash")
            }
            ChainBreak::Reordered { seq, belongs_at } => {
                write!(
                    f,
                    "event {seq} is out of order: its contents belong at position {belongs_at}"
                )
            }
            ChainBreak::Missing { expected, found } => {
                write!(
                    f,
                    "event {expected} is missing: the chain jumps from {} to {found}",
                    expected - 1
                )
            }
            ChainBreak::Unlinked { seq } => {
                write!(
                    f,
                    "event {seq} does not follow event {}: the chain is broken there",
                    seq - 1
                )
            }
            ChainBreak::Truncated { last, head } => {
                write!(
                    f,
                    "event {} is missing: the chain ends at {last} but the head records {head} (truncated)",
                    last + 1
                )
            }
            ChainBreak::HeadMismatch { seq } => {
                write!(f, "event {seq} does not match the recorded chain head")
            }
        }
    }
}

impl ChainBreak {
    /// The first event found bad.
    pub fn seq(&self) -> i64 {
        match *self {
            ChainBreak::Edited { seq }
            | ChainBreak::Reordered { seq, .. }
            | ChainBreak::Unlinked { seq }
            | ChainBreak::HeadMismatch { seq } => seq,
            ChainBreak::Missing { expected, .. } => expected,
            ChainBreak::Truncated { last, .. } => last + 1,
        }
    }
}

/// A successfully verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub events: i64,
    pub head_hash: String,
}

/// Incremental verifier, so a large chain can be checked page by page.
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
        }
    }
}

/// How far around a bad event to look for the position its contents were hashed at.
const REORDER_WINDOW: i64 = 16;

impl ChainVerifier {
    pub fn push(&mut self, row: &AuditRow) -> Result<(), ChainBreak> {
        if row.seq > self.expected_seq {
            return Err(ChainBreak::Missing {
                expected: self.expected_seq,
                found: row.seq,
            });
        }
        if row.seq < self.expected_seq {
            return Err(ChainBreak::Reordered {
                seq: self.expected_seq,
                belongs_at: row.seq,
            });
        }
        if event_hash(row) != row.hash {
            return Err(match moved_from(row) {
                Some(original) => ChainBreak::Reordered {
                    seq: row.seq,
                    belongs_at: original,
                },
                None => ChainBreak::Edited { seq: row.seq },
            });
        }
        if row.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked { seq: row.seq });
        }
        self.expected_seq += 1;
        self.prev_hash = row.hash.clone();
        Ok(())
    }

    pub fn finish(self, head: &AuditHead) -> Result<ChainSummary, ChainBreak> {
        let last = self.expected_seq - 1;
        if head.seq > last {
            return Err(ChainBreak::Truncated { last, head: head.seq });
        }
        if head.seq < last || head.hash != self.prev_hash {
            return Err(ChainBreak::HeadMismatch { seq: last });
        }
        Ok(ChainSummary {
            events: last,
            head_hash: self.prev_hash,
        })
    }
}

/// If the row's contents hash correctly under a nearby sequence number, they were moved from there.
fn moved_from(row: &AuditRow) -> Option<i64> {
    (row.seq - REORDER_WINDOW..=row.seq + REORDER_WINDOW)
        .filter(|s| *s != row.seq && *s > 0)
        .find(|s| {
            let candidate = AuditRow {
                seq: *s,
                ..row.clone()
            };
            event_hash(&candidate) == row.hash
        })
}

/// Verifies a complete chain against its head.
pub fn verify_chain<'a>(
    rows: impl IntoIterator<Item = &'a AuditRow>,
    head: &AuditHead,
) -> Result<ChainSummary, ChainBreak> {
    let mut v = ChainVerifier::default();
    for row in rows {
        v.push(row)?;
    }
    v.finish(head)
}

/// Reads the stored chain page by page and verifies it against the recorded head.
pub async fn verify_stored(db: &Db) -> Result<Result<ChainSummary, ChainBreak>, StoreError> {
    const PAGE: i64 = 1000;
    let head = db.audit_head().await?;
    let mut v = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = db.audit_events(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            if let Err(br) = v.push(row) {
                return Ok(Err(br));
            }
        }
    }
    Ok(v.finish(&head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> (Vec<AuditRow>, AuditHead) {
        let mut prev = GENESIS_HASH.to_string();
        let mut rows = Vec::new();
        for seq in 1..=n {
            let mut row = AuditRow {
                seq,
                at_ms: 1_700_000_000_000 + seq,
                request_id: format!("req{seq}"),
                actor: "nurse-1".into(),
                role: crate::role::Role::Nurse,
                action: "session.create".into(),
                resource: format!("session:{seq}"),
                outcome: crate::store::Outcome::Success,
                reason: String::new(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            row.hash = event_hash(&row);
            prev = row.hash.clone();
            rows.push(row);
        }
        (rows, AuditHead { seq: n, hash: prev })
    }

    #[test]
    fn intact_chain_verifies() {
        let (rows, head) = chain(10);
        assert_eq!(verify_chain(&rows, &head).unwrap().events, 10);
        let (rows, head) = chain(0);
        assert_eq!(verify_chain(&rows, &head).unwrap().events, 0);
    }

    #[test]
    fn edit_is_detected_at_the_edited_event() {
        let (mut rows, head) = chain(10);
        rows[3].outcome = crate::store::Outcome::Denied;
        assert_eq!(verify_chain(&rows, &head), Err(ChainBreak::Edited { seq: 4 }));
    }

    #[test]
    fn deletion_is_detected() {
        let (mut rows, head) = chain(10);
        rows.remove(5);
        assert_eq!(
            verify_chain(&rows, &head),
            Err(ChainBreak::Missing {
                expected: 6,
                found: 7
            })
        );
    }

    #[test]
    fn swapped_events_are_detected_as_reordered() {
        let (mut rows, head) = chain(10);
        // Swap contents of seq 3 and 4 but keep the positions' sequence numbers, as an UPDATE would.
        let (a, b) = (rows[2].clone(), rows[3].clone());
        rows[2] = AuditRow { seq: 3, ..b };
        rows[3] = AuditRow { seq: 4, ..a };
        assert_eq!(
            verify_chain(&rows, &head),
            Err(ChainBreak::Reordered {
                seq: 3,
                belongs_at: 4
            })
        );
    }

    #[test]
    fn truncation_is_detected() {
        let (mut rows, head) = chain(10);
        rows.truncate(7);
        assert_eq!(
            verify_chain(&rows, &head),
            Err(ChainBreak::Truncated { last: 7, head: 10 })
        );
    }

    #[test]
    fn recomputed_hash_after_edit_breaks_the_link() {
        let (mut rows, head) = chain(5);
        rows[1].reason = "changed".into();
        rows[1].hash = event_hash(&rows[1]);
        assert_eq!(verify_chain(&rows, &head), Err(ChainBreak::Unlinked { seq: 3 }));
    }
}
