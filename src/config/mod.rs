//! One typed configuration for the whole broker: defaults, then a TOML file, then `EXAMROOM_*` environment
//! overrides, validated once at startup. No other module reads the environment. Every problem found names the
//! key it concerns, so an operator can fix a broken deployment from the error alone.

pub mod alerts;
pub mod announce;
pub mod audit;
pub mod cluster;
mod deployment;
pub mod emergency;
pub mod limits;
pub mod network;
pub mod reports;
pub mod retention;
mod routing;
mod siem;
pub use routing::RoutingConfig;
pub use siem::{SiemConfig, WebhookConfig};
pub mod load;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

pub use deployment::{key_files, warnings};
pub use load::{ConfigError, Problem, load_dev_str, load_file, load_str};

/// The whole configuration. Sections mirror the modules that consume them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub logging: LoggingConfig,
    pub siem: SiemConfig,
    pub reports: reports::ReportsConfig,
    pub alerts: alerts::AlertsConfig,
    pub auth: AuthConfig,
    pub policy: PolicyConfig,
    pub messaging: MessagingConfig,
    pub routing: RoutingConfig,
    pub media: MediaConfig,
    pub recording: RecordingConfig,
    pub retention: retention::RetentionConfig,
    pub limits: limits::LimitsConfig,
    pub audit: audit::AuditConfig,
    pub cluster: cluster::ClusterConfig,
    /// Waiting-room queues; a single `triage` queue when none is configured.
    pub queues: Vec<QueueConfig>,
    /// Present only under `examroom dev`: serves the built-in OpenID provider. Never set by `serve`.
    #[serde(skip)]
    pub dev: Option<DevConfig>,
}

/// Where sealed recordings are stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RecordingConfig {
    /// `local` (a directory under the data directory) or `s3`.
    pub store: String,
    pub s3: Option<S3Config>,
    /// A recording is uploaded in segments of this length (and at every move): a lost node loses at most one.
    pub segment_seconds: u64,
    /// While recording, each camera and screen is asked for a keyframe at least this often, so a reviewer can
    /// seek anywhere in the file and start decoding within this much of the point.
    pub keyframe_interval_seconds: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            store: "local".into(),
            s3: None,
            segment_seconds: 120,
            keyframe_interval_seconds: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct S3Config {
    /// Endpoint URL for S3-compatible servers; unset for AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Path-style addressing (most S3-compatible servers need it).
    pub path_style: bool,
    /// Static credentials; without them the AWS default chain is used (environment, profile, instance role).
    pub access_key_id: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    /// `GOVERNANCE` or `COMPLIANCE`: set Object Lock retention (the recording's retain-until) and legal hold on
    /// every object. The bucket must have Object Lock enabled.
    pub object_lock_mode: Option<String>,
    /// Objects larger than this are uploaded in parts.
    pub multipart_threshold_bytes: u64,
    pub part_size_bytes: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: String::new(),
            path_style: true,
            access_key_id: None,
            secret_access_key_file: None,
            object_lock_mode: None,
            multipart_threshold_bytes: 16 * 1024 * 1024,
            part_size_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The SFU's network: where it gathers ICE candidates, which ports it may use, what it announces behind a
/// NAT, and the TURN servers browsers are told about.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// Local IP addresses the SFU binds its UDP sockets to (one host candidate each). `127.0.0.1` alone keeps
    /// media on loopback (tests); a server lists its interface addresses.
    pub bind_ips: Vec<String>,
    /// Inclusive UDP port range for peer connections; one port per peer connection and bind address.
    pub udp_port_min: u16,
    pub udp_port_max: u16,
    /// Also offer a passive ICE-TCP candidate on the same port number (one TCP listener per peer connection),
    /// so browsers on networks that drop UDP connect directly over TCP; the firewall then opens the range over
    /// TCP too. Costs no extra port numbers, one more socket per peer connection.
    pub ice_tcp: bool,
    /// Public addresses announced instead of the bound ones behind a 1:1 NAT (a cloud VM's elastic IP, a
    /// Kubernetes node address): `PUBLIC` for every bind address of its family, or `PUBLIC/LOCAL` for one bind
    /// address. The NAT must forward the UDP port range unchanged.
    pub announced_ips: Vec<String>,
    /// TURN/STUN servers sent to browsers with every join, e.g. `turn:turn.example.org:3478?transport=tcp`.
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret` (REST API scheme); required when any `turn:`/`turns:` URL is set.
    pub turn_secret_file: Option<PathBuf>,
    /// Lifetime of a minted TURN credential.
    pub turn_credential_seconds: u64,
    /// Tell browsers to use only relayed candidates (every peer through TURN).
    pub force_relay: bool,
    /// Most tracks a participant may send (camera, microphone, screen share).
    pub max_tracks_per_participant: usize,
    /// A visit whose participants have all left is closed after this grace (a reload rejoins within it).
    pub empty_visit_grace_seconds: u64,
    /// A visit one participant dropped out of (a network cut) while the other stayed ends back to chat when they
    /// are not back within this; a cut shorter than it ends in the same visit.
    pub reconnect_limit_seconds: u64,
    /// How long the patient has to answer a video request (find the camera permission) before it ends unanswered.
    pub video_prompt_seconds: u64,
    /// Largest SDP accepted over signaling, in bytes.
    pub max_sdp_bytes: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind_ips: vec!["127.0.0.1".into()],
            udp_port_min: 40000,
            udp_port_max: 40999,
            ice_tcp: true,
            announced_ips: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret_file: None,
            turn_credential_seconds: 3600,
            force_relay: false,
            max_tracks_per_participant: 3,
            empty_visit_grace_seconds: 30,
            reconnect_limit_seconds: 90,
            video_prompt_seconds: 120,
            max_sdp_bytes: 32 * 1024,
        }
    }
}

impl MediaConfig {
    /// `announced_ips` resolved against `bind_ips`; an error names the entry's index.
    pub fn announced(&self) -> Result<announce::AnnouncedAddrs, (usize, announce::AnnounceError)> {
        let bind: Vec<std::net::IpAddr> = self.bind_ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        let mut entries = Vec::with_capacity(self.announced_ips.len());
        for (i, e) in self.announced_ips.iter().enumerate() {
            entries.push(e.parse::<announce::Announcement>().map_err(|err| (i, err))?);
        }
        announce::AnnouncedAddrs::resolve(&bind, &entries)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Socket address the HTTP server binds.
    pub listen: String,
    /// The URL browsers use to reach the broker; redirect URIs derive from it, and an `https` URL turns on
    /// `Secure` cookies and HSTS (TLS is terminated in front of the broker).
    pub public_url: String,
    /// Where the broker keeps its SQLite database (by default) and key files.
    pub data_dir: PathBuf,
    /// Origins allowed to embed the patient widget (CSP `frame-ancestors`).
    pub portal_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// A bearer token `/metrics` requires (Prometheus' `authorization` with `credentials_file`: give Prometheus
    /// its own copy, since this one must be readable by the broker's user only). Required by a deployment served
    /// over https; without it (the demo) `/metrics` is open.
    pub metrics_token_file: Option<PathBuf>,
    /// Addresses of the reverse proxies / load balancers in front of the broker: for a request from one of them,
    /// the client's address is the last one it appended to `X-Forwarded-For` (per-address rate limits).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./.examroom"),
            portal_origins: Vec::new(),
            max_body_bytes: 64 * 1024,
            shutdown_grace_seconds: 20,
            metrics_token_file: None,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`. Defaults to `examroom.db` in the data directory.
    pub url: Option<SecretString>,
    /// File holding the URL (for PostgreSQL passwords); exclusive with `url`.
    pub url_file: Option<PathBuf>,
    /// Connection pool size.
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `examroom=debug,info`.
    pub level: String,
    /// 32-byte key (hex) for log pseudonyms; without it the data directory gets a generated one.
    pub pseudonym_key_file: Option<PathBuf>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            pseudonym_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub staff: Option<StaffAuthConfig>,
    pub patient: Option<PatientAuthConfig>,
    pub service: Option<ServiceAuthConfig>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (at most 60).
    pub max_clock_skew_seconds: u64,
    /// How long a fetched JWKS is trusted before it is fetched again.
    pub jwks_cache_seconds: u64,
    /// Smallest interval between two JWKS fetches triggered by an unknown `kid`, so forged `kid`s cannot
    /// turn the broker into a flood against the provider.
    pub jwks_min_refresh_seconds: u64,
}

