//! Real servers for backend tests, started on loopback by the test itself.
//!
//! A test that needs a server starts its own process from the binary on the
//! PATH, so it controls its lifetime (and can kill it to test an outage).
//! If the binary is missing the test fails, saying what to install: it
//! never passes without having run. `scripts/test.sh` installs them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Asks `ready` every `every` until it says yes or `within` has passed;
/// whether it said yes.
fn poll_until(within: Duration, every: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}

/// Kills a server process (SIGKILL: an outage, not a shutdown) and reaps it.
fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn require_binary(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed, and this test needs a real one (CI={}). \
             Install it with `apt-get install {package}`, or run scripts/test.sh, which does.",
            std::env::var("CI").unwrap_or_default()
        )
    })
}

/// A `redis-server` process on a loopback port of its own.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            binary: require_binary("redis-server", "redis-server"),
            port: free_port(),
            child: None,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        if !poll_until(Duration::from_secs(10), Duration::from_millis(20), || self.ping()) {
            panic!("redis-server did not answer PING on port {} within 10 s", self.port);
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown).
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Prometheus server on a loopback port of its own, scraping one target
/// every second, with its storage in a directory removed with it.
pub struct PrometheusServer {
    port: u16,
    child: Child,
    _dir: TempDir,
}

impl PrometheusServer {
    /// Scrapes `target` (`host:port`) at `/-/metrics`.
    pub fn start(target: &str) -> PrometheusServer {
        let binary = require_binary("prometheus", "prometheus");
        let dir = TempDir::new("prometheus");
        let config = dir.path.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: atoll\n    metrics_path: /-/metrics\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus");
        let server = PrometheusServer { port, child, _dir: dir };
        let ready = || get(port, "/-/ready").is_some_and(|(status, _)| status == 200);
        if !poll_until(Duration::from_secs(30), Duration::from_millis(100), ready) {
            panic!("prometheus did not become ready on port {port} within 30 s");
        }
        server
    }

    /// The value of an instant query that yields one number, if it does yet.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = get(self.port, &format!("/api/v1/query?query={encoded}"))?;
        if status != 200 {
            return None;
        }
        // {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.0,"42"]}]}}
        let value = body.split("\"value\":[").nth(1)?;
        let number = value.split(",\"").nth(1)?.split('"').next()?;
        number.parse().ok()
    }

    /// The scrape target's health as Prometheus sees it (`up`).
    pub fn target_up(&self) -> bool {
        self.query("up{job=\"atoll\"}") == Some(1.0)
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory of its own under the system's temporary directory.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("atoll-{prefix}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A plain HTTP/1.1 GET on loopback: the status and the body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    // HTTP/1.0: the answer comes whole, never chunked.
    write!(s, "GET {path} HTTP/1.0\r\nhost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// A `nats-server` with JetStream on a loopback port of its own, its
/// storage in a directory kept across [`restart`](Self::restart)s.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: TempDir,
    tls: bool,
    child: Option<Child>,
}

/// TLS for a server of the test's own: the certificate it presents (and
/// its key, both PEM), and, if given, the CA whose certificates it
/// requires clients to present (`--tlsverify`).
pub struct NatsServerTls {
    pub server: crate::Issued,
    pub client_ca: Option<String>,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        NatsServer::start_with(None)
    }

    /// A server that requires TLS from every client, presenting `tls`.
    pub fn start_tls(tls: &NatsServerTls) -> NatsServer {
        NatsServer::start_with(Some(tls))
    }

    fn start_with(tls: Option<&NatsServerTls>) -> NatsServer {
        let mut server = NatsServer {
            binary: require_binary("nats-server", "nats-server"),
            port: free_port(),
            dir: TempDir::new("nats"),
            tls: tls.is_some(),
            child: None,
        };
        if let Some(tls) = tls {
            std::fs::write(server.dir.path.join("server.pem"), &tls.server.cert).unwrap();
            std::fs::write(server.dir.path.join("server.key"), &tls.server.key).unwrap();
            if let Some(ca) = &tls.client_ca {
                std::fs::write(server.dir.path.join("client-ca.pem"), ca).unwrap();
            }
        }
        server.spawn();
        server
    }

    /// `nats://` (or `tls://` for a TLS server) `127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.binary);
        if self.tls {
            cmd.arg("--tls")
                .arg("--tlscert")
                .arg(self.dir.path.join("server.pem"))
                .arg("--tlskey")
                .arg(self.dir.path.join("server.key"));
            let client_ca = self.dir.path.join("client-ca.pem");
            if client_ca.exists() {
                cmd.arg("--tlsverify").arg("--tlscacert").arg(client_ca);
            }
        }
        let child = cmd
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.path.join("jetstream"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        if !poll_until(Duration::from_secs(10), Duration::from_millis(20), || self.answers()) {
            panic!("nats-server did not answer on port {} within 10 s", self.port);
        }
    }

    /// A NATS server greets every connection with `INFO {...}` (in the
    /// clear, TLS or not); it is ready for durable subscriptions once that
    /// greeting says JetStream is on.
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        let greeting = String::from_utf8_lossy(&buf[..n]);
        greeting.starts_with("INFO ") && greeting.contains("\"jetstream\":true")
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown).
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts it again on the same port, with the same stored streams.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server of its own: `initdb` into a temporary directory, then
/// `postgres` on a free loopback port (its socket in that directory too).
///
/// On Debian the binaries live in `/usr/lib/postgresql/<version>/bin`, off
/// the PATH: the newest there is used, else the PATH's. Neither program
/// runs as root, so under root (as on CI) both run as the `postgres` user
/// the package creates, which then owns the directory. The server runs
/// under a small shell that stops it, and removes its directory, when the
/// test process goes away (its stdin closes): a shared server lives in a
/// `static`, which is never dropped.
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    /// The settings `ssl = on` takes, if TLS is on.
    tls: Option<&'static str>,
    child: Option<Child>,
}

