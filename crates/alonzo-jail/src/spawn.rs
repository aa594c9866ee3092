//! The server-side half of starting a sandbox: the `JailSpec` (what to build), its validation
//! and wire framing, `spawn` (start `exe __jail`, hand it the spec, receive the Runtime API
//! listener) and `main_if_jail` (the dispatch the binary's `main` calls first).
//!
//! `spawn` is safe to call from any thread of a multithreaded server: it only forks and execs
//! through `std::process::Command`, and the one line of code that runs between them moves the
//! spec socket to fd 3. Everything privileged happens in the re-executed process.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::socket::{send, MsgFlags};

use crate::error::JailError;
use crate::net::JailNetwork;
use crate::process::JailProcess;

/// The hidden subcommand under which the binary runs the jail sequence.
pub const JAIL_ARG: &str = "__jail";

/// How long `spawn` waits for the jail process to hand over the listener before killing it.
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The descriptor number on which the jail process receives its spec.
pub(crate) const SPEC_FD: RawFd = 3;

/// The largest spec the jail process accepts, so a corrupt length cannot make it allocate
/// without bound.
pub(crate) const MAX_SPEC_BYTES: u32 = 16 << 20;

/// Everything the jail process needs to build one sandbox and start its program.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JailSpec {
    /// An existing, empty host directory. The sandbox's tmpfs root is mounted over it inside the
    /// sandbox's private mount namespace only, so the host never sees that mount and many
    /// sandboxes can share the same directory.
    pub root_dir: PathBuf,
    /// Host paths bind-mounted into the sandbox, in order.
    pub binds: Vec<Bind>,
    /// Size of the private writable `/tmp` tmpfs; writes past it fail with ENOSPC.
    pub tmp_size_mb: u64,
    /// The sandbox's hostname (1 to 64 bytes).
    pub hostname: String,
    /// The host uid and gid that id 0 inside maps to; ids `[uid_base, uid_base + 65536)` are
    /// mapped. Must be at least 65536 so sandbox ids never coincide with host system ids.
    pub uid_base: u32,
    /// The uid inside the sandbox that the program runs as (Lambda: 993).
    pub run_as_uid: u32,
    /// The gid inside the sandbox that the program runs as (Lambda: 990).
    pub run_as_gid: u32,
    /// `cgroup.procs` files the jail process writes itself into before it creates namespaces,
    /// so that everything inside is accounted (see `SandboxCgroup::procs_files`).
    pub cgroup_procs: Vec<PathBuf>,
    /// The program and its arguments; `argv[0]` is an absolute path inside the sandbox (no
    /// `PATH` search).
    pub argv: Vec<String>,
    /// The complete environment of the program; nothing is inherited.
    pub env: Vec<(String, String)>,
    /// The program's working directory inside the sandbox, e.g. `/var/task`.
    pub cwd: String,
    /// RLIMIT_NOFILE (soft and hard) of the program.
    pub nofile: u64,
    /// RLIMIT_NPROC (soft and hard) of the program, counted per user namespace.
    pub nproc: u64,
    /// The port of the TCP listener created on 127.0.0.1 inside the sandbox's network
    /// namespace and handed to the server (Lambda: 9001).
    pub runtime_api_port: u16,
    /// Set for a sandbox built ahead of its function ([`Prepared::build_ahead`]): what is left
    /// for the [`Assignment`] that completes it.
    #[serde(default)]
    pub deferred: Option<Deferred>,
    /// The sandbox's external interface; without one the sandbox has only loopback.
    #[serde(default)]
    pub network: Option<JailNetwork>,
}

