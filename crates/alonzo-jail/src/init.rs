//! Waiting for children and forwarding signals to them: J waits for G, and G (pid 1 of the
//! sandbox) reaps every process until the program exits. Each of them forwards
//! SIGTERM and SIGINT to its child, so a SIGTERM sent to the jail process reaches the program.
//!
//! Signals are blocked from the start of the jail process until a stage knows its child's
//! pid, so none is lost in between; the program gets a clean mask before exec.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, JailError};

/// The signals passed down the chain J → G → program.
const FORWARDED: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

/// The pid this process forwards signals to; 0 while it has none. Each forked process has its
/// own copy.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        crate::sys::kill_from_handler(pid, signal);
    }
}

fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(signal);
    }
    set
}

/// Blocks the forwarded signals and installs the forwarding handler; both are inherited by
/// every child. Called once at the start of the jail process.
pub(crate) fn prepare_forwarding() -> Result<(), JailError> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded_set()), None)
        .context(|| "block SIGTERM/SIGINT".to_owned())?;
    for signal in FORWARDED {
        // SAFETY: `forward` only loads an atomic and calls kill, which is async-signal-safe,
        // and it restores errno.
        unsafe { crate::sys::install_handler(signal, forward) }
            .context(|| format!("install a {signal} handler"))?;
    }
    Ok(())
}

/// From now on, forward SIGTERM and SIGINT to `child`; a signal that arrived while they were
/// blocked is delivered (and forwarded) now.
pub(crate) fn forward_to(child: Pid) -> Result<(), JailError> {
    FORWARD_TO.store(child.as_raw(), Ordering::Relaxed);
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&forwarded_set()), None)
        .context(|| "unblock SIGTERM/SIGINT".to_owned())
}

/// Waits for `child` and returns its exit code (128 + signal if a signal ended it).
pub(crate) fn wait_for(child: Pid) -> Result<i32, JailError> {
    loop {
        match waitpid(child, None) {
            Ok(status) => {
                if let Some(code) = exit_code_of(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => {}
            Err(source) => {
                return Err(JailError::Sys { step: format!("wait for pid {child}"), source })
            }
        }
    }
}

/// As pid 1 of the sandbox: reaps every child (orphans are re-parented to us) until `program`
/// exits, then returns its exit code. Exiting afterwards makes the kernel kill whatever is
/// left in the PID namespace.
pub(crate) fn reap_until(program: Pid) -> Result<i32, JailError> {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status) => {
                if status.pid() == Some(program) {
                    if let Some(code) = exit_code_of(status) {
                        return Ok(code);
                    }
                }
            }
            Err(Errno::EINTR) => {}
            Err(source) => return Err(JailError::Sys { step: "reap children".to_owned(), source }),
        }
    }
}

/// The shell convention for a wait status: the exit code, or 128 + signal. `None` for
/// statuses that do not mean the process ended.
pub(crate) fn exit_code_of(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        let pid = Pid::from_raw(7);
        assert_eq!(exit_code_of(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(exit_code_of(WaitStatus::Signaled(pid, Signal::SIGKILL, false)), Some(137));
        assert_eq!(exit_code_of(WaitStatus::Signaled(pid, Signal::SIGSEGV, true)), Some(139));
        assert_eq!(exit_code_of(WaitStatus::Continued(pid)), None);
    }
}
