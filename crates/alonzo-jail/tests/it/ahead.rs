//! Sandboxes built ahead of their function (`Prepared::build_ahead` then `assign`): the
//! assigned binds appear at the deferred mount points, `/tmp` takes the assigned size, the
//! program is the assigned one or, when it started ahead, reads the assignment's message;
//! assignments outside what was deferred are refused.

use alonzo_jail::spawn::{prepare, Assignment, Bind, Deferred, Program};
use alonzo_jail::JailError;

use crate::{finish, python, spec, Case};

pub(crate) const CASES: &[Case] = cases![Sandbox;
    assigned_program_sees_assigned_binds_and_tmp,
    started_program_reads_its_assignment,
    assignment_outside_the_deferred_targets_is_refused,
    assigned_program_is_confined_and_its_failures_are_reported,
];

fn task_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("code.txt"), "the function's code").unwrap();
    // The sandbox's user (a mapped uid) must be able to read it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn task_bind(dir: &tempfile::TempDir) -> Bind {
    Bind { source: dir.path().to_owned(), target: "/var/task".to_owned(), writable: false }
}

fn built_ahead(start_program: bool, argv: &[&str]) -> alonzo_jail::Prepared {
    let mut ahead = spec(argv);
    ahead.deferred = Some(Deferred {
        targets: vec!["/var/task".into()],
        start_program,
        continue_program: false,
        copy_shared_pages: false,
    });
    let mut prepared = prepare(&std::env::current_exe().unwrap(), &[]).unwrap();
    prepared.build_ahead(&ahead).unwrap();
    prepared
}

fn assigned_program_sees_assigned_binds_and_tmp() {
    let dir = task_dir();
    // The spec's own program is a placeholder: without start_program it never runs.
    let prepared = built_ahead(false, &["/bin/false"]);
    let code = "import os; print(open('/var/task/code.txt').read()); \
                s = os.statvfs('/tmp'); print(s.f_blocks * s.f_frsize // (1 << 20)); \
                print(os.getcwd(), os.environ['WHO'])";
    let assigned = python(code);
    let jail = prepared
        .assign(&Assignment {
            binds: vec![task_bind(&dir)],
            tmp_size_mb: 24,
            program: Some(Program {
                argv: assigned.argv,
                env: vec![("WHO".into(), "assigned".into())],
                cwd: "/var/task".into(),
            }),
            message: vec![],
        })
        .unwrap();
    let out = finish(jail);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "the function's code\n24\n/var/task assigned\n");
}

fn started_program_reads_its_assignment() {
    let dir = task_dir();
    // The program starts before any function is known; /var/task is still empty then.
    let code = "import os; before = os.listdir('/var/task'); \
                msg = os.read(3, 100).decode(); \
                print(before, msg, os.listdir('/var/task'))";
    let prepared =
        built_ahead(true, &python(code).argv.iter().map(String::as_str).collect::<Vec<_>>());
    // Give it time to start and block on its stdin.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let jail = prepared
        .assign(&Assignment {
            binds: vec![task_bind(&dir)],
            tmp_size_mb: 16,
            program: None,
            message: b"hello".to_vec(),
        })
        .unwrap();
    let out = finish(jail);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "[] hello ['code.txt']\n");
}

/// Assigns `program` (with the task bind) to a sandbox built for any program, and runs it.
fn run_assigned(program: Program) -> crate::Outcome {
    let dir = task_dir();
    let prepared = built_ahead(false, &["/bin/false"]);
    let jail = prepared
        .assign(&Assignment {
            binds: vec![task_bind(&dir)],
            tmp_size_mb: 16,
            program: Some(program),
            message: vec![],
        })
        .unwrap();
    finish(jail)
}

fn assigned_program_is_confined_and_its_failures_are_reported() {
    // The program's process waited in PID 1's memory until its exec (exec.rs); what it runs
    // as must be exactly what an executed program gets: pid 2 under the init, the Lambda
    // user, no capabilities, no_new_privs and the filter, stdin /dev/null, nothing inherited
    // above 2, an empty signal mask, and no signal ignored but SIGPIPE and SIGXFSZ, which
    // Python ignores itself (32 and 33 are glibc's own; see `signal_state_and_umask_are_clean`).
    let code = "import os\n\
                status = dict(l.split(':\\t') for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n\
                print(os.getpid(), os.getppid(), os.getuid(), os.getgid(), os.getgroups())\n\
                ign = int(status['SigIgn'], 16) & ~(0b11 << 31)\n\
                print(status['CapEff'], status['NoNewPrivs'], status['Seccomp'], status['SigBlk'], hex(ign), oct(os.umask(0)))\n\
                print(sorted(int(f) for f in os.listdir('/proc/self/fd')), os.readlink('/proc/self/fd/0'))";
    let argv = python(code).argv;
    let out = run_assigned(Program { argv: argv.clone(), env: vec![], cwd: "/var/task".into() });
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "2 1 993 990 []");
    assert_eq!(lines[1], "0000000000000000 1 2 0000000000000000 0x1001000 0o22");
    // 3 is the directory listdir had open while listing.
    assert_eq!(lines[2], "[0, 1, 2, 3] /dev/null");

    // Its failures are reported as those of a program started with its sandbox.
    let out = run_assigned(Program {
        argv: vec!["/usr/bin/no-such-program".into()],
        env: vec![],
        cwd: "/var/task".into(),
    });
    assert_eq!(out.code, 127, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("alonzo-jail: cannot execute /usr/bin/no-such-program: ENOENT"),
        "{}",
        out.stderr
    );
    let out = run_assigned(Program { argv, env: vec![], cwd: "/no/such/dir".into() });
    assert_eq!(out.code, 125, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("alonzo-jail: chdir /no/such/dir: ENOENT"), "{}", out.stderr);
}

fn assignment_outside_the_deferred_targets_is_refused() {
    let dir = task_dir();
    let prepared = built_ahead(false, &["/bin/false"]);
    let mut bind = task_bind(&dir);
    bind.target = "/etc".into();
    let err = prepared
        .assign(&Assignment {
            binds: vec![bind],
            tmp_size_mb: 16,
            program: Some(Program { argv: vec!["/bin/true".into()], env: vec![], cwd: "/".into() }),
            message: vec![],
        })
        .unwrap_err();
    assert!(
        matches!(err, JailError::InvalidSpec(ref m) if m.contains("not a deferred target")),
        "{err}"
    );
    // A started program cannot be replaced.
    let prepared = built_ahead(true, &["/bin/cat"]);
    let err = prepared
        .assign(&Assignment {
            binds: vec![],
            tmp_size_mb: 16,
            program: Some(Program { argv: vec!["/bin/true".into()], env: vec![], cwd: "/".into() }),
            message: vec![],
        })
        .unwrap_err();
    assert!(matches!(err, JailError::InvalidSpec(_)), "{err}");
}
