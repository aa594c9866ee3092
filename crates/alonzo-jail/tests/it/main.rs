//! Integration tests of real sandboxes: one binary with its own `main` (`harness = false`),
//! because the test executable must itself be re-executable as the jail process, which
//! requires `main_if_jail()` to run before anything else, and libtest starts threads first.
//!
//! The tests run one after another. They need root, working user/mount/PID/network
//! namespaces, and (for the cgroup tests) a writable cgroup hierarchy; each skips with a
//! printed reason when its requirement is missing. `cargo test --test it -- NAME` runs the
//! tests whose name contains NAME. The last line is `N passed, N failed, N skipped`.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

/// `cases![Needs; test_fn, ...]`: the named test functions, each needing `Needs`.
macro_rules! cases {
    ($needs:ident; $($name:ident),* $(,)?) => {
        &[$((stringify!($name), $crate::Needs::$needs, $name as fn())),*]
    };
}

mod ahead;
mod cgroups;
mod isolation;
mod latency;
mod process;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use alonzo_jail::cgroup::{CgroupLayout, CgroupParent};
use alonzo_jail::spawn::{exit_code, spawn, Bind, Jail, JailSpec};

/// What a test needs from the machine.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Root and working namespaces.
    Sandbox,
    /// Also a usable cgroup hierarchy.
    Cgroups,
}

type Case = (&'static str, Needs, fn());

fn main() {
    // The jail process is this very executable: dispatch before anything else happens.
    alonzo_jail::spawn::main_if_jail();

    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let cases: Vec<Case> =
        [isolation::CASES, process::CASES, cgroups::CASES, latency::CASES, ahead::CASES].concat();
    let sandbox_skip = sandbox_skip_reason();
    let cgroup_skip = sandbox_skip.clone().or_else(cgroup_skip_reason);
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, needs, run) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let skip = match needs {
            Needs::Sandbox => &sandbox_skip,
            Needs::Cgroups => &cgroup_skip,
        };
        if let Some(reason) = skip {
            println!("test {name} ... skipped: {reason}");
            skipped += 1;
            continue;
        }
        let started = std::time::Instant::now();
        match std::panic::catch_unwind(run) {
            Ok(()) => {
                println!("test {name} ... ok ({:.0?})", started.elapsed());
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    if let Some(parent) = CGROUP_PARENT.get() {
        // A failed test may have left its sandbox cgroup behind.
        match parent.clean_up_leftovers() {
            Ok(0) => {}
            Ok(n) => println!("cleaned up {n} leftover sandbox cgroups"),
            Err(err) => println!("cleaning up leftover sandbox cgroups failed: {err}"),
        }
        if let Err(err) = parent.try_remove() {
            println!("removing the cgroup parent failed: {err}");
            failed += 1;
        }
    }
    println!("\n{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        std::process::exit(101);
    }
}

/// Only the environment is checked here: a jail that fails to start must fail the tests, not
/// skip them.
fn sandbox_skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (the jail maps a uid range and mounts)".to_owned());
    }
    match std::fs::read_to_string("/proc/sys/user/max_user_namespaces") {
        Ok(max) if max.trim() != "0" => None,
        Ok(_) => Some("user namespaces are disabled (user.max_user_namespaces = 0)".to_owned()),
        Err(err) => Some(format!("this kernel has no user namespaces: {err}")),
    }
}

fn cgroup_skip_reason() -> Option<String> {
    let layout = match CgroupLayout::detect() {
        Ok(layout) => layout,
        Err(err) => return Some(format!("no usable cgroup layout: {err}")),
    };
    match CgroupParent::create(&layout, &format!("it-{}", std::process::id())) {
        Ok(parent) => {
            let _ = CGROUP_PARENT.set(parent);
            None
        }
        Err(err) => Some(format!("cannot create a cgroup parent: {err}")),
    }
}

/// The parent cgroup of this test run, created by the cgroup gate.
static CGROUP_PARENT: OnceLock<CgroupParent> = OnceLock::new();

fn cgroup_parent() -> &'static CgroupParent {
    CGROUP_PARENT.get().expect("the cgroup gate passed, so the parent exists")
}

/// An empty host directory shared as `root_dir` by every sandbox: the tmpfs root is mounted
/// over it only inside each sandbox's private mount namespace.
fn shared_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        tempfile::Builder::new().prefix("alonzo-jail-root").tempdir().unwrap().keep()
    })
}

const UID_BASE: u32 = 1 << 20;

/// A Lambda-like spec: the host's /usr (and /bin, /lib...) read-only, uid 993/990.
fn spec(argv: &[&str]) -> JailSpec {
    JailSpec {
        root_dir: shared_root().to_owned(),
        // As alonzo-sandbox does: the host's /usr, and its merged-/usr symlinks as binds.
        binds: ["/usr", "/bin", "/lib", "/lib64", "/sbin"]
            .iter()
            .filter(|d| Path::new(d).exists())
            .map(|d| Bind { source: d.into(), target: (*d).to_owned(), writable: false })
            .collect(),
        tmp_size_mb: 16,
        hostname: "sandbox-it".to_owned(),
        uid_base: UID_BASE,
        run_as_uid: 993,
        run_as_gid: 990,
        cgroup_procs: vec![],
        argv: argv.iter().map(|a| (*a).to_owned()).collect(),
        env: vec![
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ],
        cwd: "/".to_owned(),
        nofile: 1024,
        nproc: 1024,
        runtime_api_port: 9001,
        deferred: None,
        network: None,
    }
}

/// A spec running `python3 -S -c code` (-S: no site import, the fastest start).
fn python(code: &str) -> JailSpec {
    spec(&["/usr/bin/python3", "-S", "-c", code])
}

/// What a finished sandbox produced.
#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_spec(spec: &JailSpec) -> Result<Outcome, alonzo_jail::JailError> {
    let jail = spawn(&std::env::current_exe().unwrap(), spec)?;
    Ok(finish(jail))
}

/// Runs `spec` to completion; panics if it cannot start.
#[track_caller]
fn run(spec: &JailSpec) -> Outcome {
    run_spec(spec).unwrap_or_else(|err| panic!("spawn failed: {err}"))
}

/// Runs `spec`, expects exit status 0, and returns its stdout.
#[track_caller]
fn stdout_of(spec: &JailSpec) -> String {
    let out = run(spec);
    assert_eq!(out.code, 0, "status {}, stderr: {}", out.code, out.stderr);
    out.stdout
}

/// Reads both pipes to the end (stderr on a thread, so neither can fill up) and waits.
fn finish(mut jail: Jail) -> Outcome {
    let mut stderr_pipe = jail.stderr;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        stderr_pipe.read_to_string(&mut text).unwrap();
        text
    });
    let mut stdout = String::new();
    jail.stdout.read_to_string(&mut stdout).unwrap();
    let code = exit_code(jail.child.wait().unwrap());
    Outcome { code, stdout, stderr: stderr.join().unwrap() }
}

/// Reads stdout up to the first newline (the program's "ready" line), with a deadline.
#[track_caller]
fn wait_for_line(stdout: &mut std::process::ChildStdout) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "stdout closed before a line arrived");
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

/// Reads the rest of a pipe on a thread and says whether it reached end-of-file within
/// `patience`, i.e. whether every process holding its write end is gone.
fn reaches_eof(mut pipe: impl Read + Send + 'static, patience: Duration) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = pipe.read_to_end(&mut sink);
        let _ = tx.send(());
    });
    rx.recv_timeout(patience).is_ok()
}
