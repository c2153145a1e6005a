//! `[[siem.webhooks]]`: where audit events are pushed (`audit::siem`), how they are signed, and the TLS each
//! receiver gets: the public roots by default, or a pinned CA, and optionally a client certificate (mutual TLS).

use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::Problem;

/// Audit events pushed to security information and event management systems.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct SiemConfig {
    pub webhooks: Vec<WebhookConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// A stable name: delivery progress is kept under it.
    pub name: String,
    /// `https://…` (plain `http` only to loopback).
    pub url: String,
    /// The HMAC-SHA256 secret shared with the receiver.
    pub secret_file: PathBuf,
    /// `json` (examroom's event) or `fhir` (a FHIR R4 AuditEvent).
    #[serde(default = "default_webhook_format")]
    pub format: String,
    /// Mutual TLS: the client certificate (PEM, the leaf first, then its chain) the broker presents to this
    /// receiver; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, RSA or EC).
    pub client_key_file: Option<PathBuf>,
    /// Pins the receiver's CA (PEM): only a server certificate issued by it is accepted, and the public roots
    /// are not consulted for this webhook.
    pub ca_file: Option<PathBuf>,
}

fn default_webhook_format() -> String {
    "json".into()
}

impl WebhookConfig {
    /// The HTTP client for this receiver: its pinned CA and client certificate, no redirects, a 10 s timeout.
    /// Errors name the key at fault (validation runs this at start, so a running broker does not fail here).
    pub fn client(&self) -> Result<reqwest::Client, (&'static str, String)> {
        let read = |key: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| (key, format!("{}: {e}", path.display())))
        };
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &self.ca_file {
            let pem = read("ca_file", ca)?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|r| !r.is_empty())
                .ok_or(("ca_file", format!("{}: no PEM certificate in it", ca.display())))?;
            builder = builder.tls_built_in_root_certs(false);
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read("client_cert_file", cert)?;
                pem.push(b'\n');
                pem.extend(read("client_key_file", key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                    (
                        "client_cert_file",
                        "not a PEM certificate with its private key in client_key_file".to_string(),
                    )
                })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            (Some(_), None) => return Err(("client_key_file", "required with client_cert_file".into())),
            (None, Some(_)) => return Err(("client_cert_file", "required with client_key_file".into())),
        }
        builder.build().map_err(|e| {
            // reqwest says only "builder error"; the reason (a v1 certificate, a key that is not the
            // certificate's) is in its sources.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            let field = if self.client_cert_file.is_some() {
                "client_cert_file"
            } else {
                "url"
            };
            (field, format!("no TLS client for it: {why}"))
        })
    }
}

impl SiemConfig {
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let key = |field: &str| format!("siem.webhooks[{i}].{field}");
            if w.name.is_empty() || !names.insert(w.name.clone()) {
                p.push(Problem::new(key("name"), "must be present and unique"));
            }
            let tls = w.client_cert_file.is_some() || w.ca_file.is_some();
            match Url::parse(&w.url) {
                Ok(u) if u.scheme() == "https" => {}
                Ok(_) if tls => p.push(Problem::new(
                    key("url"),
                    "an https URL (a client certificate or pinned CA is for TLS)",
                )),
                Ok(u) if u.scheme() == "http" && super::validate::is_loopback(&u) => {}
                _ => p.push(Problem::new(
                    key("url"),
                    "expected an https URL (http only to loopback)",
                )),
            }
            // An empty key would sign with nothing a receiver could trust.
            if !std::fs::read_to_string(&w.secret_file).is_ok_and(|k| !k.trim().is_empty()) {
                p.push(Problem::new(
                    key("secret_file"),
                    format!("{} is not a readable, non-empty file", w.secret_file.display()),
                ));
            }
            if w.format != "json" && w.format != "fhir" {
                p.push(Problem::new(key("format"), "\"json\" or \"fhir\""));
            }
            if let Err((field, why)) = w.client() {
                p.push(Problem::new(key(field), why));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(extra: &str, secret: &std::path::Path) -> SiemConfig {
        toml::from_str(&format!(
            "[[webhooks]]\nname = 'soc'\nurl = 'https://siem.example/in'\nsecret_file = '{}'\n{extra}",
            secret.display()
        ))
        .unwrap()
    }

    #[test]
    fn tls_settings_name_the_key_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "k").unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let keys = |c: SiemConfig| -> Vec<String> { c.problems().into_iter().map(|p| p.key).collect() };
        assert!(keys(hook("", &secret)).is_empty());
        let j = junk.display();
        assert_eq!(
            keys(hook(&format!("client_cert_file = '{j}'"), &secret)),
            ["siem.webhooks[0].client_key_file"]
        );
        assert_eq!(
            keys(hook(&format!("ca_file = '{j}'"), &secret)),
            ["siem.webhooks[0].ca_file"]
        );
        assert_eq!(
            keys(hook(
                &format!("ca_file = '{}/missing.pem'", dir.path().display()),
                &secret
            )),
            ["siem.webhooks[0].ca_file"]
        );
        assert_eq!(
            keys(hook(
                &format!("client_cert_file = '{j}'\nclient_key_file = '{j}'"),
                &secret
            )),
            ["siem.webhooks[0].client_cert_file"]
        );
    }
}