/// TLS for a server of the test's own: the certificate it presents (and
/// its key, both PEM), whether it refuses connections without TLS
/// (`hostssl` lines only in its pg_hba.conf), and whether it asks clients
/// for a certificate.
pub struct PostgresTls {
    pub server: crate::Issued,
    pub tls_only: bool,
    /// The CA (PEM) whose certificates the server takes from clients
    /// (`ssl_ca_file`); with it, every connection over TCP must present
    /// one, and its common name is the database user it logs in as
    /// (`hostssl ... cert` in pg_hba.conf).
    pub client_ca: Option<String>,
}

impl PostgresServer {
    /// One server for the whole test binary: it takes a second or two to
    /// start. Tests keep apart with a database each ([`Self::create_database`]).
    pub fn shared() -> &'static PostgresServer {
        static SHARED: std::sync::OnceLock<PostgresServer> = std::sync::OnceLock::new();
        SHARED.get_or_init(PostgresServer::start)
    }

    /// A server of the caller's own, to stop and start again.
    pub fn start() -> PostgresServer {
        PostgresServer::start_with(None)
    }

    /// A server of the caller's own with `ssl = on`.
    pub fn start_tls(tls: &PostgresTls) -> PostgresServer {
        PostgresServer::start_with(Some(tls))
    }

    fn start_with(tls: Option<&PostgresTls>) -> PostgresServer {
        let bin = postgres_bin();
        let user = running_as_root().then(postgres_user);
        let dir = std::env::temp_dir().join(format!("atoll-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("creating the PostgreSQL directory");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("handing the directory to postgres");
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "-D",
                "data",
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb, user);
        let out = initdb.output().expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(tls) = tls {
            write_tls_files(&dir.join("data"), tls, user);
        }
        let mut server = PostgresServer {
            bin,
            dir,
            port: free_port(),
            user,
            tls: tls.map(|t| {
                if t.client_ca.is_some() {
                    "-c ssl=on -c ssl_ca_file=root.crt"
                } else {
                    "-c ssl=on"
                }
            }),
            child: None,
        };
        server.spawn();
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates an empty database; its URL.
    pub fn create_database(&self, name: &str) -> String {
        // Through the server's Unix socket, which pg_hba.conf trusts
        // whatever it asks of TCP connections (TLS, a client certificate).
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                self.dir.to_str().expect("a UTF-8 temporary directory"),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args([
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                &format!("CREATE DATABASE \"{name}\""),
            ])
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "creating database {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    fn spawn(&mut self) {
        let postgres = self.bin.join("postgres");
        // `read` returns when the test process exits and the pipe closes.
        let script = format!(
            // fsync off: a test server needs no protection from a power cut,
            // and a killed process loses nothing the kernel already has.
            "{} -D data -p {} -k \"$PWD\" -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=200 {} >log 2>&1 & pid=$!; read _; kill -INT $pid; wait $pid; \
             [ \"$1\" = cleanup ] && rm -rf \"$PWD\"",
            postgres.display(),
            self.port,
            // server.crt and server.key in the data directory are the
            // defaults; ssl_ca_file is relative to it too.
            self.tls.unwrap_or("")
        );
        // What a killed server leaves behind would stop the next one: its
        // pid file, and the lock of its socket (a killed process can stay a
        // zombie where nothing reaps orphans, and so look alive).
        let _ = std::fs::remove_file(self.dir.join("data/postmaster.pid"));
        let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
        let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}", self.port)));
        let mut sh = Command::new("sh");
        sh.args(["-c", &script, "sh", "cleanup"])
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut sh, self.user);
        self.child = Some(sh.spawn().expect("starting postgres"));
        let pid_file = self.dir.join("data/postmaster.pid");
        let ready = || {
            std::fs::read_to_string(&pid_file)
                .unwrap_or_default()
                .lines()
                .any(|l| l.trim() == "ready")
        };
        if poll_until(Duration::from_secs(30), Duration::from_millis(20), ready) {
            return;
        }
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        panic!(
            "postgres did not become ready on port {} within 30 s:\n{log}",
            self.port
        );
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown).
    pub fn kill(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap_or_default();
        if let Some(pid) = pid.lines().next().filter(|p| !p.is_empty()) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            // Its backends go with it once they see the postmaster is gone.
            poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
                TcpStream::connect(("127.0.0.1", self.port)).is_err()
            });
        }
        // The shell goes too, before its stdin closes: it would remove the
        // directory, which a restart needs.
        kill_child(&mut self.child);
    }

    /// Starts it again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

