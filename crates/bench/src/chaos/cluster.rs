//! A private PostgreSQL cluster the chaos harness may restart: `initdb` into a directory of
//! its own and `pg_ctl start` on a free port of 127.0.0.1, so that stopping, crashing and
//! restarting it mid-run touches nothing else (the machine's shared server keeps serving the
//! other tests).
//!
//! PostgreSQL refuses to run as root: when this process is root, every server command runs
//! as the `postgres` user (`runuser -u postgres --`), and the directory is handed to it.
//! The binaries come from `EMAG_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` (Debian
//! and Ubuntu), else `pg_config --bindir`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::process::Command;
use tokio::time::Instant;

/// How `pg_ctl` stops the server (its `-m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopMode {
    /// Sessions are ended (their transactions rolled back) and the server shuts down
    /// cleanly: `terminating connection due to administrator command`.
    Fast,
    /// The server quits at once, without a shutdown checkpoint: a crash, recovered from the
    /// WAL at the next start.
    Immediate,
}

impl StopMode {
    pub fn as_arg(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// The server's own user, when this process is root.
const SERVER_USER: &str = "postgres";
/// The database the harness fills (created at start).
pub const DATABASE: &str = "emag_chaos";
/// How long `pg_ctl` may wait for a start or stop.
const PG_CTL_WAIT_SECS: &str = "60";

/// A running private cluster. [`PgCluster::destroy`] stops it and removes its directory;
/// dropping it without that leaves both (a harness keeps them when a check fails).
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_server_user: bool,
}

impl PgCluster {
    /// `initdb` into a new directory of the system's temporary directory (which every user
    /// can reach) and starts the server on a free port with a database [`DATABASE`]. About a
    /// second on our machines.
    pub async fn create() -> anyhow::Result<PgCluster> {
        let bin = find_bin()?;
        let as_server_user = rustix::process::geteuid().is_root();
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("emag-chaos-pg-{}-{nonce:08x}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        if as_server_user {
            hand_to_server_user(&dir).await?;
        }
        let mut cluster = PgCluster {
            bin,
            dir,
            port: 0,
            as_server_user,
        };
        let data = cluster.data_dir();
        cluster
            .run(
                "initdb",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
            .await?;
        // A free port now; another process could take it before the server binds, so a
        // failed start tries another.
        let mut last = None;
        for _ in 0..3 {
            cluster.port = free_port()?;
            match cluster.start().await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e.context("the private PostgreSQL cluster did not start"));
        }
        cluster.create_database().await?;
        Ok(cluster)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The URL of [`DATABASE`], directly (not through any proxy).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The cluster's directory (data and the server's log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log (kept in the cluster's directory).
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start(&self) -> anyhow::Result<()> {
        let data = self.data_dir().display().to_string();
        let log = self.log().display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=60",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                PG_CTL_WAIT_SECS,
                "start",
            ],
        )
        .await
    }

    /// Stops the server (`mode`), waiting until it is down; returns how long it took.
    pub async fn stop(&self, mode: StopMode) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let data = self.data_dir().display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-m",
                mode.as_arg(),
                "-w",
                "-t",
                PG_CTL_WAIT_SECS,
                "stop",
            ],
        )
        .await?;
        Ok(started.elapsed())
    }

    /// Stops (`mode`) and starts the server again, waiting until it accepts connections;
    /// returns how long it was away.
    pub async fn restart(&self, mode: StopMode) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.stop(mode).await?;
        self.start().await?;
        Ok(started.elapsed())
    }

    /// Stops the server at once and removes its directory.
    pub async fn destroy(self) {
        if let Err(e) = self.stop(StopMode::Immediate).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot stop the private PostgreSQL cluster");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "cannot remove the private PostgreSQL cluster");
        }
    }

    async fn create_database(&self) -> anyhow::Result<()> {
        use sqlx::{Connection, Executor};
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .context("cannot connect to the private PostgreSQL cluster")?;
        conn.execute(format!("CREATE DATABASE {DATABASE}").as_str())
            .await
            .context("cannot create the harness's database")?;
        let _closed = conn.close().await;
        Ok(())
    }

    /// Runs one of the server's programs (as the server's user when we are root).
    async fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_server_user {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {}", exe.display()))?;
        if !out.status.success() {
            bail!(
                "{program} {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                crate::proc::tail(&self.log(), 10)
            );
        }
        Ok(())
    }
}

/// The directory of `initdb` and `pg_ctl`.
fn find_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("EMAG_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success());
    match out {
        Some(o) => Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
        None => bail!(
            "no PostgreSQL server programs found (initdb, pg_ctl): install PostgreSQL or set \
             EMAG_PG_BIN to their directory"
        ),
    }
}

/// Gives `dir` to the server's user (PostgreSQL refuses to run as root).
async fn hand_to_server_user(dir: &Path) -> anyhow::Result<()> {
    let out = Command::new("chown")
        .arg(format!("{SERVER_USER}:"))
        .arg(dir)
        .output()
        .await
        .context("cannot run chown")?;
    if !out.status.success() {
        bail!(
            "cannot give {} to the user {SERVER_USER} (PostgreSQL does not run as root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("cannot find a free port for the private PostgreSQL cluster")?;
    Ok(listener.local_addr()?.port())
}
