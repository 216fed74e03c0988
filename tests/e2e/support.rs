//! Starting and stopping the real peers and the `hoopguard` binary for end-to-end tests.
//!
//! Peers come from the Python virtualenv that `scripts/test.sh` prepares (`HOOPGUARD_PEERS`,
//! default `target/peers/venv`). Every server binds 127.0.0.1 on a free port and is killed when
//! its handle drops; every wait is bounded.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The peers' virtualenv, or a panic that says how to make it.
pub fn venv() -> PathBuf {
    let dir = std::env::var_os("HOOPGUARD_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/peers/venv"));
    assert!(
        dir.join("bin/python").exists(),
        "the test peers are not installed at {}; run `bash scripts/test.sh` (it installs them) \
         or set HOOPGUARD_PEERS to a virtualenv with oidc-provider-mock",
        dir.display()
    );
    dir
}

/// The `hoopguard` binary, built once per test run so it is never stale.
pub fn hoopguard() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| cargo_build(&["-p", "hoopguard-cli", "--bin", "hoopguard"], "hoopguard"))
}

/// The guarded rmcp example server, built once per test run.
pub fn rmcp_example() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| example("guarded-rmcp-server"))
}

/// The MCP server whose own AWS calls are guarded, built once per test run.
pub fn aws_example() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| example("guarded-aws-mcp-server"))
}

fn example(name: &str) -> PathBuf {
    cargo_build(
        &["-p", "hoopguard", "--example", name],
        &format!("examples/{name}"),
    )
}

/// `cargo build ARGS` in this test's profile; returns `target/<profile>/<output>`.
fn cargo_build(args: &[&str], output: &str) -> PathBuf {
    // target/<profile>/deps/e2e-… → target/<profile>
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .args(args)
        .current_dir(root());
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
    profile_dir.join(output)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

/// Waits until something accepts on `port`, up to `limit`.
pub fn wait_for_port(port: u16, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listened on 127.0.0.1:{port} within {limit:?}");
}

/// A child process killed on drop.
pub struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdout(file.try_clone().unwrap()).stderr(file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc {
            child: Some(child),
            log,
        }
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                self.child = None;
                return st;
            }
            assert!(
                start.elapsed() < limit,
                "did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the process at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `oidc-provider-mock` (PyPI), a real OIDC provider that signs with its own RSA key, which it
/// generates anew at every start: restarting it is a key rotation.
pub struct OidcProvider {
    pub port: u16,
    proc: Option<Proc>,
    dir: PathBuf,
    starts: u32,
}

impl OidcProvider {
    pub fn start(dir: &Path) -> OidcProvider {
        let mut p = OidcProvider {
            port: free_port(),
            proc: None,
            dir: dir.to_path_buf(),
            starts: 0,
        };
        p.launch();
        p
    }

    /// Starts the provider on a port that nothing listens on yet, without starting it.
    pub fn not_started(dir: &Path) -> OidcProvider {
        OidcProvider {
            port: free_port(),
            proc: None,
            dir: dir.to_path_buf(),
            starts: 0,
        }
    }

    pub fn launch(&mut self) {
        let mut cmd = Command::new(venv().join("bin/oidc-provider-mock"));
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()]);
        self.starts += 1;
        let log = self.dir.join(format!("oidc-{}.log", self.starts));
        self.proc = Some(Proc::spawn(cmd, log));
        wait_for_port(self.port, Duration::from_secs(30));
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Stops and starts again on the same port: new signing key.
    pub fn rotate(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An ID token for `sub` in `groups` with audience `client_id`, through the provider's
    /// authorization-code flow.
    pub fn token(&self, sub: &str, groups: &[&str], client_id: &str) -> String {
        let base = self.issuer();
        let http = reqwest::blocking_client();
        let put = http
            .put(format!("{base}/users/{sub}"))
            .json(&serde_json::json!({ "groups": groups }))
            .send()
            .expect("set user");
        assert!(put.status().is_success(), "set user: {}", put.status());
        let redirect = "http://127.0.0.1/callback";
        let resp = http
            .post(format!("{base}/oauth2/authorize"))
            .query(&[
                ("client_id", client_id),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", "openid"),
            ])
            .form(&[("sub", sub)])
            .send()
            .expect("authorize");
        let location = resp
            .headers()
            .get("location")
            .unwrap_or_else(|| panic!("authorize answered {} without a redirect", resp.status()))
            .to_str()
            .unwrap()
            .to_string();
        let code = location
            .split_once("code=")
            .map(|(_, c)| c.split('&').next().unwrap().to_string())
            .expect("code in redirect");
        let tok: serde_json::Value = http
            .post(format!("{base}/oauth2/token"))
            // client_secret_post: a client id that is a URL has a `:`, which basic auth cannot carry.
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("client_id", client_id),
                ("client_secret", "any-secret"),
            ])
            .send()
            .expect("token")
            .json()
            .expect("token JSON");
        tok["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no id_token in {tok}"))
            .to_string()
    }
}

