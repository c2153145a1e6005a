//! TURN credentials in coturn's REST scheme (`use-auth-secret`): the username is `expiry:label` and the
//! password is base64(HMAC-SHA1(secret, username)). The broker mints one per participant and join, so a leaked
//! credential expires on its own and names no person (the label is the opaque participant id).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// One entry of the browser's `iceServers`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

pub fn credential(secret: &[u8], label: &str, expires_unix: i64) -> (String, String) {
    let username = format!("{expires_unix}:{label}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// The ICE server list for one participant: STUN URLs as they are, TURN URLs with a fresh credential.
pub fn ice_servers(
    urls: &[String],
    secret: Option<&[u8]>,
    label: &str,
    now_unix: i64,
    ttl_seconds: u64,
) -> Vec<IceServer> {
    let (stun, turn): (Vec<String>, Vec<String>) = urls.iter().cloned().partition(|u| u.starts_with("stun:"));
    let mut out = Vec::new();
    if !stun.is_empty() {
        out.push(IceServer {
            urls: stun,
            username: None,
            credential: None,
        });
    }
    if let (false, Some(secret)) = (turn.is_empty(), secret) {
        let (username, password) = credential(secret, label, now_unix + ttl_seconds as i64);
        out.push(IceServer {
            urls: turn,
            username: Some(username),
            credential: Some(password),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_coturns_rest_scheme() {
        // Reference value computed with: printf '1700000000:p1' | openssl dgst -sha1 -hmac s3cret -binary | base64
        let (user, pass) = credential(b"s3cret", "p1", 1_700_000_000);
        assert_eq!(user, "1700000000:p1");
        assert_eq!(pass, "qgMGazZqfg3Xj1eyXcWMv9x2jo4=");
    }

    #[test]
    fn stun_and_turn_entries_are_separate_and_expire() {
        let urls = vec![
            "stun:127.0.0.1:3478".to_string(),
            "turn:127.0.0.1:3478?transport=udp".to_string(),
            "turn:127.0.0.1:3478?transport=tcp".to_string(),
        ];
        let list = ice_servers(&urls, Some(b"k"), "p", 1000, 600);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].username, None);
        assert_eq!(list[1].urls.len(), 2);
        assert!(list[1].username.as_deref().unwrap().starts_with("1600:"));
        assert!(ice_servers(&urls[1..], None, "p", 0, 1).is_empty());
    }
}
