//! The built-in development OpenID provider served at `/dev-idp` by `examroom dev` (never by `serve`).
//!
//! It is a real, minimal provider: discovery, JWKS, authorization code flow with mandatory PKCE (S256), a login
//! form, client-credentials for machine clients, RS256-signed tokens. The broker reaches it over HTTP through
//! exactly the code it uses for Okta or Epic, so the demo exercises the production path. Keys, client secrets
//! and demo passwords are generated once into the data directory.

mod routes;

pub use routes::router;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The client id of the broker itself (staff sign-in).
pub const WORKSPACE_CLIENT: &str = "examroom-workspace";
/// The client id of the demo clinic portal (a public browser client).
pub const PORTAL_CLIENT: &str = "clinic-portal";
/// The client id of the demo EMR integration (client credentials).
pub const EMR_CLIENT: &str = "emr-integration";
/// The resource (`aud`) of access tokens for the broker's API.
pub const API_AUDIENCE: &str = "urn:examroom:api";

const ID_TOKEN_SECONDS: i64 = 3600;
const CODE_SECONDS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("dev provider files: {0}")]
    Io(#[from] std::io::Error),
    #[error("dev provider key: {0}")]
    Key(String),
}

/// A demo person. Passwords are generated per data directory and printed at startup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoUser {
    pub username: String,
    pub password: String,
    pub sub: String,
    pub name: String,
    /// What the user is for in the demo (printed next to the credentials).
    pub role: String,
    pub groups: Vec<String>,
    /// Patients only: demo PHI carried in the ID token, as a real portal's token would.
    #[serde(default)]
    pub birthdate: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub users: Vec<DemoUser>,
    pub workspace_client_secret: String,
    pub emr_client_secret: String,
}

/// Groups the demo users carry and the examroom role each maps to (written into the dev config).
pub const GROUP_ROLES: &[(&str, &str)] = &[
    ("examroom-nurses", "nurse"),
    ("examroom-supervisors", "supervisor"),
    ("examroom-compliance", "compliance_officer"),
    ("examroom-helpdesk", "it_helpdesk"),
    ("examroom-interpreters", "interpreter"),
    ("examroom-physicians", "physician"),
];

/// Groups that carry a routing skill (written into the dev config's skill mapping).
pub const GROUP_SKILLS: &[(&str, &str)] = &[("examroom-spanish", "spanish")];

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

impl Credentials {
    fn generate() -> Self {
        let user =
            |username: &str, name: &str, role: &str, groups: &[&str], birthdate: Option<&str>| DemoUser {
                username: username.into(),
                password: random_token(9),
                sub: crate::ids::random_hex(8),
                name: name.into(),
                role: role.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                birthdate: birthdate.map(str::to_string),
            };
        Self {
            users: vec![
                user(
                    "patient",
                    "Pat Demo",
                    "patient (sign in through the demo portal)",
                    &[],
                    Some("1980-04-02"),
                ),
                user("patient2", "Pia Demo", "second patient", &[], Some("1975-11-30")),
                user("nurse", "Nora Demo", "nurse", &["examroom-nurses"], None),
                user(
                    "nurse2",
                    "Nico Demo",
                    "nurse, Spanish",
                    &["examroom-nurses", "examroom-spanish"],
                    None,
                ),
                user(
                    "supervisor",
                    "Sam Demo",
                    "supervisor",
                    &["examroom-supervisors"],
                    None,
                ),
                user(
                    "compliance",
                    "Cora Demo",
                    "compliance officer",
                    &["examroom-compliance"],
                    None,
                ),
                user(
                    "helpdesk",
                    "Hal Demo",
                    "IT helpdesk",
                    &["examroom-helpdesk"],
                    None,
                ),
                user(
                    "interpreter",
                    "Ines Demo",
                    "Spanish interpreter",
                    &["examroom-interpreters", "examroom-spanish"],
                    None,
                ),
                user(
                    "physician",
                    "Paul Demo",
                    "consulting physician",
                    &["examroom-physicians"],
                    None,
                ),
            ],
            workspace_client_secret: random_token(24),
            emr_client_secret: random_token(24),
        }
    }
}

struct PendingCode {
    client_id: String,
    redirect_uri: String,
    user: usize,
    nonce: Option<String>,
    code_challenge: String,
    expires_at: i64,
}

/// The provider's state: signing key, registered clients and users, outstanding codes.
pub struct DevIdp {
    issuer: String,
    base_url: String,
    kid: String,
    encoding_key: EncodingKey,
    public_jwk: serde_json::Value,
    pub credentials: Credentials,
    codes: Mutex<HashMap<String, PendingCode>>,
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)
}

