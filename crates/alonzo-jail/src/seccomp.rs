//! The sandbox's seccomp filter: the policy compiled from `seccomp/<arch>.json` by `build.rs`,
//! plus a fixed guard for what a per-syscall list cannot express, installed by R right before
//! `execve` (see `exec.rs`).
//!
//! The policy is a deny-list of the calls container runtimes block: two filters, `blocked`
//! (fails with EPERM) and `absent` (fails with ENOSYS, as on a kernel without the call, so
//! that libraries fall back). Blocked calls return an error instead of killing the process,
//! so runtimes that probe for a feature degrade gracefully.
//!
//! The guard, hand-written because `seccompiler` matches single syscall numbers only:
//! - a system call of another architecture (the i386 `int 0x80` entry of a 64-bit process)
//!   kills the process: its numbers differ, so the deny-list would not apply to it (the
//!   policy's own filters do the same);
//! - an x32 system call (number with bit 30 set) fails with EPERM, for the same reason;
//! - a number above the highest one the policy compiler knows fails with ENOSYS, so system
//!   calls added by kernels newer than the policy are unavailable until reviewed, exactly as
//!   on an older kernel.
//!
//! All filters are evaluated on every system call and the most severe answer wins, so the
//! order of installation does not matter. See `docs/sandbox.md`.

use crate::error::JailError;

include!(concat!(env!("OUT_DIR"), "/seccomp_policy.rs"));

/// Installs the guard and every filter of the policy on the calling thread. Needs
/// `no_new_privs` (set by `exec::drop_privileges`) and must run after every set-up call the
/// policy blocks.
pub(crate) fn install() -> Result<(), JailError> {
    Filters::prepare()?.install().map_err(|(filter, source)| JailError::Sys {
        step: format!("install the seccomp filter {filter}"),
        source,
    })
}

/// The guard and the policy's filters, ready to install without allocating: R installs them
/// while it shares G's memory (`exec::Plan`).
pub(crate) struct Filters {
    guard: Vec<seccompiler::sock_filter>,
}

impl Filters {
    /// Builds the guard; fails if no policy was compiled for this architecture.
    pub(crate) fn prepare() -> Result<Self, JailError> {
        if POLICY.is_empty() {
            return Err(JailError::InvalidSpec(format!(
                "no seccomp policy was compiled for this architecture: write {POLICY_FILE}"
            )));
        }
        Ok(Filters { guard: guard()? })
    }

    /// Installs every filter on the calling thread (see [`install`]). On failure, the name of
    /// the filter the kernel refused and why. Allocates nothing.
    pub(crate) fn install(&self) -> Result<(), (&'static str, nix::errno::Errno)> {
        for (name, program) in POLICY.iter().copied().chain([("guard", self.guard.as_slice())]) {
            // seccompiler sets no_new_privs (already set) and calls seccomp(2); on failure
            // errno is that call's.
            if seccompiler::apply_filter(program).is_err() {
                return Err((name, nix::errno::Errno::last()));
            }
        }
        Ok(())
    }
}

/// The x86_64 guard program (see the module documentation).
#[cfg(target_arch = "x86_64")]
fn guard() -> Result<Vec<seccompiler::sock_filter>, JailError> {
    // AUDIT_ARCH_X86_64 = EM_X86_64 (62) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    // __X32_SYSCALL_BIT: x32 system calls are numbered from here.
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    // The highest system call number in seccompiler 0.5's x86_64 table (mseal, Linux 6.10).
    const HIGHEST_KNOWN: u32 = 462;
    Ok(vec![
        stmt(LD_W_ABS, ARCH_OFFSET),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR_OFFSET),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, errno(libc::EPERM)),
        jump(JGT_K, HIGHEST_KNOWN, 0, 1),
        stmt(RET_K, errno(libc::ENOSYS)),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ])
}

#[cfg(not(target_arch = "x86_64"))]
fn guard() -> Result<Vec<seccompiler::sock_filter>, JailError> {
    Err(JailError::InvalidSpec(format!(
        "the seccomp guard is written for x86_64 only; port seccomp.rs and {POLICY_FILE}"
    )))
}

// Classic BPF opcodes (linux/bpf_common.h) and `struct seccomp_data` offsets.
const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
const JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K: u16 = 0x05 | 0x20; // BPF_JMP | BPF_JGT | BPF_K
const JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

fn stmt(code: u16, k: u32) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt, jf, k }
}

