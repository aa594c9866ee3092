//! The program as a process: environment, descriptors, rlimits, exit statuses and signals,
//! set-up failures, and spawning from many threads.

use std::time::Duration;

use alonzo_jail::spawn::{exit_code, spawn, Bind};
use alonzo_jail::JailError;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{python, run, spec, stdout_of, wait_for_line, Case};

pub(crate) const CASES: &[Case] = cases![Sandbox;
    environment_is_exactly_the_spec,
    descriptors_and_stdin_are_clean,
    signal_state_and_umask_are_clean,
    rlimits_apply,
    exit_code_propagates,
    death_by_signal_is_128_plus_signal,
    sigterm_reaches_the_program,
    sigterm_during_set_up_is_not_lost,
    killing_the_jail_process_kills_the_sandbox,
    exec_failure_is_127_with_a_message,
    setup_failure_is_125_with_a_message,
    invalid_spec_fails_before_starting,
    many_threads_spawn_at_once,
    jail_started_without_spawn_refuses_to_run,
];

fn environment_is_exactly_the_spec() {
    let mut spec = spec(&["/usr/bin/env"]);
    spec.env = vec![
        ("AWS_LAMBDA_RUNTIME_API".to_owned(), "127.0.0.1:9001".to_owned()),
        ("_HANDLER".to_owned(), "app.handler".to_owned()),
        ("EMPTY".to_owned(), String::new()),
        ("WITH_EQUALS".to_owned(), "a=b".to_owned()),
    ];
    assert_eq!(
        stdout_of(&spec),
        "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001\n_HANDLER=app.handler\nEMPTY=\nWITH_EQUALS=a=b\n"
    );
}

fn descriptors_and_stdin_are_clean() {
    // A descriptor the server leaked without close-on-exec must not reach the program.
    let (leak_read, leak_write) = nix::unistd::pipe().unwrap();
    let out = stdout_of(&python(
        "import os\n\
         fds = os.listdir('/proc/self/fd')\n\
         print(sorted(int(f) for f in fds))\n\
         print(os.readlink('/proc/self/fd/0'), repr(os.read(0, 10)))",
    ));
    drop((leak_read, leak_write));
    // 3 is the directory listdir had open while listing.
    assert_eq!(out, "[0, 1, 2, 3]\n/dev/null b''\n");
}

