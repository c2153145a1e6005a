//! `[messaging.emergency.<lang>]`: a deployment's changes to the built-in emergency and crisis rules of
//! `crate::triage` (English and Spanish for the United States). A language table may set any of its keys; what
//! it leaves out keeps the built-in value of that language, so changing the crisis line is one line. A new
//! language must set all of them. Rules are checked at startup, each problem naming its key.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Problem;
use crate::triage::{self, Language, Rule};

/// One language's overrides; see [`triage`] for the rule syntax.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyLanguage {
    /// Rules that show the emergency notice (`chest + pain*|hurt*`).
    pub emergency: Option<Vec<String>>,
    /// Rules for thoughts of suicide or self-harm: they show the crisis notice instead.
    pub crisis: Option<Vec<String>>,
    /// Words that, just before a rule's words, mean the patient says they do *not* have it.
    pub negations: Option<Vec<String>>,
    pub emergency_notice: Option<String>,
    pub crisis_notice: Option<String>,
}

/// Language code (`en`, `es`, …) to overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct EmergencyConfig(pub BTreeMap<String, EmergencyLanguage>);

impl EmergencyConfig {
    /// Built-in languages first (English, then Spanish), then new ones, each with its overrides applied.
    pub fn languages(&self) -> Result<Vec<Language>, Vec<Problem>> {
        let builtin = triage::builtin();
        let mut codes: Vec<&String> = builtin.keys().collect();
        codes.sort_by_key(|c| (c.as_str() != "en", c.as_str()));
        codes.extend(self.0.keys().filter(|c| !builtin.contains_key(*c)));
        let mut problems = Vec::new();
        let mut languages = Vec::new();
        for code in codes {
            let base = builtin.get(code);
            let over = self.0.get(code).cloned().unwrap_or_default();
            let key = |k: &str| format!("messaging.emergency.{code}.{k}");
            let mut pick = |k: &str, o: Option<Vec<String>>, b: Option<&Vec<String>>| {
                o.or_else(|| b.cloned()).unwrap_or_else(|| {
                    problems.push(Problem::new(key(k), "a new language must set every key"));
                    Vec::new()
                })
            };
            let emergency = pick("emergency", over.emergency, base.map(|b| &b.emergency));
            let crisis = pick("crisis", over.crisis, base.map(|b| &b.crisis));
            let negations = pick("negations", over.negations, base.map(|b| &b.negations));
            let mut text = |k: &str, o: Option<String>, b: Option<&String>| {
                let t = o.or_else(|| b.cloned()).unwrap_or_default();
                if t.trim().is_empty() {
                    problems.push(Problem::new(key(k), "must be a notice the patient can act on"));
                }
                t
            };
            let emergency_notice = text(
                "emergency_notice",
                over.emergency_notice,
                base.map(|b| &b.emergency_notice),
            );
            let crisis_notice = text(
                "crisis_notice",
                over.crisis_notice,
                base.map(|b| &b.crisis_notice),
            );
            let mut parse = |k: &str, rules: &[String]| -> Vec<Rule> {
                let mut parsed = Vec::new();
                for (i, r) in rules.iter().enumerate() {
                    match Rule::parse(r) {
                        Ok(rule) => parsed.push(rule),
                        Err(e) => problems.push(Problem::new(format!("{}[{i}]", key(k)), e)),
                    }
                }
                parsed
            };
            languages.push(Language {
                code: code.clone(),
                emergency: parse("emergency", &emergency),
                crisis: parse("crisis", &crisis),
                negations: negations.iter().map(|n| triage::fold(n)).collect(),
                emergency_notice,
                crisis_notice,
            });
        }
        if problems.is_empty() {
            Ok(languages)
        } else {
            Err(problems)
        }
    }

    pub fn problems(&self) -> Vec<Problem> {
        self.languages().err().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> EmergencyConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn an_override_keeps_the_rest_of_its_language() {
        let c = config("[en]\ncrisis_notice = \"Call 13 11 14 now.\"\n");
        let langs = c.languages().unwrap();
        assert_eq!(
            langs.iter().map(|l| l.code.as_str()).collect::<Vec<_>>(),
            ["en", "es"]
        );
        let triage = triage::Triage::new(langs);
        let alarm = triage.assess("I want to kill myself").unwrap();
        assert_eq!(alarm.notice, "Call 13 11 14 now.");
        assert!(triage.assess("my chest hurts").unwrap().notice.contains("911"));
    }

    #[test]
    fn a_new_language_must_be_complete_and_bad_rules_are_named() {
        let c =
            config("[fr]\nemergency = [\"douleur + poitrine\"]\n[en]\nemergency = [\"chest + \", \"ok\"]\n");
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "messaging.emergency.en.emergency[0]",
                "messaging.emergency.fr.crisis",
                "messaging.emergency.fr.negations",
                "messaging.emergency.fr.emergency_notice",
                "messaging.emergency.fr.crisis_notice",
            ]
        );
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(EmergencyConfig::default().problems().is_empty());
    }
}
