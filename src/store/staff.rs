//! The staff directory: who a staff subject is (display name, roles) as their identity provider last said at
//! sign-in. Kept apart from sessions, which are deleted and revoked, so a name outlives the session it came
//! with. Staff names are not PHI; patients and guests are never written here.

use std::collections::HashMap;

use sqlx::Row;

use super::{Db, StoreError};

impl Db {
    /// Records a staff sign-in: the name and roles now, when first and last seen.
    pub async fn remember_staff(
        &self,
        subject: &str,
        display_name: Option<&str>,
        roles: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO staff_directory (subject, display_name, roles, first_seen_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (subject) DO UPDATE SET \
             display_name = COALESCE(excluded.display_name, staff_directory.display_name), \
             roles = excluded.roles, last_seen_at = excluded.last_seen_at",
        )
        .bind(subject)
        .bind(display_name)
        .bind(roles)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The name a staff member last signed in with: from the directory, or (for someone who has not signed in
    /// since the directory began) their newest session's.
    pub async fn staff_display_name(&self, subject: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT display_name, 0 AS preference FROM staff_directory WHERE subject = $1 \
             AND display_name IS NOT NULL \
             UNION ALL SELECT display_name, 1 AS preference FROM (SELECT display_name FROM sessions \
             WHERE kind = 'staff' AND subject = $1 AND display_name IS NOT NULL ORDER BY created_at DESC LIMIT 1) \
             newest ORDER BY preference LIMIT 1",
        )
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The names of these subjects that are staff (others are left out).
    pub async fn staff_names(&self, subjects: &[&str]) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        for s in subjects {
            if let Some(name) = self.staff_display_name(s).await? {
                out.insert(s.to_string(), name);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    /// A name outlives its sessions, the newest sign-in wins, and a sign-in without a name keeps the old one.
    #[tokio::test]
    async fn the_directory_keeps_the_last_name_a_staff_member_signed_in_with() {
        let dir = tempfile::tempdir().unwrap();
        let url =
            secrecy::SecretString::from(format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display()));
        let db = super::Db::connect(&url, Some(1)).await.unwrap();
        assert_eq!(db.staff_display_name("s1").await.unwrap(), None);
        db.remember_staff("s1", Some("Nora Demo"), "nurse", 1)
            .await
            .unwrap();
        db.remember_staff("s1", Some("Nora Smith"), "nurse supervisor", 2)
            .await
            .unwrap();
        db.remember_staff("s1", None, "nurse", 3).await.unwrap();
        assert_eq!(
            db.staff_display_name("s1").await.unwrap().as_deref(),
            Some("Nora Smith")
        );
        let names = db.staff_names(&["s1", "patient-x"]).await.unwrap();
        assert_eq!(names.len(), 1);
        assert_eq!(names["s1"], "Nora Smith");
    }
}
