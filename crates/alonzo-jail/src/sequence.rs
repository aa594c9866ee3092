//! The jail sequence: what `exe __jail` does, top to bottom, in one function.
//!
//! Three processes take part, each created from the previous one and each continuing down
//! the same function:
//!
//! - J, the jail process the server started (or a launcher forked for it, `launcher.rs`; the
//!   server holds it as `Jail::child` either way). Root on the host; it reads the spec, joins
//!   the cgroups, creates G, maps G's user namespace's ids and attaches its veth pair, then
//!   waits.
//! - G, created by J in all the sandbox's new namespaces at once, root of its user namespace
//!   and pid 1 of its PID namespace; it creates the Runtime API listener, builds the
//!   filesystem and pivots into it, then acts as a minimal init.
//! - R, which drops every privilege and execs the program (`exec.rs`; until then it runs in
//!   G's memory), or, in a launcher's copy with `continue_program`, is a fork of G that
//!   returns into the launcher's interpreter instead.
//!
//! Each waiting stage exits with its child's status, so the program's status reaches the
//! server; each stage dies when its parent dies, so killing J kills the sandbox. A set-up
//! failure prints `alonzo-jail: <what>: <why>` on stderr and exits with 125.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

use crate::error::{Context, JailError};
use crate::spawn::SPEC_FD;
use crate::sys::{fork, SingleThreaded};
use crate::{exec, init, mounts, net, userns};

/// The exit status of a set-up failure (as `env`, `chroot` and container runtimes use it).
pub(crate) const SETUP_FAILED: i32 = 125;

/// How the sequence ends in the process that returns from [`run`].
pub(crate) enum Outcome {
    /// This stage is done; exit with this status.
    Exit(i32),
    /// This process is R of a sandbox whose program continues the launcher's Python
    /// interpreter (`Deferred::continue_program`): it is confined and unprivileged, and
    /// returns to that interpreter.
    Continue,
}

/// Runs the sequence in this process and exits with its status; never returns.
pub(crate) fn run_and_exit() -> ! {
    let code = match run() {
        Ok(Outcome::Exit(code)) => code,
        // Only a launcher allows a program to continue; `run` refuses it anywhere else.
        Ok(Outcome::Continue) => SETUP_FAILED,
        Err(err) => {
            eprintln!("alonzo-jail: {err}");
            SETUP_FAILED
        }
    };
    // _exit: a forked stage must not run exit handlers or flush buffers it inherited.
    crate::sys::exit_now(code)
}