fn signal_state_and_umask_are_clean() {
    // The jail process is a Rust program (SIGPIPE ignored) that blocks and handles SIGTERM and
    // SIGINT, and a server may start with signals ignored; none of that may reach the program.
    // Signals 32 and 33 are glibc's own and cannot be reset through it; `cargo test` happens
    // to start tests with 32 ignored, so those two bits are masked out.
    let out =
        stdout_of(&spec(&["/bin/sh", "-c", "sed -n '/^Sig[BIC]/p' /proc/self/status; umask"]));
    let field = |name: &str| {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let glibc_internal = 0b11 << 31;
    assert_eq!(field("SigBlk:"), 0, "{out}");
    assert_eq!(field("SigIgn:") & !glibc_internal, 0, "{out}");
    assert_eq!(field("SigCgt:"), 0, "{out}");
    assert!(out.ends_with("0022\n"), "{out}");
}

fn rlimits_apply() {
    let mut spec = python(
        "import resource as r\n\
         print([r.getrlimit(x) for x in (r.RLIMIT_NOFILE, r.RLIMIT_NPROC, r.RLIMIT_CORE)])",
    );
    spec.nofile = 512;
    spec.nproc = 300;
    assert_eq!(stdout_of(&spec).trim(), "[(512, 512), (300, 300), (0, 0)]");
}

fn exit_code_propagates() {
    let out = run(&spec(&["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]));
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (3, "out\n", "err\n"));
}

fn death_by_signal_is_128_plus_signal() {
    assert_eq!(run(&spec(&["/bin/sh", "-c", "kill -9 $$"])).code, 137);
    assert_eq!(run(&spec(&["/bin/sh", "-c", "kill -SEGV $$"])).code, 139);
}

fn sigterm_reaches_the_program() {
    let spec = python(
        "import signal, sys, time\n\
         signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))\n\
         print('ready', flush=True)\n\
         time.sleep(30)",
    );
    let mut jail = spawn(&std::env::current_exe().unwrap(), &spec).unwrap();
    assert_eq!(wait_for_line(&mut jail.stdout), "ready\n");
    kill(Pid::from_raw(i32::try_from(jail.child.id()).unwrap()), Signal::SIGTERM).unwrap();
    assert_eq!(exit_code(jail.child.wait().unwrap()), 42);
}

fn sigterm_during_set_up_is_not_lost() {
    // spawn returns while G is still building the filesystem; the signal is held until each
    // stage can pass it on, then ends the program (or R before its exec) the default way.
    for _ in 0..5 {
        let jail =
            spawn(&std::env::current_exe().unwrap(), &spec(&["/usr/bin/sleep", "30"])).unwrap();
        kill(Pid::from_raw(i32::try_from(jail.child.id()).unwrap()), Signal::SIGTERM).unwrap();
        assert_eq!(crate::finish(jail).code, 128 + Signal::SIGTERM as i32);
    }
}

fn killing_the_jail_process_kills_the_sandbox() {
    // A background process that ignores SIGTERM holds stdout too; end-of-file on stdout
    // therefore means that every process of the sandbox is gone.
    let spec = spec(&["/bin/sh", "-c", "trap '' TERM; sleep 1000 & echo ready; wait"]);
    let mut jail = spawn(&std::env::current_exe().unwrap(), &spec).unwrap();
    assert_eq!(wait_for_line(&mut jail.stdout), "ready\n");
    jail.child.kill().unwrap();
    jail.child.wait().unwrap();
    assert!(
        crate::reaches_eof(jail.stdout, Duration::from_secs(5)),
        "sandbox processes outlived the jail process"
    );
}

fn exec_failure_is_127_with_a_message() {
    let out = run(&spec(&["/usr/bin/no-such-program"]));
    assert_eq!(out.code, 127);
    assert!(out.stderr.contains("cannot execute /usr/bin/no-such-program"), "{}", out.stderr);
}

fn setup_failure_is_125_with_a_message() {
    // Failures before the listener is handed over come back from spawn itself...
    let mut spec = spec(&["/usr/bin/true"]);
    spec.binds.push(Bind {
        source: "/no/such/source".into(),
        target: "/var/task".to_owned(),
        writable: false,
    });
    check_setup_error(&spec, "alonzo-jail: bind source /no/such/source: ENOENT");
    let mut spec = crate::spec(&["/usr/bin/true"]);
    spec.cgroup_procs = vec!["/no/such/cgroup/cgroup.procs".into()];
    check_setup_error(&spec, "join the cgroup /no/such/cgroup/cgroup.procs");

    // ...later ones as exit status 125 with the message on stderr.
    let mut spec = crate::spec(&["/usr/bin/true"]);
    spec.cwd = "/no/such/dir".to_owned();
    let out = run(&spec);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("alonzo-jail: chdir /no/such/dir"), "{}", out.stderr);
}

#[track_caller]
fn check_setup_error(spec: &alonzo_jail::JailSpec, expected: &str) {
    match spawn(&std::env::current_exe().unwrap(), spec) {
        Err(JailError::Setup { status, message }) => {
            assert_eq!(status.code(), Some(125));
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
        other => panic!("expected a set-up error, got {other:?}"),
    }
}

fn invalid_spec_fails_before_starting() {
    let spec = spec(&["true"]);
    assert!(matches!(
        spawn(&std::env::current_exe().unwrap(), &spec),
        Err(JailError::InvalidSpec(_))
    ));
    let missing = std::path::Path::new("/no/such/alonzo");
    assert!(matches!(
        spawn(missing, &crate::spec(&["/usr/bin/true"])),
        Err(JailError::Start { .. })
    ));
}

fn many_threads_spawn_at_once() {
    // The server is multithreaded: concurrent spawns must not leak descriptors into each
    // other or collide (each sandbox has its own port 9001).
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..5 {
                    let out = stdout_of(&spec(&[
                        "/bin/sh",
                        "-c",
                        &format!("echo {t}-{i}; ls /proc/self/fd"),
                    ]));
                    assert_eq!(out, format!("{t}-{i}\n0\n1\n2\n3\n"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// `exe __jail` reads its spec from the socket `spawn` passes as its standard input; started
/// any other way (stdin a file, or closed) it refuses with status 125 before doing anything.
fn jail_started_without_spawn_refuses_to_run() {
    let exe = std::env::current_exe().unwrap();
    for (stdin, message) in [
        (std::process::Stdio::null(), "stdin is not a socket"),
        (std::process::Stdio::piped(), "stdin is not a socket"),
    ] {
        let out = std::process::Command::new(&exe)
            .arg(alonzo_jail::spawn::JAIL_ARG)
            .stdin(stdin)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}
