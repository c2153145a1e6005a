//! Emergency and crisis detection in what a patient writes: pure functions, no I/O, never a diagnosis. A
//! message that matches a rule shows the patient a notice (the emergency number, or the crisis line for
//! thoughts of suicide or self-harm) and moves the chat to the front of the queue; that is all it may do.
//!
//! Rules are written per language as `concept + concept`, each concept a `|` list of words or phrases, a
//! trailing `*` matching any word that starts so (`chest + pain*|hurt*`); `|` lists alternatives within one concept,
//! so alternatives of different shapes are separate rules. A rule matches when every concept
//! occurs within a few words of the others, in any order and in one sentence, and no negation ("no",
//! "don't", "sin", …) comes just before any of them. Text is compared lower-cased, without accents and with
//! straight apostrophes, so "Me duele el pecho" and "me duele el pécho" read alike. The built-in tables cover
//! English and Spanish; a deployment overrides any part per language (`messaging.emergency.<lang>`).

use std::collections::BTreeMap;

/// Largest distance, in words, from the first to the last word of a rule's match.
const WINDOW: usize = 6;
/// How many words before a concept are read for a negation.
const NEGATION_REACH: usize = 3;
/// Words that start a new clause: a negation before one does not reach past it ("no fever but chest pain").
const CLAUSE_BREAKS: &[&str] = &[
    "but", "just", "only", "except", "though", "although", "however", "pero", "solo", "sino", "aunque",
    "excepto",
];
/// Common words of the built-in languages: a message is read first in the language it has most of (so
/// "Estoy pensando en el suicidio" gets the Spanish crisis line although "suicid*" is an English rule too).
const COMMON_WORDS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "i", "i'm", "my", "and", "to", "is", "have", "of", "a", "in", "it", "am", "with", "can't",
        ],
    ),
    (
        "es",
        &[
            "el", "la", "de", "que", "y", "en", "me", "mi", "estoy", "es", "un", "una", "los", "por", "con",
            "tengo",
        ],
    ),
];

/// What a message calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// Emergency symptoms: the emergency number.
    Emergency,
    /// Thoughts of suicide or self-harm: the crisis line (and the emergency number if in danger).
    Crisis,
}

/// A match: its kind, the language whose rule matched, and the notice in that language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub kind: AlarmKind,
    pub language: String,
    pub notice: String,
}

/// One word of a phrase: exact, or a prefix (`bleed*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Exact(String),
    Prefix(String),
}

impl Word {
    fn matches(&self, token: &str) -> bool {
        match self {
            Word::Exact(w) => token == w,
            Word::Prefix(p) => token.starts_with(p.as_str()),
        }
    }
}

/// `concept + concept`, each concept a list of alternative phrases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    concepts: Vec<Vec<Vec<Word>>>,
}

impl Rule {
    /// Parses `chest + pain*|hurt*|pressure`; the error says what is wrong with the rule.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let mut concepts = Vec::new();
        for concept in text.split('+') {
            let mut alternatives = Vec::new();
            for phrase in concept.split('|') {
                let words: Vec<Word> = tokens(phrase)
                    .into_iter()
                    .map(|w| match w.strip_suffix('*') {
                        Some(p) if !p.is_empty() => Ok(Word::Prefix(p.to_string())),
                        Some(_) => Err("a lone `*`".to_string()),
                        None => Ok(Word::Exact(w)),
                    })
                    .collect::<Result<_, _>>()?;
                if words.is_empty() {
                    return Err(format!("an empty phrase in `{}`", text.trim()));
                }
                alternatives.push(words);
            }
            concepts.push(alternatives);
        }
        Ok(Rule { concepts })
    }

    /// Where each concept occurs in `sentence`: (first word, one past the last).
    fn occurrences(&self, sentence: &[String]) -> Vec<Vec<(usize, usize)>> {
        self.concepts
            .iter()
            .map(|alternatives| {
                let mut found = Vec::new();
                for start in 0..sentence.len() {
                    for phrase in alternatives {
                        let end = start + phrase.len();
                        if end <= sentence.len()
                            && phrase
                                .iter()
                                .zip(&sentence[start..end])
                                .all(|(w, t)| w.matches(t))
                        {
                            found.push((start, end));
                        }
                    }
                }
                found
            })
            .collect()
    }

    /// Whether the rule matches one sentence: an occurrence of every concept, all within [`WINDOW`], none negated.
    fn matches(&self, sentence: &[String], negations: &[String]) -> bool {
        let occurrences = self.occurrences(sentence);
        if occurrences.iter().any(Vec::is_empty) {
            return false;
        }
        // Try each occurrence of the first concept as the anchor; the others are picked nearest to it.
        occurrences[0].iter().any(|&anchor| {
            let mut chosen = vec![anchor];
            for others in &occurrences[1..] {
                let nearest = others
                    .iter()
                    .filter(|o| o.1 <= anchor.0 || o.0 >= anchor.1)
                    .min_by_key(|o| o.0.abs_diff(anchor.0));
                match nearest {
                    Some(&o) => chosen.push(o),
                    None => return false,
                }
            }
            let first = chosen.iter().map(|c| c.0).min().unwrap_or(0);
            let last = chosen.iter().map(|c| c.1).max().unwrap_or(0);
            last - first <= WINDOW + 1 && !chosen.iter().any(|c| negated(sentence, c.0, &chosen, negations))
        })
    }
}