/// A blocking HTTP client that does not follow redirects.
pub mod reqwest {
    pub fn blocking_client() -> ::reqwest::blocking::Client {
        ::reqwest::blocking::Client::builder()
            .redirect(::reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .expect("client")
    }
}

/// A running `hoopguard serve`.
pub struct Gateway {
    pub proc: Proc,
    pub aws: u16,
    pub mcp: u16,
    pub admin: u16,
    pub config: PathBuf,
}

/// Ports and a data directory for one gateway, and the config file's listener section.
pub struct GatewayPorts {
    pub aws: u16,
    pub mcp: u16,
    pub admin: u16,
}

impl GatewayPorts {
    pub fn new() -> Self {
        GatewayPorts {
            aws: free_port(),
            mcp: free_port(),
            admin: free_port(),
        }
    }

    /// `data_dir` and the three `[listeners.*]` tables.
    pub fn toml(&self, data_dir: &Path) -> String {
        format!(
            "data_dir = {:?}\n[listeners.aws]\nbind = \"127.0.0.1:{}\"\n[listeners.mcp]\nbind = \"127.0.0.1:{}\"\n[listeners.admin]\nbind = \"127.0.0.1:{}\"\n",
            data_dir.display().to_string(),
            self.aws,
            self.mcp,
            self.admin
        )
    }
}

impl Gateway {
    /// Writes `extra` after the listeners into a config file and starts `hoopguard serve` on it.
    pub fn start(dir: &Path, extra: &str, args: &[&str]) -> Gateway {
        Gateway::start_with_env(dir, extra, args, &[])
    }

    /// [`Gateway::start`] with extra environment variables, and none of the caller's `AWS_*`.
    pub fn start_with_env(dir: &Path, extra: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        // Free ports are picked before the gateway binds them; another process (any outbound
        // connection takes an ephemeral port) may take one in between: then pick again.
        for _ in 0..3 {
            if let Some(gw) = Gateway::try_start(dir, extra, args, env) {
                return gw;
            }
        }
        panic!("hoopguard serve found a chosen port taken three times");
    }

    fn try_start(dir: &Path, extra: &str, args: &[&str], env: &[(&str, &str)]) -> Option<Gateway> {
        let ports = GatewayPorts::new();
        let data_dir = dir.join("data");
        let config = dir.join("hoopguard.toml");
        std::fs::write(&config, format!("{}{extra}", ports.toml(&data_dir))).unwrap();
        let mut cmd = Command::new(hoopguard());
        cmd.args(args)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
            cmd.env_remove(k);
        }
        // The gateway's own AWS credentials come from the environment only.
        cmd.env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn(cmd, dir.join("hoopguard.log"));
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", ports.admin)).is_err() {
            if proc.has_exited() && proc.output().contains("cannot bind") {
                return None;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "hoopguard serve did not listen within 30s; it printed:\n{}",
                proc.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Gateway {
            proc,
            aws: ports.aws,
            mcp: ports.mcp,
            admin: ports.admin,
            config,
        })
    }

    pub fn url(&self, port: u16, path: &str) -> String {
        format!("http://127.0.0.1:{port}{path}")
    }

