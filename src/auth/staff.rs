//! Workforce sign-in: the broker is an OpenID Connect relying party using the authorization code flow with
//! PKCE, `state` and `nonce`. The provider (Okta, Entra ID, Epic, or the built-in development provider) is
//! reached only through its discovery document, over HTTP, the same way for all of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{AuthError, Role};
use crate::config::StaffAuthConfig;
use crate::ids::SubjectId;
use crate::pii::Pii;
use crate::role::{map_roles, map_skills};

/// Every claim of the ID token beyond the standard ones, so the configured roles claim can be read.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    claims: HashMap<String, serde_json::Value>,
}
impl AdditionalClaims for ExtraClaims {}

type StaffTokenResponse = StandardTokenResponse<
    IdTokenFields<
        ExtraClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type StaffClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StaffTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The secrets of one sign-in in progress, kept server-side between redirect and callback.
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A verified workforce identity.
pub struct StaffIdentity {
    pub subject: SubjectId,
    pub roles: Vec<Role>,
    pub skills: Vec<String>,
    pub display_name: Option<Pii<String>>,
}

pub struct StaffSignIn {
    config: StaffAuthConfig,
    client_secret: SecretString,
    redirect_url: RedirectUrl,
    http: reqwest::Client,
    cache_ttl: Duration,
    metadata: Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

impl StaffSignIn {
    pub fn new(
        config: StaffAuthConfig,
        client_secret: SecretString,
        redirect_url: String,
        http: reqwest::Client,
        cache_ttl: Duration,
    ) -> Result<Self, AuthError> {
        let redirect_url =
            RedirectUrl::new(redirect_url).map_err(|e| AuthError::SignIn(format!("redirect URL: {e}")))?;
        Ok(Self {
            config,
            client_secret,
            redirect_url,
            http,
            cache_ttl,
            metadata: Mutex::new(None),
        })
    }

    /// Provider metadata and keys, fetched lazily (the provider may start after us) and refreshed after the
    /// cache lifetime so key rotation at the provider is picked up.
    async fn client(&self) -> Result<StaffClient, AuthError> {
        let mut cached = self.metadata.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < self.cache_ttl);
        if !fresh {
            let issuer = IssuerUrl::new(self.config.issuer.clone())
                .map_err(|e| AuthError::SignIn(format!("issuer URL: {e}")))?;
            let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "staff identity provider discovery failed");
                    AuthError::ProviderUnavailable
                })?;
            *cached = Some((metadata, Instant::now()));
        }
        let metadata = cached
            .as_ref()
            .map(|(m, _)| m.clone())
            .ok_or(AuthError::ProviderUnavailable)?;
        Ok(StaffClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.expose_secret().to_string())),
        )
        .set_redirect_uri(self.redirect_url.clone()))
    }

    /// The provider URL to send the browser to, and the secrets to keep until the callback.
    pub async fn begin(&self) -> Result<(url::Url, PendingLogin), AuthError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok((
            url,
            PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchanges the code (with the PKCE verifier), verifies the ID token (signature, issuer, audience, expiry,
    /// nonce) and maps the roles claim.
    pub async fn complete(&self, code: &str, pending: PendingLogin) -> Result<StaffIdentity, AuthError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| AuthError::SignIn(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "authorization code exchange failed");
                AuthError::SignIn("code exchange refused".into())
            })?;
        let id_token = response
            .extra_fields()
            .id_token()
            .ok_or_else(|| AuthError::SignIn("no ID token in the token response".into()))?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce))
            .map_err(|e| {
                tracing::warn!(error = %e, "staff ID token rejected");
                AuthError::SignIn("ID token rejected".into())
            })?;
        let skills = map_skills(
            claims.additional_claims().claims.get(&self.config.roles_claim),
            &self.config.skill_mapping,
        );
        let roles = map_roles(
            claims.additional_claims().claims.get(&self.config.roles_claim),
            &self.config.role_mapping,
        );
        if roles.is_empty() {
            return Err(AuthError::NoRole);
        }
        let display_name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| Pii::new(n.as_str().to_string()));
        Ok(StaffIdentity {
            subject: SubjectId::new(claims.subject().as_str()),
            roles,
            skills,
            display_name,
        })
    }
}