/// Whether a negation word comes within [`NEGATION_REACH`] words before `start` in the same clause (a comma or
/// a word like "but" ends the search), outside the match itself.
fn negated(sentence: &[String], start: usize, chosen: &[(usize, usize)], negations: &[String]) -> bool {
    let mut read = 0;
    for i in (0..start).rev() {
        if chosen.iter().any(|c| (c.0..c.1).contains(&i)) {
            continue;
        }
        let word = sentence[i].as_str();
        if word == "," || CLAUSE_BREAKS.contains(&word) || read == NEGATION_REACH {
            return false;
        }
        if negations.iter().any(|n| n == word) {
            return true;
        }
        read += 1;
    }
    false
}

/// One language's rules and notices.
#[derive(Debug, Clone)]
pub struct Language {
    pub code: String,
    pub emergency: Vec<Rule>,
    pub crisis: Vec<Rule>,
    pub negations: Vec<String>,
    pub emergency_notice: String,
    pub crisis_notice: String,
}

/// The rule tables of every configured language.
#[derive(Debug, Clone)]
pub struct Triage {
    languages: Vec<Language>,
}

impl Triage {
    /// Languages are tried in the order given; within one, crisis rules before emergency rules (a message that
    /// is both gets the crisis line, whose notice also names the emergency number).
    pub fn new(languages: Vec<Language>) -> Triage {
        Triage { languages }
    }

    pub fn assess(&self, text: &str) -> Option<Alarm> {
        let sentences = sentences(text);
        let common = |code: &str| {
            let words = COMMON_WORDS
                .iter()
                .find(|(c, _)| *c == code)
                .map_or(&[][..], |(_, w)| *w);
            sentences
                .iter()
                .flatten()
                .filter(|t| words.contains(&t.as_str()))
                .count()
        };
        // Most common words first; a stable sort keeps the configured order between equals.
        let mut languages: Vec<&Language> = self.languages.iter().collect();
        languages.sort_by_key(|l| std::cmp::Reverse(common(&l.code)));
        // Crisis rules of every language before any emergency rule: a crisis notice also names the emergency
        // number, the other way round it would not name the crisis line.
        let kinds = [AlarmKind::Crisis, AlarmKind::Emergency];
        for (kind, lang) in kinds.iter().flat_map(|k| languages.iter().map(move |l| (*k, *l))) {
            let (rules, notice) = match kind {
                AlarmKind::Crisis => (&lang.crisis, &lang.crisis_notice),
                AlarmKind::Emergency => (&lang.emergency, &lang.emergency_notice),
            };
            let hit = sentences
                .iter()
                .any(|s| rules.iter().any(|r| r.matches(s, &lang.negations)));
            if hit {
                return Some(Alarm {
                    kind,
                    language: lang.code.clone(),
                    notice: notice.clone(),
                });
            }
        }
        None
    }
}

/// Lower case, no accents, straight apostrophes: how rules, negations and messages are compared.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            '\u{2019}' | '\u{2018}' | '`' | '´' => '\'',
            c => c,
        })
        .collect()
}

/// Words: letters, digits, apostrophes and `*` (rules only); everything else separates.
fn tokens(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '*'))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// A message split at sentence ends, each sentence as words, with `,` kept where a comma or colon separated
/// clauses (negations stop there).
fn sentences(text: &str) -> Vec<Vec<String>> {
    text.split(['.', '!', '?', ';', '\n', '¿', '¡'])
        .map(|s| {
            let mut words = Vec::new();
            for (i, clause) in s.replace('*', " ").split([',', ':']).enumerate() {
                if i > 0 {
                    words.push(",".to_string());
                }
                words.extend(tokens(clause));
            }
            words
        })
        .filter(|s| s.iter().any(|w| w != ","))
        .collect()
}