/// What a sandbox built ahead of demand leaves open until its [`Assignment`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deferred {
    /// Mount points created empty on the sandbox's root; only the assignment's binds may be
    /// attached there, and only there.
    pub targets: Vec<String>,
    /// If set, the spec's program starts at once (a pre-started runtime): its descriptor 3 is
    /// a pipe that receives the assignment's `message` and is then closed. Otherwise the program is
    /// the assignment's, started when the assignment arrives.
    pub start_program: bool,
    /// With `start_program`: the program is not executed but continues the interpreter of
    /// the launcher that forked this jail process (`Launcher::prepare`; see `launcher.rs`),
    /// which must have been started with the spec's argv and environment.
    #[serde(default)]
    pub continue_program: bool,
    /// With `continue_program`: before it waits, the program copies every page it still
    /// shares with the launcher, so that its function's initialisation takes no copy-on-write
    /// faults (for sandboxes that wait to be assigned; one assigned at once skips it, as
    /// most of those pages are never written).
    #[serde(default)]
    pub copy_shared_pages: bool,
}

/// The program of an assignment (for a sandbox built without `start_program`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Program {
    /// As [`JailSpec::argv`].
    pub argv: Vec<String>,
    /// As [`JailSpec::env`].
    pub env: Vec<(String, String)>,
    /// As [`JailSpec::cwd`].
    pub cwd: String,
}

/// What completes a sandbox built ahead of demand: the function's binds (each at one of the
/// deferred targets), its `/tmp` size, and its program or the message for the pre-started one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assignment {
    /// Attached read-only (or writable, as each says) at deferred targets.
    pub binds: Vec<Bind>,
    /// The new size of `/tmp` (a remount: the pre-started program's files there stay).
    pub tmp_size_mb: u64,
    /// The program to start, required without `start_program` and refused with it.
    pub program: Option<Program>,
    /// Written to the pre-started program's descriptor 3 (with `start_program`).
    pub message: Vec<u8>,
}

/// What the server sends on the spec socket: a whole spec, or first a `Prepare` (join these
/// cgroups now and wait) and later the spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Frame {
    /// Join the cgroups, then wait for the spec.
    Prepare {
        /// `cgroup.procs` files to join.
        cgroup_procs: Vec<PathBuf>,
    },
    /// Build the sandbox (boxed: a spec is much larger than a `Prepare`).
    Spec(Box<JailSpec>),
    /// Complete a sandbox built with `deferred`.
    Assign(Assignment),
}

/// A jail process started ahead of demand: it has joined its cgroups (the slow part of a
/// start on cgroup v1, where a migration waits for an RCU grace period) and waits for its
/// spec. Dropping it kills the process.
#[derive(Debug)]
pub struct Prepared {
    child: Option<JailProcess>,
    server_end: UnixStream,
    /// Set once `build_ahead` sent a deferred spec.
    deferred: Option<Deferred>,
}

/// Starts `exe __jail` and has it join `cgroup_procs` now; [`Prepared::launch`] later hands
/// it the rest of the spec. Does not wait for the join.
pub fn prepare(exe: &Path, cgroup_procs: &[PathBuf]) -> Result<Prepared, JailError> {
    check_cgroup_procs(cgroup_procs)?;
    let (child, server_end) = start(exe)?;
    Prepared::started(child, server_end, cgroup_procs)
}

pub(crate) fn check_cgroup_procs(cgroup_procs: &[PathBuf]) -> Result<(), JailError> {
    match cgroup_procs.iter().find(|p| !p.is_absolute()) {
        Some(path) => Err(JailError::InvalidSpec(format!(
            "cgroup.procs path {} is not absolute",
            path.display()
        ))),
        None => Ok(()),
    }
}

