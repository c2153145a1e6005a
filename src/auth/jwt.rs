//! Verification of JWTs issued by an external OpenID provider: the portal's ID tokens for patients and
//! client-credentials access tokens for service principals.
//!
//! The rules that keep this safe, each one a defence against a published attack:
//! - keys come only from the `jwks_uri` of the configured issuer's discovery document; the token's own
//!   `jku`, `x5u`, `jwk` and `x5c` headers are never read;
//! - the header `alg` must be in a configured allow-list of asymmetric algorithms and match the key's type,
//!   so `none` and RS256→HS256 confusion fail before any signature check;
//! - an unknown `kid` triggers at most one JWKS refresh per `jwks_min_refresh_seconds`;
//! - `iss`, `aud`, `exp`, `nbf` and `iat` are checked with a bounded skew, and the token type (`typ`) must
//!   fit its use, so an access token cannot be replayed as an ID token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Tokens larger than this are refused before parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_KID_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("key does not fit the algorithm")]
    KeyMismatch,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("wrong token type")]
    WrongTokenType,
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    #[error("identity provider unavailable")]
    ProviderUnavailable,
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed_token",
            TokenError::AlgorithmNotAllowed => "algorithm_not_allowed",
            TokenError::UnknownKey => "unknown_key",
            TokenError::KeyMismatch => "key_mismatch",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::IssuedInFuture => "token_issued_in_future",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongTokenType => "wrong_token_type",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::ProviderUnavailable => "provider_unavailable",
        }
    }
}

/// What a token is for; decides the `typ` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// An OpenID Connect ID token: `typ` absent or `JWT`, never `at+jwt`.
    IdToken,
    /// An RFC 9068 access token: `typ` must be `at+jwt`.
    AccessToken,
}