/// Runs the sequence in this process (the jail process, started by `spawn` or forked by the
/// launcher with the spec socket as its standard input). Every stage but one ends with
/// `Outcome::Exit`; R either executes its program or, continuing the launcher's interpreter,
/// returns `Outcome::Continue`.
pub(crate) fn run() -> Result<Outcome, JailError> {
    // 0. The sequence forks three times; fork is only sound while this process has a single
    //    thread, which main_if_jail's contract guarantees and this check proves.
    let single = SingleThreaded::check()
        .context(|| "check the jail process is single-threaded".to_owned())?;

    // 1. Read the spec from the socket spawn() passed as stdin (now on fd 3), and close every
    //    other descriptor we inherited: the server's are close-on-exec, but a library's might
    //    not be, and nothing of the server may reach the sandbox.
    let mut channel = take_spec_socket()?;
    // SAFETY: this fresh process owns only stdio and fd 3 (the channel); nothing above 3 has
    // an owner here.
    unsafe { crate::sys::close_fds_from(4) }
        .context(|| "close inherited descriptors".to_owned())?;
    // A prepared jail (spawn::prepare) joins its cgroups first and then waits for the spec,
    // so that the slow cgroup migration happens before anyone needs the sandbox.
    let (mut spec, joined) = match crate::spawn::decode_frame(&mut channel)? {
        crate::spawn::Frame::Spec(spec) => (*spec, false),
        crate::spawn::Frame::Prepare { mut cgroup_procs } => {
            join_cgroups(&cgroup_procs)?;
            cgroup_procs.iter_mut().for_each(crate::scrub::path);
            match crate::spawn::decode_frame(&mut channel)? {
                crate::spawn::Frame::Spec(spec) => (*spec, true),
                _ => return Err(JailError::Protocol("expected a spec after Prepare".to_owned())),
            }
        }
        crate::spawn::Frame::Assign(_) => {
            return Err(JailError::Protocol("an assignment before the spec".to_owned()))
        }
    };
    spec.validate()?;
    if spec.deferred.as_ref().is_some_and(|d| d.continue_program)
        && !crate::launcher::interpreter_ready()
    {
        return Err(JailError::Protocol(
            "the program can only continue an interpreter in a launcher".to_owned(),
        ));
    }
    // Resolve root_dir and the bind sources now, while root on the host: inside the user
    // namespace a host directory that is not world-searchable could not be traversed. A
    // missing source fails here, before spawn() returns.
    let host_paths = mounts::HostPaths::open(&spec)?;
    // Hold SIGTERM/SIGINT until each stage knows whom to forward them to.
    init::prepare_forwarding()?;

    // 2. Join the sandbox's cgroups before anything is created: every process and page of the
    //    sandbox is then accounted to them, and the cgroup namespace of step 4 is rooted there.
    if !joined {
        join_cgroups(&spec.cgroup_procs)?;
    }

    // A sandbox built ahead of its function gets a socket on which J later passes G the
    //    assignment (see assign.rs).
    let (j_assign, g_assign) = match spec.deferred {
        Some(_) => {
            let (j, g) =
                UnixStream::pair().context(|| "create the assignment socket".to_owned())?;
            (Some(j), Some(g))
        }
        None => (None, None),
    };

    // 3. Clone G into new namespaces: a user namespace, and the network, mount, PID, IPC, UTS
    //    and cgroup namespaces it owns (the kernel creates the user namespace first). G is pid 1
    //    of the new PID namespace, and its cgroup namespace is rooted at the cgroups joined in
    //    step 2. J, root on the host, writes G's uid and gid maps (an unprivileged process
    //    could only map itself) and, if the sandbox has an external interface, creates the
    //    veth pair with one end in G's network namespace (only J, in the host's namespace,
    //    can); then G becomes root inside.
    let (mut j_sync, mut g_sync) =
        UnixStream::pair().context(|| "create the sync socket".to_owned())?;
    let namespaces = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    if let ForkResult::Parent { child } = crate::sys::clone_into_namespaces(&single, namespaces)
        .context(|| "create G in new namespaces".to_owned())?
    {
        drop((g_sync, host_paths, g_assign));
        init::forward_to(child)?;
        let mut outcome = userns::map_child(&mut j_sync, child, spec.uid_base);
        // The veth pair is attached while G builds the rest of the sandbox (G waits for it
        // only before starting the program), so its cost mostly overlaps G's.
        if let (Ok(()), Some(network)) = (&outcome, &spec.network) {
            outcome = net::attach_host_side(network, child, &mut j_sync);
        }
        // A sandbox built ahead then waits here for its assignment (assign.rs).
        if let (Ok(()), Some(mut to_g), Some(deferred)) = (&outcome, j_assign, &spec.deferred) {
            outcome = crate::assign::relay(&mut channel, &mut to_g, deferred);
        }
        if let Err(err) = outcome {
            // G cannot go on unmapped, unconnected or unassigned; make sure it does not
            // linger, and report its own message if it failed first.
            let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            let _ = init::wait_for(child);
            return Err(err);
        }
        drop(channel);
        // 8 (J). J lives as long as the sandbox and exits with the program's status. It keeps
        //    its end of the sync socket open until then: G, which cannot see J's pid, learns
        //    from that end whether J is still alive (die_with_jail).
        let status = init::wait_for(child);
        drop(j_sync);
        return status.map(Outcome::Exit);
    }
    drop((j_sync, j_assign));
    userns::become_root(&mut g_sync)?;
    // The server's handle is J: if J dies, G (and with pid 1, the whole sandbox) must die too.
    // Set after setresuid, which clears it.
    die_with_jail(&g_sync)?;
    if spec.network.is_some() {
        net::prepare_namespace(&mut g_sync)?;
    }
    // Kept only if J still has a veth pair to attach.
    let mut attached = spec.network.clone().map(|network| (network, g_sync));
    // The program runs under a different uid and cannot ptrace G anyway; not dumpable also
    // hides G's /proc entries (memory maps, environment) from it.
    nix::sys::prctl::set_dumpable(false).context(|| "make G non-dumpable".to_owned())?;

    // 4. Mounts become private so nothing we mount propagates to the host. The loopback
    //    interface and the Runtime API listener are created here, in the network namespace of
    //    step 3, and the listener goes to the server, which can accept on it from its own
    //    namespace.
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    nix::mount::mount(None::<&str>, "/", None::<&str>, private, None::<&str>)
        .context(|| "make all mounts private".to_owned())?;
    net::listen_and_hand_over(spec.runtime_api_port, &channel)?;
    drop(channel);

    // 5. G builds the filesystem: a tmpfs root, binds, /proc of the new PID namespace, /tmp,
    //    /dev; then pivots into it, so the host's filesystem is no longer reachable, seals /
    //    read-only, and sets the hostname in the new UTS namespace.
    mounts::build_root(&spec, &host_paths)?;
    // R closes every descriptor above 2; none may still have an owner then.
    drop(host_paths);
    mounts::pivot_into_cwd()?;
    // The host paths are not needed past the pivot; a program that continues the launcher's
    // interpreter (and so this process's memory) must not find them there.
    crate::scrub::host_paths(&mut spec);
    mounts::seal_root()?;
    nix::unistd::sethostname(&spec.hostname).context(|| "set the hostname".to_owned())?;
    // With an external interface, wait until J has attached the veth pair, then address
    // `eth0` and route through the host end, before the program can run.
    if let Some((network, mut sync)) = attached.take() {
        userns::wait_byte(&mut sync, "wait for the veth pair")?;
        net::configure_eth0(&network)?;
    }

    // 6. G becomes a tiny init: start R, reap every process until R exits, exit with R's
    //    status. When pid 1 exits, the kernel kills everything left in the namespace. A
    //    sandbox built ahead first waits for its assignment (assign.rs).
    if let (Some(deferred), Some(from_j)) = (&spec.deferred, g_assign) {
        return crate::assign::complete(&single, &spec, deferred, from_j);
    }
    let child = exec::start_program(&single, &spec, None)?;
    init::forward_to(child)?;
    init::reap_until(child).map(Outcome::Exit)
}

