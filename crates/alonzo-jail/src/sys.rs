//! The raw system calls that `nix` does not wrap safely: fork and clone, closing fd ranges, signal
//! dispositions, the loopback ioctl, `mount_setattr` and the fd-based mount API. Each `unsafe`
//! block of the jail sequence lives here behind a function whose contract callers can see;
//! file-descriptor passing has its own in `fdpass.rs` and the spawn hook in `spawn.rs`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, Signal};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use nix::unistd::ForkResult;

/// Proof that the current process has exactly one thread, which makes `fork` sound.
///
/// It is created once at the start of the jail process; every process forked from a
/// single-threaded process is single-threaded too, and the jail sequence never starts a
/// thread, so the proof stays valid in G and R.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SingleThreaded(());

impl SingleThreaded {
    /// Counts the entries of `/proc/self/task`.
    pub(crate) fn check() -> Result<Self, std::io::Error> {
        let threads = std::fs::read_dir("/proc/self/task")?.count();
        if threads == 1 {
            Ok(SingleThreaded(()))
        } else {
            Err(std::io::Error::other(format!(
                "the jail process has {threads} threads: main_if_jail must run before any thread starts"
            )))
        }
    }
}

/// `fork(2)` in a process proven single-threaded.
pub(crate) fn fork(_proof: &SingleThreaded) -> nix::Result<ForkResult> {
    // SAFETY: fork is unsound only when other threads exist, because the child could inherit
    // locks (allocator, stdio) that those threads hold. `SingleThreaded` proves there are none.
    unsafe { nix::unistd::fork() }
}

/// Closes every file descriptor numbered `first` or higher.
///
/// # Safety
///
/// The caller must not own any `OwnedFd` (or type wrapping one) numbered `first` or higher
/// that it will use or drop afterwards; dropping one would close a number that may have been
/// reused.
pub(crate) unsafe fn close_fds_from(first: u32) -> nix::Result<()> {
    // SAFETY: close_range only closes descriptors; the caller guarantees that no live owner
    // refers to them.
    let res = unsafe { libc::close_range(first, u32::MAX, 0) };
    Errno::result(res).map(drop)
}

/// Sets `signal` back to its default disposition.
pub(crate) fn default_disposition(signal: Signal) -> nix::Result<()> {
    // SAFETY: installing SIG_DFL runs no code of ours in signal context, so none of the
    // handler-safety rules apply.
    unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }.map(drop)
}

/// Sets every signal that can be changed back to its default disposition: the standard ones
/// and the real-time ones from `SIGRTMIN()` (glibc reserves the two below it for itself and
/// refuses to change them).
pub(crate) fn default_dispositions() -> nix::Result<()> {
    for signal in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        default_disposition(signal)?;
    }
    for raw in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        if unsafe { libc::signal(raw, libc::SIG_DFL) } == libc::SIG_ERR {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Installs `handler` for `signal` with `SA_RESTART`, so that interrupted `waitpid` calls
/// resume.
///
/// # Safety
///
/// `handler` must only do async-signal-safe work and must preserve `errno`.
pub(crate) unsafe fn install_handler(
    signal: Signal,
    handler: extern "C" fn(libc::c_int),
) -> nix::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigSet};
    let action = SigAction::new(SigHandler::Handler(handler), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the caller guarantees the handler is async-signal-safe.
    unsafe { nix::sys::signal::sigaction(signal, &action) }.map(drop)
}

/// `kill(2)` for use inside a signal handler: async-signal-safe and preserves `errno`.
pub(crate) fn kill_from_handler(pid: libc::pid_t, signal: libc::c_int) {
    let saved = Errno::last_raw();
    // SAFETY: kill takes two integers and touches no memory of ours; it is async-signal-safe.
    unsafe { libc::kill(pid, signal) };
    Errno::set_raw(saved);
}