impl Prepared {
    /// Has the just-started jail process `child` (spec socket `server_end`) join
    /// `cgroup_procs`.
    pub(crate) fn started(
        child: JailProcess,
        server_end: UnixStream,
        cgroup_procs: &[PathBuf],
    ) -> Result<Prepared, JailError> {
        let payload = encode_frame(&Frame::Prepare { cgroup_procs: cgroup_procs.to_vec() })?;
        let mut prepared = Prepared { child: Some(child), server_end, deferred: None };
        send_all(&prepared.server_end, &payload)?;
        if prepared.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).is_some() {
            return Err(JailError::Protocol("the prepared jail process exited".to_owned()));
        }
        Ok(prepared)
    }

    /// Whether the waiting process is still alive.
    pub fn is_alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Hands over `spec` (its `cgroup_procs` are ignored: the process joined its cgroups when
    /// prepared) and returns once the Runtime API listener is back, as [`spawn`] does.
    pub fn launch(mut self, spec: &JailSpec) -> Result<Jail, JailError> {
        spec.validate()?;
        if spec.deferred.is_some() {
            return Err(JailError::InvalidSpec("launch takes a spec without deferred".into()));
        }
        let payload = encode_frame(&Frame::Spec(Box::new(spec.clone())))?;
        let Some(child) = self.child.take() else {
            return Err(JailError::Protocol("the prepared jail was already used".to_owned()));
        };
        finish(child, &self.server_end, &payload)
    }
}

impl Prepared {
    /// Has the waiting process build the whole sandbox for `spec` now (namespaces, mounts,
    /// pivot, and with `start_program` the program itself), leaving its `deferred` part for
    /// [`Prepared::assign`]. Does not wait.
    pub fn build_ahead(&mut self, spec: &JailSpec) -> Result<(), JailError> {
        spec.validate()?;
        let Some(deferred) = &spec.deferred else {
            return Err(JailError::InvalidSpec("build_ahead needs a deferred spec".into()));
        };
        if self.deferred.is_some() || self.child.is_none() {
            return Err(JailError::Protocol("the prepared jail was already given a spec".into()));
        }
        send_all(&self.server_end, &encode_frame(&Frame::Spec(Box::new(spec.clone())))?)?;
        self.deferred = Some(deferred.clone());
        Ok(())
    }

    /// Completes a sandbox built by [`Prepared::build_ahead`] and returns it once its
    /// binds are attached (and its program started or told), as [`spawn`] does.
    pub fn assign(mut self, assignment: &Assignment) -> Result<Jail, JailError> {
        let Some(deferred) = self.deferred.take() else {
            return Err(JailError::Protocol("assign needs a sandbox built ahead".into()));
        };
        assignment.validate(&deferred)?;
        let payload = encode_frame(&Frame::Assign(assignment.clone()))?;
        let Some(child) = self.child.take() else {
            return Err(JailError::Protocol("the prepared jail was already used".to_owned()));
        };
        let jail = finish(child, &self.server_end, &payload)?;
        // The jail process acknowledges once everything is attached; a sandbox that died
        // while waiting (or failed to attach) says so here, not in the function's first
        // invocation.
        let mut ack = [0u8; 1];
        match (&self.server_end).read_exact(&mut ack) {
            Ok(()) if ack[0] == ASSIGNED => Ok(jail),
            _ => Err(collect_failure(
                jail.child,
                JailError::Protocol("the sandbox built ahead did not take its assignment".into()),
            )),
        }
    }
}

/// The byte the jail process sends when an assignment is complete.
pub(crate) const ASSIGNED: u8 = b'A';