fn errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno.unsigned_abs() & libc::SECCOMP_RET_DATA)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    //! The compiled policy is run through a small classic-BPF interpreter on synthetic
    //! `seccomp_data`, so each guarantee is checked without installing anything.

    use super::*;

    const X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const I386: u32 = 3 | 0x4000_0000;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    /// Runs one program: loads of `nr`, `arch` and argument words, jumps and returns.
    fn run(program: &[seccompiler::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let word = |offset: u32| -> u32 {
            match offset {
                0 => nr,
                4 => arch,
                8 | 12 => 0,
                off => {
                    let arg = args[((off - 16) / 8) as usize];
                    // seccomp_data is little-endian on x86_64: the low half comes first.
                    if (off - 16) % 8 == 0 {
                        (arg & 0xffff_ffff) as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
            }
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let insn = &program[pc];
            pc += 1;
            match insn.code {
                LD_W_ABS => acc = word(insn.k),
                RET_K => return insn.k,
                0x05 => pc += insn.k as usize, // BPF_JMP | BPF_JA
                code if code & 0x07 == 0x05 => {
                    let taken = match code & 0xf0 {
                        0x10 => acc == insn.k,
                        0x20 => acc > insn.k,
                        0x30 => acc >= insn.k,
                        0x40 => acc & insn.k != 0,
                        other => panic!("unsupported jump {other:#x}"),
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                0x54 => acc &= insn.k, // BPF_ALU | BPF_AND | BPF_K
                0x04 => acc = acc.wrapping_add(insn.k),
                other => panic!("unsupported instruction {other:#x}"),
            }
        }
    }

    /// What the kernel would do: the most severe answer of all filters wins.
    fn verdict(nr: i64, arch: u32, args: [u64; 6]) -> u32 {
        let guard = guard().unwrap();
        let nr = nr as u32;
        let answers =
            POLICY.iter().map(|(_, p)| run(p, nr, arch, args)).chain([run(&guard, nr, arch, args)]);
        // Lower action values (masked) are more severe, KILL_PROCESS (0x80000000) the most.
        answers
            .min_by_key(|a| {
                if *a == libc::SECCOMP_RET_KILL_PROCESS {
                    0
                } else {
                    (a & libc::SECCOMP_RET_ACTION_FULL) as u64 + 1
                }
            })
            .unwrap()
    }

    #[track_caller]
    fn check(nr: i64, args: [u64; 6], expected: u32) {
        assert_eq!(verdict(nr, X86_64, args), expected, "syscall {nr} {args:x?}");
    }

    const NONE: [u64; 6] = [0; 6];

    #[test]
    fn policy_has_both_filters() {
        let names: Vec<_> = POLICY.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["absent", "blocked"]);
    }

    #[test]
    fn dangerous_calls_fail_with_eperm() {
        for nr in [
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_ptrace,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_kexec_load,
            libc::SYS_userfaultfd,
            libc::SYS_open_by_handle_at,
            libc::SYS_process_vm_readv,
            libc::SYS_fsopen,
            libc::SYS_syslog,
        ] {
            check(nr, NONE, errno(libc::EPERM));
        }
    }

    #[test]
    fn ordinary_calls_are_allowed() {
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_mmap,
            libc::SYS_futex,
            libc::SYS_epoll_wait,
            libc::SYS_execve,
            libc::SYS_wait4,
            libc::SYS_mseal,
        ] {
            check(nr, NONE, ALLOW);
        }
    }

    #[test]
    fn clone_is_checked_by_its_flags() {
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD) as u64;
        check(libc::SYS_clone, [thread, 0, 0, 0, 0, 0], ALLOW);
        check(libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0], ALLOW);
        for ns in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWCGROUP,
        ] {
            check(
                libc::SYS_clone,
                [ns as u64 | libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
                errno(libc::EPERM),
            );
        }
        check(libc::SYS_clone3, NONE, errno(libc::ENOSYS));
        check(libc::SYS_io_uring_setup, NONE, errno(libc::ENOSYS));
    }

    #[test]
    fn personality_and_ioctl_are_checked_by_argument() {
        for ok in [0u64, 8, 0x20000, 0xffff_ffff] {
            check(libc::SYS_personality, [ok, 0, 0, 0, 0, 0], ALLOW);
        }
        // ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC.
        for bad in [0x0040000u64, 0x0400000] {
            check(libc::SYS_personality, [bad, 0, 0, 0, 0, 0], errno(libc::EPERM));
        }
        check(libc::SYS_ioctl, [0, 0x5412, 0, 0, 0, 0], errno(libc::EPERM));
        // The kernel truncates the request to 32 bits, and so does the check.
        check(libc::SYS_ioctl, [0, 0x1_0000_5412, 0, 0, 0, 0], errno(libc::EPERM));
        check(libc::SYS_ioctl, [0, 0x541C, 0, 0, 0, 0], errno(libc::EPERM));
        // TCGETS, an ordinary request.
        check(libc::SYS_ioctl, [1, 0x5401, 0, 0, 0, 0], ALLOW);
    }

    #[test]
    fn other_abis_and_unknown_numbers_are_blocked() {
        // x32: getpid with the x32 bit.
        check(0x4000_0000 + libc::SYS_getpid, NONE, errno(libc::EPERM));
        check(0x4000_0000 + libc::SYS_mount, NONE, errno(libc::EPERM));
        // i386 through int 0x80.
        assert_eq!(verdict(20, I386, NONE), libc::SECCOMP_RET_KILL_PROCESS);
        // A number newer than the compiler's table, and a negative one.
        check(470, NONE, errno(libc::ENOSYS));
        check(-1, NONE, errno(libc::EPERM));
    }
}
