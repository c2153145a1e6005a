//! The chats in progress as the supervisor's board lists them: the rows not yet ended, each with the display
//! name of its nurse (staff names are not PHI), read in one pass.

use std::collections::HashMap;

use super::{Messaging, MessagingError};
use crate::store::ConversationRow;

impl Messaging {
    /// Every chat not yet ended, oldest first, with its nurse's name when it has one.
    pub async fn live_chats(&self) -> Result<Vec<(ConversationRow, Option<String>)>, MessagingError> {
        let rows = self.db.open_conversations().await?;
        // One lookup per nurse, not per chat.
        let mut names: HashMap<String, Option<String>> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for c in rows {
            let name = match &c.nurse {
                Some(n) => match names.get(n.as_str()) {
                    Some(known) => known.clone(),
                    None => {
                        let found = self.db.staff_display_name(n.as_str()).await?;
                        names.insert(n.as_str().to_string(), found.clone());
                        found
                    }
                },
                None => None,
            };
            out.push((c, name));
        }
        Ok(out)
    }
}