impl Assignment {
    /// Checks the assignment against what its sandbox left open.
    pub fn validate(&self, deferred: &Deferred) -> Result<(), JailError> {
        let bad = |msg: String| Err(JailError::InvalidSpec(msg));
        for bind in &self.binds {
            if !bind.source.is_absolute() {
                return bad(format!("bind source {} is not absolute", bind.source.display()));
            }
            if !deferred.targets.contains(&bind.target) {
                return bad(format!("{} is not a deferred target", bind.target));
            }
        }
        if self.tmp_size_mb == 0 {
            return bad("tmp_size_mb must be positive".to_owned());
        }
        match (&self.program, deferred.start_program) {
            (Some(program), false) => check_program(&program.argv, &program.env, &program.cwd),
            (None, true) => Ok(()),
            (Some(_), true) => bad("the program has started already".to_owned()),
            (None, false) => bad("the assignment has no program".to_owned()),
        }
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A host path bind-mounted into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bind {
    /// The host path (file or directory; symlinks are followed).
    pub source: PathBuf,
    /// The absolute path inside the sandbox. It is created (as a directory or an empty file,
    /// like the source) on the sandbox's own tmpfs root, never inside another bind.
    pub target: String,
    /// Whether the sandbox may write through it. Read-only binds are read-only recursively,
    /// including mounts below the source.
    pub writable: bool,
}

/// A started sandbox, as returned to the server.
#[derive(Debug)]
pub struct Jail {
    /// The jail process. Its exit status is the program's: its exit code, or 128 + signal if a
    /// signal ended it. If the jail process itself is killed (`child.kill()`, `kill_all`), the
    /// status is that signal instead; `exit_code` maps both forms to one number. Killing the
    /// jail process kills the whole sandbox (each stage has a parent-death signal).
    /// SIGTERM and SIGINT sent to it are forwarded to the program.
    pub child: JailProcess,
    /// The program's stdout.
    pub stdout: std::process::ChildStdout,
    /// The program's stderr; set-up failures after the hand-over are reported here too.
    pub stderr: std::process::ChildStderr,
    /// The listener bound to 127.0.0.1:`runtime_api_port` in the sandbox's network namespace.
    /// It is in blocking mode; call `set_nonblocking(true)` before giving it to tokio.
    pub runtime_api: std::net::TcpListener,
}

/// Starts `exe __jail`, sends it `spec` over a private socket on fd 3, and returns once the
/// jail process has handed back the Runtime API listener. Set-up steps that come after the
/// hand-over (mounts, privilege drop, exec) report failure as exit status 125 (127 if the exec
/// itself fails) with a message on `stderr`.
///
/// Blocks for a few milliseconds (`posix_spawn` of `exe`, then the jail's user, mount, PID and
/// network namespace set-up; about 3 ms on the project's machines, more if a cgroup migration
/// has to wait for an RCU grace period); call it from a blocking thread
/// (`tokio::task::spawn_blocking`) in async code.
pub fn spawn(exe: &Path, spec: &JailSpec) -> Result<Jail, JailError> {
    spec.validate()?;
    let payload = encode_frame(&Frame::Spec(Box::new(spec.clone())))?;
    let (child, server_end) = start(exe)?;
    finish(child, &server_end, &payload)
}

/// Starts `exe __jail` with the jail's end of a new socket as its standard input (the jail
/// moves it to fd 3 and takes `/dev/null` as stdin). Passing it as stdin needs no code between
/// fork and exec, so std starts the jail with `posix_spawn` (a `vfork`-style clone that shares
/// the server's memory until the exec) instead of `fork`, which copied the page tables of the
/// whole server and made it take copy-on-write faults afterwards, for every sandbox.
fn start(exe: &Path) -> Result<(JailProcess, UnixStream), JailError> {
    let (server_end, jail_end) = UnixStream::pair()
        .map_err(|source| JailError::Io { step: "create the spec socket".to_owned(), source })?;
    let mut command = Command::new(exe);
    command
        .arg(JAIL_ARG)
        .env_clear()
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(jail_end)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command
        .spawn()
        .map_err(|source| JailError::Start { exe: exe.display().to_string(), source })?;
    // Closes our copy of the jail's end.
    drop(command);
    Ok((JailProcess::from(child), server_end))
}

/// Sends the spec frame and collects the started sandbox.
fn finish(
    mut child: JailProcess,
    server_end: &UnixStream,
    payload: &[u8],
) -> Result<Jail, JailError> {
    match hand_over(server_end, payload) {
        Ok(listener) => match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => {
                Ok(Jail { child, stdout, stderr, runtime_api: listener })
            }
            _ => Err(collect_failure(
                child,
                JailError::Protocol("stdout and stderr were not piped".to_owned()),
            )),
        },
        Err(err) => Err(collect_failure(child, err)),
    }
}

/// Runs the jail sequence and exits if this process was started as `exe __jail`; otherwise
/// returns at once. Call it first thing in `main`, before any thread or async runtime exists
/// (the jail sequence forks, which is only sound in a single-threaded process; it checks).
/// On a set-up failure the process prints a message on stderr and exits with status 125.
pub fn main_if_jail() {
    let mode = std::env::args_os().nth(1);
    if mode.as_deref() == Some(std::ffi::OsStr::new(JAIL_ARG)) {
        crate::sequence::run_and_exit();
    }
    if std::env::var_os(crate::launcher::LAUNCHER_ENV).is_some() {
        crate::launcher::main_and_exit();
    }
}

/// The program's exit code from the jail process's exit status: the code itself, or
/// 128 + signal number if the jail process was killed by a signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 255,
    }
}