/// Workforce sign-in: the broker is an OpenID relying party (authorization code + PKCE).
#[derive(Debug, Clone, Deserialize)]

pub struct StaffAuthConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Claim of the ID token holding the user's groups or roles (a string or an array of strings).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim value → examroom role (`nurse`, `supervisor`, `compliance_officer`, `it_helpdesk`).
    #[serde(default)]
    pub role_mapping: BTreeMap<String, String>,
    /// Claim value → routing skill of a nurse (e.g. `"g-spanish" = "spanish"`).
    #[serde(default)]
    pub skill_mapping: BTreeMap<String, String>,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    #[serde(default = "default_absolute_lifetime")]
    pub absolute_lifetime_seconds: u64,
}

/// Patients arrive with the clinic portal's ID token.
#[derive(Debug, Clone, Deserialize)]

pub struct PatientAuthConfig {
    pub issuer: String,
    /// Client ids of the portal(s); an ID token whose `aud` names none of them is refused.
    pub audiences: Vec<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Upper bound of a patient session even if the ID token lives longer.
    #[serde(default = "default_patient_session")]
    pub max_session_seconds: u64,
    /// A patient session ends after this long with no socket connected (never while the patient waits in a
    /// queue). An open socket keeps it alive.
    #[serde(default = "default_patient_idle")]
    pub idle_without_socket_seconds: u64,
    /// Live sessions one patient may hold (tabs, devices); opening one more revokes the oldest (audited).
    #[serde(default = "default_patient_sessions")]
    pub max_sessions_per_subject: usize,
}

/// Machine clients (EMR integrations) with client-credentials JWT access tokens.
#[derive(Debug, Clone, Deserialize)]