/// Brings the loopback interface of the current network namespace up (`ip link set lo up`).
pub(crate) fn loopback_up() -> nix::Result<()> {
    let sock: OwnedFd =
        socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: ifreq is a plain C struct of byte arrays and integers; all zeroes is a valid
    // value (an empty name and zero flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes the flags into the ifreq
    // we own; the pointer is valid for the whole call.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    let up = libc::c_short::try_from(libc::IFF_UP | libc::IFF_RUNNING)
        .expect("IFF_UP|IFF_RUNNING fit in a short");
    req.ifr_ifru.ifru_flags = flags | up;
    // SAFETY: SIOCSIFFLAGS only reads the ifreq we own.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// `mount_setattr(2)` with `AT_RECURSIVE`: adds the `MOUNT_ATTR_*` bits in `set` to the mount
/// at `path` and every mount below it. Unlike a `MS_REMOUNT`, it leaves all other flags alone,
/// so the flags the kernel locked on mounts inherited from the host are kept.
pub(crate) fn mount_setattr_recursive(path: &CStr, set: u64) -> nix::Result<()> {
    let attr = libc::mount_attr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: the path is NUL-terminated and the attr struct lives for the whole call; its
    // size is passed alongside so the kernel reads exactly that much.
    let res = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(res).map(drop)
}

/// `_exit(2)`: ends the process at once, without exit handlers or stdio flushing, which a
/// forked stage must not run twice.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns; it is always safe to call.
    unsafe { libc::_exit(code) }
}

// From include/uapi/linux/mount.h (stable kernel ABI), which not every libc 0.2 release
// exports.
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const OPEN_TREE_CLONE: libc::c_uint = 0x1;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Creates a tmpfs with `options` (key, value) as a detached mount with the `MOUNT_ATTR_*`
/// bits `attrs`, and returns a descriptor of its root (`fsopen`, `fsconfig`, `fsmount`;
/// Linux 5.2). Nothing is attached to any path yet.
pub(crate) fn detached_tmpfs(options: &[(&CStr, &CStr)], attrs: u64) -> nix::Result<OwnedFd> {
    // SAFETY: the name is a NUL-terminated literal; on success the kernel returns a new
    // descriptor that nothing else owns.
    let fs =
        unsafe { owned_fd(libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC))? };
    for (key, value) in options {
        // SAFETY: key and value are NUL-terminated and outlive the call; aux must be 0 for
        // FSCONFIG_SET_STRING.
        let res = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        Errno::result(res)?;
    }
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: FSCONFIG_CMD_CREATE takes no key, value or aux.
    Errno::result(unsafe {
        libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, null, null, 0)
    })?;
    // SAFETY: fsmount takes the filesystem context descriptor and two flag words; on success
    // it returns a new descriptor that nothing else owns.
    unsafe { owned_fd(libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)) }
}

/// Adopts the descriptor a raw `syscall` returned.
///
/// # Safety
///
/// `res` must be the return value of a system call that returns a new descriptor (or -1).
unsafe fn owned_fd(res: libc::c_long) -> nix::Result<OwnedFd> {
    let fd = Errno::result(res)?;
    let fd = std::os::fd::RawFd::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: by the caller's contract, the kernel just created this descriptor for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A descriptor for process `pid` that becomes readable when it exits (`pidfd_open`; Linux 5.3).
pub(crate) fn pidfd_open(pid: libc::pid_t) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    unsafe { owned_fd(libc::syscall(libc::SYS_pidfd_open, pid, 0)) }
}

/// A detached copy of the mount tree at `fd` (the whole tree below it: `AT_RECURSIVE`), as
/// `mount --rbind` would attach it (`open_tree`; Linux 5.2).
pub(crate) fn clone_tree(fd: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: the empty path with AT_EMPTY_PATH names `fd` itself; on success the kernel
    // returns a new descriptor that nothing else owns.
    unsafe { owned_fd(libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags)) }
}