impl JailSpec {
    /// Checks everything that can be checked without touching the system, so that a bad spec
    /// fails in the server with a clear message instead of as exit status 125.
    pub fn validate(&self) -> Result<(), JailError> {
        let bad = |msg: String| Err(JailError::InvalidSpec(msg));
        if !self.root_dir.is_absolute() {
            return bad(format!("root_dir {} is not absolute", self.root_dir.display()));
        }
        if self.uid_base < ID_RANGE || self.uid_base > u32::MAX - ID_RANGE {
            return bad(format!("uid_base {} is not in [65536, 2^32 - 65536]", self.uid_base));
        }
        if self.run_as_uid >= ID_RANGE || self.run_as_gid >= ID_RANGE {
            return bad(
                "run_as_uid and run_as_gid must be below 65536 (the mapped range)".to_owned()
            );
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 || self.hostname.contains('\0') {
            return bad(format!("hostname {:?} must be 1 to 64 bytes without NUL", self.hostname));
        }
        if self.tmp_size_mb == 0 || self.nofile == 0 || self.nproc == 0 {
            return bad("tmp_size_mb, nofile and nproc must be positive".to_owned());
        }
        check_program(&self.argv, &self.env, &self.cwd)?;
        if let Some(path) = self.cgroup_procs.iter().find(|p| !p.is_absolute()) {
            return bad(format!("cgroup.procs path {} is not absolute", path.display()));
        }
        if let Some(network) = &self.network {
            network.validate().map_err(JailError::InvalidSpec)?;
        }
        for bind in &self.binds {
            if !bind.source.is_absolute() {
                return bad(format!("bind source {} is not absolute", bind.source.display()));
            }
            check_sandbox_path(&bind.target)
                .map_err(|why| JailError::InvalidSpec(format!("bind target: {why}")))?;
        }
        if let Some(deferred) = &self.deferred {
            for target in &deferred.targets {
                check_sandbox_path(target)
                    .map_err(|why| JailError::InvalidSpec(format!("deferred target: {why}")))?;
                if self.binds.iter().any(|b| &b.target == target) {
                    return bad(format!("{target} is both bound and deferred"));
                }
            }
            if deferred.continue_program && !deferred.start_program {
                return bad("continue_program needs start_program".to_owned());
            }
        }
        Ok(())
    }
}

/// Checks a program's argv, environment and working directory.
fn check_program(argv: &[String], env: &[(String, String)], cwd: &str) -> Result<(), JailError> {
    let bad = |msg: String| Err(JailError::InvalidSpec(msg));
    match argv.first() {
        Some(program) if program.starts_with('/') => {}
        _ => return bad("argv[0] must be an absolute path inside the sandbox".to_owned()),
    }
    if argv.iter().chain([&cwd.to_owned()]).any(|s| s.contains('\0')) {
        return bad("argv and cwd must not contain NUL".to_owned());
    }
    for (key, value) in env {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return bad(format!("environment variable {key:?} is malformed"));
        }
    }
    if !cwd.starts_with('/') {
        return bad(format!("cwd {cwd:?} is not absolute"));
    }
    Ok(())
}

/// The number of ids mapped into each sandbox's user namespace.
pub(crate) const ID_RANGE: u32 = 65536;

/// Paths the jail sequence mounts itself; binds may not cover them.
const RESERVED: [&str; 3] = ["/proc", "/dev", "/tmp"];

