//! The server under test: starts the release `alonzo` binary on a free loopback port with a
//! temporary data directory and the bench's own credentials, waits until
//! `GET /_alonzo/health` answers 200, and stops it with SIGTERM by its PID (SIGKILL after a
//! grace period) when dropped, so an error or a panic never leaves it running. A Ctrl-C or
//! SIGTERM to the bench, or its watchdog, stops it too (see [`guard_run`]).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Access key the bench's server accepts (any well-formed pair works; it never leaves the
/// machine).
pub(crate) const ACCESS_KEY_ID: &str = "AKIABENCHALONZO00001";
/// Secret of [`ACCESS_KEY_ID`].
pub(crate) const SECRET_ACCESS_KEY: &str = "bench-secret-key-not-for-production-use-0000";

/// How long the server may take to answer its health check after start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERM'd server may take to shut down before it is SIGKILLed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// PIDs of the running servers (the measured one and, during the cold-start phase, the
/// baseline, or during the keep-alive phase, its two) for the signal handler (0 = none).
static SERVER_PIDS: [AtomicI32; 3] = [AtomicI32::new(0), AtomicI32::new(0), AtomicI32::new(0)];

fn remember_pid(pid: i32) {
    for slot in &SERVER_PIDS {
        if slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            return;
        }
    }
}

fn forget_pid(pid: i32) {
    for slot in &SERVER_PIDS {
        let _ = slot.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}
/// Set when the bench got SIGINT or SIGTERM, or its watchdog fired.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the bench is being stopped by a signal or its watchdog (errors that follow are
/// its echo).
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A running `alonzo serve`; stopping it is the guard's `Drop`.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    log_path: PathBuf,
    // Dropped after the child is stopped (field order does not matter: `Drop` stops first).
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `bin` with extra `serve` arguments and waits until it is healthy; retries once
    /// on a different port if the first one was taken between probing and binding.
    pub(crate) fn start_with(bin: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!("server binary {} not found: build it with `cargo build --release --bin alonzo` or set ALONZO_BIN", bin.display());
        }
        let mut last_error = None;
        for _ in 0..3 {
            match Self::start_once(bin, extra) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("three attempts were made"))
    }

    fn start_once(bin: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("alonzo-bench-")
            .tempdir()
            .context("creating a temporary data directory")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(bin)
            .args(["serve", "--metrics-listen", "off", "--listen", &addr.to_string(), "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env_remove("ALONZO_LISTEN")
            .env_remove("ALONZO_DATA_DIR")
            .env_remove("ALONZO_REGION")
            .env_remove("ALONZO_ACCOUNT_ID")
            .env_remove("ALONZO_CONCURRENCY_LIMIT")
            .env_remove("ALONZO_IDLE_TIMEOUT")
            .env("ALONZO_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("ALONZO_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env(
                "RUST_LOG",
                std::env::var("ALONZO_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        remember_pid(pid_of(&child).as_raw());
        let mut server = Self { child, addr, log_path, _dir: dir };
        server.wait_healthy()?;
        Ok(server)
    }

    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited during start-up ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            if health_ok(self.addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "the server did not become healthy within {START_TIMEOUT:?}; its log:\n{}",
            self.log_tail()
        )
    }

    /// `Err` (with its log) if the server is no longer running, e.g. it crashed mid-run.
    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                bail!("the server exited during the run ({status}); its log:\n{}", self.log_tail())
            }
        }
    }

    /// The last lines of the server's stderr, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server and returns how long it took to exit after SIGTERM (`None`: it had
    /// already exited, or did not within `STOP_TIMEOUT` and was SIGKILLed).
    pub(crate) fn stop(&mut self) -> Option<Duration> {
        let pid = pid_of(&self.child);
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            forget_pid(pid.as_raw());
            return None;
        }
        let _ = kill(pid, Signal::SIGTERM);
        let signalled = Instant::now();
        while signalled.elapsed() < STOP_TIMEOUT {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                forget_pid(pid.as_raw());
                return Some(signalled.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench: the server did not stop within {STOP_TIMEOUT:?} of SIGTERM; sending SIGKILL to {pid}");
        let _ = kill(pid, Signal::SIGKILL);
        let _ = self.child.wait();
        forget_pid(pid.as_raw());
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // `ALONZO_BENCH_KEEP_LOGS=<dir>`: the server's log outlives its data directory, for
        // finding why a request failed.
        if let Some(dir) = std::env::var_os("ALONZO_BENCH_KEEP_LOGS") {
            let dir = PathBuf::from(dir);
            let kept = dir.join(format!("server-{}.log", self.child.id()));
            if let Err(e) =
                std::fs::create_dir_all(&dir).and_then(|()| std::fs::copy(&self.log_path, &kept))
            {
                eprintln!("bench: keeping the server's log in {}: {e}", kept.display());
            }
        }
    }
}

impl Server {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).expect("PIDs fit in i32"))
}

/// A blocking one-shot health probe (a fresh connection, `Connection: close`).
fn health_ok(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /_alonzo/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Stops the server (SIGTERM by PID) and exits when the bench itself gets SIGINT or SIGTERM,
/// which would otherwise skip every `Drop`, or when the whole run exceeds `watchdog` (a hung
/// server must not hang the bench).
pub(crate) fn guard_run(watchdog: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Register before returning, so a signal arriving right after start is caught.
    let (mut int, mut term) = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::Builder::new().name("bench-guard".into()).spawn(move || {
        let (why, code) = runtime.block_on(async {
            tokio::select! {
                _ = int.recv() => ("interrupted", 130),
                _ = term.recv() => ("terminated", 143),
                () = tokio::time::sleep(watchdog) => ("the run exceeded its time limit", 2),
            }
        });
        INTERRUPTED.store(true, Ordering::SeqCst);
        let pids: Vec<i32> =
            SERVER_PIDS.iter().map(|p| p.load(Ordering::SeqCst)).filter(|p| *p > 0).collect();
        if pids.is_empty() {
            eprintln!("bench: {why}");
        } else {
            for pid in &pids {
                eprintln!("bench: {why}; stopping the server (PID {pid})");
                let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        std::process::exit(code);
    })?;
    Ok(())
}
