//! The launcher: a long-lived, single-threaded process holding a Python interpreter
//! initialised up to the point where a runtime started ahead waits for its function, which
//! forks jail processes on the server's request instead of the server executing `exe __jail`
//! for each. The jail sequence then runs in the fork exactly as in an executed jail process,
//! except at its very end: R does not execute the interpreter, it returns into the copy it
//! already is. A Python sandbox built this way costs a fork instead of an interpreter start.
//!
//! What the launcher does, in order:
//!
//! 1. Started as `exe` with `LAUNCHER_ENV` set, it takes its control socket (its standard
//!    input) to fd 3, opens the host's mount namespace on fd 4, and puts this crate built as
//!    a Python extension (`python.rs`, carried by the binary: [`set_python_extension`]) in a
//!    memfd on fd 5. It enters a private mount namespace whose `/var` is an empty tmpfs
//!    holding only `/var/runtime`, the runtime files, read-only: the interpreter then loads
//!    the runtime from the same paths as in a sandbox.
//! 2. It executes the interpreter with the runtime's exact argv and environment (the marker
//!    removed). The runtime's `_await_assignment` finds the memfd on fd 5, loads the module
//!    from it, removes it from `sys.modules`, and calls `serve()`.
//! 3. `serve` records the interpreter's signal dispositions, says it is ready, and answers
//!    requests: each carries a jail socket, a stdout and a stderr; the launcher forks a copy
//!    (a child of the server, `CLONE_PARENT`) and sends back its pid and a pidfd.
//! 4. The copy goes back to the host's mount namespace, takes the three descriptors as its
//!    0, 1 and 2, closes everything else, and runs the jail sequence (`sequence::run`).
//!
//! Every guarantee of the jail sequence holds unchanged: the copy is a new process in a new
//! cgroup, user, mount, PID, IPC, UTS, network and cgroup namespace, with the same root,
//! privilege drop and seccomp filter. The launcher holds nothing of any function: it only
//! ever ran the runtime's own module, and requests carry no function data (that comes later,
//! through the jail socket, to the sandbox alone). Its host paths never reach the
//! interpreter's memory: they were read before the `execve`.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use nix::mount::MsFlags;
use nix::sys::socket::MsgFlags;

use crate::error::{Context, JailError};
use crate::fdpass::{recv_fds, send_fds};
use crate::process::JailProcess;
use crate::spawn::{Prepared, SPAWN_TIMEOUT};

/// The variable that makes the binary run as a launcher (with a socket as its standard
/// input). A launcher is executed with the runtime's own argv, so that the runtimes forked
/// from it show their command line (`/proc/self/cmdline`) as an executed runtime does; the
/// variable is removed before the interpreter reads its environment.
pub const LAUNCHER_ENV: &str = "_RUNTIME_ZYGOTE";

/// The host paths a launcher needs, sent as its first message (never in its argv, which every
/// copy shows to its function).
#[derive(serde::Serialize, serde::Deserialize)]
struct LauncherPaths {
    runtime_dir: PathBuf,
}

/// The launcher's descriptors across its `execve` into the interpreter: the control socket,
/// the host's mount namespace, and the memfd holding the extension module.
const CONTROL_FD: RawFd = 3;
const HOST_MOUNTS_FD: RawFd = 4;
/// Also named in the runtime's `_await_assignment`.
const EXTENSION_FD: RawFd = 5;
/// The memfd's name, which the runtime checks (`/memfd:_alonzo_launcher (deleted)`).
const EXTENSION_NAME: &std::ffi::CStr = c"_alonzo_launcher";

/// This crate built as a Python extension module, as the binary carries it.
static PYTHON_EXTENSION: OnceLock<&'static [u8]> = OnceLock::new();

/// Gives this crate the bytes of its own build as a Python extension module (a shared library
/// exporting `PyInit__alonzo_launcher`): the binary calls it first in `main`, before
/// [`crate::main_if_jail`]. Without it there is no launcher ([`Launcher::start`] fails).
pub fn set_python_extension(library: &'static [u8]) {
    let _ = PYTHON_EXTENSION.set(library);
}

/// The extension module a launcher needs, if this binary carries one.
fn python_extension() -> Option<&'static [u8]> {
    PYTHON_EXTENSION.get().copied().filter(|library| !library.is_empty())
}

/// The byte a launcher sends once its interpreter waits in `serve`.
const READY: u8 = b'R';
/// The byte of a request for a jail process.
const FORK: u8 = b'J';

/// What a Python launcher holds ready: the interpreter started as a runtime started ahead is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonLauncher {
    /// The host directory seen at `/var/runtime` (the runtime's bootstrap and module).
    pub runtime_dir: PathBuf,
    /// The runtime's argv, e.g. `/usr/bin/python3.11 -S /var/runtime/bootstrap.py`.
    pub argv: Vec<String>,
    /// The environment a runtime started ahead starts with.
    pub env: Vec<(String, String)>,
}

