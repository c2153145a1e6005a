//! Reading configuration: TOML text, then environment overrides, then typed deserialisation that collects
//! every unknown key instead of stopping at the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use secrecy::SecretString;

use super::Config;

/// Environment variables with this prefix override file keys: `EXAMROOM_AUTH__STAFF__CLIENT_ID` sets
/// `auth.staff.client_id` (double underscore between levels, since keys contain single underscores).
pub const ENV_PREFIX: &str = "EXAMROOM_";

/// One thing wrong with the configuration, tied to the key an operator has to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub fn single(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem::new(key, message)],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Loads and validates `path` with the process environment applied. A file is a deployment (`serve`,
/// `check-config` and the maintenance commands read one; `examroom dev` never does), so the deployment rules
/// apply too: one served over TLS to remote browsers must name a TURN server.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::single("--config", format!("cannot read {}: {e}", path.display())))?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = load_str(&text, &env)?;
    let problems = super::deployment::deployment(&config);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { problems })
    }
}

/// Parses TOML text, applies `env` overrides and validates. `env` is passed in so tests need not mutate the
/// process environment.
pub fn load_str(text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    load_with(text, env, None)
}

/// [`load_str`] for `examroom dev`: the configuration is marked as the demo's before it is validated, so the
/// rules that only the demo may relax (its own provider over plain http) know.
pub fn load_dev_str(
    text: &str,
    env: &[(String, String)],
    dev: super::DevConfig,
) -> Result<Config, ConfigError> {
    load_with(text, env, Some(dev))
}

fn load_with(
    text: &str,
    env: &[(String, String)],
    dev: Option<super::DevConfig>,
) -> Result<Config, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| {
        let key = e
            .span()
            .map(|s| format!("line {}", text[..s.start].lines().count().max(1)))
            .unwrap_or_else(|| "file".into());
        ConfigError::single(key, format!("not valid TOML: {}", e.message()))
    })?;
    let mut problems = Vec::new();
    apply_env(&mut table, env, &mut problems)?;
    let mut config = deserialize(table, &mut problems);
    if let Some(config) = &mut config {
        config.dev = dev;
        problems.extend(super::validate::validate(config));
    }
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError { problems }),
    }
}

fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
    problems: &mut Vec<Problem>,
) -> Result<(), ConfigError> {
    let overrides: BTreeMap<&str, &str> = env
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(ENV_PREFIX).map(|rest| (rest, v.as_str())))
        .collect();
    for (rest, raw) in overrides {
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(|s| s.is_empty()) {
            problems.push(Problem::new(
                format!("{ENV_PREFIX}{rest}"),
                "malformed override name",
            ));
            continue;
        }
        // A value that parses as TOML (number, bool, array) keeps its type; anything else is a string.
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        let mut cursor = &mut *table;
        for segment in &path[..path.len() - 1] {
            let entry = cursor
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => cursor = t,
                _ => {
                    return Err(ConfigError::single(
                        path.join("."),
                        format!("{ENV_PREFIX}{rest} overrides a value that is not a table"),
                    ));
                }
            }
        }
        cursor.insert(path[path.len() - 1].clone(), value);
    }
    Ok(())
}

fn deserialize(table: toml::Table, problems: &mut Vec<Problem>) -> Option<Config> {
    let mut unknown = Vec::new();
    // serde_ignored writes `?` for the inside of an `Option`; operators know keys without it.
    let mut on_unknown =
        |path: serde_ignored::Path<'_>| unknown.push(path.to_string().replace(".?", "").replace("?.", ""));
    let de = serde_ignored::Deserializer::new(toml::Value::Table(table), &mut on_unknown);
    let result: Result<Config, _> = serde_path_to_error::deserialize(de);
    for key in unknown {
        // Keys of earlier releases say what replaced them.
        let message = match key.as_str() {
            "messaging.emergency_keywords" | "messaging.emergency_notice" => {
                "replaced by [messaging.emergency.<lang>] (emergency, crisis, negations, emergency_notice, crisis_notice)"
            }
            _ => "unknown key",
        };
        problems.push(Problem::new(key, message));
    }
    match result {
        Ok(c) => Some(c),
        Err(e) => {
            let key = e.path().to_string();
            problems.push(Problem::new(key, e.into_inner().to_string()));
            None
        }
    }
}

/// Reads a secret from a `*_file` key; trailing newlines are not part of the secret.
pub fn read_secret_file(key: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::single(key, format!("cannot read {}: {e}", path.display())))?;
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(ConfigError::single(key, format!("{} is empty", path.display())));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [auth.staff]
        issuer = "https://login.example.org"
        client_id = "examroom"
        client_secret = "s3cret"
        role_mapping = { "g-nurses" = "nurse" }
        [auth.patient]
        issuer = "https://portal.example.org"
        audiences = ["portal"]
    "#;

    fn keys(err: ConfigError) -> Vec<String> {
        err.problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = load_str(MINIMAL, &[]).unwrap();
        assert_eq!(c.auth.staff.unwrap().idle_timeout_seconds, 900);
        assert_eq!(c.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn unknown_keys_are_all_named() {
        let text = format!("{MINIMAL}\n[server]\nlisten_addr = \"x\"\n[database]\nurll = \"y\"\n");
        let k = keys(load_str(&text, &[]).unwrap_err());
        assert!(k.contains(&"server.listen_addr".to_string()), "{k:?}");
        assert!(k.contains(&"database.urll".to_string()), "{k:?}");
    }

    #[test]
    fn an_emergency_key_of_an_earlier_release_names_its_replacement() {
        let text = format!("{MINIMAL}\n[messaging]\nemergency_keywords = [\"chest pain\"]\n");
        let e = load_str(&text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("messaging.emergency_keywords") && e.contains("[messaging.emergency.<lang>]"),
            "{e}"
        );
    }

    #[test]
    fn type_errors_name_the_key() {
        let text = format!("{MINIMAL}\n[server]\nmax_body_bytes = \"lots\"\n");
        assert_eq!(
            keys(load_str(&text, &[]).unwrap_err()),
            vec!["server.max_body_bytes"]
        );
    }

    #[test]
    fn env_overrides_win_and_keep_types() {
        let env = vec![
            ("EXAMROOM_SERVER__MAX_BODY_BYTES".to_string(), "2048".to_string()),
            ("EXAMROOM_AUTH__STAFF__CLIENT_ID".to_string(), "other".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = load_str(MINIMAL, &env).unwrap();
        assert_eq!(c.server.max_body_bytes, 2048);
        assert_eq!(c.auth.staff.unwrap().client_id, "other");
    }

    #[test]
    fn unknown_env_override_is_rejected() {
        let env = vec![("EXAMROOM_SERVER__LISTEN_ADDR".to_string(), "x".to_string())];
        assert_eq!(
            keys(load_str(MINIMAL, &env).unwrap_err()),
            vec!["server.listen_addr"]
        );
    }

    #[test]
    fn invalid_toml_names_the_line() {
        let err = load_str("[server]\nlisten = \n", &[]).unwrap_err();
        assert!(err.problems[0].key.starts_with("line"), "{err}");
    }
}
