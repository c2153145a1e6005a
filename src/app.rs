//! The application state shared by every request handler and background task, built once from the
//! validated configuration.

pub mod access;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use crate::audit::{AuditEvent, Auditor};
use crate::auth::jwt::{Jwks, TokenUse, TokenVerifier};
use crate::auth::staff::StaffSignIn;
use crate::auth::{Principal, Sessions};
use crate::cluster::Cluster;
use crate::config::{Config, load::read_secret_file};
use crate::crypto::Keyring;
use crate::dev_idp::DevIdp;
use crate::ids::RequestId;
use crate::media::sfu::WebRtcSfu;
use crate::messaging::Messaging;
use crate::policy::recording::RecordingPolicies;
use crate::policy::{AccessPolicy, Authorized, Denial, Grant, Resource};
use crate::recording::workdir::LocalStore;
use crate::store::Db;
use crate::telemetry::Metrics;
use crate::visit::service::{RecordingSetup, VideoService};

pub type AppState = Arc<App>;

pub struct App {
    /// Validated configuration; read-only after startup.
    pub config: Config,
    /// SQLite or PostgreSQL pool.
    pub db: Db,
    /// Appends to the hash-chained audit trail.
    pub audit: Auditor,
    /// Access rules; every permission check goes through [`App::authorize`].
    pub policy: AccessPolicy,
    /// Server-side sessions of staff and patients.
    pub sessions: Sessions,
    /// Workforce OpenID relying party.
    pub staff_sign_in: StaffSignIn,
    /// Verifies the clinic portal's ID tokens.
    pub patient_tokens: TokenVerifier,
    /// Verifies client-credentials access tokens of integrations, when configured.
    pub service_tokens: Option<TokenVerifier>,
    /// Chat, waiting room and routing.
    pub messaging: Arc<Messaging>,
    /// This node's place among the brokers sharing the database (one node on SQLite).
    pub cluster: Arc<Cluster>,
    /// Which visits are recorded, with what consent, retention and viewers.
    pub recording_policies: RecordingPolicies,
    /// Video visits and the SFU.
    pub video: Arc<VideoService>,
    /// Scheduled reports: produced, signed, stored and checked (`audit::evidence`).
    pub evidence: Arc<crate::audit::evidence::Evidence>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Rate limits per class of caller (`[limits]`).
    pub limits: crate::limits::Limits,
    /// The development provider, only under `examroom dev`.
    pub dev_idp: Option<Arc<DevIdp>>,
    pub started_at: Instant,
    /// The bearer token `/metrics` requires (`server.metrics_token_file`), if any.
    pub metrics_token: Option<SecretString>,
    /// What the background workers are doing (filled by [`crate::serve`]).
    pub workers: crate::workers::WorkerStatus,
    /// Sessions just revoked (logout, an administrator, the per-patient cap), from the `session-revocations`
    /// worker that reads them from the database: open sockets of those sessions close at once.
    pub revoked_sessions: tokio::sync::broadcast::Sender<crate::ids::SessionId>,
    /// True once this node drains (SIGTERM, `examroom drain`); see [`App::drain`].
    pub draining: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// Connects to the database and wires every component. `dev_idp` is given only by `examroom dev`.
    pub async fn build(config: Config, dev_idp: Option<Arc<DevIdp>>) -> anyhow::Result<Self> {
        let db_url = config.database_url().map_err(|e| anyhow::anyhow!("{e}"))?;
        let db = Db::connect(&db_url, config.database.max_connections)
            .await
            .context("database")?;
        let policy = AccessPolicy::load(config.policy.access_file.as_deref()).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("invalid access policy:\n  {}", lines.join("\n  "))
        })?;
        let queue_names: Vec<String> = config.queues().into_iter().map(|q| q.name).collect();
        let recording_policies =
            RecordingPolicies::load(config.policy.recording_file.as_deref(), &queue_names).map_err(
                |problems| {
                    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                    anyhow::anyhow!("invalid recording policy:\n  {}", lines.join("\n  "))
                },
            )?;
        for w in recording_policies.viewer_warnings("policy.recording_file") {
            tracing::warn!(key = %w.key, "{}", w.message);
        }
        let metrics = Metrics::new();
        let audit = Auditor::new(db.clone(), metrics.audit_events.clone());
        // Redirects are never followed: a provider that redirects its discovery or JWKS is misconfigured, and
        // following would let it point us at keys we did not configure.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .context("HTTP client")?;
        let a = &config.auth;
        let jwks = |issuer: &str| {
            Jwks::new(
                issuer,
                http.clone(),
                Duration::from_secs(a.jwks_cache_seconds),
                Duration::from_secs(a.jwks_min_refresh_seconds),
            )
        };

        let staff = a.staff.clone().context("auth.staff is required")?;
        let secret = match (&staff.client_secret, &staff.client_secret_file) {
            (Some(s), _) => s.clone(),
            (None, Some(path)) => {
                read_secret_file("auth.staff.client_secret_file", path).map_err(|e| anyhow::anyhow!("{e}"))?
            }
            (None, None) => anyhow::bail!("auth.staff.client_secret_file: required"),
        };
        let redirect = format!("{}/auth/callback", config.server.public_url.trim_end_matches('/'));
        let staff_sign_in = StaffSignIn::new(
            staff,
            secret,
            redirect,
            http.clone(),
            Duration::from_secs(a.jwks_cache_seconds),
        )?;

        let patient = a.patient.as_ref().context("auth.patient is required")?;
        let patient_tokens = TokenVerifier::new(
            jwks(&patient.issuer),
            patient.audiences.clone(),
            &patient.algorithms,
            a.max_clock_skew_seconds,
            TokenUse::IdToken,
        );
        let service_tokens = a.service.as_ref().map(|s| {
            TokenVerifier::new(
                jwks(&s.issuer),
                vec![s.audience.clone()],
                &s.algorithms,
                a.max_clock_skew_seconds,
                TokenUse::AccessToken,
            )
        });

        let metrics_token = match &config.server.metrics_token_file {
            Some(path) => Some(
                read_secret_file("server.metrics_token_file", path).map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
            None => None,
        };
        let cluster = Arc::new(Cluster::new(&config, db.clone())?);
        let messaging = Arc::new(
            Messaging::new(&config, db.clone(), cluster.clone(), audit.clone())
                .context("messaging.kek_files")?,
        );
        // Alone on SQLite, this node leads the waiting room from the start; in a cluster, the node that takes
        // the `routing` lease does (`serve`'s workers).
        if !cluster.is_shared() {
            messaging.lead().await.context("restoring the waiting room")?;
        }

        let turn_secret = match &config.media.turn_secret_file {
            Some(path) => Some(
                read_secret_file("media.turn_secret_file", path)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .expose_secret()
                    .trim()
                    .as_bytes()
                    .to_vec(),
            ),
            None => None,
        };
        let engine = Arc::new(WebRtcSfu::new(&config.media, metrics.media.clone()).context("media")?);
        let work =
            LocalStore::new(&config.server.data_dir.join("recordings")).context("recording storage")?;
        let objects = crate::recording::objects::from_config(&config, &work).await?;
        let evidence = Arc::new(crate::audit::evidence::Evidence {
            db: db.clone(),
            audit: audit.clone(),
            objects: Arc::new(crate::recording::objects::Archive(objects.clone())),
            work_dir: config.server.data_dir.join("recordings"),
        });
        let recording = RecordingSetup {
            policies: recording_policies.clone(),
            keyring: Keyring::load(&config.kek_files()).context("messaging.kek_files")?,
            store: work,
            objects,
            db: db.clone(),
            audit: audit.clone(),
            segment_ms: config.recording.segment_seconds as i64 * 1000,
            keyframe_ms: config.recording.keyframe_interval_seconds as i64 * 1000,
        };
        let video = Arc::new(VideoService::new(
            &config.media,
            turn_secret,
            engine,
            messaging.clone(),
            metrics.media.clone(),
            recording,
            crate::visit::placement::Placement::new(
                cluster.clone(),
                db.clone(),
                config.cluster.dead_after_seconds as i64 * 1000,
            ),
        ));

        // A guest out of their visit keeps no session: it ends once they have heard why (the socket closes).
        let guest_sessions = Sessions::new(db.clone());
        let guest_sessions = Arc::new(guest_sessions);
        video.on_guest_gone(Arc::new(move |guest| {
            let sessions = guest_sessions.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                if let Err(e) = sessions.revoke_subject(&guest).await {
                    tracing::warn!(error = %e, "a guest's session could not be ended");
                }
            });
        }));
        video.find_unfinished_recordings().await;
        cluster
            .release_old_visits()
            .await
            .context("visits of this node's previous run")?;

        Ok(Self {
            limits: crate::limits::Limits::new(&config.limits),
            recording_policies,
            video,
            evidence,
            messaging,
            cluster,
            sessions: Sessions::new(db.clone()),
            config,
            db,
            audit,
            policy,
            staff_sign_in,
            patient_tokens,
            service_tokens,
            metrics,
            dev_idp,
            started_at: Instant::now(),
            workers: Default::default(),
            revoked_sessions: tokio::sync::broadcast::channel(256).0,
            draining: tokio::sync::watch::channel(false).0,
            metrics_token,
        })
    }

    /// The one path to a permission: asks the policy and audits a refusal (who, what, on which resource, why).
    pub async fn authorize(
        &self,
        principal: &Principal,
        action: &str,
        resource: &Resource,
        request_id: Option<&RequestId>,
    ) -> Result<Grant, Denial> {
        self.authorize_for(principal, action, resource, (), request_id)
            .await
    }

    /// `resource` with who holds a live break-glass grant for it, for the policy's `break_glass` condition —
    /// read only when a `break_glass` rule could allow `action` to this caller; a store failure grants nothing.
    pub async fn with_break_glass(&self, subject: &Principal, action: &str, resource: Resource) -> Resource {
        if !self.policy.break_glass_applies(subject, action, resource.kind) {
            return resource;
        }
        let now = crate::clock::now_ms();
        match self.db.break_glass_holders(&resource.audit_name(), now).await {
            Ok(holders) => {
                resource.break_glass_for(holders.into_iter().map(crate::ids::SubjectId::new).collect())
            }
            Err(e) => {
                tracing::warn!(error = %e, "break-glass grants could not be read");
                resource
            }
        }
    }

    /// [`App::authorize`] for a decision about `value` (what the caller loaded to decide on): the proof carries
    /// it to the domain call that needs it.
    pub async fn authorize_for<T>(
        &self,
        principal: &Principal,
        action: &str,
        resource: &Resource,
        value: T,
        request_id: Option<&RequestId>,
    ) -> Result<Authorized<T>, Denial> {
        let decision = self.policy.authorize(principal, action, resource, value);
        if let Err(denial) = &decision {
            self.audit
                .record_or_log(
                    AuditEvent::new(action, resource.audit_name(), crate::audit::Outcome::Denied)
                        .by(principal)
                        .reason(&denial.reason)
                        .request(request_id),
                )
                .await;
        }
        decision
    }
}

