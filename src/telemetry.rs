//! Logs and metrics. Logs are `tracing` events, as text or JSON; they carry request ids and pseudonyms, never
//! PHI or secrets. Metrics are Prometheus counters and histograms whose labels are route templates and reason
//! codes, never identifiers.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global subscriber. Safe to call more than once (later calls are ignored), which tests rely on.
pub fn init_logging(config: &LoggingConfig) {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Every metric the broker exports.
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub auth_failures: IntCounterVec,
    /// Requests and frames refused by a rate limit, by class (`[limits]` key).
    pub rate_limited: IntCounterVec,
    pub audit_events: IntCounterVec,
    pub media: MediaMetrics,
    /// Live nodes sharing the database (1 on SQLite), as this node last counted them.
    pub cluster_nodes: IntGauge,
    /// 1 for each lease (`routing`, each cluster-wide job) this node holds.
    pub cluster_leases: IntGaugeVec,
    pub ops: OpsMetrics,
}

/// What an operator alerts on beside the traffic (`deploy/prometheus/alerts.yml`): the waiting room, the
/// recording outbox, the SIEM's progress and the audit checkpoints, refreshed by the `observability` worker.
#[derive(Clone)]
pub struct OpsMetrics {
    pub queue_waiting: IntGaugeVec,
    pub queue_longest_wait: IntGaugeVec,
    pub queue_ready_nurses: IntGaugeVec,
    /// Age of the oldest sealed segment not yet in the object store (0 when none waits).
    pub outbox_oldest: IntGauge,
    /// Audit events the slowest SIEM webhook has still to receive.
    pub siem_lag: IntGauge,
    pub checkpoint_age: IntGauge,
    pub uncheckpointed: IntGauge,
}

impl OpsMetrics {
    fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| registered(registry, IntGauge::new(name, help));
        let by_queue = |name: &str, help: &str| {
            registered(registry, IntGaugeVec::new(Opts::new(name, help), &["queue"]))
        };
        Self {
            queue_waiting: by_queue("queue_waiting", "Patients waiting, by queue"),
            queue_longest_wait: by_queue("queue_longest_wait_seconds", "The longest current wait, by queue"),
            queue_ready_nurses: by_queue("queue_ready_nurses", "Nurses ready to take a patient, by queue"),
            outbox_oldest: gauge(
                "recording_outbox_oldest_seconds",
                "Age of the oldest sealed recording segment not yet in the object store",
            ),
            siem_lag: gauge(
                "siem_lag_events",
                "Audit events the slowest SIEM webhook has still to receive",
            ),
            checkpoint_age: gauge(
                "audit_checkpoint_age_seconds",
                "Age of the newest signed audit checkpoint",
            ),
            uncheckpointed: gauge(
                "audit_uncheckpointed_events",
                "Audit events after the newest signed checkpoint",
            ),
        }
    }
}

/// Registers a metric built from static names and help texts (which cannot fail).
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// The SFU's counters, shared with the media engine.
#[derive(Clone)]
pub struct MediaMetrics {
    pub live_visits: IntGauge,
    pub peer_connections: IntGauge,
    pub forwarded_packets: IntCounter,
    pub forwarded_bytes: IntCounter,
    pub keyframe_requests: IntCounter,
    pub ice_failures: IntCounter,
}

impl MediaMetrics {
    fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| registered(registry, IntGauge::new(name, help));
        let counter = |name: &str, help: &str| registered(registry, IntCounter::new(name, help));
        Self {
            live_visits: gauge("media_live_visits", "Video visits proposed or in progress"),
            peer_connections: gauge("media_peer_connections", "Open peer connections to the SFU"),
            forwarded_packets: counter("media_forwarded_packets_total", "RTP packets forwarded"),
            forwarded_bytes: counter("media_forwarded_bytes_total", "RTP payload bytes forwarded"),
            keyframe_requests: counter(
                "media_keyframe_requests_total",
                "PLI/FIR relayed from a viewer to the sender",
            ),
            ice_failures: counter("media_ice_failures_total", "Peer connections whose ICE failed"),
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("examroom".into()), None).expect("valid metric prefix");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency"),
            &["method", "route"],
        )
        .expect("valid metric");
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "auth_failures_total",
                "Refused credentials by kind and reason code",
            ),
            &["kind", "reason"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests and frames refused by a rate limit",
            ),
            &["class"],
        )
        .expect("valid metric");
        let audit_events = IntCounterVec::new(
            Opts::new("audit_events_total", "Audit events appended"),
            &["outcome"],
        )
        .expect("valid metric");
        for c in [&http_requests, &auth_failures, &audit_events, &rate_limited] {
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
        }
        registry
            .register(Box::new(http_duration.clone()))
            .expect("metric registered once");
        let cluster_nodes =
            IntGauge::new("cluster_nodes", "Live nodes sharing the database").expect("valid metric");
        let cluster_leases = IntGaugeVec::new(
            Opts::new("cluster_leases", "Leases this node holds (1), by lease"),
            &["lease"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(cluster_nodes.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(cluster_leases.clone()))
            .expect("metric registered once");
        cluster_nodes.set(1);
        Self {
            cluster_nodes,
            cluster_leases,
            media: MediaMetrics::new(&registry),
            ops: OpsMetrics::new(&registry),
            registry,
            http_requests,
            http_duration,
            auth_failures,
            rate_limited,
            audit_events,
        }
    }

    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