/// The built-in rule texts of one language, as a deployment would write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builtin {
    pub emergency: Vec<String>,
    pub crisis: Vec<String>,
    pub negations: Vec<String>,
    pub emergency_notice: String,
    pub crisis_notice: String,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// English and Spanish, for the United States (911, 988).
pub fn builtin() -> BTreeMap<String, Builtin> {
    let en = Builtin {
        emergency: strings(&[
            "chest + pain*|hurt*|ache*|aching|tight*|crushing|squeez*",
            "chest pressure|pressure in my chest|pressure on my chest|pressure in the chest|pressure on the chest",
            "chest feels + pressure|tight*|heavy",
            "having a heart attack|is it a heart attack|is this a heart attack",
            "short of breath|shortness of breath|out of breath",
            "can't|cant|cannot|can not|unable to|trouble|difficulty|difficult to|hard to|struggling to + breath*",
            "bleed* + a lot|lots|heavily|heavy|badly|so much|won't stop|wont stop|will not stop|everywhere|can't stop|cannot stop",
            "severe|heavy|uncontrolled + bleed*",
            "unconscious|unresponsive|passed out|won't wake|not waking",
            "having a stroke|is it a stroke|is this a stroke|slurred speech|slurring",
            "face + droop*",
            "overdos*|too many pills|took too many",
            "seizure|seizing",
        ]),
        crisis: strings(&[
            "suicid*",
            "kill|killing|killed + myself",
            "want|wanna|thinking|thoughts|thought|urge + hurt|hurting|harm|harming|cut|cutting + myself",
            "going to hurt myself|going to harm myself|going to cut myself|going to kill myself|gonna hurt myself|gonna kill myself",
            "self harm|selfharm",
            "end + my life",
            "want|wanna + to die",
            "don't|dont|do not + want to live|want to be alive",
            "end it all|no point in living|not worth living",
            "better off dead|no reason to live",
        ]),
        negations: strings(&[
            "no", "not", "don't", "dont", "doesn't", "doesnt", "didn't", "didnt", "never", "without", "denies",
            "isn't", "isnt", "wasn't", "haven't", "hasn't", "none", "nor",
        ]),
        emergency_notice: "If this is an emergency, call 911 or your local emergency number now. A nurse will \
                           see your message as soon as possible."
            .into(),
        crisis_notice: "If you are thinking about suicide or hurting yourself, call or text 988 (Suicide & \
                        Crisis Lifeline) now, or call 911 if you are in danger. A nurse will see your message as \
                        soon as possible."
            .into(),
    };
    let es = Builtin {
        emergency: strings(&[
            "pecho + dolor*|duele*|presion|apret*|opresion",
            "no puedo|dificultad para|me cuesta|me falta + respirar|aire|respiracion",
            "falta de aire|ahogo|me ahogo",
            "sangr* + mucho|mucha|abundante|no para|sin parar|fuerte",
            "hemorragia",
            "inconsciente|desmay*|no responde|no despierta",
            "derrame cerebral",
            "cara + caida|torcida",
            "sobredosis|demasiadas pastillas",
            "convulsion*",
        ]),
        crisis: strings(&[
            "suicid*",
            "matarme|quitarme la vida|acabar con mi vida",
            "quiero + matar|morir*",
            "no quiero vivir|no quiero seguir viviendo",
            "hacerme dano|lastimarme|cortarme|autolesion*",
        ]),
        negations: strings(&["no", "sin", "nunca", "tampoco", "ni", "nada"]),
        emergency_notice: "Si es una emergencia, llame ahora al 911 o a su número local de emergencias. Una \
                           enfermera verá su mensaje lo antes posible."
            .into(),
        crisis_notice: "Si está pensando en suicidarse o en hacerse daño, llame o envíe un mensaje de texto al \
                        988 (Línea de Prevención del Suicidio y Crisis, también en español) ahora, o llame al \
                        911 si está en peligro. Una enfermera verá su mensaje lo antes posible."
            .into(),
    };
    BTreeMap::from([("en".to_string(), en), ("es".to_string(), es)])
}

#[cfg(test)]
mod tests;
