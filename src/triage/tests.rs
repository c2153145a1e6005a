use super::*;

fn triage() -> Triage {
    let languages = builtin()
        .into_iter()
        .map(|(code, b)| Language {
            code,
            emergency: b.emergency.iter().map(|r| Rule::parse(r).unwrap()).collect(),
            crisis: b.crisis.iter().map(|r| Rule::parse(r).unwrap()).collect(),
            negations: b.negations,
            emergency_notice: b.emergency_notice,
            crisis_notice: b.crisis_notice,
        })
        .collect();
    Triage::new(languages)
}

/// What people write, and what it should raise.
const TABLE: &[(&str, Option<(AlarmKind, &str)>)] = &[
    // English: word order and phrasing vary.
    (
        "My chest hurts and I feel short of breath",
        Some((AlarmKind::Emergency, "en")),
    ),
    ("I have chest pain", Some((AlarmKind::Emergency, "en"))),
    (
        "there is a crushing pain in my chest",
        Some((AlarmKind::Emergency, "en")),
    ),
    (
        "Pressure in my chest since this morning",
        Some((AlarmKind::Emergency, "en")),
    ),
    ("I can't breathe", Some((AlarmKind::Emergency, "en"))),
    (
        "I can\u{2019}t breathe properly",
        Some((AlarmKind::Emergency, "en")),
    ),
    ("i cant breath", Some((AlarmKind::Emergency, "en"))),
    ("having trouble breathing", Some((AlarmKind::Emergency, "en"))),
    (
        "It's hard to breathe when I lie down",
        Some((AlarmKind::Emergency, "en")),
    ),
    (
        "I'm bleeding a lot from a cut",
        Some((AlarmKind::Emergency, "en")),
    ),
    ("the cut won't stop bleeding", Some((AlarmKind::Emergency, "en"))),
    (
        "My son passed out and won't wake up",
        Some((AlarmKind::Emergency, "en")),
    ),
    (
        "I think I'm having a stroke, my face is drooping",
        Some((AlarmKind::Emergency, "en")),
    ),
    ("She took too many pills", Some((AlarmKind::Emergency, "en"))),
    ("CHEST PAIN!!!", Some((AlarmKind::Emergency, "en"))),
    // Negations stop at a comma or a "but": these are still emergencies.
    ("No, I can't breathe", Some((AlarmKind::Emergency, "en"))),
    ("No fever but chest pain", Some((AlarmKind::Emergency, "en"))),
    ("No cough, just chest pain", Some((AlarmKind::Emergency, "en"))),
    ("I can't stop the bleeding", Some((AlarmKind::Emergency, "en"))),
    (
        "I think I'm having a heart attack",
        Some((AlarmKind::Emergency, "en")),
    ),
    (
        "is it a stroke? my face feels numb",
        Some((AlarmKind::Emergency, "en")),
    ),
    // English: thoughts of suicide or self-harm get the crisis line.
    ("I want to kill myself", Some((AlarmKind::Crisis, "en"))),
    (
        "I've been having suicidal thoughts",
        Some((AlarmKind::Crisis, "en")),
    ),
    ("sometimes I want to die", Some((AlarmKind::Crisis, "en"))),
    (
        "I keep thinking about hurting myself",
        Some((AlarmKind::Crisis, "en")),
    ),
    ("I want to end my life", Some((AlarmKind::Crisis, "en"))),
    ("chest pain and I want to die", Some((AlarmKind::Crisis, "en"))),
    ("I don't want to live anymore", Some((AlarmKind::Crisis, "en"))),
    ("I just want to end it all", Some((AlarmKind::Crisis, "en"))),
    ("I'm going to hurt myself", Some((AlarmKind::Crisis, "en"))),
    (
        "there is pressure in the chest",
        Some((AlarmKind::Emergency, "en")),
    ),
    ("my chest feels tight", Some((AlarmKind::Emergency, "en"))),
    // English: not an emergency.
    ("I need a refill of my inhaler", None),
    ("No chest pain, just a cough", None),
    ("I don't have chest pain", None),
    ("I'm not short of breath", None),
    ("no trouble breathing", None),
    ("My chest x-ray results came back", None),
    ("My chest is fine. My knee hurts.", None),
    ("my gums bleed a little when I brush", None),
    ("My dad had a stroke last year", None),
    ("I hurt myself falling off my bike last week", None),
    ("I don't want to die, I want to get better", None),
    ("I need my blood pressure pills and a chest x-ray", None),
    ("I was going to the store and cut myself", None),
    ("My dad died of a heart attack", None),
    ("I think my mom had a stroke in 2019", None),
    (
        "I bruised my chest playing football and the swelling went down, pain is gone",
        None,
    ),
    // Spanish, with and without accents.
    (
        "Me duele el pecho y me falta el aire",
        Some((AlarmKind::Emergency, "es")),
    ),
    ("tengo dolor en el pecho", Some((AlarmKind::Emergency, "es"))),
    ("No puedo respirar", Some((AlarmKind::Emergency, "es"))),
    ("Estoy sangrando mucho", Some((AlarmKind::Emergency, "es"))),
    (
        "Creo que tengo un derrame cerebral",
        Some((AlarmKind::Emergency, "es")),
    ),
    (
        "me siento con presión en el pecho",
        Some((AlarmKind::Emergency, "es")),
    ),
    ("Quiero morirme", Some((AlarmKind::Crisis, "es"))),
    ("he pensado en quitarme la vida", Some((AlarmKind::Crisis, "es"))),
    ("pienso en hacerme daño", Some((AlarmKind::Crisis, "es"))),
    ("pienso en hacerme dano", Some((AlarmKind::Crisis, "es"))),
    ("Estoy pensando en el suicidio", Some((AlarmKind::Crisis, "es"))),
    ("me quiero matar", Some((AlarmKind::Crisis, "es"))),
    ("ya no quiero vivir", Some((AlarmKind::Crisis, "es"))),
    ("No sé, me duele el pecho", Some((AlarmKind::Emergency, "es"))),
    // Spanish: not an emergency.
    ("Necesito una receta nueva", None),
    ("Ya no me duele el pecho", None),
    ("No tengo dolor de pecho, solo tos", None),
    ("Respiro bien, gracias", None),
    ("No quiero morir, quiero mejorar", None),
];

