//! Every problem reported with its key, and what passes.

use super::super::load_str;

#[test]
fn every_semantic_problem_is_reported_with_its_key() {
    let text = r#"
        [server]
        listen = "nowhere"
        portal_origins = ["https://portal.example.org/path"]
        [auth]
        max_clock_skew_seconds = 300
        [auth.staff]
        issuer = "http://login.example.org"
        client_id = "examroom"
        role_mapping = { "g-nurse" = "wizard" }
        [auth.patient]
        issuer = "https://portal.example.org"
        audiences = ["portal"]
        algorithms = ["HS256"]
        [media]
        bind_ips = ["localhost"]
        udp_port_min = 5000
        udp_port_max = 4000
        turn_urls = ["turn:turn.example.org:3478?transport=tcp", "http://x"]
    "#;
    let err = load_str(text, &[]).unwrap_err();
    let keys: Vec<_> = err.problems.iter().map(|p| p.key.as_str()).collect();
    for expected in [
        "server.listen",
        "server.portal_origins[0]",
        "auth.max_clock_skew_seconds",
        "auth.staff.issuer",
        "auth.staff.client_secret_file",
        "auth.staff.role_mapping.g-nurse",
        "auth.patient.algorithms[0]",
        "media.bind_ips[0]",
        "media.udp_port_min",
        "media.turn_urls[1]",
        "media.turn_secret_file",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
}

#[test]
fn plain_http_issuers_only_on_loopback_or_under_the_demos_own_url() {
    let config = |public: &str, issuer: &str| {
        format!(
            "[server]\npublic_url = \"{public}\"\n[auth.patient]\nissuer = \"{issuer}\"\naudiences = [\"p\"]\n\
             [auth.staff]\nissuer = \"https://login.example.org\"\nclient_id = \"e\"\nclient_secret = \"x\"\n\
             role_mapping = {{ \"n\" = \"nurse\" }}\n"
        )
    };
    let refused = |result: Result<crate::config::Config, crate::config::ConfigError>| {
        result
            .err()
            .is_some_and(|e| e.problems.iter().any(|p| p.key == "auth.patient.issuer"))
    };
    let dev = || crate::config::DevConfig {
        idp_dir: "/nonexistent".into(),
    };
    let file = |public: &str, issuer: &str| refused(load_str(&config(public, issuer), &[]));
    let demo = |public: &str, issuer: &str| {
        refused(crate::config::load_dev_str(&config(public, issuer), &[], dev()))
    };
    assert!(!file("http://127.0.0.1:8080", "http://127.0.0.1:9000/op"));
    // `examroom dev --public-url http://198.51.100.1:8080`: its own provider under its own URL.
    assert!(!demo(
        "http://198.51.100.1:8080",
        "http://198.51.100.1:8080/dev-idp"
    ));
    assert!(demo(
        "http://198.51.100.1:8080",
        "http://198.51.100.9:8080/dev-idp"
    ));
    // A deployment's file never gets that exception.
    assert!(file(
        "http://198.51.100.1:8080",
        "http://198.51.100.1:8080/dev-idp"
    ));
    assert!(file("https://examroom.example.org", "http://login.example.org"));
    // Allowed, but the operator hears about plain http across a network.
    let c = load_str(
        &config("http://198.51.100.1:8080", "https://login.example.org"),
        &[],
    )
    .unwrap();
    assert_eq!(crate::config::warnings(&c)[0].key, "server.public_url");
}