/// 7, continuing the launcher's interpreter: forks R, which restores the interpreter's own
///    signal handling, drops every privilege, takes `assignment` as fd 3 (and nothing else
///    above 2), enters `spec.cwd`, installs the seccomp filter, and returns `None` instead of
///    executing anything: the interpreter it continues is the program. Returns R's pid in G.
pub(crate) fn fork_continuing_program(
    single: &SingleThreaded,
    spec: &crate::spawn::JailSpec,
    assignment: OwnedFd,
) -> Result<Option<Pid>, JailError> {
    if let ForkResult::Parent { child } = fork(single).context(|| "fork R".to_owned())? {
        return Ok(Some(child));
    }
    let confined = (|| -> Result<(), JailError> {
        crate::launcher::restore_interpreter_signals()?;
        if spec.deferred.as_ref().is_some_and(|d| d.copy_shared_pages) {
            crate::sys::copy_shared_pages(std::os::fd::AsFd::as_fd(&assignment));
        }
        exec::drop_privileges(spec)?;
        exec::continue_program(spec, assignment)
    })();
    match confined {
        Ok(()) => {
            crate::scrub::stack_below();
            Ok(None)
        }
        Err(err) => {
            eprintln!("alonzo-jail: {err}");
            crate::sys::exit_now(SETUP_FAILED)
        }
    }
}

/// Adopts the socket `spawn` passed as standard input, checking that it is one: moves it to
/// fd 3 and makes `/dev/null` the standard input of the jail and its stages.
pub(crate) fn take_spec_socket() -> Result<UnixStream, JailError> {
    let not_spawned =
        |what: &str| JailError::Protocol(format!("{what}: the jail is started through spawn()"));
    let stdin = std::io::stdin();
    let stat = nix::sys::stat::fstat(&stdin).map_err(|_| not_spawned("stdin is not open"))?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(not_spawned("stdin is not a socket"));
    }
    // SAFETY: dup2 only duplicates descriptor 0 (open, checked above) onto 3; whatever was at
    // 3 had no owner in this fresh process (nothing but stdio exists yet) and is replaced.
    nix::errno::Errno::result(unsafe { libc::dup2(0, SPEC_FD) })
        .context(|| "move the spec socket to fd 3".to_owned())?;
    let null = std::fs::File::open("/dev/null").context(|| "open /dev/null".to_owned())?;
    nix::unistd::dup2_stdin(&null).context(|| "make /dev/null stdin".to_owned())?;
    drop(null);
    // SAFETY: fd 3 is the socket just placed there for this process alone; nothing else in
    // this process refers to it.
    let fd = unsafe { OwnedFd::from_raw_fd(SPEC_FD) };
    Ok(UnixStream::from(fd))
}

fn join_cgroups(procs_files: &[PathBuf]) -> Result<(), JailError> {
    let pid = nix::unistd::getpid().to_string();
    for path in procs_files {
        std::fs::write(path, &pid).context(|| format!("join the cgroup {}", path.display()))?;
    }
    Ok(())
}

/// G: asks for SIGKILL when J, its parent, dies, and checks that J has not died already (in
/// which case the signal will never come). J is outside G's PID namespace (`getppid` says 0),
/// so the check is that J's end of the sync socket, which J keeps open as long as it lives,
/// is not closed.
fn die_with_jail(sync: &UnixStream) -> Result<(), JailError> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .context(|| "set the parent-death signal".to_owned())?;
    if crate::sys::peer_closed(std::os::fd::AsFd::as_fd(sync)) {
        return Err(JailError::Protocol("the jail process died during set-up".to_owned()));
    }
    Ok(())
}