/// Claims of a verified token. Only `sub` and `exp` are typed; the rest stay available for role and scope
/// extraction by the caller.
#[derive(Debug, Clone, Deserialize)]
pub struct VerifiedClaims {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl VerifiedClaims {
    /// OAuth scopes (`scope` as a space-separated string, or `scp` as an array).
    pub fn scopes(&self) -> Vec<String> {
        match (self.other.get("scope"), self.other.get("scp")) {
            (Some(serde_json::Value::String(s)), _) => s.split_whitespace().map(str::to_string).collect(),
            (_, Some(serde_json::Value::Array(a))) => {
                a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Cached keys of one issuer, fetched through its discovery document.
pub struct Jwks {
    issuer: String,
    http: reqwest::Client,
    cache_ttl: Duration,
    min_refresh: Duration,
    state: Mutex<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, Jwk>,
    /// Keys without a `kid`, usable only when the token has none either.
    anonymous: Vec<Jwk>,
    fetched_at: Option<Instant>,
    last_forced: Option<Instant>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Jwks {
    pub fn new(issuer: &str, http: reqwest::Client, cache_ttl: Duration, min_refresh: Duration) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_string(),
            http,
            cache_ttl,
            min_refresh,
            state: Mutex::new(JwksState::default()),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key for `kid`. A stale cache is refreshed; an unknown `kid` forces one refresh, rate-limited.
    async fn key(&self, kid: Option<&str>) -> Result<Jwk, TokenError> {
        let mut state = self.state.lock().await;
        let stale = state.fetched_at.is_none_or(|t| t.elapsed() >= self.cache_ttl);
        if stale {
            self.refresh(&mut state).await?;
        }
        if let Some(key) = lookup(&state, kid) {
            return Ok(key);
        }
        let may_force = state.last_forced.is_none_or(|t| t.elapsed() >= self.min_refresh);
        if !stale && may_force {
            state.last_forced = Some(Instant::now());
            self.refresh(&mut state).await?;
            if let Some(key) = lookup(&state, kid) {
                return Ok(key);
            }
        }
        Err(TokenError::UnknownKey)
    }

    async fn refresh(&self, state: &mut JwksState) -> Result<(), TokenError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let discovery: Discovery = self.get_json(&url).await?;
        // The discovery document must name the very issuer we trust (OpenID Connect Discovery §4.3).
        if discovery.issuer.trim_end_matches('/') != self.issuer {
            tracing::warn!("discovery document names a different issuer; refusing its keys");
            return Err(TokenError::ProviderUnavailable);
        }
        let set: serde_json::Value = self.get_json(&discovery.jwks_uri).await?;
        let mut keys = HashMap::new();
        let mut anonymous = Vec::new();
        for raw in set.get("keys").and_then(|k| k.as_array()).into_iter().flatten() {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            // Symmetric keys have no place in a public key set; signature-only keys otherwise.
            if matches!(
                jwk.algorithm,
                AlgorithmParameters::OctetKey(_) | AlgorithmParameters::Other(_)
            ) {
                continue;
            }
            if raw
                .get("use")
                .and_then(|u| u.as_str())
                .is_some_and(|u| u != "sig")
            {
                continue;
            }
            match jwk.common.key_id.clone() {
                Some(kid) => {
                    keys.insert(kid, jwk);
                }
                None => anonymous.push(jwk),
            }
        }
        tracing::info!(
            keys = keys.len() + anonymous.len(),
            "fetched provider signing keys"
        );
        state.keys = keys;
        state.anonymous = anonymous;
        state.fetched_at = Some(Instant::now());
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, TokenError> {
        let resp = self.http.get(url).send().await.map_err(|e| {
            tracing::warn!(error = %e, "identity provider request failed");
            TokenError::ProviderUnavailable
        })?;
        if !resp.status().is_success() {
            tracing::warn!(status = %resp.status(), "identity provider answered with an error");
            return Err(TokenError::ProviderUnavailable);
        }
        resp.json().await.map_err(|_| TokenError::ProviderUnavailable)
    }
}

fn lookup(state: &JwksState, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => state.keys.get(kid).cloned(),
        None if state.anonymous.len() == 1 => state.anonymous.first().cloned(),
        None if state.anonymous.is_empty() && state.keys.len() == 1 => state.keys.values().next().cloned(),
        None => None,
    }
}

/// Verifies tokens of one issuer for one use.
pub struct TokenVerifier {
    jwks: Jwks,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    skew_seconds: u64,
    token_use: TokenUse,
}

impl TokenVerifier {
    pub fn new(
        jwks: Jwks,
        audiences: Vec<String>,
        algorithms: &[String],
        skew_seconds: u64,
        token_use: TokenUse,
    ) -> Self {
        let algorithms = algorithms
            .iter()
            .filter_map(|a| a.parse::<Algorithm>().ok())
            .collect();
        Self {
            jwks,
            audiences,
            algorithms,
            skew_seconds,
            token_use,
        }
    }

    pub fn issuer(&self) -> &str {
        self.jwks.issuer()
    }

    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
            return Err(TokenError::Malformed);
        }
        let header = RawHeader::parse(token)?;
        // Exact, case-sensitive match against the allow-list: "none", "NONE", "HS256" all stop here.
        let alg = self
            .algorithms
            .iter()
            .copied()
            .find(|a| format!("{a:?}") == header.alg)
            .ok_or(TokenError::AlgorithmNotAllowed)?;
        match (
            self.token_use,
            header.typ.as_deref().map(str::to_ascii_lowercase).as_deref(),
        ) {
            (TokenUse::IdToken, None | Some("jwt")) => {}
            (TokenUse::AccessToken, Some("at+jwt" | "application/at+jwt")) => {}
            _ => return Err(TokenError::WrongTokenType),
        }
        if header.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_CHARS) {
            return Err(TokenError::UnknownKey);
        }
        let jwk = self.jwks.key(header.kid.as_deref()).await?;
        if !key_fits(&jwk, alg) {
            return Err(TokenError::KeyMismatch);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| TokenError::KeyMismatch)?;

        let mut validation = Validation::new(alg);
        validation.leeway = self.skew_seconds;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.jwks.issuer(), &format!("{}/", self.jwks.issuer())]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<VerifiedClaims>(token, &key, &validation).map_err(map_error)?;
        let claims = data.claims;
        let now = chrono::Utc::now().timestamp();
        if claims.iat.is_some_and(|iat| iat > now + self.skew_seconds as i64) {
            return Err(TokenError::IssuedInFuture);
        }
        if self.token_use == TokenUse::IdToken {
            check_azp(&claims, &self.audiences)?;
        }
        Ok(claims)
    }
}

/// With several audiences, an ID token must name its authorized party, and it must be one of ours
/// (OpenID Connect Core §3.1.3.7, points 4–5).
fn check_azp(claims: &VerifiedClaims, audiences: &[String]) -> Result<(), TokenError> {
    let multi = matches!(claims.other.get("aud"), Some(serde_json::Value::Array(a)) if a.len() > 1);
    match claims.other.get("azp").and_then(|v| v.as_str()) {
        Some(azp) if !audiences.iter().any(|a| a == azp) => Err(TokenError::WrongAudience),
        None if multi => Err(TokenError::WrongAudience),
        _ => Ok(()),
    }
}

fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if let Some(key_alg) = &jwk.common.key_algorithm
        && format!("{key_alg:?}") != format!("{alg:?}")
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA) => true,
        _ => false,
    }
}