/// Checks that `path` is absolute, normalised (no empty, `.` or `..` components) and not the
/// root or a reserved mount.
fn check_sandbox_path(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("{path:?} is not absolute"));
    };
    if rest.is_empty()
        || path.contains('\0')
        || rest.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("{path:?} must be a normalised path other than /"));
    }
    if let Some(reserved) =
        RESERVED.iter().find(|r| path == **r || path.starts_with(&format!("{r}/")))
    {
        return Err(format!("{path:?} is at or below {reserved}, which the sandbox mounts itself"));
    }
    Ok(())
}

/// The wire form of a frame: a little-endian `u32` length, then that many bytes of JSON.
pub(crate) fn encode_frame(frame: &Frame) -> Result<Vec<u8>, JailError> {
    let json = serde_json::to_vec(frame)
        .map_err(|e| JailError::Protocol(format!("encode the spec: {e}")))?;
    let len =
        u32::try_from(json.len()).ok().filter(|len| *len <= MAX_SPEC_BYTES).ok_or_else(|| {
            JailError::InvalidSpec(format!("the spec is {} bytes, over the limit", json.len()))
        })?;
    let mut out = Vec::with_capacity(json.len() + 4);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Reads one frame in the wire form of `encode_frame`.
pub(crate) fn decode_frame(reader: &mut impl Read) -> Result<Frame, JailError> {
    let io = |source| JailError::Io { step: "read the spec".to_owned(), source };
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).map_err(io)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_SPEC_BYTES {
        return Err(JailError::Protocol(format!("spec length {len} is over the limit")));
    }
    let mut json = vec![0u8; len as usize];
    reader.read_exact(&mut json).map_err(io)?;
    let frame = serde_json::from_slice(&json)
        .map_err(|e| JailError::Protocol(format!("decode the spec: {e}")));
    crate::scrub::bytes(json);
    frame
}

