//! A visit's classification flags while it lives (proposed, answered, recorded, paused), saved as they change
//! and entered into the audit chain when the visit ends, where the consent report reads them.

use super::VideoService;
use crate::clock::now_ms;
use crate::visit::VisitId;
use crate::visit::classification::Classification;

impl VideoService {
    pub(super) fn classify(&self, id: &VisitId, change: impl FnOnce(&mut Classification)) {
        if let Some((c, _)) = self.live().classes.get_mut(id) {
            change(c);
        }
    }

    /// Writes a visit's current flags (final when `ended_at` is given).
    pub(super) async fn save_classification(&self, id: &VisitId, ended_at: Option<i64>) {
        let current = self.live().classes.get(id).cloned();
        if let Some((c, created)) = current
            && let Err(e) = self
                .recording
                .db
                .save_classification(id.as_str(), &c.row(), created, ended_at)
                .await
        {
            tracing::error!(error = %e, "visit classification could not be saved");
        }
    }

    /// The visit ended: its final flags are stored and enter the audit chain, where the consent report reads
    /// them.
    pub(super) async fn classified(&self, id: &VisitId) {
        self.save_classification(id, Some(now_ms())).await;
        let Some((c, _)) = self.live().classes.remove(id) else {
            return;
        };
        self.recording
            .audit
            .record_or_log(
                crate::audit::AuditEvent::system(
                    "classifier",
                    "visit.classified",
                    format!("visit:{id}"),
                    crate::audit::Outcome::Success,
                )
                .reason(serde_json::to_string(&c).unwrap_or_default()),
            )
            .await;
    }
}