pub struct ServiceAuthConfig {
    pub issuer: String,
    /// The resource identifier the access tokens must be issued for (`aud`).
    pub audience: String,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// Access policy file; the shipped `policies/access.toml` is built in when unset.
    pub access_file: Option<PathBuf>,
    /// Recording policy file; the shipped `policies/recording.toml` is built in when unset.
    pub recording_file: Option<PathBuf>,
    /// How long a break-glass grant lasts (`POST /api/v1/break-glass`).
    pub break_glass_minutes: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            access_file: None,
            recording_file: None,
            break_glass_minutes: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MessagingConfig {
    /// Key-encryption key files (32 bytes hex each); the first wraps new data keys. Default: a key generated
    /// once at `<data_dir>/keys/kek.hex`.
    pub kek_files: Vec<PathBuf>,
    /// Longest chat message, in characters.
    pub max_body_chars: usize,
    /// Largest WebSocket frame accepted, in bytes; larger frames close the socket (1009).
    pub max_frame_bytes: usize,
    /// A conversation with no message for this long is closed; the patient is warned first.
    pub idle_expiry_seconds: u64,
    /// How long before idle expiry the warning comes.
    pub idle_warning_seconds: u64,
    /// Changes to the built-in emergency and crisis rules and notices, per language (`emergency.rs`).
    pub emergency: emergency::EmergencyConfig,
    /// How often an open socket re-checks its session (expiry, revocation).
    pub session_recheck_seconds: u64,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            kek_files: Vec::new(),
            max_body_chars: 4000,
            max_frame_bytes: 64 * 1024,
            idle_expiry_seconds: 15 * 60,
            idle_warning_seconds: 2 * 60,
            emergency: emergency::EmergencyConfig::default(),
            session_recheck_seconds: 15,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueConfig {
    pub name: String,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub priority: i64,
    /// Whether the patient may write while waiting.
    #[serde(default = "yes")]
    pub chat_while_waiting: bool,
    /// Whether the widget plays hold music while waiting.
    #[serde(default = "yes")]
    pub hold_music: bool,
    #[serde(default)]
    pub max_wait_seconds: Option<u64>,
    #[serde(default)]
    pub reassurance: Vec<ReassuranceConfig>,
    /// A widget in this language (`es`) whose portal names no queue starts here (reassurance texts should be in
    /// it too).
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReassuranceConfig {
    pub after_seconds: u64,
    #[serde(default)]
    pub every_seconds: Option<u64>,
    pub text: String,
}

fn yes() -> bool {
    true
}

impl QueueConfig {
    /// The queue a deployment gets when it configures none.
    pub fn default_triage() -> Self {
        Self {
            name: "triage".into(),
            skills: Vec::new(),
            priority: 0,
            chat_while_waiting: true,
            hold_music: true,
            max_wait_seconds: Some(30 * 60),
            language: None,
            reassurance: vec![
                ReassuranceConfig {
                    after_seconds: 30,
                    every_seconds: None,
                    text: "Thank you for waiting. A nurse will be with you shortly.".into(),
                },
                ReassuranceConfig {
                    after_seconds: 120,
                    every_seconds: Some(180),
                    text: "You are still in line and have not lost your place.".into(),
                },
            ],
        }
    }
}

/// Settings of the built-in development OpenID provider (`examroom dev` only).
#[derive(Debug, Clone)]
pub struct DevConfig {
    pub idp_dir: PathBuf,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            staff: None,
            patient: None,
            service: None,
            max_clock_skew_seconds: 60,
            jwks_cache_seconds: 300,
            jwks_min_refresh_seconds: 30,
        }
    }
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into()]
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_idle_timeout() -> u64 {
    15 * 60
}
fn default_absolute_lifetime() -> u64 {
    12 * 3600
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_patient_idle() -> u64 {
    10 * 60
}

fn default_patient_sessions() -> usize {
    3
}

fn default_patient_session() -> u64 {
    3600
}

impl Config {
    /// Whether browsers reach us over TLS (Secure cookies, HSTS).
    pub fn is_tls(&self) -> bool {
        self.server.public_url.starts_with("https://")
    }

    /// Configured queues, or the default triage queue.
    pub fn queues(&self) -> Vec<QueueConfig> {
        if self.queues.is_empty() {
            vec![QueueConfig::default_triage()]
        } else {
            self.queues.clone()
        }
    }

    /// Key-encryption key files, or the generated one in the data directory.
    pub fn kek_files(&self) -> Vec<PathBuf> {
        if self.messaging.kek_files.is_empty() {
            vec![self.server.data_dir.join("keys").join("kek.hex")]
        } else {
            self.messaging.kek_files.clone()
        }
    }

    /// The database URL, from `database.url`, `database.url_file`, or the data directory.
    pub fn database_url(&self) -> Result<SecretString, ConfigError> {
        if let Some(url) = &self.database.url {
            return Ok(url.clone());
        }
        if let Some(path) = &self.database.url_file {
            return load::read_secret_file("database.url_file", path);
        }
        let path = self.server.data_dir.join("examroom.db");
        Ok(SecretString::from(format!(
            "sqlite://{}?mode=rwc",
            path.display()
        )))
    }
}