/// A running launcher, as the server holds it. Requests are serialised on its socket; a
/// fork takes well under a millisecond.
#[derive(Debug)]
pub struct Launcher {
    control: Mutex<UnixStream>,
    process: Mutex<std::process::Child>,
}

impl Launcher {
    /// Starts `exe` as the launcher of `python` and waits (at most `SPAWN_TIMEOUT`) until its
    /// interpreter is ready; an interpreter that fails to start or to load the extension is
    /// an error here, and the caller starts sandboxes the usual way.
    pub fn start(exe: &Path, python: &PythonLauncher) -> Result<Launcher, JailError> {
        if python_extension().is_none() {
            return Err(JailError::InvalidSpec(
                "this build carries no Python extension for a launcher".into(),
            ));
        }
        let (server_end, launcher_end) =
            UnixStream::pair().context(|| "create the launcher socket".to_owned())?;
        let Some((program, args)) = python.argv.split_first() else {
            return Err(JailError::InvalidSpec("the launcher needs an argv".into()));
        };
        let mut command = Command::new(exe);
        command
            .arg0(program)
            .args(args)
            .env_clear()
            .envs(python.env.iter().map(|(k, v)| (k, v)))
            .env(LAUNCHER_ENV, "1")
            .stdin(Stdio::from(OwnedFd::from(launcher_end)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .map_err(|source| JailError::Start { exe: exe.display().to_string(), source })?;
        drop(command);
        let paths = serde_json::to_vec(&LauncherPaths { runtime_dir: python.runtime_dir.clone() })
            .map_err(|e| JailError::Protocol(format!("encode the launcher's paths: {e}")))?;
        let mut message = (paths.len() as u32).to_le_bytes().to_vec();
        message.extend_from_slice(&paths);
        // A launcher that died at once shows in the wait for READY below.
        let _ = std::io::Write::write_all(&mut &server_end, &message);
        server_end.set_read_timeout(Some(SPAWN_TIMEOUT)).context(|| "set a timeout".to_owned())?;
        let mut ready = [0u8; 1];
        match (&server_end).read_exact(&mut ready) {
            Ok(()) if ready[0] == READY => {}
            _ => {
                let _ = child.kill();
                let status = child.wait().context(|| "wait for the launcher".to_owned())?;
                return Err(JailError::Setup {
                    status,
                    message: "the Python launcher did not start (see the server's log)".into(),
                });
            }
        }
        Ok(Launcher { control: Mutex::new(server_end), process: Mutex::new(child) })
    }

    /// Whether the launcher process still runs.
    pub fn is_alive(&self) -> bool {
        self.process.lock().is_ok_and(|mut p| matches!(p.try_wait(), Ok(None)))
    }

    /// As [`crate::prepare`], with the jail process forked by the launcher: it joins
    /// `cgroup_procs` now and waits for a spec, which may then ask for the program to
    /// continue the launcher's interpreter (`Deferred::continue_program`).
    pub fn prepare(&self, cgroup_procs: &[PathBuf]) -> Result<Prepared, JailError> {
        crate::spawn::check_cgroup_procs(cgroup_procs)?;
        let (server_end, jail_end) =
            UnixStream::pair().context(|| "create the spec socket".to_owned())?;
        let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
        let (out_r, out_w) = nix::unistd::pipe2(cloexec).context(|| "create a pipe".to_owned())?;
        let (err_r, err_w) = nix::unistd::pipe2(cloexec).context(|| "create a pipe".to_owned())?;
        let (pid, pidfd) = {
            let control = self
                .control
                .lock()
                .map_err(|_| JailError::Protocol("the launcher lock is poisoned".into()))?;
            let fds = [jail_end.as_fd(), out_w.as_fd(), err_w.as_fd()];
            send_fds(&control, &[FORK], &fds)?;
            let (reply, mut fds) = recv_fds(&control, 4)?;
            match (reply.len(), fds.pop()) {
                (4, Some(pidfd)) if fds.is_empty() => {
                    (u32::from_le_bytes(reply[..4].try_into().unwrap_or_default()), pidfd)
                }
                _ => return Err(JailError::Protocol("the launcher did not fork".into())),
            }
        };
        drop((jail_end, out_w, err_w));
        let process =
            JailProcess::launched(pid, pidfd, ChildStdout::from(out_r), ChildStderr::from(err_r));
        Prepared::started(process, server_end, cgroup_procs)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Ok(process) = self.process.get_mut() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// The interpreter's signal dispositions when it called `serve`, which R restores.
static INTERPRETER_SIGNALS: OnceLock<Vec<Option<libc::sigaction>>> = OnceLock::new();

/// Whether this process is a launcher's interpreter (or a copy of it) that has reached
/// `serve`: only then may a spec ask for its program to continue it.
pub(crate) fn interpreter_ready() -> bool {
    INTERPRETER_SIGNALS.get().is_some()
}

/// In R: the interpreter's own signal handling (its handlers and ignored signals, as an
/// interpreter starting would install them) and an empty signal mask.
pub(crate) fn restore_interpreter_signals() -> Result<(), JailError> {
    let saved = INTERPRETER_SIGNALS
        .get()
        .ok_or_else(|| JailError::Protocol("no launcher interpreter to continue".into()))?;
    crate::sys::restore_dispositions(saved).context(|| "restore signal handling".to_owned())?;
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .context(|| "clear the signal mask".to_owned())
}

/// The launcher process's `main` (with `LAUNCHER_ENV` set): it becomes the interpreter, or
/// exits if it cannot.
pub(crate) fn main_and_exit() -> ! {
    let Err(err) = launch();
    eprintln!("alonzo-launcher: {err}");
    crate::sys::exit_now(crate::sequence::SETUP_FAILED)
}

/// Steps 1 and 2, up to the `execve` of the interpreter (which only returns on failure).
fn launch() -> Result<std::convert::Infallible, JailError> {
    // Executed with the runtime's own argv (see `Launcher::start`).
    let argv: Vec<String> = std::env::args().collect();
    let Some(program) = argv.first() else {
        return Err(JailError::Protocol("the launcher has no argv".into()));
    };
    // The marker must not reach the interpreter's (and so the function's) environment.
    std::env::remove_var(LAUNCHER_ENV);
    let library = python_extension()
        .ok_or_else(|| JailError::Protocol("this build carries no Python extension".into()))?;
    let mut control = crate::sequence::take_spec_socket()?;
    let paths: LauncherPaths = {
        let mut len = [0u8; 4];
        control.read_exact(&mut len).context(|| "read the launcher's paths".to_owned())?;
        let mut json = vec![0u8; (u32::from_le_bytes(len) as usize).min(1 << 16)];
        control.read_exact(&mut json).context(|| "read the launcher's paths".to_owned())?;
        serde_json::from_slice(&json)
            .map_err(|e| JailError::Protocol(format!("decode the launcher's paths: {e}")))?
    };
    // SAFETY: this fresh process owns only stdio and the control socket on fd 3.
    unsafe { crate::sys::close_fds_from(4) }
        .context(|| "close inherited descriptors".to_owned())?;
    let host_mounts = std::fs::File::open("/proc/self/ns/mnt")
        .context(|| "open the host's mount namespace".to_owned())?;
    let extension = crate::sys::memfd_with(EXTENSION_NAME, library)
        .context(|| "put the extension in a memfd".to_owned())?;
    runtime_view(&paths.runtime_dir)?;
    // The descriptors the interpreter's `serve` finds, open across the execve. Each is at its
    // place already (the lowest free numbers after close_fds_from(4)) or moved there.
    let placed = [
        (OwnedFd::from(control), CONTROL_FD),
        (OwnedFd::from(host_mounts), HOST_MOUNTS_FD),
        (extension, EXTENSION_FD),
    ];
    for (fd, target) in placed {
        crate::sys::place_at(fd, target).context(|| format!("place the launcher's fd {target}"))?;
    }
    let error = Command::new(program).arg0(program).args(&argv[1..]).exec();
    Err(JailError::Start { exe: program.clone(), source: error })
}

/// Whether the descriptors `launch` left for the interpreter are there: a socket on fd 3 (the
/// control socket) and a mount namespace on fd 4 (the host's). Neither is owned by anything
/// in Rust: R returns through `serve`'s frame with fd 3 being its assignment pipe and fd 4
/// closed.
fn inherited_descriptors() -> bool {
    let target = |fd: RawFd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
    let is = |fd, kind: &str| target(fd).is_some_and(|t| t.to_string_lossy().starts_with(kind));
    is(CONTROL_FD, "socket:[") && is(HOST_MOUNTS_FD, "mnt:[")
}

/// Step 1: a private mount namespace where `/var` is an empty tmpfs with the runtime files,
/// read-only, at `/var/runtime`.
fn runtime_view(runtime_dir: &Path) -> Result<(), JailError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context(|| "unshare the mount namespace".to_owned())?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context(|| "make all mounts private".to_owned())?;
    // Opened in the new namespace (a bind's source must be a mount of the caller's own), and
    // before /var is covered: the runtime files may well be under it.
    let runtime = nix::fcntl::open(
        runtime_dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context(|| format!("open {}", runtime_dir.display()))?;
    let hidden = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    nix::mount::mount(Some("tmpfs"), "/var", Some("tmpfs"), hidden, Some("mode=0755,size=64k"))
        .context(|| "mount a tmpfs on /var".to_owned())?;
    std::fs::create_dir("/var/runtime").context(|| "create /var/runtime".to_owned())?;
    let source = format!("/proc/self/fd/{}", runtime.as_raw_fd());
    nix::mount::mount(
        Some(source.as_str()),
        "/var/runtime",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(|| "bind the runtime files".to_owned())?;
    let read_only = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | hidden;
    nix::mount::mount(None::<&str>, "/var/runtime", None::<&str>, read_only, None::<&str>)
        .context(|| "make the runtime files read-only".to_owned())?;
    nix::unistd::chdir("/").context(|| "chdir /".to_owned())
}

/// Steps 3 and 4: the request loop. Returns only in R of a sandbox whose program continues
/// the interpreter; the launcher itself exits when the server closes the socket.
pub(crate) fn serve() {
    if !inherited_descriptors() {
        eprintln!("alonzo-launcher: serve() outside a launcher");
        crate::sys::exit_now(crate::sequence::SETUP_FAILED)
    }
    let _ = INTERPRETER_SIGNALS.set(crate::sys::save_dispositions());
    // SAFETY: fd 3 is the control socket for as long as this process is the launcher; the
    // stream is forgotten below, never dropped, so it never closes it.
    let control = std::mem::ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(CONTROL_FD) });
    if nix::sys::socket::send(CONTROL_FD, &[READY], MsgFlags::MSG_NOSIGNAL).is_err() {
        crate::sys::exit_now(0);
    }
    let Ok(single) = crate::sys::SingleThreaded::check() else {
        eprintln!("alonzo-launcher: the interpreter started a thread");
        crate::sys::exit_now(crate::sequence::SETUP_FAILED)
    };
    loop {
        let (request, fds) = match recv_fds(&control, 1) {
            Ok((request, fds)) if request == [FORK] && fds.len() == 3 => (request, fds),
            // The server went away (or spoke nonsense): the launcher ends; the jail processes
            // it made are the server's children, not its own.
            _ => crate::sys::exit_now(0),
        };
        drop(request);
        crate::python::before_fork();
        let cloned = crate::sys::clone_into_parent(&single);
        match cloned {
            Ok(crate::sys::Cloned::Caller { pid, pidfd }) => {
                crate::python::after_fork_parent();
                drop(fds);
                let _ = send_fds(&control, &pid.to_le_bytes(), &[pidfd.as_fd()]);
            }
            Ok(crate::sys::Cloned::Child) => {
                jail_process(fds);
                return;
            }
            Err(e) => {
                crate::python::after_fork_parent();
                eprintln!("alonzo-launcher: fork a jail process: {e}");
                // A one-byte reply (a pid takes four) tells the server this request failed.
                let _ = nix::sys::socket::send(CONTROL_FD, b"E", MsgFlags::MSG_NOSIGNAL);
            }
        }
    }
}

/// Step 4, in the copy: back to the host's mount namespace, the request's descriptors as
/// 0, 1 and 2, nothing else, then the jail sequence. Returns only in R continuing the
/// interpreter.
fn jail_process(fds: Vec<OwnedFd>) {
    let set_up = (|| -> Result<(), JailError> {
        // SAFETY: fd 4 is the host's mount namespace (checked in serve) and stays open until
        // the close below.
        let host_mounts = unsafe { BorrowedFd::borrow_raw(HOST_MOUNTS_FD) };
        nix::sched::setns(host_mounts, nix::sched::CloneFlags::CLONE_NEWNS)
            .context(|| "enter the host's mount namespace".to_owned())?;
        for (target, fd) in fds.iter().enumerate() {
            // SAFETY: dup2 only touches the descriptor table; the source is open (we own it)
            // and 0, 1 and 2 are this process's stdio, replaced here.
            nix::errno::Errno::result(unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) })
                .context(|| format!("set up fd {target}"))?;
        }
        drop(fds);
        // SAFETY: everything above 2 is the launcher's (the control socket, the namespace
        // descriptor, neither owned in Rust) and is not used in this process.
        unsafe { crate::sys::close_fds_from(3) }
            .context(|| "close the launcher's descriptors".to_owned())
    })();
    let outcome = set_up.and_then(|()| crate::sequence::run());
    match outcome {
        Ok(crate::sequence::Outcome::Continue) => {}
        Ok(crate::sequence::Outcome::Exit(code)) => crate::sys::exit_now(code),
        Err(err) => {
            eprintln!("alonzo-jail: {err}");
            crate::sys::exit_now(crate::sequence::SETUP_FAILED)
        }
    }
}