    /// A token file for `sub` in `groups` from the gateway's development issuer, written next
    /// to its config; `audience` adds an audience (an MCP resource URI).
    pub fn dev_token(&self, sub: &str, groups: &str, audience: Option<&str>) -> PathBuf {
        let dir = self.config.parent().expect("the config is in a directory");
        let path = dir.join(format!(
            "{sub}{}.token",
            if audience.is_some() { "-aud" } else { "" }
        ));
        let config = self.config.to_str().unwrap();
        let mut args = vec![
            "dev-token",
            "--config",
            config,
            "--sub",
            sub,
            "--groups",
            groups,
            "--out",
            path.to_str().unwrap(),
        ];
        if let Some(a) = audience {
            args.extend(["--audience", a]);
        }
        let (st, _, err) = run_hoopguard(&args, &[]);
        assert!(st.success(), "{err}");
        path
    }

    /// Pseudo-credentials from the credentials endpoint for the holder of `token_file` (as the
    /// SDKs fetch them: the raw token as `Authorization`).
    pub fn pseudo_credentials(&self, token_file: &Path) -> serde_json::Value {
        let raw = std::fs::read_to_string(token_file).unwrap();
        reqwest::blocking_client()
            .get(self.url(self.aws, "/v1/aws/credentials"))
            .header("authorization", raw.trim())
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// The admin API as the holder of the token in `token_file`: `GET path`, or `POST path` with
    /// the JSON `body`; the status and the JSON answer.
    pub fn admin(
        &self,
        token_file: &Path,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let token = std::fs::read_to_string(token_file).unwrap();
        let url = self.url(self.admin, path);
        let req = match body {
            Some(b) => reqwest::blocking_client().post(url).json(b),
            None => reqwest::blocking_client().get(url),
        };
        let resp = req.bearer_auth(token.trim()).send().unwrap();
        (resp.status().as_u16(), resp.json().unwrap())
    }

    /// `hoopguard approvals approve ID` as the approver whose token file is `approver`; panics
    /// unless it succeeds; returns what it printed.
    pub fn approve(&self, approver: &Path, id: &str) -> String {
        let config = self.config.to_str().unwrap();
        let args = [
            "approvals",
            "--config",
            config,
            "--token-file",
            approver.to_str().unwrap(),
            "approve",
            id,
        ];
        let (st, out, err) = run_hoopguard(&args, &[]);
        assert!(st.success(), "{err}");
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The approval id in a refusal that says `Approval apr_… is pending`.
pub fn approval_id(message: &str) -> String {
    message
        .split("Approval ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no approval id in {message}"))
        .to_string()
}

/// Runs `hoopguard ARGS` to completion; returns (status, stdout, stderr).
pub fn run_hoopguard(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, Vec<u8>, String) {
    let mut cmd = Command::new(hoopguard());
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hoopguard");
    (
        out.status,
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// moto in server mode with signature checking on (PyPI `moto[server]`), prepared by
/// `tests/peers/moto_setup.py`: the gateway's IAM user and access key, and the role agents get.
pub struct Moto {
    pub port: u16,
    pub gateway_key_id: String,
    pub gateway_secret: String,
    pub role_arn: String,
    _proc: Proc,
}

impl Moto {
    pub fn start(dir: &Path) -> Moto {
        let port = free_port();
        let mut cmd = Command::new(venv().join("bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Exactly the setup script's requests are unauthenticated; every later one is checked.
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "5")
            .stdin(Stdio::null());
        let proc = Proc::spawn(cmd, dir.join("moto.log"));
        // moto spends its no-auth budget on any HTTP request: wait on the port, not on a probe.
        wait_for_port(port, Duration::from_secs(60));
        let out = Command::new(venv().join("bin/python"))
            .arg(root().join("tests/peers/moto_setup.py"))
            .arg(format!("http://127.0.0.1:{port}"))
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .expect("run moto_setup.py");
        assert!(
            out.status.success(),
            "moto setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("setup JSON");
        let s = |k: &str| v[k].as_str().expect(k).to_string();
        Moto {
            port,
            gateway_key_id: s("access_key_id"),
            gateway_secret: s("secret_access_key"),
            role_arn: s("role_arn"),
            _proc: proc,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A second moto without signature checking, for `AssumeRoleWithWebIdentity`: moto answers
    /// an unsigned call to it with 500 when auth is on (see ../shared/testing.md).
    pub fn start_without_auth(dir: &Path) -> (u16, Proc) {
        let port = free_port();
        let mut cmd = Command::new(venv().join("bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .stdin(Stdio::null());
        let proc = Proc::spawn(cmd, dir.join("moto-noauth.log"));
        wait_for_port(port, Duration::from_secs(60));
        (port, proc)
    }

    /// The environment that gives hoopguard the gateway's own credentials.
    pub fn gateway_env(&self) -> [(&str, &str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", self.gateway_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.gateway_secret.as_str()),
        ]
    }
}

/// Where the npm peers are installed (`scripts/test.sh` sets `HOOPGUARD_NODE_PEERS`).
pub fn node_peers() -> PathBuf {
    std::env::var_os("HOOPGUARD_NODE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/peers/node"))
}

/// `@modelcontextprotocol/server-everything` (npm) in streamable-HTTP mode at `/mcp`, bound to
/// loopback by `tests/peers/bind-loopback.cjs`, with only `env` (and PATH) in its environment.
pub struct Everything {
    pub port: u16,
    _proc: Proc,
}

impl Everything {
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Everything {
        let port = free_port();
        let script =
            node_peers().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        assert!(
            script.exists(),
            "{} is missing: run scripts/test.sh",
            script.display()
        );
        let mut cmd = Command::new("node");
        cmd.arg("--require")
            .arg(root().join("tests/peers/bind-loopback.cjs"))
            .arg(script)
            .arg("streamableHttp")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn(cmd, dir.join(format!("everything-{port}.log")));
        wait_for_port(port, Duration::from_secs(30));
        Everything { port, _proc: proc }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

/// Runs `tests/peers/mcp_client.py URL [--token-file F] STEPS…` (the official Python MCP SDK);
/// returns one JSON value per step, or the script's output when it failed.
pub fn mcp_client(
    url: &str,
    token: Option<&Path>,
    steps: &[&str],
) -> Result<Vec<serde_json::Value>, String> {
    let mut args: Vec<std::ffi::OsString> = vec![url.into()];
    if let Some(t) = token {
        args.extend(["--token-file".into(), t.into()]);
    }
    run_mcp_client(args, steps, &[])
}

/// The same client over stdio: it starts `command` (with `env` added) and talks to it on its
/// stdin/stdout.
pub fn mcp_client_stdio(
    command: &[&str],
    env: &[(&str, &str)],
    steps: &[&str],
) -> Result<Vec<serde_json::Value>, String> {
    let env_json: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).into()))
        .collect();
    run_mcp_client(
        vec!["stdio".into()],
        steps,
        &[
            ("MCP_STDIO_COMMAND", serde_json::to_string(command).unwrap()),
            (
                "MCP_STDIO_ENV",
                serde_json::Value::Object(env_json).to_string(),
            ),
        ],
    )
}

fn run_mcp_client(
    args: Vec<std::ffi::OsString>,
    steps: &[&str],
    env: &[(&str, String)],
) -> Result<Vec<serde_json::Value>, String> {
    let mut cmd = Command::new(venv().join("bin/python"));
    cmd.arg(root().join("tests/peers/mcp_client.py"))
        .args(args)
        .args(steps);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run mcp_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect())
}

/// `examples/guarded-rmcp-server` (an rmcp server guarded in-process) on a free port, sharing a
/// gateway's data directory and development issuer.
pub struct RmcpExample {
    pub port: u16,
    proc: Proc,
}

impl RmcpExample {
    pub fn start(dir: &Path, gw: &Gateway, env: &[(&str, &str)]) -> RmcpExample {
        RmcpExample::start_bin(rmcp_example(), &[], dir, gw, env)
    }

    /// `examples/guarded-aws-mcp-server.rs` with `args`.
    pub fn start_aws(args: &[&str], dir: &Path, gw: &Gateway, env: &[(&str, &str)]) -> RmcpExample {
        RmcpExample::start_bin(aws_example(), args, dir, gw, env)
    }

    fn start_bin(
        bin: &Path,
        args: &[&str],
        dir: &Path,
        gw: &Gateway,
        env: &[(&str, &str)],
    ) -> RmcpExample {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--dev-issuer", &gw.url(gw.admin, "/dev")])
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn(cmd, dir.join(format!("rmcp-{port}.log")));
        wait_for_port(port, Duration::from_secs(60));
        RmcpExample { port, proc }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn stop(mut self) {
        self.proc.kill();
    }
}