/// Sends all of `payload`; a peer that already died is not an error here (its exit status
/// and stderr tell why, later).
fn send_all(server_end: &UnixStream, payload: &[u8]) -> Result<(), JailError> {
    let mut sent = 0;
    while sent < payload.len() {
        // MSG_NOSIGNAL: if the jail process already died, fail with EPIPE instead of SIGPIPE.
        match send(server_end.as_raw_fd(), &payload[sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => break,
            Err(source) => return Err(JailError::Sys { step: "send the spec".to_owned(), source }),
        }
    }
    Ok(())
}

/// Sends the spec and waits (bounded by `SPAWN_TIMEOUT`) for the listener.
fn hand_over(server_end: &UnixStream, payload: &[u8]) -> Result<std::net::TcpListener, JailError> {
    send_all(server_end, payload)?;
    server_end
        .set_read_timeout(Some(SPAWN_TIMEOUT))
        .map_err(|source| JailError::Io { step: "set the spawn timeout".to_owned(), source })?;
    match crate::fdpass::recv_fd(server_end) {
        Ok(fd) => Ok(std::net::TcpListener::from(fd)),
        Err(JailError::Sys { source: nix::errno::Errno::EAGAIN, .. }) => {
            Err(JailError::Timeout(SPAWN_TIMEOUT))
        }
        Err(err) => Err(err),
    }
}

/// Turns a failed hand-over into the most useful error: the jail process's own message and
/// status if it exited, otherwise `err` after killing it.
fn collect_failure(mut child: JailProcess, err: JailError) -> JailError {
    if !matches!(err, JailError::Protocol(_)) {
        // The jail process is alive but misbehaving (timeout, socket error): stop it.
        let _ = child.kill();
    }
    let mut message = String::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(64 << 10).read_to_string(&mut message);
    }
    match child.wait() {
        Ok(status) if !message.trim().is_empty() || status.code().is_some() => {
            JailError::Setup { status, message: message.trim().to_owned() }
        }
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> JailSpec {
        JailSpec {
            root_dir: "/var/lib/alonzo/root".into(),
            binds: vec![Bind {
                source: "/srv/fn/code".into(),
                target: "/var/task".to_owned(),
                writable: false,
            }],
            tmp_size_mb: 512,
            hostname: "sandbox".to_owned(),
            uid_base: 1 << 20,
            run_as_uid: 993,
            run_as_gid: 990,
            cgroup_procs: vec!["/sys/fs/cgroup/x/cgroup.procs".into()],
            argv: vec!["/var/runtime/bootstrap".to_owned()],
            env: vec![("AWS_LAMBDA_RUNTIME_API".to_owned(), "127.0.0.1:9001".to_owned())],
            cwd: "/var/task".to_owned(),
            nofile: 1024,
            nproc: 1024,
            runtime_api_port: 9001,
            deferred: None,
            network: None,
        }
    }

    #[test]
    fn spec_survives_the_wire() {
        let frame = Frame::Spec(Box::new(sample()));
        let bytes = encode_frame(&frame).unwrap();
        assert_eq!(u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len() - 4);
        assert_eq!(decode_frame(&mut &bytes[..]).unwrap(), frame);
        let prepare = Frame::Prepare { cgroup_procs: vec!["/sys/fs/cgroup/x/cgroup.procs".into()] };
        let bytes = encode_frame(&prepare).unwrap();
        assert_eq!(decode_frame(&mut &bytes[..]).unwrap(), prepare);
    }

    #[test]
    fn oversized_and_truncated_frames_are_rejected() {
        let mut bytes = (MAX_SPEC_BYTES + 1).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        assert!(matches!(decode_frame(&mut &bytes[..]), Err(JailError::Protocol(_))));
        let bytes = encode_frame(&Frame::Spec(Box::new(sample()))).unwrap();
        assert!(matches!(decode_frame(&mut &bytes[..bytes.len() - 1]), Err(JailError::Io { .. })));
    }

    #[track_caller]
    fn check_invalid(edit: impl FnOnce(&mut JailSpec), expected: &str) {
        let mut spec = sample();
        edit(&mut spec);
        match spec.validate() {
            Err(JailError::InvalidSpec(msg)) => {
                assert!(msg.contains(expected), "{msg:?} lacks {expected:?}")
            }
            other => panic!("expected InvalidSpec containing {expected:?}, got {other:?}"),
        }
    }

    #[test]
    fn the_sample_is_valid() {
        sample().validate().unwrap();
    }

    #[test]
    fn invalid_specs_are_rejected_before_anything_starts() {
        check_invalid(|s| s.uid_base = 0, "uid_base");
        check_invalid(|s| s.uid_base = u32::MAX - 10, "uid_base");
        check_invalid(|s| s.run_as_uid = 70000, "run_as_uid");
        check_invalid(|s| s.argv = vec![], "argv[0]");
        check_invalid(|s| s.argv = vec!["python3".to_owned()], "argv[0]");
        check_invalid(|s| s.env.push(("A=B".to_owned(), "c".to_owned())), "malformed");
        check_invalid(|s| s.cwd = "var/task".to_owned(), "cwd");
        check_invalid(|s| s.hostname = "x".repeat(65), "hostname");
        check_invalid(|s| s.tmp_size_mb = 0, "tmp_size_mb");
        check_invalid(|s| s.binds[0].target = "/var/../etc".to_owned(), "normalised");
        check_invalid(|s| s.binds[0].target = "/".to_owned(), "normalised");
        check_invalid(|s| s.binds[0].target = "/proc/self".to_owned(), "/proc");
        check_invalid(|s| s.binds[0].target = "/tmp".to_owned(), "/tmp");
        check_invalid(|s| s.binds[0].source = "srv".into(), "source");
        check_invalid(|s| s.binds[0].target = "/dev/fd".to_owned(), "/dev");
        check_invalid(|s| s.cgroup_procs.push("cgroup.procs".into()), "cgroup.procs");
    }

    #[test]
    fn paths_that_merely_share_a_prefix_with_reserved_ones_are_fine() {
        check_sandbox_path("/devices").unwrap();
        check_sandbox_path("/tmpfiles/x").unwrap();
    }

    #[test]
    fn signals_map_to_128_plus_the_signal() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
