//! What the load tools share: reading a process's CPU time and memory from /proc, and signing a demo staff
//! user in to an `examroom dev` broker through its development provider's login form, as a browser would.

/// CPU seconds (user + system) and resident memory (KiB) of a process, from /proc.
pub fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    (ticks / 100.0, rss_kb)
}

/// Rate limits lifted for a benchmark's broker: one address opens every patient session and one nurse socket
/// carries thousands of chats, and the numbers must measure the broker, not its limits.
pub const NO_LIMITS: &[(&str, &str)] = &[
    (
        "EXAMROOM_LIMITS__PATIENT_SESSION_PER_SUBJECT",
        "{ per_minute = 10000000, burst = 10000000 }",
    ),
    (
        "EXAMROOM_LIMITS__PATIENT_SESSION_PER_ADDRESS",
        "{ per_minute = 10000000, burst = 10000000 }",
    ),
    (
        "EXAMROOM_LIMITS__STAFF_SIGN_IN_PER_SUBJECT",
        "{ per_minute = 10000000, burst = 10000000 }",
    ),
    (
        "EXAMROOM_LIMITS__SOCKET_FRAMES",
        "{ per_minute = 100000000, burst = 10000000 }",
    ),
    ("EXAMROOM_AUTH__PATIENT__MAX_SESSIONS_PER_SUBJECT", "1000000"),
];

/// An HTTP client that stops at redirects (the sign-in reads each `Location` itself) and keeps cookies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("HTTP client")
}

/// The staff sign-in through the dev provider's login form: the session cookie (`name=value`).
pub async fn staff_cookie(url: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let http = client();
    let resp = http.get(format!("{url}/auth/login")).send().await?;
    let authorize = resp.headers()["location"].to_str()?.to_string();
    let mut form: Vec<(String, String)> = url::Url::parse(&authorize)?
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    form.push(("username".into(), user.into()));
    form.push(("password".into(), password.into()));
    let resp = http
        .post(format!("{url}/dev-idp/authorize"))
        .form(&form)
        .send()
        .await?;
    let callback = resp.headers()["location"].to_str()?.to_string();
    let resp = http.get(callback).send().await?;
    let cookie = resp.headers()["set-cookie"].to_str()?;
    Ok(cookie.split(';').next().unwrap_or_default().to_string())
}