impl App {
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Drains this node before it stops (SIGTERM, `examroom drain`): it reports not-ready (the balancer sends
    /// new connections elsewhere), refuses new visits, its sockets outside a visit are asked to reconnect (close
    /// code 4012, with jitter; see `http::ws`), and in a cluster its leased work stops so another node takes the
    /// leases. In a cluster it hands its live visits to other nodes (their participants rejoin there); it then
    /// waits for the visits left to end, all within `cluster.drain_seconds` of the start, and ends those still
    /// live (their recordings are stored, both sides told `server_restart`); the remaining sockets reconnect.
    pub async fn drain(&self) {
        let _ = self.draining.send_replace(true);
        let limit = Duration::from_secs(self.config.cluster.drain_seconds);
        let started = Instant::now();
        // The others stop choosing this node for visits now, not at its next heartbeat.
        if let Err(e) = self.cluster.mark_draining().await {
            tracing::warn!(error = %e, "could not tell the cluster this node drains");
        }
        let moved = self
            .video
            .hand_over_all(tokio::time::Instant::now() + limit)
            .await;
        if moved > 0 {
            tracing::info!(moved, "draining: live visits handed over");
        }
        let mut told = None;
        loop {
            let visits = self.video.live_visits();
            if visits == 0 {
                tracing::info!("drained: no live visits");
                break;
            }
            if started.elapsed() >= limit {
                tracing::warn!(
                    visits,
                    "drain limit reached (cluster.drain_seconds): ending the live visits"
                );
                self.video
                    .end_all(crate::protocol::EndReason::ServerRestart)
                    .await;
                break;
            }
            if told != Some(visits) {
                tracing::info!(
                    visits,
                    limit_seconds = limit.as_secs(),
                    "draining: waiting for live visits to end"
                );
                told = Some(visits);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The new hosts' "rejoin" frames reach our sockets over the bus: a moment for them before the sockets go
        // (a client that misses it hears it again from the new host when its socket reconnects).
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.messaging.hub.reset();
    }
}