#[test]
fn the_table_of_sentences_raises_what_it_should() {
    let t = triage();
    let mut wrong = Vec::new();
    for (text, expected) in TABLE {
        let got = t.assess(text).map(|a| (a.kind, a.language));
        let want = expected.map(|(k, l)| (k, l.to_string()));
        if got != want {
            wrong.push(format!("{text:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_notice_is_in_the_language_that_matched() {
    let t = triage();
    assert!(
        t.assess("me duele el pecho")
            .unwrap()
            .notice
            .starts_with("Si es una emergencia")
    );
    let crisis = t.assess("I want to kill myself").unwrap();
    assert!(crisis.notice.contains("988"), "{}", crisis.notice);
    assert!(!t.assess("I have chest pain").unwrap().notice.contains("988"));
}

#[test]
fn rules_parse_phrases_prefixes_and_report_mistakes() {
    let r = Rule::parse("chest + pain*|hurt* | crushing pain").unwrap();
    assert_eq!(r.concepts.len(), 2);
    assert_eq!(r.concepts[1].len(), 3);
    assert_eq!(
        r.concepts[1][2],
        vec![Word::Exact("crushing".into()), Word::Exact("pain".into())]
    );
    assert!(Rule::parse("chest + ").unwrap_err().contains("empty phrase"));
    assert!(Rule::parse("* + chest").unwrap_err().contains("lone"));
}

#[test]
fn words_far_apart_or_in_other_sentences_do_not_match() {
    let t = triage();
    assert!(
        t.assess("my chest was examined yesterday by the doctor and today the pain")
            .is_none()
    );
    assert!(t.assess("My chest? Fine. Pain? In my toe.").is_none());
}
