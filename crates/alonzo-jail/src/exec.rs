//! R's last steps, inside the finished sandbox: become the unprivileged program user, apply
//! rlimits and a umask, replace stdin and inherited descriptors, install the seccomp filter
//! and execve the program with exactly the spec's environment.

use std::convert::Infallible;
use std::ffi::CString;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid};

use crate::error::{Context, JailError};
use crate::spawn::JailSpec;

/// The exit status when the program cannot be executed (shell convention).
pub(crate) const EXEC_FAILED: i32 = 127;

/// Drops every privilege: a new session, the rlimits, no supplementary groups, the program's
/// gid and uid (which clears every capability, as they are no longer 0), no_new_privs and a
/// parent-death signal.
pub(crate) fn drop_privileges(spec: &JailSpec) -> Result<(), JailError> {
    // A new session, so the program is not in the jail's process group and has no controlling
    // terminal.
    nix::unistd::setsid().context(|| "setsid".to_owned())?;
    // The server's umask is not the program's business; 022 is what Lambda programs expect.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // Limits come before the uid change: RLIMIT_NPROC is checked against the new uid at
    // setresuid, and only lowering (which needs no privilege) is done.
    for (resource, value) in [
        (Resource::RLIMIT_NOFILE, spec.nofile),
        (Resource::RLIMIT_NPROC, spec.nproc),
        (Resource::RLIMIT_CORE, 0),
    ] {
        setrlimit(resource, value, value).context(|| format!("set {resource:?} to {value}"))?;
    }
    nix::unistd::setgroups(&[]).context(|| "drop supplementary groups".to_owned())?;
    let gid = Gid::from_raw(spec.run_as_gid);
    nix::unistd::setresgid(gid, gid, gid).context(|| format!("become gid {gid}"))?;
    let uid = Uid::from_raw(spec.run_as_uid);
    nix::unistd::setresuid(uid, uid, uid).context(|| format!("become uid {uid}"))?;
    // No setuid binary or file capability can give privileges back.
    nix::sys::prctl::set_no_new_privs().context(|| "set no_new_privs".to_owned())?;
    // The kernel clears the parent-death signal on a credential change, so it is set after
    // setresuid. Our parent is pid 1 of the sandbox; its death kills everything anyway, this
    // only makes it immediate.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .context(|| "set the parent-death signal".to_owned())
}

/// Converts argv and env, replaces stdin with /dev/null, closes every descriptor but 0, 1 and
/// 2 (and 3, where `assignment` goes if given: the pipe on which a program started ahead
/// receives its function), enters `cwd`, installs the seccomp filter unless `filtered` says
/// the caller already did (everything from here on is allowed by it), and execs. Returns only
/// on a set-up failure; an exec failure is reported on stderr and exits with `EXEC_FAILED`.
pub(crate) fn exec_program(
    spec: &JailSpec,
    assignment: Option<std::os::fd::OwnedFd>,
    filtered: bool,
) -> Result<Infallible, JailError> {
    let cstring = |s: &str| {
        CString::new(s).map_err(|_| JailError::InvalidSpec(format!("{s:?} contains NUL")))
    };
    let argv = spec.argv.iter().map(|a| cstring(a)).collect::<Result<Vec<_>, _>>()?;
    let env = spec
        .env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(program) = argv.first() else {
        return Err(JailError::InvalidSpec("argv is empty".to_owned()));
    };
    let null = std::fs::File::open("/dev/null").context(|| "open /dev/null".to_owned())?;
    nix::unistd::dup2_stdin(&null).context(|| "make /dev/null stdin".to_owned())?;
    drop(null);
    let keep = match assignment {
        Some(fd) => {
            crate::sys::place_at_fd3(fd)
                .context(|| "put the assignment pipe on fd 3".to_owned())?;
            4
        }
        None => 3,
    };
    // SAFETY: nothing in this process uses a descriptor above 2 (or 3, the assignment pipe)
    // any more: the jail sequence's sockets and pipes were only inherited from G, which keeps
    // its own copies, and /dev/null was just closed. Everything else (the server's leaks, if
    // any) is closed here so the program inherits nothing.
    unsafe { crate::sys::close_fds_from(keep) }
        .context(|| "close inherited descriptors".to_owned())?;
    nix::unistd::chdir(spec.cwd.as_str()).context(|| format!("chdir {}", spec.cwd))?;

    // The seccomp filter comes last: after no_new_privs (which lets an unprivileged process
    // install it) and after every set-up call it blocks, right before execve, which it allows.
    if !filtered {
        crate::seccomp::install()?;
    }

    let err = match nix::unistd::execve(program, &argv, &env) {
        Err(err) => err,
        Ok(never) => match never {},
    };
    eprintln!("alonzo-jail: cannot execute {}: {err}", spec.argv[0]);
    crate::sys::exit_now(EXEC_FAILED)
}

/// R's last steps when its program is the launcher's interpreter, which it continues instead
/// of executing anything: the same descriptors, working directory and seccomp filter as
/// [`exec_program`] gives an executed program (`assignment` on fd 3), and the two things an
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
    // SAFETY: as in exec_program: nothing of this process above 3 is used again. The owners
    // still on the stack of the frames this process returns through (G's copies of its
    // sockets) are forgotten there, not dropped.
    unsafe { crate::sys::close_fds_from(4) }
        .context(|| "close inherited descriptors".to_owned())?;
    nix::unistd::chdir(spec.cwd.as_str()).context(|| format!("chdir {}", spec.cwd))?;
    nix::sys::prctl::set_dumpable(true).context(|| "make the program dumpable".to_owned())?;
    let name = spec.argv.first().and_then(|p| p.rsplit('/').next()).unwrap_or("python3");
    // The kernel keeps the first 15 bytes, as it does for an executed file's name.
    let comm = CString::new(name.bytes().take(15).collect::<Vec<u8>>())
        .map_err(|_| JailError::InvalidSpec(format!("{name:?} contains NUL")))?;
    nix::sys::prctl::set_name(&comm).context(|| "name the program".to_owned())?;
    crate::seccomp::install()
}
