//! R's last steps, inside the finished sandbox: become the unprivileged program user, apply
//! rlimits and a umask, replace stdin and inherited descriptors, install the seccomp filter
//! and execve the program with exactly the spec's environment.
//!
//! An R that executes its program is started in G's memory (`clone` with `CLONE_VM`), not as
//! a fork: its `execve` then has no copied address space to tear down (about 0.5 ms per cold
//! start on the project's machine, most of what R did on the cold start's path), and starting
//! it copies no page tables. The price is that R, until its `execve`, must allocate nothing
//! and take no lock, as G runs on in the same memory; G prepares everything R needs in a
//! [`Plan`]. An R that continues the launcher's interpreter instead is a fork, as it must be
//! ([`continue_program`]).

use std::cell::UnsafeCell;
use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, Ordering};

use nix::errno::Errno;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

use crate::error::{Context, JailError};
use crate::sequence::SETUP_FAILED;
use crate::spawn::JailSpec;
use crate::sys::{CStrings, SingleThreaded};

/// The exit status when the program cannot be executed (shell convention).
pub(crate) const EXEC_FAILED: i32 = 127;

/// Drops every privilege: a new session, the rlimits, no supplementary groups, the program's
/// gid and uid (which clears every capability, as they are no longer 0), no_new_privs and a
/// parent-death signal. Allocates nothing (R may share G's memory); on failure, the step and
/// why.
fn drop_privileges_raw(
    nofile: u64,
    nproc: u64,
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> Result<(), (&'static str, Errno)> {
    // A new session, so the program is not in the jail's process group and has no controlling
    // terminal.
    nix::unistd::setsid().map_err(|e| ("setsid", e))?;
    // The server's umask is not the program's business; 022 is what Lambda programs expect.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // Limits come before the uid change: RLIMIT_NPROC is checked against the new uid at
    // setresuid, and only lowering (which needs no privilege) is done.
    for (resource, value, step) in [
        (Resource::RLIMIT_NOFILE, nofile, "set RLIMIT_NOFILE"),
        (Resource::RLIMIT_NPROC, nproc, "set RLIMIT_NPROC"),
        (Resource::RLIMIT_CORE, 0, "set RLIMIT_CORE"),
    ] {
        setrlimit(resource, value, value).map_err(|e| (step, e))?;
    }
    crate::sys::become_ids(uid, gid)?;
    // No setuid binary or file capability can give privileges back.
    nix::sys::prctl::set_no_new_privs().map_err(|e| ("set no_new_privs", e))?;
    // The kernel clears the parent-death signal on a credential change, so it is set after
    // setresuid. Our parent is pid 1 of the sandbox; its death kills everything anyway, this
    // only makes it immediate.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| ("set the parent-death signal", e))
}

/// [`drop_privileges_raw`] for an R forked from G (one that continues the launcher's
/// interpreter).
pub(crate) fn drop_privileges(spec: &JailSpec) -> Result<(), JailError> {
    drop_privileges_raw(spec.nofile, spec.nproc, spec.run_as_uid, spec.run_as_gid)
        .map_err(|(step, source)| JailError::Sys { step: step.to_owned(), source })
}

/// A program to execute, converted for `execve` ahead.
pub(crate) struct Executable {
    argv: CStrings,
    env: CStrings,
    cwd: std::ffi::CString,
    /// `argv[0]` and `cwd` as given, for messages.
    name: String,
    cwd_text: String,
}

impl Executable {
    pub(crate) fn new(
        argv: &[String],
        env: &[(String, String)],
        cwd: &str,
    ) -> Result<Self, JailError> {
        let nul = |what: &str| JailError::InvalidSpec(format!("{what} contains NUL"));
        let Some(name) = argv.first().cloned() else {
            return Err(JailError::InvalidSpec("argv is empty".to_owned()));
        };
        Ok(Executable {
            argv: CStrings::new(argv.iter().cloned()).ok_or_else(|| nul("argv"))?,
            env: CStrings::new(env.iter().map(|(k, v)| format!("{k}={v}")))
                .ok_or_else(|| nul("the environment"))?,
            cwd: std::ffi::CString::new(cwd).map_err(|_| nul("cwd"))?,
            name,
            cwd_text: cwd.to_owned(),
        })
    }
}

/// Everything R needs to become the program, prepared by G so that R allocates nothing: R
/// runs in G's memory until its `execve` (`sys::clone_sharing_memory`), and a waiting R does
/// so while G goes on. Its descriptors are numbers in R's own table, a copy of G's at R's
/// start.
pub(crate) struct Plan {
    nofile: u64,
    nproc: u64,
    uid: libc::uid_t,
    gid: libc::gid_t,
    filters: crate::seccomp::Filters,
    /// `/dev/null`, for stdin.
    null: RawFd,
    /// Put at fd 3: the pipe on which a program started ahead receives its function.
    assignment: Option<RawFd>,
    /// A waiting R's end of the program pipe, and its copy of G's end, which it closes first.
    /// It reads one byte before it takes `program`; end of file means that its sandbox was
    /// discarded.
    wake: Option<(RawFd, RawFd)>,
    /// Set before R starts, or (with `wake`) by G before it writes the byte, and never again.
    program: UnsafeCell<Option<Executable>>,
}

/// Starts R for `spec`'s program, with `assignment` (a program started ahead) on fd 3, and
/// returns its pid once it has executed the program, or failed and exited. R restores default
/// signal handling, drops every privilege, and installs the seccomp filter right before
/// `execve`, so every set-up call before it is still allowed.
pub(crate) fn start_program(
    single: &SingleThreaded,
    spec: &JailSpec,
    assignment: Option<OwnedFd>,
) -> Result<Pid, JailError> {
    let null = open_null()?;
    let program = Executable::new(&spec.argv, &spec.env, &spec.cwd)?;
    let plan = Plan::new(spec, &null, assignment.as_ref(), None, Some(program))?;
    // SAFETY: `become_program` ends with execve or _exit and allocates nothing (see
    // `Plan::become_program`); `plan` outlives it, as this returns only after R has executed
    // its program or exited (CLONE_VFORK), and this process is suspended until then.
    let pid =
        unsafe { crate::sys::clone_sharing_memory(single, become_program, plan_arg(&plan), true) }
            .context(|| "start R".to_owned())?;
    drop((plan, null, assignment));
    Ok(pid)
}

/// Starts R before a sandbox built ahead is assigned. R restores default signal handling,
/// drops every privilege and installs the seccomp filter at once, then waits for its program
/// (see [`Waiting::hand_over`]). The assignment then only attaches the mounts and hands the
/// program over, instead of also starting R and dropping privileges. R never sees anything of
/// the function before the mounts are attached: G hands the program over only after them. If
/// G goes away without doing so, R reads end of file and exits.
pub(crate) fn start_waiting_program(
    single: &SingleThreaded,
    spec: &JailSpec,
) -> Result<(Pid, Waiting), JailError> {
    let null = open_null()?;
    let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context(|| "create the program pipe".to_owned())?;
    let wake = Some((rx.as_raw_fd(), tx.as_raw_fd()));
    let plan: &'static Plan = Box::leak(Box::new(Plan::new(spec, &null, None, wake, None)?));
    // SAFETY: `become_program` ends with execve or _exit and allocates nothing. `plan` is
    // leaked, so it outlives R; while R runs, G changes nothing of it but `program`, which R
    // reads only after the byte that G writes once it has set it (`Waiting::hand_over`).
    let pid =
        unsafe { crate::sys::clone_sharing_memory(single, become_program, plan_arg(plan), false) }
            .context(|| "start R".to_owned())?;
    // R has its own copies of these; G's are closed.
    drop((null, rx));
    Ok((pid, Waiting { plan, tx }))
}

/// G's side of a waiting R: where it puts R's program, and the pipe that wakes R.
pub(crate) struct Waiting {
    plan: &'static Plan,
    tx: OwnedFd,
}

impl Waiting {
    /// Gives R its program: `argv`, `env` and `cwd` replace the spec's.
    pub(crate) fn hand_over(self, program: &crate::spawn::Program) -> Result<(), JailError> {
        let executable = Executable::new(&program.argv, &program.env, &program.cwd)?;
        // SAFETY: R does not read `program` before the byte written below, and nothing else
        // writes it; the release fence orders this write before the byte, and R's acquire
        // fence after reading it.
        unsafe { *self.plan.program.get() = Some(executable) };
        fence(Ordering::Release);
        nix::unistd::write(&self.tx, &[1]).context(|| "hand the program to R".to_owned())?;
        Ok(())
    }
}

impl Plan {
    fn new(
        spec: &JailSpec,
        null: &OwnedFd,
        assignment: Option<&OwnedFd>,
        wake: Option<(RawFd, RawFd)>,
        program: Option<Executable>,
    ) -> Result<Self, JailError> {
        Ok(Plan {
            nofile: spec.nofile,
            nproc: spec.nproc,
            uid: spec.run_as_uid,
            gid: spec.run_as_gid,
            filters: crate::seccomp::Filters::prepare()?,
            null: null.as_raw_fd(),
            assignment: assignment.map(AsRawFd::as_raw_fd),
            wake,
            program: UnsafeCell::new(program),
        })
    }

    /// R: becomes the program. Allocates nothing and takes no lock: it runs in G's memory.
    fn become_program(&self) -> ! {
        // Default signal handling and an empty mask: this undoes the forwarding set-up
        // (`init.rs`), the SIGPIPE=ignore that the Rust runtime installed in the jail process,
        // and any signal the server itself was started with ignored (an ignored signal stays
        // ignored across exec).
        if let Err(e) = crate::sys::default_dispositions() {
            fail(SETUP_FAILED, format_args!("reset signal dispositions: {e}"));
        }
        if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
            fail(SETUP_FAILED, format_args!("clear the signal mask: {e}"));
        }
        if let Err((step, e)) = drop_privileges_raw(self.nofile, self.nproc, self.uid, self.gid) {
            fail(SETUP_FAILED, format_args!("{step}: {e}"));
        }
        if let Some((rx, tx)) = self.wake {
            // The filter goes on now too: what R does from here (read, dup2, close_range,
            // chdir, execve) it allows.
            self.install_filters();
            // Without this, R's own copy of G's end would keep it from seeing end of file.
            let _ = nix::unistd::close(tx);
            let mut byte = [0u8; 1];
            // SAFETY: `rx` is R's copy of the pipe's read end, which nothing else in R uses.
            let rx = unsafe { std::os::fd::BorrowedFd::borrow_raw(rx) };
            match nix::unistd::read(rx, &mut byte) {
                Ok(1) => fence(Ordering::Acquire),
                // The sandbox was discarded before its assignment.
                Ok(_) => crate::sys::exit_now(SETUP_FAILED),
                Err(e) => fail(SETUP_FAILED, format_args!("wait for the program: {e}")),
            }
        }
        // SAFETY: set before R started, or before the byte just read (see `Waiting`); G never
        // changes it again.
        let Some(program) = (unsafe { &*self.program.get() }) else {
            fail(SETUP_FAILED, format_args!("no program to execute"));
        };
        // SAFETY: R's own copy of G's /dev/null descriptor, used only here.
        let null = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.null) };
        if let Err(e) = nix::unistd::dup2_stdin(null) {
            fail(SETUP_FAILED, format_args!("make /dev/null stdin: {e}"));
        }
        let keep = match self.assignment {
            Some(fd) => {
                // SAFETY: R's own copy of the assignment pipe, which nothing else in R owns.
                if let Err(e) = crate::sys::place_at_fd3(unsafe { OwnedFd::from_raw_fd(fd) }) {
                    fail(SETUP_FAILED, format_args!("put the assignment pipe on fd 3: {e}"));
                }
                4
            }
            None => 3,
        };
        // SAFETY: R owns no descriptor above 2 (or 3, the assignment pipe): everything there is
        // a copy of G's, which G keeps, or the server's leaks, if any. All are closed so the
        // program inherits nothing.
        if let Err(e) = unsafe { crate::sys::close_fds_from(keep) } {
            fail(SETUP_FAILED, format_args!("close inherited descriptors: {e}"));
        }
        if let Err(e) = nix::unistd::chdir(program.cwd.as_c_str()) {
            fail(SETUP_FAILED, format_args!("chdir {}: {e}", program.cwd_text));
        }
        // The seccomp filter comes last: after no_new_privs (which lets an unprivileged process
        // install it) and after every set-up call it blocks, right before execve, which it
        // allows.
        if self.wake.is_none() {
            self.install_filters();
        }
        let path = program.argv.first().unwrap_or_default();
        let err = crate::sys::execve(path, &program.argv, &program.env);
        fail(EXEC_FAILED, format_args!("cannot execute {}: {err}", program.name))
    }

    fn install_filters(&self) {
        if let Err((filter, e)) = self.filters.install() {
            fail(SETUP_FAILED, format_args!("install the seccomp filter {filter}: {e}"));
        }
    }
}