/// The server's certificate and key where `ssl = on` looks for them (and
/// the clients' CA where `ssl_ca_file` says), and, for a TLS-only server
/// or one that wants client certificates, a pg_hba.conf that says so.
/// PostgreSQL refuses a key file that another user owns or others can
/// read: under root it is handed to the user the server runs as.
fn write_tls_files(data: &std::path::Path, tls: &PostgresTls, user: Option<(u32, u32)>) {
    use std::os::unix::fs::PermissionsExt;
    let mut files = vec![
        ("server.crt", tls.server.cert.as_str()),
        ("server.key", tls.server.key.as_str()),
    ];
    let hba = match (&tls.client_ca, tls.tls_only) {
        (Some(ca), _) => {
            files.push(("root.crt", ca.as_str()));
            Some("local all all trust\nhostssl all all 127.0.0.1/32 cert\nhostssl all all ::1/128 cert\n")
        }
        (None, true) => {
            Some("local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n")
        }
        (None, false) => None,
    };
    if let Some(hba) = hba {
        files.push(("pg_hba.conf", hba));
    }
    for (name, text) in files {
        let path = data.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("handing a TLS file to postgres");
        }
    }
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let initdb = require_binary("initdb", "postgresql");
    let bin = initdb.canonicalize().unwrap_or(initdb);
    bin.parent().expect("initdb is in a directory").to_path_buf()
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of `postgres`, which the Debian package creates.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres")).then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
        })
        .unwrap_or_else(|| {
            panic!(
                "running as root, and PostgreSQL refuses to; there is no `postgres` user to run it as. \
                 Install it with `apt-get install postgresql` (which creates the user), or run scripts/test.sh"
            )
        })
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        cmd.gid(gid).uid(uid);
    }
}