impl DevIdp {
    /// Loads or creates the provider's key and credentials under `dir`. `base_url` is the broker's public URL.
    pub fn open(dir: &Path, base_url: &str) -> Result<Self, DevIdpError> {
        std::fs::create_dir_all(dir)?;
        let key_path = dir.join("signing-key.pem");
        if !key_path.exists() {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                .map_err(|e| DevIdpError::Key(e.to_string()))?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| DevIdpError::Key(e.to_string()))?;
            write_private(&key_path, pem.as_bytes())?;
        }
        let pem = std::fs::read_to_string(&key_path)?;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| DevIdpError::Key(e.to_string()))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let kid = hex::encode(&Sha256::digest(n.as_bytes())[..8]);
        let encoding_key =
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| DevIdpError::Key(e.to_string()))?;

        let cred_path = dir.join("credentials.json");
        if !cred_path.exists() {
            let json = serde_json::to_vec_pretty(&Credentials::generate()).expect("serialisable");
            write_private(&cred_path, &json)?;
        }
        let mut credentials: Credentials = serde_json::from_slice(&std::fs::read(&cred_path)?)
            .map_err(|e| DevIdpError::Key(format!("{}: {e}", cred_path.display())))?;
        // A data directory from an older version lacks the demo users added since: they are added, and the
        // users it has keep their passwords.
        let fresh = Credentials::generate();
        let before = credentials.users.len();
        for u in fresh.users {
            if !credentials.users.iter().any(|have| have.username == u.username) {
                credentials.users.push(u);
            }
        }
        if credentials.users.len() != before {
            let json = serde_json::to_vec_pretty(&credentials).expect("serialisable");
            std::fs::write(&cred_path, json)?;
        }

        let base_url = base_url.trim_end_matches('/').to_string();
        Ok(Self {
            issuer: format!("{base_url}/dev-idp"),
            base_url,
            public_jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}),
            kid,
            encoding_key,
            credentials,
            codes: Mutex::new(HashMap::new()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn discovery(&self) -> serde_json::Value {
        let i = &self.issuer;
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "jwks_uri": format!("{i}/jwks"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "recording:pause-others"],
            "claims_supported": ["sub", "name", "groups", "birthdate"],
        })
    }

    pub fn jwks(&self) -> serde_json::Value {
        json!({ "keys": [self.public_jwk] })
    }

    /// The registered redirect URI of a browser client.
    fn redirect_uri(&self, client_id: &str) -> Option<String> {
        match client_id {
            WORKSPACE_CLIENT => Some(format!("{}/auth/callback", self.base_url)),
            PORTAL_CLIENT => Some(format!("{}/portal/", self.base_url)),
            _ => None,
        }
    }

    fn user_by_credentials(&self, username: &str, password: &str) -> Option<usize> {
        use subtle::ConstantTimeEq;
        self.credentials.users.iter().position(|u| {
            u.username == username && bool::from(u.password.as_bytes().ct_eq(password.as_bytes()))
        })
    }

    /// Confidential clients must present their secret; the portal is public and relies on PKCE.
    fn authenticate_client(&self, client_id: &str, secret: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        let expected = match client_id {
            WORKSPACE_CLIENT => &self.credentials.workspace_client_secret,
            EMR_CLIENT => &self.credentials.emr_client_secret,
            PORTAL_CLIENT => return secret.is_none(),
            _ => return false,
        };
        secret.is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
    }

    fn issue_code(&self, pending: PendingCode) -> String {
        let code = random_token(24);
        let mut codes = self.codes.lock().expect("codes lock");
        let now = chrono::Utc::now().timestamp();
        codes.retain(|_, c| c.expires_at > now);
        codes.insert(code.clone(), pending);
        code
    }

    fn sign(&self, typ: &str, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding_key).expect("RSA signing cannot fail")
    }

    /// Redeems a code: checks client, redirect URI and the PKCE verifier, then mints the ID token.
    fn redeem(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<serde_json::Value, &'static str> {
        let pending = self
            .codes
            .lock()
            .expect("codes lock")
            .remove(code)
            .ok_or("invalid_grant")?;
        let now = chrono::Utc::now().timestamp();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if pending.expires_at < now
            || pending.client_id != client_id
            || pending.redirect_uri != redirect_uri
            || challenge != pending.code_challenge
        {
            return Err("invalid_grant");
        }
        let user = &self.credentials.users[pending.user];
        let mut claims = json!({
            "iss": self.issuer,
            "sub": user.sub,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "auth_time": now,
            "exp": now + ID_TOKEN_SECONDS,
            "name": user.name,
            "groups": user.groups,
        });
        if let Some(nonce) = &pending.nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(birthdate) = &user.birthdate {
            claims["birthdate"] = json!(birthdate);
        }
        Ok(json!({
            "access_token": random_token(24),
            "token_type": "Bearer",
            "expires_in": ID_TOKEN_SECONDS,
            "id_token": self.sign("JWT", &claims),
        }))
    }

    /// Client credentials: an RFC 9068 JWT access token for the broker's API.
    fn client_credentials(
        &self,
        client_id: &str,
        scope: Option<&str>,
    ) -> Result<serde_json::Value, &'static str> {
        if client_id != EMR_CLIENT {
            return Err("unauthorized_client");
        }
        let allowed = ["recording:pause-others"];
        let requested: Vec<&str> = scope.unwrap_or("").split_whitespace().collect();
        if requested.iter().any(|s| !allowed.contains(s)) {
            return Err("invalid_scope");
        }
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "aud": API_AUDIENCE,
            "scope": requested.join(" "),
            "iat": now,
            "exp": now + 600,
            "jti": random_token(12),
        });
        Ok(json!({
            "access_token": self.sign("at+jwt", &claims),
            "token_type": "Bearer",
            "expires_in": 600,
            "scope": requested.join(" "),
        }))
    }
}