fn map_error(e: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => TokenError::BadSignature,
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidIssuer => TokenError::WrongIssuer,
        K::InvalidAudience => TokenError::WrongAudience,
        K::MissingRequiredClaim(c) => match c.as_str() {
            "aud" => TokenError::WrongAudience,
            "iss" => TokenError::WrongIssuer,
            "exp" => TokenError::MissingClaim("exp"),
            "iat" => TokenError::MissingClaim("iat"),
            _ => TokenError::MissingClaim("sub"),
        },
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
            TokenError::AlgorithmNotAllowed
        }
        K::InvalidRsaKey(_) | K::InvalidEcdsaKey | K::InvalidEddsaKey | K::InvalidKeyFormat => {
            TokenError::KeyMismatch
        }
        _ => TokenError::Malformed,
    }
}

/// The three header fields we use, parsed by hand so that an unexpected `alg` value cannot fail in a way that
/// hides which rule rejected it, and so that key-bearing headers (`jku`, `jwk`, `x5u`, `x5c`) are never read.
struct RawHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

impl RawHeader {
    fn parse(token: &str) -> Result<Self, TokenError> {
        let b64 = token.split('.').next().ok_or(TokenError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| TokenError::Malformed)?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
        let field = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_string);
        Ok(Self {
            alg: field("alg").ok_or(TokenError::Malformed)?,
            kid: field("kid"),
            typ: field("typ"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz target (see `tests/fuzz/main.rs` for how targets run): any header, raw or as valid base64 of any
    /// bytes, is parsed or refused as malformed without a panic.
    #[test]
    fn fuzz_token_headers() {
        bolero::check!().for_each(|bytes: &[u8]| {
            let raw = String::from_utf8_lossy(bytes);
            let _ = RawHeader::parse(&raw);
            let encoded = URL_SAFE_NO_PAD.encode(bytes);
            if let Err(e) = RawHeader::parse(&format!("{encoded}.e30.sig")) {
                assert!(matches!(e, TokenError::Malformed), "{e:?}");
            }
        });
    }

    /// Fuzz target: any claims document either fails to deserialize or gets an audience decision.
    #[test]
    fn fuzz_claims() {
        let audiences = vec!["portal".to_string(), "app".to_string()];
        bolero::check!().for_each(|bytes: &[u8]| {
            if let Ok(claims) = serde_json::from_slice::<VerifiedClaims>(bytes) {
                let _ = check_azp(&claims, &audiences);
                let _ = claims.scopes();
            }
        });
    }

    #[test]
    fn header_parsing_reads_only_alg_kid_typ() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1","jku":"http://evil/jwks"}"#);
        let parsed = RawHeader::parse(&format!("{h}.e30.sig")).unwrap();
        assert_eq!(parsed.alg, "RS256");
        assert_eq!(parsed.kid.as_deref(), Some("k1"));
        assert!(RawHeader::parse("!!.e30.sig").is_err());
    }

    #[test]
    fn scopes_from_string_or_array() {
        let c: VerifiedClaims = serde_json::from_str(r#"{"sub":"s","exp":1,"scope":"a b"}"#).unwrap();
        assert_eq!(c.scopes(), vec!["a", "b"]);
        let c: VerifiedClaims = serde_json::from_str(r#"{"sub":"s","exp":1,"scp":["x"]}"#).unwrap();
        assert_eq!(c.scopes(), vec!["x"]);
    }
}