extern "C" fn become_program(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Plan` that `start_program` or `start_waiting_program` passed,
    // which outlives R.
    let plan = unsafe { &*(arg as *const Plan) };
    plan.become_program()
}

fn plan_arg(plan: &Plan) -> *mut libc::c_void {
    (plan as *const Plan).cast_mut().cast()
}

fn open_null() -> Result<OwnedFd, JailError> {
    let null = std::fs::File::open("/dev/null").context(|| "open /dev/null".to_owned())?;
    Ok(OwnedFd::from(null))
}

/// Writes `alonzo-jail: <message>` on stderr and exits with `code`, without allocating or
/// locking (R may share G's memory): the message is formatted on the stack, truncated to
/// 1 KiB, and written straight to descriptor 2.
fn fail(code: i32, message: std::fmt::Arguments<'_>) -> ! {
    struct Line {
        buf: [u8; 1024],
        len: usize,
    }
    impl std::fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let n = s.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
    let mut line = Line { buf: [0; 1024], len: 0 };
    let _ = writeln!(line, "alonzo-jail: {message}");
    let _ = nix::unistd::write(std::io::stderr().as_fd(), &line.buf[..line.len]);
    crate::sys::exit_now(code)
}

/// R's last steps when its program is the launcher's interpreter, which it continues instead
/// of executing anything: the same descriptors, working directory and seccomp filter as
/// [`Plan::become_program`] gives an executed program (`assignment` on fd 3), and the two things an
/// `execve` would have done: the process becomes dumpable again (it changed its uid, which
/// cleared that; an exec by an unprivileged user sets it back, so the program can read its
/// own `/proc/self` files) and takes its program's name (`/proc/self/comm`).
pub(crate) fn continue_program(
    spec: &JailSpec,
    assignment: std::os::fd::OwnedFd,
) -> Result<(), JailError> {
    let null = std::fs::File::open("/dev/null").context(|| "open /dev/null".to_owned())?;
    nix::unistd::dup2_stdin(&null).context(|| "make /dev/null stdin".to_owned())?;
    drop(null);
    crate::sys::place_at_fd3(assignment)
        .context(|| "put the assignment pipe on fd 3".to_owned())?;
    // SAFETY: as in `Plan::become_program`: nothing of this process above 3 is used again. The owners
    // still on the stack of the frames this process returns through (G's copies of its
    // sockets) are forgotten there, not dropped.
    unsafe { crate::sys::close_fds_from(4) }
        .context(|| "close inherited descriptors".to_owned())?;
    nix::unistd::chdir(spec.cwd.as_str()).context(|| format!("chdir {}", spec.cwd))?;
    nix::sys::prctl::set_dumpable(true).context(|| "make the program dumpable".to_owned())?;
    let name = spec.argv.first().and_then(|p| p.rsplit('/').next()).unwrap_or("python3");
    // The kernel keeps the first 15 bytes, as it does for an executed file's name.
    let comm = std::ffi::CString::new(name.bytes().take(15).collect::<Vec<u8>>())
        .map_err(|_| JailError::InvalidSpec(format!("{name:?} contains NUL")))?;
    nix::sys::prctl::set_name(&comm).context(|| "name the program".to_owned())?;
    crate::seccomp::install()
}