/// Attaches the detached mount `mount` at `target`, a path relative to the working
/// directory, or the working directory itself if `target` is empty (`move_mount`).
pub(crate) fn attach_at(mount: BorrowedFd<'_>, target: &CStr) -> nix::Result<()> {
    let mut flags = libc::MOVE_MOUNT_F_EMPTY_PATH;
    if target.is_empty() {
        flags |= MOVE_MOUNT_T_EMPTY_PATH;
    }
    // SAFETY: both paths are NUL-terminated and outlive the call; the empty from-path with
    // MOVE_MOUNT_F_EMPTY_PATH names `mount` itself.
    let res = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            flags,
        )
    };
    Errno::result(res).map(drop)
}

/// Makes `fd` descriptor 3 of this process, without close-on-exec (a `dup2`, or clearing the
/// flag if it already is 3). Whatever was at 3 is closed.
pub(crate) fn place_at_fd3(fd: OwnedFd) -> nix::Result<()> {
    place_at(fd, 3)
}

/// Makes `fd` descriptor `target` of this process, without close-on-exec (a `dup2`, or
/// clearing the flag if it already is `target`). Whatever was at `target` is closed: the
/// caller owns it or nothing is there.
pub(crate) fn place_at(fd: OwnedFd, target: std::os::fd::RawFd) -> nix::Result<()> {
    if fd.as_raw_fd() == target {
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))?;
        // The descriptor must stay open for the program.
        std::mem::forget(fd);
    } else {
        // SAFETY: dup2 only touches the descriptor table; fd is open (we own it) and whatever
        // is at target is the caller's to replace (see above).
        Errno::result(unsafe { libc::dup2(fd.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// A sealed memfd named `name` holding `bytes` (close-on-exec).
pub(crate) fn memfd_with(name: &CStr, bytes: &[u8]) -> nix::Result<OwnedFd> {
    use std::io::Write;
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new descriptor
    // or -1.
    let res =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    // SAFETY: a non-negative result is a new descriptor that nothing else owns.
    let fd = unsafe { owned_fd(libc::c_long::from(res)) }?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS on a memfd we own, with an int argument.
    Errno::result(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(OwnedFd::from(file))
}

/// What [`clone_into_parent`] returns in each process.
pub(crate) enum Cloned {
    /// In the caller: the new process's pid and a pidfd for it.
    Caller { pid: libc::pid_t, pidfd: OwnedFd },
    /// In the new process.
    Child,
}

/// Creates a new process that is a copy of this one (as `fork` would) but a child of this
/// process's parent (`CLONE_PARENT`), with a pidfd for it (`CLONE_PIDFD`): the launcher makes
/// each jail process a child of the server, which waits for it as for one it started itself.
///
/// The copy does not go through glibc's `fork`, so glibc's cached thread id in the new process
/// is the caller's; the jail code that runs there uses neither `pthread` mutexes that record
/// an owner nor anything else that reads it, and every process it forks goes through `fork`.
pub(crate) fn clone_into_parent(proof: &SingleThreaded) -> nix::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    // With CLONE_PIDFD the kernel writes the new pidfd to `pidfd` before returning.
    let pid = clone_as_fork(proof, libc::CLONE_PARENT | libc::CLONE_PIDFD, &mut pidfd)?;
    if pid == 0 {
        return Ok(Cloned::Child);
    }
    // SAFETY: the kernel has just created this pidfd for us; nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Cloned::Caller { pid: pid as libc::pid_t, pidfd })
}

/// Creates a new process that is a copy of this one (as `fork` would), started in the new
/// `namespaces` (`CLONE_NEW*` flags) instead of the caller's: with `CLONE_NEWUSER` among them,
/// the kernel creates the user namespace first and the others owned by it, as one `unshare`
/// of the same flags would, and with `CLONE_NEWPID` the child is pid 1 of the new PID
/// namespace. The jail process creates G this way, without an intermediate process to
/// unshare them.
///
/// As with [`clone_into_parent`], glibc's cached thread id in the new process is the caller's;
/// the same reasoning applies.
pub(crate) fn clone_into_namespaces(
    proof: &SingleThreaded,
    namespaces: nix::sched::CloneFlags,
) -> nix::Result<ForkResult> {
    let mut unused: libc::c_int = -1;
    match clone_as_fork(proof, namespaces.bits(), &mut unused)? {
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent { child: nix::unistd::Pid::from_raw(pid) }),
    }
}

/// `clone(2)` with `flags` (plus `SIGCHLD`), no new stack and no `CLONE_VM`: a fork that can
/// also take `CLONE_PARENT`, `CLONE_PIDFD` (the pidfd is written to `pidfd`) and `CLONE_NEW*`.
/// Returns 0 in the new process and its pid in the caller.
fn clone_as_fork(
    _proof: &SingleThreaded,
    flags: libc::c_int,
    pidfd: &mut libc::c_int,
) -> nix::Result<libc::pid_t> {
    let flags = flags as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: clone without CLONE_VM and with a null stack behaves as fork: the child gets a
    // copy of the address space and continues here with return value 0. `SingleThreaded`
    // proves no other thread holds a lock the copy could inherit. The parent_tid argument is
    // `pidfd`, a valid int the kernel writes only with CLONE_PIDFD; no CLONE_*TID flag is
    // accepted by the callers, so the child_tid argument stays unused.
    let res = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_int>(),
            0usize,
        )
    };
    Errno::result(res).map(|pid| pid as libc::pid_t)
}

/// Waits (or with `nohang`, checks) for the exit of the child that `pidfd` refers to and
/// reaps it (`waitid(P_PIDFD)`; Linux 5.4). `None`: still running (only with `nohang`).
pub(crate) fn wait_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> nix::Result<Option<i32>> {
    const P_PIDFD: libc::idtype_t = 3;
    let mut flags = libc::WEXITED;
    if nohang {
        flags |= libc::WNOHANG;
    }
    loop {
        // SAFETY: all-zero is a valid siginfo_t; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only into `info`, which lives across the call.
        let res =
            unsafe { libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
        match Errno::result(res) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        // SAFETY: after a successful waitid the pid and status fields are initialised (pid
        // 0 with WNOHANG when nothing has exited).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        // As a wait(2) status word, which `ExitStatus::from_raw` understands.
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_DUMPED => status | 0x80,
            _ => status,
        };
        return Ok(Some(raw));
    }
}

/// Sends `signal` to the process `pidfd` refers to (`pidfd_send_signal`; Linux 5.1): unlike
/// `kill`, it can never reach a process that reused the pid.
pub(crate) fn pidfd_kill(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> nix::Result<()> {
    // SAFETY: a null siginfo and zero flags make it behave as kill(2) on the pidfd's process.
    let res = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(res).map(drop)
}

/// Every signal's current disposition (index: signal number), as [`restore_dispositions`]
/// takes it back.
pub(crate) fn save_dispositions() -> Vec<Option<libc::sigaction>> {
    (0..=libc::SIGRTMAX())
        .map(|raw| {
            if raw == 0 || raw == libc::SIGKILL || raw == libc::SIGSTOP {
                return None;
            }
            // SAFETY: all-zero is a valid sigaction.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: with a null new action, sigaction only reads the current one into `old`.
            let res = unsafe { libc::sigaction(raw, std::ptr::null(), &mut old) };
            (res == 0).then_some(old)
        })
        .collect()
}

/// Puts back dispositions saved by [`save_dispositions`] (in the same program image, so any
/// handler address in them is valid code here).
pub(crate) fn restore_dispositions(saved: &[Option<libc::sigaction>]) -> nix::Result<()> {
    for (raw, action) in saved.iter().enumerate() {
        if let Some(action) = action {
            // SAFETY: the action was read from this very program image by save_dispositions,
            // so its handler, if any, is the one that process had installed.
            let res = unsafe { libc::sigaction(raw as libc::c_int, action, std::ptr::null_mut()) };
            // glibc refuses the two real-time signals it reserves; they were never changed.
            if res != 0 && Errno::last() != Errno::EINVAL {
                return Err(Errno::last());
            }
        }
    }
    Ok(())
}

/// Gives this process its own copy of every page of its private writable mappings now
/// (`MADV_POPULATE_WRITE`; Linux 5.14), instead of at each first write: a copy of the
/// launcher then pays its copy-on-write faults before its function arrives. Stops as soon as
/// `until` is readable (the assignment came, or its writer went away): from then on copying
/// would only delay the function, whose writes copy their pages as in any fork. So a sandbox
/// assigned right after it was built copies only what it writes. Best effort: a mapping the
/// kernel refuses is left as it is.
pub(crate) fn copy_shared_pages(until: BorrowedFd<'_>) {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    /// Pages copied between two looks at `until`.
    const CHUNK: usize = 256 * 1024;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        if !perms.starts_with("rw") || !perms.ends_with('p') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) =
            (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
        else {
            continue;
        };
        let mut at = start;
        while at < end {
            if readable_now(until) {
                return;
            }
            let len = CHUNK.min(end - at);
            // SAFETY: MADV_POPULATE_WRITE only faults in (and so copies) pages of a mapping
            // of this process, with the same effect as writing to them; it changes no
            // contents.
            unsafe { libc::madvise(at as *mut libc::c_void, len, MADV_POPULATE_WRITE) };
            at += len;
        }
    }
}

/// The size of a memory page.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// Discards the pages of `[start, start + len)` (`MADV_DONTNEED`): they read as zeroes from
/// then on. Best effort: a part of the range that is not mapped is left as it is.
///
/// # Safety
///
/// The range must hold nothing that is still in use: no live object, no live frame of any
/// call (it is meant for the stack below the deepest live frame), and `start` must be
/// page-aligned.
pub(crate) unsafe fn discard_unused_stack(start: usize, len: usize) {
    // SAFETY: the caller guarantees nothing in the range is in use; MADV_DONTNEED on private
    // anonymous memory (the stack) only replaces its pages with zero pages.
    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Whether the peer of the socket `fd` has closed its end (`POLLHUP` or `POLLRDHUP` now).
pub(crate) fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    poll_now(fd, libc::POLLRDHUP) & (libc::POLLHUP | libc::POLLRDHUP) != 0
}

/// Whether reading `fd` would not block now (data, end of file or an error is waiting).
fn readable_now(fd: BorrowedFd<'_>) -> bool {
    poll_now(fd, libc::POLLIN) != 0
}

/// The events of `fd` now (`poll` with a zero timeout): those of `events` that are ready,
/// and `POLLHUP`/`POLLERR`, which are always reported; 0 when none is.
fn poll_now(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::c_short {
    let mut poll = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: one pollfd, owned by this frame, for a descriptor the borrow keeps open; a zero
    // timeout never blocks.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    if ready > 0 {
        poll.revents
    } else {
        0
    }
}

/// The stack of a process started by [`clone_sharing_memory`]: its own pages in the caller's
/// address space, with an inaccessible guard page below them.
const SHARED_STACK_LEN: usize = 128 * 1024;

/// Starts a process that runs `body(arg)` in this process's memory, on a stack of its own
/// (`clone` with `CLONE_VM` and `SIGCHLD`), and returns its pid. It has its own descriptor
/// table, signal handlers, credentials, limits and working directory (copies of the caller's),
/// so what it changes there is its own; its memory is the caller's until it executes a
/// program, whose `execve` then only drops its reference to that memory: there is no address
/// space to copy at the start and none to tear down at the exec, as there is for a fork.
///
/// With `until_exec` (`CLONE_VFORK`), the caller is suspended until the new process has
/// executed its program or exited, and the stack is freed before this returns. Without it,
/// both run at once and the stack is never freed (the caller cannot tell when the new process
/// is done with it; 128 KiB of address space of which it touches a few pages).
///
/// # Safety
///
/// - `body` must end its process with `execve` or `_exit`; it must not return or unwind.
/// - Until then it must not allocate, take a lock or use anything of the caller's that is
///   changed at the same time without synchronisation: the caller's allocator and locks do
///   not know about it. It shares the caller's thread-local storage, so a failing call of
///   either may change the other's `errno`; the body must only read `errno` right after its
///   own call fails, and end its process when one does.
/// - `arg` must stay valid until the new process executes its program or exits.
/// - The caller must not fork while the new process shares its memory.
pub(crate) unsafe fn clone_sharing_memory(
    _proof: &SingleThreaded,
    body: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
    until_exec: bool,
) -> nix::Result<nix::unistd::Pid> {
    let page = page_size();
    let len = SHARED_STACK_LEN + page;
    // SAFETY: a new private anonymous mapping at an address of the kernel's choosing touches
    // nothing that exists.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: the lowest page of the mapping just created; nothing uses it.
    Errno::result(unsafe { libc::mprotect(base, page, libc::PROT_NONE) })?;
    // SAFETY: `base + len` is the end of the mapping, where a downward-growing stack starts.
    let top = unsafe { base.cast::<u8>().add(len) }.cast::<libc::c_void>();
    let mut flags = libc::CLONE_VM | libc::SIGCHLD;
    if until_exec {
        flags |= libc::CLONE_VFORK;
    }
    // SAFETY: glibc's clone runs `body(arg)` on the new stack in the new process and ends the
    // process with its return value; the caller guarantees what `body` may do in the memory
    // both share (see above). Without CLONE_SETTLS or CLONE_*TID, glibc touches no thread
    // state of the caller's.
    let pid = unsafe { libc::clone(body, top, flags, arg) };
    let result = Errno::result(pid).map(nix::unistd::Pid::from_raw);
    if until_exec || result.is_err() {
        // SAFETY: the new process has executed its program or exited (CLONE_VFORK), or was
        // never created, so nothing runs on this stack any more.
        unsafe { libc::munmap(base, len) };
    }
    result
}

/// A `NULL`-terminated array of C strings, as `execve` takes its arguments and environment,
/// built ahead so that executing allocates nothing.
pub(crate) struct CStrings {
    strings: Vec<std::ffi::CString>,
    pointers: Vec<*const libc::c_char>,
}

impl CStrings {
    /// The strings, in order; `None` if one contains a NUL byte.
    pub(crate) fn new<I: IntoIterator<Item = String>>(items: I) -> Option<Self> {
        let strings =
            items.into_iter().map(std::ffi::CString::new).collect::<Result<Vec<_>, _>>().ok()?;
        // The pointers stay valid when `strings` moves: each CString's bytes live on the heap.
        let pointers =
            strings.iter().map(|s| s.as_ptr()).chain([std::ptr::null()]).collect::<Vec<_>>();
        Some(CStrings { strings, pointers })
    }

    /// The first string (the program, for an argument list).
    pub(crate) fn first(&self) -> Option<&CStr> {
        self.strings.first().map(|s| s.as_c_str())
    }
}

/// `execve(2)` of `path` with `argv` and `env`, which allocates nothing (`nix`'s builds its
/// pointer arrays). Returns only on failure.
pub(crate) fn execve(path: &CStr, argv: &CStrings, env: &CStrings) -> Errno {
    // SAFETY: `path` is NUL-terminated and both arrays are NULL-terminated arrays of
    // NUL-terminated strings that `argv` and `env` keep alive for the call.
    unsafe { libc::execve(path.as_ptr(), argv.pointers.as_ptr(), env.pointers.as_ptr()) };
    Errno::last()
}

/// Sets this process's supplementary groups to none and its real, effective and saved ids to
/// `uid` and `gid`, with the raw system calls: they change the calling task only, where
/// glibc's wrappers change every thread of a process glibc believes to be multithreaded.
pub(crate) fn become_ids(uid: libc::uid_t, gid: libc::gid_t) -> Result<(), (&'static str, Errno)> {
    // SAFETY: setgroups with a count of 0 reads no memory.
    Errno::result(unsafe {
        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
    })
    .map_err(|e| ("drop supplementary groups", e))?;
    // SAFETY: setresgid takes integers only.
    Errno::result(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })
        .map_err(|e| ("set the gid", e))?;
    // SAFETY: setresuid takes integers only.
    Errno::result(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })
        .map_err(|e| ("set the uid", e))?;
    Ok(())
}
