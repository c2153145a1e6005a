//! Integration tests: the real broker binary against real components (panva oidc-provider, SQLite,
//! PostgreSQL). One test binary, so the crate links once.

mod api_conformance;
mod audit_export;

mod authorization;
mod break_glass;
mod browser;
mod browser_offers;
mod chat;
mod cluster;
mod cluster_outage;
mod cluster_support;
mod cluster_video;
mod common;
mod config_cli;
mod crash;
mod cross_site;
mod demo;
mod dev_mode;
mod drain;
mod drops;
mod emergency;
mod example_config;
mod external_oidc;
mod firewall;
mod keys;
mod kubernetes;
mod layers;
mod limits;
#[cfg(feature = "load-tools")]
mod load_smoke;
mod loss;
mod media_peers;
mod nat;
mod netns;
mod observability;
mod peer;
mod phi_scan;
mod presence;
mod preview;
mod recording_peers;
mod reports;
mod restore_drill;
mod retention;
mod s3;
mod sessions;
mod siem;
mod storage;
mod test_app;
mod tls_proxy;
mod upgrade;
mod video;
mod video_relay;
mod video_signaling;
mod visit_controls;
mod wrap_up;
