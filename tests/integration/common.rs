//! Helpers shared by the integration tests: the real broker binary as a child process, the real panva
//! oidc-provider, signing keys, and HTTP clients that keep cookies but never follow redirects.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Lines a child process printed, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn capture(&self, stream: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

/// A running broker, stopped by its PID when dropped.
pub struct Broker {
    pub child: Child,
    pub url: String,
    pub stdout: Output,
    pub stderr: Output,
}

fn spawn(mut cmd: Command) -> (Child, Output, Output) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (out, err) = (Output::default(), Output::default());
    out.capture(child.stdout.take().unwrap());
    err.capture(child.stderr.take().unwrap());
    (child, out, err)
}

impl Broker {
    pub fn command() -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_examroom"));
        // The test process may carry overrides of its own; the broker gets only what a test passes.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("EXAMROOM_")) {
            cmd.env_remove(k);
        }
        cmd
    }

    /// `examroom dev` on an ephemeral port in `data_dir`.
    pub fn dev(data_dir: &Path, env: &[(&str, &str)]) -> Broker {
        Self::start_dev(Self::command(), data_dir, env)
    }

    /// `examroom dev` alone in a new network namespace that has only `lo` (media tests): the broker's PID is the
    /// namespace's handle, see [`Broker::in_namespace`].
    pub fn dev_isolated(data_dir: &Path, env: &[(&str, &str)]) -> Broker {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(env!("CARGO_BIN_EXE_examroom"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("EXAMROOM_")) {
            cmd.env_remove(k);
        }
        Self::start_dev(cmd, data_dir, env)
    }

    /// A command that runs inside the broker's network namespace.
    pub fn in_namespace(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{}/ns/net", self.child.id()))
            .arg("--")
            .arg(program);
        cmd
    }

    fn start_dev(cmd: Command, data_dir: &Path, env: &[(&str, &str)]) -> Broker {
        Self::dev_at(cmd, data_dir, env, &["--listen", "127.0.0.1:0"])
    }

    /// `examroom dev` run by `cmd` (the broker binary, or a wrapper such as `nsenter` that execs it) with
    /// `args` (listen address, public URL) after `dev`; ready once it prints where it runs.
    pub fn dev_at(mut cmd: Command, data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Broker {
        cmd.arg("dev").args(args).arg("--data-dir").arg(data_dir);
        // The suite's PostgreSQL run gives each broker its own database unless the test chose one.
        if !env.iter().any(|(k, _)| *k == "EXAMROOM_DATABASE__URL")
            && let Some(url) = crate::storage::suite_database(data_dir)
        {
            cmd.env("EXAMROOM_DATABASE__URL", url);
        }
        cmd.envs(env.iter().copied());
        let (child, stdout, stderr) = spawn(cmd);
        let line = stdout
            .wait_for("running at", Duration::from_secs(60))
            .unwrap_or_else(|| panic!("dev broker did not start:\n{}", stderr.lines().join("\n")));
        let url = line
            .split("running at ")
            .nth(1)
            .unwrap()
            .trim()
            .trim_end_matches('/')
            .to_string();
        Broker {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// `examroom serve --config FILE`, ready once `/healthz` answers.
    pub fn serve(config: &Path, url: &str) -> Broker {
        let mut cmd = Self::command();
        cmd.args(["serve", "--config"]).arg(config);
        let (child, stdout, stderr) = spawn(cmd);
        let mut broker = Broker {
            child,
            url: url.to_string(),
            stdout,
            stderr,
        };
        let start = Instant::now();
        loop {
            if probe::http_ok(&format!("{url}/healthz")).unwrap_or(false) {
                return broker;
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!(
                    "broker exited with {status}:\n{}",
                    broker.stderr.lines().join("\n")
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "broker did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait: the graceful shutdown path.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "broker ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn assert_no_panic(&self) {
        let logs = self.stderr.lines().join("\n");
        assert!(!logs.contains("panicked"), "broker panicked:\n{logs}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod probe {
    //! A tiny blocking probe used only while waiting for start-up, so the helpers need no runtime.
    pub fn http_ok(url: &str) -> std::io::Result<bool> {
        use std::io::{Read, Write};
        let u = url::Url::parse(url).map_err(std::io::Error::other)?;
        let mut s = std::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap()))?;
        write!(
            s,
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            u.path()
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf.starts_with("HTTP/1.1 200"))
    }
}

/// Sends a request and parses its JSON body, for tests that only care about the body.
pub trait SendJson {
    fn json_body(self) -> impl std::future::Future<Output = Value>;
}

impl SendJson for reqwest::RequestBuilder {
    async fn json_body(self) -> Value {
        self.send().await.unwrap().json().await.unwrap()
    }
}

/// An HTTP client that keeps cookies and shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap_or_else(|| panic!("a redirect, got {}", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// An RSA signing key with the forms the tests need.
pub struct TestKey {
    pub private_pem: String,
    pub public_pem: String,
    pub private_jwk: Value,
    pub public_jwk: Value,
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let b = |n: &rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
        let primes = key.primes();
        let (p, q) = (&primes[0], &primes[1]);
        let d = key.d();
        let one = rsa::BigUint::from(1u8);
        let dp = d % (p - &one);
        let dq = d % (q - &one);
        let qi = key.crt_coefficient().unwrap();
        let public_jwk =
            json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b(key.n()), "e": b(key.e())});
        let mut private_jwk = public_jwk.clone();
        for (k, v) in [
            ("d", b(d)),
            ("p", b(p)),
            ("q", b(q)),
            ("dp", b(&dp)),
            ("dq", b(&dq)),
            ("qi", b(&qi)),
        ] {
            private_jwk[k] = json!(v);
        }
        TestKey {
            private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap(),
            private_jwk,
            public_jwk,
        }
    }

    pub fn sign(&self, header: &jsonwebtoken::Header, claims: &Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(header, claims, &key).unwrap()
    }
}

/// The panva oidc-provider, started by the test and stopped by its PID.
pub struct OidcProvider {
    child: Child,
    pub issuer: String,
    pub port: u16,
    pub output: Output,
    dir: PathBuf,
}

pub fn support_dir() -> PathBuf {
    std::env::var("TEST_OIDC_PROVIDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support"))
}

impl OidcProvider {
    pub fn start(dir: &Path, port: u16, keys: &[&TestKey], staff_redirect: &str) -> OidcProvider {
        assert!(
            support_dir().join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run scripts/test.sh (it runs npm ci in tests/support)"
        );
        let jwks_file = dir.join(format!("jwks-{}.json", crate::common::random()));
        let jwks = json!({"keys": keys.iter().map(|k| k.private_jwk.clone()).collect::<Vec<_>>()});
        std::fs::write(&jwks_file, jwks.to_string()).unwrap();
        let mut cmd = Command::new("node");
        cmd.arg(support_dir().join("op.mjs"))
            .arg(port.to_string())
            .arg(&jwks_file)
            .arg(staff_redirect);
        let (child, output, errors) = spawn(cmd);
        if output.wait_for("listening", Duration::from_secs(30)).is_none() {
            panic!("oidc-provider did not start:\n{}", errors.lines().join("\n"));
        }
        OidcProvider {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
            port,
            output,
            dir: dir.to_path_buf(),
        }
    }

    /// Restarts on the same port with another key set (key rotation at the provider).
    pub fn restart_with(&mut self, keys: &[&TestKey], staff_redirect: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = OidcProvider::start(&self.dir.clone(), self.port, keys, staff_redirect);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.output
            .lines()
            .iter()
            .filter(|l| l.contains("request GET /jwks"))
            .count()
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn random() -> String {
    examroom::ids::random_hex(6)
}

/// Authorization code + PKCE against a provider, driving its login form over HTTP. `login` posts the form
/// (dev provider) or walks oidc-provider's interactions. Returns the redirect back to the client.
pub fn pkce_pair() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(examroom::ids::random_hex(32).as_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Walks oidc-provider's development interactions (login, then consent) from an authorization URL to the
/// final redirect to the client.
pub async fn op_interactions(
    http: &reqwest::Client,
    op: &OidcProvider,
    authorize_url: &str,
    login: &str,
) -> String {
    let mut next = authorize_url.to_string();
    for _ in 0..12 {
        let url = if next.starts_with('/') {
            format!("{}{next}", op.issuer)
        } else {
            next.clone()
        };
        if !url.starts_with(&op.issuer) {
            return url;
        }
        let resp = http.get(&url).send().await.unwrap();
        if resp.status().is_redirection() {
            next = location(&resp);
            continue;
        }
        let body = resp.text().await.unwrap();
        let form = if body.contains("name=\"password\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let resp = http.post(&url).form(&form).send().await.unwrap();
        assert!(
            resp.status().is_redirection(),
            "interaction did not redirect: {}",
            resp.status()
        );
        next = location(&resp);
    }
    panic!("too many redirects in the provider interaction")
}

/// A real ID token from the provider for `client_id` (a public PKCE client).
pub async fn op_id_token(op: &OidcProvider, client_id: &str, redirect_uri: &str, login: &str) -> String {
    let http = client();
    let (verifier, challenge) = pkce_pair();
    let mut url = url::Url::parse(&format!("{}/auth", op.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "s")
        .append_pair("nonce", "n");
    let back = op_interactions(&http, op, url.as_str(), login).await;
    let back = url::Url::parse(&back).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .expect("a code")
        .1
        .into_owned();
    let tokens: Value = http
        .post(format!("{}/token", op.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ])
        .json_body()
        .await;
    tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {tokens}"))
        .to_string()
}

/// Runs the `examroom` command line; its exit code and everything it printed.
pub fn examroom(args: &[&str]) -> (Option<i32>, String) {
    examroom_with_env(args, &[])
}

/// [`examroom`] with environment overrides (the ones the broker the command works on was started with).
pub fn examroom_with_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Broker::command();
    // A command on a dev broker's data directory uses that broker's database, as `examroom dev` was told.
    if let Some(i) = args.iter().position(|a| *a == "--data-dir")
        && let Some(dir) = args.get(i + 1)
        && crate::storage::on_postgres()
    {
        cmd.env(
            "EXAMROOM_DATABASE__URL",
            crate::storage::database_url(Path::new(dir)),
        );
    }
    let out = cmd.args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Whether this machine can make network namespaces (`unshare --net`, as root). The full test script
/// requires them; elsewhere a test that needs one says so and skips.
pub fn netns_available() -> bool {
    let ok = Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("TEST_REQUIRE_BROWSER").is_err(),
            "unshare --net is required"
        );
        eprintln!("network namespaces unavailable: skipping");
    }
    ok
}

/// `program` in a fresh network namespace that has only loopback, brought up.
pub fn in_fresh_netns(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--",
        "sh",
        "-c",
        "ip link set lo up && exec \"$0\" \"$@\"",
    ])
    .arg(program);
    cmd
}

/// Runs `cmd`, asserts it succeeded (showing everything it printed if not) and returns its standard output.
pub fn stdout_of_success(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs a browser script (`node tests/browser/SCRIPT BROKER_URL CREDENTIALS ARTIFACTS [args]`, prefixed by
/// `cmd`, e.g. `nsenter` into a namespace), asserts it succeeded and printed `passed`, showing its output and the
/// broker's log if not, and returns what it printed.
pub fn run_browser_script(
    mut cmd: Command,
    script: &str,
    broker: &Broker,
    data: &Path,
    args: &[&str],
    passed: &str,
) -> String {
    let out = cmd
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/browser")
                .join(script),
        )
        .arg(&broker.url)
        .arg(data.join("dev-idp/credentials.json"))
        .arg(crate::video::artifacts())
        .args(args)
        .env("TEST_OIDC_PROVIDER_DIR", support_dir())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && log.contains(passed),
        "{script} failed:\n{log}\nbroker:\n{}",
        broker.stderr.lines().join("\n")
    );
    log
}

/// Milliseconds since the Unix epoch (the broker's clock for timelines).
pub fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
